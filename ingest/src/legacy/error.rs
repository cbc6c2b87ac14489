//! Errors of `/ingest` conversion, with the HTTP status Pyroscope answers for each.

use crate::pprof::PprofDecodeError;

use super::folded::FoldedError;
use super::labelset::LabelSetError;
use super::multipart::MultipartError;
use super::suffix::UnknownProfileType;

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// The `name` parameter is empty or malformed.
    #[error("name: {0}")]
    Name(#[from] LabelSetError),
    /// The app-name suffix of a text upload is not a known profile type.
    #[error(transparent)]
    UnknownProfileType(#[from] UnknownProfileType),
    /// The pprof is not gzip/protobuf, or expands beyond the profile size limit.
    #[error(transparent)]
    Pprof(#[from] PprofDecodeError),
    /// Go SDKs before v0.5 sent cumulative profiles in pairs; their diffs are not computed.
    #[error(
        "unsupported client version: the prev_profile form field is no longer supported. \
         Please update github.com/grafana/pyroscope-go to the latest version"
    )]
    PrevProfile,
    /// A form upload without its `profile` field.
    #[error("multipart form has no \"profile\" field")]
    MissingProfile,
    #[error("failed to parse the multipart form: {0}")]
    Multipart(#[from] MultipartError),
    #[error("invalid sample_type_config: {0}")]
    SampleTypeConfig(#[source] serde_json::Error),
    #[error(transparent)]
    Folded(#[from] FoldedError),
    /// Text formats must be UTF-8: frame names become pprof strings.
    #[error("profile text is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::str::Utf8Error),
    /// A `format=tree` / `format=trie` body that is malformed or expands too far.
    #[error(transparent)]
    BinaryTree(#[from] super::binary_tree::BinaryTreeError),
    /// A `format=speedscope` body that is malformed or expands too far.
    #[error(transparent)]
    Speedscope(#[from] super::speedscope::SpeedscopeError),
    /// A `format=jfr` upload that is malformed, lacks its `jfr` field or expands too far.
    #[error(transparent)]
    Jfr(#[from] super::jfr::JfrError),
}

impl LegacyError {
    /// 400 for what the client got wrong in the query (`name`, the profile-type suffix); 422
    /// for every body that could not be converted, as Pyroscope's `/ingest` answers.
    pub fn http_status(&self) -> u16 {
        match self {
            LegacyError::Name(_) | LegacyError::UnknownProfileType(_) => 400,
            _ => 422,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_messages() {
        let e = LegacyError::from(LabelSetError::ServiceNameRequired);
        assert_eq!((e.http_status(), e.to_string()), (400, "name: service name is required".into()));
        let e = LegacyError::from(UnknownProfileType("app".into()));
        assert_eq!((e.http_status(), e.to_string()), (400, "unknown profile type: app".into()));
        assert_eq!(LegacyError::PrevProfile.http_status(), 422);
        assert!(LegacyError::PrevProfile.to_string().contains("update"));
        assert_eq!(LegacyError::MissingProfile.http_status(), 422);
        assert_eq!(LegacyError::from(PprofDecodeError::TooLarge { limit: 1 }).http_status(), 422);
        assert_eq!(LegacyError::from(MultipartError::Truncated).http_status(), 422);
    }
}
