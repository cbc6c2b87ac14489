//! The ingester head: every tenant's recent profiles in memory, Arrow-native. Per tenant it keeps
//! a series index, profile rows (series, time, total) and sample rows (stack-trace id, value), and
//! per service a symbols partition with a stack-trace prefix tree.

pub mod columns;
pub mod series;
pub mod symbols;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashMap;
use parking_lot::RwLock;
use roaring::RoaringBitmap;

use crate::model::{Labels, Matcher};
use crate::normalize::NormalizedProfile;
use columns::{Chunk, ChunkedTable, ProfileBuffer, ProfileRow, SampleBuffer, SampleRow};
use series::SeriesIndex;
use symbols::{Function, Line, Location, Mapping, SymbolPartition, Symbols};

/// All tenants' heads, plus the process-wide registry of symbol partitions that sample rows
/// refer to by key.
///
/// A flush cuts the live heads into *generations* that stay readable (`flushing`) until their
/// block is published; `finish_flush` swaps a generation for its block under the same lock that
/// `snapshot` holds, so a query sees every profile exactly once.
#[derive(Debug, Default)]
pub struct Head {
    tenants: RwLock<HashMap<String, Arc<TenantHead>>>,
    flushing: RwLock<Vec<Arc<TenantHead>>>,
    partitions: RwLock<HashMap<u64, Arc<SymbolPartition>>>,
    next_partition: AtomicU64,
}

/// What an append added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendStats {
    pub series_profiles: usize,
    pub samples: usize,
    pub new_series: usize,
}

impl Head {
    pub fn new() -> Self {
        Self::default()
    }

    /// The head of a tenant, created on first write.
    pub fn tenant_or_create(&self, tenant: &str) -> Arc<TenantHead> {
        if let Some(t) = self.tenants.read().get(tenant) {
            return t.clone();
        }
        self.tenants.write().entry_ref(tenant).or_insert_with(|| Arc::new(TenantHead::new(tenant.to_string()))).clone()
    }

    /// Moves every live tenant head into the flushing set (see `flushing`); writes after this
    /// go to fresh heads. The caller must make this atomic with the WAL rotation.
    pub fn cut(&self) {
        let mut live = self.tenants.write();
        self.flushing.write().extend(live.drain().map(|(_, t)| t));
    }

    /// The live (not yet cut) head of every tenant.
    pub fn live(&self) -> Vec<Arc<TenantHead>> {
        self.tenants.read().values().cloned().collect()
    }

    /// Every head generation of a tenant (live first, then flushing), read under the lock that
    /// `finish_flush` takes, together with whatever `f` reads (the tenant's blocks).
    pub fn snapshot<R>(&self, tenant: &str, f: impl FnOnce(Vec<Arc<TenantHead>>) -> R) -> R {
        let flushing = self.flushing.read();
        let mut heads: Vec<Arc<TenantHead>> = self.tenants.read().get(tenant).cloned().into_iter().collect();
        heads.extend(flushing.iter().filter(|t| t.id == tenant).cloned());
        f(heads)
    }

    /// Generations cut but not yet published as blocks.
    pub fn flushing(&self) -> Vec<Arc<TenantHead>> {
        self.flushing.read().clone()
    }

    /// Publishes a flushed generation: `publish` (adding its block to the readable set) runs
    /// under the lock `snapshot` takes, and the generation leaves the readable heads.
    pub fn finish_flush(&self, generation: &Arc<TenantHead>, publish: impl FnOnce()) {
        let mut flushing = self.flushing.write();
        publish();
        flushing.retain(|t| !Arc::ptr_eq(t, generation));
    }

    /// Registers a symbols partition (a new one of the head, or one read from storage) under a
    /// fresh process-wide key.
    pub fn register_partition(&self, tenant: &str, name: String, symbols: Symbols) -> Arc<SymbolPartition> {
        let key = self.next_partition.fetch_add(1, Ordering::Relaxed) + 1;
        let part = Arc::new(SymbolPartition::new(key, tenant.to_string(), name, symbols));
        self.partitions.write().insert(key, part.clone());
        part
    }

    /// Forgets partitions no longer referenced by any readable data (a deleted block).
    pub fn unregister_partitions(&self, keys: impl IntoIterator<Item = u64>) {
        let mut p = self.partitions.write();
        for k in keys {
            p.remove(&k);
        }
    }

    /// The head of a tenant, if it ever received data.
    pub fn tenant(&self, tenant: &str) -> Option<Arc<TenantHead>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// The partition a sample row's `partition` key names.
    pub fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>> {
        self.partitions.read().get(&key).cloned()
    }

    /// The partition `key` names if it holds one of `tenants`' symbols.
    pub fn tenant_partition(&self, tenants: &[String], key: u64) -> Option<Arc<SymbolPartition>> {
        self.partition(key).filter(|p| tenants.iter().any(|t| *t == p.tenant))
    }

    /// Stores a normalized profile for a tenant.
    pub fn append(&self, tenant: &str, p: &NormalizedProfile) -> AppendStats {
        let t = self.tenant_or_create(tenant);
        let partition = t.partition_or_create(&p.partition, || {
            self.register_partition(tenant, p.partition.clone(), Symbols::default())
        });
        let stack_ids = {
            let mut symbols = partition.symbols.write();
            insert_stacks(&mut symbols, p)
        };
        t.append_rows(p, partition.key, &stack_ids)
    }
}

/// Maps the profile's symbols into the partition (each string, function, mapping and location
/// once) and inserts every stack into the prefix tree; returns the stack-trace id of each stack.
fn insert_stacks(sym: &mut Symbols, p: &NormalizedProfile) -> Vec<u32> {
    const UNMAPPED: u32 = u32::MAX;
    let prof = &p.profile;
    let mut strings = vec![UNMAPPED; prof.string_table.len()];
    let mut functions = vec![UNMAPPED; prof.function.len() + 1];
    let mut mappings = vec![UNMAPPED; prof.mapping.len() + 1];
    let mut locations = vec![UNMAPPED; prof.location.len() + 1];
    mappings[0] = 0;

    let mut string = |sym: &mut Symbols, i: i64| -> u32 {
        let i = i as usize;
        match strings.get(i) {
            Some(&s) if s != UNMAPPED => s,
            Some(_) => {
                let id = sym.strings.intern(&prof.string_table[i]);
                strings[i] = id;
                id
            }
            None => 0,
        }
    };
    let mut out = Vec::with_capacity(p.stacks.len());
    let mut mapped: Vec<u32> = Vec::new();
    for si in 0..p.stacks.len() {
        mapped.clear();
        for &li in p.stacks.get(si) {
            let li = li as usize;
            if locations[li] == UNMAPPED {
                let loc = &prof.location[li - 1];
                let mi = loc.mapping_id as usize;
                if mi < mappings.len() && mappings[mi] == UNMAPPED {
                    let m = &prof.mapping[mi - 1];
                    let mapping = Mapping {
                        memory_start: m.memory_start,
                        memory_limit: m.memory_limit,
                        file_offset: m.file_offset,
                        filename: string(sym, m.filename),
                        build_id: string(sym, m.build_id),
                        has_functions: m.has_functions,
                    };
                    mappings[mi] = sym.add_mapping(mapping);
                }
                let mut lines = smallvec::SmallVec::with_capacity(loc.line.len());
                for line in &loc.line {
                    let fi = line.function_id as usize;
                    if functions[fi] == UNMAPPED {
                        let f = &prof.function[fi - 1];
                        let function = Function {
                            name: string(sym, f.name),
                            system_name: string(sym, f.system_name),
                            filename: string(sym, f.filename),
                            start_line: f.start_line,
                        };
                        functions[fi] = sym.add_function(function);
                    }
                    lines.push(Line { function: functions[fi], line: line.line });
                }
                let location =
                    Location { mapping: mappings.get(mi).copied().unwrap_or(0), address: loc.address, lines };
                locations[li] = sym.add_location(location);
            }
            mapped.push(locations[li]);
        }
        out.push(sym.tree.insert(mapped.iter().copied()));
    }
    out
}

/// One tenant's head.
#[derive(Debug)]
pub struct TenantHead {
    pub id: String,
    data: RwLock<TenantData>,
    partitions: RwLock<HashMap<String, Arc<SymbolPartition>>>,
}

#[derive(Debug, Default)]
struct TenantData {
    series: SeriesIndex,
    samples: ChunkedTable<SampleBuffer>,
    profiles: ChunkedTable<ProfileBuffer>,
    min_time_nanos: Option<i64>,
    max_time_nanos: Option<i64>,
}

/// Profile counts and time range of a tenant's head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantStats {
    pub series: usize,
    pub profiles: usize,
    pub samples: usize,
    pub min_time_nanos: Option<i64>,
    pub max_time_nanos: Option<i64>,
}

impl TenantHead {
    fn new(id: String) -> Self {
        Self { id, data: RwLock::default(), partitions: RwLock::default() }
    }

    fn partition_or_create(&self, name: &str, create: impl FnOnce() -> Arc<SymbolPartition>) -> Arc<SymbolPartition> {
        if let Some(p) = self.partitions.read().get(name) {
            return p.clone();
        }
        self.partitions.write().entry_ref(name).or_insert_with(create).clone()
    }

    fn append_rows(&self, p: &NormalizedProfile, partition: u64, stack_ids: &[u32]) -> AppendStats {
        let mut d = self.data.write();
        let before = d.series.len();
        let mut stats = AppendStats::default();
        for s in &p.series {
            let series_id = d.series.get_or_create(&s.labels, p.time_nanos);
            d.profiles.push(ProfileRow {
                series_id,
                time_nanos: p.time_nanos,
                duration_nanos: p.duration_nanos,
                total: s.total,
                partition,
                sample_count: s.samples.len() as u32,
                profile_id: p.profile_id.clone(),
            });
            for sv in &s.samples {
                d.samples.push(SampleRow {
                    series_id,
                    time_nanos: p.time_nanos,
                    partition,
                    stacktrace_id: stack_ids.get(sv.stack as usize).copied().unwrap_or(0),
                    value: sv.value,
                    span_id: sv.span_id,
                });
            }
            stats.series_profiles += 1;
            stats.samples += s.samples.len();
        }
        if !p.series.is_empty() {
            d.min_time_nanos = Some(d.min_time_nanos.map_or(p.time_nanos, |t| t.min(p.time_nanos)));
            d.max_time_nanos = Some(d.max_time_nanos.map_or(p.time_nanos, |t| t.max(p.time_nanos)));
        }
        stats.new_series = d.series.len() - before;
        stats
    }

    /// Ids of the series matching every matcher with profiles in `[min, max]` (ns).
    pub fn select_series(&self, matchers: &[Matcher], min_time_nanos: i64, max_time_nanos: i64) -> RoaringBitmap {
        self.data.read().series.select(matchers, min_time_nanos, max_time_nanos)
    }

    /// Labels of a series.
    pub fn series_labels(&self, id: u32) -> Option<Arc<Labels>> {
        self.data.read().series.get(id).map(|e| e.labels.clone())
    }

    /// Labels of many series at once (one lock), `None` for unknown ids.
    pub fn series_labels_many(&self, ids: impl IntoIterator<Item = u32>) -> Vec<(u32, Arc<Labels>)> {
        let d = self.data.read();
        ids.into_iter().filter_map(|id| d.series.get(id).map(|e| (id, e.labels.clone()))).collect()
    }

    /// Runs `f` over the series index under the read lock.
    pub fn with_series<R>(&self, f: impl FnOnce(&SeriesIndex) -> R) -> R {
        f(&self.data.read().series)
    }

    /// Every sample chunk as of now.
    pub fn sample_chunks(&self) -> Vec<Arc<Chunk>> {
        self.data.read().samples.snapshot()
    }

    /// Every profile chunk as of now.
    pub fn profile_chunks(&self) -> Vec<Arc<Chunk>> {
        self.data.read().profiles.snapshot()
    }

    pub fn stats(&self) -> TenantStats {
        let d = self.data.read();
        TenantStats {
            series: d.series.len(),
            profiles: d.profiles.rows(),
            samples: d.samples.rows(),
            min_time_nanos: d.min_time_nanos,
            max_time_nanos: d.max_time_nanos,
        }
    }

    /// Symbol partitions of this tenant.
    pub fn partitions(&self) -> Vec<Arc<SymbolPartition>> {
        self.partitions.read().values().cloned().collect()
    }
}
