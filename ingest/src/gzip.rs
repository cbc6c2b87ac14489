//! Decompression with a hard cap on the output size, so a small compressed body can never
//! expand into gigabytes (the zip-bomb guard every decompression on the ingest path goes through).

use std::io::Read;

use flate2::read::MultiGzDecoder;

/// The two magic bytes every gzip member starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("decompressed size exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid gzip data: {0}")]
    Invalid(#[from] std::io::Error),
}

/// Whether the bytes start with the gzip magic.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[..2] == GZIP_MAGIC
}

/// Gunzips every member of `data`, failing once the output would exceed `limit` bytes.
pub fn gunzip_capped(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit).min(64 << 20));
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let mut reader = MultiGzDecoder::new(data).take((limit as u64).saturating_add(1));
    reader.read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    Ok(out)
}

/// Gunzips when the bytes are gzip, otherwise checks the raw size against the same cap.
pub fn maybe_gunzip_capped(data: &[u8], limit: usize) -> Result<std::borrow::Cow<'_, [u8]>, DecompressError> {
    if is_gzip(data) {
        Ok(std::borrow::Cow::Owned(gunzip_capped(data, limit)?))
    } else if data.len() > limit {
        Err(DecompressError::TooLarge { limit })
    } else {
        Ok(std::borrow::Cow::Borrowed(data))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};

    use super::*;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn round_trip_and_multi_member() {
        let mut two = gz(b"hello ");
        two.extend(gz(b"world"));
        assert_eq!(gunzip_capped(&two, 100).unwrap(), b"hello world");
    }

    #[test]
    fn bomb_is_refused() {
        let big = vec![0u8; 10 << 20];
        let z = gz(&big);
        assert!(z.len() < 64 << 10, "compresses well");
        assert!(matches!(gunzip_capped(&z, 1 << 20), Err(DecompressError::TooLarge { .. })));
        assert_eq!(gunzip_capped(&z, 10 << 20).unwrap().len(), 10 << 20, "exactly at the limit is fine");
    }

    #[test]
    fn raw_passthrough_and_garbage() {
        assert_eq!(&*maybe_gunzip_capped(b"abc", 3).unwrap(), b"abc");
        assert!(maybe_gunzip_capped(b"abcd", 3).is_err());
        assert!(gunzip_capped(&[0x1f, 0x8b, 0, 0], 10).is_err());
    }
}
