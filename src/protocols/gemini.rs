//! Google Gemini `generateContent` and `streamGenerateContent`, on the Gemini API
//! (`generativelanguage.googleapis.com/v1beta/models/{model}:…`) and on Vertex AI
//! (`{region}-aiplatform.googleapis.com/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…`):
//! request, JSON response (one `GenerateContentResponse`, or the JSON array of them that
//! `streamGenerateContent` returns without `alt=sse`), SSE chunks and error bodies, folded into
//! a [`TraceRecord`].
//!
//! Follows the Gemini API reference ("Generating content": `GenerateContentRequest`,
//! `GenerateContentResponse`, `Candidate`, `Content`, `Part`, `UsageMetadata`) and the Vertex AI
//! reference for the same resources, which share the wire format. Requests are accepted in the
//! proto3 JSON camelCase the reference shows and in the snake_case field names the API also
//! accepts (`system_instruction`, `inline_data`, …). The model is named by the request path,
//! not the body. Bodies are deserialized into typed structs that ignore unknown keys; nothing
//! here calls the host.

use super::wire::{counts, dotted, flat_strings, Flat, Scalar};
use super::{
    inline_media, item_slot, set_once, sort_by_index, Budget, ChunkEffect, ProtocolError,
    StreamFold,
};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::sse::Event;
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest<'a> {
    #[serde(borrow)]
    contents: Option<Vec<Content<'a>>>,
    #[serde(alias = "system_instruction", borrow)]
    system_instruction: Option<&'a RawValue>,
    #[serde(alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    #[serde(borrow)]
    tools: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    temperature: Option<f64>,
    #[serde(alias = "top_p")]
    top_p: Option<f64>,
    #[serde(alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(alias = "candidate_count")]
    candidate_count: Option<u64>,
    #[serde(alias = "stop_sequences")]
    stop_sequences: Option<Vec<String>>,
    seed: Option<i64>,
    #[serde(alias = "presence_penalty")]
    presence_penalty: Option<f64>,
    #[serde(alias = "frequency_penalty")]
    frequency_penalty: Option<f64>,
}

#[derive(Deserialize)]
struct Content<'a> {
    role: Option<String>,
    #[serde(borrow)]
    parts: Option<Vec<&'a RawValue>>,
}

/// One `Part`: exactly one of its data fields is set.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    text: Option<String>,
    thought: Option<bool>,
    #[serde(alias = "inline_data", borrow)]
    inline_data: Option<Blob<'a>>,
    #[serde(alias = "file_data")]
    file_data: Option<FileData>,
    #[serde(alias = "function_call", borrow)]
    function_call: Option<FunctionCall<'a>>,
    #[serde(alias = "function_response", borrow)]
    function_response: Option<FunctionResponse<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    #[serde(alias = "mime_type")]
    mime_type: Option<String>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
}

flat_strings! {
    /// A part's `fileData`.
    struct FileData { mime_type: "mimeType" | "mime_type", file_uri: "fileUri" | "file_uri" }
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct FunctionResponse<'a> {
    id: Option<String>,
    name: Option<String>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
}

/// Keys of a part that describe it rather than carry data.
const PART_METADATA: [&str; 7] = [
    "thought",
    "thoughtSignature",
    "thought_signature",
    "videoMetadata",
    "video_metadata",
    "partMetadata",
    "mediaResolution",
];

/// What one part is.
enum Parsed {
    Part(Part),
    /// A `functionResponse`: the call it answers (its id, else its function name) and the
    /// response JSON.
    ToolResponse {
        call: String,
        response: String,
    },
    /// An empty text, or metadata only (a bare thought signature).
    Nothing,
}

fn parse_part(raw: &RawValue) -> Parsed {
    let Ok(part) = objects::from_slice::<WirePart<'_>>(raw.get().as_bytes()) else {
        return other_part(raw);
    };
    if let Some(text) = part.text {
        return match (text.is_empty(), part.thought.unwrap_or(false)) {
            (true, _) => Parsed::Nothing,
            (false, true) => Parsed::Part(Part::Reasoning(text)),
            (false, false) => Parsed::Part(Part::Text(text)),
        };
    }
    if let Some(blob) = part.inline_data {
        let mime = blob
            .mime_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        return Parsed::Part(Part::Uri {
            modality: modality(mime),
            uri: inline_media(mime, blob.data.map_or(0, |d| d.len())),
        });
    }
    if let Some(file) = part.file_data {
        return Parsed::Part(Part::Uri {
            modality: modality(file.mime_type.as_deref().unwrap_or("")),
            uri: file.file_uri.unwrap_or_default(),
        });
    }
    if let Some(call) = part.function_call {
        let name = call.name.unwrap_or_default();
        return Parsed::Part(Part::ToolCall {
            id: call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| name.clone()),
            name,
            arguments: call
                .args
                .map_or_else(|| "{}".to_string(), |a| a.get().to_string()),
        });
    }
    if let Some(resp) = part.function_response {
        return Parsed::ToolResponse {
            call: resp
                .id
                .filter(|id| !id.is_empty())
                .or(resp.name)
                .unwrap_or_default(),
            response: resp
                .response
                .map_or_else(String::new, |r| r.get().to_string()),
        };
    }
    other_part(raw)
}

/// A part of a kind not modelled here (`executableCode`, `codeExecutionResult`, …), kept as
/// JSON and named by its data key; metadata-only parts are nothing.
fn other_part(raw: &RawValue) -> Parsed {
    let kind =
        match serde_json::from_slice::<BTreeMap<Cow<'_, str>, IgnoredAny>>(raw.get().as_bytes()) {
            Ok(keys) => match keys
                .into_keys()
                .find(|k| !PART_METADATA.contains(&k.as_ref()))
            {
                // Inline data the typed parse could not read: never copy its bytes.
                Some(key) if key == "inlineData" || key == "inline_data" => {
                    return Parsed::Part(Part::Uri {
                        modality: "document",
                        uri: inline_media("unreadable inline data", raw.get().len()),
                    });
                }
                Some(key) => key.into_owned(),
                None => return Parsed::Nothing,
            },
            Err(_) => "unknown".to_string(),
        };
    Parsed::Part(Part::Other {
        kind,
        json: raw.get().to_string(),
    })
}

/// The modality of media by its MIME type.
fn modality(mime: &str) -> &'static str {
    match mime.split('/').next() {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    }
}

/// `user` and `model` as the record names them (`user`, `assistant`); absent is `user`.
fn input_role(role: Option<String>) -> String {
    match role.as_deref() {
        None | Some("") | Some("user") => "user".into(),
        Some("model") => "assistant".into(),
        Some(_) => role.unwrap_or_default(),
    }
}

/// The model and method named by a request path: `…/models/{model}:{method}?…` (the colon
/// possibly percent-encoded).
fn model_and_method(path: &str) -> Option<(&str, &str)> {
    let path = path.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    last.rsplit_once(':')
        .or_else(|| last.rsplit_once("%3A"))
        .or_else(|| last.rsplit_once("%3a"))
}

/// Fills the request side of `record` from a `GenerateContentRequest` body; the model comes
/// from `record.path`.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a generate-content request.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: GenerateRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    let (model, method) = model_and_method(&record.path).unwrap_or_default();
    record.request_model = Some(model.to_string()).filter(|m| !m.is_empty());
    let config = req.generation_config.unwrap_or_default();
    record.params = Params {
        temperature: config.temperature,
        top_p: config.top_p,
        max_tokens: config.max_output_tokens,
        frequency_penalty: config.frequency_penalty,
        presence_penalty: config.presence_penalty,
        seed: config.seed,
        n: config.candidate_count,
        stream: method == "streamGenerateContent",
        stop: config.stop_sequences.unwrap_or_default(),
        ..Params::default()
    };
    record.tools_json = req.tools.map(|t| t.get().to_string());
    let mut messages: Vec<Message> = req
        .system_instruction
        .map(system_parts)
        .and_then(Message::system)
        .into_iter()
        .collect();
    for content in req.contents.unwrap_or_default() {
        push_content(content, &mut messages);
    }
    record.messages = messages;
    Ok(())
}

/// `systemInstruction` is a `Content`; a bare string is accepted too.
fn system_parts(raw: &RawValue) -> Vec<Part> {
    if let Ok(text) = serde_json::from_slice::<String>(raw.get().as_bytes()) {
        return vec![Part::Text(text)];
    }
    let Ok(content) = objects::from_slice::<Content<'_>>(raw.get().as_bytes()) else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    for raw in content.parts.unwrap_or_default() {
        match parse_part(raw) {
            Parsed::Part(p) => parts.push(p),
            Parsed::ToolResponse { response, .. } => parts.push(Part::Text(response)),
            Parsed::Nothing => {}
        }
    }
    parts
}

/// Appends one input `Content`; each `functionResponse` part becomes a message of its own with
/// role `tool`, in the order the parts came.
fn push_content(content: Content<'_>, out: &mut Vec<Message>) {
    let role = input_role(content.role);
    let message = |parts| Message {
        role: role.clone(),
        parts,
        ..Message::default()
    };
    let mut parts = Vec::new();
    let mut split = false;
    for raw in content.parts.unwrap_or_default() {
        match parse_part(raw) {
            Parsed::Part(p) => parts.push(p),
            Parsed::ToolResponse { call, response } => {
                if !parts.is_empty() {
                    out.push(message(std::mem::take(&mut parts)));
                }
                out.push(Message {
                    role: "tool".into(),
                    parts: vec![Part::Text(response)],
                    tool_call_id: Some(call),
                    ..Message::default()
                });
                split = true;
            }
            Parsed::Nothing => {}
        }
    }
    if !parts.is_empty() || !split {
        out.push(message(parts));
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    #[serde(borrow)]
    candidates: Option<Vec<Candidate<'a>>>,
    usage_metadata: Option<WireUsage>,
    model_version: Option<String>,
    response_id: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<GoogleError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow)]
    content: Option<Content<'a>>,
    finish_reason: Option<String>,
    index: Option<u32>,
}

flat_strings! {
    /// Why a prompt was blocked.
    struct PromptFeedback { block_reason: "blockReason" }
}

/// `usageMetadata`: `promptTokenCount` includes the cached tokens; `candidatesTokenCount`
/// excludes the thoughts.
#[derive(Debug, Default, Clone, Copy)]
struct WireUsage {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    total_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
}

impl<'de> Deserialize<'de> for WireUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &[
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "cachedContentTokenCount",
            "thoughtsTokenCount",
        ];
        let [prompt, candidates, total, cached, thoughts] = counts(d, KEYS)?;
        Ok(WireUsage {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: total,
            cached_content_token_count: cached,
            thoughts_token_count: thoughts,
        })
    }
}

impl WireUsage {
    /// Counts `later` reports replace earlier ones; counts it leaves out are kept (Vertex AI
    /// sends a count-less `usageMetadata` on every chunk but the last).
    fn merge(&mut self, later: WireUsage) {
        let fields = [
            (&mut self.prompt_token_count, later.prompt_token_count),
            (
                &mut self.candidates_token_count,
                later.candidates_token_count,
            ),
            (&mut self.total_token_count, later.total_token_count),
            (
                &mut self.cached_content_token_count,
                later.cached_content_token_count,
            ),
            (&mut self.thoughts_token_count, later.thoughts_token_count),
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
        let output = match (u.candidates_token_count, u.thoughts_token_count) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
        };
        Usage {
            input: u.prompt_token_count,
            output,
            total: u.total_token_count,
            cached_input: u.cached_content_token_count,
            cache_creation: None,
            reasoning: u.thoughts_token_count,
        }
    }
}

/// A `google.rpc.Status` as the REST APIs send it: `{"code", "message", "status"}`.
struct GoogleError {
    code: Option<String>,
    message: Option<String>,
    status: Option<String>,
}

impl GoogleError {
    /// The error under `key` of `f` (`error` in an error body, empty when `f` is the error).
    fn from_flat(f: &mut Flat, key: &str) -> GoogleError {
        GoogleError {
            code: f.text(&dotted(key, "code")),
            message: f.take_str(&dotted(key, "message")),
            status: f.take_str(&dotted(key, "status")),
        }
    }
}

impl<'de> Deserialize<'de> for GoogleError {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(GoogleError::from_flat(&mut Flat::object(d)?, ""))
    }
}

impl From<GoogleError> for ErrorInfo {
    fn from(e: GoogleError) -> ErrorInfo {
        ErrorInfo {
            kind: e
                .status
                .filter(|s| !s.is_empty())
                .or(e.code)
                .unwrap_or_else(|| "error".into()),
            message: e.message.unwrap_or_default(),
        }
    }
}

/// Fills the response side of `record` from a non-streamed `GenerateContentResponse`, or from
/// the JSON array of them that `streamGenerateContent` returns without `alt=sse`.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is neither.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let body = body.trim_ascii();
    let mut fold = GeminiStream::new(usize::MAX);
    if body.first() == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(ProtocolError::json)?;
        for item in items {
            fold.push_data(item.get().as_bytes());
        }
    } else {
        let resp: GenerateResponse<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
        fold.apply(resp);
    }
    fold.finish_into(record);
    Ok(())
}

/// The provider's error from an error body (`{"error":{"code","message","status"}}`, or an
/// array holding one, as Vertex AI answers `streamGenerateContent`): its `status`
/// (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, …) and message. `None` when the body carries no
/// recognisable error.
pub fn parse_error(body: &[u8]) -> Option<ErrorInfo> {
    let body = body.trim_ascii();
    if body.first() == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(body).ok()?;
        return items
            .into_iter()
            .find_map(|item| error_of(item.get().as_bytes()));
    }
    error_of(body)
}

fn error_of(body: &[u8]) -> Option<ErrorInfo> {
    let mut f = Flat::read(body)?;
    matches!(f.get("error"), Some(Scalar::Object))
        .then(|| ErrorInfo::from(GoogleError::from_flat(&mut f, "error")))
}

/// A candidate being assembled from chunks.
#[derive(Debug)]
struct CandidateAcc {
    index: u32,
    role: Option<String>,
    /// Parts in order; consecutive text (or thought) chunks are joined into one part.
    parts: Vec<Part>,
    finish_reason: Option<String>,
}

/// Folds `GenerateContentResponse` chunks into the final candidates, bounded by a byte budget.
#[derive(Debug)]
pub struct GeminiStream {
    candidates: Vec<CandidateAcc>,
    model: Option<String>,
    id: Option<String>,
    usage: Option<WireUsage>,
    block_reason: Option<String>,
    error: Option<ErrorInfo>,
    budget: Budget,
    malformed: usize,
}

impl GeminiStream {
    /// A fold that keeps at most `budget` bytes of generated text, thoughts and arguments.
    pub fn new(budget: usize) -> Self {
        GeminiStream {
            candidates: Vec::new(),
            model: None,
            id: None,
            usage: None,
            block_reason: None,
            error: None,
            budget: Budget::new(budget),
            malformed: 0,
        }
    }

    fn push_data(&mut self, data: &[u8]) -> ChunkEffect {
        let data = data.trim_ascii();
        if data.is_empty() {
            return ChunkEffect::Quiet;
        }
        if data == b"[DONE]" {
            return ChunkEffect::Done;
        }
        match objects::from_slice::<GenerateResponse<'_>>(data) {
            Ok(resp) => self.apply(resp),
            Err(_) => {
                self.malformed += 1;
                ChunkEffect::Quiet
            }
        }
    }

    fn apply(&mut self, resp: GenerateResponse<'_>) -> ChunkEffect {
        if let Some(err) = resp.error {
            self.error = Some(err.into());
        }
        set_once(&mut self.model, resp.model_version);
        set_once(&mut self.id, resp.response_id);
        if let Some(later) = resp.usage_metadata {
            self.usage
                .get_or_insert_with(WireUsage::default)
                .merge(later);
        }
        if let Some(reason) = resp.prompt_feedback.and_then(|f| f.block_reason) {
            self.block_reason = Some(reason);
        }
        let mut output = false;
        let mut finished = false;
        for (position, candidate) in resp.candidates.unwrap_or_default().into_iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let make = || CandidateAcc {
                index,
                role: None,
                parts: Vec::new(),
                finish_reason: None,
            };
            let candidates = &mut self.candidates;
            let Some(at) = item_slot(candidates, &mut self.budget, |c| c.index == index, make)
            else {
                continue;
            };
            let acc = &mut self.candidates[at];
            if let Some(reason) = candidate.finish_reason {
                acc.finish_reason = Some(reason);
                finished = true;
            }
            let Some(content) = candidate.content else {
                continue;
            };
            if acc.role.is_none() {
                acc.role = self.budget.keep(content.role);
            }
            for raw in content.parts.unwrap_or_default() {
                output |= add_part(&mut acc.parts, parse_part(raw), &mut self.budget);
            }
        }
        if output {
            ChunkEffect::Output
        } else if finished {
            ChunkEffect::Done
        } else {
            ChunkEffect::Quiet
        }
    }

    fn finish_into(self, record: &mut TraceRecord) {
        record.response_id = self.id;
        record.response_model = self.model;
        record.usage = self.usage.map(Usage::from).unwrap_or_default();
        record.truncated |= self.budget.truncated;
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed response chunks",
                self.malformed
            ));
        }
        if let Some(err) = self.error {
            record.error = Some(err);
        } else if let Some(reason) = self.block_reason.filter(|_| self.candidates.is_empty()) {
            record.error = Some(ErrorInfo {
                kind: "prompt_blocked".into(),
                message: format!("the prompt was blocked: {reason}"),
            });
        }
        let mut candidates = self.candidates;
        sort_by_index(&mut candidates, |c| c.index.into());
        record.choices = candidates
            .into_iter()
            .map(|c| Choice {
                index: c.index,
                message: Message {
                    role: match c.role.as_deref() {
                        None | Some("model") => "assistant".into(),
                        Some(_) => c.role.unwrap_or_default(),
                    },
                    parts: c.parts,
                    ..Message::default()
                },
                finish_reason: c.finish_reason,
            })
            .collect();
    }
}

/// Adds one output part under the budget: text and thoughts join the previous part of their
/// kind; whole parts are kept only when they fit. True when it was output a client would see.
fn add_part(parts: &mut Vec<Part>, parsed: Parsed, budget: &mut Budget) -> bool {
    let part = match parsed {
        Parsed::Nothing => return false,
        Parsed::Part(part) => part,
        // A model does not answer with function responses; keep one as what it is.
        Parsed::ToolResponse { call, response } => Part::Other {
            kind: "functionResponse".into(),
            json: format!(
                "{{\"name\":{},\"response\":{response}}}",
                json_string(&call)
            ),
        },
    };
    match part {
        Part::Text(text) => append_text(parts, &text, budget, Part::Text, |p| match p {
            Part::Text(t) => Some(t),
            _ => None,
        }),
        Part::Reasoning(text) => append_text(parts, &text, budget, Part::Reasoning, |p| match p {
            Part::Reasoning(t) => Some(t),
            _ => None,
        }),
        Part::ToolCall {
            id,
            name,
            arguments,
        } => {
            if !budget.open() {
                return true;
            }
            let mut capped = String::new();
            budget.append(&mut capped, &arguments);
            parts.push(Part::ToolCall {
                id: budget.keep(Some(id)).unwrap_or_default(),
                name: budget.keep(Some(name)).unwrap_or_default(),
                arguments: capped,
            });
            true
        }
        whole @ (Part::Uri { .. } | Part::Other { .. }) => {
            let size = match &whole {
                Part::Uri { uri, .. } => uri.len(),
                Part::Other { kind, json } => kind.len() + json.len(),
                _ => 0,
            };
            if !budget.open() || !budget.take(size) {
                return false;
            }
            let output = matches!(whole, Part::Uri { .. });
            parts.push(whole);
            output
        }
    }
}

/// Appends `text` to the last part when `slot` says it is of the same kind, else starts a new
/// part with `make`.
fn append_text(
    parts: &mut Vec<Part>,
    text: &str,
    budget: &mut Budget,
    make: fn(String) -> Part,
    slot: fn(&mut Part) -> Option<&mut String>,
) -> bool {
    if let Some(out) = parts.last_mut().and_then(slot) {
        budget.append(out, text);
    } else if !text.is_empty() && budget.open() {
        let mut out = String::new();
        budget.append(&mut out, text);
        if !out.is_empty() {
            parts.push(make(out));
        }
    }
    !text.is_empty()
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

impl StreamFold for GeminiStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_data(&event.data)
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::harness::{self, cases, check_family, Case};

    fn case(name: &str) -> Case {
        harness::case("gemini", name)
    }

    fn folded(chunks: &[&str]) -> TraceRecord {
        let mut fold = Box::new(GeminiStream::new(1 << 20));
        for data in chunks {
            fold.push(&Event {
                event: String::new(),
                data: data.as_bytes().to_vec(),
            });
        }
        let mut record = TraceRecord::default();
        fold.finish(&mut record);
        record
    }

    #[test]
    fn fixtures() {
        check_family("gemini", 10);
    }

    #[test]
    fn model_and_method_from_the_path() {
        let cases = [
            ("/v1beta/models/gemini-2.5-flash:generateContent", Some(("gemini-2.5-flash", "generateContent"))),
            ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", Some(("gemini-2.0-flash", "streamGenerateContent"))),
            (
                "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent",
                Some(("gemini-2.0-flash-001", "generateContent")),
            ),
            ("/v1beta/tunedModels/my-tuned-7:generateContent", Some(("my-tuned-7", "generateContent"))),
            ("/v1beta/models/gemini-pro", None),
            ("/v1beta/models/gemini-pro%3AgenerateContent", Some(("gemini-pro", "generateContent"))),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(model_and_method(path), want, "{path}");
        }
    }

    #[test]
    fn request_fields() {
        let r = case("basic").run(&[]);
        assert_eq!(r.params.temperature, Some(0.4));
        assert_eq!(r.params.top_p, Some(0.95));
        assert_eq!(r.params.max_tokens, Some(512));
        assert_eq!(r.params.n, Some(1));
        assert_eq!(r.params.seed, Some(42));
        assert_eq!(r.params.stop, vec!["END".to_string()]);
        assert!(!r.params.stream);
        assert_eq!(r.response_id.as_deref(), Some("8vZoaJ3hFaqPz7IPxMmX2Aw"));
        let streamed = case("stream_text").run(&[]);
        assert!(streamed.params.stream);
        assert_eq!(streamed.params.max_tokens, Some(300));
    }

    #[test]
    fn snake_case_multimodal_input_is_described_not_copied() {
        let r = case("stream_text").run(&[]);
        assert_eq!(r.messages[0].role, "system");
        assert_eq!(
            r.messages[1].parts,
            vec![
                Part::Text("What is in this picture? Think first.".into()),
                Part::Uri {
                    modality: "image",
                    uri: "[inline image/png, 100 base64 chars omitted]".into()
                },
            ]
        );
        let v = case("vertex_basic").run(&[]);
        assert_eq!(
            v.messages[1].parts[0],
            Part::Uri {
                modality: "document",
                uri: "gs://acme-contracts/msa-2024.pdf".into()
            }
        );
    }

    #[test]
    fn function_calls_and_responses() {
        let r = case("function_call").run(&[]);
        assert_eq!(
            r.choices[0].message.parts,
            vec![
                Part::ToolCall {
                    id: "get_weather".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\": \"Paris\", \"unit\": \"celsius\"}".into()
                },
                Part::ToolCall {
                    id: "get_local_time".into(),
                    name: "get_local_time".into(),
                    arguments: "{\"timezone\": \"Europe/Paris\"}".into()
                },
            ]
        );
        assert!(r
            .tools_json
            .as_deref()
            .is_some_and(|t| t.contains("functionDeclarations")));
        let r = case("function_response").run(&[]);
        let roles: Vec<&str> = r.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "tool"]);
        assert!(
            matches!(&r.messages[1].parts[0], Part::ToolCall { name, .. } if name == "get_weather")
        );
        assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("get_weather"));
        assert_eq!(
            r.messages[2].text().as_deref(),
            Some("{\"temperature_c\": 18, \"conditions\": \"clear\"}")
        );
    }

    #[test]
    fn thoughts_come_before_the_answer_in_one_part_each() {
        let r = case("stream_text").run(&[]);
        let parts = &r.choices[0].message.parts;
        assert_eq!(parts.len(), 2);
        assert!(
            matches!(&parts[0], Part::Reasoning(t) if t.starts_with("**Identifying the colour**"))
        );
        assert!(matches!(&parts[1], Part::Text(_)));
    }

    #[test]
    fn time_to_first_token_is_the_first_chunk_with_parts() {
        let c = case("vertex_stream");
        let cuts: Vec<usize> = c
            .response
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"\r\n\r\n")
            .map(|(at, _)| at + 4)
            .filter(|&at| at < c.response.len())
            .collect();
        let r = c.run(&cuts);
        assert_eq!(r.first_token_ns, Some(1_100 * 1_000_000));
    }

    #[test]
    fn candidates_fold_by_index_and_usage_merges() {
        let r = folded(&[
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"A"}]}},{"content":{"role":"model","parts":[{"text":"B"}]},"index":1}],"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"b"}]},"index":1,"finishReason":"MAX_TOKENS"}],"usageMetadata":{"trafficType":"ON_DEMAND"}}"#,
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"a"},{"text":"","thoughtSignature":"c2ln"}]},"index":0,"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":4,"totalTokenCount":9}}"#,
        ]);
        let texts: Vec<_> = r
            .choices
            .iter()
            .map(|c| (c.index, c.message.text()))
            .collect();
        assert_eq!(texts, vec![(0, Some("Aa".into())), (1, Some("Bb".into()))]);
        assert_eq!(r.finish_reasons(), vec!["STOP", "MAX_TOKENS"]);
        assert_eq!(
            r.usage,
            Usage {
                input: Some(5),
                output: Some(4),
                total: Some(9),
                ..Usage::default()
            }
        );
        assert_eq!(r.choices[0].message.role, "assistant");
    }

    #[test]
    fn blocked_prompt_is_an_error() {
        let r = folded(&[
            r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8},"modelVersion":"gemini-2.0-flash"}"#,
        ]);
        let err = r.error.expect("error");
        assert_eq!(err.kind, "prompt_blocked");
        assert!(err.message.ends_with("SAFETY"));
        assert!(r.choices.is_empty());
    }

    #[test]
    fn other_parts_and_generated_images() {
        let r = folded(&[
            r#"{"candidates":[{"content":{"role":"model","parts":[{"executableCode":{"language":"PYTHON","code":"print(1)"}},{"codeExecutionResult":{"outcome":"OUTCOME_OK","output":"1\n"}},{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}},{"thoughtSignature":"c2ln"}]}}]}"#,
        ]);
        let kinds: Vec<String> = r.choices[0]
            .message
            .parts
            .iter()
            .map(|p| match p {
                Part::Other { kind, .. } => kind.clone(),
                Part::Uri { uri, .. } => uri.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "executableCode",
                "codeExecutionResult",
                "[inline image/png, 12 base64 chars omitted]"
            ]
        );
    }

    #[test]
    fn budget_caps_streamed_output() {
        let mut fold = Box::new(GeminiStream::new(6));
        for data in [
            r#"{"candidates":[{"content":{"parts":[{"text":"think","thought":true}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"h\u00e9llo"}]}}]}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":1}}}]}}]}"#,
        ] {
            fold.push(&Event {
                event: String::new(),
                data: data.as_bytes().to_vec(),
            });
        }
        let mut record = TraceRecord::default();
        fold.finish(&mut record);
        assert!(record.truncated);
        assert_eq!(
            record.choices[0].message.parts,
            vec![
                Part::Reasoning("think".into()),
                Part::Text("h".into()),
                Part::ToolCall {
                    id: "f".into(),
                    name: "f".into(),
                    arguments: String::new()
                }
            ]
        );
    }

    #[test]
    fn error_bodies() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                r#"{"error":{"code":404,"message":"models/gemini-9 is not found","status":"NOT_FOUND"}}"#,
                Some(("NOT_FOUND", "models/gemini-9 is not found")),
            ),
            (
                r#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}]"#,
                Some(("RESOURCE_EXHAUSTED", "Quota exceeded")),
            ),
            (
                r#"{"error":{"code":500,"message":"boom"}}"#,
                Some(("500", "boom")),
            ),
            (r#"{"error":{}}"#, Some(("error", ""))),
            (r#"[1, {"x":2}]"#, None),
            ("<html>503</html>", None),
            ("[", None),
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

    #[test]
    fn hostile_input_never_panics() {
        let bodies: &[&[u8]] = &[
            b"",
            b"null",
            b"[]",
            b"[null, 1, \"x\", {}]",
            b"\xff\xfe\x00",
            b"{\"candidates\":{}}",
            b"{\"candidates\":[{\"index\":4294967296}]}",
            b"{\"candidates\":[{\"index\":4294967295,\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}",
            b"{\"candidates\":[{\"content\":{\"parts\":[1, null, [], {\"text\":7}, {\"inlineData\":\"x\"}, {\"functionCall\":{\"args\":[1]}}, {\"functionResponse\":{}}]}}]}",
            b"{\"usageMetadata\":{\"candidatesTokenCount\":18446744073709551615,\"thoughtsTokenCount\":18446744073709551615}}",
            b"{\"usageMetadata\":{\"promptTokenCount\":-1}}",
            b"{\"error\":\"just a string\"}",
            b"{\"contents\":[{\"parts\":[{\"functionResponse\":{\"name\":\"f\"}},{\"text\":\"\\ud800\"}]}],\"systemInstruction\":7}",
            b"{\"contents\":null,\"generationConfig\":{\"stopSequences\":\"x\"}}",
        ];
        for body in bodies {
            let mut record = TraceRecord {
                path: "/v1beta/models/x:streamGenerateContent".into(),
                ..TraceRecord::default()
            };
            let _ = parse_request(body, &mut record);
            let _ = parse_response(body, &mut record);
            let _ = parse_error(body);
            let mut fold = Box::new(GeminiStream::new(8));
            for _ in 0..3 {
                fold.push(&Event {
                    event: String::new(),
                    data: body.to_vec(),
                });
            }
            fold.finish(&mut record);
        }
        let r = folded(&[
            r#"{"usageMetadata":{"candidatesTokenCount":18446744073709551615,"thoughtsTokenCount":18446744073709551615}}"#,
        ]);
        assert_eq!(r.usage.output, Some(u64::MAX));
        let mut record = TraceRecord::default();
        assert!(parse_request(br#"{"contents":[{"parts":[{"functionResponse":{"name":"f"}}]}],"systemInstruction":"Be brief."}"#, &mut record).is_ok());
        assert_eq!(record.messages[0].text().as_deref(), Some("Be brief."));
        let odd_media = br#"{"contents":[{"parts":[{"inlineData":{"mimeType":5,"data":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="}}]}]}"#;
        assert!(parse_request(odd_media, &mut record).is_ok());
        assert!(!format!("{record:?}").contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"));
        assert_eq!(record.request_model, None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let mut record = TraceRecord::default();
            let _ = parse_request(&bytes, &mut record);
            let _ = parse_response(&bytes, &mut record);
            let _ = parse_error(&bytes);
            let mut fold = Box::new(GeminiStream::new(16));
            fold.push(&Event { event: String::new(), data: bytes.clone() });
            fold.finish(&mut record);
        }

        #[test]
        fn corrupted_fixtures_never_panic(flips in proptest::collection::vec((0usize..8192, proptest::prelude::any::<u8>()), 1..8)) {
            for c in cases("gemini") {
                let mut response = c.response.clone();
                let mut request = c.request.clone();
                for &(at, byte) in &flips {
                    let len = response.len().max(1);
                    if let Some(b) = response.get_mut(at % len) {
                        *b = byte;
                    }
                    let len = request.len().max(1);
                    if let Some(b) = request.get_mut(at % len) {
                        *b = byte;
                    }
                }
                let _ = Case { response, request, ..c }.run(&[]);
            }
        }
    }
}
