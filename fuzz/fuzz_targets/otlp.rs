//! OTLP profiles: protobuf decode of an `ExportProfilesServiceRequest`, then the conversion to
//! pprof, then normalization of every converted profile (what the OTLP endpoints do).
#![no_main]

use flamedb_ingest::{normalize::normalize, otlp, validate::Limits};
use flamedb_proto::opentelemetry::proto::collector::profiles::v1development::ExportProfilesServiceRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = ExportProfilesServiceRequest::decode(data) else { return };
    let Ok(profiles) = otlp::convert_request(&req, NOW) else { return };
    let limits = Limits::default();
    for p in profiles {
        let _ = normalize(&p.labels, p.profile, None, &limits, NOW);
    }
});
