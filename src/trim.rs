//! Size caps for captured strings and records, so one huge prompt cannot swamp a batch.
//!
//! [`Trim`] works on one string at a time: runs of base64 text (embedded files and images)
//! become `[base64: N bytes]`, then the string is cut on a char boundary to
//! `max_field_bytes` and marked with `…[truncated N bytes]`, N being the bytes removed.
//! [`cap_record`] shrinks a whole record under a byte budget, cutting the largest fields first
//! and the last user message and the output last.
//!
//! JSON text ([`TextKind::Json`]) that parses stays valid JSON: base64 is replaced inside
//! string values only, and a document over the cap becomes one JSON *string* holding the start
//! of the document's text followed by the truncation mark (a cut document would no longer
//! parse, and a string tells a reader plainly that it is not the original structure).
//!
//! [`Trim::redact_record`] redacts and trims in one walk, cutting a plain field far over its cap
//! before redacting it, at a point that splits no secret (see the `cut` module).
//!
//! Everything is linear in the text's length and never panics. No host calls.

mod cut;
mod runs;

use crate::record::TraceRecord;
use crate::redact::{
    for_each_text, is_json, json_escaped_len, message_text, push_json_string, rewrite_json,
    JsonToken, Redactor, TextKind,
};
use runs::LongRuns;

/// Default cap of one string, in bytes.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 32 * 1024;
/// Default shortest run of base64 characters that is replaced.
pub const DEFAULT_BASE64_MIN_RUN: usize = 1024;

const MARK_OPEN: &str = "…[truncated ";
const MARK_CLOSE: &str = " bytes]";
/// Longest truncation mark (`…[truncated N bytes]` with a 20-digit N).
pub const MAX_MARK_BYTES: usize = MARK_OPEN.len() + 20 + MARK_CLOSE.len();
/// What a cut field may exceed its cap by: the mark, and a JSON string's quotes.
const CUT_ALLOWANCE: usize = MAX_MARK_BYTES + 2;

/// Per-string limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// A longer string is cut to this many bytes (plus the truncation mark). A JSON document
    /// needs at least 2 bytes for its quotes, so it may exceed a smaller cap by that much.
    pub max_field_bytes: usize,
    /// Runs of at least this many base64 characters are replaced; 0 turns that off.
    pub base64_min_run: usize,
}

impl Default for Trim {
    fn default() -> Trim {
        Trim {
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            base64_min_run: DEFAULT_BASE64_MIN_RUN,
        }
    }
}

/// What trimming one string did.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    base64: bool,
    cut: bool,
}

impl Trim {
    /// Trims plain text: base64 runs, then the cap. Returns whether the text changed.
    pub fn field(&self, text: &mut String) -> bool {
        self.field_as(text, TextKind::Plain)
    }

    /// Trims text of the given kind (JSON that parses stays JSON). Returns whether it changed.
    pub fn field_as(&self, text: &mut String, kind: TextKind) -> bool {
        let outcome = self.apply(text, kind);
        outcome.base64 || outcome.cut
    }

    /// Trims every string of `record` that [`for_each_text`] visits. A field that was cut
    /// marks the record `truncated` (replacing base64 alone does not). Returns whether
    /// anything changed.
    pub fn record(&self, record: &mut TraceRecord) -> bool {
        self.each_field(record, |text, kind| self.apply(text, kind))
    }

    /// Redacts every string of `record` with `redactor`, then trims it: the same result as
    /// [`Redactor::redact_record`] followed by [`Trim::record`], except that a plain field far
    /// over the cap is cut before it is redacted (see the `cut` module), so that redaction reads
    /// about `max_field_bytes` of it rather than all of it. The truncation mark of such a
    /// field counts the bytes cut off as they were before redaction. Returns whether trimming
    /// changed anything.
    pub fn redact_record(&self, redactor: &Redactor, record: &mut TraceRecord) -> bool {
        self.each_field(record, |text, kind| {
            cut::redact_and_trim(self, redactor, text, kind)
        })
    }

    fn each_field(
        &self,
        record: &mut TraceRecord,
        mut apply: impl FnMut(&mut String, TextKind) -> Outcome,
    ) -> bool {
        let (mut changed, mut cut) = (false, false);
        for_each_text(record, |text, kind| {
            let outcome = apply(text, kind);
            changed |= outcome.base64 || outcome.cut;
            cut |= outcome.cut;
        });
        record.truncated |= cut;
        changed
    }

    /// Replaces base64 runs: in string values only when `json`. Returns whether any was.
    fn base64(&self, text: &mut String, json: bool) -> bool {
        if json {
            return rewrite_json(text, |token, value| match token {
                JsonToken::String => replace_base64(value, self.base64_min_run).map(|r| r.0),
                JsonToken::Number => None,
            });
        }
        match replace_base64(text, self.base64_min_run) {
            Some((replaced, _)) => {
                *text = replaced;
                true
            }
            None => false,
        }
    }

    fn apply(&self, text: &mut String, kind: TextKind) -> Outcome {
        let mut base64_possible = self.base64_min_run > 0 && text.len() >= self.base64_min_run;
        if kind == TextKind::Json && base64_possible {
            // Escapes decode to at most as many bytes as they take, and only `\/` and
            // `\uXXXX` (bytes of this class too) decode to base64 characters: a value with a
            // long run has a long run of this class in the text. Ruling that out spares
            // parsing the document.
            let run = |b: u8| is_base64(b) || b == b'\\';
            base64_possible = LongRuns::new(text.as_bytes(), self.base64_min_run, run)
                .next()
                .is_some();
        }
        if !base64_possible && text.len() <= self.max_field_bytes {
            return Outcome::default();
        }
        let json = kind == TextKind::Json && is_json(text);
        let base64 = base64_possible && self.base64(text, json);
        let cut = if json {
            cap_json(text, self.max_field_bytes)
        } else {
            cap_plain(text, self.max_field_bytes)
        };
        Outcome { base64, cut }
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// `text` with every run of at least `min_run` base64 (or base64url) characters, and its
/// `=`/`==` padding, replaced by `[base64: N bytes]` (N: the bytes replaced), and how many
/// bytes shorter that made it. Runs without a letter or digit (a rule of dashes) are not
/// base64. `None` when there is no such run; the runs are found by skipping (see
/// [`LongRuns`]), so text without any costs a few reads per `min_run` bytes.
fn replace_base64(text: &str, min_run: usize) -> Option<(String, usize)> {
    if min_run == 0 || text.len() < min_run {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let (mut copied, mut shrunk) = (0, 0);
    for (start, run_end) in LongRuns::new(bytes, min_run, is_base64) {
        let run = bytes.get(start..run_end).unwrap_or_default();
        if !run.iter().any(u8::is_ascii_alphanumeric) {
            continue;
        }
        let mut end = run_end;
        for _ in 0..2 {
            if bytes.get(end) == Some(&b'=') {
                end += 1;
            }
        }
        let out = out.get_or_insert_with(|| String::with_capacity(text.len() / 2));
        out.push_str(text.get(copied..start).unwrap_or_default());
        let placeholder = format!("[base64: {} bytes]", end - start);
        shrunk += (end - start).saturating_sub(placeholder.len());
        out.push_str(&placeholder);
        copied = end;
    }
    out.map(|mut out| {
        out.push_str(text.get(copied..).unwrap_or_default());
        (out, shrunk)
    })
}

/// Where a trailing truncation mark starts, and the bytes it says were removed.
fn split_mark(text: &str) -> (usize, Option<usize>) {
    let unmarked = (text.len(), None);
    let Some(rest) = text.strip_suffix(MARK_CLOSE) else {
        return unmarked;
    };
    let head = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = rest.get(head.len()..).unwrap_or_default();
    match (head.strip_suffix(MARK_OPEN), digits.parse::<usize>()) {
        (Some(body), Ok(removed)) if !digits.is_empty() => (body.len(), Some(removed)),
        _ => unmarked,
    }
}

fn push_mark(text: &mut String, removed: usize) {
    text.push_str(MARK_OPEN);
    text.push_str(&removed.to_string());
    text.push_str(MARK_CLOSE);
}

/// The longest prefix of `text` (a byte index on a char boundary) taking at most `budget`
/// bytes when each char is measured by `size`.
fn prefix_within(text: &str, budget: usize, size: impl Fn(char) -> usize) -> usize {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += size(c);
        if used > budget {
            return at;
        }
    }
    text.len()
}

/// The largest char boundary of `text` at or below `at`.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Cuts plain text longer than `max` to at most `max` bytes plus the mark. Text cut before
/// is cut again from its unmarked part, and the new mark counts both cuts.
fn cap_plain(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let (body, earlier) = split_mark(text);
    if earlier.is_some() && body <= max {
        return false;
    }
    let keep = floor_char_boundary(text, max.min(body));
    let removed = (body - keep).saturating_add(earlier.unwrap_or(0));
    text.truncate(keep);
    push_mark(text, removed);
    true
}

/// Cuts valid JSON text longer than `max`: the result is a JSON string of at most
/// `max.max(2)` bytes plus the mark. A JSON string document is cut in its decoded content
/// (so capping again is stable); any other document becomes a string of its text.
fn cap_json(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let (content, was_string) = match serde_json::from_slice::<String>(text.as_bytes()) {
        Ok(decoded) => (decoded, true),
        Err(_) => (std::mem::take(text), false),
    };
    let (body, earlier) = split_mark(&content);
    let head = content.get(..body).unwrap_or_default();
    let keep = prefix_within(head, max.saturating_sub(2), json_escaped_len);
    if was_string && earlier.is_some() && keep == head.len() {
        return false;
    }
    let mut kept = content.get(..keep).unwrap_or_default().to_string();
    if keep < head.len() || earlier.is_some() {
        push_mark(
            &mut kept,
            (body - keep).saturating_add(earlier.unwrap_or(0)),
        );
    }
    let mut out = String::with_capacity(kept.len() + 2);
    push_json_string(&mut out, &kept);
    *text = out;
    true
}

/// Cuts `text` to `max` bytes by its kind (plain, or JSON that parses).
fn cap_as(text: &mut String, max: usize, kind: TextKind) -> bool {
    if kind == TextKind::Json && text.len() > max && is_json(text) {
        cap_json(text, max)
    } else {
        cap_plain(text, max)
    }
}

/// The fields [`cap_record`] shrinks together, in the order it gives them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Tool definitions and every input message but the last user message.
    Context,
    /// The last input message with the `user` role.
    LastUser,
    /// Output choices and the error message.
    Output,
}

/// Shrinks `record` until [`TraceRecord::estimated_bytes`] is at most `max_record_bytes`, and
/// marks it `truncated` if anything changed. Fields give way in tiers: first the context (tool
/// definitions and the input messages other than the last user message), then the last user
/// message, then the output and the error message. Within a tier the largest fields are cut
/// first, all down to one common length, just as far as needed. If cutting is not enough,
/// whole context messages are dropped, oldest first. Ids, names of models and the path are
/// never cut, so a record whose fixed parts exceed the budget stays over it. Returns whether
/// anything changed.
pub fn cap_record(record: &mut TraceRecord, max_record_bytes: usize) -> bool {
    let mut changed = false;
    for tier in [Tier::Context, Tier::LastUser, Tier::Output] {
        let excess = record.estimated_bytes().saturating_sub(max_record_bytes);
        if excess == 0 {
            break;
        }
        changed |= shrink(tier_fields(record, tier), excess);
    }
    while record.estimated_bytes() > max_record_bytes && drop_oldest_context(record) {
        changed = true;
    }
    record.truncated |= changed;
    changed
}

fn last_user(record: &TraceRecord) -> Option<usize> {
    record.messages.iter().rposition(|m| m.role == "user")
}

fn tier_fields(record: &mut TraceRecord, tier: Tier) -> Vec<(&mut String, TextKind)> {
    let last_user = last_user(record);
    let mut fields = Vec::new();
    let mut collect = |text, kind| fields.push((text, kind));
    match tier {
        Tier::Context => {
            if let Some(tools) = record.tools_json.as_mut() {
                collect(tools, TextKind::Json);
            }
            for (i, message) in record.messages.iter_mut().enumerate() {
                if Some(i) != last_user {
                    message_text(message, &mut collect);
                }
            }
        }
        Tier::LastUser => {
            if let Some(message) = last_user.and_then(|i| record.messages.get_mut(i)) {
                message_text(message, &mut collect);
            }
        }
        Tier::Output => {
            for choice in &mut record.choices {
                message_text(&mut choice.message, &mut collect);
            }
            if let Some(error) = record.error.as_mut() {
                collect(&mut error.message, TextKind::Plain);
            }
        }
    }
    fields
}

/// Cuts the largest of `fields` to a common length so that together they lose `excess`
/// bytes (or as much as they can). Returns whether any field was cut.
fn shrink(mut fields: Vec<(&mut String, TextKind)>, excess: usize) -> bool {
    let lens: Vec<usize> = fields.iter().map(|(text, _)| text.len()).collect();
    let total: usize = lens.iter().sum();
    let level = water_level(&lens, total.saturating_sub(excess));
    // A cut field ends at most CUT_ALLOWANCE over its cap: cutting anything not longer than
    // that would only grow it.
    let threshold = level.max(CUT_ALLOWANCE);
    let cap = level.saturating_sub(CUT_ALLOWANCE);
    let mut changed = false;
    for (text, kind) in &mut fields {
        if text.len() > threshold {
            changed |= cap_as(text, cap, *kind);
        }
    }
    changed
}

/// The largest `level` with `Σ min(len, level) ≤ target`.
fn water_level(lens: &[usize], target: usize) -> usize {
    let filled = |level: usize| -> usize { lens.iter().map(|&len| len.min(level)).sum() };
    let (mut low, mut high) = (0, lens.iter().copied().max().unwrap_or(0));
    if filled(high) <= target {
        return high;
    }
    // Invariant: filled(low) <= target < filled(high).
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if filled(mid) <= target {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

/// Removes the oldest input message that is not the last user message; false when none is.
fn drop_oldest_context(record: &mut TraceRecord) -> bool {
    let keep = last_user(record);
    match (0..record.messages.len()).find(|&i| Some(i) != keep) {
        Some(i) => {
            record.messages.remove(i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Choice, ErrorInfo, Message, Part};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn trim(max_field_bytes: usize, base64_min_run: usize) -> Trim {
        Trim {
            max_field_bytes,
            base64_min_run,
        }
    }

    fn trimmed(t: Trim, text: &str, kind: TextKind) -> String {
        let mut text = text.to_string();
        t.field_as(&mut text, kind);
        text
    }

    #[test]
    fn base64_runs_are_replaced() {
        let t = trim(usize::MAX, 1024);
        let run = "QUJD".repeat(300);
        let mut text = format!("img: {run}== done, url-safe {}", "a-_9".repeat(256));
        assert!(t.field(&mut text));
        assert_eq!(
            text,
            "img: [base64: 1202 bytes] done, url-safe [base64: 1024 bytes]"
        );
        assert!(!t.field(&mut text), "nothing left to replace");
        for kept in ["A".repeat(1023), "-".repeat(2000), "ab cd".repeat(500)] {
            let mut text = kept.clone();
            assert!(!t.field(&mut text));
            assert_eq!(text, kept);
        }
        let mut off = "A".repeat(5000);
        assert!(
            !trim(usize::MAX, 0).field(&mut off),
            "0 turns base64 replacement off"
        );
    }

    #[test]
    fn cap_cuts_on_char_boundaries() {
        // "aé€bc": a = 1 byte, é = 2, € = 3, then b, c: 8 bytes.
        let cases = [
            (8, "aé€bc"),
            (6, "aé€…[truncated 2 bytes]"),
            (5, "aé…[truncated 5 bytes]"),
            (4, "aé…[truncated 5 bytes]"),
            (2, "a…[truncated 7 bytes]"),
            (0, "…[truncated 8 bytes]"),
        ];
        for (max, expected) in cases {
            assert_eq!(
                trimmed(trim(max, 1024), "aé€bc", TextKind::Plain),
                expected,
                "max {max}"
            );
        }
    }

    #[test]
    fn cutting_again_counts_every_cut() {
        let mut text = "aé€…[truncated 2 bytes]".to_string();
        assert!(
            !trim(6, 1024).field(&mut text),
            "a cut field within its cap stays"
        );
        assert!(trim(1, 1024).field(&mut text));
        assert_eq!(text, "a…[truncated 7 bytes]");
        assert!(!trim(1, 1024).field(&mut text));
    }

    #[test]
    fn base64_is_replaced_before_the_cap() {
        // "x [base64: 1600 bytes] y" is 24 bytes; 12 are kept.
        let text = format!("x {} y", "Zm9v".repeat(400));
        assert_eq!(
            trimmed(trim(12, 1024), &text, TextKind::Plain),
            "x [base64: 1…[truncated 12 bytes]"
        );
    }

    #[test]
    fn a_capped_json_document_becomes_a_json_string() {
        let doc = r#"["abcdefghijklmnopqrstuvwxyz"]"#;
        // Budget 12 - 2 quotes = 10 escaped bytes: `[` 1, `"` 2, then a..g.
        let capped = trimmed(trim(12, 1024), doc, TextKind::Json);
        assert_eq!(capped, r#""[\"abcdefg…[truncated 21 bytes]""#);
        let value: Value = serde_json::from_slice(capped.as_bytes()).expect("JSON");
        assert_eq!(value, json!(r#"["abcdefg…[truncated 21 bytes]"#));
        assert_eq!(
            trimmed(trim(12, 1024), &capped, TextKind::Json),
            capped,
            "stable"
        );
        assert_eq!(
            trimmed(trim(8, 1024), &capped, TextKind::Json),
            r#""[\"abc…[truncated 25 bytes]""#
        );
        assert_eq!(
            trimmed(trim(12, 1024), doc, TextKind::Plain),
            "[\"abcdefghij…[truncated 18 bytes]"
        );
        assert_eq!(trimmed(trim(30, 1024), doc, TextKind::Json), doc);
    }

    #[test]
    fn a_json_string_is_cut_in_its_content() {
        // Content "a\nbcdefghijk" is 12 bytes; 10 - 2 quotes leaves 8 escaped bytes: a, \n
        // (2), b..f.
        let capped = trimmed(trim(10, 1024), r#""a\nbcdefghijk""#, TextKind::Json);
        assert_eq!(capped, r#""a\nbcdef…[truncated 5 bytes]""#);
        let verbose = r#""\u0061\u0062""#;
        assert_eq!(trimmed(trim(8, 1024), verbose, TextKind::Json), r#""ab""#);
    }

    #[test]
    fn json_base64_is_replaced_inside_strings_only() {
        let run = "A".repeat(1100);
        let doc = format!(r#"{{"img": "\n{run}==", "{run}": 1, "n": [1, 2]}}"#);
        let out = trimmed(trim(usize::MAX, 1024), &doc, TextKind::Json);
        assert_eq!(
            out,
            format!(r#"{{"img": "\n[base64: 1102 bytes]", "{run}": 1, "n": [1, 2]}}"#)
        );
        let broken = format!(r#"{{"img": "{run}"#);
        assert_eq!(
            trimmed(trim(usize::MAX, 1024), &broken, TextKind::Json),
            r#"{"img": "[base64: 1100 bytes]"#,
            "text that is not JSON is plain text"
        );
    }

    #[test]
    fn escaped_base64_in_json_is_still_found() {
        // The raw text has no run of 1024 base64 characters (`\/` and `\u0041` break them),
        // the decoded value has one: the prefilter counts escapes as run bytes.
        let chunk = format!("{}\\/{}\\u0041", "Q".repeat(300), "R".repeat(300));
        let doc = format!(r#"{{"img": "{chunk}{chunk}"}}"#);
        let out = trimmed(trim(usize::MAX, 1024), &doc, TextKind::Json);
        assert_eq!(out, r#"{"img": "[base64: 1204 bytes]"}"#);
        // Short runs between escapes that decode to other characters stay.
        let prose = format!(r#"{{"t": "{}"}}"#, "word\\n".repeat(400));
        assert_eq!(
            trimmed(trim(usize::MAX, 1024), &prose, TextKind::Json),
            prose
        );
    }

    #[test]
    fn skipping_scan_finds_runs_anywhere() {
        let t = trim(usize::MAX, 64);
        for pad in 0..70 {
            let run = "Zm9v".repeat(16);
            let mut text = format!("{} {run} é", "ab ".repeat(pad));
            assert!(t.field(&mut text), "pad {pad}");
            assert_eq!(text, format!("{} [base64: 64 bytes] é", "ab ".repeat(pad)));
        }
        let mut short = format!("{} {}", "Zm9v".repeat(15), "abc");
        assert!(!t.field(&mut short));
    }

    fn message(role: &str, text: String) -> Message {
        Message {
            role: role.into(),
            parts: vec![Part::Text(text)],
            ..Message::default()
        }
    }

    fn text_of(message: &Message) -> &str {
        match message.parts.first() {
            Some(Part::Text(text)) => text,
            _ => "",
        }
    }

    #[test]
    fn record_trims_every_field() {
        let t = trim(100, 1024);
        let mut record = TraceRecord {
            messages: vec![message("user", "u".repeat(150))],
            choices: vec![Choice {
                message: Message {
                    role: "assistant".into(),
                    parts: vec![Part::ToolCall {
                        id: "c".into(),
                        name: "f".into(),
                        arguments: json!({ "q": "x".repeat(200) }).to_string(),
                    }],
                    ..Message::default()
                },
                ..Choice::default()
            }],
            error: Some(ErrorInfo {
                kind: "500".into(),
                message: "e".repeat(99),
            }),
            ..TraceRecord::default()
        };
        assert!(t.record(&mut record));
        assert!(record.truncated);
        assert_eq!(
            text_of(&record.messages[0]),
            format!("{}…[truncated 50 bytes]", "u".repeat(100))
        );
        match &record.choices[0].message.parts[0] {
            Part::ToolCall { arguments, .. } => {
                let value: Value =
                    serde_json::from_slice(arguments.as_bytes()).expect("still JSON");
                assert!(value
                    .as_str()
                    .is_some_and(|s| s.starts_with("{\"q\":\"xxx")));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(record.error.as_ref().map(|e| e.message.len()), Some(99));
        assert!(!t.record(&mut record), "trimming twice changes nothing");

        let mut images = TraceRecord {
            messages: vec![message("user", "B".repeat(2000))],
            ..TraceRecord::default()
        };
        assert!(Trim::default().record(&mut images));
        assert_eq!(text_of(&images.messages[0]), "[base64: 2000 bytes]");
        assert!(
            !images.truncated,
            "replacing base64 alone is not truncation"
        );
    }

    fn conversation() -> TraceRecord {
        TraceRecord {
            messages: vec![
                message("system", "s".repeat(10_000)),
                message("user", "b".repeat(2_000)),
                message("assistant", "c".repeat(3_000)),
                message("user", "d".repeat(500)),
            ],
            choices: vec![Choice {
                message: message("assistant", "e".repeat(800)),
                ..Choice::default()
            }],
            ..TraceRecord::default()
        }
    }

    #[test]
    fn cap_record_cuts_the_largest_context_first() {
        let mut record = conversation();
        assert!(!cap_record(&mut record, 100_000));
        assert_eq!(record, conversation());

        assert!(cap_record(&mut record, 5_000));
        assert!(
            record.estimated_bytes() <= 5_000,
            "{}",
            record.estimated_bytes()
        );
        assert!(record.truncated);
        let texts: Vec<&str> = record.messages.iter().map(text_of).collect();
        assert!(texts[0].starts_with("sss") && texts[0].contains("…[truncated "));
        assert_eq!(
            split_mark(texts[0]).0,
            split_mark(texts[2]).0,
            "cut to one length"
        );
        assert_eq!(split_mark(texts[0]).0, split_mark(texts[1]).0);
        assert_eq!(texts[3], "d".repeat(500), "last user message kept");
        assert_eq!(
            text_of(&record.choices[0].message),
            "e".repeat(800),
            "output kept"
        );
    }

    #[test]
    fn cap_record_cuts_the_last_user_message_before_the_output() {
        let mut record = conversation();
        assert!(cap_record(&mut record, 1_900));
        assert!(
            record.estimated_bytes() <= 1_900,
            "{}",
            record.estimated_bytes()
        );
        assert_eq!(record.messages.len(), 4);
        let last_user = text_of(&record.messages[3]);
        assert!(last_user.starts_with("ddd") && last_user.contains("d…[truncated "));
        assert_eq!(text_of(&record.choices[0].message), "e".repeat(800));

        let mut record = conversation();
        assert!(cap_record(&mut record, 0));
        assert!(record.truncated);
        assert_eq!(
            record.messages.len(),
            1,
            "only the last user message is left"
        );
        assert_eq!(record.messages[0].role, "user");
        assert!(text_of(&record.choices[0].message).starts_with("…[truncated 800 bytes]"));
    }

    #[test]
    fn water_level_is_the_largest_fitting_level() {
        assert_eq!(water_level(&[10, 3, 7], 20), 10);
        assert_eq!(water_level(&[10, 3, 7], 15), 6);
        assert_eq!(water_level(&[10, 3, 7], 0), 0);
        assert_eq!(water_level(&[], 0), 0);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "\\PC{0,30}".prop_map(Value::from),
            "[A-Za-z0-9+/]{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map("\\PC{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn plain_fields_stay_within_the_cap(
            text in "(\\PC|[A-Za-z0-9+/=]{0,60}){0,80}",
            max in 0usize..200,
            min_run in prop_oneof![Just(0usize), 21usize..60],
        ) {
            // Shorter runs would take the words of the marks themselves for base64.
            let mut out = text.clone();
            let changed = trim(max, min_run).field(&mut out);
            let (body, mark) = split_mark(&out);
            prop_assert!(out.len() <= max || (mark.is_some() && body <= max), "{out:?}");
            prop_assert_eq!(changed, out != text);
            let again = out.clone();
            prop_assert!(!trim(max, min_run).field(&mut out) && out == again, "idempotent");
        }

        #[test]
        fn json_stays_json(value in json_value(), max in 0usize..120, min_run in 0usize..30) {
            let mut text = value.to_string();
            trim(max, min_run).field_as(&mut text, TextKind::Json);
            prop_assert!(is_json(&text), "{}", text);
            // A cut document is `"` + at most max - 2 escaped bytes + mark + `"`.
            let (body, mark) = split_mark(text.trim_end_matches('"'));
            prop_assert!(text.len() <= max || (mark.is_some() && body < max.max(2)), "{text}");
        }

        #[test]
        fn records_fit_a_workable_cap(
            sizes in proptest::collection::vec(0usize..5_000, 1..10),
            output in 0usize..5_000,
            cap in 4_096usize..20_000,
        ) {
            let roles = ["system", "user", "assistant", "tool"];
            let messages = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| message(roles[i % roles.len()], "é".repeat(n / 2)))
                .collect();
            let mut record = TraceRecord {
                messages,
                tools_json: Some(json!([{ "d": "t".repeat(output) }]).to_string()),
                choices: vec![Choice { message: message("assistant", "o".repeat(output)), ..Choice::default() }],
                ..TraceRecord::default()
            };
            let over = record.estimated_bytes() > cap;
            prop_assert_eq!(cap_record(&mut record, cap), over);
            prop_assert!(record.estimated_bytes() <= cap, "{} > {}", record.estimated_bytes(), cap);
            prop_assert_eq!(record.truncated, over);
            prop_assert!(record.tools_json.as_deref().is_some_and(is_json));
        }
    }
}
