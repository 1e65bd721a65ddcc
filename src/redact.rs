//! Redaction of secrets and personal data in every captured string, before a record is exported.
//!
//! A [`Redactor`] combines built-in scanners ([`Builtin`]: e-mail addresses, card numbers, bearer
//! tokens, API keys, JWTs, IPv4 addresses), operator literals and operator regular expressions.
//! Built-ins are hand-written byte scanners behind word-at-a-time prefilters (see `scan`): the
//! token rules only look at long runs of printable ASCII, e-mail at `@` signs, cards and IPv4
//! at long runs of digits, so ordinary text costs one quick pass per group and no allocation.
//! Literals are searched for through their rarest byte, and a pattern whose matches all start
//! with a fixed string only runs on text that contains it (see `literal`).
//!
//! Matches of all rules are merged (overlaps become one span) and each span is replaced by the
//! configured replacement, where `{kind}` names the rule (`[REDACTED:email]`). Replacing can
//! expose a new match (a literal next to a card number was hiding the card's boundary), so the
//! result is scanned again, up to [`MAX_PASSES`] times in all, until nothing matches.
//!
//! This module also owns the walk over a record's strings ([`for_each_text`]) shared with
//! [`crate::trim`], and the JSON-preserving rewrite both use for JSON text. No host calls.

mod literal;
mod scan;
mod swar;

use crate::config::ConfigError;
use crate::record::{Message, Part, TraceRecord};
use literal::{Literal, Pattern};
use scan::run_end;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

pub(crate) use scan::is_token_byte;

/// Operator literals accepted at most.
pub const MAX_LITERALS: usize = 256;
/// Bytes of one literal at most.
pub const MAX_LITERAL_BYTES: usize = 1024;
/// Operator patterns accepted at most.
pub const MAX_PATTERNS: usize = 64;
/// Bytes of one pattern's source at most.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Bytes of the replacement template at most.
pub const MAX_REPLACEMENT_BYTES: usize = 256;
/// Scans of one string at most: the first, plus rescans of what replacing exposed.
pub const MAX_PASSES: usize = 3;
/// Replacement used when none is configured.
pub const DEFAULT_REPLACEMENT: &str = "[REDACTED]";

/// Heap budget of one compiled pattern, so a config cannot make the filter balloon.
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
const CONFIG_KEYS: &[&str] = &["builtin", "literals", "patterns", "replacement"];
const DEFAULT_BUILTINS: [Builtin; 3] = [Builtin::BearerToken, Builtin::ApiKey, Builtin::Jwt];

/// How far the built-ins look ahead of the start of a bounded match: an e-mail address is at
/// most 64 + 1 + 253 bytes and its last domain label is read whole (up to 63 bytes), a card
/// number at most 19 digits and 18 separators, a dotted quad 15 bytes, each with a byte or two
/// of context. The token rules' matches are unbounded; a cut never splits them (see
/// [`is_token_byte`]).
const BUILTIN_REACH: usize = 512;
/// The reach assumed of an operator pattern. A regular expression can match arbitrarily far
/// (`secret.*`), so no margin is exact: a match that starts before a cut and is longer than
/// this may be cut short, or missed where the pattern needs what follows it (`$`, `\b`, an
/// alternative that only a longer text satisfies). Operator patterns describe identifiers and
/// keys of tens of bytes; 4 KiB, four times the longest pattern source, covers any match of a
/// pattern without unbounded repetition written within [`MAX_PATTERN_BYTES`] with room to
/// spare, at the cost of redacting 4 KiB per pass more of a field that is cut.
const PATTERN_REACH: usize = 4 * 1024;

/// A built-in detection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `local@domain.tld` addresses (not the login of a URL such as `https://user@host`).
    Email,
    /// 13–19 digit card numbers, optionally grouped by single spaces or dashes, Luhn-valid,
    /// starting with 2–6 (the card networks' industry digits; 1… is rather a timestamp).
    CardNumber,
    /// The credential after `Bearer ` (the word itself is kept).
    BearerToken,
    /// Provider keys with a well-known prefix (`sk-`, `sk-ant-`, `ghp_`, `AKIA`, `AIza`, …).
    ApiKey,
    /// JSON Web Tokens: dot-separated base64url segments, the first starting `eyJ`.
    Jwt,
    /// Dotted-quad IPv4 addresses.
    Ipv4,
}

impl Builtin {
    /// Every built-in, in the order they are documented.
    pub const ALL: [Builtin; 6] = [
        Builtin::Email,
        Builtin::CardNumber,
        Builtin::BearerToken,
        Builtin::ApiKey,
        Builtin::Jwt,
        Builtin::Ipv4,
    ];

    /// The name used in the configuration and in `{kind}`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::CardNumber => "card_number",
            Builtin::BearerToken => "bearer_token",
            Builtin::ApiKey => "api_key",
            Builtin::Jwt => "jwt",
            Builtin::Ipv4 => "ipv4",
        }
    }

    /// The built-in of a configuration name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// Which rule produced a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Builtin(Builtin),
    Literal,
    Pattern,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Builtin(b) => b.name(),
            Rule::Literal => "literal",
            Rule::Pattern => "pattern",
        }
    }
}

/// A byte range to replace. Scanners only produce ranges bounded by ASCII bytes (or by
/// `str` matches), so both ends are char boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    rule: Rule,
    /// Which rule names a span two rules both match exactly: the configured built-ins in
    /// their order, then literals, then patterns.
    rank: usize,
}

/// What redacting one string did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Redacted {
    /// Spans replaced, over every pass.
    pub spans: usize,
    /// Bytes by which replacements were shorter than what they replaced, summed over every
    /// pass (longer replacements count 0): no prefix of the text shrank by more.
    pub shrunk: usize,
}

/// Replaces secrets and personal data in text. Build one per configuration with
/// [`Redactor::from_config`]; [`Redactor::default`] is the default configuration (bearer
/// tokens, API keys and JWTs).
#[derive(Clone)]
pub struct Redactor {
    builtins: Vec<Builtin>,
    enabled: scan::Enabled,
    literals: Vec<Literal>,
    patterns: Vec<Pattern>,
    replacement: String,
}

impl Default for Redactor {
    fn default() -> Redactor {
        Redactor {
            builtins: DEFAULT_BUILTINS.to_vec(),
            enabled: scan::Enabled::of(&DEFAULT_BUILTINS),
            literals: Vec::new(),
            patterns: Vec::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
        }
    }
}

/// Shows what the redactor does without showing the literals (they may be secrets).
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let builtins: Vec<&str> = self.builtins.iter().map(|b| b.name()).collect();
        f.debug_struct("Redactor")
            .field("builtins", &builtins)
            .field("literals", &self.literals.len())
            .field("patterns", &self.patterns.len())
            .field("replacement", &self.replacement)
            .finish()
    }
}

impl Redactor {
    /// Builds the redactor of the configuration key `redact` (absent or `null`: the default).
    ///
    /// The object takes `builtin` (names of [`Builtin`]s; default
    /// `["bearer_token","api_key","jwt"]`, `[]` for none), `literals` (non-blank strings,
    /// matched case-sensitively), `patterns` (regular expressions in `regex-lite` syntax) and
    /// `replacement` (default `[REDACTED]`; `{kind}` becomes the rule's name: a built-in's
    /// name, `literal` or `pattern`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key path (`redact.patterns[1]`). Errors never repeat a
    /// literal or a pattern, which may be secrets.
    pub fn from_config(value: Option<&Value>) -> Result<Redactor, ConfigError> {
        let map = match value {
            None | Some(Value::Null) => return Ok(Redactor::default()),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(ConfigError::WrongType {
                    path: "redact".into(),
                    expected: "an object",
                })
            }
        };
        if let Some(key) = map.keys().find(|k| !CONFIG_KEYS.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey {
                path: format!("redact.{key}"),
            });
        }
        let builtins = parse_builtins(map)?;
        let redactor = Redactor {
            enabled: scan::Enabled::of(&builtins),
            builtins,
            literals: parse_literals(map)?,
            patterns: parse_patterns(map)?,
            replacement: parse_replacement(map)?,
        };
        redactor.check_replacement()?;
        Ok(redactor)
    }

    /// Whether the redactor has no rule at all (then it never changes anything).
    pub fn is_empty(&self) -> bool {
        self.builtins.is_empty() && self.literals.is_empty() && self.patterns.is_empty()
    }

    /// The redacted text, or `None` when nothing matched (no allocation then).
    pub fn redact(&self, text: &str) -> Option<String> {
        self.redact_counted(text).map(|(text, _)| text)
    }

    /// Redacts `text` in place and returns how many spans were replaced.
    pub fn redact_in_place(&self, text: &mut String) -> usize {
        self.redact_measured(text).spans
    }

    /// Redacts `text` in place and reports what that did.
    pub(crate) fn redact_measured(&self, text: &mut String) -> Redacted {
        match self.redact_counted(text) {
            Some((redacted, outcome)) => {
                *text = redacted;
                outcome
            }
            None => Redacted::default(),
        }
    }

    /// Redacts `text` of the given kind in place; JSON text that parses stays valid JSON (see
    /// [`TextKind::Json`]). Returns how many spans were replaced.
    pub fn redact_as(&self, text: &mut String, kind: TextKind) -> usize {
        match kind {
            TextKind::Plain => self.redact_in_place(text),
            TextKind::Json => self.redact_json(text),
        }
    }

    /// Redacts every string of `record` that can carry user content (see [`for_each_text`])
    /// and returns how many spans were replaced.
    pub fn redact_record(&self, record: &mut TraceRecord) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut count = 0;
        for_each_text(record, |text, kind| count += self.redact_as(text, kind));
        count
    }

    /// Bytes past the end of a kept prefix that redacting must also see so that the prefix is
    /// redacted as in the whole text: what a bounded rule reads ahead of a match's start (the
    /// built-ins', the longest literal, [`PATTERN_REACH`] for patterns), for each pass. Token
    /// rules and base64 runs are unbounded; a cut must not split them (see
    /// [`is_token_byte`]).
    pub(crate) fn cut_margin(&self) -> usize {
        let literal = self.literals.iter().map(Literal::len).max().unwrap_or(0);
        let pattern = if self.patterns.is_empty() {
            0
        } else {
            PATTERN_REACH
        };
        MAX_PASSES * BUILTIN_REACH.max(literal).max(pattern)
    }

    /// Whether a rule whose matches are unbounded runs of token bytes is on.
    pub(crate) fn has_token_rules(&self) -> bool {
        self.enabled.tokens()
    }

    /// JSON text: string values (not object keys) are redacted after decoding and re-encoded;
    /// a number that matches (a card number) becomes a JSON string. Text that does not parse
    /// as JSON is redacted as plain text.
    fn redact_json(&self, text: &mut String) -> usize {
        // Without escapes, every string value is a substring of the text bounded by quotes,
        // which the built-ins and literals treat like the ends of a string: no match in the
        // whole text means none in any value. Patterns may be anchored, so they are run on
        // the values, unless their fixed prefix is nowhere in the text.
        let patterns_ruled_out = self.patterns.iter().all(|p| p.ruled_out(text));
        if patterns_ruled_out && !text.contains('\\') && !self.matches_unanchored(text) {
            return 0;
        }
        if !is_json(text) {
            return self.redact_in_place(text);
        }
        let mut count = 0;
        rewrite_json(text, |_, value| {
            let (redacted, outcome) = self.redact_counted(value)?;
            count += outcome.spans;
            Some(redacted)
        });
        count
    }

    fn redact_counted(&self, text: &str) -> Option<(String, Redacted)> {
        let mut spans = Vec::new();
        self.find(text, &mut spans);
        if spans.is_empty() {
            return None;
        }
        let mut outcome = Redacted::default();
        let mut out = self.replace(text, &spans, &mut outcome);
        for _ in 1..MAX_PASSES {
            spans.clear();
            self.find(&out, &mut spans);
            if spans.is_empty() {
                break;
            }
            out = self.replace(&out, &spans, &mut outcome);
        }
        Some((out, outcome))
    }

    fn matches(&self, text: &str) -> bool {
        let mut spans = Vec::new();
        self.find(text, &mut spans);
        !spans.is_empty()
    }

    /// Whether a built-in or a literal matches in `text`.
    fn matches_unanchored(&self, text: &str) -> bool {
        let mut spans = Vec::new();
        self.find_unanchored(text, &mut spans);
        !spans.is_empty()
    }

    /// All matches of all rules, merged: sorted, non-overlapping, non-empty.
    fn find(&self, text: &str, spans: &mut Vec<Span>) {
        self.find_unanchored(text, spans);
        let rank = self.builtins.len() + 1;
        for pattern in &self.patterns {
            pattern.each(text, |start, end| {
                spans.push(Span {
                    start,
                    end,
                    rule: Rule::Pattern,
                    rank,
                });
            });
        }
        merge(spans);
    }

    /// The matches of the built-ins and literals, unsorted.
    fn find_unanchored(&self, text: &str, spans: &mut Vec<Span>) {
        let bytes = text.as_bytes();
        if !self.builtins.is_empty() {
            let rank = |b: Builtin| self.builtins.iter().position(|&x| x == b).unwrap_or(0);
            scan::scan(bytes, self.enabled, &mut |builtin, start, end| {
                debug_assert!(start < end);
                spans.push(Span {
                    start,
                    end,
                    rule: Rule::Builtin(builtin),
                    rank: rank(builtin),
                });
            });
        }
        let rank = self.builtins.len();
        for literal in &self.literals {
            literal.each(bytes, |start, end| {
                spans.push(Span {
                    start,
                    end,
                    rule: Rule::Literal,
                    rank,
                });
            });
        }
    }

    fn replace(&self, text: &str, spans: &[Span], outcome: &mut Redacted) -> String {
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for span in spans {
            out.push_str(text.get(copied..span.start).unwrap_or_default());
            let before = out.len();
            self.render(span.rule, &mut out);
            let rendered = out.len() - before;
            outcome.shrunk += (span.end - span.start).saturating_sub(rendered);
            copied = span.end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        outcome.spans += spans.len();
        out
    }

    fn render(&self, rule: Rule, out: &mut String) {
        let mut pieces = self.replacement.split("{kind}");
        out.push_str(pieces.next().unwrap_or_default());
        for piece in pieces {
            out.push_str(rule.name());
            out.push_str(piece);
        }
    }

    /// A replacement that a rule matches would be redacted again on every pass.
    fn check_replacement(&self) -> Result<(), ConfigError> {
        let rules = self
            .builtins
            .iter()
            .map(|b| Rule::Builtin(*b))
            .chain([Rule::Literal, Rule::Pattern]);
        for rule in rules {
            let mut rendered = String::new();
            self.render(rule, &mut rendered);
            if self.matches(&rendered) {
                return Err(ConfigError::Invalid {
                    path: "redact.replacement".into(),
                    reason: "a redaction rule matches the replacement itself",
                });
            }
        }
        Ok(())
    }
}

/// Sorts spans and merges overlapping ones; a merged span keeps the rule of its first part.
fn merge(spans: &mut Vec<Span>) {
    // Of two rules matching the same span, the one configured first names it.
    spans.sort_unstable_by_key(|s| (s.start, std::cmp::Reverse(s.end), s.rank));
    // `dedup_by` hands each span with the last one kept, and drops it when told to.
    spans.dedup_by(|next, kept| {
        let overlaps = next.start < kept.end;
        if overlaps {
            kept.end = kept.end.max(next.end);
        }
        overlaps
    });
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The non-null value of `key`.
fn config_value<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// The strings of the array at `redact.<key>`, each checked for blankness and size.
fn string_items<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    max_bytes: usize,
) -> Result<Option<Vec<&'a str>>, ConfigError> {
    let Some(value) = config_value(map, key) else {
        return Ok(None);
    };
    let items = value.as_array().ok_or_else(|| ConfigError::WrongType {
        path: format!("redact.{key}"),
        expected: "an array of strings",
    })?;
    let mut strings = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = || format!("redact.{key}[{i}]");
        let text = item.as_str().ok_or_else(|| ConfigError::WrongType {
            path: path(),
            expected: "a string",
        })?;
        if text.trim().is_empty() {
            return Err(ConfigError::Invalid {
                path: path(),
                reason: "must not be empty or blank",
            });
        }
        if text.len() > max_bytes {
            return Err(ConfigError::Invalid {
                path: path(),
                reason: "too long (see the README for bounds)",
            });
        }
        strings.push(text);
    }
    Ok(Some(strings))
}

fn too_many(key: &str) -> ConfigError {
    ConfigError::Invalid {
        path: format!("redact.{key}"),
        reason: "too many entries (see the README for bounds)",
    }
}

fn parse_builtins(map: &Map<String, Value>) -> Result<Vec<Builtin>, ConfigError> {
    let Some(names) = string_items(map, "builtin", 32)? else {
        return Ok(DEFAULT_BUILTINS.to_vec());
    };
    let mut builtins = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let builtin = Builtin::from_name(name).ok_or_else(|| ConfigError::Invalid {
            path: format!("redact.builtin[{i}]"),
            reason: "unknown rule (email, card_number, bearer_token, api_key, jwt, ipv4)",
        })?;
        if !builtins.contains(&builtin) {
            builtins.push(builtin);
        }
    }
    Ok(builtins)
}

fn parse_literals(map: &Map<String, Value>) -> Result<Vec<Literal>, ConfigError> {
    let literals = string_items(map, "literals", MAX_LITERAL_BYTES)?.unwrap_or_default();
    if literals.len() > MAX_LITERALS {
        return Err(too_many("literals"));
    }
    let mut unique: Vec<Literal> = Vec::with_capacity(literals.len());
    for literal in literals {
        if !unique.iter().any(|u| u.as_str() == literal) {
            unique.push(Literal::new(literal));
        }
    }
    Ok(unique)
}

fn parse_patterns(map: &Map<String, Value>) -> Result<Vec<Pattern>, ConfigError> {
    let sources = string_items(map, "patterns", MAX_PATTERN_BYTES)?.unwrap_or_default();
    if sources.len() > MAX_PATTERNS {
        return Err(too_many("patterns"));
    }
    let mut patterns = Vec::with_capacity(sources.len());
    for (i, source) in sources.into_iter().enumerate() {
        let invalid = |reason| ConfigError::Invalid {
            path: format!("redact.patterns[{i}]"),
            reason,
        };
        let pattern = regex_lite::RegexBuilder::new(source)
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|_| invalid("not a valid regular expression (or too large)"))?;
        if pattern.is_match("") {
            return Err(invalid("matches the empty string"));
        }
        patterns.push(Pattern::new(pattern, source));
    }
    Ok(patterns)
}

fn parse_replacement(map: &Map<String, Value>) -> Result<String, ConfigError> {
    match config_value(map, "replacement") {
        None => Ok(DEFAULT_REPLACEMENT.to_string()),
        Some(Value::String(s)) if s.len() <= MAX_REPLACEMENT_BYTES => Ok(s.clone()),
        Some(Value::String(_)) => Err(ConfigError::Invalid {
            path: "redact.replacement".into(),
            reason: "too long (see the README for bounds)",
        }),
        Some(_) => Err(ConfigError::WrongType {
            path: "redact.replacement".into(),
            expected: "a string",
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Walking a record's text, and rewriting JSON text
// ---------------------------------------------------------------------------------------------

/// How a captured string may be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Free text: any rewrite goes.
    Plain,
    /// JSON text (tool-call arguments, tool definitions, unrecognised parts). When it parses,
    /// rewrites keep it valid JSON: redaction and base64 trimming touch only string values
    /// (never object keys), and a capped document becomes one JSON string holding the start of
    /// the document's text (see [`crate::trim`]). Text that does not parse is plain text.
    Json,
}

/// Calls `f` on every string of `record` that can carry user content, with its kind: request
/// path, message and choice parts (text, reasoning, tool-call name and arguments, media URLs,
/// other parts' JSON), participant names, tool definitions, stop sequences, the error message,
/// the unparsed-body notes, and the context (its fields, tags, and the strings inside metadata
/// values). Provider ids, model names, roles and object keys are not visited.
pub fn for_each_text(record: &mut TraceRecord, mut f: impl FnMut(&mut String, TextKind)) {
    use TextKind::{Json, Plain};
    f(&mut record.path, Plain);
    record
        .messages
        .iter_mut()
        .for_each(|m| message_text(m, &mut f));
    record
        .choices
        .iter_mut()
        .for_each(|c| message_text(&mut c.message, &mut f));
    record.tools_json.iter_mut().for_each(|t| f(t, Json));
    record.params.stop.iter_mut().for_each(|s| f(s, Plain));
    record
        .error
        .iter_mut()
        .for_each(|e| f(&mut e.message, Plain));
    context_text(&mut record.context, &mut f);
    record.unparsed.iter_mut().for_each(|u| f(u, Plain));
}

/// The caller-given strings of a context: its fields, tags and the strings in metadata values.
fn context_text(ctx: &mut crate::context::Context, f: &mut impl FnMut(&mut String, TextKind)) {
    let fields = [
        &mut ctx.user,
        &mut ctx.session,
        &mut ctx.chat_id,
        &mut ctx.message_id,
        &mut ctx.organization_id,
        &mut ctx.project_id,
        &mut ctx.project_name,
        &mut ctx.trace_name,
        &mut ctx.release,
        &mut ctx.environment,
    ];
    for value in fields.into_iter().flatten() {
        f(value, TextKind::Plain);
    }
    ctx.tags.iter_mut().for_each(|t| f(t, TextKind::Plain));
    ctx.metadata.values_mut().for_each(|v| value_text(v, f));
}

/// The strings inside a JSON value, nested ones included (object keys are not visited).
fn value_text(value: &mut Value, f: &mut impl FnMut(&mut String, TextKind)) {
    match value {
        Value::String(s) => f(s, TextKind::Plain),
        Value::Array(items) => items.iter_mut().for_each(|v| value_text(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| value_text(v, f)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The user-content strings of one message.
pub(crate) fn message_text<'a>(
    message: &'a mut Message,
    f: &mut impl FnMut(&'a mut String, TextKind),
) {
    message.name.iter_mut().for_each(|n| f(n, TextKind::Plain));
    message.parts.iter_mut().for_each(|p| part_text(p, f));
}

/// The user-content strings of one part.
pub(crate) fn part_text<'a>(part: &'a mut Part, f: &mut impl FnMut(&'a mut String, TextKind)) {
    match part {
        Part::Text(text) | Part::Reasoning(text) => f(text, TextKind::Plain),
        Part::ToolCall {
            name, arguments, ..
        } => {
            f(name, TextKind::Plain);
            f(arguments, TextKind::Json);
        }
        Part::Uri { uri, .. } => f(uri, TextKind::Plain),
        Part::Other { json, .. } => f(json, TextKind::Json),
    }
}

/// Whether `text` is one valid JSON document.
pub(crate) fn is_json(text: &str) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(text.as_bytes()).is_ok()
}

/// A JSON value token handed to [`rewrite_json`]'s callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonToken {
    /// A string value (not an object key); the callback sees its decoded content.
    String,
    /// A number; the callback sees its text.
    Number,
}

/// Rewrites the string values and numbers of the valid JSON document `text`: `f` returns the
/// new content of a token or `None` to keep it; new content is always written as a JSON
/// string. Object keys, structure and untouched tokens are kept byte for byte. Returns whether
/// anything changed. On text that is not JSON the result is unspecified (but valid UTF-8).
pub(crate) fn rewrite_json(
    text: &mut String,
    mut f: impl FnMut(JsonToken, &str) -> Option<String>,
) -> bool {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let (token, end) = match b {
            b'"' => (JsonToken::String, json_string_end(bytes, i)),
            b'-' | b'0'..=b'9' => (
                JsonToken::Number,
                run_end(bytes, i, |c| c.is_ascii_digit() || b"+-.eE".contains(&c)),
            ),
            _ => {
                i += 1;
                continue;
            }
        };
        let raw = text.get(i..end).unwrap_or_default();
        let is_key = token == JsonToken::String
            && bytes
                .get(end..)
                .unwrap_or_default()
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                == Some(&b':');
        let content = match token {
            JsonToken::String => decode_json_string(raw),
            JsonToken::Number => Cow::Borrowed(raw),
        };
        if let Some(new) = (!is_key).then(|| f(token, &content)).flatten() {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(text.get(copied..i).unwrap_or_default());
            push_json_string(out, &new);
            copied = end;
        }
        i = end.max(i + 1);
    }
    match out {
        Some(mut out) => {
            out.push_str(text.get(copied..).unwrap_or_default());
            *text = out;
            true
        }
        None => false,
    }
}

/// Index just past the closing quote of the string opening at `start` (the end of the text
/// when it is not closed).
fn json_string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The content of a JSON string literal (quotes included in `raw`). Escapes are decoded; a
/// literal that does not decode (a lone surrogate) is taken as it is written.
fn decode_json_string(raw: &str) -> Cow<'_, str> {
    let inner = raw
        .strip_prefix('"')
        .map(|r| r.strip_suffix('"').unwrap_or(r))
        .unwrap_or(raw);
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    serde_json::from_slice::<String>(raw.as_bytes()).map_or(Cow::Borrowed(inner), Cow::Owned)
}

/// Bytes `c` takes inside a JSON string as [`push_json_string`] writes it.
pub(crate) fn json_escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if u32::from(c) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Appends `s` as a JSON string literal, quotes included.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::scan::luhn;
    use super::*;
    use crate::record::{Choice, ErrorInfo};
    use proptest::prelude::*;
    use serde_json::json;

    // Key-shaped test values are assembled with `concat!` so that no contiguous credential
    // pattern sits in the source.
    const OPENAI_KEY: &str = concat!("sk-", "proj-", "Ab3dEf6hIj9kLm2nOp5qRs8t");
    const ANTHROPIC_KEY: &str = concat!("sk-", "ant-", "api03-", "Zx9Yw8Vu7Ts6Rq5Po4Nm");
    const GITHUB_TOKEN: &str = concat!("gh", "p_", "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8");
    const AWS_KEY: &str = concat!("AKIA", "IOSFODNN7EXAMPLE");
    const GOOGLE_KEY: &str = concat!("AIza", "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q");
    const HF_TOKEN: &str = concat!("hf", "_", "AbCdEfGhIjKlMnOpQrStUvWxYz");
    const SLACK_TOKEN: &str = concat!("xo", "xb-", "1234567890-0987654321-AbCdEf");
    const JWT: &str = concat!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    );

    fn redactor(config: Value) -> Redactor {
        Redactor::from_config(Some(&config)).expect("valid redact config")
    }

    fn only(builtin: &str) -> Redactor {
        redactor(json!({ "builtin": [builtin] }))
    }

    /// Each case is (input, expected output); `None` means nothing may change.
    fn check(r: &Redactor, cases: &[(&str, Option<&str>)]) {
        for (input, expected) in cases {
            assert_eq!(r.redact(input).as_deref(), *expected, "input: {input:?}");
        }
    }

    #[test]
    fn emails() {
        check(
            &only("email"),
            &[
                (
                    "write to jane.doe+tag@mail.example.co.uk.",
                    Some("write to [REDACTED]."),
                ),
                ("mailto:a@b.io", Some("mailto:[REDACTED]")),
                (".a@b.com", Some(".[REDACTED]")),
                (
                    "https://x.com/contact?email=bob@corp.com&x=1",
                    Some("https://x.com/contact?email=[REDACTED]&x=1"),
                ),
                ("https://user@example.com/path", None),
                ("https://user:pw@example.com/", None),
                ("https://medium.com/@alice", None),
                ("npm i left-pad@1.3.0", None),
                ("root@localhost", None),
                ("a.@b.com", None),
                ("@b.com", None),
                ("a@b.c0m", None),
            ],
        );
    }

    #[test]
    fn card_numbers() {
        check(
            &only("card_number"),
            &[
                ("pay 4111 1111 1111 1111 now", Some("pay [REDACTED] now")),
                ("4111-1111-1111-1111", Some("[REDACTED]")),
                ("amex 378282246310005.", Some("amex [REDACTED].")),
                ("\"4000000000000002\"", Some("\"[REDACTED]\"")),
                (
                    "cards 5555555555554444,4000000000000002",
                    Some("cards [REDACTED],[REDACTED]"),
                ),
                ("4111 1111 1111 1112", None),
                ("1000000000000008", None),
                ("order4111111111111111", None),
                ("4111111111111111x", None),
                ("41111111111111111111111", None),
                ("4111  1111 1111 1111", None),
                ("4111111 111111111", None), // Luhn-valid digits, groups too long
            ],
        );
        assert!(luhn(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8]));
        assert!(!luhn(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]));
    }

    #[test]
    fn bearer_tokens() {
        check(
            &only("bearer_token"),
            &[
                (
                    "Authorization: Bearer abcDEF123456",
                    Some("Authorization: Bearer [REDACTED]"),
                ),
                ("BEARER\tXyZ0123456789==;", Some("BEARER\t[REDACTED];")),
                ("bearer  a.b-c_d~e+f/g1", Some("bearer  [REDACTED]")),
                ("Bearer short1", None),
                ("the bearer receives everything", None),
                ("Bearer [REDACTED]", None),
                ("Bearer:abcDEF123456", None),
                ("xBearer abcDEF123456", None),
            ],
        );
    }

    #[test]
    fn api_keys() {
        let r = only("api_key");
        for key in [
            OPENAI_KEY,
            ANTHROPIC_KEY,
            GITHUB_TOKEN,
            AWS_KEY,
            GOOGLE_KEY,
            HF_TOKEN,
            SLACK_TOKEN,
        ] {
            let text = format!("key=\"{key}\" ok");
            assert_eq!(
                r.redact(&text).as_deref(),
                Some("key=\"[REDACTED]\" ok"),
                "{key}"
            );
        }
        check(
            &r,
            &[
                ("pip install sk-learn", None),
                ("sk-learn-is-a-great-library-for-ml", None),
                ("sk-abc123", None),
                (concat!("task-", "abc123def456ghi789jkl"), None),
                (concat!("my_", "sk-", "abc123def456ghi789jkl"), None),
                (concat!("AKIA", "IOSFODNN7EXAMPL"), None),
                (concat!("AKIA", "IOSFODNN7EXAMPLEX"), None),
                (concat!("AIza", "Sy-short"), None),
            ],
        );
    }

    #[test]
    fn jwts() {
        let r = only("jwt");
        let text = format!("token={JWT}; next");
        assert_eq!(r.redact(&text).as_deref(), Some("token=[REDACTED]; next"));
        let unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.";
        assert_eq!(r.redact(unsigned).as_deref(), Some("[REDACTED]"));
        check(
            &r,
            &[
                ("eyJhbGciOiJIUzI1NiJ9", None),
                ("eyJ.x.y", None),
                ("xeyJhbGciOiJIUzI1NiJ9.eyJ.x", None),
            ],
        );
    }

    #[test]
    fn ipv4_addresses() {
        check(
            &only("ipv4"),
            &[
                ("from 10.0.0.1:8080", Some("from [REDACTED]:8080")),
                (
                    "hosts 192.168.1.254, 0.0.0.0.",
                    Some("hosts [REDACTED], [REDACTED]."),
                ),
                ("1.2.3.4.5", None),
                ("256.1.1.1", None),
                ("01.2.3.4", None),
                ("v1.2.3.4", None),
                ("1.2.3", None),
            ],
        );
    }

    #[test]
    fn default_rules_are_bearer_api_key_and_jwt() {
        let r = Redactor::default();
        let text =
            format!("Bearer abcDEF123456 {OPENAI_KEY} {JWT} a@b.com 10.0.0.1 4111111111111111");
        assert_eq!(
            r.redact(&text).as_deref(),
            Some("Bearer [REDACTED] [REDACTED] [REDACTED] a@b.com 10.0.0.1 4111111111111111")
        );
        assert_eq!(
            Redactor::from_config(None).expect("default").redact(&text),
            r.redact(&text)
        );
        assert!(!r.is_empty());
    }

    #[test]
    fn overlapping_rules_make_one_replacement() {
        let r = redactor(json!({ "replacement": "[{kind}]" }));
        let mut text = format!("Authorization: Bearer {JWT}");
        assert_eq!(r.redact_in_place(&mut text), 1);
        assert_eq!(text, "Authorization: Bearer [bearer_token]");
    }

    #[test]
    fn literals_are_case_sensitive() {
        let r = redactor(json!({
            "builtin": [], "literals": ["hunter2", "s3cr3t", "hunter2"], "replacement": "<{kind}>"
        }));
        let mut text = "pw hunter2 and s3cr3ts, not HUNTER2".to_string();
        assert_eq!(r.redact_in_place(&mut text), 2);
        assert_eq!(text, "pw <literal> and <literal>s, not HUNTER2");
    }

    #[test]
    fn custom_patterns() {
        let r = redactor(json!({
            "builtin": [], "patterns": ["ACCT-[0-9]{6}", "(?i)project\\s+[a-z]+"]
        }));
        check(
            &r,
            &[
                (
                    "acct ACCT-123456 in Project Falcon.",
                    Some("acct [REDACTED] in [REDACTED]."),
                ),
                ("ACCT-12345", None),
            ],
        );
    }

    #[test]
    fn kind_names_the_rule() {
        let r = redactor(json!({
            "builtin": ["email", "ipv4", "card_number"],
            "literals": ["Falcon"],
            "patterns": ["T-[0-9]+"],
            "replacement": "[REDACTED:{kind}]"
        }));
        assert_eq!(
            r.redact("a@b.com 10.1.2.3 4111111111111111 Falcon T-42")
                .as_deref(),
            Some(
                "[REDACTED:email] [REDACTED:ipv4] [REDACTED:card_number] \
                 [REDACTED:literal] [REDACTED:pattern]"
            )
        );
    }

    #[test]
    fn nothing_to_do_leaves_text_alone() {
        let r =
            redactor(json!({ "builtin": ["email", "card_number", "ipv4"], "literals": ["zz"] }));
        let mut text = "plain prose with 42 numbers and an @ sign".to_string();
        assert_eq!(r.redact(&text), None);
        assert_eq!(r.redact_in_place(&mut text), 0);
        assert_eq!(text, "plain prose with 42 numbers and an @ sign");
        let none = redactor(json!({ "builtin": [] }));
        assert!(none.is_empty());
        assert_eq!(none.redact(OPENAI_KEY), None);
    }

    #[test]
    fn what_a_replacement_exposes_is_redacted_too() {
        let r = redactor(json!({ "builtin": ["card_number"], "literals": ["tok"] }));
        let mut text = "tok4111111111111111".to_string();
        assert_eq!(r.redact_in_place(&mut text), 2);
        assert_eq!(text, "[REDACTED][REDACTED]");
        assert_eq!(r.redact(&text), None);
    }

    #[test]
    fn json_text_stays_json() {
        let r = redactor(json!({ "builtin": ["email", "card_number", "api_key"] }));
        let doc = format!(
            r#"{{"note": "mail a@b.com", "card": 4111111111111111, "n": 12,
               "list": ["x\"y {OPENAI_KEY}", {{"k": "line\n{AWS_KEY}"}}], "c@d.com": true}}"#
        );
        let mut text = doc.replace('\n', "\\n").replace("\\n               ", " ");
        assert!(is_json(&text), "fixture is JSON: {text}");
        assert_eq!(r.redact_as(&mut text, TextKind::Json), 4);
        let value: Value = serde_json::from_slice(text.as_bytes()).expect("still JSON");
        assert_eq!(
            value,
            json!({
                "note": "mail [REDACTED]", "card": "[REDACTED]", "n": 12,
                "list": ["x\"y [REDACTED]", {"k": "line\n[REDACTED]"}], "c@d.com": true
            })
        );
    }

    #[test]
    fn json_redaction_keeps_untouched_bytes() {
        let r = only("email");
        let mut text = r#"{ "a" : [1.5e3, "x@y.org" ,"\u00e9"] }"#.to_string();
        assert_eq!(r.redact_as(&mut text, TextKind::Json), 1);
        assert_eq!(text, r#"{ "a" : [1.5e3, "[REDACTED]" ,"\u00e9"] }"#);
    }

    #[test]
    fn text_that_is_not_json_is_redacted_as_plain_text() {
        let r = only("email");
        let mut text = r#"{"to": "a@b.com", broken"#.to_string();
        assert_eq!(r.redact_as(&mut text, TextKind::Json), 1);
        assert_eq!(text, r#"{"to": "[REDACTED]", broken"#);
    }

    fn record_with(secret: &str) -> TraceRecord {
        let parts = vec![
            Part::Text(format!("text {secret}")),
            Part::Reasoning(format!("thinking {secret}")),
            Part::ToolCall {
                id: "call_1".into(),
                name: format!("fn_{secret}"),
                arguments: format!(r#"{{"q":"{secret}"}}"#),
            },
            Part::Uri {
                modality: "image",
                uri: format!("https://x/{secret}.png"),
            },
            Part::Other {
                kind: "custom".into(),
                json: format!(r#"{{"v":["{secret}"]}}"#),
            },
        ];
        let message = Message {
            role: "user".into(),
            parts,
            name: Some(format!("name {secret}")),
            tool_call_id: None,
        };
        let mut record = TraceRecord {
            path: format!("/v1/chat?key={secret}"),
            messages: vec![message.clone()],
            choices: vec![Choice {
                message,
                ..Choice::default()
            }],
            tools_json: Some(format!(r#"[{{"description":"{secret}"}}]"#)),
            error: Some(ErrorInfo {
                kind: "400".into(),
                message: format!("bad {secret}"),
            }),
            unparsed: vec![format!("request: {secret}")],
            ..TraceRecord::default()
        };
        record.params.stop = vec![secret.to_string()];
        let context = &mut record.context;
        context.user = Some(secret.to_string());
        context.session = Some(format!("s-{secret}"));
        context.tags = vec![format!("tag-{secret}")];
        context
            .metadata
            .insert("m".into(), json!({ "k": [format!("v {secret}"), 1] }));
        record
    }

    #[test]
    fn every_user_string_of_a_record_is_redacted() {
        let r = redactor(json!({ "builtin": [], "literals": ["Zq9Secret"] }));
        let mut record = record_with("Zq9Secret");
        let visited = {
            let mut n = 0;
            for_each_text(&mut record.clone(), |_, _| n += 1);
            n
        };
        assert_eq!(r.redact_record(&mut record), visited);
        assert!(!format!("{record:?}").contains("Zq9Secret"));
        let args = match &record.choices[0].message.parts[2] {
            Part::ToolCall { arguments, .. } => arguments.clone(),
            other => panic!("unexpected part {other:?}"),
        };
        assert_eq!(args, r#"{"q":"[REDACTED]"}"#);
        assert!(is_json(record.tools_json.as_deref().unwrap_or_default()));
        assert_eq!(
            redactor(json!({ "builtin": [] })).redact_record(&mut record),
            0
        );
    }

    #[test]
    fn config_errors_name_the_key_path() {
        let cases = [
            (json!(["x"]), "`redact` must be an object"),
            (
                json!({ "literal": ["x"] }),
                "unknown configuration key `redact.literal`",
            ),
            (
                json!({ "builtin": "email" }),
                "`redact.builtin` must be an array of strings",
            ),
            (
                json!({ "builtin": ["email", "phone"] }),
                "`redact.builtin[1]` is invalid",
            ),
            (
                json!({ "literals": ["ok", ""] }),
                "`redact.literals[1]` is invalid",
            ),
            (
                json!({ "literals": ["ok", "  "] }),
                "`redact.literals[1]` is invalid",
            ),
            (
                json!({ "literals": [7] }),
                "`redact.literals[0]` must be a string",
            ),
            (
                json!({ "patterns": ["a+", "(b"] }),
                "`redact.patterns[1]` is invalid",
            ),
            (
                json!({ "patterns": ["a*"] }),
                "`redact.patterns[0]` is invalid",
            ),
            (
                json!({ "patterns": ["a{1000}{1000}"] }),
                "`redact.patterns[0]` is invalid",
            ),
            (
                json!({ "patterns": vec!["a"; MAX_PATTERNS + 1] }),
                "`redact.patterns` is invalid",
            ),
            (
                json!({ "replacement": 1 }),
                "`redact.replacement` must be a string",
            ),
            (
                json!({ "builtin": ["email"], "replacement": "x@y.com" }),
                "`redact.replacement` is invalid",
            ),
            (
                json!({ "literals": ["RED"], "replacement": "[RED]" }),
                "`redact.replacement` is invalid",
            ),
        ];
        for (config, expected) in cases {
            let err = Redactor::from_config(Some(&config))
                .expect_err(expected)
                .to_string();
            assert!(err.contains(expected), "{config}: got {err}");
        }
        let many: Vec<String> = (0..=MAX_LITERALS).map(|i| format!("l{i}")).collect();
        let err = Redactor::from_config(Some(&json!({ "literals": many }))).expect_err("too many");
        assert!(err.to_string().contains("`redact.literals` is invalid"));
    }

    #[test]
    fn config_errors_never_echo_secrets() {
        let long = format!("TOPSECRET{}", "x".repeat(MAX_LITERAL_BYTES));
        for config in [
            json!({ "literals": [long] }),
            json!({ "patterns": ["(TOPSECRET"] }),
            json!({ "literals": ["TOPSECRET"], "replacement": "TOPSECRET" }),
        ] {
            let err = Redactor::from_config(Some(&config)).expect_err("invalid");
            assert!(!err.to_string().contains("TOPSECRET"), "{err}");
        }
        let r = redactor(json!({ "literals": ["TOPSECRET"] }));
        assert!(!format!("{r:?}").contains("TOPSECRET"));
    }

    /// A Luhn-valid 16-digit number from 15 digits, the first 2–6.
    fn luhn_complete(first: u8, rest: &[u8]) -> String {
        let mut digits = vec![first];
        digits.extend_from_slice(rest);
        let check = (0..10u8)
            .find(|c| {
                let mut all = digits.clone();
                all.push(*c);
                luhn(&all)
            })
            .unwrap_or(0);
        digits.push(check);
        digits.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn secret() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z]{1,8}(\\.[a-z]{1,8})?@[a-z]{2,10}\\.(com|org|io)",
            (2u8..=6, proptest::collection::vec(0u8..10, 14))
                .prop_map(|(f, r)| luhn_complete(f, &r)),
            Just("Zq9Secret".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn secrets_never_survive_and_redaction_is_idempotent(
            before in "[a-zA-Z0-9 .,:;@/_-]{0,40}",
            after in "[a-zA-Z0-9 .,:;@/_-]{0,40}",
            secret in secret(),
            spaced in any::<bool>(),
        ) {
            let r = redactor(json!({
                "builtin": ["email", "card_number", "bearer_token", "api_key", "jwt"],
                "literals": ["Zq9Secret"]
            }));
            let shown = if spaced && secret.bytes().all(|b| b.is_ascii_digit()) {
                secret.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c)).collect::<Vec<_>>().join(" ")
            } else {
                secret.clone()
            };
            let text = format!("{before} {shown} {after}");
            let out = r.redact(&text);
            let out = out.as_deref();
            prop_assert!(out.is_some());
            let out = out.unwrap_or_default();
            prop_assert!(!out.contains(&shown), "{out}");
            prop_assert!(!out.contains(&secret), "{out}");
            prop_assert_eq!(r.redact(out), None);
        }

        #[test]
        fn any_text_is_handled_and_stays_redacted(
            text in "(\\PC|[0-9]{1,5}[ .@-]|[a-z]{1,4}[@.:/ ]|Bearer |sk-|eyJ){0,60}",
        ) {
            let r = redactor(json!({
                "builtin": ["email", "card_number", "bearer_token", "api_key", "jwt", "ipv4"],
                "literals": ["ab"],
                "replacement": "<{kind}>"
            }));
            if let Some(out) = r.redact(&text) {
                prop_assert_eq!(r.redact(&out), None, "{}", out);
            }
        }

        #[test]
        fn json_redaction_keeps_json_valid(
            strings in proptest::collection::vec("[a-z0-9 @.\"\\\\\n]{0,20}", 0..6),
            number in 0u64..u64::MAX,
        ) {
            let r = redactor(json!({
                "builtin": ["email", "card_number", "ipv4"], "literals": ["a", "\""]
            }));
            let mut text = json!({ "s": strings, "n": number, "k": {"a@b.co": "a"} }).to_string();
            r.redact_as(&mut text, TextKind::Json);
            prop_assert!(is_json(&text), "{}", text);
        }
    }
}
