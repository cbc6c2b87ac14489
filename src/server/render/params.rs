//! Query-string parameters of the legacy render endpoints: the `query` (`<profile type>{...}`),
//! the `attime` range and the node limit, read the way Pyroscope's `parseSelectProfilesRequest`
//! reads them, so that URLs built for Pyroscope (Grafana apps, mcp-grafana, docs) mean the same.

use flamedb_ingest::legacy::attime;
use flamedb_ingest::model::labels::is_legacy_label_name;
use flamedb_ingest::model::selector::parse_query;
use flamedb_ingest::model::{Matcher, ProfileType};

/// Why the parameters were rejected (a 400 `invalid_argument`).
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("invalid query string: {0}")]
    QueryString(String),
    #[error("\"{0}\" is required")]
    Missing(&'static str),
    #[error("\"{0}\" must contain a profile-type selection")]
    NoProfileType(&'static str),
    #[error("failed to parse \"{field}\": {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("profile types must match")]
    TypesDiffer,
}

/// The decoded query string, in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Self, ParamError> {
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
            .map_err(|e| ParamError::QueryString(e.to_string()))?;
        Ok(Params(pairs))
    }

    /// The first value of `key` (Go's `url.Values.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
}

/// The parameter names of one side of a query (`query`/`from`/`until`, or the `left…`/`right…`
/// triples of render-diff).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub query: &'static str,
    pub from: &'static str,
    pub until: &'static str,
}

pub const SINGLE: Names = Names { query: "query", from: "from", until: "until" };
pub const LEFT: Names = Names { query: "leftQuery", from: "leftFrom", until: "leftUntil" };
pub const RIGHT: Names = Names { query: "rightQuery", from: "rightFrom", until: "rightUntil" };

/// One select of a render request.
#[derive(Debug, Clone)]
pub struct Select {
    /// The profile type id as written in the query (5 or 6 parts).
    pub profile_type_id: String,
    pub profile_type: ProfileType,
    /// The rest of the query as a selector string (`{}` when empty).
    pub selector: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `maxNodes`, else `max-nodes`, else 0 (the server default).
    pub max_nodes: i64,
}

/// Reads one select; `now_nanos` is what `now` and a missing time mean.
pub fn select(params: &Params, names: Names, now_nanos: i64) -> Result<Select, ParamError> {
    let (profile_type_id, matchers) = query(params, names.query)?;
    let profile_type = ProfileType::parse(&profile_type_id)
        .map_err(|e| ParamError::Invalid { field: names.query, reason: e.to_string() })?;
    Ok(Select {
        profile_type_id,
        profile_type,
        selector: selector_string(&matchers),
        start_ms: time_ms(params.get(names.from), now_nanos),
        end_ms: time_ms(params.get(names.until), now_nanos),
        max_nodes: max_nodes(params),
    })
}

/// The profile type id and the other matchers of a `query` parameter.
pub fn query(params: &Params, field: &'static str) -> Result<(String, Vec<Matcher>), ParamError> {
    let q = params.get(field).filter(|q| !q.is_empty()).ok_or(ParamError::Missing(field))?;
    let (id, matchers) = parse_query(q).map_err(|e| ParamError::Invalid { field, reason: e.to_string() })?;
    if id.is_empty() {
        return Err(ParamError::NoProfileType(field));
    }
    Ok((id, matchers))
}

/// An `attime` value in ms; absent or unreadable means now (as in Pyroscope).
pub fn time_ms(value: Option<&str>, now_nanos: i64) -> i64 {
    attime::parse(value.unwrap_or(""), now_nanos) / 1_000_000
}

/// `maxNodes` wins over `max-nodes`; a value that is not an integer, or 0, is not set.
fn max_nodes(params: &Params) -> i64 {
    let read = |key| params.get(key).and_then(|v| v.parse::<i64>().ok()).filter(|&v| v != 0);
    read("maxNodes").or_else(|| read("max-nodes")).unwrap_or(0)
}

/// Prints matchers as a selector the query API parses back: names quoted when they are not
/// legacy label names, values quoted with the escapes the selector parser reads.
pub fn selector_string(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|m| {
            let name = if is_legacy_label_name(&m.name) { m.name.clone() } else { quote(&m.name) };
            format!("{name}{}{}", m.op.as_str(), quote(&m.value))
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flamedb_ingest::model::selector::parse_selector;

    const NOW: i64 = 1_700_000_000_123_456_789;

    fn params(q: &str) -> Params {
        Params::parse(Some(q)).unwrap()
    }

    #[test]
    fn reads_a_render_query() {
        let p = params(
            "query=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds%7Bservice_name%3D%22x%22%7D\
             &from=now-1h&until=now&max-nodes=7",
        );
        let s = select(&p, SINGLE, NOW).unwrap();
        assert_eq!(s.profile_type_id, "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        assert_eq!(s.profile_type.sample_type, "cpu");
        assert_eq!(s.selector, r#"{service_name="x"}"#);
        assert_eq!(s.end_ms, NOW / 1_000_000);
        assert_eq!(s.start_ms, NOW / 1_000_000 - 3_600_000);
        assert_eq!(s.max_nodes, 7);
    }

    #[test]
    fn times_in_ms_and_defaults() {
        let p = params("query=a:b:c:d:e%7B%7D&from=1700000000000&until=1700000060000&maxNodes=3&max-nodes=9");
        let s = select(&p, SINGLE, NOW).unwrap();
        assert_eq!((s.start_ms, s.end_ms), (1_700_000_000_000, 1_700_000_060_000));
        assert_eq!(s.max_nodes, 3, "maxNodes wins");
        assert_eq!(s.selector, "{}");
        let s = select(&params("query=a:b:c:d:e&maxNodes=x"), SINGLE, NOW).unwrap();
        assert_eq!((s.start_ms, s.end_ms, s.max_nodes), (NOW / 1_000_000, NOW / 1_000_000, 0));
    }

    #[test]
    fn errors() {
        assert!(matches!(select(&params("from=now"), SINGLE, NOW), Err(ParamError::Missing("query"))));
        assert!(matches!(select(&params("query="), SINGLE, NOW), Err(ParamError::Missing("query"))));
        assert!(matches!(
            select(&params("query=%7Bservice_name%3D%22x%22%7D"), SINGLE, NOW),
            Err(ParamError::NoProfileType("query"))
        ));
        assert!(matches!(select(&params("query=a:b%7B"), SINGLE, NOW), Err(ParamError::Invalid { .. })));
        assert!(matches!(select(&params("query=a:b%7B%7D"), SINGLE, NOW), Err(ParamError::Invalid { .. })));
        assert!(matches!(select(&params("leftQuery=a:b:c:d:e"), RIGHT, NOW), Err(ParamError::Missing("rightQuery"))));
    }

    #[test]
    fn selector_round_trips() {
        let src = r#"{a="x\"y\\z", "service.name"=~"a|b", c!="line\nbreak", d!~"\t"}"#;
        let matchers = parse_selector(src).unwrap();
        let printed = selector_string(&matchers);
        assert_eq!(parse_selector(&printed).unwrap(), matchers, "{printed}");
    }
}
