//! The tree itself: interned names, flat node arrays and the edge index.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use super::key_hash::{hash_key, name_of, pack, parent_of};

/// Link value of the root, which has neither parent nor name and is never in the edge index.
const ROOT_LINK: u64 = u64::MAX;

/// A call tree whose frames are function names, with a self value per node.
///
/// It is the state of the flame-graph aggregate, so it is built for millions of `child` calls:
/// names are interned once, and a node is two words (`parent << 32 | name` and its self value).
/// The edge index is keyed by `(parent, name)` packed into a u64 for hashing, and stores
/// `[parent, name, node]` as three u32s: comparing and rehashing never leave the slot, and a slot
/// is 12 bytes where a `HashMap<u64, u32>` pads to 16.
#[derive(Clone)]
pub struct FunctionTree {
    /// Interned function names; a name id is an index here.
    pub(super) names: Vec<String>,
    /// Name ids, hashed by their string.
    name_index: HashTable<u32>,
    name_hasher: DefaultHashBuilder,
    /// Per node: `pack(parent, name)`; index 0 is the root.
    pub(super) links: Vec<u64>,
    /// Per node: the value of samples whose stack ends exactly here.
    pub(super) selfs: Vec<i64>,
    /// Per node: its first child as `pack(child, name)`, or `NO_CHILD`. Most nodes of a call
    /// tree have one child, so most lookups end here, in a slot next to the recently touched
    /// parent, without probing the edge index.
    first: Vec<u64>,
    /// `[parent, name, node]` for every child that is not its parent's first, hashed by
    /// `pack(parent, name)`.
    edges: HashTable<Edge>,
    /// True when nodes were appended without indexing them (`push_unindexed`): the edge index
    /// is rebuilt before the next lookup.
    edges_stale: bool,
}

/// `first` of a node without children.
const NO_CHILD: u64 = u64::MAX;

impl Default for FunctionTree {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FunctionTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FunctionTree")
            .field("names", &self.names.len())
            .field("nodes", &self.node_count())
            .field("total", &self.total())
            .finish()
    }
}

impl FunctionTree {
    /// Id of the synthetic root: the parent of every top-level frame, never emitted as a frame.
    pub const ROOT: u32 = 0;

    /// Name of the synthetic node that collects the siblings cut by `max_nodes` (Pyroscope's
    /// convention, which clients render as a single "other" frame).
    pub const OTHER: &'static str = "other";

    /// An empty tree (just the root).
    pub fn new() -> Self {
        Self::with_capacity(0, 0)
    }

    /// An empty tree with room for `nodes` nodes and `names` names, so that a tree whose size is
    /// known (decoding, merging, cutting) grows without rehashing.
    pub fn with_capacity(nodes: usize, names: usize) -> Self {
        let mut links = Vec::with_capacity(nodes + 1);
        links.push(ROOT_LINK);
        let mut selfs = Vec::with_capacity(nodes + 1);
        selfs.push(0);
        let mut first = Vec::with_capacity(nodes + 1);
        first.push(NO_CHILD);
        Self {
            names: Vec::with_capacity(names),
            name_index: HashTable::with_capacity(names),
            name_hasher: DefaultHashBuilder::default(),
            links,
            selfs,
            first,
            edges: HashTable::with_capacity(nodes / 4),
            edges_stale: false,
        }
    }

    /// Id of `name`, adding it on first sight; nodes refer to names by id so that the edge index
    /// compares integers rather than strings.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hasher = &self.name_hasher;
        let names = &self.names;
        let hash = hasher.hash_one(name);
        match self.name_index.entry(
            hash,
            |&id| names[id as usize] == name,
            |&id| hasher.hash_one(names[id as usize].as_str()),
        ) {
            Entry::Occupied(entry) => *entry.get(),
            Entry::Vacant(entry) => {
                let id = to_id(self.names.len());
                entry.insert(id);
                self.names.push(name.to_owned());
                id
            }
        }
    }

    /// Id of `name` if it was interned, without adding it.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        let hash = self.name_hasher.hash_one(name);
        self.name_index.find(hash, |&id| self.names[id as usize] == name).copied()
    }

    /// The string of name id `id` (panics on an id this tree did not hand out).
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// Number of interned names.
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    /// The child of `parent` called `name`, created with self 0 if missing.
    ///
    /// This is the inner loop of building a tree from stack traces, hence one hash probe and no
    /// string work. Panics past `u32::MAX` nodes (tens of gigabytes of tree).
    #[inline]
    pub fn child(&mut self, parent: u32, name: u32) -> u32 {
        debug_assert!((parent as usize) < self.links.len());
        debug_assert!((name as usize) < self.names.len());
        if self.edges_stale {
            self.rebuild_edges();
        }
        let first = self.first[parent as usize];
        if first == NO_CHILD {
            let id = self.append(parent, name, 0);
            self.first[parent as usize] = pack(id, name);
            return id;
        }
        if name_of(first) == name {
            return parent_of(first);
        }
        let key = pack(parent, name);
        match self.edges.entry(hash_key(key), |edge| edge[0] == parent && edge[1] == name, edge_hash) {
            Entry::Occupied(entry) => entry.get()[2],
            Entry::Vacant(entry) => {
                let id = to_id(self.links.len());
                entry.insert([parent, name, id]);
                self.links.push(key);
                self.selfs.push(0);
                self.first.push(NO_CHILD);
                id
            }
        }
    }

    /// Pushes the arrays of a new node (not yet reachable through any index).
    #[inline]
    fn append(&mut self, parent: u32, name: u32, self_value: i64) -> u32 {
        let id = to_id(self.links.len());
        self.links.push(pack(parent, name));
        self.selfs.push(self_value);
        self.first.push(NO_CHILD);
        id
    }

    /// Appends a node known not to exist yet (the caller guarantees `(parent, name)` is new),
    /// skipping the lookup that `child` does.
    pub(super) fn push_new(&mut self, parent: u32, name: u32, self_value: i64) -> u32 {
        if self.edges_stale {
            self.rebuild_edges();
        }
        let id = self.append(parent, name, self_value);
        if self.first[parent as usize] == NO_CHILD {
            self.first[parent as usize] = pack(id, name);
        } else {
            self.edges.insert_unique(hash_key(pack(parent, name)), [parent, name, id], edge_hash);
        }
        id
    }

    /// Appends a node the caller guarantees is new, without indexing it: builders that create
    /// every node exactly once (resolving a stack-trace tree) skip the edge index entirely, and
    /// it is rebuilt only if the tree is looked into afterwards.
    pub fn push_unindexed(&mut self, parent: u32, name: u32, self_value: i64) -> u32 {
        debug_assert!((parent as usize) < self.links.len());
        let id = to_id(self.links.len());
        self.links.push(pack(parent, name));
        self.selfs.push(self_value);
        self.edges_stale = true;
        id
    }

    /// Rebuilds the index (`first` and `edges`) from the nodes.
    fn rebuild_edges(&mut self) {
        self.edges_stale = false;
        self.first.clear();
        self.first.resize(self.links.len(), NO_CHILD);
        self.edges.clear();
        self.edges.reserve(self.links.len() / 4, edge_hash);
        for (id, &link) in self.links.iter().enumerate().skip(1) {
            let (parent, name) = (parent_of(link), name_of(link));
            let slot = &mut self.first[parent as usize];
            if *slot == NO_CHILD {
                *slot = pack(id as u32, name);
            } else {
                self.edges.insert_unique(hash_key(link), [parent, name, id as u32], edge_hash);
            }
        }
    }

    /// Makes room for `additional` more nodes, so that a tree of known size is built without
    /// growing its arrays along the way.
    pub fn reserve_nodes(&mut self, additional: usize) {
        self.links.reserve_exact(additional);
        self.selfs.reserve_exact(additional);
    }

    /// Adds `value` to the self of `node`.
    ///
    /// Values on the root are dropped: a sample without frames has no place in a flame graph,
    /// whose root only ever carries the sum of its children. Sums wrap rather than panic so that
    /// decoded input can never abort a query.
    #[inline]
    pub fn add_self(&mut self, node: u32, value: i64) {
        if node != Self::ROOT {
            let slot = &mut self.selfs[node as usize];
            *slot = slot.wrapping_add(value);
        }
    }

    /// Adds one stack (root frame first) with `value`; an empty stack is ignored.
    pub fn insert_stack<S: AsRef<str>>(&mut self, root_first: &[S], value: i64) {
        let mut node = Self::ROOT;
        for frame in root_first {
            let name = self.intern(frame.as_ref());
            node = self.child(node, name);
        }
        self.add_self(node, value);
    }

    /// Adds every value of `other` into `self`, matching frames by name along the path (the
    /// Final phase of the aggregate merges Partial states built with different name ids).
    pub fn merge(&mut self, other: &FunctionTree) {
        if self.node_count() == 0 && self.names.is_empty() {
            *self = other.clone();
            return;
        }
        let name_map: Vec<u32> = other.names.iter().map(|n| self.intern(n)).collect();
        let mut node_map = Vec::with_capacity(other.links.len());
        node_map.push(Self::ROOT);
        for (&link, &value) in other.links.iter().zip(&other.selfs).skip(1) {
            let parent = node_map[parent_of(link) as usize];
            let node = self.child(parent, name_map[name_of(link) as usize]);
            self.add_self(node, value);
            node_map.push(node);
        }
    }

    /// Number of nodes, not counting the root (the unit `max_nodes` is measured in).
    pub fn node_count(&self) -> usize {
        self.links.len() - 1
    }

    /// Whether the tree has no node besides the root.
    pub fn is_empty(&self) -> bool {
        self.node_count() == 0
    }

    /// Sum of all values: the root's total.
    pub fn total(&self) -> i64 {
        self.selfs.iter().fold(0i64, |acc, &v| acc.wrapping_add(v))
    }

    /// Parent of `node` (`ROOT` for top-level frames; meaningless for the root itself).
    pub fn parent(&self, node: u32) -> u32 {
        if node == Self::ROOT { Self::ROOT } else { parent_of(self.links[node as usize]) }
    }

    /// Name id of `node` (meaningless for the root, which has no name).
    pub fn name_id(&self, node: u32) -> u32 {
        name_of(self.links[node as usize])
    }

    /// Self value of `node`.
    pub fn self_value(&self, node: u32) -> i64 {
        self.selfs[node as usize]
    }

    /// Frames from the top-level frame down to `node` (empty for the root); for tests and
    /// diagnostics, since the encoders walk the tree without materialising paths.
    pub fn path(&self, mut node: u32) -> Vec<&str> {
        let mut path = Vec::new();
        while node != Self::ROOT {
            path.push(self.name(self.name_id(node)));
            node = self.parent(node);
        }
        path.reverse();
        path
    }

    /// Node totals (self plus descendants), indexed by node id, root included.
    ///
    /// One reverse pass suffices because every parent precedes its children.
    pub fn totals(&self) -> Vec<i64> {
        let mut totals = self.selfs.clone();
        for i in (1..totals.len()).rev() {
            let parent = parent_of(self.links[i]) as usize;
            totals[parent] = totals[parent].wrapping_add(totals[i]);
        }
        totals
    }

    /// Name id of the `other` frame, if any node could be called that; encoders need it because
    /// an `other` child is always shown as one leaf after its siblings.
    pub fn other_id(&self) -> Option<u32> {
        self.lookup(Self::OTHER)
    }

    /// Approximate heap bytes held, for the aggregate's memory accounting.
    pub fn memory_size(&self) -> usize {
        let strings: usize = self.names.iter().map(String::capacity).sum();
        self.names.capacity() * size_of::<String>()
            + strings
            + self.name_index.capacity() * (size_of::<u32>() + 1)
            + self.edges.capacity() * (size_of::<Edge>() + 1)
            + self.links.capacity() * size_of::<u64>()
            + self.selfs.capacity() * size_of::<i64>()
            + self.first.capacity() * size_of::<u64>()
    }
}

/// An entry of the edge index: `[parent, name, child node]`.
type Edge = [u32; 3];

/// Hash of an edge entry, the same as the lookup hash of its `(parent, name)`.
#[inline(always)]
fn edge_hash(edge: &Edge) -> u64 {
    hash_key(pack(edge[0], edge[1]))
}

/// Converts a length into the next id, which must fit the 32-bit halves of a packed link.
fn to_id(len: usize) -> u32 {
    u32::try_from(len).expect("function tree exceeds u32::MAX nodes or names")
}
