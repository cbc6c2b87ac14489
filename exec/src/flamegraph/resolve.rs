//! Stack-trace ids -> function-name tree. This is where stack traces stop being ids: the values
//! summed per id are pushed through the partition's stack-trace prefix tree once, so each shared
//! prefix is resolved once no matter how many stacks share it.

use std::fmt;
use std::sync::Arc;

use flamedb_ingest::head::Head;
use flamedb_ingest::head::symbols::{Frame, SymbolPartition, Symbols};
use hashbrown::HashMap;

use crate::tree::FunctionTree;

/// Where a flame-graph aggregate finds the symbols a `(partition, stacktrace_id)` refers to: the
/// local head in this process (and the local block symbols once blocks exist).
pub trait SymbolSource: fmt::Debug + Send + Sync {
    fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>>;
}

impl SymbolSource for Head {
    fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>> {
        Head::partition(self, key)
    }
}

const UNSET: u32 = u32::MAX;
/// `frame` of a location whose lines are several inlined frames (resolved the slow way).
const INLINED: u32 = u32::MAX - 1;

/// Adds the stacks of `values` (stack-trace id -> value) into `tree`.
pub fn resolve_into(tree: &mut FunctionTree, symbols: &Symbols, values: &HashMap<u32, i64>) {
    let n = symbols.tree.len();
    // When a large share of the tree is touched, build the function tree from the needed part of
    // the stack-trace tree in sequential passes (`quotient`); otherwise walk up from each leaf
    // with a memo.
    if values.len().saturating_mul(8) >= n {
        let mut r = Resolver::new(symbols, true);
        if tree.is_empty() {
            r.quotient(tree, values);
        } else {
            let mut fresh = FunctionTree::new();
            r.quotient(&mut fresh, values);
            tree.merge(&fresh);
        }
    } else {
        let mut r = Resolver::new(symbols, false);
        r.sparse(tree, values);
    }
}

/// A needed stack-trace node, laid out next to its siblings for the quotient walk.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Tree name id of the location's first (caller-most) frame.
    name: u32,
    /// The location's frames: `frame_names[first_frame..first_frame + frames]`.
    first_frame: u32,
    frames: u32,
    /// This node's children: `entries[start..end]`.
    start: u32,
    end: u32,
    value: i64,
}

struct Resolver<'a> {
    symbols: &'a Symbols,
    /// Partition string id -> tree name id.
    names: Vec<u32>,
    /// Partition location id -> tree name id of its one frame (`INLINED` when it has several).
    frames: Vec<u32>,
    /// Partition location id -> (start, count) of its frames in `frame_names`.
    frame_ranges: Vec<(u32, u32)>,
    frame_names: Vec<u32>,
}

impl<'a> Resolver<'a> {
    /// With `memo`, string and location lookups are memoized in arrays sized to the partition
    /// (worth it when many nodes are resolved; not for one stack).
    fn new(symbols: &'a Symbols, memo: bool) -> Self {
        let (names, frames) = if memo {
            (vec![UNSET; symbols.strings.len()], vec![UNSET; symbols.locations.len()])
        } else {
            (Vec::new(), Vec::new())
        };
        let frame_ranges = if memo { vec![(UNSET, 0); symbols.locations.len()] } else { Vec::new() };
        Self { symbols, names, frames, frame_ranges, frame_names: Vec::new() }
    }

    fn name(&mut self, tree: &mut FunctionTree, string: u32) -> u32 {
        match self.names.get(string as usize) {
            Some(&n) if n != UNSET => n,
            _ => {
                let n = tree.intern(self.symbols.strings.get(string));
                if let Some(slot) = self.names.get_mut(string as usize) {
                    *slot = n;
                }
                n
            }
        }
    }

    /// Appends the frames of partition location `loc` (caller first) under `parent`.
    #[inline]
    fn descend(&mut self, tree: &mut FunctionTree, parent: u32, loc: u32) -> u32 {
        match self.frames.get(loc as usize) {
            Some(&f) if f != UNSET && f != INLINED => tree.child(parent, f),
            _ => self.descend_slow(tree, parent, loc),
        }
    }

    fn descend_slow(&mut self, tree: &mut FunctionTree, mut parent: u32, loc: u32) -> u32 {
        let s = self.symbols;
        // An unknown location adds no frame on this path (valid data has none).
        if s.locations.get(loc as usize).is_none() {
            return parent;
        }
        let (mut last, mut count) = (UNSET, 0);
        for frame in s.frames(loc) {
            last = self.frame_name(tree, frame);
            parent = tree.child(parent, last);
            count += 1;
        }
        if let Some(slot) = self.frames.get_mut(loc as usize) {
            *slot = if count == 1 { last } else { INLINED };
        }
        parent
    }

    /// The tree name id of one frame.
    fn frame_name(&mut self, tree: &mut FunctionTree, frame: Frame) -> u32 {
        match frame {
            Frame::Function(string) => self.name(tree, string),
            Frame::Address(address) => tree.intern(&format!("0x{address:x}")),
        }
    }

    /// Root-first tree name ids of the frames of partition location `loc` (memoized; a location
    /// without lines is one frame named by its address).
    fn frames(&mut self, tree: &mut FunctionTree, loc: u32) -> (u32, u32) {
        if let Some(&(start, len)) = self.frame_ranges.get(loc as usize)
            && start != UNSET
        {
            return (start, len);
        }
        let s = self.symbols;
        let start = self.frame_names.len() as u32;
        for frame in s.frames(loc) {
            let name = self.frame_name(tree, frame);
            self.frame_names.push(name);
        }
        let range = (start, self.frame_names.len() as u32 - start);
        if (loc as usize) >= self.frame_ranges.len() {
            self.frame_ranges.resize(loc as usize + 1, (UNSET, 0));
        }
        self.frame_ranges[loc as usize] = range;
        range
    }

    /// Builds the function tree of `values` into an empty `tree` without any hash lookup. The
    /// function tree is the needed part of the stack-trace tree with equally named siblings
    /// merged (a location with inlined lines being a chain of frames), so it is built depth
    /// first: a function node is the group of (entry, frame) members that reach it, and its
    /// children are its members' next frames grouped by name.
    ///
    /// Every needed stack-trace node is first laid out as an `Entry` next to its siblings, in
    /// passes whose memory accesses are sequential or independent of each other; the walk then
    /// reads one contiguous block of entries per node instead of chasing several arrays.
    fn quotient(&mut self, tree: &mut FunctionTree, values: &HashMap<u32, i64>) {
        let parents = self.symbols.tree.parents();
        let locations = self.symbols.tree.locations();
        let n = parents.len();
        let mut value = vec![0i64; n];
        let mut needed = vec![false; n];
        for (&id, &v) in values {
            if id != 0 && (id as usize) < n {
                value[id as usize] = value[id as usize].wrapping_add(v);
                needed[id as usize] = true;
            }
        }
        // `ends[p]` counts p's needed children, then holds where they start, then (after the
        // fill) where they end: p's children are `entries[ends[p - 1]..ends[p]]`.
        let mut ends = vec![0u32; n];
        let mut count = 0u32;
        for i in (1..n).rev() {
            if needed[i] {
                let p = parents[i] as usize;
                needed[p] = true;
                ends[p] += 1;
                count += 1;
            }
        }
        let mut start = 0u32;
        for e in ends.iter_mut() {
            let c = *e;
            *e = start;
            start += c;
        }
        let mut entries = vec![Entry::default(); count as usize];
        for i in 1..n {
            if needed[i] {
                let p = parents[i] as usize;
                let (first_frame, frames) = self.frames(tree, locations[i]);
                // `start` holds the node id until the ranges are known.
                entries[ends[p] as usize] = Entry {
                    name: self.frame_names[first_frame as usize],
                    first_frame,
                    frames,
                    start: i as u32,
                    end: 0,
                    value: value[i],
                };
                ends[p] += 1;
            }
        }
        drop(needed);
        drop(value);
        for e in entries.iter_mut() {
            let node = e.start as usize;
            e.start = ends[node - 1];
            e.end = ends[node];
        }
        let root_end = ends[0];
        drop(ends);
        tree.reserve_nodes(count as usize);

        // A member is (entry index, frame index), packed; the root is entry `ROOT_ENTRY`.
        const ROOT_ENTRY: u32 = u32::MAX;
        let member = |entry: u32, frame: u32| (u64::from(entry) << 32) | u64::from(frame);
        let mut arena: Vec<u64> = vec![member(ROOT_ENTRY, 0)];
        let mut stack: Vec<(u32, u32, u32)> = vec![(FunctionTree::ROOT, 0, 1)];
        // (name, member, the member's self value if this is its last frame).
        let mut next: Vec<(u32, u64, i64)> = Vec::new();
        let frame_names = &self.frame_names;
        while let Some((f, first, len)) = stack.pop() {
            next.clear();
            for k in first..first + len {
                let m = arena[k as usize];
                let (e, frame) = ((m >> 32) as u32, m as u32);
                let (a, b) = if e == ROOT_ENTRY {
                    (0, root_end)
                } else {
                    let entry = &entries[e as usize];
                    if frame + 1 < entry.frames {
                        let last = if frame + 2 == entry.frames { entry.value } else { 0 };
                        next.push((frame_names[(entry.first_frame + frame + 1) as usize], member(e, frame + 1), last));
                        continue;
                    }
                    (entry.start, entry.end)
                };
                for c in a..b {
                    let child = &entries[c as usize];
                    next.push((child.name, member(c, 0), if child.frames == 1 { child.value } else { 0 }));
                }
            }
            arena.truncate(first as usize);
            if next.len() > 1 {
                next.sort_unstable_by_key(|e| e.0);
            }
            let mut a = 0;
            while a < next.len() {
                let name = next[a].0;
                let group = arena.len() as u32;
                let mut self_value = 0i64;
                let mut b = a;
                while b < next.len() && next[b].0 == name {
                    self_value = self_value.wrapping_add(next[b].2);
                    arena.push(next[b].1);
                    b += 1;
                }
                let id = tree.push_unindexed(f, name, self_value);
                stack.push((id, group, (b - a) as u32));
                a = b;
            }
        }
    }

    #[cfg(test)]
    fn dense(&mut self, tree: &mut FunctionTree, values: &HashMap<u32, i64>) {
        let parents = self.symbols.tree.parents();
        let locations = self.symbols.tree.locations();
        let n = parents.len();
        let mut value = vec![0i64; n];
        let mut needed = vec![false; n];
        for (&id, &v) in values {
            if let Some(slot) = value.get_mut(id as usize) {
                *slot = slot.wrapping_add(v);
                needed[id as usize] = true;
            }
        }
        for i in (1..n).rev() {
            if needed[i] {
                needed[parents[i] as usize] = true;
            }
        }
        let mut node = vec![FunctionTree::ROOT; n];
        for i in 1..n {
            if needed[i] {
                let f = self.descend(tree, node[parents[i] as usize], locations[i]);
                node[i] = f;
                if value[i] != 0 {
                    tree.add_self(f, value[i]);
                }
            }
        }
    }

    fn sparse(&mut self, tree: &mut FunctionTree, values: &HashMap<u32, i64>) {
        let parents = self.symbols.tree.parents();
        let locations = self.symbols.tree.locations();
        let n = parents.len() as u32;
        let mut memo: HashMap<u32, u32> = HashMap::with_capacity(values.len() * 4);
        let mut path: Vec<u32> = Vec::new();
        for (&id, &v) in values {
            if id >= n {
                continue;
            }
            path.clear();
            let mut x = id;
            let mut f = FunctionTree::ROOT;
            while x != 0 {
                if let Some(&m) = memo.get(&x) {
                    f = m;
                    break;
                }
                path.push(x);
                x = parents[x as usize];
            }
            for &p in path.iter().rev() {
                f = self.descend(tree, f, locations[p as usize]);
                memo.insert(p, f);
            }
            tree.add_self(f, v);
        }
    }
}

/// The tree of one stack (for rows that skip partial aggregation).
pub fn resolve_one(tree: &mut FunctionTree, symbols: &Symbols, id: u32, value: i64) {
    let mut values = HashMap::with_capacity(1);
    values.insert(id, value);
    // No memo: it would cost a pass over every string and location of the partition.
    let mut r = Resolver::new(symbols, false);
    r.sparse(tree, &values);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use flamedb_ingest::head::symbols::{Function, Line, Location};

    use super::*;

    /// A partition with single-line, inlined (two-line) and address-only locations, and stacks
    /// built from a deterministic generator.
    fn partition() -> (Symbols, HashMap<u32, i64>) {
        let mut s = Symbols::default();
        let mut locs = Vec::new();
        for f in 0..20u32 {
            let name = s.strings.intern(&format!("f{}", f % 12)); // some names shared by functions
            let fid = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
            let lines = smallvec::smallvec![Line { function: fid, line: f as i64 }];
            locs.push(s.add_location(Location { mapping: 0, address: u64::from(f), lines }));
        }
        let (a, b) = (s.functions.len() as u32 - 1, s.functions.len() as u32 - 2);
        let inlined = smallvec::smallvec![Line { function: a, line: 1 }, Line { function: b, line: 2 }];
        locs.push(s.add_location(Location { mapping: 0, address: 999, lines: inlined }));
        locs.push(s.add_location(Location { mapping: 0, address: 0xbeef, lines: Default::default() }));
        let mut x = 7u64;
        let mut values = HashMap::new();
        for _ in 0..400 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let depth = 1 + (x >> 60) as usize;
            let path: Vec<u32> =
                (0..depth).map(|d| locs[((x >> ((d * 5) % 60)) % locs.len() as u64) as usize]).collect();
            let id = s.tree.insert(path);
            *values.entry(id).or_insert(0) += (x % 97) as i64 + 1;
        }
        (s, values)
    }

    fn paths(t: &FunctionTree) -> BTreeMap<String, i64> {
        let view = t.view();
        (1..=t.node_count() as u32).map(|n| (t.path(n).join(";"), view.total(n))).collect()
    }

    /// The expected tree, from each stack's locations walked leaf to root.
    fn expected(s: &Symbols, values: &HashMap<u32, i64>) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let mut locs = Vec::new();
        for (&id, &v) in values {
            s.tree.stack(id, &mut locs);
            let mut frames: Vec<String> = Vec::new();
            for &l in locs.iter().rev() {
                let loc = &s.locations[l as usize];
                if loc.lines.is_empty() {
                    frames.push(format!("0x{:x}", loc.address));
                }
                frames.extend(s.frame_names(l).map(String::from));
            }
            for d in 1..=frames.len() {
                *out.entry(frames[..d].join(";")).or_insert(0) += v;
            }
        }
        out
    }

    #[test]
    fn dense_and_sparse_paths_agree_with_the_stacks() {
        let (s, values) = partition();
        let want = expected(&s, &values);
        let mut dense = FunctionTree::new();
        Resolver::new(&s, true).dense(&mut dense, &values);
        let mut quotient = FunctionTree::new();
        Resolver::new(&s, true).quotient(&mut quotient, &values);
        assert_eq!(paths(&quotient), want);
        // The tree built without an index still answers lookups (the index is rebuilt).
        let before = quotient.node_count();
        let mut again = quotient.clone();
        again.merge(&dense);
        assert_eq!(again.node_count(), before, "same shape: merging adds no node");
        assert_eq!(again.total(), 2 * dense.total());
        let mut into_existing = dense.clone();
        resolve_into(&mut into_existing, &s, &values);
        assert_eq!(into_existing.total(), 2 * dense.total());
        let mut sparse = FunctionTree::new();
        Resolver::new(&s, false).sparse(&mut sparse, &values);
        assert_eq!(paths(&dense), want);
        assert_eq!(paths(&sparse), want);
        assert!(want.keys().any(|k| k.contains("0xbeef")), "address-only frames appear");
        let mut one = FunctionTree::new();
        let (&id, &v) = values.iter().next().unwrap();
        resolve_one(&mut one, &s, id, v);
        assert_eq!(one.total(), v);
    }
}
