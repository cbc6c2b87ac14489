//! `/ingest` with a `multipart/form-data` Content-Type: the form parser and the pprof inside it.
#![no_main]

use flamedb_ingest::legacy::{ConvertLimits, IngestParams, convert};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000_000_000;
const CONTENT_TYPES: [&str; 4] = [
    "multipart/form-data; boundary=b",
    "multipart/form-data; boundary=\"a b\"",
    "multipart/form-data",
    "Multipart/Form-Data; boundary=------------------------1234567890abcdef",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let params = IngestParams {
        name: "app{env=fuzz}".to_string(),
        sample_rate: if sel & 4 != 0 { Some("100".to_string()) } else { None },
        ..IngestParams::default()
    };
    let limits = ConvertLimits { max_profile_size: 1 << 20, max_form_size: 4 << 20 };
    let _ = convert(&params, Some(CONTENT_TYPES[usize::from(sel & 3)]), body, NOW, &limits);
});
