//! Bulk export tickets: a `DoGet` ticket (or a `GetFlightInfo` command) whose bytes are the JSON
//! of an [`ExportRequest`] streams the selection's samples with their stacks resolved. JSON
//! starts with `{`, which no protobuf `Any` (the Flight SQL tickets, first byte 0x0a) does, so
//! the two kinds of ticket never collide.

use flamedb_planner::sql::ExportRequest;
use tonic::Status;

/// The shape an export ticket must have, quoted in errors.
pub const EXPECTED_SHAPE: &str = r#"{"profile_type": "<type id, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds>", "label_selector": "{service_name=\"api\"}", "start": <ms>, "end": <ms>}"#;

/// Whether `bytes` is an export ticket rather than a Flight SQL one.
pub fn is_export(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

/// The export request in a JSON ticket.
pub fn parse(bytes: &[u8]) -> Result<ExportRequest, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad export ticket ({e}); expected JSON {EXPECTED_SHAPE}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn parses_the_documented_example() {
        let t = br#"{"profile_type":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","label_selector":"{service_name=\"api\"}","start":1700000000000,"end":1700003600000}"#;
        assert!(is_export(t));
        let r = parse(t).unwrap();
        assert_eq!(r.profile_type, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        assert_eq!(r.label_selector, "{service_name=\"api\"}");
        assert_eq!((r.start, r.end), (1_700_000_000_000, 1_700_003_600_000));
    }

    #[test]
    fn bad_json_names_the_shape() {
        let e = parse(br#"{"profile_type": 3}"#).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("label_selector"), "{}", e.message());
    }

    #[test]
    fn protobuf_tickets_are_not_exports() {
        assert!(!is_export(&[0x0a, 0x42, b't']));
        assert!(!is_export(b""));
    }
}
