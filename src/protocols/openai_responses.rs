//! OpenAI Responses (`POST …/responses`): request, response object, streamed semantic events
//! and error events, folded into a [`TraceRecord`].
//!
//! Follows OpenAI's API reference for "Create a model response" (request `input` as a string
//! or a list of input items, `instructions`, `tools`, `max_output_tokens`), the response
//! object (`status`, `output[]` items, `incomplete_details`, `error`, `usage` with
//! `input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens`) and the
//! "Streaming events" reference (`response.created` … `response.completed`, `error`).
//!
//! Mapping:
//! - `instructions` becomes a first `system` message; a string `input` one `user` message.
//! - Input items keep their roles. `function_call`, `custom_tool_call` and `reasoning` items
//!   (and hosted-tool calls such as `web_search_call`) join the assistant turn they belong to:
//!   the preceding assistant message when there is one, else a new `assistant` message.
//!   `*_output` items (`function_call_output`, …) become `tool` messages with the call id.
//! - Content parts: `input_text`/`output_text` and `refusal` are text, `reasoning_text` and
//!   reasoning summaries are reasoning; `input_image`, `input_file` and `input_audio` become
//!   [`Part::Uri`] with inline base64 replaced by a description; parts referring to an
//!   uploaded file (`file_id`) and anything else are kept as [`Part::Other`] JSON, except that
//!   JSON holding a `;base64,` payload is described, never copied.
//! - All output items fold into ONE choice (index 0, role `assistant`), in output order.
//! - Finish reason: `completed` gives `tool_calls` when the output holds a function (or
//!   custom tool) call, else `stop`; `incomplete` gives `incomplete_details.reason` as sent
//!   (`max_output_tokens`, `content_filter`); `cancelled` gives `cancelled`; `failed` gives none
//!   (the error is recorded instead).
//!
//! A stream is folded from its deltas under a byte budget, but the terminal event
//! (`response.completed`, `.incomplete`, `.failed`) carries the whole response: when it has
//! output, the record is built from it (under the same budget). Nothing here calls the host.

use super::wire::{counts, flat_strings, Flat, MAX_COUNTS};
use super::{
    inline_media, item_slot, media_placeholder, set_once, sort_by_index, Budget, ChunkEffect,
    ProtocolError, StreamFold,
};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::sse::Event;
use serde::de::Deserializer;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ResponsesRequest<'a> {
    model: Option<String>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    instructions: Option<&'a RawValue>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_output_tokens: Option<u64>,
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
}

/// Fills the request side of `record` from a Responses request body.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a Responses request.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: ResponsesRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    record.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_completion_tokens: req.max_output_tokens,
        stream: req.stream.unwrap_or(false),
        ..Params::default()
    };
    record.tools_json = req.tools.map(|t| t.get().to_string());
    let mut conversation = Conversation::default();
    if let Some(raw) = req.instructions {
        conversation.input(raw, "system");
    }
    if let Some(raw) = req.input {
        conversation.input(raw, "user");
    }
    record.messages = conversation.messages;
    Ok(())
}

/// Input messages being assembled from items.
#[derive(Default)]
struct Conversation {
    messages: Vec<Message>,
    /// The last message is an assistant turn that later output items may join.
    open: bool,
}

impl Conversation {
    /// A string (a message of `text_role`) or a list of items; `null` is nothing.
    fn input(&mut self, raw: &RawValue, text_role: &str) {
        if let Ok(text) = serde_json::from_slice::<Option<String>>(raw.get().as_bytes()) {
            if let Some(text) = text {
                self.push(Message {
                    role: text_role.into(),
                    parts: vec![Part::Text(text)],
                    ..Message::default()
                });
            }
            return;
        }
        match serde_json::from_slice::<Vec<&RawValue>>(raw.get().as_bytes()) {
            Ok(items) => items.into_iter().for_each(|item| self.item(item)),
            Err(_) => self.push(Message {
                role: text_role.into(),
                parts: vec![other_part("unknown", raw)],
                ..Message::default()
            }),
        }
    }

    fn push(&mut self, message: Message) {
        self.open = message.role == "assistant";
        self.messages.push(message);
    }

    fn item(&mut self, raw: &RawValue) {
        match classify(raw) {
            Classified::Message { role, parts } if role == "assistant" => {
                // An assistant message continues a turn begun by reasoning or tool calls.
                match self.open_turn().filter(|m| !m.parts.iter().any(is_text)) {
                    Some(turn) => turn.parts.extend(parts),
                    None => self.push(Message {
                        role,
                        parts,
                        ..Message::default()
                    }),
                }
            }
            Classified::Message { role, parts } => self.push(Message {
                role,
                parts,
                ..Message::default()
            }),
            Classified::Assistant(parts) if parts.is_empty() => {}
            Classified::Assistant(parts) => match self.open_turn() {
                Some(turn) => turn.parts.extend(parts),
                None => self.push(Message {
                    role: "assistant".into(),
                    parts,
                    ..Message::default()
                }),
            },
            Classified::Tool { call_id, parts } => self.push(Message {
                role: "tool".into(),
                parts,
                tool_call_id: call_id,
                ..Message::default()
            }),
            Classified::Nothing => {}
        }
    }

    fn open_turn(&mut self) -> Option<&mut Message> {
        if self.open {
            self.messages.last_mut().filter(|m| m.role == "assistant")
        } else {
            None
        }
    }
}

fn is_text(part: &Part) -> bool {
    matches!(part, Part::Text(_))
}

// ---------------------------------------------------------------------------------------------
// Items and content parts (shared by input and output)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(rename = "type")]
    kind: Option<String>,
    role: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
    /// `custom_tool_call` input.
    input: Option<String>,
    #[serde(borrow)]
    output: Option<&'a RawValue>,
    summary: Option<Vec<SummaryPart>>,
    /// `image_generation_call` result: base64 image data, only measured.
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

flat_strings! {
    /// A reasoning item's summary part.
    struct SummaryPart { text: "text" }
}

/// What one item contributes.
enum Classified {
    /// A message with its own role.
    Message { role: String, parts: Vec<Part> },
    /// Model output that belongs to the assistant turn (reasoning, tool calls).
    Assistant(Vec<Part>),
    /// A tool's result.
    Tool {
        call_id: Option<String>,
        parts: Vec<Part>,
    },
    /// `null`.
    Nothing,
}

fn classify(raw: &RawValue) -> Classified {
    if raw.get() == "null" {
        return Classified::Nothing;
    }
    let Ok(item) = objects::from_slice::<Item<'_>>(raw.get().as_bytes()) else {
        return Classified::Message {
            role: "user".into(),
            parts: vec![other_part("unknown", raw)],
        };
    };
    match item.kind.as_deref() {
        None | Some("message") => Classified::Message {
            role: item.role.unwrap_or_else(|| "user".into()),
            parts: item.content.map(content_parts).unwrap_or_default(),
        },
        Some("function_call") => Classified::Assistant(vec![Part::ToolCall {
            id: item.call_id.unwrap_or_default(),
            name: item.name.unwrap_or_default(),
            arguments: item.arguments.unwrap_or_default(),
        }]),
        Some("custom_tool_call") => Classified::Assistant(vec![Part::ToolCall {
            id: item.call_id.unwrap_or_default(),
            name: item.name.unwrap_or_default(),
            arguments: item.input.unwrap_or_default(),
        }]),
        Some("reasoning") => {
            let mut parts: Vec<Part> = item
                .summary
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.text.map(Part::Reasoning))
                .collect();
            parts.extend(item.content.map(content_parts).unwrap_or_default());
            Classified::Assistant(parts)
        }
        Some("image_generation_call") => Classified::Assistant(
            item.result
                .and_then(json_str)
                .map(|data| Part::Uri {
                    modality: "image",
                    uri: inline_media("image/png", data.len()),
                })
                .into_iter()
                .collect(),
        ),
        Some(kind) if kind.ends_with("_output") => Classified::Tool {
            call_id: item.call_id,
            parts: item.output.map(content_parts).unwrap_or_default(),
        },
        Some(kind) => Classified::Assistant(vec![other_part(kind, raw)]),
    }
}

#[derive(Deserialize)]
struct InPart<'a> {
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<String>,
    refusal: Option<String>,
    #[serde(borrow)]
    image_url: Option<&'a RawValue>,
    #[serde(borrow)]
    file_url: Option<&'a RawValue>,
    #[serde(borrow)]
    file_data: Option<&'a RawValue>,
    filename: Option<String>,
    #[serde(borrow)]
    input_audio: Option<InputAudio<'a>>,
}

#[derive(Deserialize)]
struct InputAudio<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    format: Option<String>,
}

#[derive(Deserialize)]
struct UrlObject<'a> {
    #[serde(borrow)]
    url: &'a RawValue,
}

/// `content` (or a tool `output`): a string, null, an array of typed parts, or one part.
fn content_parts(raw: &RawValue) -> Vec<Part> {
    if let Ok(text) = serde_json::from_slice::<Option<String>>(raw.get().as_bytes()) {
        return text.into_iter().map(Part::Text).collect();
    }
    match serde_json::from_slice::<Vec<&RawValue>>(raw.get().as_bytes()) {
        Ok(items) => items.into_iter().map(content_part).collect(),
        Err(_) => vec![content_part(raw)],
    }
}

fn content_part(raw: &RawValue) -> Part {
    let Ok(part) = objects::from_slice::<InPart<'_>>(raw.get().as_bytes()) else {
        return other_part("unknown", raw);
    };
    let described = match part.kind.as_str() {
        "input_text" | "output_text" | "text" => part.text.map(Part::Text),
        "reasoning_text" | "summary_text" => part.text.map(Part::Reasoning),
        "refusal" => part.refusal.map(Part::Text),
        "input_image" | "computer_screenshot" | "image_url" => {
            part.image_url.and_then(url_text).map(|url| Part::Uri {
                modality: "image",
                uri: describe_url(&url),
            })
        }
        "input_file" => file_part(&part),
        "input_audio" => part.input_audio.and_then(|audio| {
            let data = audio.data.and_then(json_str)?;
            let format = audio.format.unwrap_or_default();
            Some(Part::Uri {
                modality: "audio",
                uri: inline_media(&format!("audio/{format}"), data.len()),
            })
        }),
        _ => None,
    };
    described.unwrap_or_else(|| other_part(&part.kind, raw))
}

fn file_part(part: &InPart<'_>) -> Option<Part> {
    if let Some(data) = part.file_data.and_then(json_str) {
        let uri = if data.starts_with("data:") {
            describe_url(&data)
        } else {
            let media_type = part
                .filename
                .as_deref()
                .and_then(media_type_of_name)
                .unwrap_or("application/octet-stream");
            inline_media(media_type, data.len())
        };
        let media_type = data
            .strip_prefix("data:")
            .and_then(|rest| rest.split([';', ',']).next());
        return Some(Part::Uri {
            modality: modality_of(
                media_type.or_else(|| part.filename.as_deref().and_then(media_type_of_name)),
            ),
            uri,
        });
    }
    let url = part.file_url.and_then(url_text)?;
    Some(Part::Uri {
        modality: "document",
        uri: describe_url(&url),
    })
}

/// `image`, `audio` or `video` by media type; anything else (PDFs, text) is a `document`.
fn modality_of(media_type: Option<&str>) -> &'static str {
    match media_type.and_then(|m| m.split('/').next()) {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    }
}

fn media_type_of_name(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => return None,
    })
}

/// A JSON string's text, borrowed when it has no escapes; `None` for other JSON.
fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    match serde_json::from_slice::<&str>(raw.get().as_bytes()) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_slice::<String>(raw.get().as_bytes())
            .ok()
            .map(Cow::Owned),
    }
}

/// A URL given as a string or as `{"url": …}`.
fn url_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    json_str(raw).or_else(|| {
        objects::from_slice::<UrlObject<'_>>(raw.get().as_bytes())
            .ok()
            .and_then(|o| json_str(o.url))
    })
}

/// Inline `data:` URLs are described (media type and payload length); others are kept.
fn describe_url(url: &str) -> String {
    match url.strip_prefix("data:") {
        Some(rest) => {
            let media_type = rest.split([';', ',']).next().unwrap_or("");
            let payload = rest.split_once(',').map_or(0, |(_, data)| data.len());
            inline_media(media_type, payload)
        }
        None => media_placeholder(url.to_string()),
    }
}

/// A part kept as JSON, unless the JSON carries inline base64, which is only described.
fn other_part(kind: &str, raw: &RawValue) -> Part {
    let json = raw.get();
    let json = if json.contains(";base64,") {
        serde_json::json!({
            "type": kind,
            "omitted": inline_media("content", json.len()),
        })
        .to_string()
    } else {
        json.to_string()
    };
    Part::Other {
        kind: kind.to_string(),
        json,
    }
}

// ---------------------------------------------------------------------------------------------
// Response object
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ResponseObject<'a> {
    id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    #[serde(borrow)]
    output: Option<Vec<&'a RawValue>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
    incomplete_details: Option<IncompleteDetails>,
}

flat_strings! {
    /// Why a response is incomplete.
    struct IncompleteDetails { reason: "reason" }
}

/// The Responses API's `usage` object.
struct WireUsage([Option<u64>; MAX_COUNTS]);

impl<'de> Deserialize<'de> for WireUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &[
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "input_tokens_details.cached_tokens",
            "output_tokens_details.reasoning_tokens",
        ];
        counts(d, KEYS).map(WireUsage)
    }
}

impl From<WireUsage> for Usage {
    fn from(WireUsage([input, output, total, cached_input, reasoning]): WireUsage) -> Usage {
        Usage {
            input,
            output,
            total,
            cached_input,
            cache_creation: None,
            reasoning,
        }
    }
}

/// `{"code", "message"}` (a response's `error`, or a streamed `error` event's fields), each a
/// string or a number.
struct WireError {
    code: Option<String>,
    message: Option<String>,
}

impl WireError {
    /// The error `body` holds; `None` when it is not an object.
    fn read(body: &[u8]) -> Option<WireError> {
        let mut f = Flat::read(body)?;
        let mut text = |key| f.text(key).filter(|s| !s.is_empty());
        Some(WireError {
            code: text("code"),
            message: text("message"),
        })
    }

    fn info(self, default_kind: &str) -> ErrorInfo {
        ErrorInfo {
            kind: self.code.unwrap_or_else(|| default_kind.into()),
            message: self.message.unwrap_or_default(),
        }
    }
}

fn response_error(raw: &RawValue) -> Option<ErrorInfo> {
    Some(WireError::read(raw.get().as_bytes())?.info("failed"))
}

/// What a whole response object says, its output already cut to a budget.
struct Folded {
    id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    incomplete_reason: Option<String>,
    usage: Usage,
    error: Option<ErrorInfo>,
    parts: Vec<Part>,
    truncated: bool,
}

fn fold_response(resp: ResponseObject<'_>, mut budget: usize) -> Folded {
    let mut parts = Vec::new();
    for raw in resp.output.unwrap_or_default() {
        match classify(raw) {
            Classified::Message { parts: p, .. }
            | Classified::Assistant(p)
            | Classified::Tool { parts: p, .. } => parts.extend(p),
            Classified::Nothing => {}
        }
    }
    let truncated = cap_parts(&mut parts, &mut budget);
    let error = resp.error.and_then(response_error).or_else(|| {
        (resp.status.as_deref() == Some("failed")).then(|| ErrorInfo {
            kind: "failed".into(),
            message: "the response failed".into(),
        })
    });
    Folded {
        id: resp.id.filter(|s| !s.is_empty()),
        model: resp.model.filter(|s| !s.is_empty()),
        error,
        status: resp.status,
        incomplete_reason: resp.incomplete_details.and_then(|d| d.reason),
        usage: resp.usage.map(Usage::from).unwrap_or_default(),
        parts,
        truncated,
    }
}

/// Cuts text, reasoning and arguments to `budget` bytes in total; drops `Other` parts that do
/// not fit. True when something was cut.
fn cap_parts(parts: &mut Vec<Part>, budget: &mut usize) -> bool {
    let mut truncated = false;
    parts.retain_mut(|part| match part {
        Part::Text(t) | Part::Reasoning(t) => {
            truncated |= !cap(t, budget);
            true
        }
        Part::ToolCall { arguments, .. } => {
            truncated |= !cap(arguments, budget);
            true
        }
        Part::Other { json, .. } => {
            let fits = json.len() <= *budget;
            if fits {
                *budget -= json.len();
            }
            truncated |= !fits;
            fits
        }
        Part::Uri { .. } => true,
    });
    truncated
}

/// Bytes of `parts` that [`cap_parts`] does not charge: URIs.
fn uncapped_bytes(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|part| match part {
            Part::Uri { uri, .. } => uri.len(),
            _ => 0,
        })
        .sum()
}

/// Cuts `s` to `budget` bytes on a character boundary; false when cut.
fn cap(s: &mut String, budget: &mut usize) -> bool {
    if s.len() <= *budget {
        *budget -= s.len();
        return true;
    }
    let mut cut = *budget;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    *budget = 0;
    false
}

/// The finish reason for a response in `status` whose output is `parts`.
fn finish_reason(
    status: Option<&str>,
    incomplete_reason: Option<String>,
    parts: &[Part],
) -> Option<String> {
    match status? {
        "completed" if parts.iter().any(|p| matches!(p, Part::ToolCall { .. })) => {
            Some("tool_calls".into())
        }
        "completed" => Some("stop".into()),
        "incomplete" => Some(incomplete_reason.unwrap_or_else(|| "incomplete".into())),
        "cancelled" => Some("cancelled".into()),
        _ => None,
    }
}

/// Writes the single output choice, when there is output or a finish reason.
fn write_choice(record: &mut TraceRecord, parts: Vec<Part>, finish_reason: Option<String>) {
    record.choices = if parts.is_empty() && finish_reason.is_none() {
        Vec::new()
    } else {
        vec![Choice {
            index: 0,
            message: Message {
                role: "assistant".into(),
                parts,
                ..Message::default()
            },
            finish_reason,
        }]
    };
}

/// Fills the response side of `record` from a (non-streamed) response object.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a response object.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let resp: ResponseObject<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    let folded = fold_response(resp, usize::MAX);
    record.response_id = folded.id;
    record.response_model = folded.model;
    record.usage = folded.usage;
    record.truncated |= folded.truncated;
    if folded.error.is_some() {
        record.error = folded.error;
    }
    let finish = finish_reason(
        folded.status.as_deref(),
        folded.incomplete_reason,
        &folded.parts,
    );
    write_choice(record, folded.parts, finish);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stream
// ---------------------------------------------------------------------------------------------

/// Every streamed event's fields this fold reads; the event's `type` says which apply.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    output_index: u64,
    #[serde(default)]
    content_index: u64,
    #[serde(default)]
    summary_index: u64,
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    item: Option<&'a RawValue>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

/// Which kind of text a streamed piece is, in the order parts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PieceKind {
    Text,
    Summary,
    Reasoning,
}

/// Text of one content part or summary part being assembled.
#[derive(Debug)]
struct Piece {
    kind: PieceKind,
    index: u64,
    text: String,
}

/// One output item being assembled from events.
#[derive(Debug, Default)]
struct ItemAcc {
    output_index: u64,
    call: Option<(String, String)>,
    arguments: String,
    pieces: Vec<Piece>,
    /// The complete item's parts, for items that had no deltas.
    done: Option<Vec<Part>>,
}

impl ItemAcc {
    fn has_deltas(&self) -> bool {
        !self.pieces.is_empty() || !self.arguments.is_empty()
    }

    fn piece(&mut self, budget: &mut Budget, kind: PieceKind, index: u64) -> Option<&mut String> {
        let matches = |p: &Piece| p.kind == kind && p.index == index;
        let make = || Piece {
            kind,
            index,
            text: String::new(),
        };
        let at = item_slot(&mut self.pieces, budget, matches, make)?;
        self.pieces.get_mut(at).map(|p| &mut p.text)
    }

    fn into_parts(self) -> Vec<Part> {
        if let Some(parts) = self.done {
            return parts;
        }
        let mut pieces = self.pieces;
        sort_by_index(&mut pieces, |p| {
            (p.kind as u128) << 64 | u128::from(p.index)
        });
        let mut parts: Vec<Part> = pieces
            .into_iter()
            .map(|p| match p.kind {
                PieceKind::Text => Part::Text(p.text),
                PieceKind::Summary | PieceKind::Reasoning => Part::Reasoning(p.text),
            })
            .collect();
        if let Some((id, name)) = self.call {
            parts.push(Part::ToolCall {
                id,
                name,
                arguments: self.arguments,
            });
        }
        parts
    }
}

/// Folds the semantic events of a streamed response into the record, keeping at most
/// `budget` bytes of output text, reasoning and arguments.
#[derive(Debug)]
pub struct ResponsesStream {
    items: Vec<ItemAcc>,
    id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    error: Option<ErrorInfo>,
    last: Option<FinalState>,
    full_budget: usize,
    budget: Budget,
    malformed: usize,
}

/// What the terminal event said.
#[derive(Debug)]
struct FinalState {
    id: Option<String>,
    model: Option<String>,
    status: Option<String>,
    incomplete_reason: Option<String>,
    usage: Usage,
    error: Option<ErrorInfo>,
    /// The response's own output, when it had any.
    parts: Option<Vec<Part>>,
    truncated: bool,
}

impl ResponsesStream {
    /// A fold that keeps at most `budget` bytes of generated output.
    pub fn new(budget: usize) -> Self {
        ResponsesStream {
            items: Vec::new(),
            id: None,
            model: None,
            status: None,
            error: None,
            last: None,
            full_budget: budget,
            budget: Budget::new(budget),
            malformed: 0,
        }
    }

    /// The item at `output_index`, opened when the budget allows, and the budget.
    fn item(&mut self, output_index: u64) -> (Option<&mut ItemAcc>, &mut Budget) {
        let Self { items, budget, .. } = self;
        let make = || ItemAcc {
            output_index,
            ..ItemAcc::default()
        };
        let at = item_slot(items, budget, |i| i.output_index == output_index, make);
        (at.and_then(|at| items.get_mut(at)), budget)
    }

    fn push_event(&mut self, event: &Event) -> ChunkEffect {
        let data = event.data.trim_ascii();
        if data == b"[DONE]" {
            return ChunkEffect::Done;
        }
        if data.is_empty() {
            return ChunkEffect::Quiet;
        }
        let Ok(ev) = objects::from_slice::<StreamEvent<'_>>(data) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        let kind = ev.kind.as_deref().unwrap_or(&event.event);
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.progress(ev.response);
                ChunkEffect::Quiet
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.terminal(ev.response);
                ChunkEffect::Done
            }
            "response.output_item.added" | "response.output_item.done" => {
                self.item_event(&ev, kind.ends_with(".added"))
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                self.text_delta(&ev, PieceKind::Text, ev.content_index)
            }
            "response.reasoning_summary_text.delta" => {
                self.text_delta(&ev, PieceKind::Summary, ev.summary_index)
            }
            "response.reasoning_text.delta" => {
                self.text_delta(&ev, PieceKind::Reasoning, ev.content_index)
            }
            "response.output_text.done" => {
                self.text_done(&ev, ev.text, PieceKind::Text, ev.content_index)
            }
            "response.refusal.done" => {
                self.text_done(&ev, ev.refusal, PieceKind::Text, ev.content_index)
            }
            "response.reasoning_summary_text.done" => {
                self.text_done(&ev, ev.text, PieceKind::Summary, ev.summary_index)
            }
            "response.reasoning_text.done" => {
                self.text_done(&ev, ev.text, PieceKind::Reasoning, ev.content_index)
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                self.arguments_delta(&ev)
            }
            "response.function_call_arguments.done" => self.arguments_done(&ev, ev.arguments),
            "response.custom_tool_call_input.done" => self.arguments_done(&ev, ev.input),
            "error" => {
                self.error_event(data, &ev);
                ChunkEffect::Quiet
            }
            _ => ChunkEffect::Quiet,
        }
    }

    fn progress(&mut self, response: Option<&RawValue>) {
        let Some(resp) = response.and_then(|r| self.response_object(r)) else {
            return;
        };
        set_once(&mut self.id, resp.id);
        set_once(&mut self.model, resp.model);
        if resp.status.is_some() {
            self.status = resp.status;
        }
    }

    fn response_object<'r>(&mut self, raw: &'r RawValue) -> Option<ResponseObject<'r>> {
        let parsed = objects::from_slice::<ResponseObject<'_>>(raw.get().as_bytes()).ok();
        if parsed.is_none() {
            self.malformed += 1;
        }
        parsed
    }

    fn terminal(&mut self, response: Option<&RawValue>) {
        let Some(resp) = response.and_then(|r| self.response_object(r)) else {
            return;
        };
        let folded = fold_response(resp, self.full_budget);
        let has_output = !folded.parts.is_empty();
        if has_output {
            // The response's own output replaces what the deltas built.
            self.items.clear();
        }
        self.last = Some(FinalState {
            id: folded.id,
            model: folded.model,
            status: folded.status,
            incomplete_reason: folded.incomplete_reason,
            usage: folded.usage,
            error: folded.error,
            parts: has_output.then_some(folded.parts),
            truncated: folded.truncated,
        });
    }

    fn item_event(&mut self, ev: &StreamEvent<'_>, added: bool) -> ChunkEffect {
        let Some(raw) = ev.item else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        let call = objects::from_slice::<Item<'_>>(raw.get().as_bytes())
            .ok()
            .and_then(|item| match item.kind.as_deref() {
                Some("function_call" | "custom_tool_call") => Some((
                    item.call_id.unwrap_or_default(),
                    item.name.unwrap_or_default(),
                )),
                _ => None,
            });
        let is_call = call.is_some();
        let (Some(acc), budget) = self.item(ev.output_index) else {
            return ChunkEffect::Quiet;
        };
        if let Some((id, name)) = call {
            acc.call = Some((
                budget.keep(Some(id)).unwrap_or_default(),
                budget.keep(Some(name)).unwrap_or_default(),
            ));
        }
        if !added && !acc.has_deltas() {
            // A complete item whose content never came as deltas (hosted tool calls, images,
            // or a server that does not stream deltas).
            let mut parts = match classify(raw) {
                Classified::Message { parts, .. }
                | Classified::Assistant(parts)
                | Classified::Tool { parts, .. } => parts,
                Classified::Nothing => Vec::new(),
            };
            budget.charge(|left| cap_parts(&mut parts, left));
            if !budget.take(uncapped_bytes(&parts)) {
                parts.retain(|p| !matches!(p, Part::Uri { .. }));
            }
            for part in &mut parts {
                if let Part::ToolCall { id, name, .. } = part {
                    *id = budget.keep(Some(std::mem::take(id))).unwrap_or_default();
                    *name = budget.keep(Some(std::mem::take(name))).unwrap_or_default();
                }
            }
            acc.done = Some(parts);
        }
        if added && is_call {
            ChunkEffect::Output
        } else {
            ChunkEffect::Quiet
        }
    }

    fn text_delta(&mut self, ev: &StreamEvent<'_>, kind: PieceKind, index: u64) -> ChunkEffect {
        let Some(delta) = ev.delta.and_then(json_str) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        if delta.is_empty() {
            return ChunkEffect::Quiet;
        }
        if let (Some(acc), budget) = self.item(ev.output_index) {
            if let Some(text) = acc.piece(budget, kind, index) {
                budget.append(text, &delta);
            }
        }
        ChunkEffect::Output
    }

    fn text_done(
        &mut self,
        ev: &StreamEvent<'_>,
        text: Option<&RawValue>,
        kind: PieceKind,
        index: u64,
    ) -> ChunkEffect {
        let Some(text) = text.and_then(json_str) else {
            return ChunkEffect::Quiet;
        };
        if let (Some(acc), budget) = self.item(ev.output_index) {
            if let Some(piece) = acc.piece(budget, kind, index) {
                if piece.is_empty() {
                    budget.append(piece, &text);
                }
            }
        }
        ChunkEffect::Quiet
    }

    fn arguments_delta(&mut self, ev: &StreamEvent<'_>) -> ChunkEffect {
        let Some(delta) = ev.delta.and_then(json_str) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        if let (Some(acc), budget) = self.item(ev.output_index) {
            budget.append(&mut acc.arguments, &delta);
        }
        ChunkEffect::Output
    }

    fn arguments_done(
        &mut self,
        ev: &StreamEvent<'_>,
        arguments: Option<&RawValue>,
    ) -> ChunkEffect {
        let Some(arguments) = arguments.and_then(json_str) else {
            return ChunkEffect::Quiet;
        };
        if let (Some(acc), budget) = self.item(ev.output_index) {
            if acc.arguments.is_empty() {
                budget.append(&mut acc.arguments, &arguments);
            }
        }
        ChunkEffect::Quiet
    }

    /// `{"type":"error","code","message"}`, or an `{"error":{…}}` envelope.
    fn error_event(&mut self, data: &[u8], ev: &StreamEvent<'_>) {
        if self.error.is_some() {
            return;
        }
        let info = match ev.error {
            Some(_) => {
                super::openai_chat::parse_error(data).or_else(|| ev.error.and_then(response_error))
            }
            None => WireError::read(data).map(|e| e.info("error")),
        };
        match info {
            Some(info) => self.error = Some(info),
            None => self.malformed += 1,
        }
    }

    fn finish_into(self, record: &mut TraceRecord) {
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed stream events",
                self.malformed
            ));
        }
        let mut items = self.items;
        sort_by_index(&mut items, |i| i.output_index.into());
        let streamed_parts = || items.into_iter().flat_map(ItemAcc::into_parts).collect();
        let (parts, status, incomplete_reason) = match self.last {
            Some(last) => {
                record.response_id = last.id.or(self.id);
                record.response_model = last.model.or(self.model);
                record.usage = last.usage;
                record.error = last.error.or(self.error).or(record.error.take());
                let parts = match last.parts {
                    Some(parts) => {
                        record.truncated |= last.truncated;
                        parts
                    }
                    None => {
                        record.truncated |= self.budget.truncated;
                        streamed_parts()
                    }
                };
                (parts, last.status.or(self.status), last.incomplete_reason)
            }
            None => {
                record.response_id = self.id;
                record.response_model = self.model;
                record.truncated |= self.budget.truncated;
                if self.error.is_some() {
                    record.error = self.error;
                }
                (streamed_parts(), self.status, None)
            }
        };
        let finish = finish_reason(status.as_deref(), incomplete_reason, &parts);
        write_choice(record, parts, finish);
    }
}

impl StreamFold for ResponsesStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_event(event)
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::harness::{self, check_family, check_hostile, Case};
    use crate::protocols::Protocol;
    use crate::sse::SseDecoder;

    fn record(name: &str, records: &[(String, TraceRecord)]) -> TraceRecord {
        harness::record(records, name).clone()
    }

    fn case(name: &str) -> Case {
        harness::case("openai_responses", name)
    }

    fn parts(r: &TraceRecord) -> &[Part] {
        r.choices
            .first()
            .map_or(&[][..], |c| c.message.parts.as_slice())
    }

    /// Folds an SSE body with a fresh stream of `budget`; also returns each event's effect.
    fn fold(body: &[u8], budget: usize) -> (TraceRecord, Vec<ChunkEffect>) {
        let mut decoder = SseDecoder::new(1 << 20);
        let mut stream: Box<dyn StreamFold> = Box::new(ResponsesStream::new(budget));
        let mut effects = Vec::new();
        decoder.push(body, &mut |e| effects.push(stream.push(e)));
        decoder.finish(&mut |e| effects.push(stream.push(e)));
        let mut r = TraceRecord::default();
        stream.finish(&mut r);
        (r, effects)
    }

    /// The SSE body without its events of type `kind`.
    fn without(body: &[u8], kind: &str) -> Vec<u8> {
        let text = String::from_utf8_lossy(body);
        text.split_inclusive("\n\n")
            .filter(|e| !e.starts_with(&format!("event: {kind}\n")))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn fixtures() {
        let records = check_family("openai_responses", 9);

        let basic = record("basic", &records);
        assert_eq!(
            basic.messages[0].parts,
            vec![Part::Text(
                "You are a concise assistant. Answer in one sentence.".into()
            )]
        );
        assert_eq!(basic.messages[1].role, "user");
        assert_eq!(basic.params.temperature, Some(0.3));
        assert_eq!(basic.params.max_completion_tokens, Some(200));
        assert!(!basic.params.stream);
        assert_eq!(
            basic.response_id.as_deref(),
            Some("resp_68a1f0c2d4e88190a8b3c1f9e07d2b5c0e6a1d3f9b8c7a6e")
        );
        assert_eq!(basic.choices[0].message.role, "assistant");

        let mm = record("multimodal", &records);
        let user = &mm.messages[1].parts;
        assert_eq!(user.len(), 5, "{user:?}");
        assert!(matches!(&user[0], Part::Text(t) if t.starts_with("Describe the chart")));
        assert_eq!(
            user[1],
            Part::Uri {
                modality: "image",
                uri: "[inline image/png, 104 base64 chars omitted]".into()
            }
        );
        assert_eq!(
            user[2],
            Part::Uri {
                modality: "image",
                uri: "https://upload.wikimedia.org/wikipedia/commons/3/3f/Fronalpstock_big.jpg"
                    .into()
            }
        );
        assert!(
            matches!(&user[3], Part::Uri { modality: "document", uri } if uri.starts_with("[inline application/pdf, ")),
            "{:?}",
            user[3]
        );
        assert!(
            matches!(&user[4], Part::Other { kind, json } if kind == "input_file" && json.contains("file-6F2ksmvXxt4VdoqmHRw6kL"))
        );
        let dump = format!("{:?}", mm.messages);
        assert!(
            !dump.contains("iVBORw0KGgo") && !dump.contains("JVBERi0"),
            "{dump}"
        );

        let tr = record("tool_result", &records);
        assert_eq!(tr.messages[1].role, "assistant");
        assert!(
            matches!(&tr.messages[1].parts[0], Part::Reasoning(t) if t.starts_with("**Checking the weather**"))
        );
        assert_eq!(
            tr.messages[1].parts[1],
            Part::ToolCall {
                id: "call_Xr8dM2kQ7vLpN3tYb5WcE1aZ".into(),
                name: "get_weather".into(),
                arguments: r#"{"location":"Paris, France","unit":"celsius"}"#.into()
            }
        );
        assert_eq!(tr.messages[2].role, "tool");
        assert_eq!(
            tr.messages[2].tool_call_id.as_deref(),
            Some("call_Xr8dM2kQ7vLpN3tYb5WcE1aZ")
        );
        assert_eq!(
            tr.messages[2].text().as_deref(),
            Some(r#"{"temperature":18,"conditions":"sunny"}"#)
        );
        assert!(tr
            .tools_json
            .as_deref()
            .is_some_and(|t| t.contains("get_weather")));
        assert!(
            !format!("{tr:?}").contains("gAAAAAB"),
            "encrypted reasoning kept"
        );
        // An output reasoning item with an empty summary adds nothing.
        assert_eq!(parts(&tr).len(), 1);

        let sr = record("stream_reasoning", &records);
        assert!(sr.params.stream && sr.streamed);
        assert!(matches!(parts(&sr), [Part::Reasoning(_), Part::Text(_)]));

        let st = record("stream_tools", &records);
        assert_eq!(
            parts(&st),
            &[
                Part::ToolCall {
                    id: "call_Pq4rS6tU8vW0xY2zA4bC6dE8".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"location":"Paris, France","unit":"celsius"}"#.into()
                },
                Part::ToolCall {
                    id: "call_Fg1hI3jK5lM7nO9pQ1rS3tU5".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"location":"Tokyo, Japan","unit":"celsius"}"#.into()
                }
            ]
        );

        let failed = record("stream_failed", &records);
        let err = failed.error.as_ref().expect("error");
        assert!(err
            .message
            .starts_with("An error occurred while processing"));

        let se = record("stream_error", &records);
        assert!(se.choices.is_empty());
        assert!(se
            .error
            .as_ref()
            .is_some_and(|e| e.message.starts_with("Rate limit reached")));
        assert_eq!(
            se.response_id.as_deref(),
            Some("resp_68a1f7a0e5f68190d4e5f6a7b8c9d0e1b2c3d4e5f6071829")
        );

        let inc = record("incomplete", &records);
        assert!(inc.error.is_none());
    }

    #[test]
    fn deltas_alone_give_what_the_completed_event_gives() {
        for name in ["stream_reasoning", "stream_tools"] {
            let c = case(name);
            let (whole, _) = fold(&c.response, 1 << 20);
            let (deltas, _) = fold(&without(&c.response, "response.completed"), 1 << 20);
            assert_eq!(parts(&deltas), parts(&whole), "{name}");
            // Without the terminal event the status is still in_progress: no finish reason,
            // no usage.
            assert_eq!(deltas.choices[0].finish_reason, None, "{name}");
            assert!(deltas.usage.is_empty());
            assert_eq!(deltas.response_id, whole.response_id);
            // Deltas and `.done` events alone, without the items' `.done`, too.
            let (bare, _) = fold(
                &without(
                    &without(&c.response, "response.completed"),
                    "response.output_item.done",
                ),
                1 << 20,
            );
            assert_eq!(parts(&bare), parts(&whole), "{name}");
        }
    }

    #[test]
    fn first_token_is_the_first_delta_or_tool_call() {
        for (name, first_output) in [
            ("stream_reasoning", "response.reasoning_summary_text.delta"),
            ("stream_tools", "response.output_item.added"),
            ("stream_failed", "response.output_text.delta"),
        ] {
            let c = case(name);
            let text = String::from_utf8_lossy(&c.response).into_owned();
            let start = text
                .find(&format!("event: {first_output}\n"))
                .expect("event");
            let end = start + text[start..].find("\n\n").expect("event end") + 2;
            // Chunk 1 (1100 ms) ends just before or just after the first output event; the
            // rest arrives at 1110 ms.
            assert_eq!(
                c.run(&[start]).first_token_ns,
                Some(1_110_000_000),
                "{name}"
            );
            assert_eq!(
                c.run(&[end - 1]).first_token_ns,
                Some(1_110_000_000),
                "{name}"
            );
            assert_eq!(c.run(&[end]).first_token_ns, Some(1_100_000_000), "{name}");
            let (_, effects) = fold(&c.response, 1 << 20);
            assert_eq!(effects.last(), Some(&ChunkEffect::Done), "{name}");
        }
        let (_, effects) = fold(&case("stream_error").response, 1 << 20);
        assert!(effects.iter().all(|e| *e == ChunkEffect::Quiet));
    }

    #[test]
    fn output_is_bounded_by_the_budget() {
        let c = case("stream_reasoning");
        let (r, _) = fold(&c.response, 40);
        assert!(r.truncated);
        let kept: usize = parts(&r)
            .iter()
            .map(|p| match p {
                Part::Text(t) | Part::Reasoning(t) => t.len(),
                _ => 0,
            })
            .sum();
        assert!(kept <= 40, "{kept}");
        let (r, _) = fold(&without(&c.response, "response.completed"), 40);
        assert!(r.truncated);
        assert!(
            matches!(parts(&r), [Part::Reasoning(t), Part::Text(x)] if t.len() == 40 && x.is_empty())
        );

        let c = case("stream_tools");
        let (r, _) = fold(&without(&c.response, "response.completed"), 50);
        assert!(r.truncated);
        match parts(&r) {
            [Part::ToolCall { arguments: a, .. }, Part::ToolCall { arguments: b, .. }] => {
                assert_eq!(a.len() + b.len(), 50);
            }
            other => panic!("{other:?}"),
        }
        // A multi-byte character is never split.
        let (r, _) = fold(
            b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"a\xc3\xa9\"}\n\n",
            2,
        );
        assert_eq!(parts(&r), &[Part::Text("a".into())]);
    }

    #[test]
    fn input_items_join_their_assistant_turns() {
        let body = br#"{"model":"gpt-5","input":[
            {"role":"system","content":"Be brief."},
            {"type":"message","role":"user","content":[{"type":"input_text","text":"Weather in Oslo and a picture?"}]},
            {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Need the tool."},{"type":"summary_text","text":"Then draw."}],"content":[{"type":"reasoning_text","text":"raw thought"}]},
            {"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Oslo\"}"},
            {"type":"image_generation_call","id":"ig_1","status":"completed","result":"iVBORw0KGgoAAAANSUhEUg=="},
            {"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"-3 C"},{"type":"input_image","image_url":"data:image/jpeg;base64,/9j/4AAQ"}]},
            {"type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"It is -3 C.","annotations":[]},{"type":"refusal","refusal":"No drawing."}]},
            {"role":"assistant","content":"Anything else?"},
            {"type":"custom_tool_call","call_id":"c2","name":"sql","input":"SELECT 1"},
            {"type":"custom_tool_call_output","call_id":"c2","output":"1"},
            {"type":"computer_call_output","call_id":"c3","output":{"type":"computer_screenshot","image_url":"data:image/png;base64,AAAA"}},
            {"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"oslo"}},
            {"type":"item_reference","id":"msg_0"},
            {"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},{"type":"mystery","blob":"data:application/zip;base64,UEsDBA=="}]},
            null
        ]}"#;
        let mut r = TraceRecord::default();
        parse_request(body, &mut r).expect("parses");
        let roles: Vec<&str> = r.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            vec![
                "system",
                "user",
                "assistant",
                "tool",
                "assistant",
                "assistant",
                "tool",
                "tool",
                "assistant",
                "user"
            ]
        );
        assert_eq!(
            r.messages[2].parts,
            vec![
                Part::Reasoning("Need the tool.".into()),
                Part::Reasoning("Then draw.".into()),
                Part::Reasoning("raw thought".into()),
                Part::ToolCall {
                    id: "c1".into(),
                    name: "weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into()
                },
                Part::Uri {
                    modality: "image",
                    uri: "[inline image/png, 24 base64 chars omitted]".into()
                },
            ]
        );
        assert_eq!(
            r.messages[3].parts,
            vec![
                Part::Text("-3 C".into()),
                Part::Uri {
                    modality: "image",
                    uri: "[inline image/jpeg, 8 base64 chars omitted]".into()
                }
            ]
        );
        assert_eq!(
            r.messages[4].parts,
            vec![
                Part::Text("It is -3 C.".into()),
                Part::Text("No drawing.".into())
            ]
        );
        // The next assistant message starts a new message; the custom tool call joins it.
        assert_eq!(r.messages[5].parts.len(), 2);
        assert!(
            matches!(&r.messages[5].parts[1], Part::ToolCall { id, arguments, .. } if id == "c2" && arguments == "SELECT 1")
        );
        assert_eq!(
            r.messages[7].parts,
            vec![Part::Uri {
                modality: "image",
                uri: "[inline image/png, 4 base64 chars omitted]".into()
            }]
        );
        assert!(
            matches!(&r.messages[8].parts[..], [Part::Other { kind: a, .. }, Part::Other { kind: b, .. }] if a == "web_search_call" && b == "item_reference")
        );
        let last = &r.messages[9].parts;
        assert_eq!(
            last[0],
            Part::Uri {
                modality: "audio",
                uri: "[inline audio/wav, 8 base64 chars omitted]".into()
            }
        );
        assert!(
            matches!(&last[1], Part::Other { kind, json } if kind == "mystery" && !json.contains("UEsDBA")),
            "{:?}",
            last[1]
        );
    }

    #[test]
    fn finish_reasons_and_errors_from_the_response_object() {
        let cases = [
            (r#"{"status":"completed","output":[]}"#, Some("stop"), None),
            (
                r#"{"status":"completed","output":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}]}"#,
                Some("tool_calls"),
                None,
            ),
            (
                r#"{"status":"incomplete","incomplete_details":{"reason":"content_filter"},"output":null}"#,
                Some("content_filter"),
                None,
            ),
            (r#"{"status":"incomplete"}"#, Some("incomplete"), None),
            (r#"{"status":"cancelled"}"#, Some("cancelled"), None),
            (r#"{"status":"queued","output":[]}"#, None, None),
            (
                r#"{"status":"failed","error":{"code":"server_error","message":"boom"}}"#,
                None,
                Some("server_error"),
            ),
            (r#"{"status":"failed","error":null}"#, None, Some("failed")),
            (
                r#"{"status":"failed","error":{"code":429,"message":"slow down"}}"#,
                None,
                Some("429"),
            ),
        ];
        for (body, finish, error) in cases {
            let mut r = TraceRecord::default();
            parse_response(body.as_bytes(), &mut r).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(
                r.choices.first().and_then(|c| c.finish_reason.as_deref()),
                finish,
                "{body}"
            );
            assert_eq!(r.error.as_ref().map(|e| e.kind.as_str()), error, "{body}");
        }
    }

    #[test]
    fn error_events_in_both_shapes() {
        let flat = b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"The server had an error\",\"param\":null,\"sequence_number\":3}\n\n";
        let nested = b"event: error\ndata: {\"type\":\"error\",\"sequence_number\":3,\"error\":{\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\",\"message\":\"Too long\",\"param\":\"input\"}}\n\n";
        let (r, _) = fold(flat, 100);
        assert_eq!(
            r.error,
            Some(ErrorInfo {
                kind: "server_error".into(),
                message: "The server had an error".into()
            })
        );
        let (r, _) = fold(nested, 100);
        assert_eq!(
            r.error,
            Some(ErrorInfo {
                kind: "invalid_request_error".into(),
                message: "Too long".into()
            })
        );
        let (r, _) = fold(b"data: {\"type\":\"error\"}\n\n", 100);
        assert_eq!(r.error.map(|e| e.kind), Some("error".to_string()));
    }

    #[test]
    fn hosted_tool_items_without_deltas_are_kept() {
        let body = concat!(
            "event: response.output_item.done\n",
            "data: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"type\":\"web_search_call\",\"id\":\"ws_1\",\"status\":\"completed\"}}\n\n",
            "event: response.output_item.done\n",
            "data: {\"type\":\"response.output_item.done\",\"output_index\":1,\"item\":{\"type\":\"image_generation_call\",\"id\":\"ig_1\",\"result\":\"AAAABBBB\"}}\n\n",
            "event: response.output_item.done\n",
            "data: {\"type\":\"response.output_item.done\",\"output_index\":2,\"item\":{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Done.\"}]}}\n\n",
            "data: [DONE]\n\n",
        );
        let (r, effects) = fold(body.as_bytes(), 1000);
        assert_eq!(effects.last(), Some(&ChunkEffect::Done));
        assert!(matches!(
            parts(&r),
            [Part::Other { kind, .. }, Part::Uri { modality: "image", .. }, Part::Text(t)]
                if kind == "web_search_call" && t == "Done."
        ));
        assert!(r.unparsed.is_empty());
    }

    #[test]
    fn malformed_events_are_counted_not_fatal() {
        let body = concat!(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":\"ok\"}\n\n",
            "event: response.output_text.delta\ndata: {not json\n\n",
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"delta\":7}\n\n",
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":[1]}\n\n",
        );
        let (r, _) = fold(body.as_bytes(), 1000);
        assert_eq!(parts(&r), &[Part::Text("ok".into())]);
        assert_eq!(
            r.unparsed,
            vec!["response: 3 malformed stream events".to_string()]
        );
    }

    #[test]
    fn hostile_input_never_panics() {
        check_hostile(Protocol::OpenAiResponses);
    }
}
