//! The series labels an `/ingest` upload is pushed under.

use std::collections::BTreeMap;

use crate::model::labels::{DELTA, METRIC_NAME, SERVICE_NAME, SESSION_ID};

use super::labelset::NameLabels;

/// Label added on the text path when the name already sets `service_name`.
pub const APP_NAME: &str = "app_name";
/// The agent that produced the upload.
pub const PYROSCOPE_SPY: &str = "pyroscope_spy";

/// Name labels starting with `__` are reserved for the server, except the SDK session id
/// (which a later stage keeps or drops by configuration).
fn allowed_for_ingestion(name: &str) -> bool {
    !name.starts_with("__") || name == SESSION_ID
}

/// Where the app name goes when the name labels already have a `service_name`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AppNameLabel {
    /// pprof path: the name's `service_name` is kept and the app name is not added.
    Drop,
    /// Text path: the app name is added as `app_name` (unless the name has one).
    AsAppName,
}

/// Builds the sorted label set: the name's labels (minus reserved ones), `service_name` =
/// `service` unless the name has one, `__name__`, `pyroscope_spy` and `__delta__="false"` (the
/// server never computes deltas for `/ingest` data). Derived labels win over name labels.
pub fn series_labels(
    name: &NameLabels,
    service: &str,
    metric: &str,
    spy_name: &str,
    app_name_label: AppNameLabel,
) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> =
        name.labels.iter().filter(|(k, _)| allowed_for_ingestion(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !out.contains_key(SERVICE_NAME) {
        out.insert(SERVICE_NAME.to_string(), service.to_string());
    } else if app_name_label == AppNameLabel::AsAppName && !out.contains_key(APP_NAME) {
        out.insert(APP_NAME.to_string(), service.to_string());
    }
    out.insert(METRIC_NAME.to_string(), metric.to_string());
    out.insert(PYROSCOPE_SPY.to_string(), spy_name.to_string());
    out.insert(DELTA.to_string(), "false".to_string());
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::super::labelset::parse;
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn pprof_path_labels() {
        let n = parse("go.app{__session_id__=ab,__x__=1,env=test}").unwrap();
        assert_eq!(
            series_labels(&n, "go.app", "memory", "gospy", AppNameLabel::Drop),
            pairs(&[
                ("__delta__", "false"),
                ("__name__", "memory"),
                ("__session_id__", "ab"),
                ("env", "test"),
                ("pyroscope_spy", "gospy"),
                ("service_name", "go.app"),
            ])
        );
    }

    #[test]
    fn name_service_name_is_kept() {
        let n = parse("go.app{service_name=svc}").unwrap();
        let l = series_labels(&n, "go.app", "memory", "gospy", AppNameLabel::Drop);
        assert!(l.contains(&("service_name".into(), "svc".into())));
        assert!(!l.iter().any(|(k, _)| k == "app_name"));

        let l = series_labels(&n, "go", "process_cpu", "x", AppNameLabel::AsAppName);
        assert!(l.contains(&("service_name".into(), "svc".into())));
        assert!(l.contains(&("app_name".into(), "go".into())));

        let n = parse("go.cpu{service_name=svc,app_name=mine}").unwrap();
        let l = series_labels(&n, "go", "process_cpu", "x", AppNameLabel::AsAppName);
        assert!(l.contains(&("app_name".into(), "mine".into())));
    }

    #[test]
    fn derived_labels_win() {
        let n = parse("app{pyroscope_spy=fake}").unwrap();
        let l = series_labels(&n, "app", "wall", "nodespy", AppNameLabel::Drop);
        assert!(l.contains(&("pyroscope_spy".into(), "nodespy".into())));
        assert_eq!(l.iter().filter(|(k, _)| k == "pyroscope_spy").count(), 1);
    }
}
