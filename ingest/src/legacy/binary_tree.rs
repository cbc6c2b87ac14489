//! The binary uploads of the OG Pyroscope agents: `format=tree` and `format=trie` (contract §3.3).
//!
//! Both are a pre-order walk where each node is `uvarint(len(name))`, the name bytes,
//! `uvarint(value)` and `uvarint(child_count)` (unsigned LEB128 varints, Go's `PutUvarint`), and
//! both decode into `(stack, value)` pairs for the stack path of `/ingest`:
//!
//! * **tree**: the first node is a virtual root (its name and value are ignored); a stack is the
//!   `;`-joined names from below the root to a node, its value the node's self value. Bytes after
//!   the root's subtree are ignored, as Pyroscope's decoder stops there too.
//! * **trie**: names are key *fragments*; a node's key is the concatenation of the fragments from
//!   the root (whose own fragment is normally empty) down to it, and a non-zero value is a sample
//!   for that key (itself a `;`-joined stack). Like Pyroscope's `IterateRaw`, the root takes
//!   children until the body ends rather than trusting its own child count.
//!
//! Every length is checked against the body, varints longer than 64 bits are errors, nesting and
//! node counts are capped, and the emitted stacks are charged to a [`StackBudget`].

use std::collections::HashMap;

use super::text_ingest::{StackBudget, StackBudgetExceeded};

/// Deepest nesting of nodes below the root.
pub const MAX_DEPTH: usize = 8192;
/// Most nodes in one upload.
pub const MAX_NODES: usize = 16 << 20;

/// Why a tree or trie body was refused (HTTP 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryTreeError {
    #[error("{format} body ends inside a node at byte {offset}")]
    Truncated { format: &'static str, offset: usize },
    #[error("{format} body: varint at byte {offset} overflows 64 bits")]
    VarintOverflow { format: &'static str, offset: usize },
    #[error("{format} body: nodes nest deeper than {MAX_DEPTH}")]
    TooDeep { format: &'static str },
    #[error("{format} body: more than {MAX_NODES} nodes")]
    TooManyNodes { format: &'static str },
    /// Frame names become pprof strings, which must be UTF-8.
    #[error("{format} body: stack at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { format: &'static str, offset: usize },
    #[error(transparent)]
    Budget(#[from] StackBudgetExceeded),
}

const TREE: &str = "tree";
const TRIE: &str = "trie";

/// A cursor over the body with checked reads.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    format: &'static str,
}

impl<'a> Reader<'a> {
    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn truncated(&self) -> BinaryTreeError {
        BinaryTreeError::Truncated { format: self.format, offset: self.pos }
    }

    /// An unsigned LEB128 varint of at most 64 bits (Go's `binary.ReadUvarint` rules: at most
    /// ten bytes, the tenth no larger than 1).
    fn uvarint(&mut self) -> Result<u64, BinaryTreeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let &b = self.buf.get(self.pos).ok_or_else(|| self.truncated())?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(BinaryTreeError::VarintOverflow { format: self.format, offset: start });
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BinaryTreeError::VarintOverflow { format: self.format, offset: start })
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], BinaryTreeError> {
        let end = usize::try_from(len).ok().and_then(|l| self.pos.checked_add(l)).ok_or_else(|| self.truncated())?;
        let out = self.buf.get(self.pos..end).ok_or_else(|| self.truncated())?;
        self.pos = end;
        Ok(out)
    }

    /// One node: (name, value, child count).
    fn node(&mut self) -> Result<(&'a [u8], u64, u64), BinaryTreeError> {
        let len = self.uvarint()?;
        let name = self.bytes(len)?;
        let value = self.uvarint()?;
        let children = self.uvarint()?;
        Ok((name, value, children))
    }
}

/// Collects the decoded samples, merging repeated stacks, within the budget.
struct Samples {
    values: HashMap<String, u64>,
    budget: StackBudget,
    format: &'static str,
}

impl Samples {
    fn new(format: &'static str) -> Self {
        Self { values: HashMap::new(), budget: StackBudget::default(), format }
    }

    fn add(&mut self, stack: &[u8], value: u64, offset: usize) -> Result<(), BinaryTreeError> {
        let stack =
            std::str::from_utf8(stack).map_err(|_| BinaryTreeError::InvalidUtf8 { format: self.format, offset })?;
        if let Some(v) = self.values.get_mut(stack) {
            *v = v.saturating_add(value);
            return Ok(());
        }
        let frames = stack.bytes().filter(|&b| b == b';').count() + 1;
        self.budget.charge(stack.len(), frames)?;
        self.values.insert(stack.to_string(), value);
        Ok(())
    }

    /// The pairs sorted by stack, so that the synthesized pprof does not depend on hashing.
    fn into_sorted(self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self.values.into_iter().collect();
        out.sort_unstable();
        out
    }
}

/// Decodes a `format=tree` body into `(stack, self)` pairs, frames root first, sorted by stack
/// (repeated stacks merged). An empty body has no samples.
pub fn decode_tree(body: &[u8]) -> Result<Vec<(String, u64)>, BinaryTreeError> {
    let mut r = Reader { buf: body, pos: 0, format: TREE };
    let mut samples = Samples::new(TREE);
    if r.at_end() {
        return Ok(Vec::new());
    }
    let (_root_name, _root_self, root_children) = r.node()?;
    let mut nodes = 1usize;
    // Children still to read for each open node (the root first), and where each open node's
    // name starts in `key`.
    let mut pending: Vec<u64> = vec![root_children];
    let mut starts: Vec<usize> = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    while let Some(top) = pending.last_mut() {
        if *top == 0 {
            pending.pop();
            if let Some(start) = starts.pop() {
                key.truncate(start);
            }
            continue;
        }
        *top -= 1;
        let offset = r.pos;
        let (name, value, children) = r.node()?;
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(BinaryTreeError::TooManyNodes { format: TREE });
        }
        // Truncating to `start` later removes the separator along with the name.
        let start = key.len();
        if !starts.is_empty() {
            key.push(b';'); // before every frame but the root's children
        }
        key.extend_from_slice(name);
        if value > 0 {
            samples.add(&key, value, offset)?;
        }
        if children > 0 {
            if starts.len() >= MAX_DEPTH {
                return Err(BinaryTreeError::TooDeep { format: TREE });
            }
            pending.push(children);
            starts.push(start);
        } else {
            key.truncate(start);
        }
    }
    Ok(samples.into_sorted())
}

/// Decodes a `format=trie` body into `(key, value)` pairs sorted by key (repeated keys merged).
/// An empty body has no samples.
pub fn decode_trie(body: &[u8]) -> Result<Vec<(String, u64)>, BinaryTreeError> {
    let mut r = Reader { buf: body, pos: 0, format: TRIE };
    let mut samples = Samples::new(TRIE);
    if r.at_end() {
        return Ok(Vec::new());
    }
    let offset = r.pos;
    let (root_name, root_value, _root_children) = r.node()?;
    let mut key: Vec<u8> = root_name.to_vec();
    if root_value > 0 && !key.is_empty() {
        samples.add(&key, root_value, offset)?;
    }
    let mut nodes = 1usize;
    // Children still to read for each open node below the root, and where its fragment starts.
    let mut pending: Vec<(u64, usize)> = Vec::new();
    loop {
        match pending.last_mut() {
            Some((0, start)) => {
                key.truncate(*start);
                pending.pop();
                continue;
            }
            Some((left, _)) => *left -= 1,
            // The root reads children until the body ends.
            None if r.at_end() => break,
            None => {}
        }
        let offset = r.pos;
        let (fragment, value, children) = r.node()?;
        nodes += 1;
        if nodes > MAX_NODES {
            return Err(BinaryTreeError::TooManyNodes { format: TRIE });
        }
        let start = key.len();
        key.extend_from_slice(fragment);
        if value > 0 {
            samples.add(&key, value, offset)?;
        }
        if children > 0 {
            if pending.len() >= MAX_DEPTH {
                return Err(BinaryTreeError::TooDeep { format: TRIE });
            }
            pending.push((children, start));
        } else {
            key.truncate(start);
        }
    }
    Ok(samples.into_sorted())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LEB128, written here independently of the decoder.
    fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_node(out: &mut Vec<u8>, name: &str, value: u64, children: u64) {
        put_uvarint(out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        put_uvarint(out, value);
        put_uvarint(out, children);
    }

    /// A call tree built from `(stack, self)` pairs, for the test encoders.
    #[derive(Default)]
    struct Node {
        value: u64,
        children: std::collections::BTreeMap<String, Node>,
    }

    fn call_tree(stacks: &[(&str, u64)]) -> Node {
        let mut root = Node::default();
        for (stack, v) in stacks {
            let mut n = &mut root;
            for f in stack.split(';') {
                n = n.children.entry(f.to_string()).or_default();
            }
            n.value += v;
        }
        root
    }

    fn encode_tree(stacks: &[(&str, u64)]) -> Vec<u8> {
        fn walk(out: &mut Vec<u8>, name: &str, n: &Node) {
            put_node(out, name, n.value, n.children.len() as u64);
            for (k, c) in &n.children {
                walk(out, k, c);
            }
        }
        let mut out = Vec::new();
        walk(&mut out, "", &call_tree(stacks));
        out
    }

    /// A trie keyed by raw bytes of the full keys, with path compression at common prefixes,
    /// like the OG agents' transport trie.
    #[derive(Default)]
    struct TrieNode {
        value: u64,
        children: Vec<(String, TrieNode)>,
    }

    fn trie_insert(n: &mut TrieNode, key: &str, v: u64) {
        if key.is_empty() {
            n.value += v;
            return;
        }
        for (label, child) in n.children.iter_mut() {
            let common = label.bytes().zip(key.bytes()).take_while(|(a, b)| a == b).count();
            if common == 0 {
                continue;
            }
            if common < label.len() {
                // Split the edge.
                let rest = label.split_off(common);
                let old = std::mem::take(child);
                child.children.push((rest, old));
            }
            trie_insert(child, &key[common..], v);
            return;
        }
        n.children.push((key.to_string(), TrieNode { value: v, children: Vec::new() }));
    }

    fn encode_trie(keys: &[(&str, u64)]) -> Vec<u8> {
        fn walk(out: &mut Vec<u8>, name: &str, n: &TrieNode) {
            put_node(out, name, n.value, n.children.len() as u64);
            for (k, c) in &n.children {
                walk(out, k, c);
            }
        }
        let mut root = TrieNode::default();
        for (k, v) in keys {
            trie_insert(&mut root, k, *v);
        }
        let mut out = Vec::new();
        walk(&mut out, "", &root);
        out
    }

    fn sorted(mut v: Vec<(String, u64)>) -> Vec<(String, u64)> {
        v.sort();
        v
    }

    fn owned(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        sorted(v.iter().map(|(s, n)| (s.to_string(), *n)).collect())
    }

    #[test]
    fn tree_round_trip() {
        let stacks = [("main;a;x", 50), ("main;a", 7), ("main;a;y", 25), ("main;b", 15), ("other;z", 4), ("solo", 1)];
        let body = encode_tree(&stacks);
        assert_eq!(sorted(decode_tree(&body).unwrap()), owned(&stacks));
    }

    #[test]
    fn tree_hand_written_bytes() {
        // root(children 2) -> "ab"(self 3, 1 child) -> "c"(self 300); "d"(self 0)
        let body = [0, 0, 2, 2, b'a', b'b', 3, 1, 1, b'c', 0xac, 0x02, 0, 1, b'd', 0, 0];
        assert_eq!(decode_tree(&body).unwrap(), vec![("ab".to_string(), 3), ("ab;c".to_string(), 300)]);
        // Bytes after the root's subtree are ignored.
        let mut longer = body.to_vec();
        longer.extend_from_slice(&[9, 9, 9]);
        assert_eq!(decode_tree(&longer).unwrap().len(), 2);
        assert!(decode_tree(&[]).unwrap().is_empty());
    }

    #[test]
    fn tree_duplicate_siblings_merge() {
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 2);
        put_node(&mut body, "a", 2, 0);
        put_node(&mut body, "a", 3, 0);
        assert_eq!(decode_tree(&body).unwrap(), vec![("a".to_string(), 5)]);
    }

    #[test]
    fn trie_round_trip_with_fragments() {
        let keys = [
            ("main;foo;bar", 3),
            ("main;foo;baz", 4),
            ("main;foo", 2),
            ("main;fob", 1),
            ("other;x", 9),
            ("main;foo;bar;qux", 6),
        ];
        let body = encode_trie(&keys);
        // The encoder really fragmented names: "main;fo" is shared by three keys.
        assert!(body.windows(7).any(|w| w == b"main;fo"));
        assert!(!body.windows(8).any(|w| w == b"main;foo"));
        assert_eq!(sorted(decode_trie(&body).unwrap()), owned(&keys));
    }

    #[test]
    fn trie_hand_written_bytes() {
        // root "" -> "a;" (0, 2 children) -> "b" (5), "c" (6, 1 child) -> ";d" (7)
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 1);
        put_node(&mut body, "a;", 0, 2);
        put_node(&mut body, "b", 5, 0);
        put_node(&mut body, "c", 6, 1);
        put_node(&mut body, ";d", 7, 0);
        let want = owned(&[("a;b", 5), ("a;c", 6), ("a;c;d", 7)]);
        assert_eq!(sorted(decode_trie(&body).unwrap()), want);
        // The root keeps taking children after its count, as IterateRaw does.
        put_node(&mut body, "z", 1, 0);
        assert_eq!(decode_trie(&body).unwrap().len(), 4);
        assert!(decode_trie(&[]).unwrap().is_empty());
    }

    #[test]
    fn truncated_bodies_are_errors() {
        let tree = encode_tree(&[("a;b", 3), ("a;c", 4)]);
        let trie = encode_trie(&[("a;b", 3), ("a;c", 4)]);
        for cut in 1..tree.len() {
            let e = decode_tree(&tree[..cut]).unwrap_err();
            assert!(matches!(e, BinaryTreeError::Truncated { format: "tree", .. }), "cut {cut}: {e}");
        }
        // A trie cut between two nodes of the root's level is a complete (smaller) trie; every
        // other cut must fail.
        for cut in 1..trie.len() {
            match decode_trie(&trie[..cut]) {
                Ok(v) => assert!(v.len() < 2, "cut {cut}"),
                Err(e) => assert!(matches!(e, BinaryTreeError::Truncated { format: "trie", .. }), "cut {cut}: {e}"),
            }
        }
        // A name longer than the body.
        let e = decode_tree(&[0, 0, 1, 0x80, 0x80, 0x04, b'a']).unwrap_err();
        assert!(matches!(e, BinaryTreeError::Truncated { offset: 6, .. }), "{e}");
        // A name length of 2^63 must not overflow the cursor.
        let mut body = vec![0, 0, 1];
        put_uvarint(&mut body, 1 << 63);
        assert!(matches!(decode_tree(&body).unwrap_err(), BinaryTreeError::Truncated { .. }));
        // Huge child counts fail at the end of the body, without allocating for them.
        let mut body = Vec::new();
        put_node(&mut body, "", 0, u64::MAX);
        put_node(&mut body, "a", 1, 0);
        assert!(matches!(decode_tree(&body).unwrap_err(), BinaryTreeError::Truncated { .. }));
    }

    #[test]
    fn overflowing_varints_are_errors() {
        // Eleven continuation bytes, and a tenth byte above 1.
        let e = decode_tree(&[0xff; 11]).unwrap_err();
        assert_eq!(e, BinaryTreeError::VarintOverflow { format: "tree", offset: 0 });
        let mut body = vec![0xff; 9];
        body.push(0x02);
        assert!(matches!(decode_trie(&body).unwrap_err(), BinaryTreeError::VarintOverflow { .. }));
        // u64::MAX itself is fine.
        let mut body = vec![0, 0, 1, 1, b'a'];
        put_uvarint(&mut body, u64::MAX);
        body.push(0);
        assert_eq!(decode_tree(&body).unwrap(), vec![("a".to_string(), u64::MAX)]);
    }

    #[test]
    fn depth_is_capped() {
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 1);
        for _ in 0..=MAX_DEPTH {
            put_node(&mut body, "f", 0, 1);
        }
        put_node(&mut body, "leaf", 1, 0);
        assert_eq!(decode_tree(&body).unwrap_err(), BinaryTreeError::TooDeep { format: "tree" });
        assert_eq!(decode_trie(&body).unwrap_err(), BinaryTreeError::TooDeep { format: "trie" });
    }

    /// A chain of `depth` nodes named `name`, each with a value.
    fn chain(depth: usize, name: &str) -> Vec<u8> {
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 1);
        for _ in 0..depth {
            put_node(&mut body, name, 1, 1);
        }
        put_node(&mut body, "leaf", 1, 0);
        body
    }

    #[test]
    fn expansion_is_capped() {
        // 8 MiB of 8 KiB names in a chain would be 4 GiB of stacks.
        let body = chain(1024, &"x".repeat(8192));
        assert!(matches!(decode_tree(&body).unwrap_err(), BinaryTreeError::Budget(_)));
        // 40 KB of one-letter frames nested 8000 deep would be 32 million frames.
        let body = chain(8000, "x");
        assert!(body.len() < 40_000);
        assert!(matches!(decode_tree(&body).unwrap_err(), BinaryTreeError::Budget(_)));
        let trie = chain(8000, ";x");
        assert!(matches!(decode_trie(&trie).unwrap_err(), BinaryTreeError::Budget(_)));
        // A modest chain is fine.
        assert_eq!(decode_tree(&chain(100, "x")).unwrap().len(), 101);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 1);
        put_uvarint(&mut body, 2);
        body.extend_from_slice(&[0xc3, 0x28]);
        body.extend_from_slice(&[1, 0]);
        assert!(matches!(decode_tree(&body).unwrap_err(), BinaryTreeError::InvalidUtf8 { .. }));
        // A multi-byte character split across trie fragments is fine.
        let mut body = Vec::new();
        put_node(&mut body, "", 0, 1);
        put_uvarint(&mut body, 1);
        body.push(0xc3);
        body.extend_from_slice(&[0, 1]);
        put_uvarint(&mut body, 1);
        body.push(0xa9);
        body.extend_from_slice(&[4, 0]);
        assert_eq!(decode_trie(&body).unwrap(), vec![("é".to_string(), 4)]);
    }
}
