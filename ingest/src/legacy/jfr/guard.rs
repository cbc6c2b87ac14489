//! A structural pre-check of a JFR recording, run before `jfrs` reads it.
//!
//! `jfrs` trusts the counts and offsets in the file: a negative or huge string length or array
//! count goes straight into `Vec::with_capacity` (a panic, or an allocation failure that aborts
//! the process), chunk and event sizes are added without checks (overflow panics; a zero event
//! size loops forever), the constant-pool chain is followed without cycle detection (loops
//! forever), and metadata elements and inline-typed values are read recursively (a deeply nested
//! or self-referencing type overflows the stack). None of that may happen on an upload, so this
//! module walks the same structure the way `jfrs` 0.2 reads it and refuses a recording unless:
//!
//! * every chunk header is sane (magic, version, `68 <= size <= remaining`, offsets inside);
//! * the metadata element tree is at most [`MAX_METADATA_DEPTH`] deep, and its types have no
//!   inline (non-constant-pool) reference cycle and at most [`MAX_TYPE_DEPTH`] inline nesting;
//! * the constant-pool chain stays inside the chunk and visits no offset twice;
//! * every event has a positive size that ends inside the chunk;
//! * every string length and array count is non-negative and fits the bytes that remain, and
//!   the values `jfrs` would materialize stay within a node budget proportional to the input
//!   (constant pools are kept for the whole chunk, event values one at a time).
//!
//! Passing the check means `jfrs` reads only bounded amounts; it does not mean the recording
//! is meaningful (unknown classes, bad UTF-8 and the like still surface as `jfrs` errors).

use std::collections::{HashMap, HashSet};

/// Size of a chunk header (magic to features), where the first event starts.
pub const CHUNK_HEADER_SIZE: usize = 68;
const MAGIC: &[u8; 4] = b"FLR\0";
const EVENT_METADATA: i64 = 0;
const EVENT_CONSTANT_POOL: i64 = 1;
/// Real metadata nests root → metadata → class → field → annotation (depth 4).
pub const MAX_METADATA_DEPTH: usize = 16;
/// Real JFR types nest inline only a few levels (StackTrace → StackFrame[] → primitives).
pub const MAX_TYPE_DEPTH: usize = 32;

/// Why a recording was refused, with the absolute byte offset where the check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JFR at byte {offset}: {reason}")]
pub struct Malformed {
    pub offset: usize,
    pub reason: &'static str,
}

/// What the check saw, for tests and budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub chunks: usize,
    pub events: usize,
    /// Value nodes the constant pools of the largest chunk materialize.
    pub max_pool_nodes: u64,
}

/// Nodes (roughly: `jfrs` `ValueDescriptor`s) the constant pools of a chunk may materialize.
fn pool_budget(chunk_len: usize) -> u64 {
    2 * chunk_len as u64 + 4096
}

/// Nodes one event's value may materialize.
fn event_budget(event_len: usize) -> u64 {
    4 * event_len as u64 + 256
}

/// A bounded reader over one chunk that decodes integers the way `jfrs` does.
struct Cur<'a> {
    data: &'a [u8],
    pos: usize,
    /// Absolute offset of `data[0]` in the recording (for error messages).
    base: usize,
    compressed: bool,
}

type R<T> = Result<T, Malformed>;

impl<'a> Cur<'a> {
    fn fail<T>(&self, reason: &'static str) -> R<T> {
        Err(Malformed { offset: self.base + self.pos, reason })
    }

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn bytes(&mut self, n: usize) -> R<&'a [u8]> {
        let data = self.data;
        match self.pos.checked_add(n).and_then(|end| data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.fail("unexpected end of data"),
        }
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.bytes(1)?.first().copied().unwrap_or_default())
    }

    fn raw<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// `jfrs`' varint: 7 bits per byte for up to 8 bytes, then a full 9th byte.
    fn varint(&mut self) -> R<i64> {
        let mut ret = 0i64;
        for i in 0..8 {
            let b = self.u8()? as i8 as i64;
            ret = ret.wrapping_add((b & 0x7f) << (7 * i));
            if b >= 0 {
                return Ok(ret);
            }
        }
        Ok(ret.wrapping_add((self.u8()? as i64 & 0xff) << 56))
    }

    fn i16(&mut self) -> R<i16> {
        if self.compressed { Ok(self.varint()? as i16) } else { Ok(i16::from_be_bytes(self.raw()?)) }
    }

    fn i32(&mut self) -> R<i32> {
        if self.compressed { Ok(self.varint()? as i32) } else { Ok(i32::from_be_bytes(self.raw()?)) }
    }

    fn i64(&mut self) -> R<i64> {
        if self.compressed { self.varint() } else { Ok(i64::from_be_bytes(self.raw()?)) }
    }

    fn char(&mut self) -> R<u32> {
        if self.compressed { Ok(self.varint()? as u32) } else { Ok(self.i16()? as u32) }
    }

    /// A length or count that `jfrs` reads as `i32 as usize`: it must be non-negative and, as
    /// every unit takes at least one byte, at most the bytes left.
    fn length(&mut self) -> R<usize> {
        let n = self.i32()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => self.fail("length out of range"),
        }
    }

    /// Reads a string; `Ok(None)` for null and constant-pool references.
    fn string(&mut self) -> R<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(String::new())),
            2 => {
                self.i64()?;
                Ok(None)
            }
            3 => {
                let n = self.length()?;
                match std::str::from_utf8(self.bytes(n)?) {
                    Ok(s) => Ok(Some(s.to_string())),
                    Err(_) => self.fail("string is not UTF-8"),
                }
            }
            4 => {
                let n = self.length()?;
                let mut s = String::new();
                for _ in 0..n {
                    match char::from_u32(self.char()?) {
                        Some(c) => s.push(c),
                        None => return self.fail("invalid char in string"),
                    }
                }
                Ok(Some(s))
            }
            5 => {
                let n = self.length()?;
                Ok(Some(self.bytes(n)?.iter().map(|&b| b as char).collect()))
            }
            _ => self.fail("unknown string encoding"),
        }
    }

    /// Skips a string value without building it.
    fn skip_string(&mut self) -> R<()> {
        match self.u8()? {
            0 | 1 => Ok(()),
            2 => self.i64().map(drop),
            3 | 5 => {
                let n = self.length()?;
                self.bytes(n).map(drop)
            }
            4 => {
                let n = self.length()?;
                for _ in 0..n {
                    self.char()?;
                }
                Ok(())
            }
            _ => self.fail("unknown string encoding"),
        }
    }
}

/// A field of a declared type, as `jfrs` interprets it.
#[derive(Debug, Clone)]
struct Field {
    class_id: i64,
    constant_pool: bool,
    array: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primitive {
    Int,
    Long,
    Float,
    Double,
    Char,
    Boolean,
    Short,
    Byte,
    String,
}

fn primitive(name: &str) -> Option<Primitive> {
    Some(match name {
        "int" => Primitive::Int,
        "long" => Primitive::Long,
        "float" => Primitive::Float,
        "double" => Primitive::Double,
        "char" => Primitive::Char,
        "boolean" => Primitive::Boolean,
        "short" => Primitive::Short,
        "byte" => Primitive::Byte,
        "java.lang.String" => Primitive::String,
        _ => return None,
    })
}

#[derive(Debug, Clone)]
struct Type {
    primitive: Option<Primitive>,
    fields: Vec<Field>,
}

type Types = HashMap<i64, Type>;

/// A metadata element while it is read; only what `jfrs` keeps is kept.
enum Element {
    Root { classes: Option<Vec<ClassElement>> },
    Metadata(Vec<ClassElement>),
    Class(ClassElement),
    Field(FieldElement),
    Other,
}

#[derive(Default)]
struct ClassElement {
    id: i64,
    name: Option<String>,
    fields: Vec<FieldElement>,
}

#[derive(Default)]
struct FieldElement {
    name: Option<String>,
    class_id: i64,
    constant_pool: bool,
    dimension: i32,
}

fn parse_attr<T: std::str::FromStr>(cur: &Cur<'_>, value: &str) -> R<T> {
    match value.parse() {
        Ok(v) => Ok(v),
        Err(_) => cur.fail("bad metadata attribute value"),
    }
}

fn string_at<'s>(cur: &Cur<'_>, strings: &'s [Option<String>], idx: i32) -> R<&'s str> {
    match usize::try_from(idx).ok().and_then(|i| strings.get(i)).and_then(Option::as_deref) {
        Some(s) => Ok(s),
        None => cur.fail("metadata string index out of range"),
    }
}

fn read_element(cur: &mut Cur<'_>, strings: &[Option<String>], mut el: Element, depth: usize) -> R<Element> {
    let attributes = cur.i32()?;
    for _ in 0..attributes {
        let (k, v) = (cur.i32()?, cur.i32()?);
        let (key, value) = (string_at(cur, strings, k)?, string_at(cur, strings, v)?);
        match &mut el {
            Element::Class(c) => match key {
                "id" => c.id = parse_attr(cur, value)?,
                "name" => c.name = Some(value.to_string()),
                "simpleType" => {
                    parse_attr::<bool>(cur, value)?;
                }
                _ => {}
            },
            Element::Field(f) => match key {
                "name" => f.name = Some(value.to_string()),
                "class" => f.class_id = parse_attr(cur, value)?,
                "constantPool" => f.constant_pool = parse_attr(cur, value)?,
                "dimension" => f.dimension = parse_attr(cur, value)?,
                _ => {}
            },
            // Annotations are read for their class id only (which must parse).
            Element::Other if key == "class" => {
                parse_attr::<i64>(cur, value)?;
            }
            _ => {}
        }
    }
    let children = cur.i32()?;
    for _ in 0..children {
        let idx = cur.i32()?;
        let name = string_at(cur, strings, idx)?;
        let child = match name {
            "metadata" => Element::Metadata(Vec::new()),
            "class" => Element::Class(ClassElement::default()),
            "field" => Element::Field(FieldElement::default()),
            "region" | "setting" | "annotation" => Element::Other,
            _ => return cur.fail("unknown metadata element"),
        };
        if depth + 1 > MAX_METADATA_DEPTH {
            return cur.fail("metadata nested too deeply");
        }
        let child = read_element(cur, strings, child, depth + 1)?;
        match (&mut el, child) {
            (Element::Root { classes }, Element::Metadata(m)) => *classes = Some(m),
            (Element::Metadata(list), Element::Class(c)) => list.push(c),
            (Element::Class(c), Element::Field(f)) => c.fields.push(f),
            _ => {}
        }
    }
    Ok(el)
}

/// Reads the metadata event at `offset` (relative to the chunk) into the type table.
fn read_metadata(cur: &mut Cur<'_>, offset: usize) -> R<Types> {
    cur.pos = offset;
    cur.i32()?;
    if cur.i64()? != EVENT_METADATA {
        return cur.fail("metadata offset does not point at the metadata event");
    }
    for _ in 0..3 {
        cur.i64()?; // start time, duration, metadata id
    }
    let count = cur.length()?;
    let mut strings = Vec::new();
    for _ in 0..count {
        if cur.data.get(cur.pos) == Some(&2) {
            return cur.fail("constant-pool string in the metadata string table");
        }
        strings.push(cur.string()?);
    }
    cur.i32()?; // root element name
    let root = read_element(cur, &strings, Element::Root { classes: None }, 0)?;
    let mut types = Types::new();
    if let Element::Root { classes: Some(classes) } = root {
        for c in classes {
            let Some(name) = c.name else {
                return cur.fail("metadata class without a name");
            };
            let mut fields = Vec::with_capacity(c.fields.len());
            for f in c.fields {
                if f.name.is_none() {
                    return cur.fail("metadata field without a name");
                }
                fields.push(Field { class_id: f.class_id, constant_pool: f.constant_pool, array: f.dimension > 0 });
            }
            types.insert(c.id, Type { primitive: primitive(&name), fields });
        }
    }
    Ok(types)
}

/// Refuses inline (non-constant-pool) type references that cycle or nest deeper than
/// [`MAX_TYPE_DEPTH`]: `jfrs` reads such values recursively.
fn check_type_graph(types: &Types, cur: &Cur<'_>) -> R<()> {
    /// On the current path, or done with the height of the inline tree below the type.
    enum Mark {
        Open,
        Height(usize),
    }
    /// Height of `id`'s inline tree, refusing any path longer than the limit. `depth` is the
    /// path length so far, which also bounds this function's own recursion.
    fn height(id: i64, types: &Types, marks: &mut HashMap<i64, Mark>, depth: usize) -> Result<usize, &'static str> {
        match marks.get(&id) {
            Some(Mark::Open) => return Err("inline type reference cycle"),
            Some(Mark::Height(h)) if depth + h > MAX_TYPE_DEPTH => return Err("types nested too deeply"),
            Some(Mark::Height(h)) => return Ok(*h),
            None => {}
        }
        if depth > MAX_TYPE_DEPTH {
            return Err("types nested too deeply");
        }
        // Unknown classes are an error when (if) a value of them is read.
        let Some(t) = types.get(&id) else { return Ok(0) };
        marks.insert(id, Mark::Open);
        let mut h = 0;
        if t.primitive.is_none() {
            for f in t.fields.iter().filter(|f| !f.constant_pool) {
                h = h.max(1 + height(f.class_id, types, marks, depth + 1)?);
            }
        }
        marks.insert(id, Mark::Height(h));
        Ok(h)
    }
    let mut marks: HashMap<i64, Mark> = HashMap::with_capacity(types.len());
    for &id in types.keys() {
        if let Err(reason) = height(id, types, &mut marks, 0) {
            return cur.fail(reason);
        }
    }
    Ok(())
}

fn spend(cur: &Cur<'_>, budget: &mut u64, n: u64) -> R<()> {
    match budget.checked_sub(n) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => cur.fail("recording expands beyond the value budget"),
    }
}

/// Skips one value of `class_id` exactly as `jfrs`' `ValueDescriptor::try_new` reads it.
fn skip_value(cur: &mut Cur<'_>, types: &Types, class_id: i64, budget: &mut u64) -> R<()> {
    spend(cur, budget, 1)?;
    let Some(t) = types.get(&class_id) else {
        return cur.fail("value of an undeclared class");
    };
    match t.primitive {
        Some(Primitive::Int) => cur.i32().map(drop),
        Some(Primitive::Long) => cur.i64().map(drop),
        Some(Primitive::Float) => cur.bytes(4).map(drop),
        Some(Primitive::Double) => cur.bytes(8).map(drop),
        Some(Primitive::Char) => cur.char().map(drop),
        Some(Primitive::Boolean) | Some(Primitive::Byte) => cur.bytes(1).map(drop),
        Some(Primitive::Short) => cur.i16().map(drop),
        Some(Primitive::String) => cur.skip_string(),
        None => {
            for f in &t.fields {
                if f.array {
                    let n = cur.i32()?;
                    let Ok(n) = u64::try_from(n) else {
                        return cur.fail("negative array length");
                    };
                    // `jfrs` reserves the whole array before reading it.
                    spend(cur, budget, n)?;
                    for _ in 0..n {
                        skip_field(cur, types, f, budget)?;
                    }
                } else {
                    skip_field(cur, types, f, budget)?;
                }
            }
            Ok(())
        }
    }
}

fn skip_field(cur: &mut Cur<'_>, types: &Types, f: &Field, budget: &mut u64) -> R<()> {
    if f.constant_pool {
        spend(cur, budget, 1)?;
        cur.i64().map(drop)
    } else {
        skip_value(cur, types, f.class_id, budget)
    }
}

fn offset_in_chunk(cur: &Cur<'_>, value: i64, what: &'static str) -> R<usize> {
    match usize::try_from(value) {
        Ok(v) if v >= CHUNK_HEADER_SIZE && v < cur.data.len() => Ok(v),
        _ => cur.fail(what),
    }
}

/// Follows the constant-pool chain from the header's offset; returns the nodes materialized.
fn check_constant_pools(cur: &mut Cur<'_>, types: &Types, first_delta: i64) -> R<u64> {
    let start_budget = pool_budget(cur.data.len());
    let mut budget = start_budget;
    let mut offset = 0i64;
    let mut delta = first_delta;
    let mut seen = HashSet::new();
    while delta != 0 {
        offset = match offset.checked_add(delta) {
            Some(o) => o,
            None => return cur.fail("constant-pool offset overflows"),
        };
        let at = offset_in_chunk(cur, offset, "constant-pool offset outside the chunk")?;
        if !seen.insert(at) {
            return cur.fail("constant-pool chain loops");
        }
        cur.pos = at;
        cur.i32()?;
        if cur.i64()? != EVENT_CONSTANT_POOL {
            return cur.fail("constant-pool offset does not point at a constant-pool event");
        }
        cur.i64()?;
        cur.i64()?;
        delta = cur.i64()?;
        cur.bytes(1)?; // flush flag
        let pools = cur.i32()?;
        for _ in 0..pools {
            let class_id = cur.i64()?;
            let constants = cur.i32()?;
            for _ in 0..constants {
                cur.i64()?;
                skip_value(cur, types, class_id, &mut budget)?;
            }
        }
    }
    Ok(start_budget - budget)
}

/// Walks the event records of a chunk; returns how many there are.
fn check_events(cur: &mut Cur<'_>, types: &Types) -> R<usize> {
    let mut pos = CHUNK_HEADER_SIZE;
    let mut events = 0;
    while pos < cur.data.len() {
        cur.pos = pos;
        let size = cur.i32()?;
        let kind = cur.i64()?;
        let end = match usize::try_from(size) {
            Ok(s) if s > 0 && s <= cur.data.len() - pos => pos + s,
            _ => return cur.fail("event size out of range"),
        };
        if kind != EVENT_METADATA && kind != EVENT_CONSTANT_POOL {
            let mut budget = event_budget(end - pos);
            skip_value(cur, types, kind, &mut budget)?;
            events += 1;
        }
        pos = end;
    }
    Ok(events)
}

/// Checks a whole recording (one or more chunks back to back).
pub fn check(data: &[u8]) -> Result<Summary, Malformed> {
    let mut summary = Summary::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let mut head = Cur { data: rest, pos: 0, base: pos, compressed: false };
        if rest.len() < CHUNK_HEADER_SIZE {
            return head.fail("truncated chunk header");
        }
        if head.raw::<4>()? != *MAGIC {
            return head.fail("not a JFR chunk (bad magic)");
        }
        let major = head.i16()?;
        head.i16()?;
        if major != 1 && major != 2 {
            return head.fail("unsupported JFR version");
        }
        let size = head.i64()?;
        let len = match usize::try_from(size) {
            Ok(s) if (CHUNK_HEADER_SIZE..=rest.len()).contains(&s) => s,
            _ => return head.fail("chunk size out of range"),
        };
        let cp_offset = head.i64()?;
        let metadata_offset = head.i64()?;
        for _ in 0..4 {
            head.i64()?; // start nanos, duration, start ticks, ticks per second
        }
        let features = head.i32()?;
        let chunk = rest.get(..len).unwrap_or_default();
        let mut cur = Cur { data: chunk, pos: 0, base: pos, compressed: features & 1 != 0 };
        let metadata_at = offset_in_chunk(&cur, metadata_offset, "metadata offset outside the chunk")?;
        let types = read_metadata(&mut cur, metadata_at)?;
        check_type_graph(&types, &cur)?;
        let nodes = check_constant_pools(&mut cur, &types, cp_offset)?;
        summary.max_pool_nodes = summary.max_pool_nodes.max(nodes);
        summary.events += check_events(&mut cur, &types)?;
        summary.chunks += 1;
        pos += len;
    }
    Ok(summary)
}
