//! `POST /ingest?format=jfr`: Java Flight Recorder uploads (the pyroscope-java agent, built on
//! async-profiler). The body is the recording itself, or a `multipart/form-data` form with the
//! file fields `jfr` (required) and `labels` (optional `LabelsSnapshot`); either field may be
//! gzip'd (detected by its magic). Every decompression is capped by the form limit.
//!
//! The recording is first checked structurally ([`guard`]) so that the `jfrs` reader can only
//! see input it handles within bounded time and memory; then its events are turned into one
//! pprof per profile kind ([`convert`]), each pushed under the request's labels plus
//! `jfr_event` and the kind's `__name__`.

pub mod convert;
pub mod guard;
pub mod labels;
pub mod symbols;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message;

use crate::gzip::{self, DecompressError};

use super::error::LegacyError;
use super::labelset::NameLabels;
use super::series_labels::{AppNameLabel, series_labels};
use super::{ConvertLimits, LegacyProfile, RequestMeta, multipart};
use convert::Settings;
use labels::LabelsSnapshot;

/// The label carrying the async-profiler event setting of the recording.
pub const JFR_EVENT: &str = "jfr_event";

/// Why a JFR upload could not be converted (all answered with 422).
#[derive(Debug, thiserror::Error)]
pub enum JfrError {
    #[error("jfr field is required")]
    MissingJfr,
    /// Pyroscope refuses form parts shorter than the gzip magic.
    #[error("failed to read magic of the {0} field")]
    TooShort(&'static str),
    #[error("failed to decompress {part}: {source}")]
    Decompress {
        part: &'static str,
        #[source]
        source: DecompressError,
    },
    #[error("failed to parse labels form field: {0}")]
    Labels(#[from] prost::DecodeError),
    #[error(transparent)]
    Malformed(#[from] guard::Malformed),
    #[error("jfr parser error: {0}")]
    Read(#[from] jfrs::reader::Error),
    /// The reader panicked on input the guard let through (a guard gap; never expected).
    #[error("jfr parser failed on malformed input")]
    ReaderPanic,
}

/// Converts the body of a `format=jfr` request.
pub(super) fn convert(
    name: &NameLabels,
    meta: &RequestMeta,
    content_type: Option<&str>,
    body: &[u8],
    limits: &ConvertLimits,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    let (jfr, labels) = match content_type.filter(|ct| ct.to_ascii_lowercase().contains("multipart/form-data")) {
        Some(ct) => from_form(ct, body, limits)?,
        None => {
            let jfr = gzip::maybe_gunzip_capped(body, limits.max_form_size)
                .map_err(|source| JfrError::Decompress { part: "jfr", source })?;
            (jfr.into_owned(), LabelsSnapshot::default())
        }
    };
    let settings = Settings {
        time_nanos: meta.from_nanos,
        duration_nanos: meta.until_nanos.saturating_sub(meta.from_nanos),
        period: match meta.sample_rate {
            0 => 0,
            rate => 1_000_000_000 / i64::from(rate),
        },
    };
    let converted = read_recording(&jfr, &labels, &settings)?;
    Ok(converted
        .profiles
        .into_iter()
        .map(|(kind, profile)| {
            let mut labels =
                series_labels(name, &name.app_name, kind.metric(), &meta.spy_name, AppNameLabel::AsAppName);
            if !converted.event.is_empty() {
                labels.retain(|(k, _)| k != JFR_EVENT);
                labels.push((JFR_EVENT.to_string(), converted.event.clone()));
                labels.sort();
            }
            let uncompressed_size = profile.encoded_len();
            LegacyProfile { labels, profile, uncompressed_size }
        })
        .collect())
}

/// Checks, then reads the recording; a reader panic becomes an error.
pub fn read_recording(
    jfr: &[u8],
    labels: &LabelsSnapshot,
    settings: &Settings,
) -> Result<convert::Converted, JfrError> {
    guard::check(jfr)?;
    match catch_unwind(AssertUnwindSafe(|| convert::convert(jfr, labels, settings))) {
        Ok(result) => Ok(result?),
        Err(_) => Err(JfrError::ReaderPanic),
    }
}

/// Decompresses a form part (gzip or not), refusing parts shorter than the magic.
fn form_part(data: &[u8], part: &'static str, limit: usize) -> Result<Vec<u8>, JfrError> {
    if data.len() < gzip::GZIP_MAGIC.len() {
        return Err(JfrError::TooShort(part));
    }
    gzip::maybe_gunzip_capped(data, limit)
        .map(std::borrow::Cow::into_owned)
        .map_err(|source| JfrError::Decompress { part, source })
}

/// Reads the `jfr` and `labels` fields of the form (the first of each name counts).
fn from_form(
    content_type: &str,
    body: &[u8],
    limits: &ConvertLimits,
) -> Result<(Vec<u8>, LabelsSnapshot), LegacyError> {
    let boundary = multipart::boundary(content_type)?;
    let parts = multipart::parse(body, &boundary, limits.max_form_size)?;
    let field = |n: &str| parts.iter().find(|p| p.name.as_deref() == Some(n)).map(|p| p.data);
    let jfr = field("jfr").ok_or(JfrError::MissingJfr)?;
    let jfr = form_part(jfr, "jfr", limits.max_form_size)?;
    let labels = match field("labels") {
        Some(data) if !data.is_empty() => {
            let raw = form_part(data, "labels", limits.max_form_size)?;
            LabelsSnapshot::decode(raw.as_slice()).map_err(JfrError::Labels)?
        }
        _ => LabelsSnapshot::default(),
    };
    Ok((jfr, labels))
}
