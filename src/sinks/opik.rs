//! Opik REST sink: `POST {endpoint}/v1/private/traces/batch`, then `/v1/private/spans/batch`
//! (Opik OpenAPI `TraceBatch_Write` / `SpanBatch_Write`), one trace and one `llm` span per
//! exchange.
//!
//! Ids are UUIDv7 (Opik answers 400 to any other version) whose timestamp is the request start.
//! `input`, `output` and `metadata` are always JSON objects, shaped like Opik's own OpenAI
//! integration (`{"messages": …}`, `{"choices": …}`). Opik Cloud takes the API key raw in
//! `authorization` (no `Bearer`) plus `Comet-Workspace`; self-hosted takes neither.

use super::{api_path, extra_metadata, trace_tags, OutboundRequest, Sink};
use crate::config::{Endpoint, OpikConfig};
use crate::ids::uuid_v7;
use crate::providers::opik_name;
use crate::record::{Message, Part, TraceRecord};
use crate::timestamp::iso8601;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::rc::Rc;

/// The Opik sink.
#[derive(Debug)]
pub struct OpikSink {
    config: OpikConfig,
    headers: Vec<(String, String)>,
}

impl OpikSink {
    /// A sink for `config`; credentials headers are built once, here.
    pub fn new(config: OpikConfig) -> Self {
        let mut headers = vec![("content-type".into(), "application/json".to_string())];
        if let Some(key) = &config.api_key {
            headers.push(("authorization".into(), key.clone()));
        }
        if let Some(ws) = &config.workspace {
            headers.push(("comet-workspace".into(), ws.clone()));
        }
        OpikSink { config, headers }
    }

    fn request(&self, path: &str, body: Vec<u8>) -> OutboundRequest {
        OutboundRequest {
            path: api_path(&self.config.endpoint, path),
            headers: self.headers.clone(),
            body,
        }
    }
}

impl Sink for OpikSink {
    fn name(&self) -> &'static str {
        "opik"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.config.endpoint
    }

    fn encode(&self, records: &[Rc<TraceRecord>]) -> Vec<OutboundRequest> {
        let project = self.config.project_name.as_deref();
        // An exchange that joins an existing Opik trace adds a span to it, not a trace.
        let traces = Batch {
            key: "traces",
            items: records
                .iter()
                .filter(|r| r.context.opik_parent.is_none())
                .map(|r| Item::Trace(TraceItem::new(r, project))),
        };
        let spans = Batch {
            key: "spans",
            items: records
                .iter()
                .map(|r| Item::Span(TraceItem::new(r, project))),
        };
        let mut requests = Vec::with_capacity(2);
        // Opik answers 422 to an empty batch.
        if records.iter().any(|r| r.context.opik_parent.is_none()) {
            requests.push(self.request("/v1/private/traces/batch", encode(&traces)));
        }
        requests.push(self.request("/v1/private/spans/batch", encode(&spans)));
        requests
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every map key is a string and no Serialize impl
    // here returns an error.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The trace's and the span's Opik ids, UUIDv7 at the request start. An exchange that names an
/// Opik trace (`current_span_data`) uses that trace's id. An exchange in a caller's W3C trace
/// gets a trace id made from the W3C trace id alone, so that every exchange of that trace,
/// through any gateway worker, lands in one Opik trace; its UUID time field is then the trace
/// id's first 48 bits rather than a time.
pub fn ids(record: &TraceRecord) -> (String, String) {
    let ms = record.start_ns / 1_000_000;
    let mut span_tail = [0u8; 10];
    span_tail[..8].copy_from_slice(&record.span_id);
    span_tail[8..].copy_from_slice(&record.entropy[..2]);
    let span = uuid_v7(ms, &span_tail);
    let ctx = &record.context;
    if let Some(parent) = &ctx.opik_parent {
        return (parent.trace_id.clone(), span);
    }
    let mut trace_tail = [0u8; 10];
    trace_tail.copy_from_slice(&record.trace_id[6..]);
    let trace_ms = if ctx.parent.is_some() {
        let mut head = [0u8; 8];
        head[2..].copy_from_slice(&record.trace_id[..6]);
        u64::from_be_bytes(head)
    } else {
        ms
    };
    (uuid_v7(trace_ms, &trace_tail), span)
}

struct Batch<I> {
    key: &'static str,
    items: I,
}

impl<'a, I> Serialize for Batch<I>
where
    I: Iterator<Item = Item<'a>> + Clone,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.key, &Seq(self.items.clone()))?;
        map.end()
    }
}

struct Seq<I>(I);

impl<I> Serialize for Seq<I>
where
    I: Iterator + Clone,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for item in self.0.clone() {
            seq.serialize_element(&item)?;
        }
        seq.end()
    }
}

enum Item<'a> {
    Trace(TraceItem<'a>),
    Span(TraceItem<'a>),
}

struct TraceItem<'a> {
    r: &'a TraceRecord,
    project: Option<&'a str>,
    trace_id: String,
    span_id: String,
}

impl<'a> TraceItem<'a> {
    fn new(r: &'a TraceRecord, project: Option<&'a str>) -> Self {
        let (trace_id, span_id) = ids(r);
        TraceItem {
            r,
            project,
            trace_id,
            span_id,
        }
    }
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (item, span) = match self {
            Item::Trace(t) => (t, false),
            Item::Span(t) => (t, true),
        };
        let r = item.r;
        let ctx = &r.context;
        let mut m = s.serialize_map(None)?;
        if span {
            m.serialize_entry("id", &item.span_id)?;
            m.serialize_entry("trace_id", &item.trace_id)?;
            if let Some(parent) = ctx.opik_parent.as_ref().and_then(|p| p.span_id.as_ref()) {
                m.serialize_entry("parent_span_id", parent)?;
            }
            m.serialize_entry("type", "llm")?;
            m.serialize_entry("name", &span_name(r))?;
        } else {
            m.serialize_entry("id", &item.trace_id)?;
            m.serialize_entry("name", ctx.trace_name.as_deref().unwrap_or(r.api))?;
        }
        let project = ctx
            .opik_parent
            .as_ref()
            .and_then(|p| p.project_name.as_deref())
            .or(ctx.project_name.as_deref())
            .or(item.project);
        if let Some(p) = project {
            m.serialize_entry("project_name", p)?;
        }
        m.serialize_entry("start_time", &iso8601(r.start_ns))?;
        m.serialize_entry("end_time", &iso8601(r.end_ns.max(r.start_ns)))?;
        m.serialize_entry("input", &Input(r))?;
        m.serialize_entry("output", &Output(r))?;
        m.serialize_entry("metadata", &Metadata(r))?;
        m.serialize_entry("tags", &trace_tags(opik_name(&r.provider), &r.context.tags))?;
        if let Some(ttft) = r.ttft_ms() {
            m.serialize_entry("ttft", &ttft)?;
        }
        if let Some(err) = &r.error {
            m.serialize_entry("error_info", &ErrorInfo(r, err))?;
        }
        if span {
            if let Some(model) = r.response_model.as_ref().or(r.request_model.as_ref()) {
                m.serialize_entry("model", model)?;
            }
            m.serialize_entry("provider", opik_name(&r.provider))?;
            if !r.usage.is_empty() {
                m.serialize_entry("usage", &UsageMap(r))?;
            }
            // Opik's schema has `minimum: 0` with the OpenAPI 3.0 boolean exclusiveMinimum;
            // a zero cost is left out rather than risk a validator reading it as exclusive.
            if let Some(total) = r.cost.map(|c| c.total).filter(|t| *t > 0.0) {
                m.serialize_entry("total_estimated_cost", &total)?;
            }
        } else if let Some(session) = &ctx.session {
            m.serialize_entry("thread_id", session)?;
        }
        m.end()
    }
}

/// `{operation} {model}`, the OTel GenAI span name.
pub(crate) fn span_name(r: &TraceRecord) -> String {
    match &r.request_model {
        Some(m) => format!("{} {m}", r.operation),
        None => r.operation.to_string(),
    }
}

struct Input<'a>(&'a TraceRecord);

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("messages", &Seq(r.messages.iter().map(OpenAiMessage)))?;
        if let Some(tools) = r.tools_json.as_deref().and_then(raw_json) {
            m.serialize_entry("tools", &tools)?;
        }
        m.end()
    }
}

struct Output<'a>(&'a TraceRecord);

impl Serialize for Output<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(n) = self.0.embedding_count {
            m.serialize_entry("embeddings", &n)?;
        }
        let choices = self.0.choices.iter().map(|c| ChoiceOut {
            index: c.index,
            message: OpenAiMessage(&c.message),
            finish_reason: c.finish_reason.as_deref(),
        });
        m.serialize_entry("choices", &Seq(choices))?;
        m.end()
    }
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: OpenAiMessage<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
}

/// A message in OpenAI's chat shape, which Opik renders natively.
struct OpenAiMessage<'a>(&'a Message);

impl Serialize for OpenAiMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let msg = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &msg.role)?;
        let calls: Vec<_> = msg
            .parts
            .iter()
            .filter(|p| matches!(p, Part::ToolCall { .. }))
            .collect();
        let content: Vec<_> = msg
            .parts
            .iter()
            .filter(|p| !matches!(p, Part::ToolCall { .. }))
            .collect();
        match content.as_slice() {
            [] => m.serialize_entry("content", &None::<&str>)?,
            [Part::Text(t)] => m.serialize_entry("content", t)?,
            parts => m.serialize_entry("content", &Seq(parts.iter().map(|p| ContentPartOut(p))))?,
        }
        if !calls.is_empty() {
            m.serialize_entry("tool_calls", &Seq(calls.iter().map(|p| ToolCallOut(p))))?;
        }
        if let Some(name) = &msg.name {
            m.serialize_entry("name", name)?;
        }
        if let Some(id) = &msg.tool_call_id {
            m.serialize_entry("tool_call_id", id)?;
        }
        m.end()
    }
}

struct ContentPartOut<'a>(&'a Part);

impl Serialize for ContentPartOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Part::Text(t) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", t)?;
                m.end()
            }
            Part::Reasoning(t) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "reasoning")?;
                m.serialize_entry("text", t)?;
                m.end()
            }
            Part::Uri { modality, uri } => {
                let mut m = s.serialize_map(Some(2))?;
                if *modality == "image" {
                    m.serialize_entry("type", "image_url")?;
                    m.serialize_entry("image_url", &UrlOut { url: uri })?;
                } else {
                    m.serialize_entry("type", modality)?;
                    m.serialize_entry("url", uri)?;
                }
                m.end()
            }
            Part::Other { json, .. } => match raw_json(json) {
                Some(raw) => raw.serialize(s),
                None => s.serialize_none(),
            },
            Part::ToolCall { .. } => s.serialize_none(),
        }
    }
}

#[derive(Serialize)]
struct UrlOut<'a> {
    url: &'a str,
}

struct ToolCallOut<'a>(&'a Part);

impl Serialize for ToolCallOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Part::ToolCall {
            id,
            name,
            arguments,
        } = self.0
        else {
            return s.serialize_none();
        };
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("id", id)?;
        m.serialize_entry("type", "function")?;
        m.serialize_entry("function", &FunctionOut { name, arguments })?;
        m.end()
    }
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// JSON text that came from a parsed body, re-embedded verbatim.
fn raw_json(text: &str) -> Option<Box<RawValue>> {
    RawValue::from_string(text.to_string()).ok()
}

struct Metadata<'a>(&'a TraceRecord);

/// The keys [`Metadata`] writes itself.
const METADATA_KEYS: &[&str] = &[
    "created_from",
    "provider",
    "path",
    "stream",
    "request_model",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "n",
    "stop",
    "response_id",
    "system_fingerprint",
    "finish_reasons",
    "http.status_code",
    "server.address",
    "incomplete",
    "truncated",
    "unparsed",
];

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let p = &r.params;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("created_from", "llm-tracer")?;
        m.serialize_entry("provider", &r.provider)?;
        m.serialize_entry("path", &r.path)?;
        m.serialize_entry("stream", &p.stream)?;
        opt(&mut m, "request_model", &r.request_model)?;
        opt(&mut m, "temperature", &p.temperature)?;
        opt(&mut m, "top_p", &p.top_p)?;
        opt(&mut m, "max_tokens", &p.max_tokens)?;
        opt(&mut m, "max_completion_tokens", &p.max_completion_tokens)?;
        opt(&mut m, "frequency_penalty", &p.frequency_penalty)?;
        opt(&mut m, "presence_penalty", &p.presence_penalty)?;
        opt(&mut m, "seed", &p.seed)?;
        opt(&mut m, "n", &p.n)?;
        if !p.stop.is_empty() {
            m.serialize_entry("stop", &p.stop)?;
        }
        opt(&mut m, "response_id", &r.response_id)?;
        opt(&mut m, "system_fingerprint", &r.system_fingerprint)?;
        let reasons = r.finish_reasons();
        if !reasons.is_empty() {
            m.serialize_entry("finish_reasons", &reasons)?;
        }
        opt(&mut m, "http.status_code", &r.status)?;
        opt(&mut m, "server.address", &r.server_address)?;
        if r.incomplete {
            m.serialize_entry("incomplete", &true)?;
        }
        if r.truncated {
            m.serialize_entry("truncated", &true)?;
        }
        if !r.unparsed.is_empty() {
            m.serialize_entry("unparsed", &r.unparsed)?;
        }
        for (key, value) in extra_metadata(r, METADATA_KEYS) {
            m.serialize_entry(&key, &value)?;
        }
        m.end()
    }
}

fn opt<M: SerializeMap, T: Serialize>(
    m: &mut M,
    key: &str,
    value: &Option<T>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => m.serialize_entry(key, v),
        None => Ok(()),
    }
}

struct UsageMap<'a>(&'a TraceRecord);

impl Serialize for UsageMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let u = &self.0.usage;
        let mut m = s.serialize_map(None)?;
        let int32 = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
        if let Some(v) = u.input {
            m.serialize_entry("prompt_tokens", &int32(v))?;
        }
        if let Some(v) = u.output {
            m.serialize_entry("completion_tokens", &int32(v))?;
        }
        if let Some(v) = u.total() {
            m.serialize_entry("total_tokens", &int32(v))?;
        }
        if let Some(v) = u.cached_input {
            m.serialize_entry(
                "original_usage.prompt_tokens_details.cached_tokens",
                &int32(v),
            )?;
        }
        if let Some(v) = u.cache_creation {
            m.serialize_entry("cache_creation_input_tokens", &int32(v))?;
            m.serialize_entry(
                "cache_read_input_tokens",
                &int32(u.cached_input.unwrap_or(0)),
            )?;
        }
        if let Some(v) = u.reasoning {
            m.serialize_entry(
                "original_usage.completion_tokens_details.reasoning_tokens",
                &int32(v),
            )?;
        }
        m.end()
    }
}

struct ErrorInfo<'a>(&'a TraceRecord, &'a crate::record::ErrorInfo);

impl Serialize for ErrorInfo<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, e) = (self.0, self.1);
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(
            "exception_type",
            if e.kind.is_empty() { "error" } else { &e.kind },
        )?;
        if !e.message.is_empty() {
            m.serialize_entry("message", &e.message)?;
        }
        let traceback = match r.status {
            Some(status) => format!("POST {} -> {status}", r.path),
            None => format!("POST {} -> no complete response", r.path),
        };
        m.serialize_entry("traceback", &traceback)?;
        m.end()
    }
}
