//! (c) Tree build at Pyroscope's published scale: 3M unique stacks over a 10M-node stack-trace
//! tree, resolved to function names, cut to 16384 nodes and encoded as a flame graph, on one
//! thread (Pyroscope: 3.6 s, grafana/pyroscope#3348).

mod common;

use common::Rng;
use criterion::{Criterion, criterion_group, criterion_main};
use flamedb_exec::flamegraph::resolve::resolve_into;
use flamedb_exec::tree::FunctionTree;
use flamedb_ingest::head::symbols::{Function, Line, Location, Symbols};
use hashbrown::HashMap;

const STACKS: usize = 3_000_000;
const FUNCTIONS: u32 = 50_000;
/// Each function appears at several addresses (call sites), as in native profiles, so distinct
/// location paths merge into one function path.
const LOCATIONS_PER_FUNCTION: u32 = 4;

/// Stacks generated depth-first, as profiles list them: each stack keeps a random prefix of the
/// previous one and adds one to six new frames (3.5 on average), about 10M tree nodes in all.
fn partition() -> (Symbols, HashMap<u32, i64>) {
    let mut s = Symbols::default();
    let mut locations = Vec::with_capacity((FUNCTIONS * LOCATIONS_PER_FUNCTION) as usize);
    for f in 0..FUNCTIONS {
        let name = s.strings.intern(&format!("pkg{}.func{f}", f % 97));
        let fid = s.add_function(Function { name, system_name: name, filename: 0, start_line: 0 });
        for a in 0..LOCATIONS_PER_FUNCTION {
            let lines = smallvec::smallvec![Line { function: fid, line: a as i64 }];
            locations.push(s.add_location(Location { mapping: 0, address: u64::from(f * 16 + a), lines }));
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut values = HashMap::with_capacity(STACKS);
    let mut path: Vec<u32> = Vec::with_capacity(64);
    for _ in 0..STACKS {
        let keep = if path.is_empty() { 0 } else { rng.below(path.len() as u64 + 1) as usize };
        path.truncate(keep.min(40));
        let add = 1 + rng.below(6) as usize;
        for _ in 0..add {
            // Hot functions are called from many places: skew the choice towards low ids.
            let f = (rng.below(u64::from(FUNCTIONS)) * rng.below(1000) / 1000) as usize;
            let loc =
                locations[f * LOCATIONS_PER_FUNCTION as usize + rng.below(u64::from(LOCATIONS_PER_FUNCTION)) as usize];
            path.push(loc);
        }
        let id = s.tree.insert(path.iter().copied());
        *values.entry(id).or_insert(0) += 1 + rng.below(100) as i64;
    }
    (s, values)
}

fn bench(c: &mut Criterion) {
    let (symbols, values) = partition();
    let mut probe = FunctionTree::new();
    resolve_into(&mut probe, &symbols, &values);
    eprintln!(
        "tree bench: {} unique stacks, {} stack-trace tree nodes, {} function-tree nodes",
        values.len(),
        symbols.tree.len() - 1,
        probe.node_count()
    );
    drop(probe);
    let mut g = c.benchmark_group("tree");
    g.sample_size(10);
    g.bench_function("resolve_3M_stacks_cut_16384_flamegraph", |b| {
        b.iter(|| {
            let mut tree = FunctionTree::new();
            resolve_into(&mut tree, &symbols, &values);
            let cut = tree.truncate(16384);
            flamedb_planner::encode::flamegraph(&cut, 16384)
        })
    });
    // The floor on this machine: one sequential pass over the stack-trace tree writing three
    // node-sized arrays, as any build of a 10M-node tree must.
    g.bench_function("baseline_sequential_sweep", |b| {
        b.iter(|| {
            let (parents, locations) = (symbols.tree.parents(), symbols.tree.locations());
            let n = parents.len();
            let (mut a, mut c, mut d) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for i in 0..n {
                a.push(u64::from(parents[i]) << 32 | u64::from(locations[i]));
                c.push(i as i64);
                d.push(u64::MAX);
            }
            (a, c, d)
        })
    });
    // The same work by phase.
    g.bench_function("phase_resolve", |b| {
        b.iter(|| {
            let mut tree = FunctionTree::new();
            resolve_into(&mut tree, &symbols, &values);
            tree
        })
    });
    let mut full = FunctionTree::new();
    resolve_into(&mut full, &symbols, &values);
    g.bench_function("phase_cut_16384", |b| b.iter(|| full.truncate(16384)));
    let cut = full.truncate(16384);
    g.bench_function("phase_flamegraph_encode", |b| b.iter(|| flamedb_planner::encode::flamegraph(&cut, 16384)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
