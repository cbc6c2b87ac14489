//! `/ingest` text formats: `format=folded` (and none) or `lines`, over arbitrary bytes, with the
//! name, sampleRate and spyName picked by the first input byte.
#![no_main]

use flamedb_ingest::legacy::{ConvertLimits, IngestParams, convert};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000_000_000;
const NAMES: [&str; 4] = ["app.cpu", "app.cpu{env=prod,region=x}", "svc{profile_id=abc}", "bad{"];
const RATES: [Option<&str>; 4] = [None, Some("0"), Some("97"), Some("-5")];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let format = match sel & 3 {
        0 => None,
        1 => Some("folded"),
        2 => Some("lines"),
        _ => Some("collapsed"),
    };
    let params = IngestParams {
        name: NAMES[usize::from((sel >> 2) & 3)].to_string(),
        sample_rate: RATES[usize::from((sel >> 4) & 3)].map(str::to_string),
        spy_name: if sel & 0x40 != 0 { Some("rbspy".to_string()) } else { None },
        format: format.map(str::to_string),
        ..IngestParams::default()
    };
    let _ = convert(&params, Some("text/plain"), body, NOW, &ConvertLimits::default());
});
