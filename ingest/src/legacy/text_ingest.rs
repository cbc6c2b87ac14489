//! The text branch of `/ingest` (folded and `lines`): the profile type comes from the app
//! name's suffix, and a pprof is synthesized from the stacks.

use super::error::LegacyError;
use super::labelset::NameLabels;
use super::series_labels::{AppNameLabel, series_labels};
use super::{LegacyProfile, RequestMeta, folded, suffix, synth};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextFormat {
    Folded,
    Lines,
}

pub(super) fn convert(
    name: &NameLabels,
    meta: &RequestMeta,
    body: &[u8],
    format: TextFormat,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    let text = std::str::from_utf8(body)?;
    let stacks = match format {
        TextFormat::Folded => folded::parse_folded(text)?,
        TextFormat::Lines => folded::parse_lines(text),
    };
    // Exemplar uploads of the OG agents: accepted and dropped.
    if name.has_profile_id() {
        return Ok(Vec::new());
    }
    let (service, suffix) = suffix::split_app_name(&name.app_name);
    let ty = suffix::profile_type(suffix, meta.sample_rate)?;
    let duration = meta.until_nanos.saturating_sub(meta.from_nanos).max(0);
    let profile = synth::build_profile(stacks, &ty, meta.from_nanos, duration);
    if profile.sample.is_empty() {
        return Ok(Vec::new());
    }
    let labels = series_labels(name, service, ty.metric, &meta.spy_name, AppNameLabel::AsAppName);
    Ok(vec![LegacyProfile { labels, profile, uncompressed_size: body.len() }])
}
