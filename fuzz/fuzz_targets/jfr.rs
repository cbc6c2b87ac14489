//! `/ingest` with `format=jfr` over arbitrary bytes (the whole legacy convert path).
#![no_main]

use flamedb_ingest::legacy::{ConvertLimits, IngestParams, convert};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let params =
        IngestParams { name: "app{env=fuzz}".to_string(), format: Some("jfr".to_string()), ..IngestParams::default() };
    let limits = ConvertLimits { max_profile_size: 1 << 20, max_form_size: 4 << 20 };
    let _ = convert(&params, None, data, NOW, &limits);
});
