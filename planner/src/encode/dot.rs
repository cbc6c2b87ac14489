//! The DOT format (`PROFILE_FORMAT_DOT`, `/pyroscope/render?format=dot`): a Graphviz call graph
//! of a merged tree, the picture `go tool pprof -dot` draws, which is what Pyroscope answers with
//! (it builds a pprof from the tree and runs Go pprof's `report`/`graph` packages over it).
//!
//! The graph has one node per function (frames merged by name, as in the tree), with its flat
//! (self) and cum (inclusive, counted once per stack however often the function recurses)
//! values, and one edge per caller -> callee pair weighted by the value of the stacks that
//! contain the call. Only the `max_nodes` functions with the largest cum are drawn; the graph
//! is then rebuilt from the stacks with only those, so a call through dropped functions becomes
//! a dotted "residual" edge, and a residual edge is left out when its ends stay connected
//! otherwise. Labels, font sizes, colours, edge weights and pen widths follow pprof's rules so
//! that the output reads like the upstream one.
//!
//! pprof orders (and therefore cuts) nodes by an "entropy" score in its visual mode; this encoder
//! keeps the largest cum instead, which is what the numbers in the labels explain to a reader.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::LazyLock;

use flamedb_exec::tree::FunctionTree;
use regex::Regex;

use super::shown::{Shown, shown_children};

/// Graph nodes drawn when the request does not say (Pyroscope's `defaultDotMaxNodes`).
pub const DEFAULT_DOT_NODES: usize = 100;
/// Tree nodes of the source profile when the request does not ask for more graph nodes
/// (Pyroscope's `defaultSourceMaxNodes`).
pub const DEFAULT_SOURCE_NODES: usize = 512;

/// The two node limits of a DOT request: (nodes of the source tree, graph nodes drawn).
///
/// A positive `max_nodes` sets the drawn nodes and raises the source to at least as many, so a
/// large request is not starved by the 512-node source.
pub fn dot_limits(max_nodes: Option<i64>) -> (usize, usize) {
    let shown = match max_nodes {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => DEFAULT_DOT_NODES,
    };
    (shown.max(DEFAULT_SOURCE_NODES), shown)
}

/// Renders `tree` as a DOT digraph of at most `max_nodes` function nodes (0 = all), valued in
/// `sample_unit` and titled with `sample_type`. An empty tree gives an empty string, as
/// Pyroscope answers an empty DOT body for a query without samples.
pub fn dot(tree: &FunctionTree, sample_type: &str, sample_unit: &str, max_nodes: usize) -> String {
    let walk = Walk::new(tree);
    let total = walk.total;
    if total == 0 {
        return String::new();
    }
    let full = walk.graph(None);
    let all = full.sorted(tree);
    let orig_count = all.len();
    let (graph, order) = if max_nodes > 0 && orig_count > max_nodes {
        let mut kept = vec![false; tree.name_count()];
        for &name in &all[..max_nodes] {
            kept[name as usize] = true;
        }
        let graph = walk.graph(Some(&kept));
        let order = graph.sorted(tree);
        (graph, order)
    } else {
        (full, all)
    };
    let mut graph = graph;
    graph.remove_redundant_edges(&order, tree);

    let fmt = ValueFormat::new(sample_unit);
    let flat_sum: i64 = order.iter().map(|&n| graph.flat[n as usize]).sum();
    let mut legend = vec![
        format!("Type: {sample_type}"),
        format!(
            "Showing nodes accounting for {}, {} of {} total",
            fmt.format(flat_sum),
            percentage(flat_sum, total),
            fmt.format(total)
        ),
    ];
    if order.len() < orig_count {
        legend.push(format!("Showing top {} nodes out of {orig_count}", order.len()));
    }
    legend.push("\nSee https://git.io/JfYMW for how to read the graph".to_owned());

    let mut out = String::new();
    out.push_str("digraph \"unnamed\" {\n");
    out.push_str("node [style=filled fillcolor=\"#f8f8f8\"]\n");
    let title = escape(&legend[0]);
    let body: Vec<String> = legend.iter().map(|l| escape(l)).collect();
    let _ =
        writeln!(out, "subgraph cluster_L {{ \"{title}\" [shape=box fontsize=16 label=\"{}\\l\"] }}", body.join("\\l"));

    let mut id = vec![0usize; tree.name_count()];
    for (i, &name) in order.iter().enumerate() {
        id[name as usize] = i + 1;
    }
    let style = Style { total, max_flat: order.iter().map(|&n| graph.flat[n as usize].abs()).max().unwrap_or(0), fmt };
    for &name in &order {
        let n = name as usize;
        style.node(&mut out, id[n], display_name(tree.name(name)), (graph.flat[n], graph.cum[n]));
    }
    for ((src, dst), edge) in graph.sorted_edges(tree) {
        let (from, to) = (display_name(tree.name(src)), display_name(tree.name(dst)));
        style.edge(&mut out, (id[src as usize], from), (id[dst as usize], to), edge);
    }
    out.push_str("}\n");
    out
}

/// A function's name as pprof prints it: `<unknown>` when there is none.
fn display_name(name: &str) -> &str {
    if name.is_empty() { "<unknown>" } else { name }
}

/// What node and edge statements are drawn relative to.
struct Style {
    total: i64,
    /// The largest flat of a drawn node, for font sizes.
    max_flat: i64,
    fmt: ValueFormat,
}

impl Style {
    /// `N<id> [label=... ]`: name lines, flat and (when different) cum with their shares.
    fn node(&self, out: &mut String, id: usize, name: &str, (flat, cum): (i64, i64)) {
        let (total, fmt) = (self.total, &self.fmt);
        let mut label = multiline_name(name);
        let flat_value = fmt.format(flat);
        if flat != 0 {
            let _ = write!(label, "{flat_value} ({})", percentage(flat, total));
        } else {
            label.push('0');
        }
        let mut cum_value = flat_value;
        if cum != flat {
            label.push_str(if flat != 0 { "\\n" } else { " " });
            cum_value = fmt.format(cum);
            let _ = write!(label, "of {cum_value} ({})", percentage(cum, total));
        }
        // Font from 8 to 24 by the square root of the share of the largest flat.
        let mut font = 8;
        if self.max_flat != 0 && flat != 0 && flat.abs() <= self.max_flat {
            font += (16.0 * (flat.abs() as f64 / self.max_flat as f64).sqrt()).ceil() as i64;
        }
        let score = cum as f64 / total.abs() as f64;
        let _ = writeln!(
            out,
            "N{id} [label=\"{label}\" id=\"node{id}\" fontsize={font} shape=box tooltip=\"{} ({cum_value})\" \
             color=\"{}\" fillcolor=\"{}\"]",
            escape(name),
            dot_color(score, false),
            dot_color(score, true),
        );
    }

    /// `N<a> -> N<b> [...]`: weight label, layout weight and pen width by share, dotted when
    /// residual.
    fn edge(&self, out: &mut String, from: (usize, &str), to: (usize, &str), edge: Edge) {
        let total = self.total;
        let w = self.fmt.format(edge.weight);
        let mut attr = format!("label=\" {w}\"");
        if total != 0 {
            let weight = 1 + (edge.weight.saturating_mul(100) / total).abs().min(100);
            if weight > 1 {
                let _ = write!(attr, " weight={weight}");
            }
            let width = 1 + (edge.weight.saturating_mul(5) / total).abs().min(5);
            if width > 1 {
                let _ = write!(attr, " penwidth={width}");
            }
            let _ = write!(attr, " color=\"{}\"", dot_color(edge.weight as f64 / total.abs() as f64, false));
        }
        let arrow = if edge.residual { "..." } else { "->" };
        let tooltip = format!("\"{} {arrow} {} ({w})\"", escape(from.1), escape(to.1));
        let _ = write!(attr, " tooltip={tooltip} labeltooltip={tooltip}");
        if edge.residual {
            attr.push_str(" style=\"dotted\"");
        }
        let _ = writeln!(out, "N{} -> N{} [{attr}]", from.0, to.0);
    }
}

/// A caller -> callee edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Edge {
    weight: i64,
    /// The call went through functions that are not drawn.
    residual: bool,
}

/// The tree with its layout computed once, walked again for every graph built from it.
struct Walk<'a> {
    tree: &'a FunctionTree,
    view: flamedb_exec::tree::TreeView,
    other: Option<u32>,
    total: i64,
}

/// A function's graph values, indexed by tree name id.
struct Graph {
    flat: Vec<i64>,
    cum: Vec<i64>,
    edges: HashMap<(u32, u32), Edge>,
}

/// One node on the path of the depth-first walk.
struct Frame {
    name: u32,
    /// The caller -> callee pair this frame entered, to release on the way out.
    pair: Option<(u32, u32)>,
    /// The nearest drawn function at or above this frame.
    last_kept: Option<u32>,
    /// Whether a not-drawn function lies between `last_kept` and the frame below.
    residual: bool,
}

enum Work {
    Enter(Shown),
    Exit,
}

impl<'a> Walk<'a> {
    fn new(tree: &'a FunctionTree) -> Self {
        let view = tree.view();
        let total = view.total(FunctionTree::ROOT);
        Walk { tree, view, other: tree.other_id(), total }
    }

    /// The call graph of the stacks of the tree, with only the functions in `kept` (all when
    /// `None`). Values are those of the stacks pprof would see: a node's self is a sample whose
    /// leaf it is, so flat adds selves, while cum and edges count each stack once, at the
    /// topmost occurrence of the function (or pair) on the path.
    fn graph(&self, kept: Option<&[bool]>) -> Graph {
        let names = self.tree.name_count();
        let mut g = Graph { flat: vec![0; names], cum: vec![0; names], edges: HashMap::new() };
        let mut on_path = vec![0u32; names];
        let mut pairs_on_path: HashMap<(u32, u32), u32> = HashMap::new();
        let mut path: Vec<Frame> = Vec::new();
        let mut work: Vec<Work> =
            shown_children(self.tree, &self.view, self.other, FunctionTree::ROOT).map(Work::Enter).collect();
        while let Some(step) = work.pop() {
            let shown = match step {
                Work::Exit => {
                    if let Some(f) = path.pop() {
                        on_path[f.name as usize] -= 1;
                        if let Some(pair) = f.pair
                            && let Some(c) = pairs_on_path.get_mut(&pair)
                        {
                            *c -= 1;
                        }
                    }
                    continue;
                }
                Work::Enter(shown) => shown,
            };
            let name = self.tree.name_id(shown.node);
            let (above, residual) = path.last().map_or((None, false), |f| (f.last_kept, f.residual));
            let drawn = kept.is_none_or(|k| k.get(name as usize).copied().unwrap_or(false));
            let mut frame = Frame { name, pair: None, last_kept: above, residual: true };
            if drawn {
                let n = name as usize;
                if on_path[n] == 0 {
                    g.cum[n] += shown.total;
                }
                g.flat[n] += shown.self_value;
                if let Some(caller) = above
                    && caller != name
                {
                    let pair = (caller, name);
                    let seen = pairs_on_path.entry(pair).or_insert(0);
                    if *seen == 0 {
                        let e = g.edges.entry(pair).or_default();
                        e.weight += shown.total;
                        e.residual |= residual;
                    }
                    *seen += 1;
                    frame.pair = Some(pair);
                }
                frame.last_kept = Some(name);
                frame.residual = false;
            }
            on_path[name as usize] += 1;
            path.push(frame);
            work.push(Work::Exit);
            if shown.expand {
                work.extend(shown_children(self.tree, &self.view, self.other, shown.node).map(Work::Enter));
            }
        }
        g
    }
}

impl Graph {
    /// The functions of the graph, largest cum first (then by name, then largest flat).
    fn sorted(&self, tree: &FunctionTree) -> Vec<u32> {
        let mut nodes: Vec<u32> =
            (0..self.cum.len() as u32).filter(|&n| self.cum[n as usize] != 0 || self.flat[n as usize] != 0).collect();
        nodes.sort_by(|&a, &b| {
            let (a_, b_) = (a as usize, b as usize);
            Reverse(self.cum[a_].abs())
                .cmp(&Reverse(self.cum[b_].abs()))
                .then_with(|| display_name(tree.name(a)).cmp(display_name(tree.name(b))))
                .then_with(|| Reverse(self.flat[a_].abs()).cmp(&Reverse(self.flat[b_].abs())))
                .then(a.cmp(&b))
        });
        nodes
    }

    /// Edges heaviest first, then by caller and callee name (pprof's order, a layout hint).
    fn sorted_edges(&self, tree: &FunctionTree) -> Vec<((u32, u32), Edge)> {
        let mut edges: Vec<((u32, u32), Edge)> = self.edges.iter().map(|(&k, &e)| (k, e)).collect();
        edges.sort_by(|(ka, ea), (kb, eb)| edge_order(tree, (*ka, *ea), (*kb, *eb)));
        edges
    }

    /// Drops residual edges whose callee stays reachable from the caller without them, lightest
    /// first and never one heavier than a direct edge into the same node (pprof's rule).
    fn remove_redundant_edges(&mut self, order: &[u32], tree: &FunctionTree) {
        let mut callers: HashMap<u32, BTreeSet<u32>> = HashMap::new();
        for &(src, dst) in self.edges.keys() {
            callers.entry(dst).or_default().insert(src);
        }
        for &node in order.iter().rev() {
            let mut incoming: Vec<((u32, u32), Edge)> = callers
                .get(&node)
                .map(|s| s.iter().filter_map(|&src| self.edges.get(&(src, node)).map(|&e| ((src, node), e))).collect())
                .unwrap_or_default();
            incoming.sort_by(|a, b| edge_order(tree, *a, *b));
            for &(key, edge) in incoming.iter().rev() {
                if !edge.residual {
                    break;
                }
                if reachable_without(&callers, key) {
                    self.edges.remove(&key);
                    if let Some(s) = callers.get_mut(&key.1) {
                        s.remove(&key.0);
                    }
                }
            }
        }
    }
}

fn edge_order(tree: &FunctionTree, (ka, ea): ((u32, u32), Edge), (kb, eb): ((u32, u32), Edge)) -> std::cmp::Ordering {
    Reverse(ea.weight.abs())
        .cmp(&Reverse(eb.weight.abs()))
        .then_with(|| display_name(tree.name(ka.0)).cmp(display_name(tree.name(kb.0))))
        .then_with(|| display_name(tree.name(ka.1)).cmp(display_name(tree.name(kb.1))))
        .then(ka.cmp(&kb))
}

/// Whether `src` reaches `dst` through the callers graph without the edge `src -> dst` itself.
fn reachable_without(callers: &HashMap<u32, BTreeSet<u32>>, (src, dst): (u32, u32)) -> bool {
    let mut seen = BTreeSet::from([dst]);
    let mut queue = std::collections::VecDeque::from([dst]);
    while let Some(n) = queue.pop_front() {
        for &caller in callers.get(&n).into_iter().flatten() {
            if (n == dst && caller == src) || seen.contains(&caller) {
                continue;
            }
            if caller == src {
                return true;
            }
            seen.insert(caller);
            queue.push_back(caller);
        }
    }
    false
}

/// Escapes a string for a quoted DOT attribute; line breaks become left-justified breaks.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\l")
}

/// A node label's name part: the shortened name broken at `::` and `.`, one part per line.
fn multiline_name(name: &str) -> String {
    let short = escape(&shorten_function_name(name)).replace("::", "\\n").replace("[...]", "[…]").replace('.', "\\n");
    format!("{short}\\n")
}

/// The patterns of pprof's name shortening; constants, so `None` (a pattern that does not
/// compile) cannot happen, and would only skip that rule.
static CPP_ANONYMOUS_PREFIX: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^\(anonymous namespace\)::").ok());
static GO_VERSION: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^(.*?)/v(?:[2-9]|[1-9][0-9]+)([./].*)$").ok());
static GO_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^(?:[0-9A-Za-z_\-.]+/)+([^.]+\..+)").ok());
static JAVA_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-z][0-9A-Za-z_]*\.)*([A-Z][0-9A-Za-z_$]*\.(?:<init>|[a-z][0-9A-Za-z_$]*(?:\$[0-9]+)?))(?:\(|$)")
        .ok()
});
static CPP_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[_a-zA-Z][0-9A-Za-z_]*::)+(_*[A-Z][0-9A-Za-z_]*::~?[_a-zA-Z][0-9A-Za-z_]*(?:<.*>)?)").ok()
});

/// pprof's short names: package paths, module versions and Java/C++ namespaces dropped, so a
/// node reads `http.(*Server).Serve` or `Foo.bar` rather than the full symbol.
fn shorten_function_name(name: &str) -> String {
    let mut name = name.to_owned();
    if let Some(re) = &*CPP_ANONYMOUS_PREFIX {
        name = re.replace_all(&name, "").into_owned();
    }
    if let Some(re) = &*GO_VERSION {
        name = re.replace_all(&name, "${1}${2}").into_owned();
    }
    for re in [&*GO_NAME, &*JAVA_NAME, &*CPP_NAME].into_iter().flatten() {
        if let Some(c) = re.captures(&name)
            && let Some(m) = c.get(1)
        {
            return m.as_str().to_owned();
        }
    }
    name
}

/// How values of a sample unit are printed: pprof scales time units to seconds and memory
/// units to bytes (its default units when no output unit is chosen) and prints others as is.
#[derive(Debug, Clone, Copy)]
struct ValueFormat {
    factor: f64,
    suffix: &'static str,
}

impl ValueFormat {
    fn new(unit: &str) -> Self {
        let lower = unit.to_lowercase();
        let memory = lower.strip_suffix('s').unwrap_or(&lower);
        let memory_factor = match memory {
            "b" | "byte" => Some(1.0),
            "kb" | "kbyte" | "kilobyte" => Some(1024.0),
            "mb" | "mbyte" | "megabyte" => Some(1024.0 * 1024.0),
            "gb" | "gbyte" | "gigabyte" => Some(1024.0 * 1024.0 * 1024.0),
            "tb" | "tbyte" | "terabyte" => Some(1024.0f64.powi(4)),
            "pb" | "pbyte" | "petabyte" => Some(1024.0f64.powi(5)),
            _ => None,
        };
        if let Some(factor) = memory_factor {
            return Self { factor, suffix: "B" };
        }
        let time = if lower.len() > 2 { lower.strip_suffix('s').unwrap_or(&lower) } else { &lower };
        let time_nanos = match time {
            "ns" | "nanosecond" => Some(1.0),
            "μs" | "us" | "microsecond" => Some(1e3),
            "ms" | "millisecond" => Some(1e6),
            "s" | "sec" | "second" => Some(1e9),
            "hour" | "hr" => Some(3600e9),
            "day" => Some(86_400e9),
            "wk" | "week" => Some(7.0 * 86_400e9),
            "yr" | "year" => Some(365.0 * 86_400e9),
            _ => None,
        };
        match time_nanos {
            Some(nanos) => Self { factor: nanos / 1e9, suffix: "s" },
            None => Self { factor: 1.0, suffix: "" },
        }
    }

    /// Two decimals, `.00` dropped, unit appended (pprof's `ScaledLabel`).
    fn format(&self, value: i64) -> String {
        let s = format!("{:.2}", value as f64 * self.factor);
        let s = s.strip_suffix(".00").unwrap_or(&s);
        if s == "0" || s == "-0" {
            return "0".to_owned();
        }
        format!("{s}{}", self.suffix)
    }
}

/// `value` as a share of `total`, at least two significant digits (pprof's `Percentage`,
/// trimmed).
fn percentage(value: i64, total: i64) -> String {
    let ratio = if total != 0 { (value as f64 / total as f64).abs() * 100.0 } else { 0.0 };
    if (99.95..=100.05).contains(&ratio) {
        "100%".to_owned()
    } else if ratio >= 1.0 {
        format!("{ratio:.2}%")
    } else {
        format!("{}%", go_g2(ratio))
    }
}

/// Go's `%.2g` for a non-negative finite value: two significant digits, trailing zeros
/// dropped, exponent form below 1e-4.
fn go_g2(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_owned();
    }
    // Two significant digits, correctly rounded, as "d.de<exp>".
    let e = format!("{x:.1e}");
    let Some((mantissa, exp)) = e.split_once('e') else { return e };
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = 2;
    if eprec > nd && nd >= dp {
        eprec = nd;
    }
    if exp < -4 || exp >= eprec {
        let (first, rest) = digits.split_at(1);
        let sign = if exp < 0 { '-' } else { '+' };
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        return format!("{first}{dot}e{sign}{:02}", exp.abs());
    }
    let decimals = if 2 > dp { (nd - dp).max(0) } else { (2 - dp).max(0) };
    let digit = |i: i32| -> char {
        if i >= 0 && i < nd { digits.as_bytes().get(i as usize).map_or('0', |&b| b as char) } else { '0' }
    };
    let mut s = String::new();
    if dp > 0 {
        (0..dp).for_each(|i| s.push(digit(i)));
    } else {
        s.push('0');
    }
    if decimals > 0 {
        s.push('.');
        (0..decimals).for_each(|i| s.push(digit(dp + i)));
    }
    s
}

/// pprof's node and edge colours: grey for a small share, shifting to red as `score` nears 1
/// (green for negative scores, which only diffs have); light variants for backgrounds.
fn dot_color(score: f64, background: bool) -> String {
    const SHIFT: f64 = 0.7;
    let (mut saturation, value) = if background { (0.1, 0.93) } else { (1.0, 0.7) };
    let mut score = if score.is_nan() { 0.0 } else { score.clamp(-1.0, 1.0) };
    if score.abs() < 0.2 {
        saturation *= score.abs() / 0.2;
    }
    if score > 0.0 {
        score = score.powf(1.0 - SHIFT);
    }
    if score < 0.0 {
        score = -(-score).powf(1.0 - SHIFT);
    }
    let (r, g) = if score < 0.0 {
        (value * (1.0 + saturation * score), value)
    } else {
        (value, value * (1.0 - saturation * score))
    };
    let b = value * (1.0 - saturation);
    let byte = |v: f64| (v * 255.0).clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(stacks: &[(&str, i64)]) -> FunctionTree {
        let mut tree = FunctionTree::new();
        for (stack, value) in stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            tree.insert_stack(&frames, *value);
        }
        tree
    }

    /// The parsed statements of a DOT text: node ids with their labels, and edges.
    struct Parsed {
        nodes: Vec<(String, String)>,
        edges: Vec<(String, String, String)>,
    }

    /// A small checker for the subset of DOT this encoder writes: the header, balanced braces
    /// and quotes, and each statement either a node `Nx [...]` or an edge `Nx -> Ny [...]`.
    fn parse(dot: &str) -> Parsed {
        assert!(dot.starts_with("digraph \"unnamed\" {\n"), "{dot}");
        assert!(dot.ends_with("}\n"), "{dot}");
        let (mut depth, mut in_quote, mut escaped) = (0i32, false, false);
        for c in dot.chars() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_quote => escaped = true,
                '"' => in_quote = !in_quote,
                '{' if !in_quote => depth += 1,
                '}' if !in_quote => {
                    depth -= 1;
                    assert!(depth >= 0, "unbalanced braces");
                }
                _ => {}
            }
        }
        assert_eq!((depth, in_quote), (0, false), "unbalanced braces or quotes");
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        for line in dot.lines().skip(2) {
            if line == "}" || line.starts_with("subgraph cluster_L {") {
                continue;
            }
            let (head, attrs) = line.split_once(" [").unwrap_or_else(|| panic!("no attributes: {line}"));
            assert!(attrs.ends_with(']'), "{line}");
            let label = attrs.split("label=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_owned();
            match head.split_once(" -> ") {
                Some((a, b)) => edges.push((a.to_owned(), b.to_owned(), attrs.to_owned())),
                None => nodes.push((head.to_owned(), label)),
            }
        }
        Parsed { nodes, edges }
    }

    #[test]
    fn small_graph_structure() {
        // main -> a -> x (50), main -> a -> y (25), main -> b (15), main (10 self).
        let tree = tree_of(&[("main;a;x", 50), ("main;a;y", 25), ("main;b", 15), ("main", 10)]);
        let dot = dot(&tree, "cpu", "count", 0);
        let p = parse(&dot);
        assert_eq!(p.nodes.len(), 5, "{dot}");
        assert_eq!(p.edges.len(), 4, "{dot}");
        // Largest cum first: main (100), a (75), x (50), y (25), b (15).
        let labels: Vec<&str> = p.nodes.iter().map(|(_, l)| l.as_str()).collect();
        assert!(labels[0].starts_with("main\\n"), "{labels:?}");
        assert!(labels[1].starts_with("a\\n"), "{labels:?}");
        assert!(labels[2].starts_with("x\\n"), "{labels:?}");
        assert_eq!(labels[0], "main\\n10 (10.00%)\\nof 100 (100%)");
        assert_eq!(labels[2], "x\\n50 (50.00%)");
        let declared: BTreeSet<&str> = p.nodes.iter().map(|(id, _)| id.as_str()).collect();
        for (a, b, _) in &p.edges {
            assert!(declared.contains(a.as_str()) && declared.contains(b.as_str()), "{a} -> {b}");
        }
        // Edges heaviest first: main -> a (75) first, weight 76.
        assert_eq!((p.edges[0].0.as_str(), p.edges[0].1.as_str()), ("N1", "N2"));
        assert!(p.edges[0].2.contains(" weight=76 penwidth=4 "), "{}", p.edges[0].2);
        assert!(dot.contains("Type: cpu"), "{dot}");
        assert!(!dot.contains("Showing top"), "{dot}");
    }

    #[test]
    fn largest_cum_cut_with_residual_edges() {
        // d has the smallest cum; cutting to 3 keeps main, a, c. The path main -> b -> c keeps
        // c but not b, so main -> c is residual (dotted) and stays: no other path reaches c.
        let tree = tree_of(&[("main;a", 60), ("main;b;c", 30), ("main;d", 5)]);
        let dot = dot(&tree, "samples", "count", 3);
        let p = parse(&dot);
        let names: Vec<&str> = p.nodes.iter().map(|(_, l)| l.split("\\n").next().unwrap_or("")).collect();
        assert_eq!(names, ["main", "a", "b"], "{dot}");
        assert!(dot.contains("Showing top 3 nodes out of 5"), "{dot}");
        // b and c tie on cum 30: b wins by name, so c is cut and main -> b is direct.
        assert_eq!(p.edges.len(), 2, "{dot}");
        assert!(p.edges.iter().all(|(_, _, a)| !a.contains("dotted")), "{dot}");

        let tree = tree_of(&[("main;x;c", 30), ("main;a", 60), ("main;y;c", 10)]);
        // Cum: main 100, a 60, c 40, x 30, y 10: keep 3 = main, a, c; c reached only residually.
        let dot = super::dot(&tree, "samples", "count", 3);
        let p = parse(&dot);
        let residual: Vec<&(String, String, String)> = p.edges.iter().filter(|e| e.2.contains("dotted")).collect();
        assert_eq!(residual.len(), 1, "{dot}");
        assert!(residual[0].2.contains("label=\" 40\""), "{dot}");
        assert!(residual[0].2.contains("main ... c"), "{dot}");
    }

    #[test]
    fn redundant_residual_edge_is_removed() {
        // Keep main, a, c (cut b): main -> a -> c directly and main -> b -> c residually; the
        // residual main ... c is redundant (main reaches c through a) and lighter: removed.
        let tree = tree_of(&[("main;a;c", 50), ("main;a", 30), ("main;b;c", 5), ("main;z", 1)]);
        let dot = dot(&tree, "samples", "count", 3);
        let p = parse(&dot);
        assert_eq!(p.nodes.len(), 3, "{dot}");
        assert_eq!(p.edges.len(), 2, "{dot}");
        assert!(p.edges.iter().all(|(_, _, a)| !a.contains("dotted")), "{dot}");
    }

    #[test]
    fn recursion_counts_once() {
        let tree = tree_of(&[("f;f;f", 10), ("f;g", 5)]);
        let dot = dot(&tree, "samples", "count", 0);
        let p = parse(&dot);
        assert_eq!(p.nodes[0].1, "f\\n10 (66.67%)\\nof 15 (100%)", "{dot}");
        assert_eq!(p.edges.len(), 1, "no self edge: {dot}");
    }

    #[test]
    fn empty_tree_is_empty() {
        assert_eq!(dot(&FunctionTree::new(), "cpu", "nanoseconds", 100), "");
    }

    #[test]
    fn limits() {
        assert_eq!(dot_limits(None), (512, 100));
        assert_eq!(dot_limits(Some(0)), (512, 100));
        assert_eq!(dot_limits(Some(-3)), (512, 100));
        assert_eq!(dot_limits(Some(50)), (512, 50));
        assert_eq!(dot_limits(Some(2048)), (2048, 2048));
    }

    #[test]
    fn formatting() {
        assert_eq!(ValueFormat::new("nanoseconds").format(1_500_000_000), "1.50s");
        assert_eq!(ValueFormat::new("bytes").format(2048), "2048B");
        assert_eq!(ValueFormat::new("count").format(7), "7");
        assert_eq!(ValueFormat::new("count").format(0), "0");
        assert_eq!(ValueFormat::new("microseconds").format(10_000), "0.01s");
        assert_eq!(percentage(1, 2), "50.00%");
        assert_eq!(percentage(1, 200), "0.5%");
        assert_eq!(percentage(3, 250), "1.20%");
        assert_eq!(percentage(12, 100_000), "0.012%");
        assert_eq!(percentage(1, 10_000_000), "1e-05%");
        assert_eq!(percentage(0, 10), "0%");
        assert_eq!(percentage(10, 10), "100%");
        assert_eq!(dot_color(1.0, false), "#b20000");
        assert_eq!(dot_color(0.0, true), "#ededed");
        assert_eq!(shorten_function_name("github.com/x/y/v2/pkg.(*T).Run"), "pkg.(*T).Run");
        assert_eq!(shorten_function_name("java.util.HashMap.put(Ljava/lang/Object;)"), "HashMap.put");
        assert_eq!(shorten_function_name("std::vector<int>::push_back"), "std::vector<int>::push_back");
        assert_eq!(multiline_name("main.work"), "main\\nwork\\n");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\ld");
    }
}
