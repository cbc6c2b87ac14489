//! The `labels` form part of a Java-agent upload: the async-profiler context snapshot that maps
//! the `contextId` recorded on each JFR sample to its dynamic labels (e.g. `thread_name`).
//!
//! The messages are declared by hand with `prost` derives (the same wire layout as Pyroscope's
//! `jfr_labels.proto`) so that this crate does not need the proto build for two small messages.

use std::collections::HashMap;

/// `LabelsSnapshot { map<int64, Context> contexts = 1; map<int64, string> strings = 2; }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelsSnapshot {
    /// Context id (as recorded in the JFR events) → the context's labels.
    #[prost(map = "int64, message", tag = "1")]
    pub contexts: HashMap<i64, Context>,
    /// String id → string; label keys and values of [`Context`] are ids into this table.
    #[prost(map = "int64, string", tag = "2")]
    pub strings: HashMap<i64, String>,
}

/// `Context { map<int64, int64> labels = 1; }`: label key string id → value string id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Context {
    #[prost(map = "int64, int64", tag = "1")]
    pub labels: HashMap<i64, i64>,
}

impl LabelsSnapshot {
    /// A string of the snapshot's table; an unknown id reads as "" (as a Go map lookup does),
    /// and an empty label is dropped later.
    pub fn string(&self, id: i64) -> &str {
        self.strings.get(&id).map_or("", String::as_str)
    }

    /// The labels of a context id as (key, value) strings, sorted by key for determinism;
    /// none when the id is unknown.
    pub fn context_labels(&self, context_id: i64) -> Vec<(String, String)> {
        let Some(ctx) = self.contexts.get(&context_id) else {
            return Vec::new();
        };
        let mut out: Vec<(String, String)> =
            ctx.labels.iter().map(|(k, v)| (self.string(*k).to_string(), self.string(*v).to_string())).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn round_trip_and_lookup() {
        let snap = LabelsSnapshot {
            contexts: HashMap::from([(7, Context { labels: HashMap::from([(1, 2), (3, 99)]) })]),
            strings: HashMap::from([(1, "thread_name".to_string()), (2, "main".to_string()), (3, "k".to_string())]),
        };
        let bytes = snap.encode_to_vec();
        let back = LabelsSnapshot::decode(bytes.as_slice()).unwrap();
        assert_eq!(back, snap);
        assert_eq!(
            back.context_labels(7),
            vec![("k".to_string(), String::new()), ("thread_name".to_string(), "main".to_string())]
        );
        assert!(back.context_labels(8).is_empty());
        assert!(LabelsSnapshot::decode(&b"\x0a\xff"[..]).is_err());
    }
}
