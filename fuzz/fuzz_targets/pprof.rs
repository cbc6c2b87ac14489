//! Push's decode path: gzip sniffing + capped gunzip + protobuf decode, then normalization with
//! the default limits (the input may be raw or gzip'd pprof).
#![no_main]

use flamedb_ingest::{normalize::normalize, pprof, validate::Limits};
use libfuzzer_sys::fuzz_target;

/// A fixed "now" so a profile's time_nanos of 0 lands inside the ingestion window.
const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(decoded) = pprof::decode(data, limits.max_profile_size_bytes) else { return };
    let labels = vec![("service_name".to_string(), "fuzz".to_string())];
    let _ = normalize(&labels, decoded.profile, None, &limits, NOW);
});
