//! Anthropic Messages (`POST /v1/messages`): request, JSON response, streamed events and error
//! bodies, folded into a [`TraceRecord`].
//!
//! Follows Anthropic's API reference: "Messages" (the create-message request and the message
//! object), "Streaming Messages" (the `message_start`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`, `ping` and
//! `error` events) and "Errors" (the `{"type":"error","error":{…}}` body). Bodies are
//! deserialized into typed structs that ignore unknown keys; nothing here calls the host.
//!
//! Anthropic counts `input_tokens` without the prompt-cache tokens; the record uses OpenAI
//! semantics, so its input is `input_tokens + cache_read_input_tokens +
//! cache_creation_input_tokens`.

use super::wire::{counts, dotted, Flat, Scalar};
use super::{
    inline_media, item_slot, set_once, sort_by_index, Budget, ChunkEffect, ProtocolError,
    StreamFold,
};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::skim::{Bail, RawStr, Seen, Skim, Skimmed, Template};
use crate::sse::Event;
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What a `redacted_thinking` block becomes: its payload is encrypted and of no use in a trace.
const REDACTED_THINKING: &str = "[redacted thinking]";

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    model: Option<String>,
    #[serde(borrow)]
    system: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<Vec<InMessage<'a>>>,
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(default)]
    role: String,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// Any content block, request or response side; which fields are set depends on `type`.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<String>,
    thinking: Option<String>,
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    tool_use_id: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    source: Option<Source<'a>>,
}

/// The `source` of an `image` or `document` block.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(rename = "type", default)]
    kind: String,
    media_type: Option<String>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
    url: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

/// Fills the request side of `record` from a create-message request body.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a Messages request.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: MessagesRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req
        .model
        .filter(|m| !m.is_empty())
        .or_else(|| model_from_path(&record.path));
    record.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_tokens,
        stream: req.stream.unwrap_or(false),
        stop: req.stop_sequences.unwrap_or_default(),
        ..Params::default()
    };
    record.tools_json = req.tools.map(|t| t.get().to_string());
    let mut messages: Vec<Message> = req
        .system
        .map(content_parts)
        .and_then(Message::system)
        .into_iter()
        .collect();
    for m in req.messages.unwrap_or_default() {
        push_message(m, &mut messages);
    }
    record.messages = messages;
    Ok(())
}

/// The model of a path that names it (`…/publishers/anthropic/models/{model}:rawPredict` on
/// Vertex AI, whose request bodies carry no `model`).
fn model_from_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next()?;
    let (_, rest) = path.rsplit_once("/models/")?;
    let model = rest.split(':').next()?;
    (!model.is_empty() && !model.contains('/')).then(|| model.to_string())
}

/// Appends one input message; each `tool_result` block becomes a message of its own with role
/// `tool`, in the order the blocks came.
fn push_message(m: InMessage<'_>, out: &mut Vec<Message>) {
    let message = |role: &str, parts| Message {
        role: role.to_string(),
        parts,
        ..Message::default()
    };
    let Some(raw) = m.content else {
        out.push(message(&m.role, Vec::new()));
        return;
    };
    let Some(blocks) = block_list(raw) else {
        out.push(message(&m.role, content_parts(raw)));
        return;
    };
    let mut parts = Vec::new();
    let mut split = false;
    for block in blocks {
        if let Some((id, result)) = block_into(block, &mut parts) {
            if !parts.is_empty() {
                out.push(message(&m.role, std::mem::take(&mut parts)));
            }
            out.push(Message {
                role: "tool".into(),
                parts: result,
                tool_call_id: Some(id),
                ..Message::default()
            });
            split = true;
        }
    }
    if !parts.is_empty() || !split {
        out.push(message(&m.role, parts));
    }
}

/// The blocks of a content array; `None` when `raw` is not an array.
fn block_list(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_slice(raw.get().as_bytes()).ok()
}

/// Content that is a string, null, or an array of blocks, as parts (tool results inline).
fn content_parts(raw: &RawValue) -> Vec<Part> {
    if let Ok(text) = serde_json::from_slice::<Option<String>>(raw.get().as_bytes()) {
        return text.into_iter().map(Part::Text).collect();
    }
    let Some(blocks) = block_list(raw) else {
        return vec![other("unknown".into(), raw)];
    };
    let mut parts = Vec::new();
    for block in blocks {
        if let Some((_, result)) = block_into(block, &mut parts) {
            parts.extend(result);
        }
    }
    parts
}

/// The `type` of a block whose other fields are not what this module expects.
fn kind_of(raw: &RawValue) -> Option<String> {
    objects::from_slice::<Flat>(raw.get().as_bytes())
        .ok()?
        .take_str("type")
}

fn other(kind: String, raw: &RawValue) -> Part {
    Part::Other {
        kind,
        json: raw.get().to_string(),
    }
}

/// Appends the parts of one block to `parts`; a `tool_result` block is returned instead, as
/// the id of the call it answers and its content.
fn block_into(raw: &RawValue, parts: &mut Vec<Part>) -> Option<(String, Vec<Part>)> {
    let Ok(block) = objects::from_slice::<Block<'_>>(raw.get().as_bytes()) else {
        let kind = kind_of(raw).unwrap_or_else(|| "unknown".into());
        parts.push(match kind.as_str() {
            // Media the typed parse could not read: never copy its bytes.
            "image" | "document" => Part::Uri {
                modality: modality(&kind, None),
                uri: inline_media("unreadable media", raw.get().len()),
            },
            _ => other(kind, raw),
        });
        return None;
    };
    match block.kind.as_str() {
        "text" => parts.push(Part::Text(block.text.unwrap_or_default())),
        "thinking" => parts.push(Part::Reasoning(block.thinking.unwrap_or_default())),
        "redacted_thinking" => parts.push(Part::Reasoning(REDACTED_THINKING.into())),
        "tool_use" | "server_tool_use" | "mcp_tool_use" => parts.push(Part::ToolCall {
            id: block.id.unwrap_or_default(),
            name: block.name.unwrap_or_default(),
            arguments: block
                .input
                .map_or_else(|| "{}".to_string(), |i| i.get().to_string()),
        }),
        "tool_result" => {
            let result = block.content.map(content_parts).unwrap_or_default();
            return Some((block.tool_use_id.unwrap_or_default(), result));
        }
        _ => match block.source {
            Some(source) => source_into(block.kind, source, raw, parts),
            None => parts.push(other(block.kind, raw)),
        },
    }
    None
}

/// An `image` or `document` (or any block with a `source`): inline base64 is described, never
/// copied; URLs are kept; plain-text and content documents are their text.
fn source_into(kind: String, source: Source<'_>, raw: &RawValue, parts: &mut Vec<Part>) {
    let modality = modality(&kind, source.media_type.as_deref());
    match (
        source.kind.as_str(),
        source.data,
        source.url,
        source.content,
    ) {
        ("base64", data, _, _) => parts.push(Part::Uri {
            modality,
            uri: inline_media(
                source
                    .media_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
                data.map_or(0, |d| d.len()),
            ),
        }),
        ("url", _, Some(url), _) => parts.push(Part::Uri { modality, uri: url }),
        ("text", Some(text), _, _) => parts.push(Part::Text(text.into_owned())),
        ("content", _, _, Some(content)) => parts.extend(content_parts(content)),
        _ => parts.push(other(kind, raw)),
    }
}

/// The modality of media: by media type when it says, else by block type.
fn modality(kind: &str, media_type: Option<&str>) -> &'static str {
    match media_type.and_then(|m| m.split('/').next()) {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ if kind == "image" => "image",
        _ => "document",
    }
}

#[derive(Deserialize)]
struct MessagesResponse<'a> {
    id: Option<String>,
    model: Option<String>,
    role: Option<String>,
    #[serde(borrow)]
    content: Option<Vec<&'a RawValue>>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

/// Anthropic usage: `input_tokens` excludes the cache reads and writes.
#[derive(Debug, Default, Clone, Copy)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl<'de> Deserialize<'de> for WireUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &[
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ];
        let [input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, _] =
            counts(d, KEYS)?;
        Ok(WireUsage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens,
            cache_read_input_tokens,
        })
    }
}

impl WireUsage {
    /// Counts `later` reports replace earlier ones; counts it leaves out are kept.
    fn merge(&mut self, later: WireUsage) {
        let fields = [
            (&mut self.input_tokens, later.input_tokens),
            (&mut self.output_tokens, later.output_tokens),
            (
                &mut self.cache_creation_input_tokens,
                later.cache_creation_input_tokens,
            ),
            (
                &mut self.cache_read_input_tokens,
                later.cache_read_input_tokens,
            ),
        ];
        for (slot, value) in fields {
            if value.is_some() {
                *slot = value;
            }
        }
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        let cached = u.cache_read_input_tokens;
        let written = u.cache_creation_input_tokens;
        let input = u.input_tokens.map(|i| {
            i.saturating_add(cached.unwrap_or(0))
                .saturating_add(written.unwrap_or(0))
        });
        let total = match (input, u.output_tokens) {
            (Some(i), Some(o)) => Some(i.saturating_add(o)),
            _ => None,
        };
        Usage {
            input,
            output: u.output_tokens,
            total,
            cached_input: cached,
            cache_creation: written,
            reasoning: None,
        }
    }
}

/// Fills the response side of `record` from a non-streamed message.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a message.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let resp: MessagesResponse<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    if let Some(err) = resp.error {
        record.error = Some(err.into());
    }
    record.response_id = resp.id;
    record.response_model = resp.model;
    record.usage = resp.usage.map(Usage::from).unwrap_or_default();
    let Some(content) = resp.content else {
        return Ok(());
    };
    let mut parts = Vec::new();
    for block in content {
        if let Some((_, result)) = block_into(block, &mut parts) {
            parts.extend(result);
        }
    }
    record.choices = vec![Choice {
        index: 0,
        message: Message {
            role: resp.role.unwrap_or_else(|| "assistant".into()),
            parts,
            ..Message::default()
        },
        finish_reason: resp.stop_reason,
    }];
    Ok(())
}

/// `error`: `{"type", "message"}`.
struct WireError {
    kind: Option<String>,
    message: Option<String>,
}

impl WireError {
    /// The error under `key` of `f` (`error` in an error body, empty when `f` is the error).
    fn from_flat(f: &mut Flat, key: &str) -> WireError {
        WireError {
            kind: f.take_str(&dotted(key, "type")),
            message: f.take_str(&dotted(key, "message")),
        }
    }
}

impl<'de> Deserialize<'de> for WireError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(WireError::from_flat(&mut Flat::object(d)?, ""))
    }
}

impl From<WireError> for ErrorInfo {
    fn from(e: WireError) -> ErrorInfo {
        ErrorInfo {
            kind: e
                .kind
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "error".into()),
            message: e.message.unwrap_or_default(),
        }
    }
}

/// The provider's error from an error body (`{"type":"error","error":{"type","message"}}`):
/// its `error.type` (`invalid_request_error`, `overloaded_error`, …) and message. `None` when
/// the body carries no recognisable error.
pub fn parse_error(body: &[u8]) -> Option<ErrorInfo> {
    let mut f = Flat::read(body)?;
    matches!(f.get("error"), Some(Scalar::Object))
        .then(|| ErrorInfo::from(WireError::from_flat(&mut f, "error")))
}

/// One streamed event's data; which fields are set depends on its `type`.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<StartMessage>,
    index: Option<u64>,
    #[serde(borrow)]
    content_block: Option<&'a RawValue>,
    delta: Option<EventDelta>,
    usage: Option<WireUsage>,
    error: Option<WireError>,
}

/// The message of `message_start` (its content is always empty).
#[derive(Deserialize)]
struct StartMessage {
    id: Option<String>,
    model: Option<String>,
    role: Option<String>,
    usage: Option<WireUsage>,
}

/// The `delta` of `content_block_delta` (typed) or of `message_delta` (stop reason).
#[derive(Deserialize)]
struct EventDelta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    partial_json: Option<String>,
    thinking: Option<String>,
    stop_reason: Option<String>,
}

/// A content block being assembled from deltas.
#[derive(Debug)]
enum BlockAcc {
    Text(String),
    Reasoning(String),
    Tool {
        id: String,
        name: String,
        arguments: String,
        /// The `input` given with `content_block_start`, used when no delta follows.
        initial: Option<String>,
    },
    /// A block that arrives whole (redacted thinking, server tool results, …).
    Whole(Vec<Part>),
}

impl BlockAcc {
    fn into_parts(self, parts: &mut Vec<Part>) {
        match self {
            BlockAcc::Text(t) => parts.push(Part::Text(t)),
            BlockAcc::Reasoning(t) => parts.push(Part::Reasoning(t)),
            BlockAcc::Tool {
                id,
                name,
                arguments,
                initial,
            } => parts.push(Part::ToolCall {
                id,
                name,
                arguments: if arguments.is_empty() {
                    initial.unwrap_or_else(|| "{}".into())
                } else {
                    arguments
                },
            }),
            BlockAcc::Whole(whole) => parts.extend(whole),
        }
    }
}

/// Folds the events of a streamed message into the final message, bounded by a byte budget.
#[derive(Debug)]
pub struct MessagesStream {
    /// Blocks by their stream `index`, in the order they started.
    blocks: Vec<(u64, BlockAcc)>,
    started: bool,
    id: Option<String>,
    model: Option<String>,
    role: Option<String>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
    error: Option<ErrorInfo>,
    budget: Budget,
    malformed: usize,
    /// The last content delta, to read the next ones of its shape fast.
    template: Template,
    template_at: (u64, DeltaKind),
    /// Whether delta events may be read without the full parser.
    fast: bool,
}

/// The string a `content_block_delta` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeltaKind {
    Text,
    Thinking,
    Json,
}

impl DeltaKind {
    fn of(kind: &str) -> Option<(DeltaKind, &'static str)> {
        Some(match kind {
            "text_delta" => (DeltaKind::Text, "text"),
            "thinking_delta" => (DeltaKind::Thinking, "thinking"),
            "input_json_delta" => (DeltaKind::Json, "partial_json"),
            _ => return None,
        })
    }

    /// The delta the full parser reads for this kind with `value`.
    fn delta(self, value: String) -> EventDelta {
        let mut delta = EventDelta {
            kind: None,
            text: None,
            partial_json: None,
            thinking: None,
            stop_reason: None,
        };
        let (name, slot) = match self {
            DeltaKind::Text => ("text_delta", &mut delta.text),
            DeltaKind::Thinking => ("thinking_delta", &mut delta.thinking),
            DeltaKind::Json => ("input_json_delta", &mut delta.partial_json),
        };
        *slot = Some(value);
        delta.kind = Some(name.into());
        delta
    }
}

/// Reads a `content_block_delta` event of the everyday shape (`type`, `index` and a `delta`
/// of text, thinking or JSON, nothing else) without the full parser: its index, kind and raw
/// string. Bails on anything else, which the full parser then reads.
fn skim_delta_event(data: &[u8]) -> Skimmed<(u64, DeltaKind, RawStr<'_>)> {
    let mut s = Skim::new(data)?;
    let (mut kind_ok, mut index, mut delta) = (false, None, None);
    let mut seen = Seen::default();
    s.object(|s, key| {
        match seen.first(key, &["type", "index", "delta"])? {
            "type" => kind_ok = s.string()?.raw == "content_block_delta",
            "index" => index = Some(u64::from(s.u32()?)),
            "delta" => delta = Some(skim_delta(s)?),
            _ => return Err(Bail),
        }
        Ok(())
    })?;
    s.end()?;
    match (kind_ok, index, delta) {
        (true, Some(index), Some((kind, raw))) => Ok((index, kind, raw)),
        _ => Err(Bail),
    }
}

fn skim_delta<'a>(s: &mut Skim<'a>) -> Skimmed<(DeltaKind, RawStr<'a>)> {
    let (mut kind, mut value) = (None, None);
    let mut seen = Seen::default();
    s.object(|s, key| {
        match seen.first(key, &["type", "text", "partial_json", "thinking"])? {
            "type" => kind = DeltaKind::of(s.string()?.raw),
            "" => return Err(Bail),
            field => value = Some((field, s.string()?)),
        }
        Ok(())
    })?;
    match (kind, value) {
        (Some((kind, field)), Some((named, raw))) if field == named => Ok((kind, raw)),
        _ => Err(Bail),
    }
}

impl MessagesStream {
    /// A fold that keeps at most `budget` bytes of generated text, reasoning and arguments.
    pub fn new(budget: usize) -> Self {
        MessagesStream {
            blocks: Vec::new(),
            started: false,
            id: None,
            model: None,
            role: None,
            stop_reason: None,
            usage: None,
            error: None,
            budget: Budget::new(budget),
            malformed: 0,
            template: Template::default(),
            template_at: (0, DeltaKind::Text),
            fast: true,
        }
    }

    /// The same fold reading every event with the full parser only: the reference the fast
    /// readers are checked against by tests and fuzzing.
    pub fn with_full_parser(budget: usize) -> Self {
        MessagesStream {
            fast: false,
            ..MessagesStream::new(budget)
        }
    }

    /// A content delta read by the fast readers.
    fn fast_delta(&mut self, data: &[u8]) -> Option<ChunkEffect> {
        let (index, kind, value) = match self.template.value(data) {
            Some(value) => (self.template_at.0, self.template_at.1, value),
            None => {
                let (index, kind, value) = skim_delta_event(data).ok()?;
                self.template.set(data, value);
                self.template_at = (index, kind);
                (index, kind, value)
            }
        };
        Some(self.apply_delta(index, kind.delta(value.decode().into_owned())))
    }

    fn push_data(&mut self, event_type: &str, data: &[u8]) -> ChunkEffect {
        let data = data.trim_ascii();
        if data.is_empty() {
            return ChunkEffect::Quiet;
        }
        if self.fast {
            if let Some(effect) = self.fast_delta(data) {
                return effect;
            }
        }
        let Ok(event) = objects::from_slice::<StreamEvent<'_>>(data) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        let kind = event.kind.as_deref().unwrap_or(event_type);
        match kind {
            "message_start" => {
                self.started = true;
                if let Some(m) = event.message {
                    set_once(&mut self.id, m.id);
                    set_once(&mut self.model, m.model);
                    set_once(&mut self.role, m.role);
                    self.merge_usage(m.usage);
                }
                ChunkEffect::Quiet
            }
            "content_block_start" => match event.content_block {
                Some(block) => self.start_block(event.index.unwrap_or(0), block),
                None => ChunkEffect::Quiet,
            },
            "content_block_delta" => match event.delta {
                Some(delta) => self.apply_delta(event.index.unwrap_or(0), delta),
                None => ChunkEffect::Quiet,
            },
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                self.merge_usage(event.usage);
                ChunkEffect::Quiet
            }
            "message_stop" => ChunkEffect::Done,
            "error" => {
                self.error = Some(event.error.map_or_else(
                    || ErrorInfo {
                        kind: "error".into(),
                        message: String::new(),
                    },
                    ErrorInfo::from,
                ));
                ChunkEffect::Quiet
            }
            // `ping`, `content_block_stop` and event types added later.
            _ => ChunkEffect::Quiet,
        }
    }

    fn merge_usage(&mut self, usage: Option<WireUsage>) {
        if let Some(later) = usage {
            self.usage
                .get_or_insert_with(WireUsage::default)
                .merge(later);
        }
    }

    fn start_block(&mut self, index: u64, raw: &RawValue) -> ChunkEffect {
        let block = objects::from_slice::<Block<'_>>(raw.get().as_bytes()).ok();
        if block.is_none() && kind_of(raw).is_none() {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        }
        let mut effect = ChunkEffect::Quiet;
        let acc = match block {
            Some(Block {
                kind,
                text,
                thinking,
                ..
            }) if kind == "text" || kind == "thinking" => {
                let initial = text.or(thinking).unwrap_or_default();
                let mut out = String::new();
                self.budget.append(&mut out, &initial);
                if !initial.is_empty() {
                    effect = ChunkEffect::Output;
                }
                if kind == "text" {
                    BlockAcc::Text(out)
                } else {
                    BlockAcc::Reasoning(out)
                }
            }
            Some(Block {
                kind,
                id,
                name,
                input,
                ..
            }) if matches!(
                kind.as_str(),
                "tool_use" | "server_tool_use" | "mcp_tool_use"
            ) =>
            {
                effect = ChunkEffect::Output;
                BlockAcc::Tool {
                    id: self.budget.keep(id).unwrap_or_default(),
                    name: self.budget.keep(name).unwrap_or_default(),
                    arguments: String::new(),
                    initial: input
                        .map(|i| i.get().to_string())
                        .filter(|i| self.budget.take(i.len())),
                }
            }
            // Blocks that arrive whole: redacted thinking, server tool results, and any block
            // type added later.
            _ => {
                let mut parts = Vec::new();
                if let Some((_, result)) = block_into(raw, &mut parts) {
                    parts.extend(result);
                }
                let size: usize = parts.iter().map(part_bytes).sum();
                if !self.budget.take(size) {
                    parts.clear();
                }
                BlockAcc::Whole(parts)
            }
        };
        match self.blocks.iter_mut().rev().find(|(i, _)| *i == index) {
            Some((_, existing)) => *existing = acc,
            None if self.budget.open() => self.blocks.push((index, acc)),
            None => return ChunkEffect::Quiet,
        }
        effect
    }

    fn apply_delta(&mut self, index: u64, delta: EventDelta) -> ChunkEffect {
        let Self { blocks, budget, .. } = self;
        match (
            delta.kind.as_deref(),
            delta.text,
            delta.partial_json,
            delta.thinking,
        ) {
            (Some("text_delta"), Some(text), _, _) => {
                if let Some(BlockAcc::Text(out)) =
                    block_at(blocks, budget, index, || BlockAcc::Text(String::new()))
                {
                    budget.append(out, &text);
                }
                ChunkEffect::output_if(!text.is_empty())
            }
            (Some("thinking_delta"), _, _, Some(thinking)) => {
                let make = || BlockAcc::Reasoning(String::new());
                if let Some(BlockAcc::Reasoning(out)) = block_at(blocks, budget, index, make) {
                    budget.append(out, &thinking);
                }
                ChunkEffect::output_if(!thinking.is_empty())
            }
            (Some("input_json_delta"), _, Some(json), _) => {
                let make = || BlockAcc::Tool {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                    initial: None,
                };
                if let Some(BlockAcc::Tool { arguments, .. }) =
                    block_at(blocks, budget, index, make)
                {
                    budget.append(arguments, &json);
                }
                ChunkEffect::Output
            }
            // `signature_delta`, `citations_delta` and delta types added later.
            _ => ChunkEffect::Quiet,
        }
    }

    fn finish_into(self, record: &mut TraceRecord) {
        record.response_id = self.id;
        record.response_model = self.model;
        record.usage = self.usage.map(Usage::from).unwrap_or_default();
        record.truncated |= self.budget.truncated;
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed stream events",
                self.malformed
            ));
        }
        if let Some(err) = self.error {
            record.error = Some(err);
        }
        if !self.started && self.blocks.is_empty() && self.stop_reason.is_none() {
            return;
        }
        let mut blocks = self.blocks;
        sort_by_index(&mut blocks, |(index, _)| (*index).into());
        let mut parts = Vec::new();
        for (_, block) in blocks {
            block.into_parts(&mut parts);
        }
        record.choices = vec![Choice {
            index: 0,
            message: Message {
                role: self.role.unwrap_or_else(|| "assistant".into()),
                parts,
                ..Message::default()
            },
            finish_reason: self.stop_reason,
        }];
    }
}

/// The block at stream index `index`, started with `make` when none has that index yet (a
/// delta whose `content_block_start` never came) and the budget allows one more.
fn block_at<'b>(
    blocks: &'b mut Vec<(u64, BlockAcc)>,
    budget: &mut Budget,
    index: u64,
    make: impl FnOnce() -> BlockAcc,
) -> Option<&'b mut BlockAcc> {
    let at = item_slot(blocks, budget, |(i, _)| *i == index, || (index, make()))?;
    blocks.get_mut(at).map(|(_, block)| block)
}

/// Bytes a whole part holds, charged against the stream budget.
fn part_bytes(part: &Part) -> usize {
    match part {
        Part::Text(t) | Part::Reasoning(t) => t.len(),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => id.len() + name.len() + arguments.len(),
        Part::Uri { uri, .. } => uri.len(),
        Part::Other { kind, json } => kind.len() + json.len(),
    }
}

impl StreamFold for MessagesStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_data(&event.event, &event.data)
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::harness::{self, cases, check_family, Case};
    use crate::sse::SseDecoder;

    fn fold(events: &str, budget: usize) -> TraceRecord {
        fold_with(MessagesStream::new(budget), events.as_bytes())
    }

    fn fold_with(fold: MessagesStream, events: &[u8]) -> TraceRecord {
        let mut record = TraceRecord::default();
        let framing = SseDecoder::new(1 << 20);
        crate::protocols::fold_body(Box::new(fold), framing, events, &mut record);
        record
    }

    fn case(name: &str) -> Case {
        harness::case("anthropic_messages", name)
    }

    #[test]
    fn fixtures() {
        check_family("anthropic_messages", 11);
    }

    #[test]
    fn request_fields() {
        let r = case("basic").run(&[]);
        assert_eq!(r.params.temperature, Some(0.3));
        assert_eq!(r.params.top_p, Some(0.9));
        assert_eq!(r.params.max_tokens, Some(1024));
        assert_eq!(r.params.stop, vec!["\n\nHuman:".to_string()]);
        assert!(!r.params.stream);
        assert_eq!(
            r.messages[0].parts,
            vec![Part::Text(
                "You are a concise assistant. Answer in one sentence.".into()
            )]
        );
        assert_eq!(
            r.response_id.as_deref(),
            Some("msg_01XFDUDYJgAACzvnptvVoYEL")
        );
    }

    #[test]
    fn model_from_the_body_else_the_path() {
        let body = br#"{"anthropic_version":"vertex-2023-10-16","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut record = TraceRecord {
            path: "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict".into(),
            ..TraceRecord::default()
        };
        assert!(parse_request(body, &mut record).is_ok());
        assert_eq!(
            record.request_model.as_deref(),
            Some("claude-sonnet-4@20250514")
        );
        let mut record = TraceRecord {
            path: "/v1/messages?beta=true".into(),
            ..TraceRecord::default()
        };
        assert!(parse_request(body, &mut record).is_ok());
        assert_eq!(record.request_model, None);
        let with_model = br#"{"model":"claude-3-5-haiku-latest","messages":[]}"#;
        assert!(parse_request(with_model, &mut record).is_ok());
        assert_eq!(
            record.request_model.as_deref(),
            Some("claude-3-5-haiku-latest")
        );
    }

    #[test]
    fn multimodal_input_is_described_not_copied() {
        let r = case("multimodal").run(&[]);
        let user = &r.messages[0];
        assert_eq!(
            user.parts,
            vec![
                Part::Uri {
                    modality: "image",
                    uri: "[inline image/png, 100 base64 chars omitted]".into()
                },
                Part::Uri {
                    modality: "document",
                    uri: "[inline application/pdf, 260 base64 chars omitted]".into()
                },
                Part::Uri {
                    modality: "image",
                    uri: "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg".into()
                },
                Part::Text("Does the chart in the PDF match the photos?".into()),
            ]
        );
    }

    #[test]
    fn tool_results_become_tool_messages() {
        let r = case("tool_result").run(&[]);
        let roles: Vec<&str> = r.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "tool", "tool", "user"]
        );
        let assistant = &r.messages[2];
        assert!(
            matches!(&assistant.parts[0], Part::Reasoning(t) if t.starts_with("The user wants"))
        );
        assert_eq!(
            assistant.parts[2],
            Part::ToolCall {
                id: "toolu_01A09q90qw90lq917835lq9".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\",\"unit\":\"celsius\"}".into()
            }
        );
        assert_eq!(
            r.messages[3].tool_call_id.as_deref(),
            Some("toolu_01A09q90qw90lq917835lq9")
        );
        assert_eq!(r.messages[3].text().as_deref(), Some("18°C, clear skies"));
        assert_eq!(
            r.messages[4].tool_call_id.as_deref(),
            Some("toolu_01B7rKq3wJ4tEo6y2Mn8Zx5c")
        );
        assert_eq!(
            r.messages[4].parts[1],
            Part::Uri {
                modality: "image",
                uri: "[inline image/png, 100 base64 chars omitted]".into()
            }
        );
        assert_eq!(
            r.messages[5].text().as_deref(),
            Some("Should I bring an umbrella?")
        );
    }

    #[test]
    fn streamed_tool_call_arguments_are_assembled() {
        let r = case("stream_tool_use").run(&[]);
        assert_eq!(
            r.choices[0].message.parts,
            vec![
                Part::Text("I'll look up the current weather in Paris.".into()),
                Part::ToolCall {
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\": \"Paris\", \"unit\": \"celsius\"}".into()
                }
            ]
        );
        assert!(r
            .tools_json
            .as_deref()
            .is_some_and(|t| t.contains("\"get_weather\"")));
    }

    #[test]
    fn time_to_first_token_is_the_first_delta() {
        let c = case("stream_text");
        // One chunk per event: message_start, content_block_start, ping, then the first delta.
        let cuts: Vec<usize> = c
            .response
            .windows(2)
            .enumerate()
            .filter(|(_, w)| *w == b"\n\n")
            .map(|(at, _)| at + 2)
            .filter(|&at| at < c.response.len())
            .collect();
        let r = c.run(&cuts);
        assert_eq!(r.first_token_ns, Some(1_130 * 1_000_000));
    }

    #[test]
    fn usage_merges_message_start_and_message_delta() {
        let events = "event: message_start\n\
            data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-3-5-haiku-20241022\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":20,\"output_tokens\":1}}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":5}}\n\n\
            event: message_delta\n\
            data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":7}}\n\n";
        let r = fold(events, 1 << 20);
        assert_eq!(
            r.usage,
            Usage {
                input: Some(130),
                output: Some(7),
                total: Some(137),
                cached_input: Some(100),
                cache_creation: Some(20),
                reasoning: None
            }
        );
        assert_eq!(r.finish_reasons(), vec!["max_tokens"]);
        assert_eq!(r.choices[0].message.parts, vec![]);
    }

    #[test]
    fn budget_caps_streamed_output() {
        let events = "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"h\u{e9}llo w\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"orld\"}}\n\n\
            data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\n\n";
        let r = fold(events, 2);
        assert!(r.truncated);
        assert_eq!(r.choices[0].message.text().as_deref(), Some("h"));
        let r = fold(events, 1 << 20);
        assert!(!r.truncated);
        assert_eq!(
            r.choices[0].message.text().as_deref(),
            Some("h\u{e9}llo world")
        );
        assert_eq!(
            r.choices[0].message.parts[1],
            Part::ToolCall {
                id: "t".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into()
            }
        );
    }

    #[test]
    fn deltas_without_a_start_and_out_of_order_indexes() {
        let events = "data: {\"type\":\"content_block_delta\",\"index\":7,\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":18446744073709551615,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"z\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n\
            data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}\n\n";
        let r = fold(events, 1 << 20);
        assert_eq!(
            r.choices[0].message.parts,
            vec![
                Part::Text("a".into()),
                Part::Text("b".into()),
                Part::Reasoning("z".into())
            ]
        );
    }

    #[test]
    fn hostile_events_never_panic() {
        let events: &[&[u8]] = &[
            b"",
            b"   ",
            b"[DONE]",
            b"not json",
            b"\xff\xfe\x00garbage",
            b"{\"type\":\"message_start\",\"message\":\"nope\"}",
            b"{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":-1}}}",
            b"{\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":18446744073709551615,\"cache_read_input_tokens\":18446744073709551615,\"output_tokens\":18446744073709551615}}}",
            b"{\"type\":\"content_block_start\",\"index\":99999999999999999999,\"content_block\":{\"type\":\"text\"}}",
            b"{\"type\":\"content_block_start\",\"index\":-3,\"content_block\":{}}",
            b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":[1,2]}",
            b"{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"data\":7}}}",
            b"{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"x\",\"content\":[]}}",
            b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":42}}",
            b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":null}",
            b"{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\"}}",
            b"{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":[]}}",
            b"{\"type\":\"error\",\"error\":\"string\"}",
            b"{\"type\":\"error\"}",
            b"{\"type\":17}",
            b"[1,2,3]",
            b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\\ud800\"}}",
        ];
        let mut fold = Box::new(MessagesStream::new(64));
        for data in events {
            fold.push(&Event {
                event: "content_block_delta".into(),
                data: data.to_vec(),
            });
        }
        let mut record = TraceRecord::default();
        fold.finish(&mut record);
        assert!(!record.unparsed.is_empty());
        assert_eq!(record.usage.input, Some(u64::MAX));

        for body in events {
            let mut record = TraceRecord::default();
            let _ = parse_request(body, &mut record);
            let _ = parse_response(body, &mut record);
            let _ = parse_error(body);
        }
        let odd_requests: &[&str] = &[
            r#"{"messages":null,"system":null,"tools":null}"#,
            r#"{"messages":[{"role":"user","content":{"weird":true}}],"system":[{"type":"text"}]}"#,
            r#"{"messages":[{"role":"user","content":[1,"x",null,{"type":"tool_result"},{"type":"image","source":{"type":"file","file_id":"f"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"content","content":[{"type":"tool_result","content":[{"type":"text","text":"n"}]}]}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":5,"data":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="}}]}]}"#,
        ];
        for body in odd_requests {
            let mut record = TraceRecord::default();
            assert!(
                parse_request(body.as_bytes(), &mut record).is_ok(),
                "{body}"
            );
            assert!(!format!("{record:?}").contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"));
        }
        assert!(parse_request(b"{\"model\":5}", &mut TraceRecord::default()).is_err());
        assert!(parse_response(b"\"text\"", &mut TraceRecord::default()).is_err());
    }

    #[test]
    fn error_bodies() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                r#"{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"},"request_id":"req_1"}"#,
                Some(("not_found_error", "model: claude-x")),
            ),
            (
                r#"{"type":"error","error":{"message":"m"}}"#,
                Some(("error", "m")),
            ),
            (r#"{"type":"error"}"#, None),
            ("<html>502</html>", None),
        ];
        for (body, want) in cases {
            let got = parse_error(body.as_bytes());
            assert_eq!(
                got.as_ref().map(|e| (e.kind.as_str(), e.message.as_str())),
                *want,
                "{body}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut record = TraceRecord::default();
            let _ = parse_request(&bytes, &mut record);
            let _ = parse_response(&bytes, &mut record);
            let _ = parse_error(&bytes);
            let mut fold = Box::new(MessagesStream::new(16));
            fold.push(&Event { event: String::new(), data: bytes.clone() });
            fold.finish(&mut record);
        }

        #[test]
        fn corrupted_stream_fixtures_never_panic(flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8)) {
            for c in cases("anthropic_messages").iter().filter(|c| c.streamed()) {
                let mut body = c.response.clone();
                for &(at, byte) in &flips {
                    if let Some(b) = body.get_mut(at % c.response.len().max(1)) {
                        *b = byte;
                    }
                }
                let corrupted = Case { response: body, ..c.clone() };
                let _ = corrupted.run(&[]);
            }
        }
    }

    #[test]
    fn fast_readers_fold_as_the_full_parser_does() {
        let mut streams: Vec<Vec<u8>> = [
            &include_bytes!("../../tests/fixtures/anthropic_messages/stream_text/response.sse")[..],
            include_bytes!("../../tests/fixtures/anthropic_messages/stream_thinking/response.sse"),
            include_bytes!("../../tests/fixtures/anthropic_messages/stream_tool_use/response.sse"),
            include_bytes!("../../tests/fixtures/anthropic_messages/stream_error/response.sse"),
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let delta = |i: u32, d: &str| {
            format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{i},\"delta\":{d}}}\n\n")
        };
        let events = [
            delta(0, r#"{"type":"text_delta","text":"Hel"}"#),
            delta(0, r#"{"type":"text_delta","text":"lo \"q\"\n"}"#),
            delta(0, r#"{"type":"text_delta","text":"caf\u00e9"}"#),
            delta(1, r#"{"type":"thinking_delta","thinking":"hmm"}"#),
            delta(1, r#"{"type":"thinking_delta","thinking":"more"}"#),
            delta(2, r#"{"type":"input_json_delta","partial_json":"{\"a\""}"#),
            delta(2, r#"{"type":"input_json_delta","partial_json":":1}"}"#),
            delta(0, r#"{"type":"text_delta","text":"x","text":"y"}"#),
            delta(0, r#"{"type":"text_delta","thinking":"x","text":"y"}"#),
            delta(0, r#"{"type":"text_delta","text":null}"#),
            delta(0, r#"{"type":"signature_delta","signature":"s"}"#),
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"no index\"}}\n\n".to_string(),
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n".to_string(),
        ];
        streams.push(events.concat().into_bytes());
        for (first, event) in
            [(0, 0), (0, 1), (3, 4), (5, 6)].map(|(f, e)| (&events[f], &events[e]))
        {
            let data_at = event.find("data: ").unwrap_or(0) + 6;
            for at in data_at..event.len() - 2 {
                for byte in [b'"', b'\\', b'x', b'}', b'1', 0x01, 0xff] {
                    let mut changed = event.clone().into_bytes();
                    changed[at] = byte;
                    let mut stream = first.clone().into_bytes();
                    stream.extend_from_slice(&changed);
                    streams.push(stream);
                }
            }
        }
        for (i, stream) in streams.iter().enumerate() {
            for budget in [1 << 20, 5] {
                let fast = fold_with(MessagesStream::new(budget), stream);
                let full = fold_with(MessagesStream::with_full_parser(budget), stream);
                assert_eq!(
                    fast,
                    full,
                    "stream {i}: {}",
                    String::from_utf8_lossy(stream)
                );
            }
        }
    }
}
