//! Unsigned LEB128 varints (Go's `binary.PutUvarint`) and zigzag, shared by the tree's own codec
//! and the Pyroscope "tree bytes" wire format.

use super::TreeDecodeError;

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads an unsigned LEB128 varint at `*pos`, advancing it.
///
/// Rejects truncated input and encodings longer than 10 bytes or overflowing 64 bits, so that
/// arbitrary bytes yield an error rather than a wrapped value.
#[inline]
pub fn read_uvarint(buf: &[u8], pos: &mut usize) -> Result<u64, TreeDecodeError> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let Some(&byte) = buf.get(*pos) else {
            return Err(TreeDecodeError::UnexpectedEof);
        };
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(TreeDecodeError::VarintOverflow);
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
        shift += 7;
        if shift > 63 {
            return Err(TreeDecodeError::VarintOverflow);
        }
    }
}

/// Reads `len` raw bytes at `*pos`, advancing it.
#[inline]
pub fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], TreeDecodeError> {
    let start = *pos;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| start.checked_add(len))
        .filter(|&end| end <= buf.len())
        .ok_or(TreeDecodeError::UnexpectedEof)?;
    *pos = end;
    Ok(&buf[start..end])
}

/// Zigzag-maps a signed value so that small magnitudes of either sign stay short.
#[inline]
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}
