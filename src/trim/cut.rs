//! Redacting and trimming one field, cutting a field far over its cap *before* redacting it.
//!
//! Redacting all of a 1 MB prompt to keep its first 32 KiB wastes nearly all the work. A plain
//! field longer than `max_field_bytes` plus a margin is cut first, at a point `P` chosen so
//! that what is kept is redacted and trimmed exactly as in the whole text:
//!
//! - no match of a token rule (bearer token, API key, JWT) nor a base64 run crosses `P`: those
//!   are unbounded runs of token bytes, and `P` is the first char boundary past the target
//!   that is not one (see [`crate::redact::is_token_byte`]); a field that is one endless token
//!   is therefore redacted whole, as before;
//! - every other rule matches and reads a bounded stretch ahead of where its match starts
//!   (the built-ins a few hundred bytes, a literal its length, a pattern an assumed 4 KiB), for
//!   each of the redaction passes: [`Redactor::cut_margin`];
//! - replacing may shorten the text, which brings later text into the kept prefix: the margin
//!   is counted from where the kept prefix can end at most, `max_field_bytes` plus twice what
//!   replacements shortened (twice: a pass reads its margin in already shortened text). When
//!   the cut turns out too early, the cut is retried twice as far, up to the whole text.
//!
//! So a secret that starts in the kept prefix is redacted whole in the head before the head is
//! cut to the cap, never left half in the output. The only difference from redacting the
//! whole field is the count in the truncation mark, which tells the bytes cut off as they were
//! captured (the tail is never redacted, so its redacted length is unknown), and, for operator
//! patterns, matches longer than the reach assumed of them. JSON fields are redacted whole: a
//! cut document no longer parses, and their values must be decoded first.

use super::{floor_char_boundary, push_mark, replace_base64, split_mark, Outcome, Trim};
use crate::redact::{is_token_byte, Redactor, TextKind};

/// Redacts `text` with `redactor`, then trims it with `trim`.
pub(super) fn redact_and_trim(
    trim: &Trim,
    redactor: &Redactor,
    text: &mut String,
    kind: TextKind,
) -> Outcome {
    if kind == TextKind::Plain {
        if let Some(outcome) = cut_first(trim, redactor, text) {
            return outcome;
        }
    }
    if !redactor.is_empty() {
        redactor.redact_as(text, kind);
    }
    trim.apply(text, kind)
}

/// Cuts, redacts and trims plain `text` when it is far enough over the cap; `None` (and
/// `text` untouched) when it is not, or when no cut short of its end is safe.
fn cut_first(trim: &Trim, redactor: &Redactor, text: &mut String) -> Option<Outcome> {
    let max = trim.max_field_bytes;
    let margin = redactor.cut_margin();
    // An earlier truncation mark stays out of the cut; its count carries over.
    let (body, earlier) = split_mark(text);
    let unbounded = redactor.has_token_rules() || trim.base64_min_run > 0;
    let mut target = max.saturating_add(margin);
    while target < body {
        let at = safe_cut(text.get(..body)?, target, unbounded);
        if at >= body {
            return None;
        }
        let mut head = text.get(..at)?.to_string();
        let shrunk = redact_head(trim, redactor, &mut head);
        let needed = max
            .saturating_add(shrunk.bytes.saturating_mul(2))
            .saturating_add(margin);
        if needed <= at && head.len() > max {
            let keep = floor_char_boundary(&head, max);
            let removed = (head.len() - keep)
                .saturating_add(body - at)
                .saturating_add(earlier.unwrap_or(0));
            head.truncate(keep);
            push_mark(&mut head, removed);
            *text = head;
            return Some(Outcome {
                base64: shrunk.base64,
                cut: true,
            });
        }
        target = needed.max(target.saturating_mul(2));
    }
    None
}

/// What redacting and replacing base64 did to a head.
struct Shrunk {
    /// Bytes by which replacements were shorter than what they replaced.
    bytes: usize,
    /// Whether a base64 run was replaced.
    base64: bool,
}

/// Redacts a head, then replaces its base64 runs (what trimming does before the cap).
fn redact_head(trim: &Trim, redactor: &Redactor, head: &mut String) -> Shrunk {
    let redacted = redactor.redact_measured(head);
    let mut shrunk = Shrunk {
        bytes: redacted.shrunk,
        base64: false,
    };
    if let Some((replaced, bytes)) = replace_base64(head, trim.base64_min_run) {
        *head = replaced;
        shrunk.bytes = shrunk.bytes.saturating_add(bytes);
        shrunk.base64 = true;
    }
    shrunk
}

/// The first char boundary of `text` at or after `from` where a cut splits no unbounded match:
/// one not followed by a token byte when `unbounded` rules are on. `text.len()` if none.
fn safe_cut(text: &str, from: usize, unbounded: bool) -> usize {
    let bytes = text.as_bytes();
    let mut at = from;
    while at < bytes.len()
        && (!text.is_char_boundary(at)
            || (unbounded && bytes.get(at).is_some_and(|&b| is_token_byte(b))))
    {
        at += 1;
    }
    at.min(bytes.len())
}

#[cfg(test)]
mod tests;
