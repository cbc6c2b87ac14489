//! The pprof branch of `/ingest`: a raw pprof body (`format=pprof`) or an SDK form upload.

use crate::pprof;

use super::error::LegacyError;
use super::labelset::NameLabels;
use super::pprof_names::{SampleTypeConfigMap, metric_name, parse_sample_type_config};
use super::series_labels::{AppNameLabel, series_labels};
use super::{ConvertLimits, LegacyProfile, RequestMeta, multipart, spy_fixes};

/// `format=pprof`: the body is the pprof itself (gzip or not); it is never read as a form.
pub(super) fn from_raw_body(
    name: &NameLabels,
    meta: &RequestMeta,
    body: &[u8],
    limits: &ConvertLimits,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    convert_pprof(name, meta, body, None, limits)
}

/// A `multipart/form-data` upload with the fields `profile`, `prev_profile` and
/// `sample_type_config`; the first field of each name counts.
pub(super) fn from_form(
    name: &NameLabels,
    meta: &RequestMeta,
    content_type: &str,
    body: &[u8],
    limits: &ConvertLimits,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    let boundary = multipart::boundary(content_type)?;
    let parts = multipart::parse(body, &boundary, limits.max_form_size)?;
    let field = |n: &str| parts.iter().find(|p| p.name.as_deref() == Some(n)).map(|p| p.data);

    if field("prev_profile").is_some() {
        return Err(LegacyError::PrevProfile);
    }
    let profile = field("profile").ok_or(LegacyError::MissingProfile)?;
    let config = match field("sample_type_config") {
        Some(data) => parse_sample_type_config(data).map_err(LegacyError::SampleTypeConfig)?,
        None => None,
    };
    if profile.is_empty() {
        return Ok(Vec::new());
    }
    convert_pprof(name, meta, profile, config.as_ref(), limits)
}

/// Decodes the pprof, applies the per-agent repairs and derives the series labels. A profile
/// without samples yields no series (the upload succeeds and stores nothing).
fn convert_pprof(
    name: &NameLabels,
    meta: &RequestMeta,
    data: &[u8],
    config: Option<&SampleTypeConfigMap>,
    limits: &ConvertLimits,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    let decoded = pprof::decode(data, limits.max_profile_size)?;
    let mut profile = decoded.profile;
    if profile.sample.is_empty() {
        return Ok(Vec::new());
    }
    spy_fixes::fix_time(&mut profile, meta.from_nanos);
    spy_fixes::rewrite_scripting_function_names(&mut profile, &meta.spy_name);
    if spy_fixes::is_dotnet(&meta.spy_name, config) {
        spy_fixes::repair_dotnet_function_ids(&mut profile);
        spy_fixes::fix_dotnet_sample_types(&mut profile);
    }
    let metric = metric_name(&profile, config);
    // The app name is the service name verbatim: no suffix split on this path.
    let labels = series_labels(name, &name.app_name, &metric, &meta.spy_name, AppNameLabel::Drop);
    Ok(vec![LegacyProfile { labels, profile, uncompressed_size: decoded.uncompressed_size }])
}
