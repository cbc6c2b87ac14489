//! The series index of a tenant's head: labels -> series id (by fingerprint), postings per label
//! value for matcher evaluation, and each series' time range so label queries can honour a range
//! without touching profile rows.

use std::sync::Arc;

use hashbrown::HashMap;
use roaring::RoaringBitmap;

use crate::model::{Labels, Matcher};

/// One series: its labels and the time range of its profiles.
#[derive(Debug, Clone)]
pub struct SeriesEntry {
    pub labels: Arc<Labels>,
    pub fingerprint: u64,
    pub min_time_nanos: i64,
    pub max_time_nanos: i64,
}

/// Series of one tenant, addressed by dense ids in insertion order.
#[derive(Debug, Default)]
pub struct SeriesIndex {
    series: Vec<SeriesEntry>,
    by_fingerprint: HashMap<u64, smallvec::SmallVec<[u32; 1]>>,
    postings: HashMap<String, HashMap<String, RoaringBitmap>>,
}

impl SeriesIndex {
    /// The id of the series with these labels, creating it when new, and widens its time range.
    pub fn get_or_create(&mut self, labels: &Labels, time_nanos: i64) -> u32 {
        let fp = labels.fingerprint();
        if let Some(ids) = self.by_fingerprint.get(&fp) {
            for &id in ids {
                let e = &mut self.series[id as usize];
                if *e.labels == *labels {
                    e.min_time_nanos = e.min_time_nanos.min(time_nanos);
                    e.max_time_nanos = e.max_time_nanos.max(time_nanos);
                    return id;
                }
            }
        }
        let id = self.series.len() as u32;
        for l in labels.iter() {
            self.postings.entry_ref(l.name.as_str()).or_default().entry_ref(l.value.as_str()).or_default().insert(id);
        }
        self.series.push(SeriesEntry {
            labels: Arc::new(labels.clone()),
            fingerprint: fp,
            min_time_nanos: time_nanos,
            max_time_nanos: time_nanos,
        });
        self.by_fingerprint.entry(fp).or_default().push(id);
        id
    }

    /// Whether a series with exactly these labels exists (the active-series limit asks before
    /// a profile creates new ones).
    pub fn contains(&self, labels: &Labels) -> bool {
        let Some(ids) = self.by_fingerprint.get(&labels.fingerprint()) else { return false };
        ids.iter().any(|&id| self.series.get(id as usize).is_some_and(|e| *e.labels == *labels))
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&SeriesEntry> {
        self.series.get(id as usize)
    }

    pub fn entries(&self) -> &[SeriesEntry] {
        &self.series
    }

    /// Series whose labels satisfy every matcher and whose profiles overlap `[min, max]` (ns).
    ///
    /// Each matcher is answered from the postings: one that rejects the empty value keeps only the
    /// series that have the label with an accepted value; one that accepts it removes the series
    /// that have the label with a rejected value (a missing label is the empty string).
    pub fn select(&self, matchers: &[Matcher], min_time_nanos: i64, max_time_nanos: i64) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        out.insert_range(0..self.series.len() as u32);
        for m in matchers {
            let values = self.postings.get(m.name.as_str());
            if m.matches_empty() {
                if let Some(values) = values {
                    for (v, ids) in values {
                        if !m.matches(v) {
                            out -= ids;
                        }
                    }
                }
            } else {
                let mut keep = RoaringBitmap::new();
                if let Some(values) = values {
                    for (v, ids) in values {
                        if m.matches(v) {
                            keep |= ids;
                        }
                    }
                }
                out &= keep;
            }
            if out.is_empty() {
                return out;
            }
        }
        if min_time_nanos > i64::MIN || max_time_nanos < i64::MAX {
            out.retain(|id| {
                let e = &self.series[id as usize];
                e.max_time_nanos >= min_time_nanos && e.min_time_nanos <= max_time_nanos
            });
        }
        out
    }

    /// Distinct label names of the series in `ids`.
    pub fn label_names(&self, ids: &RoaringBitmap) -> Vec<String> {
        let mut names: Vec<String> = self
            .postings
            .iter()
            .filter(|(_, values)| values.values().any(|s| !s.is_disjoint(ids)))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort_unstable();
        names
    }

    /// Distinct values of label `name` among the series in `ids`.
    pub fn label_values(&self, name: &str, ids: &RoaringBitmap) -> Vec<String> {
        let mut values: Vec<String> = match self.postings.get(name) {
            Some(values) => {
                values.iter().filter(|(v, s)| !v.is_empty() && !s.is_disjoint(ids)).map(|(v, _)| v.clone()).collect()
            }
            None => Vec::new(),
        };
        values.sort_unstable();
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    fn idx() -> SeriesIndex {
        let mut s = SeriesIndex::default();
        s.get_or_create(&Labels::from_pairs([("service_name", "a"), ("env", "prod")]), 10);
        s.get_or_create(&Labels::from_pairs([("service_name", "b"), ("env", "dev")]), 20);
        s.get_or_create(&Labels::from_pairs([("service_name", "c")]), 30);
        s
    }

    fn ids(b: RoaringBitmap) -> Vec<u32> {
        b.iter().collect()
    }

    #[test]
    fn same_labels_same_id_and_range_widens() {
        let mut s = idx();
        let l = Labels::from_pairs([("service_name", "a"), ("env", "prod")]);
        assert_eq!(s.get_or_create(&l, 5), 0);
        assert_eq!(s.get(0).map(|e| (e.min_time_nanos, e.max_time_nanos)), Some((5, 10)));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn matchers_follow_prometheus_semantics() {
        let s = idx();
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        assert_eq!(ids(s.select(&[], i64::MIN, i64::MAX)), vec![0, 1, 2]);
        assert_eq!(ids(s.select(&[m(MatchOp::Equal, "env", "prod")], i64::MIN, i64::MAX)), vec![0]);
        // != keeps series without the label.
        assert_eq!(ids(s.select(&[m(MatchOp::NotEqual, "env", "prod")], i64::MIN, i64::MAX)), vec![1, 2]);
        // ="" selects series without the label.
        assert_eq!(ids(s.select(&[m(MatchOp::Equal, "env", "")], i64::MIN, i64::MAX)), vec![2]);
        assert_eq!(ids(s.select(&[m(MatchOp::Regex, "service_name", "a|c")], i64::MIN, i64::MAX)), vec![0, 2]);
        assert_eq!(ids(s.select(&[m(MatchOp::NotRegex, "env", "p.*")], i64::MIN, i64::MAX)), vec![1, 2]);
        assert_eq!(ids(s.select(&[m(MatchOp::Regex, "env", ".+")], i64::MIN, i64::MAX)), vec![0, 1]);
        assert!(s.select(&[m(MatchOp::Equal, "nope", "x")], i64::MIN, i64::MAX).is_empty());
        assert_eq!(ids(s.select(&[], 15, 25)), vec![1]);
    }

    #[test]
    fn names_and_values() {
        let s = idx();
        let all = s.select(&[], i64::MIN, i64::MAX);
        assert_eq!(s.label_names(&all), vec!["env", "service_name"]);
        assert_eq!(s.label_values("service_name", &all), vec!["a", "b", "c"]);
        let only_c: RoaringBitmap = [2u32].into_iter().collect();
        assert_eq!(s.label_names(&only_c), vec!["service_name"]);
    }
}
