//! Pyroscope's legacy `POST /ingest`: turns the query parameters, Content-Type and (already
//! un-gzipped) body of one request into pprof profiles and the series labels to push them
//! under. Old agents and all SDKs that predate the Push RPC use this endpoint, so its quirks
//! are reproduced as the contract describes them (docs/pyroscope-api.md §2.1).
//!
//! Dispatch, first match wins: `format=trie`/`tree` (or their Content-Types), `lines`, `jfr`,
//! `pprof`, `speedscope`, then a `multipart/form-data` Content-Type (pprof from the form),
//! and everything else is folded text.

pub mod attime;
pub mod binary_tree;
mod error;
pub mod folded;
pub mod jfr;
pub mod labelset;
pub mod multipart;
mod pprof_ingest;
pub mod pprof_names;
pub mod series_labels;
pub mod speedscope;
pub mod spy_fixes;
pub mod suffix;
pub mod synth;
mod text_ingest;

#[cfg(test)]
mod tests;

use flamedb_proto::google::v1::Profile;

pub use error::LegacyError;
use text_ingest::TextFormat;

/// The query parameters of an `/ingest` request, as sent (empty values included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestParams {
    /// `app{k=v,...}`; empty when absent (then refused).
    pub name: String,
    pub from: Option<String>,
    pub until: Option<String>,
    pub sample_rate: Option<String>,
    pub spy_name: Option<String>,
    pub units: Option<String>,
    pub aggregation_type: Option<String>,
    pub format: Option<String>,
}

/// The sample rate when none (or an unusable one) is given, in Hz.
pub const DEFAULT_SAMPLE_RATE: u32 = 100;
/// The spy name when none is given.
pub const UNKNOWN_SPY: &str = "unknown";

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl IngestParams {
    /// Picks the known keys out of decoded query pairs; the first occurrence of a key wins
    /// (what Go's `Query().Get` returns).
    pub fn from_query(pairs: &[(String, String)]) -> Self {
        let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        Self {
            name: first("name").unwrap_or_default(),
            from: first("from"),
            until: first("until"),
            sample_rate: first("sampleRate"),
            spy_name: first("spyName"),
            units: first("units"),
            aggregation_type: first("aggregationType"),
            format: first("format"),
        }
    }

    /// `sampleRate` in Hz: absent, non-numeric, negative or too large → 100; `0` stays 0
    /// (it disables the conversion of sample counts into nanoseconds).
    pub fn sample_rate(&self) -> u32 {
        non_empty(&self.sample_rate)
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    /// `spyName`, or `unknown` when absent or empty.
    pub fn spy_name(&self) -> &str {
        non_empty(&self.spy_name).unwrap_or(UNKNOWN_SPY)
    }

    /// `from` in Unix nanoseconds (at-time syntax); now when absent or empty.
    pub fn from_nanos(&self, now_nanos: i64) -> i64 {
        non_empty(&self.from).map_or(now_nanos, |s| attime::parse(s, now_nanos))
    }

    /// `until` in Unix nanoseconds (at-time syntax); now when absent or empty.
    pub fn until_nanos(&self, now_nanos: i64) -> i64 {
        non_empty(&self.until).map_or(now_nanos, |s| attime::parse(s, now_nanos))
    }
}

/// Size caps applied during conversion (the body itself was capped by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertLimits {
    /// Cap on a pprof's decompressed size (`max_profile_size_bytes`), 4 MiB by default.
    pub max_profile_size: usize,
    /// Cap on the summed contents of a form upload (Pyroscope reads forms with 32 MiB).
    pub max_form_size: usize,
}

impl Default for ConvertLimits {
    fn default() -> Self {
        Self { max_profile_size: 4 << 20, max_form_size: 32 << 20 }
    }
}

/// One profile to push.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyProfile {
    /// Series labels to push the profile with: `__name__`, `service_name` (or `app_name`),
    /// `pyroscope_spy`, `__delta__="false"`, the name's labels; sorted by name.
    pub labels: Vec<(String, String)>,
    pub profile: Profile,
    /// Size of the profile's uncompressed protobuf encoding (for rate limits); for
    /// synthesized profiles, the body size.
    pub uncompressed_size: usize,
}

/// What the distributor stores of a converted upload (`/ingest` profiles carry no profile id).
impl From<LegacyProfile> for crate::distributor::ProfileInput {
    fn from(p: LegacyProfile) -> Self {
        Self { labels: p.labels, profile: p.profile, uncompressed_size: p.uncompressed_size, profile_id: None }
    }
}

/// Which converter a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Trie,
    Tree,
    Lines,
    Jfr,
    Pprof,
    Speedscope,
    /// pprof inside a `multipart/form-data` body.
    MultipartPprof,
    /// Folded text ("groups"): `format=folded`, `collapsed`, none or anything unknown.
    Folded,
}

/// The media type of a Content-Type, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

impl Format {
    /// Picks the converter from `format` and the Content-Type, in Pyroscope's order.
    pub fn detect(format: Option<&str>, content_type: Option<&str>) -> Self {
        let format = format.unwrap_or_default();
        let media = content_type.map(media_type).unwrap_or_default();
        if format == "trie" || media == "binary/octet-stream+trie" {
            Format::Trie
        } else if format == "tree" || media == "binary/octet-stream+tree" {
            Format::Tree
        } else if format == "lines" {
            Format::Lines
        } else if format == "jfr" {
            Format::Jfr
        } else if format == "pprof" {
            Format::Pprof
        } else if format == "speedscope" {
            Format::Speedscope
        } else if content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("multipart/form-data")) {
            Format::MultipartPprof
        } else {
            Format::Folded
        }
    }
}

/// The request facts every converter needs, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestMeta {
    pub from_nanos: i64,
    pub until_nanos: i64,
    pub sample_rate: u32,
    pub spy_name: String,
}

/// Converts one `/ingest` request. `body` must already be un-gzipped if the request had
/// `Content-Encoding: gzip`; `now_nanos` stands in for absent or unparseable times.
///
/// Returns no profiles (and no error) for uploads Pyroscope accepts but stores nothing of:
/// an empty body or profile, a profile without samples, and text uploads whose name carries a
/// `profile_id`.
pub fn convert(
    params: &IngestParams,
    content_type: Option<&str>,
    body: &[u8],
    now_nanos: i64,
    limits: &ConvertLimits,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    let name = labelset::parse(&params.name)?;
    let meta = RequestMeta {
        from_nanos: params.from_nanos(now_nanos),
        until_nanos: params.until_nanos(now_nanos),
        sample_rate: params.sample_rate(),
        spy_name: params.spy_name().to_string(),
    };
    match Format::detect(params.format.as_deref(), content_type) {
        Format::Trie => {
            let stacks = binary_tree::decode_trie(body)?;
            text_ingest::from_stacks(&name, &meta, stacks.iter().map(|(s, v)| (s.as_str(), *v)), body.len())
        }
        Format::Tree => {
            let stacks = binary_tree::decode_tree(body)?;
            text_ingest::from_stacks(&name, &meta, stacks.iter().map(|(s, v)| (s.as_str(), *v)), body.len())
        }
        Format::Jfr => jfr::convert(&name, &meta, content_type, body, limits),
        Format::Speedscope => speedscope::convert(&name, &meta, body),
        Format::Lines => text_ingest::convert(&name, &meta, body, TextFormat::Lines),
        Format::Folded => text_ingest::convert(&name, &meta, body, TextFormat::Folded),
        Format::Pprof => pprof_ingest::from_raw_body(&name, &meta, body, limits),
        Format::MultipartPprof => pprof_ingest::from_form(&name, &meta, content_type.unwrap_or_default(), body, limits),
    }
}
