//! OpenAI Chat Completions (`POST …/chat/completions`): request, JSON response, streamed
//! `chat.completion.chunk` events and error bodies, folded into a [`TraceRecord`].
//!
//! Follows OpenAI's published API reference for the create-chat-completion request, the
//! chat completion object and the chunk object; OpenAI-compatible servers (Azure OpenAI, vLLM,
//! llama.cpp, …) speak the same shapes. Bodies are deserialized into typed structs that ignore
//! unknown keys; nothing here calls the host.

use super::wire::{dotted, flat_strings, stop_list, Content, Flat, Key, OpenAiUsage, Scalar, Stop};
use super::{
    item_slot, media_placeholder, set_once_from, sort_by_index, BodyMembers, Budget, ChunkEffect,
    ProtocolError, StreamFold,
};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::skim::{Bail, RawStr, Seen, Skim, Skimmed, Template};
use crate::sse::Event;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

#[derive(Deserialize)]
struct ChatRequest<'a> {
    model: Option<String>,
    #[serde(default)]
    messages: Vec<InMessage<'a>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    n: Option<u64>,
    stream: Option<bool>,
    stop: Option<Stop>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
    /// Read here for the context, so that it need not scan the body again.
    #[serde(borrow)]
    user: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(default)]
    role: String,
    #[serde(borrow)]
    content: Option<Content<'a>>,
    name: Option<String>,
    tool_call_id: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: String,
    #[serde(default)]
    function: Function,
}

#[derive(Deserialize, Default)]
struct Function {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct ContentPart {
    #[serde(rename = "type", default)]
    kind: String,
    text: Option<String>,
    image_url: Option<ImageUrl>,
    input_audio: Option<InputAudio>,
}

/// `image_url`: `{"url": …}`, or the URL alone as some clients send it.
struct ImageUrl(String);

impl<'de> Deserialize<'de> for ImageUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UrlVisitor;
        impl<'de> Visitor<'de> for UrlVisitor {
            type Value = ImageUrl;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL or an object with `url`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ImageUrl, E> {
                Ok(ImageUrl(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImageUrl, A::Error> {
                let mut url = None;
                while let Some(Key(key)) = map.next_key()? {
                    if key != "url" {
                        map.next_value::<IgnoredAny>()?;
                    } else if url.replace(map.next_value::<String>()?).is_some() {
                        return Err(de::Error::duplicate_field("url"));
                    }
                }
                url.map(ImageUrl)
                    .ok_or_else(|| de::Error::missing_field("url"))
            }
        }
        d.deserialize_any(UrlVisitor)
    }
}

flat_strings! {
    /// `input_audio`: base64 `data` and its `format`.
    struct InputAudio { data: "data", format: "format" }
}

/// Fills the request side of `record` from a chat completion request body; returns the body's
/// `user` and `metadata`.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a chat completion request.
pub fn parse_request<'a>(
    body: &'a [u8],
    record: &mut TraceRecord,
) -> Result<BodyMembers<'a>, ProtocolError> {
    let req: ChatRequest<'a> = objects::from_slice(body).map_err(ProtocolError::json)?;
    let members = BodyMembers {
        user: req.user.map(RawValue::get),
        metadata: req.metadata.map(RawValue::get),
    };
    record.request_model = req.model;
    record.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_tokens,
        max_completion_tokens: req.max_completion_tokens,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        seed: req.seed,
        n: req.n,
        stream: req.stream.unwrap_or(false),
        stop: stop_list(req.stop),
    };
    record.tools_json = req.tools.map(|t| t.get().to_string());
    record.messages = req.messages.into_iter().map(input_message).collect();
    Ok(members)
}

fn input_message(m: InMessage<'_>) -> Message {
    let mut parts = m.content.map(content_parts).unwrap_or_default();
    parts.extend(m.tool_calls.into_iter().map(tool_call_part));
    Message {
        role: m.role,
        parts,
        name: m.name,
        tool_call_id: m.tool_call_id,
    }
}

fn tool_call_part(call: ToolCall) -> Part {
    Part::ToolCall {
        id: call.id,
        name: call.function.name,
        arguments: call.function.arguments,
    }
}

/// `content` is a string, null, or an array of typed parts.
fn content_parts(content: Content<'_>) -> Vec<Part> {
    match content {
        Content::Text(text) => vec![Part::Text(text.into_owned())],
        Content::Parts(items) => items.into_iter().map(content_part).collect(),
        Content::Other(json) => vec![Part::Other {
            kind: "unknown".into(),
            json,
        }],
    }
}

fn content_part(raw: &RawValue) -> Part {
    let other = |kind: String| Part::Other {
        kind,
        json: raw.get().to_string(),
    };
    let Ok(part) = objects::from_slice::<ContentPart>(raw.get().as_bytes()) else {
        return other("unknown".into());
    };
    match (
        part.kind.as_str(),
        part.text,
        part.image_url,
        part.input_audio,
    ) {
        ("text", Some(text), _, _) => Part::Text(text),
        ("image_url", _, Some(ImageUrl(url)), _) => Part::Uri {
            modality: "image",
            uri: media_placeholder(url),
        },
        ("input_audio", _, _, Some(audio)) => Part::Uri {
            modality: "audio",
            uri: format!(
                "[inline audio {}, {} base64 chars omitted]",
                audio.format.unwrap_or_default(),
                audio.data.map_or(0, |d| d.len())
            ),
        },
        _ => other(part.kind),
    }
}

#[derive(Deserialize)]
struct ChatResponse {
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    #[serde(default)]
    choices: Vec<OutChoice>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OutChoice {
    #[serde(default)]
    index: u32,
    message: Option<OutMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OutMessage {
    #[serde(default)]
    role: String,
    content: Option<String>,
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
}

/// Fills the response side of `record` from a non-streamed chat completion.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a chat completion.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let resp: ChatResponse = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.response_id = resp.id;
    record.response_model = resp.model;
    record.system_fingerprint = resp.system_fingerprint;
    record.usage = resp.usage.map(Usage::from).unwrap_or_default();
    record.choices = resp
        .choices
        .into_iter()
        .map(|c| {
            let message = c.message.map_or_else(Message::default, |m| {
                let mut parts: Vec<Part> = m
                    .content
                    .or(m.refusal)
                    .into_iter()
                    .map(Part::Text)
                    .collect();
                parts.extend(m.tool_calls.into_iter().map(tool_call_part));
                Message {
                    role: m.role,
                    parts,
                    ..Message::default()
                }
            });
            Choice {
                index: c.index,
                message,
                finish_reason: c.finish_reason,
            }
        })
        .collect();
    Ok(())
}

/// `error`: an object (`message`, `type`, `code`), or a bare message.
enum ErrorDetail {
    Object {
        message: Option<String>,
        kind: Option<String>,
        code: Option<String>,
    },
    Text(String),
}

impl ErrorDetail {
    /// The detail under `key` of `f`: a string, or an object whose members follow as `key.…`.
    /// The top level (`key` empty) is an object when it holds no value of its own.
    fn at(f: &mut Flat, key: &str) -> Option<ErrorDetail> {
        let object = match f.get(key) {
            Some(Scalar::Str(_)) => return f.take_str(key).map(ErrorDetail::Text),
            Some(Scalar::Object) => true,
            None => key.is_empty(),
            _ => false,
        };
        object.then(|| ErrorDetail::Object {
            message: f.take_str(&dotted(key, "message")),
            kind: f.take_str(&dotted(key, "type")),
            code: f.text(&dotted(key, "code")),
        })
    }
}

impl<'de> Deserialize<'de> for ErrorDetail {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ErrorDetail::at(&mut Flat::deserialize(d)?, "")
            .ok_or_else(|| de::Error::custom("expected an error object or message"))
    }
}

/// The provider's error, from an error body (`{"error":{"message","type","code"}}`) or a
/// mid-stream error event. `None` when the body carries no recognisable error.
///
/// vLLM and some OpenAI-compatible servers answer a flat `{"object":"error", "message",
/// "type", "code"}` instead of OpenAI's nested `error` object; FastAPI-based servers (vLLM's
/// native `/generate`, TGI) answer `{"detail": "…"}`.
pub fn parse_error(body: &[u8]) -> Option<ErrorInfo> {
    let mut f = Flat::read(body)?;
    let detail = match f.get("error") {
        Some(Scalar::Str(_) | Scalar::Object) => ErrorDetail::at(&mut f, "error"),
        Some(Scalar::Null) | None if matches!(f.get("object"), Some(Scalar::Str(o)) if o == "error") => {
            ErrorDetail::at(&mut f, "")
        }
        Some(Scalar::Null) | None => match f.get("detail") {
            Some(Scalar::Str(_)) => ErrorDetail::at(&mut f, "detail"),
            _ => None,
        },
        Some(_) => None,
    };
    detail.map(error_info)
}

fn error_info(detail: ErrorDetail) -> ErrorInfo {
    match detail {
        ErrorDetail::Text(message) => ErrorInfo {
            kind: "error".into(),
            message,
        },
        ErrorDetail::Object {
            message,
            kind,
            code,
        } => ErrorInfo {
            kind: kind.or(code).unwrap_or_else(|| "error".into()),
            message: message.unwrap_or_default(),
        },
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<ChunkChoice<'a>>,
    usage: Option<OpenAiUsage>,
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Delta<'a> {
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<ToolCallDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// A tool call being assembled from deltas.
#[derive(Debug, Default)]
struct ToolCallAcc {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

/// A choice being assembled from deltas.
#[derive(Debug, Default)]
struct ChoiceAcc {
    index: u32,
    role: Option<String>,
    content: String,
    tool_calls: Vec<ToolCallAcc>,
    finish_reason: Option<String>,
}

/// Folds `chat.completion.chunk` events into the final message(s), bounded by a [`Budget`].
#[derive(Debug)]
pub struct ChatStream {
    choices: Vec<ChoiceAcc>,
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    usage: Usage,
    error: Option<ErrorInfo>,
    budget: Budget,
    malformed: usize,
    /// The last event that was a plain text delta, to read the next ones fast.
    template: Template,
    /// The choice, and the string of its delta, that the template varies.
    template_at: (u32, Varying),
    /// Whether events may be read by the fast readers before the full parser.
    fast: bool,
}

impl ChatStream {
    /// A fold that keeps at most `budget` bytes of generated text, arguments, names and ids.
    pub fn new(budget: usize) -> Self {
        ChatStream {
            choices: Vec::new(),
            id: None,
            model: None,
            system_fingerprint: None,
            usage: Usage::default(),
            error: None,
            budget: Budget::new(budget),
            malformed: 0,
            template: Template::default(),
            template_at: (0, Varying::Text),
            fast: true,
        }
    }

    /// The same fold reading every event with the full parser only: the reference the fast
    /// readers are checked against by tests and fuzzing.
    pub fn with_full_parser(budget: usize) -> Self {
        ChatStream {
            fast: false,
            ..ChatStream::new(budget)
        }
    }

    fn push_data(&mut self, data: &[u8]) -> ChunkEffect {
        let trimmed = data.trim_ascii();
        if trimmed == b"[DONE]" {
            return ChunkEffect::Done;
        }
        if trimmed.is_empty() {
            return ChunkEffect::Quiet;
        }
        if self.fast {
            if let Some(effect) = self.templated(trimmed) {
                return effect;
            }
        }
        let skimmed = if self.fast {
            self.skimmed(trimmed)
        } else {
            Err(Bail)
        };
        let Ok(chunk) = skimmed.or_else(|Bail| objects::from_slice(trimmed)) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        self.apply_chunk(chunk)
    }

    /// The last plain delta again, with another string: applied without parsing.
    fn templated(&mut self, data: &[u8]) -> Option<ChunkEffect> {
        let value = self.template.value(data)?.decode();
        let (index, varying) = self.template_at;
        if varying == Varying::Text {
            // Most events: more text for a choice already open, applied as `apply_choice`
            // would apply it, without building the chunk.
            if let Some(acc) = self.choices.iter_mut().rev().find(|c| c.index == index) {
                self.budget.append(&mut acc.content, &value);
                return Some(ChunkEffect::output_if(!value.is_empty()));
            }
        }
        let value = Some(value);
        let delta = match varying {
            Varying::Text => Delta {
                content: value,
                ..Delta::default()
            },
            Varying::Arguments(tool) => Delta {
                tool_calls: vec![ToolCallDelta {
                    index: tool,
                    id: None,
                    function: Some(FunctionDelta {
                        name: None,
                        arguments: value,
                    }),
                }],
                ..Delta::default()
            },
        };
        let choice = ChunkChoice {
            index,
            delta: Some(delta),
            finish_reason: None,
        };
        Some(ChunkEffect::output_if(self.apply_choice(choice)))
    }

    /// A chunk read by the skim, which becomes the template when it is a plain delta.
    fn skimmed<'d>(&mut self, data: &'d [u8]) -> Skimmed<Chunk<'d>> {
        let (chunk, varying) = skim_chunk(data)?;
        if let Some((index, varying, value)) = varying {
            if is_plain_delta(&chunk, varying) {
                self.template.set(data, value);
                self.template_at = (index, varying);
            }
        }
        Ok(chunk)
    }

    fn apply_chunk(&mut self, chunk: Chunk<'_>) -> ChunkEffect {
        if let Some(err) = chunk.error {
            self.error = Some(error_info(err));
        }
        set_once_from(&mut self.id, chunk.id);
        set_once_from(&mut self.model, chunk.model);
        set_once_from(&mut self.system_fingerprint, chunk.system_fingerprint);
        if let Some(u) = chunk.usage {
            self.usage = u.into();
        }
        let mut effect = ChunkEffect::Quiet;
        for c in chunk.choices {
            if self.apply_choice(c) {
                effect = ChunkEffect::Output;
            }
        }
        effect
    }

    fn apply_choice(&mut self, c: ChunkChoice<'_>) -> bool {
        let Self {
            choices, budget, ..
        } = self;
        let make = || ChoiceAcc {
            index: c.index,
            ..ChoiceAcc::default()
        };
        let Some(at) = item_slot(choices, budget, |a| a.index == c.index, make) else {
            return false;
        };
        let acc = &mut choices[at];
        if let Some(reason) = c.finish_reason {
            acc.finish_reason = Some(reason.into_owned());
        }
        let Some(delta) = c.delta else {
            return false;
        };
        if acc.role.is_none() {
            acc.role = budget.keep(delta.role.map(Cow::into_owned));
        }
        let mut output = false;
        for text in [delta.content, delta.refusal].into_iter().flatten() {
            output |= !text.is_empty();
            budget.append(&mut acc.content, &text);
        }
        for call in delta.tool_calls {
            output = true;
            let make = || ToolCallAcc {
                index: call.index,
                ..ToolCallAcc::default()
            };
            let tools = &mut acc.tool_calls;
            let Some(slot) = item_slot(tools, budget, |t| t.index == call.index, make) else {
                continue;
            };
            let tool = &mut tools[slot];
            if let Some(id) = call.id {
                tool.id.clear();
                budget.name(&mut tool.id, &id);
            }
            if let Some(f) = call.function {
                if let Some(name) = f.name {
                    budget.name(&mut tool.name, &name);
                }
                if let Some(args) = f.arguments {
                    budget.append(&mut tool.arguments, &args);
                }
            }
        }
        output
    }

    fn finish_into(self, record: &mut TraceRecord) {
        record.response_id = self.id;
        record.response_model = self.model;
        record.system_fingerprint = self.system_fingerprint;
        record.usage = self.usage;
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
        let mut choices = self.choices;
        sort_by_index(&mut choices, |c| c.index.into());
        record.choices = choices
            .into_iter()
            .map(|c| {
                let mut parts = Vec::new();
                if !c.content.is_empty() {
                    parts.push(Part::Text(c.content));
                }
                let mut calls = c.tool_calls;
                sort_by_index(&mut calls, |t| t.index as u128);
                parts.extend(calls.into_iter().map(|t| Part::ToolCall {
                    id: t.id,
                    name: t.name,
                    arguments: t.arguments,
                }));
                Choice {
                    index: c.index,
                    message: Message {
                        role: c.role.unwrap_or_else(|| "assistant".into()),
                        parts,
                        ..Message::default()
                    },
                    finish_reason: c.finish_reason,
                }
            })
            .collect();
    }
}

/// The last choice's index and the string its delta may vary, for [`Template`].
type VaryingAt<'a> = Option<(u32, Varying, RawStr<'a>)>;

/// Reads a chunk of the everyday shape (text and tool-call deltas; usage and error absent or
/// null) without the full parser; bails on anything else, which the full parser then reads.
/// Also returns what a [`Template`] of the chunk would vary.
fn skim_chunk(data: &[u8]) -> Skimmed<(Chunk<'_>, VaryingAt<'_>)> {
    let mut s = Skim::new(data)?;
    let mut chunk = Chunk {
        id: None,
        model: None,
        system_fingerprint: None,
        choices: Vec::new(),
        usage: None,
        error: None,
    };
    let mut text = None;
    let mut seen = Seen::default();
    s.object(|s, key| {
        match seen.first(key, &CHUNK_FIELDS)? {
            "id" => chunk.id = s.opt_string()?.map(RawStr::decode),
            "model" => chunk.model = s.opt_string()?.map(RawStr::decode),
            "system_fingerprint" => {
                chunk.system_fingerprint = s.opt_string()?.map(RawStr::decode);
            }
            "choices" => s.array(|s| {
                let (choice, varying) = skim_choice(s)?;
                text = varying.map(|(v, raw)| (choice.index, v, raw));
                chunk.choices.push(choice);
                Ok(())
            })?,
            "usage" | "error" if !s.null()? => return Err(Bail),
            "usage" | "error" => {}
            _ => s.skip_value()?,
        }
        Ok(())
    })?;
    s.end()?;
    Ok((chunk, text))
}

/// The members of a chunk that [`Chunk`] reads.
const CHUNK_FIELDS: [&str; 6] = [
    "id",
    "model",
    "system_fingerprint",
    "choices",
    "usage",
    "error",
];

/// A choice, and the string its delta may vary.
fn skim_choice<'a>(s: &mut Skim<'a>) -> Skimmed<(ChunkChoice<'a>, Option<(Varying, RawStr<'a>)>)> {
    let mut choice = ChunkChoice {
        index: 0,
        delta: None,
        finish_reason: None,
    };
    let mut text = None;
    let mut seen = Seen::default();
    s.object(|s, key| {
        match seen.first(key, &["index", "delta", "finish_reason"])? {
            "index" => choice.index = s.u32()?,
            "delta" if s.null()? => (choice.delta, text) = (None, None),
            "delta" => {
                let (delta, content) = skim_delta(s)?;
                (choice.delta, text) = (Some(delta), content);
            }
            "finish_reason" => choice.finish_reason = s.opt_string()?.map(RawStr::decode),
            _ => s.skip_value()?,
        }
        Ok(())
    })?;
    Ok((choice, text))
}

/// Which string of a delta a [`Template`] varies: the text, or one tool call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Varying {
    Text,
    Arguments(usize),
}

/// A delta, and its raw `content` or last tool call's raw `arguments`.
fn skim_delta<'a>(s: &mut Skim<'a>) -> Skimmed<(Delta<'a>, Option<(Varying, RawStr<'a>)>)> {
    let mut delta = Delta::default();
    let mut varying = None;
    let mut seen = Seen::default();
    s.object(|s, key| {
        let slot = match seen.first(key, &["role", "content", "refusal", "tool_calls"])? {
            "role" => &mut delta.role,
            "content" => {
                let text = s.opt_string()?;
                varying = text.map(|t| (Varying::Text, t));
                delta.content = text.map(RawStr::decode);
                return Ok(());
            }
            "refusal" => &mut delta.refusal,
            "tool_calls" => {
                return s.array(|s| {
                    let (call, arguments) = skim_tool_call(s)?;
                    varying = arguments.map(|a| (Varying::Arguments(call.index), a));
                    delta.tool_calls.push(call);
                    Ok(())
                });
            }
            _ => return s.skip_value(),
        };
        *slot = s.opt_string()?.map(RawStr::decode);
        Ok(())
    })?;
    Ok((delta, varying))
}

/// A tool call delta, and its raw `arguments`.
fn skim_tool_call<'a>(s: &mut Skim<'a>) -> Skimmed<(ToolCallDelta<'a>, Option<RawStr<'a>>)> {
    let mut call = ToolCallDelta {
        index: 0,
        id: None,
        function: None,
    };
    let mut arguments = None;
    let mut seen = Seen::default();
    s.object(|s, key| {
        match seen.first(key, &["index", "id", "function"])? {
            "index" => call.index = s.u32()? as usize,
            "id" => call.id = s.opt_string()?.map(RawStr::decode),
            "function" if s.null()? => (call.function, arguments) = (None, None),
            "function" => {
                let mut function = FunctionDelta {
                    name: None,
                    arguments: None,
                };
                let mut seen = Seen::default();
                s.object(|s, key| {
                    match seen.first(key, &["name", "arguments"])? {
                        "name" => function.name = s.opt_string()?.map(RawStr::decode),
                        "arguments" => {
                            arguments = s.opt_string()?;
                            function.arguments = arguments.map(RawStr::decode);
                        }
                        _ => s.skip_value()?,
                    }
                    Ok(())
                })?;
                call.function = Some(function);
            }
            _ => s.skip_value()?,
        }
        Ok(())
    })?;
    Ok((call, arguments))
}

/// Whether a chunk's only news is one string for one choice, text or one tool call's
/// arguments: the shape [`Template`] repeats.
fn is_plain_delta(chunk: &Chunk<'_>, varying: Varying) -> bool {
    let [choice] = chunk.choices.as_slice() else {
        return false;
    };
    let plain = |d: &Delta<'_>| match (varying, d.tool_calls.as_slice()) {
        (Varying::Text, []) => true,
        (Varying::Arguments(_), [call]) => {
            d.content.is_none()
                && call.id.is_none()
                && call.function.as_ref().is_some_and(|f| f.name.is_none())
        }
        _ => false,
    };
    choice.finish_reason.is_none()
        && choice
            .delta
            .as_ref()
            .is_some_and(|d| d.role.is_none() && d.refusal.is_none() && plain(d))
        && chunk.usage.is_none()
        && chunk.error.is_none()
}

/// Whether the fast reader of stream chunks agrees with the full parser on `data`: true unless
/// the fast reader accepted `data` and read something other than what the parser reads. The
/// fuzz targets call it on every input.
pub fn skim_agrees(data: &[u8]) -> bool {
    let Ok((fast, _)) = skim_chunk(data) else {
        return true;
    };
    match objects::from_slice::<Chunk<'_>>(data) {
        Ok(full) => view(&fast) == view(&full),
        Err(_) => false,
    }
}

/// What a chunk says, comparable.
fn view(c: &Chunk<'_>) -> impl PartialEq + std::fmt::Debug {
    let s = |v: &Option<Cow<'_, str>>| v.as_deref().map(str::to_owned);
    let choices: Vec<_> = c
        .choices
        .iter()
        .map(|ch| {
            let delta = ch
                .delta
                .as_ref()
                .map(|d| (s(&d.role), s(&d.content), s(&d.refusal), d.tool_calls.len()));
            (ch.index, delta, s(&ch.finish_reason))
        })
        .collect();
    (
        s(&c.id),
        s(&c.model),
        s(&c.system_fingerprint),
        choices,
        c.usage.is_some(),
        c.error.is_some(),
    )
}

impl StreamFold for ChatStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_data(&event.data)
    }

    fn push_lone_line(&mut self, data: &[u8]) -> Option<ChunkEffect> {
        // Only a template read proves the line: nothing else reads all of it.
        if self.fast && self.template.one_line() {
            self.templated(data)
        } else {
            None
        }
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_error;

    /// A body and the (kind, message) expected from it.
    type ErrorCase<'a> = (&'a [u8], Option<(&'a str, &'a str)>);

    #[test]
    fn error_body_shapes() {
        let cases: [ErrorCase<'_>; 11] = [
            (
                br#"{"error":{"message":"bad","type":"invalid_request_error","code":null}}"#,
                Some(("invalid_request_error", "bad")),
            ),
            (br#"{"error":{"message":"slow down","code":429}}"#, Some(("429", "slow down"))),
            (br#"{"error":"plain text"}"#, Some(("error", "plain text"))),
            (
                br#"{"object":"error","message":"max_tokens too large","type":"BadRequestError","param":null,"code":400}"#,
                Some(("BadRequestError", "max_tokens too large")),
            ),
            (br#"{"detail":"Not Found"}"#, Some(("error", "Not Found"))),
            (br#"{"detail":[{"loc":["body"],"msg":"field required"}]}"#, None),
            (br#"{"error":{}}"#, Some(("error", ""))),
            (br#"{"error":null,"detail":"gone"}"#, Some(("error", "gone"))),
            (br#"{"error":5,"detail":"gone"}"#, None),
            (br#"["error"]"#, None),
            (
                br#"{"error":{"message":"m","code":"rate_limit","extra":{"deep":[1]}}}"#,
                Some(("rate_limit", "m")),
            ),
        ];
        for (body, expected) in cases {
            let got = parse_error(body);
            let got = got.as_ref().map(|e| (e.kind.as_str(), e.message.as_str()));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(body));
        }
    }

    /// Folds `body` as an event stream with `fold`.
    fn fold_with(fold: super::ChatStream, body: &[u8]) -> crate::record::TraceRecord {
        let mut record = crate::record::TraceRecord::default();
        let framing = crate::sse::SseDecoder::new(1 << 20);
        crate::protocols::fold_body(Box::new(fold), framing, body, &mut record);
        record
    }

    /// Streams whose events the fast readers must read as the full parser does: recorded ones,
    /// and made-up ones that break the template in every way an event can.
    fn streams() -> Vec<Vec<u8>> {
        let mut streams: Vec<Vec<u8>> = [
            &include_bytes!("../../tests/fixtures/openai_chat/stream_text/response.sse")[..],
            include_bytes!("../../tests/fixtures/openai_chat/stream_tools/response.sse"),
            include_bytes!("../../tests/fixtures/openai_chat/stream_no_usage/response.sse"),
            include_bytes!("../../tests/fixtures/openai_chat/azure_stream/response.sse"),
            include_bytes!("../../tests/fixtures/openai_chat/br_stream/response.sse"),
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect();
        let head =
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":["#;
        let choice = |i: u32, delta: &str, fin: &str| {
            format!(
                r#"{head}{{"index":{i},"delta":{delta},"logprobs":null,"finish_reason":{fin}}}]}}"#
            )
        };
        let events = [
            choice(0, r#"{"role":"assistant","content":""}"#, "null"),
            choice(0, r#"{"content":"Hel"}"#, "null"),
            choice(0, r#"{"content":"lo \"quoted\"\n"}"#, "null"),
            choice(0, r#"{"content":"caf\u00e9"}"#, "null"),
            choice(0, "{\"content\":\"caf\u{e9} \u{1f600}\"}", "null"),
            choice(1, r#"{"content":"other choice"}"#, "null"),
            choice(0, r#"{"content":"back"}"#, "null"),
            choice(0, r#"{"content":"x","content":"y"}"#, "null"),
            choice(0, r#"{"content":"tail\\"}"#, "null"),
            choice(0, r#"{"content":null}"#, "null"),
            choice(0, r#"{"content":"bad"}"#, "nul"),
            choice(0, r#"{"refusal":"no"}"#, "null"),
            choice(
                0,
                r#"{"content":"x","tool_calls":[{"index":0,"id":"t","function":{"name":"f","arguments":"{}"}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":1,"function":{"arguments":"x"}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":1,"function":{"arguments":"z"}}]}"#,
                "null",
            ),
            choice(
                0,
                r#"{"tool_calls":[{"index":0,"function":{"arguments":"y","name":"g"}}]}"#,
                "null",
            ),
            choice(0, r#"{"content":"fin"}"#, r#""stop""#),
            format!(
                r#"{head}],"usage":{{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}}"#
            ),
            choice(0, r#"{"content":"after usage"}"#, "null"),
            "[DONE]".to_string(),
        ];
        let made_up: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        streams.push(made_up.into_bytes());
        // Each event of the made-up stream with one byte changed, at every position, after a
        // template-setting event.
        let mutated = [(1, 1), (1, 2), (1, 3), (14, 14), (14, 15), (16, 17)];
        for (first, event) in mutated.map(|(first, at)| (&events[first], &events[at])) {
            for at in 0..event.len() {
                for byte in [b'"', b'\\', b'x', b'}', 0x01, 0xff] {
                    let mut changed = event.clone().into_bytes();
                    changed[at] = byte;
                    let mut stream = format!("data: {first}\n\n").into_bytes();
                    stream.extend_from_slice(b"data: ");
                    stream.extend_from_slice(&changed);
                    stream.extend_from_slice(b"\n\n");
                    streams.push(stream);
                }
            }
        }
        streams
    }

    #[test]
    fn fast_readers_fold_as_the_full_parser_does() {
        for (i, stream) in streams().iter().enumerate() {
            for budget in [1 << 20, 7] {
                let fast = fold_with(super::ChatStream::new(budget), stream);
                let full = fold_with(super::ChatStream::with_full_parser(budget), stream);
                assert_eq!(
                    fast,
                    full,
                    "stream {i}: {}",
                    String::from_utf8_lossy(stream)
                );
            }
            for line in stream.split(|&b| b == b'\n') {
                let data = line.strip_prefix(b"data: ").unwrap_or(line);
                assert!(
                    super::skim_agrees(data),
                    "{}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    /// Folds `chunks` as a capture does, chunk by chunk through `push_chunk`.
    fn fold_chunks(mut fold: super::ChatStream, chunks: &[&[u8]]) -> crate::record::TraceRecord {
        let mut record = crate::record::TraceRecord::default();
        let mut framing = crate::sse::SseDecoder::new(1 << 20);
        for chunk in chunks {
            crate::protocols::push_chunk(&mut framing, &mut fold, chunk, &mut |_| {});
        }
        framing.finish(&mut |e| {
            super::StreamFold::push(&mut fold, e);
        });
        super::StreamFold::finish(Box::new(fold), &mut record);
        record
    }

    /// Streams whose events break lines where the lone-line path must not read them: a
    /// template set from an event of two `data` lines, then chunks with line breaks inside.
    fn broken_lines() -> Vec<Vec<u8>> {
        let two_lines = "data: {\"id\":\"c\",\ndata: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n";
        let one_line = |text: &str| {
            format!(
                r#"data: {{"id":"c","choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#
            ) + "\n\n"
        };
        let cut = |sep: &str| {
            format!(
                "data: {{\"id\":\"c\",{sep}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"b\"}}}}]}}\n\n"
            )
        };
        vec![
            format!("{two_lines}{}", cut("\n")).into_bytes(),
            format!("{two_lines}{}", cut("\r")).into_bytes(),
            format!("{two_lines}{}", cut("\r\n")).into_bytes(),
            format!("{}{}", one_line("a"), one_line("b\nc")).into_bytes(),
            format!("{}{}", one_line("a"), one_line("b\rc")).into_bytes(),
            format!("{}{}", one_line("a"), cut("\ndata: ")).into_bytes(),
            format!("{}data:{}", one_line("a"), &one_line("b")[6..]).into_bytes(),
            format!("{}data:  {}", one_line("a"), &one_line("b")[6..]).into_bytes(),
            format!("{}event: x\n{}", one_line("a"), one_line("b")).into_bytes(),
        ]
    }

    #[test]
    fn chunks_of_one_event_fold_as_the_event_stream_does() {
        for (i, stream) in streams().iter().chain(&broken_lines()).enumerate() {
            // One chunk per event, as most upstreams send them; and the whole body at once.
            let mut events: Vec<&[u8]> = Vec::new();
            let mut rest = &stream[..];
            while let Some(at) = rest.windows(2).position(|w| w == b"\n\n") {
                events.push(&rest[..at + 2]);
                rest = &rest[at + 2..];
            }
            events.push(rest);
            let whole = fold_with(super::ChatStream::new(1 << 20), stream);
            let chunked = fold_chunks(super::ChatStream::new(1 << 20), &events);
            assert_eq!(
                chunked,
                whole,
                "stream {i}: {}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn a_lone_line_is_read_by_the_template_only() {
        let first = br#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        let next = b"{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}";
        let mut fold = super::ChatStream::new(1 << 20);
        // No template yet: the lone line is declined, and the event framing reads it.
        assert_eq!(super::StreamFold::push_lone_line(&mut fold, first), None);
        super::StreamFold::push(
            &mut fold,
            &crate::sse::Event {
                event: String::new(),
                data: first.to_vec(),
            },
        );
        assert_eq!(
            super::StreamFold::push_lone_line(&mut fold, next),
            Some(super::ChunkEffect::Output)
        );
        assert_eq!(fold.choices[0].content, "ab");
    }

    #[test]
    fn the_template_reads_plain_text_deltas() {
        // Not a check of speed: the fold must take the template path for these events, which
        // is seen in the template having been set.
        let mut fold = super::ChatStream::new(1 << 20);
        let body = br#"data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}"#;
        super::StreamFold::push(
            &mut fold,
            &crate::sse::Event {
                event: String::new(),
                data: body[6..].to_vec(),
            },
        );
        let next = br#"{"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]}"#;
        assert!(fold.template.value(next).is_some());
        assert_eq!(
            super::StreamFold::push(
                &mut fold,
                &crate::sse::Event {
                    event: String::new(),
                    data: next.to_vec(),
                }
            ),
            super::ChunkEffect::Output
        );
        assert_eq!(fold.choices[0].content, "ab");
    }

    /// Every shape of a message's `content`: strings with and without escapes are read whole
    /// once, lists part by part, `null` as no part, anything else kept as JSON.
    #[test]
    fn message_content_of_every_shape() {
        use crate::record::{Part, TraceRecord};
        let text = |t: &str| Part::Text(t.into());
        let other = |json: &str| Part::Other {
            kind: "unknown".into(),
            json: json.into(),
        };
        let long = "plain words ".repeat(500);
        let cases: Vec<(String, Vec<Part>)> = vec![
            (format!("{long:?}"), vec![text(&long)]),
            (
                r#""line\nbreak \u00e9 \"q\"""#.into(),
                vec![text("line\nbreak é \"q\"")],
            ),
            (r#""é ü 😀""#.into(), vec![text("é ü 😀")]),
            (r#""""#.into(), vec![text("")]),
            ("null".into(), vec![]),
            ("[]".into(), vec![]),
            (
                r#"[{"type":"text","text":"a"},{"type":"text","text":"b\tc"}]"#.into(),
                vec![text("a"), text("b\tc")],
            ),
            // Members as sent, joined without spaces; keys written again.
            (
                r#"{ "a": [1, true], "b\u0022": {} }"#.into(),
                vec![other(r#"{"a":[1, true],"b\"":{}}"#)],
            ),
            ("7".into(), vec![other("7")]),
            ("-7".into(), vec![other("-7")]),
            ("2.5".into(), vec![other("2.5")]),
            ("false".into(), vec![other("false")]),
        ];
        for (content, parts) in cases {
            let body = format!(r#"{{"messages":[{{"role":"user","content":{content}}}]}}"#);
            let mut record = TraceRecord::default();
            let read = super::parse_request(body.as_bytes(), &mut record);
            assert!(read.is_ok(), "{content}");
            assert_eq!(record.messages[0].parts, parts, "{content}");
        }
        // Half a surrogate pair: refused by the reader, read with the replacement character.
        let cut = br#"{"model":"m","messages":[{"role":"user","content":"a \ud83d"}],"user":"u"}"#;
        let mut record = TraceRecord::default();
        assert!(super::parse_request(cut, &mut record).is_err());
        let read = super::super::Protocol::OpenAiChat.parse_request(cut, &mut record);
        assert!(matches!(read, Ok(None)), "{read:?}");
        assert_eq!(record.messages[0].parts, vec![text("a \u{fffd}")]);
        assert_eq!(record.request_model.as_deref(), Some("m"));
    }

    /// Bytes that are not UTF-8, in text the reader keeps and in a member it skips: the body
    /// is read again with U+FFFD for them, the request and the response alike.
    #[test]
    fn bodies_that_are_not_utf8_are_read_with_replacement_characters() {
        use crate::record::{Part, TraceRecord};
        let text = |t: &str| Part::Text(t.into());
        let chat = super::super::Protocol::OpenAiChat;
        let request =
            b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9 \xf0\x9f\"}],\"x\":\"\xff\"}";
        let mut record = TraceRecord::default();
        assert!(super::parse_request(request, &mut record).is_err());
        let read = chat.parse_request(request, &mut record);
        assert!(matches!(read, Ok(None)), "{read:?}");
        assert_eq!(record.messages[0].parts, vec![text("caf\u{fffd} \u{fffd}")]);
        assert_eq!(record.request_model.as_deref(), Some("m"));
        let response = b"{\"model\":\"m2\",\"system_fingerprint\":\"\xfe\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}";
        assert!(super::parse_response(response, &mut record).is_err());
        assert_eq!(chat.parse_response(response, &mut record), Ok(()));
        assert_eq!(record.response_model.as_deref(), Some("m2"));
        assert_eq!(record.choices[0].message.parts, vec![text("ok")]);
        // Still not JSON once repaired: refused, with the first reading's error.
        let mut record = TraceRecord::default();
        assert!(chat.parse_request(b"{\"model\":\xff", &mut record).is_err());
    }
}
