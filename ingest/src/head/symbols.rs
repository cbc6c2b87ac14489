//! Symbols of one partition (one service): strings, functions, mappings and locations, each stored
//! once, and the stack-trace prefix tree. A stack trace is the id of its leaf node in that tree, so
//! samples carry one `u32` instead of a list of frames, and resolving a stack is a walk up the tree.

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use parking_lot::RwLock;

/// Strings stored once, addressed by a dense id. Id 0 is always the empty string.
#[derive(Debug, Default)]
pub struct StringTable {
    strings: Vec<Box<str>>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl StringTable {
    pub fn new() -> Self {
        let mut t = Self::default();
        t.intern("");
        t
    }

    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s);
        let strings = &self.strings;
        if let Some(&id) = self.index.find(hash, |&id| &*strings[id as usize] == s) {
            return id;
        }
        self.push(s.into(), hash)
    }

    /// Appends `s` (known to be absent) under the next id.
    fn push(&mut self, s: Box<str>, hash: u64) -> u32 {
        let id = self.strings.len() as u32;
        self.strings.push(s);
        let hasher = &self.hasher;
        let strings = &self.strings;
        self.index.insert_unique(hash, id, |&id| hasher.hash_one(&*strings[id as usize]));
        id
    }

    pub fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }

    /// A table read back from storage, ids in the given order (the index is rebuilt so the
    /// table stays usable for interning).
    pub fn from_strings(strings: impl IntoIterator<Item = Box<str>>) -> Self {
        let mut t = Self::default();
        for s in strings {
            let hash = t.hasher.hash_one(&*s);
            t.push(s, hash);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }

    /// Bytes held by the string contents (for stats).
    pub fn content_bytes(&self) -> usize {
        self.strings.iter().map(|s| s.len()).sum()
    }
}

/// A function as pprof defines it, with string ids of this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Function {
    pub name: u32,
    pub system_name: u32,
    pub filename: u32,
    pub start_line: i64,
}

/// A binary mapping as pprof defines it, with string ids of this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    pub memory_start: u64,
    pub memory_limit: u64,
    pub file_offset: u64,
    pub filename: u32,
    pub build_id: u32,
    pub has_functions: bool,
}

/// One line of a location: a function (id in this partition) and a source line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Line {
    pub function: u32,
    pub line: i64,
}

/// A location: an address in a mapping and the (possibly inlined) functions at it, callee first as
/// pprof orders them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// Mapping id in this partition; 0 when the location has none.
    pub mapping: u32,
    pub address: u64,
    pub lines: smallvec::SmallVec<[Line; 1]>,
}

/// The prefix tree of every stack trace of a partition. Node 0 is the root; every other node is a
/// (parent, location) edge, and parents are created before their children, so `parent[i] < i`.
#[derive(Debug)]
pub struct StackTree {
    parent: Vec<u32>,
    location: Vec<u32>,
    edges: HashMap<u64, u32>,
}

impl Default for StackTree {
    fn default() -> Self {
        Self { parent: vec![0], location: vec![0], edges: HashMap::new() }
    }
}

impl StackTree {
    /// Inserts a stack given root first (location ids of this partition) and returns its id (the
    /// leaf node). An empty stack is the root, id 0.
    pub fn insert(&mut self, root_first: impl IntoIterator<Item = u32>) -> u32 {
        let mut node = 0u32;
        for loc in root_first {
            let key = (u64::from(node) << 32) | u64::from(loc);
            let next = self.parent.len() as u32;
            node = *self.edges.entry(key).or_insert_with(|| next);
            if node == next {
                self.parent.push(key_parent(key));
                self.location.push(loc);
            }
        }
        node
    }

    /// A read-only tree read back from storage: node `i` has `parent[i]` and `location[i]`, node
    /// 0 is the root. It has no edge index, so it must not be inserted into.
    pub fn from_parts(parent: Vec<u32>, location: Vec<u32>) -> Self {
        Self { parent, location, edges: HashMap::new() }
    }

    /// Parent of every node, indexed by node id (the root's parent is itself).
    pub fn parents(&self) -> &[u32] {
        &self.parent
    }

    /// Location of every node, indexed by node id (the root's is 0).
    pub fn locations(&self) -> &[u32] {
        &self.location
    }

    /// Nodes, the root included.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.len() <= 1
    }

    /// Location ids of a stack, leaf first.
    pub fn stack(&self, mut id: u32, out: &mut Vec<u32>) {
        out.clear();
        while id != 0 && (id as usize) < self.parent.len() {
            out.push(self.location[id as usize]);
            id = self.parent[id as usize];
        }
    }
}

fn key_parent(key: u64) -> u32 {
    (key >> 32) as u32
}

/// Everything a partition stores; guarded by the partition's lock.
#[derive(Debug)]
pub struct Symbols {
    pub strings: StringTable,
    pub functions: Vec<Function>,
    pub mappings: Vec<Mapping>,
    pub locations: Vec<Location>,
    pub tree: StackTree,
    function_index: HashMap<Function, u32>,
    mapping_index: HashMap<Mapping, u32>,
    location_index: HashMap<Location, u32>,
}

impl Default for Symbols {
    fn default() -> Self {
        // Id 0 of functions, mappings and locations is a placeholder so that 0 can mean "none".
        let none_fn = Function { name: 0, system_name: 0, filename: 0, start_line: 0 };
        let none_map = Mapping {
            memory_start: 0,
            memory_limit: 0,
            file_offset: 0,
            filename: 0,
            build_id: 0,
            has_functions: false,
        };
        Self {
            strings: StringTable::new(),
            functions: vec![none_fn],
            mappings: vec![none_map],
            locations: vec![Location { mapping: 0, address: 0, lines: Default::default() }],
            tree: StackTree::default(),
            function_index: HashMap::new(),
            mapping_index: HashMap::new(),
            location_index: HashMap::new(),
        }
    }
}

/// One frame of a location as flame graphs, SQL stacks and call-site selectors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The function of one of the location's lines: its name's string id.
    Function(u32),
    /// A location without lines (unsymbolized), or an unknown location id (address 0): named
    /// `0x<address>`.
    Address(u64),
}

impl Frame {
    /// The frame's name: the function name, or `0x<address>` in lowercase hex.
    pub fn name(self, symbols: &Symbols) -> std::borrow::Cow<'_, str> {
        match self {
            Frame::Function(id) => symbols.strings.get(id).into(),
            Frame::Address(a) => format!("0x{a:x}").into(),
        }
    }
}

/// The frames of one location, caller first (see [`Symbols::frames`]).
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    symbols: &'a Symbols,
    /// The location's lines still to yield, callee first as pprof orders them.
    lines: std::slice::Iter<'a, Line>,
    address: Option<u64>,
}

impl Frames<'_> {
    fn function(&self, line: &Line) -> Frame {
        Frame::Function(self.symbols.functions.get(line.function as usize).map_or(0, |f| f.name))
    }
}

impl Iterator for Frames<'_> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if let Some(a) = self.address.take() {
            return Some(Frame::Address(a));
        }
        let line = self.lines.next_back()?;
        Some(self.function(line))
    }
}

impl DoubleEndedIterator for Frames<'_> {
    fn next_back(&mut self) -> Option<Frame> {
        if let Some(a) = self.address.take() {
            return Some(Frame::Address(a));
        }
        let line = self.lines.next()?;
        Some(self.function(line))
    }
}

impl Symbols {
    /// The frames of location `loc`, caller first: one per line (inlined functions expand into
    /// several frames, the outermost first), or the address alone for a location without lines
    /// or an id outside the table. The one rule every reader of stacks shares.
    pub fn frames(&self, loc: u32) -> Frames<'_> {
        match self.locations.get(loc as usize) {
            Some(l) if !l.lines.is_empty() => Frames { symbols: self, lines: l.lines.iter(), address: None },
            other => Frames { symbols: self, lines: [].iter(), address: Some(other.map_or(0, |l| l.address)) },
        }
    }
}

impl Symbols {
    /// Read-only symbols read back from a block: their dedup indexes are left empty because
    /// nothing is added to a block's symbols.
    pub fn from_parts(
        strings: StringTable,
        functions: Vec<Function>,
        mappings: Vec<Mapping>,
        locations: Vec<Location>,
        tree: StackTree,
    ) -> Self {
        Self {
            strings,
            functions,
            mappings,
            locations,
            tree,
            function_index: HashMap::new(),
            mapping_index: HashMap::new(),
            location_index: HashMap::new(),
        }
    }

    pub fn add_function(&mut self, f: Function) -> u32 {
        dedup(&mut self.functions, &mut self.function_index, f)
    }

    pub fn add_mapping(&mut self, m: Mapping) -> u32 {
        dedup(&mut self.mappings, &mut self.mapping_index, m)
    }

    pub fn add_location(&mut self, l: Location) -> u32 {
        if let Some(&id) = self.location_index.get(&l) {
            return id;
        }
        let id = self.locations.len() as u32;
        self.locations.push(l.clone());
        self.location_index.insert(l, id);
        id
    }

    /// The name of a location's frames, root-most (caller) first: the order a flame graph shows.
    pub fn frame_names<'a>(&'a self, location: u32) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
        let lines = self.locations.get(location as usize).map(|l| l.lines.as_slice()).unwrap_or(&[]);
        lines.iter().rev().map(|line| {
            let f = self.functions.get(line.function as usize);
            self.strings.get(f.map_or(0, |f| f.name))
        })
    }

    /// Approximate bytes held (for the memory metric and stats).
    pub fn approx_bytes(&self) -> usize {
        self.strings.content_bytes()
            + self.strings.len() * 24
            + self.functions.len() * std::mem::size_of::<Function>() * 2
            + self.mappings.len() * std::mem::size_of::<Mapping>() * 2
            + self.locations.len() * std::mem::size_of::<Location>() * 2
            + self.tree.len() * 24
    }
}

fn dedup<T: Copy + Eq + Hash>(store: &mut Vec<T>, index: &mut HashMap<T, u32>, v: T) -> u32 {
    *index.entry(v).or_insert_with(|| {
        store.push(v);
        (store.len() - 1) as u32
    })
}

/// The symbols of one service in one tenant's head. `key` is unique in the process, so a sample
/// row's `(partition, stacktrace_id)` names its stack wherever the row travels inside this process.
#[derive(Debug)]
pub struct SymbolPartition {
    pub key: u64,
    /// The tenant whose profiles the symbols came from: keys are process-wide, so a reader bound
    /// to one tenant checks this before resolving a key it was handed (SQL lets users pass any).
    pub tenant: String,
    pub name: String,
    pub symbols: RwLock<Symbols>,
}

impl SymbolPartition {
    pub fn new(key: u64, tenant: String, name: String, symbols: Symbols) -> Self {
        Self { key, tenant, name, symbols: RwLock::new(symbols) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_caller_first_or_the_address() {
        let mut s = Symbols::default();
        let (outer, inner) = (s.strings.intern("outer"), s.strings.intern("inner"));
        let fo = s.add_function(Function { name: outer, system_name: outer, filename: 0, start_line: 0 });
        let fi = s.add_function(Function { name: inner, system_name: inner, filename: 0, start_line: 0 });
        // pprof orders a location's lines callee first.
        let lines = smallvec::smallvec![Line { function: fi, line: 2 }, Line { function: fo, line: 1 }];
        let inlined = s.add_location(Location { mapping: 0, address: 0x10, lines });
        let bare = s.add_location(Location { mapping: 0, address: 0xbeef, lines: Default::default() });
        let names = |it: &mut dyn Iterator<Item = Frame>| it.map(|f| f.name(&s).into_owned()).collect::<Vec<_>>();
        assert_eq!(names(&mut s.frames(inlined)), ["outer", "inner"]);
        assert_eq!(names(&mut s.frames(inlined).rev()), ["inner", "outer"]);
        assert_eq!(names(&mut s.frames(bare)), ["0xbeef"]);
        assert_eq!(s.frames(bare).next_back(), Some(Frame::Address(0xbeef)));
        assert_eq!(names(&mut s.frames(999)), ["0x0"]);
    }

    #[test]
    fn strings_dedup() {
        let mut t = StringTable::new();
        assert_eq!(t.intern(""), 0);
        let a = t.intern("a");
        let b = t.intern("b");
        assert_ne!(a, b);
        assert_eq!(t.intern("a"), a);
        assert_eq!(t.get(b), "b");
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn stack_tree_shares_prefixes() {
        let mut t = StackTree::default();
        let s1 = t.insert([1, 2, 3]);
        let s2 = t.insert([1, 2, 4]);
        let s3 = t.insert([1, 2, 3]);
        assert_eq!(s1, s3);
        assert_ne!(s1, s2);
        assert_eq!(t.len(), 1 + 4, "root + 1,2 shared + 3 + 4");
        let mut out = Vec::new();
        t.stack(s2, &mut out);
        assert_eq!(out, vec![4, 2, 1]);
        assert!(t.parents().iter().enumerate().skip(1).all(|(i, &p)| (p as usize) < i));
        assert_eq!(t.insert([]), 0);
    }

    #[test]
    fn functions_and_locations_dedup() {
        let mut s = Symbols::default();
        let name = s.strings.intern("main");
        let f = Function { name, system_name: name, filename: 0, start_line: 0 };
        let f1 = s.add_function(f);
        assert_eq!(s.add_function(f), f1);
        let loc = Location { mapping: 0, address: 10, lines: smallvec::smallvec![Line { function: f1, line: 3 }] };
        let l1 = s.add_location(loc.clone());
        assert_eq!(s.add_location(loc), l1);
        assert_eq!(s.frame_names(l1).collect::<Vec<_>>(), vec!["main"]);
    }
}
