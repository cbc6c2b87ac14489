//! The payload of one WAL frame: a tenant and one [`NormalizedProfile`] as a
//! `flamedb.v1.WalRecord` protobuf. The record holds the normalized form (not the pushed bytes) so
//! replay feeds `Head::append` exactly what it saw before the restart, independent of limits or
//! the clock at replay time.

use flamedb_proto::flamedb::v1::{WalLabel, WalRecord, WalRecordTenant, WalSeries};
use prost::Message;

use super::WalError;
use crate::model::labels::Labels;
use crate::normalize::{NormalizedProfile, SeriesProfile, StackValue, Stacks};

/// Key of `WalRecord.profile` (field 3, length-delimited). The profile is the bulk of a record, so
/// [`encode`] writes it straight from the borrowed [`NormalizedProfile`] under this key instead of
/// cloning it into an owned `WalRecord`.
const PROFILE_KEY: u8 = (3 << 3) | 2;

/// Encodes `p` pushed by `tenant` as a `WalRecord`.
pub fn encode(tenant: &str, p: &NormalizedProfile) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_into(tenant, p, &mut buf);
    buf
}

/// Appends the encoding of [`encode`] to `buf`, so the WAL can build a frame (header, then
/// payload) in one buffer and write it with one call.
pub(crate) fn encode_into(tenant: &str, p: &NormalizedProfile, buf: &mut Vec<u8>) {
    let rest = WalRecord {
        tenant: tenant.to_string(),
        partition: p.partition.clone(),
        profile: None,
        stack_locations: p.stacks.locations.clone(),
        stack_offsets: p.stacks.offsets.clone(),
        series: p.series.iter().map(encode_series).collect(),
        time_nanos: p.time_nanos,
        duration_nanos: p.duration_nanos,
        profile_id: p.profile_id.clone(),
    };
    let profile_len = p.profile.encoded_len();
    buf.reserve(rest.encoded_len() + 1 + prost::length_delimiter_len(profile_len) + profile_len);
    // Encoding into a Vec cannot run out of space: the only error prost reports is a full buffer.
    let _ = rest.encode(buf);
    // Field order on the wire does not matter to a protobuf decoder.
    buf.push(PROFILE_KEY);
    let _ = p.profile.encode_length_delimited(buf);
}

fn encode_series(s: &SeriesProfile) -> WalSeries {
    let mut out = WalSeries {
        labels: s.labels.iter().map(|l| WalLabel { name: l.name.clone(), value: l.value.clone() }).collect(),
        total: s.total,
        sample_stacks: s.samples.iter().map(|v| v.stack).collect(),
        sample_values: s.samples.iter().map(|v| v.value).collect(),
        span_sample_index: Vec::new(),
        span_ids: Vec::new(),
    };
    for (i, v) in s.samples.iter().enumerate() {
        if let Some(span) = v.span_id {
            out.span_sample_index.push(i as u32);
            out.span_ids.push(span);
        }
    }
    out
}

/// Decodes a record written by [`encode`] into its tenant and profile. Besides protobuf errors it
/// rejects records whose stacks or sample references are inconsistent, so nothing downstream can
/// index out of bounds on a record that was damaged in a way the checksum did not catch.
pub fn decode(bytes: &[u8]) -> Result<(String, NormalizedProfile), WalError> {
    let r = WalRecord::decode(bytes)?;
    let profile = r.profile.ok_or(WalError::InvalidRecord("missing profile"))?;
    let stacks = Stacks { locations: r.stack_locations, offsets: r.stack_offsets };
    check_stacks(&stacks)?;
    let n_stacks = stacks.len();
    let series = r.series.into_iter().map(|s| decode_series(s, n_stacks)).collect::<Result<Vec<_>, _>>()?;
    Ok((
        r.tenant,
        NormalizedProfile {
            partition: r.partition,
            profile,
            stacks,
            series,
            time_nanos: r.time_nanos,
            duration_nanos: r.duration_nanos,
            profile_id: r.profile_id,
        },
    ))
}

/// Reads only the tenant of an encoded record (the other fields are skipped, not parsed).
pub(crate) fn decode_tenant(bytes: &[u8]) -> Result<String, WalError> {
    Ok(WalRecordTenant::decode(bytes)?.tenant)
}

/// Offsets must start at 0 (when present), never decrease and end at the number of locations,
/// which is what [`Stacks::get`] relies on.
fn check_stacks(s: &Stacks) -> Result<(), WalError> {
    let Some((&first, &last)) = s.offsets.first().zip(s.offsets.last()) else {
        return if s.locations.is_empty() { Ok(()) } else { Err(WalError::InvalidRecord("locations without offsets")) };
    };
    if first != 0 || last as usize != s.locations.len() || s.offsets.windows(2).any(|w| w[0] > w[1]) {
        return Err(WalError::InvalidRecord("inconsistent stack offsets"));
    }
    Ok(())
}

fn decode_series(s: WalSeries, n_stacks: usize) -> Result<SeriesProfile, WalError> {
    if s.sample_stacks.len() != s.sample_values.len() || s.span_sample_index.len() != s.span_ids.len() {
        return Err(WalError::InvalidRecord("sample columns of different lengths"));
    }
    if s.sample_stacks.iter().any(|&i| i as usize >= n_stacks) {
        return Err(WalError::InvalidRecord("sample stack out of range"));
    }
    let mut samples: Vec<StackValue> = s
        .sample_stacks
        .into_iter()
        .zip(s.sample_values)
        .map(|(stack, value)| StackValue { stack, value, span_id: None })
        .collect();
    for (i, span) in s.span_sample_index.into_iter().zip(s.span_ids) {
        let sample = samples.get_mut(i as usize).ok_or(WalError::InvalidRecord("span sample out of range"))?;
        sample.span_id = Some(span);
    }
    let labels = Labels::from_pairs(s.labels.into_iter().map(|l| (l.name, l.value)));
    Ok(SeriesProfile { labels, samples, total: s.total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::tests::{assert_same, profile_with_spans};

    #[test]
    fn round_trip_is_exact() {
        let p = profile_with_spans(7);
        assert!(p.series.len() >= 2, "fixture has several series");
        assert!(p.series.iter().flat_map(|s| &s.samples).any(|v| v.span_id.is_some()));
        assert!(p.series.iter().flat_map(|s| &s.samples).any(|v| v.span_id.is_none()));
        assert!(p.profile_id.is_some());
        let bytes = encode("tenant-a", &p);
        let (tenant, q) = decode(&bytes).expect("decodes");
        assert_eq!(tenant, "tenant-a");
        assert_same(&p, &q);
        assert_eq!(decode_tenant(&bytes).expect("tenant"), "tenant-a");
    }

    #[test]
    fn absent_profile_id_stays_absent() {
        let mut p = profile_with_spans(1);
        p.profile_id = None;
        let (_, q) = decode(&encode("t", &p)).expect("decodes");
        assert_eq!(q.profile_id, None);
        p.profile_id = Some(String::new());
        let (_, q) = decode(&encode("t", &p)).expect("decodes");
        assert_eq!(q.profile_id.as_deref(), Some(""), "presence is kept even for an empty id");
    }

    #[test]
    fn inconsistent_records_are_errors_not_panics() {
        let mut p = profile_with_spans(2);
        p.stacks.offsets.push(u32::MAX);
        assert!(matches!(decode(&encode("t", &p)), Err(WalError::InvalidRecord(_))));

        let mut p = profile_with_spans(2);
        p.series[0].samples[0].stack = 10_000;
        assert!(matches!(decode(&encode("t", &p)), Err(WalError::InvalidRecord(_))));

        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(matches!(decode(&[]), Err(WalError::InvalidRecord("missing profile"))));
    }
}
