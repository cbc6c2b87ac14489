//! Hash of a packed `(parent, name)` edge key.
//!
//! `FunctionTree::child` is the hottest call of a flame-graph query, so the edge index uses a
//! fixed, branch-free hash instead of a general-purpose hasher. A folded 64x64->128 multiply
//! spreads every input bit over both the low bits (which pick the bucket) and the top bits
//! (hashbrown's control tag); a plain multiply would leave the low bits depending only on the
//! name id, so siblings of different parents would pile into the same buckets.

/// Odd constant with well-mixed bits (from the golden ratio).
const MUL: u64 = 0x9E37_79B9_7F4A_7C15;
/// Fixed seed so a key never hashes to zero-ish values for small ids.
const SEED: u64 = 0x2D35_8DCC_AA6C_78A5;

/// Packs an edge into the key stored per node: parent in the high half, name in the low half.
#[inline(always)]
pub(crate) fn pack(parent: u32, name: u32) -> u64 {
    (u64::from(parent) << 32) | u64::from(name)
}

/// Parent half of a packed key.
#[inline(always)]
pub(crate) fn parent_of(key: u64) -> u32 {
    (key >> 32) as u32
}

/// Name half of a packed key.
#[inline(always)]
pub(crate) fn name_of(key: u64) -> u32 {
    key as u32
}

/// Hash of a packed key for the edge index.
#[inline(always)]
pub(crate) fn hash_key(key: u64) -> u64 {
    let full = u128::from(key ^ SEED) * u128::from(MUL);
    (full as u64) ^ ((full >> 64) as u64)
}
