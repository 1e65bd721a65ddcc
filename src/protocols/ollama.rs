//! Ollama's native API: `POST /api/chat` and `POST /api/generate`, their NDJSON streams
//! (`application/x-ndjson`, one JSON object per line, the last with `"done": true`), whole JSON
//! responses (`"stream": false`) and `{"error": "…"}` bodies and stream lines, folded into a
//! [`TraceRecord`].
//!
//! Follows Ollama's API reference (`docs/api.md`: "Generate a completion", "Generate a chat
//! completion"; `docs/api/streaming.mdx`; `docs/api/errors.mdx`) and the request and response
//! types of its Go client (`api/types.go`: `Message` with `thinking`, `images`, `tool_calls`,
//! `tool_name`, `tool_call_id`; `ToolCall{id, function{index, name, arguments}}`).
//!
//! Mapping: `options.num_predict` → `max_tokens`, `options.{temperature, top_p, seed, stop,
//! frequency_penalty, presence_penalty}` as named; `stream` defaults to true when absent, as the
//! API does. `/api/generate`'s `system` becomes a first `system` message and its `prompt` and
//! `images` a `user` message. Base64 `images` are never copied: each becomes a
//! [`Part::Uri`] placeholder (media type sniffed from the base64 prefix). `prompt_eval_count` is
//! the input token count and `eval_count` the output (thinking included); Ollama reports no
//! total, cache or reasoning counts, and no response id. `done_reason` is the finish reason as
//! spelled. `thinking` (request history or response) becomes [`Part::Reasoning`]; tool-call
//! arguments (a JSON object on the wire) are kept as JSON text; `/api/generate`'s fill-in-the-
//! middle `suffix` is kept as a `suffix` part. Option values of the wrong type are ignored rather
//! than failing the request. A whole body holding several NDJSON lines (a stream sent without the
//! NDJSON content type) is folded line by line. Nothing here calls the host.

use super::wire::{lenient, stop_list, Flat, Stop};
use super::{
    inline_media, media_placeholder, set_once, Budget, ChunkEffect, ProtocolError, StreamFold,
};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::sse::Event;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

#[derive(Deserialize, Default)]
struct Options {
    #[serde(default, deserialize_with = "lenient")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    num_predict: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    seed: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    frequency_penalty: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    presence_penalty: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    stop: Option<Stop>,
}

impl Options {
    /// The options object; anything that is not an object counts as none (serde would read an
    /// array positionally).
    fn from_raw(raw: Option<&RawValue>) -> Options {
        raw.filter(|r| r.get().starts_with('{'))
            .and_then(|r| objects::from_slice(r.get().as_bytes()).ok())
            .unwrap_or_default()
    }

    fn params(self, stream: Option<bool>) -> Params {
        Params {
            temperature: self.temperature,
            top_p: self.top_p,
            // -1 (generate until done) and -2 (fill the context) are not limits.
            max_tokens: self.num_predict.and_then(|n| u64::try_from(n).ok()),
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            seed: self.seed,
            // Ollama streams unless told not to.
            stream: stream.unwrap_or(true),
            stop: stop_list(self.stop),
            ..Params::default()
        }
    }
}

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(default, deserialize_with = "lenient")]
    model: Option<String>,
    #[serde(default, borrow)]
    messages: Vec<InMessage<'a>>,
    #[serde(borrow)]
    options: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InMessage<'a> {
    #[serde(default, deserialize_with = "lenient")]
    role: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    thinking: Option<String>,
    #[serde(borrow)]
    images: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    tool_name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(borrow)]
    function: Option<WireFunction<'a>>,
}

#[derive(Deserialize)]
struct WireFunction<'a> {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct GenerateRequest<'a> {
    #[serde(default, deserialize_with = "lenient")]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    prompt: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    suffix: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    system: Option<String>,
    #[serde(borrow)]
    images: Option<&'a RawValue>,
    #[serde(borrow)]
    options: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
}

/// Fills the request side of `record` from an `/api/chat` request body.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a JSON object of the chat request's shape.
pub fn parse_chat_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: ChatRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    record.params = Options::from_raw(req.options).params(req.stream);
    record.tools_json = req
        .tools
        .filter(|t| t.get() != "null")
        .map(|t| t.get().to_string());
    record.messages = req.messages.into_iter().map(input_message).collect();
    Ok(())
}

fn input_message(m: InMessage<'_>) -> Message {
    let mut parts = Vec::new();
    if let Some(thinking) = m.thinking.filter(|t| !t.is_empty()) {
        parts.push(Part::Reasoning(thinking));
    }
    if let Some(content) = m.content {
        parts.extend(content_part(content));
    }
    if let Some(images) = m.images {
        parts.extend(image_parts(images));
    }
    if let Some(calls) = m.tool_calls {
        parts.extend(tool_call_parts(calls));
    }
    Message {
        role: m.role.unwrap_or_default(),
        parts,
        name: m.tool_name,
        tool_call_id: m.tool_call_id,
    }
}

/// `content` is a string (or null); anything else is kept as JSON.
fn content_part(raw: &RawValue) -> Option<Part> {
    match serde_json::from_slice::<Option<String>>(raw.get().as_bytes()) {
        Ok(text) => text.filter(|t| !t.is_empty()).map(Part::Text),
        Err(_) => Some(Part::Other {
            kind: "content".into(),
            json: raw.get().to_string(),
        }),
    }
}

/// `images`: a list of base64 strings, each replaced by a placeholder. Anything else is dropped
/// unread (it might be megabytes of media).
fn image_parts(raw: &RawValue) -> Vec<Part> {
    let Ok(images) = serde_json::from_slice::<Vec<Cow<'_, str>>>(raw.get().as_bytes()) else {
        return Vec::new();
    };
    images
        .into_iter()
        .map(|image| Part::Uri {
            modality: "image",
            uri: if image.starts_with("data:") {
                media_placeholder(image.into_owned())
            } else {
                inline_media(sniff_image_type(&image), image.len())
            },
        })
        .collect()
}

/// The media type a base64 image's first bytes announce.
fn sniff_image_type(base64: &str) -> &'static str {
    const SIGNATURES: [(&str, &str); 4] = [
        ("iVBORw0KGgo", "image/png"),
        ("/9j/", "image/jpeg"),
        ("R0lGOD", "image/gif"),
        ("UklGR", "image/webp"),
    ];
    SIGNATURES
        .iter()
        .find(|(prefix, _)| base64.starts_with(prefix))
        .map_or("image", |(_, media_type)| media_type)
}

/// `tool_calls`: complete calls (Ollama sends no argument deltas), arguments as JSON text.
fn tool_call_parts(raw: &RawValue) -> Vec<Part> {
    let Ok(calls) = objects::from_slice::<Vec<WireToolCall<'_>>>(raw.get().as_bytes()) else {
        return Vec::new();
    };
    calls
        .into_iter()
        .map(|call| {
            let (name, arguments) = call.function.map_or_else(Default::default, |f| {
                (f.name.unwrap_or_default(), f.arguments.map(arguments_text))
            });
            Part::ToolCall {
                id: call.id.unwrap_or_default(),
                name,
                arguments: arguments.unwrap_or_default(),
            }
        })
        .collect()
}

/// Arguments are a JSON object on the wire; a JSON string (as OpenAI sends) is unwrapped.
fn arguments_text(raw: &RawValue) -> String {
    serde_json::from_slice::<String>(raw.get().as_bytes()).unwrap_or_else(|_| raw.get().to_string())
}

/// Fills the request side of `record` from an `/api/generate` request body.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a JSON object of the generate request's shape.
pub fn parse_generate_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: GenerateRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    record.params = Options::from_raw(req.options).params(req.stream);
    let mut messages: Vec<Message> = req
        .system
        .filter(|s| !s.is_empty())
        .and_then(|s| Message::system(vec![Part::Text(s)]))
        .into_iter()
        .collect();
    let mut parts: Vec<Part> = req
        .prompt
        .filter(|p| !p.is_empty())
        .map(Part::Text)
        .into_iter()
        .collect();
    if let Some(images) = req.images {
        parts.extend(image_parts(images));
    }
    if let Some(suffix) = req.suffix.filter(|s| !s.is_empty()) {
        let json = serde_json::json!({ "type": "suffix", "suffix": suffix }).to_string();
        parts.push(Part::Other {
            kind: "suffix".into(),
            json,
        });
    }
    if !parts.is_empty() {
        messages.push(Message {
            role: "user".into(),
            parts,
            ..Message::default()
        });
    }
    record.messages = messages;
    Ok(())
}

/// One NDJSON line, or a whole non-streamed response: both endpoints' shapes in one. Strict
/// types on this hot path: a line with a field of the wrong type is counted as malformed.
#[derive(Deserialize)]
struct Line<'a> {
    model: Option<String>,
    #[serde(borrow)]
    message: Option<OutMessage<'a>>,
    #[serde(borrow)]
    response: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    done: Option<bool>,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OutMessage<'a> {
    role: Option<String>,
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<&'a RawValue>,
}

/// `error` is a string in Ollama; an OpenAI-style object is accepted too.
fn error_info(raw: &RawValue) -> Option<ErrorInfo> {
    if let Ok(message) = serde_json::from_slice::<String>(raw.get().as_bytes()) {
        return Some(ErrorInfo {
            kind: "error".into(),
            message,
        });
    }
    let mut obj = Flat::read(raw.get().as_bytes())?;
    Some(ErrorInfo {
        kind: obj.take_str("type").unwrap_or_else(|| "error".into()),
        message: obj.take_str("message").unwrap_or_default(),
    })
}

/// The provider's error from an error body (`{"error": "model 'x' not found"}`); `None` when
/// the body carries none.
pub fn parse_error(body: &[u8]) -> Option<ErrorInfo> {
    #[derive(Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    let parsed: ErrorBody<'_> = objects::from_slice(body).ok()?;
    parsed.error.and_then(error_info)
}

/// Fills the response side of `record` from a non-streamed `/api/chat` response.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is neither a chat response nor NDJSON lines of one.
pub fn parse_chat_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    parse_whole(body, record)
}

/// Fills the response side of `record` from a non-streamed `/api/generate` response.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is neither a generate response nor NDJSON lines of
/// one.
pub fn parse_generate_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    parse_whole(body, record)
}

/// A whole body is one JSON object; a stream that arrived without the NDJSON content type (all
/// its lines in one body) is folded line by line.
fn parse_whole(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let mut fold = OllamaStream::new(usize::MAX);
    match objects::from_slice::<Line<'_>>(body) {
        Ok(line) => {
            fold.apply(line);
        }
        Err(e) => {
            for line in body.split(|&b| b == b'\n') {
                fold.push_line(line);
            }
            if fold.lines == 0 {
                return Err(ProtocolError::json(e));
            }
            record.streamed = true;
        }
    }
    fold.finish_into(record);
    Ok(())
}

/// A tool call as received.
#[derive(Debug)]
struct ToolCallAcc {
    id: String,
    name: String,
    arguments: String,
}

/// Folds Ollama's NDJSON lines (`/api/chat` `message` deltas or `/api/generate` `response`
/// deltas, `thinking`, `tool_calls`, the final `done` line with counts, `error` lines) into the
/// final message, bounded by a byte budget shared by text, thinking and tool arguments.
#[derive(Debug)]
pub struct OllamaStream {
    model: Option<String>,
    role: Option<String>,
    content: String,
    reasoning: String,
    tool_calls: Vec<ToolCallAcc>,
    done_reason: Option<String>,
    usage: Usage,
    error: Option<ErrorInfo>,
    /// Lines that carried a response (message, text or the done line).
    answered: bool,
    budget: Budget,
    malformed: usize,
    lines: usize,
}

impl OllamaStream {
    /// A fold that keeps at most `budget` bytes of generated text, thinking and arguments.
    pub fn new(budget: usize) -> Self {
        OllamaStream {
            model: None,
            role: None,
            content: String::new(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            done_reason: None,
            usage: Usage::default(),
            error: None,
            answered: false,
            budget: Budget::new(budget),
            malformed: 0,
            lines: 0,
        }
    }

    fn push_line(&mut self, data: &[u8]) -> ChunkEffect {
        let trimmed = data.trim_ascii();
        if trimmed.is_empty() {
            return ChunkEffect::Quiet;
        }
        match objects::from_slice::<Line<'_>>(trimmed) {
            Ok(line) => self.apply(line),
            Err(_) => {
                self.malformed += 1;
                ChunkEffect::Quiet
            }
        }
    }

    fn append(&mut self, reasoning: bool, text: &str) -> bool {
        if text.is_empty() {
            return false;
        }
        let out = if reasoning {
            &mut self.reasoning
        } else {
            &mut self.content
        };
        self.budget.append(out, text);
        true
    }

    fn apply(&mut self, line: Line<'_>) -> ChunkEffect {
        self.lines += 1;
        if let Some(err) = line.error.and_then(error_info) {
            self.error = Some(err);
        }
        set_once(&mut self.model, line.model);
        let mut output = false;
        if let Some(message) = line.message {
            self.answered = true;
            set_once(&mut self.role, message.role);
            if let Some(thinking) = message.thinking {
                output |= self.append(true, &thinking);
            }
            if let Some(content) = message.content {
                output |= self.append(false, &content);
            }
            if let Some(calls) = message.tool_calls {
                for call in tool_call_parts(calls) {
                    let Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } = call
                    else {
                        continue;
                    };
                    output = true;
                    if !self.budget.open() {
                        continue;
                    }
                    let mut kept = String::new();
                    self.budget.append(&mut kept, &arguments);
                    self.tool_calls.push(ToolCallAcc {
                        id: self.budget.keep(Some(id)).unwrap_or_default(),
                        name: self.budget.keep(Some(name)).unwrap_or_default(),
                        arguments: kept,
                    });
                }
            }
        }
        if let Some(thinking) = line.thinking {
            self.answered = true;
            output |= self.append(true, &thinking);
        }
        if let Some(text) = line.response {
            self.answered = true;
            output |= self.append(false, &text);
        }
        let done = line.done == Some(true);
        if done {
            self.answered = true;
            if line.done_reason.is_some() {
                self.done_reason = line.done_reason;
            }
            if line.prompt_eval_count.is_some() {
                self.usage.input = line.prompt_eval_count;
            }
            if line.eval_count.is_some() {
                self.usage.output = line.eval_count;
            }
        }
        // A final line that also carries text counts as output, so that a one-line stream still
        // marks its first token.
        if output {
            ChunkEffect::Output
        } else if done {
            ChunkEffect::Done
        } else {
            ChunkEffect::Quiet
        }
    }

    fn finish_into(self, record: &mut TraceRecord) {
        record.response_model = self.model;
        record.usage = self.usage;
        record.truncated |= self.budget.truncated;
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed stream lines",
                self.malformed
            ));
        }
        if let Some(err) = self.error {
            record.error = Some(err);
        }
        if !self.answered {
            return;
        }
        let mut parts = Vec::new();
        if !self.reasoning.is_empty() {
            parts.push(Part::Reasoning(self.reasoning));
        }
        if !self.content.is_empty() {
            parts.push(Part::Text(self.content));
        }
        parts.extend(self.tool_calls.into_iter().map(|t| Part::ToolCall {
            id: t.id,
            name: t.name,
            arguments: t.arguments,
        }));
        record.choices = vec![Choice {
            index: 0,
            message: Message {
                role: self.role.unwrap_or_else(|| "assistant".into()),
                parts,
                ..Message::default()
            },
            finish_reason: self.done_reason,
        }];
    }
}

impl StreamFold for OllamaStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_line(&event.data)
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests;
