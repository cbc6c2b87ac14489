//! The Connect unary decoders: every querier/push request message, as binary protobuf (prost) and
//! as proto3 JSON (pbjson through serde_json), plus the capped gunzip of compressed bodies.
#![no_main]

use flamedb_proto::{push::v1 as push, querier::v1 as q, types::v1 as types};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` as `T` both ways; results are dropped, only panics/hangs/ooms matter.
fn both<T: prost::Message + Default + serde::de::DeserializeOwned>(data: &[u8]) {
    let _ = T::decode(data);
    let _ = serde_json::from_slice::<T>(data);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    match sel % 17 {
        0 => both::<push::PushRequest>(body),
        1 => both::<q::ProfileTypesRequest>(body),
        2 => both::<types::LabelValuesRequest>(body),
        3 => both::<types::LabelNamesRequest>(body),
        4 => both::<q::SeriesRequest>(body),
        5 => both::<q::SelectMergeStacktracesRequest>(body),
        6 => both::<q::SelectMergeSpanProfileRequest>(body),
        7 => both::<q::SelectMergeProfileRequest>(body),
        8 => both::<q::SelectSeriesRequest>(body),
        9 => both::<q::SelectHeatmapRequest>(body),
        10 => both::<q::DiffRequest>(body),
        11 => both::<types::GetProfileStatsRequest>(body),
        12 => both::<q::AnalyzeQueryRequest>(body),
        13 => both::<flamedb_proto::google::v1::Profile>(body),
        14 => {
            let _ = flamedb_ingest::gzip::gunzip_capped(body, 1 << 20);
        }
        15 => {
            let _ = flamedb_ingest::gzip::maybe_gunzip_capped(body, 4096);
        }
        _ => {
            // Gzip'd JSON or protobuf, as a Connect client with `Connect-Content-Encoding: gzip` sends it.
            if let Ok(raw) = flamedb_ingest::gzip::gunzip_capped(body, 1 << 20) {
                both::<q::SelectMergeStacktracesRequest>(&raw);
                both::<push::PushRequest>(&raw);
            }
        }
    }
});
