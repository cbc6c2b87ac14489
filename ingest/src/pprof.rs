//! pprof decoding: gzip sniffing, the size cap, and protobuf decoding into `google.v1.Profile`.

use flamedb_proto::google::v1::Profile;
use prost::Message;

use crate::gzip::{DecompressError, maybe_gunzip_capped};

#[derive(Debug, thiserror::Error)]
pub enum PprofDecodeError {
    #[error("uncompressed profile payload size exceeds limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("failed to decompress profile: {0}")]
    Gzip(std::io::Error),
    #[error("failed to parse pprof profile: {0}")]
    Proto(#[from] prost::DecodeError),
}

impl From<DecompressError> for PprofDecodeError {
    fn from(e: DecompressError) -> Self {
        match e {
            DecompressError::TooLarge { limit } => PprofDecodeError::TooLarge { limit },
            DecompressError::Invalid(io) => PprofDecodeError::Gzip(io),
        }
    }
}

/// A decoded profile with the size of its uncompressed encoding (what limits are measured on).
#[derive(Debug, Clone)]
pub struct DecodedProfile {
    pub profile: Profile,
    pub uncompressed_size: usize,
}

/// Decodes a pprof that is gzip-compressed or raw (told apart by the gzip magic, never by a
/// name or header), refusing anything whose uncompressed size exceeds `max_size`.
pub fn decode(data: &[u8], max_size: usize) -> Result<DecodedProfile, PprofDecodeError> {
    let raw = maybe_gunzip_capped(data, max_size)?;
    let profile = Profile::decode(&*raw)?;
    Ok(DecodedProfile { uncompressed_size: raw.len(), profile })
}
