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

/// Gunzips every member of `data`, failing once the output would exceed `limit` bytes. The
/// output buffer never grows past `limit + 1` bytes, so a bomb costs at most that much memory.
pub fn gunzip_capped(data: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    const CHUNK: usize = 64 << 10;
    // Read one byte past the limit to tell "exactly at the limit" from "over it".
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(cap).min(64 << 20));
    let mut reader = MultiGzDecoder::new(data).take(cap as u64);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecompressError::Invalid(e)),
        };
        let read = chunk.get(..n).unwrap_or_default();
        if out.capacity() - out.len() < n {
            // Double, but never past the cap (plain `read_to_end` may allocate twice the limit).
            let grow = out.capacity().max(n).min(cap.saturating_sub(out.len())).max(n);
            out.reserve_exact(grow);
        }
        out.extend_from_slice(read);
    }
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
    fn bomb_memory_stays_near_the_limit() {
        // 64 MiB of zeros in ~64 KiB; refused with a 1 MiB cap without ever holding 64 MiB.
        let z = gz(&vec![0u8; 64 << 20]);
        assert!(z.len() < 256 << 10);
        assert!(matches!(gunzip_capped(&z, 1 << 20), Err(DecompressError::TooLarge { limit }) if limit == 1 << 20));
        // Output at the limit is returned whole, and nothing beyond the cap was reserved.
        let out = gunzip_capped(&z, 3 << 20).err();
        assert!(out.is_some());
        let small = gz(&vec![7u8; 300_000]);
        let got = gunzip_capped(&small, 300_000).unwrap();
        assert_eq!(got.len(), 300_000);
        assert!(got.iter().all(|&b| b == 7));
        assert!(got.capacity() <= 300_001, "capacity {} beyond the cap", got.capacity());
    }

    #[test]
    fn raw_passthrough_and_garbage() {
        assert_eq!(&*maybe_gunzip_capped(b"abc", 3).unwrap(), b"abc");
        assert!(maybe_gunzip_capped(b"abcd", 3).is_err());
        assert!(gunzip_capped(&[0x1f, 0x8b, 0, 0], 10).is_err());
    }
}
