//! The stack-based branch of `/ingest` (folded, `lines`, and the decoded `tree`, `trie` and
//! speedscope uploads): none of them says what was measured, so the profile type comes from the
//! app name's suffix, and a pprof is synthesized from the `(stack, count)` pairs.

use super::error::LegacyError;
use super::labelset::NameLabels;
use super::series_labels::{AppNameLabel, series_labels};
use super::{LegacyProfile, RequestMeta, folded, suffix, synth};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TextFormat {
    Folded,
    Lines,
}

/// Folded or `lines` text.
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
    from_stacks(name, meta, stacks, body.len())
}

/// The shared tail of every stack format: `stacks` are `;`-joined frames, root first. Uploads
/// whose name carries a `profile_id` (OG exemplars) are accepted and dropped; a profile without
/// non-zero samples yields nothing. `uncompressed_size` is what rate limits count.
///
/// One trailing `;` of a stack is ignored and an empty stack is dropped, as Pyroscope's tree
/// insert does (`a;b;` is `a;b`).
pub(super) fn from_stacks<'a>(
    name: &NameLabels,
    meta: &RequestMeta,
    stacks: impl IntoIterator<Item = (&'a str, u64)>,
    uncompressed_size: usize,
) -> Result<Vec<LegacyProfile>, LegacyError> {
    if name.has_profile_id() {
        return Ok(Vec::new());
    }
    let (service, suffix) = suffix::split_app_name(&name.app_name);
    let ty = suffix::profile_type(suffix, meta.sample_rate)?;
    let duration = meta.until_nanos.saturating_sub(meta.from_nanos).max(0);
    let stacks = stacks
        .into_iter()
        .map(|(stack, count)| (stack.strip_suffix(';').unwrap_or(stack), count))
        .filter(|(stack, _)| !stack.is_empty());
    let profile = synth::build_profile(stacks, &ty, meta.from_nanos, duration);
    if profile.sample.is_empty() {
        return Ok(Vec::new());
    }
    let labels = series_labels(name, service, ty.metric, &meta.spy_name, AppNameLabel::AsAppName);
    Ok(vec![LegacyProfile { labels, profile, uncompressed_size }])
}

/// Most stack bytes (summed lengths of all stacks) a binary or JSON upload may expand into.
pub const MAX_STACK_BYTES: usize = 128 << 20;
/// Most frames (summed over all stacks) a binary or JSON upload may expand into.
pub const MAX_STACK_FRAMES: usize = 16 << 20;

/// A tree, trie or speedscope upload expanded into more stack data than allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile expands into more than {MAX_STACK_BYTES} bytes or {MAX_STACK_FRAMES} frames of stacks")]
pub struct StackBudgetExceeded;

/// Counts the stacks a decoder emits. Tree-shaped formats store each frame once but a pprof
/// repeats the whole path in every sample, so a few kilobytes of deep tree could otherwise
/// become gigabytes of stacks.
#[derive(Debug, Clone)]
pub struct StackBudget {
    bytes_left: usize,
    frames_left: usize,
}

impl Default for StackBudget {
    fn default() -> Self {
        Self { bytes_left: MAX_STACK_BYTES, frames_left: MAX_STACK_FRAMES }
    }
}

impl StackBudget {
    /// Charges a stack of `bytes` bytes and `frames` frames.
    pub fn charge(&mut self, bytes: usize, frames: usize) -> Result<(), StackBudgetExceeded> {
        match (self.bytes_left.checked_sub(bytes), self.frames_left.checked_sub(frames)) {
            (Some(b), Some(f)) => {
                self.bytes_left = b;
                self.frames_left = f;
                Ok(())
            }
            _ => Err(StackBudgetExceeded),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::labelset;
    use super::*;

    fn meta() -> RequestMeta {
        RequestMeta { from_nanos: 10, until_nanos: 20, sample_rate: 0, spy_name: "x".into() }
    }

    #[test]
    fn trailing_separator_and_empty_stacks() {
        let name = labelset::parse("app.cpu").unwrap();
        let out = from_stacks(&name, &meta(), [("a;b;", 2), ("a;b", 3), (";", 4), ("", 5)], 7).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0].profile;
        // "a;b;" and "a;b" are one sample; ";" is the empty stack after trimming; both dropped.
        assert_eq!(p.sample.len(), 1);
        assert_eq!(p.sample[0].value, vec![5]);
        assert_eq!(p.sample[0].location_id.len(), 2);
        assert_eq!(out[0].uncompressed_size, 7);
        assert_eq!((p.time_nanos, p.duration_nanos), (10, 10));
    }

    #[test]
    fn profile_id_uploads_are_dropped_and_zero_profiles_yield_nothing() {
        let name = labelset::parse("app.cpu{profile_id=abc}").unwrap();
        assert!(from_stacks(&name, &meta(), [("a", 1)], 1).unwrap().is_empty());
        let name = labelset::parse("app.cpu").unwrap();
        assert!(from_stacks(&name, &meta(), [("a", 0)], 1).unwrap().is_empty());
        let name = labelset::parse("app.nope").unwrap();
        assert_eq!(from_stacks(&name, &meta(), [("a", 1)], 1).unwrap_err().http_status(), 400);
    }

    #[test]
    fn budget_runs_out() {
        let mut b = StackBudget { bytes_left: 10, frames_left: 3 };
        assert!(b.charge(4, 1).is_ok());
        assert!(b.charge(6, 2).is_ok());
        assert_eq!(b.charge(1, 0), Err(StackBudgetExceeded));
        let mut b = StackBudget { bytes_left: 100, frames_left: 3 };
        assert_eq!(b.charge(1, 4), Err(StackBudgetExceeded));
        assert!(b.charge(usize::MAX, 0).is_err());
    }
}
