//! An OpenAI-compatible mock upstream for `POST …/chat/completions`.
//!
//! The pure functions ([`chat_completion_json`], [`chat_completion_sse`], [`error_json`]) produce
//! the bytes OpenAI's Chat Completions API documents: a pretty-printed `chat.completion` object,
//! or a `text/event-stream` of `chat.completion.chunk` events ending in `data: [DONE]`, and the
//! `{"error": {…}}` envelope. [`MockLlm`] serves them on `127.0.0.1` through [`crate::http`],
//! choosing the reply from the request body and the `x-mock-*` headers, and records every
//! request it gets. Replies are deterministic (fixed `created`, counter-based ids) so the traces
//! the filter derives from them can be compared with golden files.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::fixtures::{Fixture, FIXTURE_HEADER};
use crate::http::{self, Request, ResponseWriter, ServerHandle};

/// Request header selecting a scenario; see [`Scenario`].
pub const SCENARIO_HEADER: &str = "x-mock-scenario";
/// Request header giving the pause, in milliseconds, between two SSE events.
pub const CHUNK_DELAY_HEADER: &str = "x-mock-chunk-delay-ms";
/// Request header replacing the assistant's text answer.
pub const CONTENT_HEADER: &str = "x-mock-content";
/// `created` of every mock reply: 2026-08-01T12:00:00Z, fixed so traces are reproducible.
pub const MOCK_CREATED: u64 = 1_785_585_600;
/// The text answer unless [`CONTENT_HEADER`] says otherwise.
pub const DEFAULT_CONTENT: &str = "Hi! How can I help you today?";
/// `system_fingerprint` of every mock reply.
pub const MOCK_FINGERPRINT: &str = "fp_mock0001";
/// Arguments of the `get_weather` tool call of [`Scenario::ToolCalls`].
pub const WEATHER_ARGUMENTS: &str = r#"{"location":"Paris, France","unit":"celsius"}"#;

/// Token counts of a reply, as OpenAI's `usage` object reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MockUsage {
    /// `prompt_tokens`; includes `cached_tokens`.
    pub prompt_tokens: u32,
    /// `completion_tokens`; includes `reasoning_tokens`.
    pub completion_tokens: u32,
    /// `total_tokens`.
    pub total_tokens: u32,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u32,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u32,
}

impl MockUsage {
    /// Usage with `total_tokens = prompt + completion` and no cached or reasoning tokens.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            cached_tokens: 0,
            reasoning_tokens: 0,
        }
    }
}

/// One function call the assistant asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockToolCall {
    /// `id`, e.g. `call_mock_1`.
    pub id: String,
    /// `function.name`.
    pub name: String,
    /// `function.arguments`: JSON text, as OpenAI sends it.
    pub arguments: String,
}

/// Everything a mock chat completion says; rendered by [`chat_completion_json`] and
/// [`chat_completion_sse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockReply {
    /// `id`, e.g. `chatcmpl-mock-1`.
    pub id: String,
    /// `model`: the served model (a dated snapshot, as OpenAI answers).
    pub model: String,
    /// `created`, Unix seconds.
    pub created: u64,
    /// `message.content`; `None` is JSON `null` (tool-call answers).
    pub content: Option<String>,
    /// `message.tool_calls`; empty for none.
    pub tool_calls: Vec<MockToolCall>,
    /// `finish_reason`: `stop`, `length`, `tool_calls`, `content_filter`.
    pub finish_reason: String,
    /// `usage`. In a stream, `Some` means the request asked for
    /// `stream_options.include_usage`: every chunk then carries `"usage": null` and a last chunk
    /// with `choices: []` carries the counts.
    pub usage: Option<MockUsage>,
    /// `system_fingerprint`; `None` is JSON `null`.
    pub system_fingerprint: Option<String>,
}

impl MockReply {
    /// A text answer with `finish_reason: stop`, usage 10 + one token per word.
    pub fn text(model: &str, content: &str) -> Self {
        let words = u32::try_from(split_words(content).len()).unwrap_or(u32::MAX);
        Self {
            id: "chatcmpl-mock-1".to_owned(),
            model: model.to_owned(),
            created: MOCK_CREATED,
            content: Some(content.to_owned()),
            tool_calls: Vec::new(),
            finish_reason: "stop".to_owned(),
            usage: Some(MockUsage::new(10, words)),
            system_fingerprint: Some(MOCK_FINGERPRINT.to_owned()),
        }
    }

    /// A `get_weather` tool call with `finish_reason: tool_calls`.
    pub fn weather_tool_call(model: &str) -> Self {
        Self {
            content: None,
            tool_calls: vec![MockToolCall {
                id: "call_mock_1".to_owned(),
                name: "get_weather".to_owned(),
                arguments: WEATHER_ARGUMENTS.to_owned(),
            }],
            finish_reason: "tool_calls".to_owned(),
            usage: Some(MockUsage::new(10, 18)),
            ..Self::text(model, "")
        }
    }
}

// ---- wire shapes (field order as OpenAI sends them) -------------------------------------------

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    service_tier: &'static str,
    system_fingerprint: Option<&'a str>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall<'a>>,
    refusal: Option<()>,
    annotations: [(); 0],
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u32,
    audio_tokens: u32,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u32,
    audio_tokens: u32,
    accepted_prediction_tokens: u32,
    rejected_prediction_tokens: u32,
}

impl From<MockUsage> for Usage {
    fn from(u: MockUsage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
            prompt_tokens_details: PromptDetails {
                cached_tokens: u.cached_tokens,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: Option<&'a str>,
    choices: Vec<ChunkChoice<'a>>,
    /// `None` leaves the key out (no `include_usage`); `Some(None)` writes `"usage": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `None` leaves the key out; `Some(None)` writes `"content": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallDelta<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<()>>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// Serializes a value built only from strings, numbers and derived structs; that cannot fail.
fn to_bytes(value: &impl Serialize, pretty: bool) -> Vec<u8> {
    let bytes = if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    };
    bytes.unwrap_or_default()
}

/// The body of a non-streamed reply: a `chat.completion` object, pretty-printed as OpenAI sends
/// it.
pub fn chat_completion_json(reply: &MockReply) -> Vec<u8> {
    let completion = Completion {
        id: &reply.id,
        object: "chat.completion",
        created: reply.created,
        model: &reply.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: reply.content.as_deref(),
                tool_calls: reply
                    .tool_calls
                    .iter()
                    .map(|call| ToolCall {
                        id: &call.id,
                        kind: "function",
                        function: Function {
                            name: &call.name,
                            arguments: &call.arguments,
                        },
                    })
                    .collect(),
                refusal: None,
                annotations: [],
            },
            logprobs: None,
            finish_reason: &reply.finish_reason,
        }],
        usage: reply.usage.map(Usage::from),
        service_tier: "default",
        system_fingerprint: reply.system_fingerprint.as_deref(),
    };
    to_bytes(&completion, true)
}

/// Splits text into word pieces the way a model streams it: each piece after the first carries
/// the whitespace before it (`"Hi there"` → `["Hi", " there"]`).
fn split_words(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && !in_space && i > start {
            pieces.push(&text[start..i]);
            start = i;
        }
        in_space = space;
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// Splits `text` into `parts` pieces of near-equal length on character boundaries.
fn split_even(text: &str, parts: usize) -> Vec<&str> {
    let chars: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let parts = parts.clamp(1, chars.len().max(1));
    let mut pieces = Vec::with_capacity(parts);
    let mut start = 0;
    for k in 1..=parts {
        let end = if k == parts {
            text.len()
        } else {
            chars[k * chars.len() / parts]
        };
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

/// The body of a streamed reply as network chunks, one SSE event each.
///
/// In order: a role delta (`"content": ""`, or `null` when the answer is only tool calls); the
/// content word by word; per tool call, a delta with its `id`, `type` and `name` and empty
/// arguments, then its arguments over three deltas; a delta with `finish_reason`; when
/// `reply.usage` is set, a chunk with `choices: []` and the usage (and `"usage": null` in every
/// earlier chunk, as with `stream_options.include_usage`); and `data: [DONE]`.
pub fn chat_completion_sse(reply: &MockReply) -> Vec<Vec<u8>> {
    let with_usage = reply.usage.is_some();
    let chunk = |choices: Vec<ChunkChoice<'_>>, usage: Option<Usage>| -> Vec<u8> {
        let chunk = Chunk {
            id: &reply.id,
            object: "chat.completion.chunk",
            created: reply.created,
            model: &reply.model,
            service_tier: "default",
            system_fingerprint: reply.system_fingerprint.as_deref(),
            choices,
            usage: with_usage.then_some(usage),
        };
        let mut event = b"data: ".to_vec();
        event.extend(to_bytes(&chunk, false));
        event.extend_from_slice(b"\n\n");
        event
    };
    let delta = |delta: Delta<'_>, finish_reason: Option<&str>| -> Vec<u8> {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        chunk(vec![choice], None)
    };

    let mut events = Vec::new();
    let content = reply.content.as_deref();
    events.push(delta(
        Delta {
            role: Some("assistant"),
            content: Some(if content.is_some() || reply.tool_calls.is_empty() {
                Some("")
            } else {
                None
            }),
            refusal: Some(None),
            ..Delta::default()
        },
        None,
    ));
    for piece in split_words(content.unwrap_or_default()) {
        events.push(delta(
            Delta {
                content: Some(Some(piece)),
                ..Delta::default()
            },
            None,
        ));
    }
    for (index, call) in reply.tool_calls.iter().enumerate() {
        events.push(delta(
            Delta {
                tool_calls: vec![ToolCallDelta {
                    index,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                }],
                ..Delta::default()
            },
            None,
        ));
        for piece in split_even(&call.arguments, 3) {
            events.push(delta(
                Delta {
                    tool_calls: vec![ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    }],
                    ..Delta::default()
                },
                None,
            ));
        }
    }
    events.push(delta(Delta::default(), Some(&reply.finish_reason)));
    if let Some(usage) = reply.usage {
        events.push(chunk(Vec::new(), Some(usage.into())));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

/// An OpenAI error body: `{"error": {"message", "type", "param": null, "code"}}`.
pub fn error_json(message: &str, error_type: &str, code: Option<&str>) -> Vec<u8> {
    to_bytes(
        &ErrorBody {
            error: ErrorDetail {
                message,
                kind: error_type,
                param: None,
                code,
            },
        },
        true,
    )
}

/// What the mock answers, chosen by the [`SCENARIO_HEADER`] request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No header: a text answer ([`DEFAULT_CONTENT`] or [`CONTENT_HEADER`]).
    Text,
    /// `tool_calls`: a `get_weather` call with [`WEATHER_ARGUMENTS`].
    ToolCalls,
    /// `error_400`: 400 `invalid_request_error`.
    Error400,
    /// `error_429`: 429 `rate_limit_exceeded` with `retry-after` and `x-ratelimit-*` headers.
    Error429,
    /// `error_500`: 500 `server_error`.
    Error500,
    /// `no_usage`: a text answer whose stream has no usage chunk even when asked for.
    NoUsage,
    /// `abort_stream`: a stream cut (connection closed) after the second content event;
    /// a non-streamed request gets its connection closed before any byte.
    AbortStream,
}

impl Scenario {
    /// Parses a header value; `None` for an unknown one.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value.trim() {
            "" | "text" => Self::Text,
            "tool_calls" => Self::ToolCalls,
            "error_400" => Self::Error400,
            "error_429" => Self::Error429,
            "error_500" => Self::Error500,
            "no_usage" => Self::NoUsage,
            "abort_stream" => Self::AbortStream,
            _ => return None,
        })
    }
}

/// The served model for a requested one: OpenAI answers an alias with its dated snapshot.
pub fn served_model(requested: &str) -> String {
    match requested {
        "gpt-4o-mini" => "gpt-4o-mini-2024-07-18".to_owned(),
        "gpt-4o" => "gpt-4o-2024-08-06".to_owned(),
        "gpt-4.1-mini" => "gpt-4.1-mini-2025-04-14".to_owned(),
        other => other.to_owned(),
    }
}

/// A rough, deterministic prompt-token count: 4 per message plus one per 4 bytes of text.
fn estimate_prompt_tokens(messages: &[Value]) -> u32 {
    fn text_len(value: &Value) -> usize {
        match value {
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(text_len).sum(),
            Value::Object(obj) => obj.values().map(text_len).sum(),
            _ => 0,
        }
    }
    let bytes: usize = messages.iter().map(text_len).sum();
    u32::try_from(messages.len() * 4 + bytes.div_ceil(4)).unwrap_or(u32::MAX)
}

struct Shared {
    requests: Mutex<Vec<Request>>,
    replies: AtomicU64,
}

/// A running mock OpenAI upstream on `127.0.0.1`.
///
/// `POST` to any path ending in `/chat/completions` (query ignored) is answered from the JSON
/// body (`model`, `messages`, `stream`, `stream_options.include_usage`, `tools`) and the
/// [`SCENARIO_HEADER`], [`CHUNK_DELAY_HEADER`] and [`CONTENT_HEADER`] headers; anything else gets
/// OpenAI's 404 error. Streamed replies are `text/event-stream`, chunked, one event per write.
/// Dropping it stops the server.
pub struct MockLlm {
    server: ServerHandle,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MockLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockLlm")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

impl MockLlm {
    /// Starts the mock on an ephemeral port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (see [`MockLlm::try_start`]).
    pub fn start() -> Self {
        Self::try_start().expect("binding 127.0.0.1:0 for the mock LLM")
    }

    /// Starts the mock on an ephemeral port of `127.0.0.1`.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub fn try_start() -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            replies: AtomicU64::new(0),
        });
        let state = Arc::clone(&shared);
        let server = http::serve(listener, move |req, w| handle(&state, req, w));
        Ok(Self { server, shared })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:<port>`, to put in front of `/v1/chat/completions`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Stops the server (also done on drop).
    pub fn stop(&self) {
        self.server.stop();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking handler thread must not hide the requests from the test.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn send_error(w: &mut ResponseWriter, status: u16, extra: &[(&str, &str)], body: &[u8]) {
    let mut headers = vec![JSON];
    headers.extend_from_slice(extra);
    // The client may be gone; nothing to do about it in a mock.
    let _ = w.full(status, &headers, body);
}

fn handle(shared: &Shared, req: Request, w: &mut ResponseWriter) {
    lock(&shared.requests).push(req.clone());
    if let Some(id) = req.header(FIXTURE_HEADER) {
        return match Fixture::load(id) {
            Ok(fixture) => {
                let delay = req
                    .header(CHUNK_DELAY_HEADER)
                    .and_then(|v| v.parse().ok())
                    .map_or(Duration::ZERO, Duration::from_millis);
                fixture.serve(w, delay);
            }
            Err(e) => {
                let body = error_json(&format!("mock: {e}"), "invalid_request_error", None);
                send_error(w, 400, &[], &body);
            }
        };
    }
    let path = req.path.split('?').next().unwrap_or_default();
    if req.method != "POST" || !path.ends_with("/chat/completions") {
        let message = format!("Invalid URL ({} {})", req.method, req.path);
        let body = error_json(&message, "invalid_request_error", None);
        return send_error(w, 404, &[], &body);
    }
    let scenario = match req.header(SCENARIO_HEADER).map(Scenario::parse) {
        None => Scenario::Text,
        Some(Some(scenario)) => scenario,
        Some(None) => {
            let message = format!("mock: unknown {SCENARIO_HEADER} value");
            let body = error_json(
                &message,
                "invalid_request_error",
                Some("mock_unknown_scenario"),
            );
            return send_error(w, 400, &[], &body);
        }
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        let body = error_json(
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
        );
        return send_error(w, 400, &[], &body);
    };
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        let body = error_json(
            "you must provide a model parameter",
            "invalid_request_error",
            None,
        );
        return send_error(w, 400, &[], &body);
    };
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        let body = error_json(
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("missing_required_parameter"),
        );
        return send_error(w, 400, &[], &body);
    };
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);

    match scenario {
        Scenario::Error400 => {
            let body = error_json(
                "Invalid value for 'temperature': must be between 0 and 2.",
                "invalid_request_error",
                Some("invalid_value"),
            );
            return send_error(w, 400, &[], &body);
        }
        Scenario::Error429 => {
            let message = format!(
                "Rate limit reached for {model} in organization org-mock on requests per min \
                 (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s."
            );
            let body = error_json(&message, "requests", Some("rate_limit_exceeded"));
            let headers = [
                ("retry-after", "1"),
                ("x-ratelimit-limit-requests", "3"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "1s"),
            ];
            return send_error(w, 429, &headers, &body);
        }
        Scenario::Error500 => {
            let body = error_json(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            );
            return send_error(w, 500, &[], &body);
        }
        Scenario::AbortStream if !stream => return w.abort(),
        _ => {}
    }

    let n = shared.replies.fetch_add(1, Ordering::SeqCst) + 1;
    let served = served_model(model);
    let mut reply = if scenario == Scenario::ToolCalls {
        MockReply::weather_tool_call(&served)
    } else {
        MockReply::text(
            &served,
            req.header(CONTENT_HEADER).unwrap_or(DEFAULT_CONTENT),
        )
    };
    reply.id = format!("chatcmpl-mock-{n}");
    if let Some(usage) = reply.usage.as_mut() {
        *usage = MockUsage::new(estimate_prompt_tokens(messages), usage.completion_tokens);
    }
    let request_id = format!("req_mock_{n}");
    let common = [
        ("x-request-id", request_id.as_str()),
        ("openai-processing-ms", "42"),
        ("openai-version", "2020-10-01"),
    ];

    if !stream {
        let mut headers = vec![JSON];
        headers.extend_from_slice(&common);
        let _ = w.full(200, &headers, &chat_completion_json(&reply));
        return;
    }

    if !include_usage || scenario == Scenario::NoUsage {
        reply.usage = None;
    }
    let delay = req
        .header(CHUNK_DELAY_HEADER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut headers = vec![
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
    ];
    headers.extend_from_slice(&common);
    if w.head(200, &headers).is_err() {
        return;
    }
    for (i, event) in chat_completion_sse(&reply).iter().enumerate() {
        if i > 0 {
            if let Some(delay) = delay {
                thread::sleep(delay);
            }
        }
        if scenario == Scenario::AbortStream && i == 3 {
            return w.abort();
        }
        if w.chunk(event).is_err() {
            return;
        }
    }
    let _ = w.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn events(chunks: &[Vec<u8>]) -> Vec<Value> {
        let mut out = Vec::new();
        for chunk in chunks {
            let text = std::str::from_utf8(chunk).expect("utf-8");
            let data = text
                .strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .expect("one `data: …\\n\\n` event per chunk");
            if data != "[DONE]" {
                out.push(serde_json::from_str(data).expect("chunk JSON"));
            }
        }
        out
    }

    fn post(mock: &MockLlm, headers: &[(&str, &str)], body: &Value) -> http::Response {
        let mut req = Request::new("POST", "/v1/chat/completions");
        req.headers
            .push(("content-type".into(), "application/json".into()));
        for (k, v) in headers {
            req.headers.push(((*k).into(), (*v).into()));
        }
        req.body = serde_json::to_vec(body).expect("JSON");
        http::send(mock.addr(), &req, TIMEOUT).expect("mock answers")
    }

    fn chat(stream: bool, include_usage: bool) -> Value {
        let mut body = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Say hi"}
            ]
        });
        if stream {
            body["stream"] = json!(true);
            if include_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        body
    }

    /// Tool calls as `(id, name, arguments)`.
    type Calls = Vec<(String, String, String)>;

    /// Reassembles a stream the way a client does: content, tool calls, finish reason, usage.
    fn assemble(events: &[Value]) -> (String, Calls, String, Option<Value>) {
        let mut content = String::new();
        let mut calls: Calls = Vec::new();
        let mut finish = String::new();
        let mut usage = None;
        for event in events {
            assert_eq!(event["object"], "chat.completion.chunk");
            if let Some(u) = event.get("usage").filter(|u| !u.is_null()) {
                assert_eq!(event["choices"], json!([]));
                usage = Some(u.clone());
            }
            for choice in event["choices"].as_array().expect("choices") {
                let delta = &choice["delta"];
                if let Some(c) = delta["content"].as_str() {
                    content.push_str(c);
                }
                for call in delta["tool_calls"].as_array().into_iter().flatten() {
                    let index = call["index"].as_u64().expect("index") as usize;
                    if calls.len() <= index {
                        calls.resize(index + 1, Default::default());
                    }
                    if let Some(id) = call["id"].as_str() {
                        calls[index].0 = id.to_owned();
                        calls[index].1 =
                            call["function"]["name"].as_str().expect("name").to_owned();
                    }
                    calls[index]
                        .2
                        .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
                }
                if let Some(f) = choice["finish_reason"].as_str() {
                    finish = f.to_owned();
                }
            }
        }
        (content, calls, finish, usage)
    }

    #[test]
    fn json_reply_has_openai_shape() {
        let mut reply = MockReply::text("gpt-4o-mini-2024-07-18", "Hi!");
        reply.usage = Some(MockUsage {
            prompt_tokens: 1000,
            completion_tokens: 50,
            total_tokens: 1050,
            cached_tokens: 800,
            reasoning_tokens: 20,
        });
        let bytes = chat_completion_json(&reply);
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        assert!(text
            .starts_with("{\n  \"id\": \"chatcmpl-mock-1\",\n  \"object\": \"chat.completion\""));
        let v: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(v["choices"][0]["message"]["content"], "Hi!");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["choices"][0]["message"].get("tool_calls").is_none());
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 800);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            20
        );
        assert_eq!(v["usage"]["total_tokens"], 1050);
        assert_eq!(v["created"], MOCK_CREATED);
        assert_eq!(v["system_fingerprint"], MOCK_FINGERPRINT);

        let v: Value =
            serde_json::from_slice(&chat_completion_json(&MockReply::weather_tool_call("m")))
                .expect("JSON");
        let message = &v["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(message["tool_calls"][0]["type"], "function");
        assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
        assert_eq!(
            message["tool_calls"][0]["function"]["arguments"],
            WEATHER_ARGUMENTS
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn sse_text_stream() {
        let reply = MockReply::text("m", "Hello there, general  Kenobi!");
        let chunks = chat_completion_sse(&reply);
        assert_eq!(
            chunks.last().map(Vec::as_slice),
            Some(&b"data: [DONE]\n\n"[..])
        );
        let events = events(&chunks);
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": "", "refusal": null})
        );
        let pieces: Vec<_> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(pieces, ["Hello", " there,", " general", "  Kenobi!"]);
        let (content, calls, finish, usage) = assemble(&events);
        assert_eq!(content, "Hello there, general  Kenobi!");
        assert!(calls.is_empty());
        assert_eq!(finish, "stop");
        assert_eq!(usage.expect("usage")["completion_tokens"], 4);
        // With include_usage every earlier chunk carries `"usage": null`.
        assert!(events[..events.len() - 1]
            .iter()
            .all(|e| e["usage"].is_null() && e.get("usage").is_some()));

        let mut no_usage = reply.clone();
        no_usage.usage = None;
        let events = super::tests::events(&chat_completion_sse(&no_usage));
        assert!(events.iter().all(|e| e.get("usage").is_none()));
        assert!(events
            .iter()
            .all(|e| !e["choices"].as_array().expect("choices").is_empty()));
    }

    #[test]
    fn sse_tool_call_stream() {
        let mut reply = MockReply::weather_tool_call("m");
        reply.tool_calls.push(MockToolCall {
            id: "call_mock_2".into(),
            name: "get_time".into(),
            arguments: r#"{"tz":"Europe/Paris"}"#.into(),
        });
        let events = events(&chat_completion_sse(&reply));
        assert_eq!(events[0]["choices"][0]["delta"]["content"], Value::Null);
        let first = &events[1]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(first["id"], "call_mock_1");
        assert_eq!(first["type"], "function");
        assert_eq!(
            first["function"],
            json!({"name": "get_weather", "arguments": ""})
        );
        let later = &events[2]["choices"][0]["delta"]["tool_calls"][0];
        assert!(later.get("id").is_none() && later["function"].get("name").is_none());
        let (content, calls, finish, _) = assemble(&events);
        assert_eq!(content, "");
        assert_eq!(
            calls,
            [
                (
                    "call_mock_1".into(),
                    "get_weather".into(),
                    WEATHER_ARGUMENTS.into()
                ),
                (
                    "call_mock_2".into(),
                    "get_time".into(),
                    r#"{"tz":"Europe/Paris"}"#.into()
                ),
            ]
        );
        assert_eq!(finish, "tool_calls");
    }

    #[test]
    fn split_helpers() {
        assert_eq!(split_words(""), Vec::<&str>::new());
        assert_eq!(split_words(" a b"), [" a", " b"]);
        assert_eq!(split_words("héllo wörld"), ["héllo", " wörld"]);
        assert_eq!(split_even("abcdefg", 3).concat(), "abcdefg");
        assert_eq!(split_even("ab", 3), ["a", "b"]);
        assert_eq!(split_even("", 3), [""]);
        assert_eq!(split_even("日本語です", 2).concat(), "日本語です");
    }

    #[test]
    fn error_body_shape() {
        let v: Value =
            serde_json::from_slice(&error_json("bad", "invalid_request_error", Some("x")))
                .expect("JSON");
        assert_eq!(
            v,
            json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": "x"}})
        );
    }

    #[test]
    fn serves_json_and_records_requests() {
        let mock = MockLlm::start();
        let resp = post(&mock, &[], &chat(false, false));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let v: Value = serde_json::from_slice(&resp.body).expect("JSON");
        assert_eq!(v["model"], "gpt-4o-mini-2024-07-18");
        assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_CONTENT);
        let usage = &v["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(
                usage["prompt_tokens"].as_u64().unwrap_or(0)
                    + usage["completion_tokens"].as_u64().unwrap_or(0)
            )
        );
        let resp = post(&mock, &[(CONTENT_HEADER, "Bonjour")], &chat(false, false));
        let v: Value = serde_json::from_slice(&resp.body).expect("JSON");
        assert_eq!(v["choices"][0]["message"]["content"], "Bonjour");
        assert_eq!(v["id"], "chatcmpl-mock-2");

        let requests = mock.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/v1/chat/completions");
        let sent: Value = serde_json::from_slice(&requests[0].body).expect("JSON");
        assert_eq!(sent["model"], "gpt-4o-mini");
        assert_eq!(requests[1].header(CONTENT_HEADER), Some("Bonjour"));
    }

    #[test]
    fn serves_streams() {
        let mock = MockLlm::start();
        let resp = post(&mock, &[], &chat(true, true));
        assert_eq!(resp.status, 200);
        assert_eq!(
            resp.header("content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        let text = String::from_utf8(resp.body).expect("utf-8");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let chunks: Vec<Vec<u8>> = text
            .split_inclusive("\n\n")
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let (content, _, finish, usage) = assemble(&events(&chunks));
        assert_eq!(content, DEFAULT_CONTENT);
        assert_eq!(finish, "stop");
        assert!(usage.is_some());

        for (headers, body) in [
            (vec![], chat(true, false)),
            (vec![(SCENARIO_HEADER, "no_usage")], chat(true, true)),
        ] {
            let resp = post(&mock, &headers, &body);
            let text = String::from_utf8(resp.body).expect("utf-8");
            let chunks: Vec<Vec<u8>> = text
                .split_inclusive("\n\n")
                .map(|s| s.as_bytes().to_vec())
                .collect();
            let (content, _, _, usage) = assemble(&events(&chunks));
            assert_eq!(content, DEFAULT_CONTENT);
            assert!(usage.is_none());
        }

        let resp = post(&mock, &[(SCENARIO_HEADER, "tool_calls")], &chat(true, true));
        let text = String::from_utf8(resp.body).expect("utf-8");
        let chunks: Vec<Vec<u8>> = text
            .split_inclusive("\n\n")
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let (_, calls, finish, _) = assemble(&events(&chunks));
        assert_eq!(calls[0].1, "get_weather");
        assert_eq!(calls[0].2, WEATHER_ARGUMENTS);
        assert_eq!(finish, "tool_calls");
    }

    #[test]
    fn streams_chunk_by_chunk_with_delay() {
        let mock = MockLlm::start();
        let mut req = Request::new("POST", "/openai/v1/chat/completions?api-version=1");
        req.headers.push((CHUNK_DELAY_HEADER.into(), "30".into()));
        req.body = serde_json::to_vec(&chat(true, false)).expect("JSON");
        let started = Instant::now();
        let mut arrivals = Vec::new();
        http::send_streaming(
            mock.addr(),
            &req,
            TIMEOUT,
            |_, _| {},
            |_| arrivals.push(started.elapsed()),
        )
        .expect("stream");
        let events = chat_completion_sse(&MockReply::text("m", DEFAULT_CONTENT)).len();
        assert!(
            arrivals.len() >= 3,
            "chunks arrive separately: {arrivals:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(30 * (events as u64 - 2)));
    }

    #[test]
    fn error_scenarios() {
        let mock = MockLlm::start();
        for (scenario, status, error_type) in [
            ("error_400", 400, "invalid_request_error"),
            ("error_429", 429, "requests"),
            ("error_500", 500, "server_error"),
            ("bogus", 400, "invalid_request_error"),
        ] {
            for stream in [false, true] {
                let resp = post(&mock, &[(SCENARIO_HEADER, scenario)], &chat(stream, true));
                assert_eq!(resp.status, status, "{scenario}");
                assert_eq!(resp.header("content-type"), Some("application/json"));
                let v: Value = serde_json::from_slice(&resp.body).expect("JSON");
                assert_eq!(v["error"]["type"], error_type, "{scenario}");
                assert!(v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()));
            }
        }
        let resp = post(
            &mock,
            &[(SCENARIO_HEADER, "error_429")],
            &chat(false, false),
        );
        assert_eq!(resp.header("retry-after"), Some("1"));

        let mut req = Request::new("GET", "/v1/models");
        let resp = http::send(mock.addr(), &req, TIMEOUT).expect("answer");
        assert_eq!(resp.status, 404);
        req = Request::new("POST", "/v1/chat/completions");
        req.body = b"{not json".to_vec();
        assert_eq!(
            http::send(mock.addr(), &req, TIMEOUT)
                .expect("answer")
                .status,
            400
        );
        req.body = br#"{"messages": []}"#.to_vec();
        assert_eq!(
            http::send(mock.addr(), &req, TIMEOUT)
                .expect("answer")
                .status,
            400
        );
        assert_eq!(mock.requests().len(), 12);
    }

    #[test]
    fn abort_stream_cuts_the_connection() {
        let mock = MockLlm::start();
        let mut req = Request::new("POST", "/v1/chat/completions");
        req.headers
            .push((SCENARIO_HEADER.into(), "abort_stream".into()));
        req.body = serde_json::to_vec(&chat(true, false)).expect("JSON");
        let mut got = Vec::new();
        let result = http::send_streaming(
            mock.addr(),
            &req,
            TIMEOUT,
            |_, _| {},
            |d| got.extend_from_slice(d),
        );
        assert!(result.is_err(), "a cut stream is an error for the client");
        let text = String::from_utf8(got).expect("utf-8");
        assert!(text.starts_with("data: ") && !text.contains("[DONE]"));
    }
}
