//! The two opt-in edits the filter may make to traffic, both so that tracing needs nothing from
//! the caller: the request body loses its tracing-only `metadata` keys
//! (`strip_request_metadata`), and a streamed OpenAI chat request asks for usage
//! (`inject_stream_usage`) while [`UsageChunkFilter`] hides what that adds to the stream, so the
//! client sees exactly the stream it asked for. No host calls.
//!
//! Request rewrites keep every other member of the body byte for byte (values are copied as raw
//! JSON text; only the whitespace between top-level members is not kept).

use crate::context::TRACING_METADATA_KEYS;
use crate::json::Members;
use crate::objects;
use serde_json::value::RawValue;

/// What to change in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestEdits {
    /// Remove tracing-only keys from `metadata` (and `metadata` itself when nothing is left).
    pub strip_metadata: bool,
    /// Set `stream_options.include_usage = true` on a streamed request that lacks it.
    pub include_usage: bool,
}

/// The result of editing a request body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edited {
    /// The new body, when anything changed.
    pub body: Option<Vec<u8>>,
    /// Usage was injected: the stream's extra usage chunk and `"usage":null` members are not
    /// the client's and must be filtered out.
    pub injected_usage: bool,
}

/// Applies `edits` to a JSON request body. A body that is not a JSON object, or needs no
/// change, comes back as `body: None`: it is forwarded untouched.
pub fn edit_request(body: &[u8], edits: RequestEdits) -> Edited {
    let Some(members) = Members::parse(body) else {
        return Edited::default();
    };
    let mut replaced: Vec<(&str, Option<String>)> = Vec::new();
    let mut added: Vec<(&str, String)> = Vec::new();
    if edits.strip_metadata {
        if let Some(meta) = members.get("metadata").and_then(strip_metadata) {
            replaced.push(("metadata", meta));
        }
    }
    let mut injected_usage = false;
    if edits.include_usage && members.get("stream") == Some("true") {
        match members.get("stream_options") {
            None => {
                added.push(("stream_options", r#"{"include_usage":true}"#.into()));
                injected_usage = true;
            }
            Some(options) => {
                if let Some(new) = with_include_usage(options) {
                    replaced.push(("stream_options", Some(new)));
                    injected_usage = true;
                }
            }
        }
    }
    if replaced.is_empty() && added.is_empty() {
        return Edited::default();
    }
    Edited {
        body: Some(members.encode(&replaced, &added)),
        injected_usage,
    }
}

/// `metadata` without its tracing-only keys: `None` when nothing changes, `Some(None)` when
/// the whole member goes.
fn strip_metadata(meta: &str) -> Option<Option<String>> {
    let members = Members::parse(meta.as_bytes())?;
    let kept: Vec<_> = members
        .0
        .iter()
        .filter(|(k, _)| !TRACING_METADATA_KEYS.contains(&k.as_ref()))
        .cloned()
        .collect();
    if kept.len() == members.0.len() {
        return None;
    }
    if kept.is_empty() {
        return Some(None);
    }
    let encoded = Members(kept).encode(&[], &[]);
    Some(Some(String::from_utf8(encoded).ok()?))
}

/// `stream_options` with `include_usage: true`; `None` when it already is, or is not an object.
fn with_include_usage(options: &str) -> Option<String> {
    let members = Members::parse(options.as_bytes())?;
    match members.get("include_usage") {
        Some("true") => None,
        Some(_) => {
            String::from_utf8(members.encode(&[("include_usage", Some("true".into()))], &[])).ok()
        }
        None => String::from_utf8(members.encode(&[], &[("include_usage", "true".into())])).ok(),
    }
}

/// Removes from a streamed OpenAI chat response what `include_usage` added: the usage-only
/// chunk (`"choices":[]` with a `usage` object) and the `"usage":null` member of every other
/// chunk. Works on whole SSE events: complete events pass at once; the bytes of an event not
/// yet complete are held until its end arrives (an SSE client cannot use a partial event
/// anyway), and at most `max_held` bytes are held: past that, bytes pass unfiltered.
#[derive(Debug, Default)]
pub struct UsageChunkFilter {
    held: Vec<u8>,
    max_held: usize,
    gave_up: bool,
}

impl UsageChunkFilter {
    /// A filter holding at most `max_held` bytes of an incomplete event.
    pub fn new(max_held: usize) -> Self {
        UsageChunkFilter {
            held: Vec::new(),
            max_held,
            gave_up: false,
        }
    }

    /// The bytes to forward for `chunk`; `end` flushes what is held.
    pub fn push(&mut self, chunk: &[u8], end: bool) -> Vec<u8> {
        if self.gave_up {
            return chunk.to_vec();
        }
        self.held.extend_from_slice(chunk);
        let complete = if end {
            self.held.len()
        } else {
            last_event_end(&self.held)
        };
        let mut out = Vec::with_capacity(complete);
        let rest = self.held.split_off(complete);
        for event in split_events(&self.held) {
            filter_event(event, &mut out);
        }
        self.held = rest;
        if self.held.len() > self.max_held {
            self.gave_up = true;
            out.append(&mut self.held);
        }
        out
    }
}

/// Length of the first event of `buf` with its terminating blank line (`\n\n`, `\r\r` or
/// `\r\n\r\n`), or `None` when no event is complete.
fn first_event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        match (buf[i], buf[i + 1]) {
            (b'\n', b'\n') | (b'\r', b'\r') => return Some(i + 2),
            (b'\r', b'\n') if buf.get(i + 2..i + 4) == Some(b"\r\n") => return Some(i + 4),
            _ => i += 1,
        }
    }
    None
}

/// Offset just past the last complete event, or 0.
fn last_event_end(buf: &[u8]) -> usize {
    let mut end = 0;
    while let Some(n) = first_event_end(&buf[end..]) {
        end += n;
    }
    end
}

/// Complete events with their terminating blank line; a trailing incomplete one last.
fn split_events(buf: &[u8]) -> Vec<&[u8]> {
    let mut events = Vec::new();
    let mut start = 0;
    while start < buf.len() {
        let n = first_event_end(&buf[start..]).unwrap_or(buf.len() - start);
        events.push(&buf[start..start + n]);
        start += n;
    }
    events
}

/// Copies an event to `out`, dropping it when it is the usage-only chunk and removing
/// `"usage":null` members from others.
fn filter_event(event: &[u8], out: &mut Vec<u8>) {
    let Some(data) = event_data(event) else {
        out.extend_from_slice(event);
        return;
    };
    if is_usage_only(data) {
        return;
    }
    out.extend_from_slice(&remove_null_usage(event));
}

/// The `data:` payload of a single-line data event.
fn event_data(event: &[u8]) -> Option<&[u8]> {
    let line = event.strip_prefix(b"data:")?;
    let line = line.strip_prefix(b" ").unwrap_or(line);
    let end = line
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(line.len());
    Some(&line[..end])
}

#[derive(serde::Deserialize)]
struct UsageProbe<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

fn is_usage_only(data: &[u8]) -> bool {
    match objects::from_slice::<UsageProbe<'_>>(data) {
        Ok(probe) => {
            probe.choices.is_some_and(|c| c.is_empty())
                && probe
                    .usage
                    .is_some_and(|u| u.get().trim_start().starts_with('{'))
        }
        Err(_) => false,
    }
}

/// Removes a top-level `"usage":null` member (with its comma). The text `"usage"` followed by
/// `:` cannot occur inside a JSON string, whose quotes are escaped, so the match is exact.
fn remove_null_usage(event: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"\"usage\"";
    let Some(at) = find(event, KEY) else {
        return event.to_vec();
    };
    let mut j = at + KEY.len();
    j += count_ws(&event[j..]);
    if event.get(j) != Some(&b':') {
        return event.to_vec();
    }
    j += 1;
    j += count_ws(&event[j..]);
    if event.get(j..j + 4) != Some(b"null") {
        return event.to_vec();
    }
    let value_end = j + 4;
    // Prefer removing the comma before the member; else the one after it.
    let before = event[..at].iter().rposition(|b| !b" \t".contains(b));
    let (start, end) = match before {
        Some(p) if event[p] == b',' => (p, value_end),
        _ => {
            let after = value_end + count_ws(&event[value_end..]);
            if event.get(after) == Some(&b',') {
                (at, after + 1)
            } else {
                (at, value_end)
            }
        }
    };
    let mut out = Vec::with_capacity(event.len());
    out.extend_from_slice(&event[..start]);
    out.extend_from_slice(&event[end..]);
    out
}

fn count_ws(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b" \t".contains(b)).count()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
