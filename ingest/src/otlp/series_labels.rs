//! Series labels of an OTLP profile: the OTLP markers, `__name__`, the resource and scope
//! attributes (first occurrence of a key wins) and `service_name`.

use flamedb_proto::opentelemetry::proto::common::v1::KeyValue;

use super::dictionary::label_value;
use crate::model::labels;

/// OTLP's resource attribute naming the service.
pub(crate) const SERVICE_NAME_ATTR: &str = "service.name";
/// Names the process when there is no `service.name` (`unknown_service:<name>`).
const EXECUTABLE_NAME_ATTR: &str = "process.executable.name";

/// The service of a resource: its `service.name`, else `unknown_service[:<process.executable.name>]`
/// as the OpenTelemetry semantic conventions prescribe.
pub(crate) fn resource_service_name(attrs: &[KeyValue]) -> String {
    let mut fallback = labels::DEFAULT_SERVICE_NAME.to_string();
    for a in attrs {
        let s = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(flamedb_proto::opentelemetry::proto::common::v1::any_value::Value::StringValue(s)) => s,
            _ => continue,
        };
        if s.is_empty() {
            continue;
        }
        if a.key == SERVICE_NAME_ATTR {
            return s.clone();
        }
        if a.key == EXECUTABLE_NAME_ATTR {
            fallback = format!("{fallback}:{s}");
        }
    }
    fallback
}

/// The labels one converted profile is pushed with. Attribute keys keep their OTLP spelling
/// (`host.name`), as every other ingest path keeps label names as sent; keys the server sets
/// itself are not taken from attributes.
pub(crate) fn build(name: &str, resource: &[KeyValue], scope: &[KeyValue], service: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        (labels::DELTA.into(), "false".into()),
        (labels::OTEL.into(), "true".into()),
        (labels::METRIC_NAME.into(), name.into()),
    ];
    for a in resource.iter().chain(scope) {
        if matches!(a.key.as_str(), labels::METRIC_NAME | labels::SERVICE_NAME | labels::DELTA | labels::OTEL)
            || a.key.is_empty()
            || out.iter().any(|(k, _)| *k == a.key)
        {
            continue;
        }
        if let Some(v) = label_value(a.value.as_ref().and_then(|v| v.value.as_ref())) {
            out.push((a.key.clone(), v));
        }
    }
    out.push((labels::SERVICE_NAME.into(), service.into()));
    out
}
