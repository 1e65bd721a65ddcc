//! LLM API protocols the filter understands. Each protocol module turns request and response
//! bytes into the provider-neutral [`TraceRecord`]; none calls the host.
//!
//! A protocol module provides `parse_request`, `parse_response` (a whole, non-streamed body),
//! `parse_error` (a provider error body) and a [`StreamFold`] that folds the events of a streamed
//! response (SSE `data:` payloads, or NDJSON lines) into the final output.

pub mod anthropic_messages;
pub mod gemini;
pub mod ollama;
pub mod openai_chat;
pub mod openai_completions;
pub mod openai_embeddings;
pub mod openai_responses;
pub mod vllm_generate;
mod wire;

use crate::json::Members;
use crate::record::{ErrorInfo, TraceRecord};
use crate::sse::{Event, SseDecoder};
use std::fmt;

/// A request body's top-level `user` and `metadata` members, as their JSON text (`None` when
/// absent), read by a protocol's request reader on its way through the body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BodyMembers<'a> {
    /// `user`.
    pub user: Option<&'a str>,
    /// `metadata`.
    pub metadata: Option<&'a str>,
}

/// An API shape the filter can trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions (`…/chat/completions`), and every OpenAI-compatible server.
    OpenAiChat,
    /// OpenAI legacy Completions (`…/completions`).
    OpenAiCompletions,
    /// OpenAI Embeddings (`…/embeddings`).
    OpenAiEmbeddings,
    /// OpenAI Responses (`…/responses`).
    OpenAiResponses,
    /// Anthropic Messages (`…/v1/messages`).
    AnthropicMessages,
    /// Google Gemini / Vertex AI `…:generateContent` and `…:streamGenerateContent`.
    Gemini,
    /// Ollama `/api/chat`.
    OllamaChat,
    /// Ollama `/api/generate`.
    OllamaGenerate,
    /// vLLM's native `/generate`.
    VllmGenerate,
}

/// Every protocol, in detection order.
pub const ALL: [Protocol; 9] = [
    Protocol::OpenAiChat,
    Protocol::OpenAiCompletions,
    Protocol::OpenAiEmbeddings,
    Protocol::OpenAiResponses,
    Protocol::AnthropicMessages,
    Protocol::Gemini,
    Protocol::OllamaChat,
    Protocol::OllamaGenerate,
    Protocol::VllmGenerate,
];

impl Protocol {
    /// The protocol a request path belongs to, judged by the path alone (query ignored).
    pub fn detect(path: &str) -> Option<Protocol> {
        let path = path
            .split(['?', '#'])
            .next()
            .unwrap_or(path)
            .trim_end_matches('/');
        let last = path.rsplit('/').next().unwrap_or("");
        if last.ends_with(":generateContent") || last.ends_with(":streamGenerateContent") {
            return Some(Protocol::Gemini);
        }
        // Claude on Vertex AI: the Messages API behind `…/publishers/anthropic/models/…`.
        if (last.ends_with(":rawPredict") || last.ends_with(":streamRawPredict"))
            && path.contains("/publishers/anthropic/")
        {
            return Some(Protocol::AnthropicMessages);
        }
        let suffixes: [(&str, Protocol); 9] = [
            ("/chat/completions", Protocol::OpenAiChat),
            ("/api/chat", Protocol::OllamaChat),
            ("/api/generate", Protocol::OllamaGenerate),
            ("/completions", Protocol::OpenAiCompletions),
            ("/embeddings", Protocol::OpenAiEmbeddings),
            ("/responses", Protocol::OpenAiResponses),
            ("/v1/messages", Protocol::AnthropicMessages),
            ("/messages", Protocol::AnthropicMessages),
            ("/generate", Protocol::VllmGenerate),
        ];
        suffixes
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix))
            .map(|(_, p)| *p)
    }

    /// The protocol a request body's shape reveals, for routes whose path says nothing: which
    /// top-level keys it has (`contents`, `messages`, `prompt`, `input`, …). Only the keys are
    /// looked at; values are skipped without being built.
    pub fn sniff(body: &[u8]) -> Option<Protocol> {
        let members = Members::parse(body)?;
        let has = |key: &str| members.get(key).is_some_and(|v| v != "null");
        let model = members
            .get("model")
            .and_then(|raw| serde_json::from_slice::<String>(raw.as_bytes()).ok());
        if has("contents") {
            return Some(Protocol::Gemini);
        }
        if has("messages") {
            return Some(if has("anthropic_version") || has("system") {
                Protocol::AnthropicMessages
            } else if has("options") {
                Protocol::OllamaChat
            } else {
                Protocol::OpenAiChat
            });
        }
        if has("prompt") {
            return Some(if has("options") {
                Protocol::OllamaGenerate
            } else if model.is_some() {
                Protocol::OpenAiCompletions
            } else {
                Protocol::VllmGenerate
            });
        }
        if has("input") {
            let responses = has("instructions")
                || has("max_output_tokens")
                || has("previous_response_id")
                || has("reasoning");
            let embedding_model = model
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("embed"));
            return Some(
                if !responses && (embedding_model || has("encoding_format") || has("dimensions")) {
                    Protocol::OpenAiEmbeddings
                } else {
                    Protocol::OpenAiResponses
                },
            );
        }
        None
    }

    /// The configuration name (`routes[].protocol`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai_chat",
            Protocol::OpenAiCompletions => "openai_completions",
            Protocol::OpenAiEmbeddings => "openai_embeddings",
            Protocol::OpenAiResponses => "openai_responses",
            Protocol::AnthropicMessages => "anthropic_messages",
            Protocol::Gemini => "gemini",
            Protocol::OllamaChat => "ollama_chat",
            Protocol::OllamaGenerate => "ollama_generate",
            Protocol::VllmGenerate => "vllm_generate",
        }
    }

    /// The protocol with configuration name `name`.
    pub fn from_name(name: &str) -> Option<Protocol> {
        ALL.into_iter().find(|p| p.name() == name)
    }

    /// OpenTelemetry `gen_ai.operation.name`.
    pub fn operation(self) -> &'static str {
        match self {
            Protocol::OpenAiCompletions | Protocol::OllamaGenerate | Protocol::VllmGenerate => {
                "text_completion"
            }
            Protocol::OpenAiEmbeddings => "embeddings",
            Protocol::Gemini => "generate_content",
            Protocol::OpenAiChat
            | Protocol::OpenAiResponses
            | Protocol::AnthropicMessages
            | Protocol::OllamaChat => "chat",
        }
    }

    /// The API's name, used as the trace name.
    pub fn api(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "chat.completions",
            Protocol::OpenAiCompletions => "completions",
            Protocol::OpenAiEmbeddings => "embeddings",
            Protocol::OpenAiResponses => "responses",
            Protocol::AnthropicMessages => "messages",
            Protocol::Gemini => "generate_content",
            Protocol::OllamaChat => "ollama.chat",
            Protocol::OllamaGenerate => "ollama.generate",
            Protocol::VllmGenerate => "vllm.generate",
        }
    }

    /// Fills the request side of `record`. Returns the body's top-level `user` and `metadata`
    /// when the protocol's reader took them on its way through the body (Chat Completions), so
    /// that the context need not read the body again; `None` when it did not look for them.
    ///
    /// # Errors
    /// [`ProtocolError`] when the body is not a request of this protocol.
    pub fn parse_request<'a>(
        self,
        body: &'a [u8],
        record: &mut TraceRecord,
    ) -> Result<Option<BodyMembers<'a>>, ProtocolError> {
        let refused = match self.read_request(body, record) {
            Err(e) => e,
            read => return read,
        };
        // The readers fill `record` only once the body has been read.
        match repaired(body) {
            Some(fixed) => self.read_request(&fixed, record).map(|_| None),
            None => Err(refused),
        }
    }

    fn read_request<'a>(
        self,
        body: &'a [u8],
        record: &mut TraceRecord,
    ) -> Result<Option<BodyMembers<'a>>, ProtocolError> {
        let done = match self {
            Protocol::OpenAiChat => return openai_chat::parse_request(body, record).map(Some),
            Protocol::OpenAiCompletions => openai_completions::parse_request(body, record),
            Protocol::OpenAiEmbeddings => openai_embeddings::parse_request(body, record),
            Protocol::OpenAiResponses => openai_responses::parse_request(body, record),
            Protocol::AnthropicMessages => anthropic_messages::parse_request(body, record),
            Protocol::Gemini => gemini::parse_request(body, record),
            Protocol::OllamaChat => ollama::parse_chat_request(body, record),
            Protocol::OllamaGenerate => ollama::parse_generate_request(body, record),
            Protocol::VllmGenerate => vllm_generate::parse_request(body, record),
        };
        done.map(|()| None)
    }

    /// Fills the response side of `record` from a whole (non-streamed) 2xx body.
    ///
    /// # Errors
    /// [`ProtocolError`] when the body is not a response of this protocol.
    pub fn parse_response(
        self,
        body: &[u8],
        record: &mut TraceRecord,
    ) -> Result<(), ProtocolError> {
        let refused = match self.read_response(body, record) {
            Err(e) => e,
            read => return read,
        };
        match repaired(body) {
            Some(fixed) => self.read_response(&fixed, record),
            None => Err(refused),
        }
    }

    fn read_response(self, body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
        match self {
            Protocol::OpenAiChat => openai_chat::parse_response(body, record),
            Protocol::OpenAiCompletions => openai_completions::parse_response(body, record),
            Protocol::OpenAiEmbeddings => openai_embeddings::parse_response(body, record),
            Protocol::OpenAiResponses => openai_responses::parse_response(body, record),
            Protocol::AnthropicMessages => anthropic_messages::parse_response(body, record),
            Protocol::Gemini => gemini::parse_response(body, record),
            Protocol::OllamaChat => ollama::parse_chat_response(body, record),
            Protocol::OllamaGenerate => ollama::parse_generate_response(body, record),
            Protocol::VllmGenerate => vllm_generate::parse_response(body, record),
        }
    }

    /// The provider's error from an error body, when it has a recognisable one.
    pub fn parse_error(self, body: &[u8]) -> Option<ErrorInfo> {
        match self {
            Protocol::OpenAiChat
            | Protocol::OpenAiCompletions
            | Protocol::OpenAiEmbeddings
            | Protocol::OpenAiResponses
            | Protocol::VllmGenerate => openai_chat::parse_error(body),
            Protocol::AnthropicMessages => anthropic_messages::parse_error(body),
            Protocol::Gemini => gemini::parse_error(body),
            Protocol::OllamaChat | Protocol::OllamaGenerate => ollama::parse_error(body),
        }
        .or_else(|| openai_chat::parse_error(body))
    }

    /// A fold for a streamed response that keeps at most `budget` bytes of output text;
    /// `None` for APIs that do not stream (embeddings).
    pub fn stream(self, budget: usize) -> Option<Box<dyn StreamFold>> {
        Some(match self {
            Protocol::OpenAiChat => Box::new(openai_chat::ChatStream::new(budget)),
            Protocol::OpenAiCompletions => {
                Box::new(openai_completions::CompletionStream::new(budget))
            }
            Protocol::OpenAiEmbeddings => return None,
            Protocol::OpenAiResponses => Box::new(openai_responses::ResponsesStream::new(budget)),
            Protocol::AnthropicMessages => {
                Box::new(anthropic_messages::MessagesStream::new(budget))
            }
            Protocol::Gemini => Box::new(gemini::GeminiStream::new(budget)),
            Protocol::OllamaChat | Protocol::OllamaGenerate => {
                Box::new(ollama::OllamaStream::new(budget))
            }
            Protocol::VllmGenerate => Box::new(vllm_generate::GenerateStream::new(budget)),
        })
    }
}

/// What one stream event contributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkEffect {
    /// Nothing a client would see as output (role-only delta, usage, keep-alive, metadata).
    Quiet,
    /// Output: content, reasoning or a tool-call delta. The first one marks the time to first
    /// token.
    Output,
    /// The stream's end marker (`[DONE]`, `message_stop`, `response.completed`, `"done": true`).
    Done,
}

impl ChunkEffect {
    /// [`ChunkEffect::Output`] when `output`, else [`ChunkEffect::Quiet`].
    pub fn output_if(output: bool) -> ChunkEffect {
        if output {
            ChunkEffect::Output
        } else {
            ChunkEffect::Quiet
        }
    }
}

/// Folds the events of one streamed response into the record.
pub trait StreamFold {
    /// Applies one event (SSE event, or one NDJSON line as `data`). Malformed events are
    /// counted, never fatal.
    fn push(&mut self, event: &Event) -> ChunkEffect;
    /// Applies the data of an event that came as a chunk of its own, one `data` line
    /// ([`SseDecoder::lone_data_line`]) not yet searched for line breaks: `None`, with nothing
    /// changed, unless the fold reads it on a path that proves it holds none, so that it is the
    /// data [`StreamFold::push`] would have been given.
    fn push_lone_line(&mut self, _data: &[u8]) -> Option<ChunkEffect> {
        None
    }
    /// Writes what was folded into `record`.
    fn finish(self: Box<Self>, record: &mut TraceRecord);
}

/// Feeds one chunk of a streamed body to `fold` through `framing`, `on_effect` seeing what each
/// event it completes did. A chunk that is one event of one `data` line goes to the fold whole,
/// not searched for line breaks, when the fold can prove it holds none.
pub fn push_chunk(
    framing: &mut SseDecoder,
    fold: &mut dyn StreamFold,
    chunk: &[u8],
    on_effect: &mut dyn FnMut(ChunkEffect),
) {
    let lone = framing.lone_data_line(chunk);
    if let Some(effect) = lone.and_then(|data| fold.push_lone_line(data)) {
        on_effect(effect);
        return;
    }
    framing.push(chunk, &mut |event| on_effect(fold.push(event)));
}

/// Folds a whole body with `fold`: every event `framing` decodes from `body`, then the record,
/// as a capture does chunk by chunk (the tests and fuzz harnesses compare folds with it).
pub fn fold_body(
    mut fold: Box<dyn StreamFold>,
    mut framing: SseDecoder,
    body: &[u8],
    record: &mut TraceRecord,
) {
    framing.push(body, &mut |e| {
        fold.push(e);
    });
    framing.finish(&mut |e| {
        fold.push(e);
    });
    fold.finish(record);
}

/// A body that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not JSON of the expected shape; carries the parser's position, never body bytes.
    Json {
        /// Line of the first problem.
        line: usize,
        /// Column of the first problem.
        column: usize,
    },
}

impl ProtocolError {
    pub(crate) fn json(e: serde_json::Error) -> Self {
        ProtocolError::Json {
            line: e.line(),
            column: e.column(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Json { line, column } => {
                write!(f, "unexpected JSON at line {line} column {column}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Sets `slot` from `value` unless it already holds something; empty strings do not count.
pub(crate) fn set_once(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            *slot = Some(v);
        }
    }
}

/// [`set_once`] for a borrowed value: copies it only when `slot` is still empty.
pub(crate) fn set_once_from(slot: &mut Option<String>, value: Option<std::borrow::Cow<'_, str>>) {
    if slot.is_none() {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            *slot = Some(v.into_owned());
        }
    }
}

/// Appends up to `budget` bytes of `text` (cut on a character boundary); false when cut.
pub(crate) fn append_capped(out: &mut String, text: &str, budget: &mut usize) -> bool {
    if text.len() <= *budget {
        out.push_str(text);
        *budget -= text.len();
        return true;
    }
    let mut cut = *budget;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.push_str(&text[..cut]);
    *budget = 0;
    false
}

/// Items (choices, candidates, tool calls, content blocks, output items, and parts of the
/// output) one streamed response may open. More are dropped and the record is marked truncated,
/// so that a stream inventing a new index per event can grow neither memory nor the time spent
/// finding an item by index; real responses open a handful.
pub const MAX_STREAM_ITEMS: usize = 1024;

/// The longest tool name, call id or role a stream fold keeps.
pub const MAX_NAME_BYTES: usize = 256;

/// What a stream fold may keep: bytes of output (text, reasoning, arguments, names, ids), and
/// items. Whatever does not fit is dropped and remembered as truncation.
#[derive(Debug)]
pub(crate) struct Budget {
    left: usize,
    items: usize,
    /// Something was dropped.
    pub(crate) truncated: bool,
}

impl Budget {
    /// A budget of `bytes` bytes and [`MAX_STREAM_ITEMS`] items.
    pub(crate) fn new(bytes: usize) -> Self {
        Budget {
            left: bytes,
            items: 0,
            truncated: false,
        }
    }

    /// Appends what fits of `text` to `out` (cut on a character boundary).
    pub(crate) fn append(&mut self, out: &mut String, text: &str) {
        if !append_capped(out, text, &mut self.left) {
            self.truncated = true;
        }
    }

    /// Whether `len` more bytes fit; takes them when they do.
    pub(crate) fn take(&mut self, len: usize) -> bool {
        if len <= self.left {
            self.left -= len;
            true
        } else {
            self.truncated = true;
            false
        }
    }

    /// Appends to a name, id or role, which the byte budget does not charge: each is cut at
    /// [`MAX_NAME_BYTES`] (real ones are far shorter), and items are counted.
    pub(crate) fn name(&mut self, out: &mut String, text: &str) {
        let mut left = MAX_NAME_BYTES.saturating_sub(out.len());
        if !append_capped(out, text, &mut left) {
            self.truncated = true;
        }
    }

    /// A name, id or role cut at [`MAX_NAME_BYTES`].
    pub(crate) fn keep(&mut self, value: Option<String>) -> Option<String> {
        value.map(|v| {
            if v.len() <= MAX_NAME_BYTES {
                return v;
            }
            let mut out = String::new();
            self.name(&mut out, &v);
            out
        })
    }

    /// Whether one more item (or part) may be opened; counts it when it may.
    pub(crate) fn open(&mut self) -> bool {
        if self.items >= MAX_STREAM_ITEMS {
            self.truncated = true;
            return false;
        }
        self.items += 1;
        true
    }

    /// Lets `cut` charge the bytes it keeps against the budget; `cut` returns true when it had
    /// to drop something.
    pub(crate) fn charge(&mut self, cut: impl FnOnce(&mut usize) -> bool) {
        if cut(&mut self.left) {
            self.truncated = true;
        }
    }
}

/// The position of the item `matches` finds in `items`, opening one with `make` when none
/// matches and the budget allows; `None` when it does not.
pub(crate) fn item_slot<T>(
    items: &mut Vec<T>,
    budget: &mut Budget,
    matches: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> Option<usize> {
    if let Some(at) = items.iter().rposition(matches) {
        return Some(at);
    }
    if !budget.open() {
        return None;
    }
    items.push(make());
    Some(items.len() - 1)
}

/// Puts `items` in the stable order of `key` (choices, candidates, tool calls and blocks by
/// their index). Usually they already are, and nothing moves; otherwise one shared sort of
/// `(key, position)` pairs orders them, so each item type adds a few hundred bytes of code
/// instead of its own instance of the standard library's sort.
pub(crate) fn sort_by_index<T>(items: &mut Vec<T>, key: impl Fn(&T) -> u128) {
    if items.windows(2).all(|w| key(&w[0]) <= key(&w[1])) {
        return;
    }
    let mut order: Vec<(u128, usize)> = items.iter().map(&key).zip(0..).collect();
    order.sort_unstable();
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(
        order
            .iter()
            .filter_map(|&(_, at)| slots.get_mut(at).and_then(Option::take)),
    );
}

/// A short description of inline base64 media, so traces never carry the bytes:
/// `[inline image/png, 1234 base64 chars omitted]`.
pub(crate) fn inline_media(media_type: &str, base64_len: usize) -> String {
    format!("[inline {media_type}, {base64_len} base64 chars omitted]")
}

/// Inline `data:` URLs are replaced by [`inline_media`]; real URLs are kept.
pub(crate) fn media_placeholder(url: String) -> String {
    match url.strip_prefix("data:") {
        Some(rest) => {
            let media_type = rest.split([';', ',']).next().unwrap_or("");
            let payload = rest.split_once(',').map_or(0, |(_, data)| data.len());
            inline_media(media_type, payload)
        }
        None => url,
    }
}

/// A refused body, repaired where a client or server mangled text, for one more read: bytes
/// that are not UTF-8 become U+FFFD (a cut multi-byte character, a Latin-1 byte), and so do
/// `\u` escapes of half a UTF-16 surrogate pair (text cut in the middle of a pair, which
/// `serde_json` refuses). `None` when there is nothing to repair.
fn repaired(body: &[u8]) -> Option<Vec<u8>> {
    let text = crate::json::utf8_lossy(body);
    match crate::json::lone_surrogates_replaced(text.as_bytes()) {
        Some(fixed) => Some(fixed),
        None => match text {
            std::borrow::Cow::Owned(text) => Some(text.into_bytes()),
            std::borrow::Cow::Borrowed(_) => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_by_index_is_stable_and_keeps_every_item() {
        let mut items = vec![(3, 'a'), (1, 'b'), (3, 'c'), (0, 'd'), (1, 'e')];
        sort_by_index(&mut items, |&(k, _)| k);
        assert_eq!(items, [(0, 'd'), (1, 'b'), (1, 'e'), (3, 'a'), (3, 'c')]);
        let mut reversed: Vec<u64> = (0..2000).rev().collect();
        sort_by_index(&mut reversed, |&k| k.into());
        assert!(reversed.iter().copied().eq(0..2000));
        let mut empty: Vec<u8> = Vec::new();
        sort_by_index(&mut empty, |&k| k.into());
        assert!(empty.is_empty());
    }

    #[test]
    fn detection_by_path() {
        let cases = [
            ("/v1/chat/completions", Some(Protocol::OpenAiChat)),
            ("/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", Some(Protocol::OpenAiChat)),
            ("/v1/completions", Some(Protocol::OpenAiCompletions)),
            ("/v1/embeddings", Some(Protocol::OpenAiEmbeddings)),
            ("/openai/deployments/emb/embeddings?api-version=2024-10-21", Some(Protocol::OpenAiEmbeddings)),
            ("/v1/responses", Some(Protocol::OpenAiResponses)),
            ("/v1/messages", Some(Protocol::AnthropicMessages)),
            ("/v1beta/models/gemini-2.0-flash:generateContent", Some(Protocol::Gemini)),
            ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", Some(Protocol::Gemini)),
            (
                "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent",
                Some(Protocol::Gemini),
            ),
            (
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4:streamRawPredict",
                Some(Protocol::AnthropicMessages),
            ),
            ("/api/chat", Some(Protocol::OllamaChat)),
            ("/api/generate", Some(Protocol::OllamaGenerate)),
            ("/generate", Some(Protocol::VllmGenerate)),
            ("/v1/models", None),
            ("/health", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Protocol::detect(path), expected, "{path}");
        }
    }

    #[test]
    fn detection_by_body_shape() {
        let cases: [(&str, Option<Protocol>); 12] = [
            (r#"{"model":"m","messages":[]}"#, Some(Protocol::OpenAiChat)),
            (
                r#"{"model":"claude","system":"s","messages":[],"max_tokens":5}"#,
                Some(Protocol::AnthropicMessages),
            ),
            (
                r#"{"anthropic_version":"vertex-2023-10-16","messages":[]}"#,
                Some(Protocol::AnthropicMessages),
            ),
            (
                r#"{"model":"llama3","messages":[],"options":{}}"#,
                Some(Protocol::OllamaChat),
            ),
            (
                r#"{"contents":[{"parts":[{"text":"x"}]}]}"#,
                Some(Protocol::Gemini),
            ),
            (
                r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#,
                Some(Protocol::OpenAiCompletions),
            ),
            (
                r#"{"prompt":"x","max_tokens":5}"#,
                Some(Protocol::VllmGenerate),
            ),
            (
                r#"{"model":"llama3","prompt":"x","options":{}}"#,
                Some(Protocol::OllamaGenerate),
            ),
            (
                r#"{"model":"text-embedding-3-small","input":"x"}"#,
                Some(Protocol::OpenAiEmbeddings),
            ),
            (
                r#"{"model":"gpt-4.1","input":"x","instructions":"be brief"}"#,
                Some(Protocol::OpenAiResponses),
            ),
            (
                r#"{"model":"m","input":["a","b"],"dimensions":256}"#,
                Some(Protocol::OpenAiEmbeddings),
            ),
            (r#"{"hello":"world"}"#, None),
        ];
        for (body, expected) in cases {
            assert_eq!(Protocol::sniff(body.as_bytes()), expected, "{body}");
        }
        assert_eq!(Protocol::sniff(b"\xff not json"), None);
    }

    #[test]
    fn names_round_trip() {
        for p in ALL {
            assert_eq!(Protocol::from_name(p.name()), Some(p));
        }
        assert_eq!(Protocol::from_name("soap"), None);
    }

    #[test]
    fn media_placeholders() {
        assert_eq!(
            media_placeholder("data:image/png;base64,AAAA".into()),
            "[inline image/png, 4 base64 chars omitted]"
        );
        assert_eq!(
            media_placeholder("https://x/y.png".into()),
            "https://x/y.png"
        );
    }
}
