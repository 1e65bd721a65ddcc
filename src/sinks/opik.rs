//! Opik REST sink: `POST {endpoint}/v1/private/traces/batch`, then `/v1/private/spans/batch`
//! (Opik OpenAPI `TraceBatch_Write` / `SpanBatch_Write`), one trace and one `llm` span per
//! exchange.
//!
//! Ids are UUIDv7 (Opik answers 400 to any other version) whose timestamp is the request start.
//! `input`, `output` and `metadata` are always JSON objects, shaped like Opik's own OpenAI
//! integration (`{"messages": …}`, `{"choices": …}`). Opik Cloud takes the API key raw in
//! `authorization` (no `Bearer`) plus `Comet-Workspace`; self-hosted takes neither.

use super::write::{self, Composite};
use super::{
    api_path, body_capacity, extra_metadata, trace_tags, write_cost, Meta, OutboundRequest, Sink,
};
use crate::config::{Endpoint, OpikConfig};
use crate::ids::uuid_v7;
use crate::providers::opik_name;
use crate::record::{Message, Part, TraceRecord};
use crate::timestamp::iso8601;
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
        let any_trace = records.iter().any(|r| r.context.opik_parent.is_none());
        // A trace takes about 300 bytes besides its text, a span about 600.
        let mut traces = Vec::with_capacity(if any_trace {
            body_capacity(records, 512, true)
        } else {
            0
        });
        let mut spans = Vec::with_capacity(body_capacity(records, 1024, true));
        let mut trace_batch = Composite::object(&mut traces);
        let mut span_batch = Composite::object(&mut spans);
        let mut trace_items = trace_batch.array_at("traces");
        let mut span_items = span_batch.array_at("spans");
        for r in records {
            write_items(r, project, &mut trace_items, &mut span_items);
        }
        trace_items.close();
        span_items.close();
        trace_batch.close();
        span_batch.close();
        traces.shrink_to_fit();
        spans.shrink_to_fit();
        let mut requests = Vec::with_capacity(2);
        // Opik answers 422 to an empty batch.
        if any_trace {
            requests.push(self.request("/v1/private/traces/batch", traces));
        }
        requests.push(self.request("/v1/private/spans/batch", spans));
        requests
    }
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

/// One exchange: its trace (unless it joins an existing one) and its `llm` span. The members
/// they share (times, input, output, metadata, …) are written once and copied.
fn write_items(
    r: &TraceRecord,
    project: Option<&str>,
    trace_items: &mut Composite<'_>,
    span_items: &mut Composite<'_>,
) {
    let ctx = &r.context;
    let (trace_id, span_id) = ids(r);
    let span = span_items.item();
    let mut head = Composite::object(span);
    head.str("id", &span_id);
    head.str("trace_id", &trace_id);
    head.opt_str(
        "parent_span_id",
        ctx.opik_parent.as_ref().and_then(|p| p.span_id.as_deref()),
    );
    head.str("type", "llm");
    span_name(head.key("name"), r);
    if ctx.opik_parent.is_none() {
        let trace = trace_items.item();
        let mut o = Composite::object(trace);
        o.str("id", &trace_id);
        o.str("name", ctx.trace_name.as_deref().unwrap_or(r.api));
        let shared = trace.len();
        write_shared(trace, r, project);
        span.extend_from_slice(&trace[shared..]);
        let mut o = Composite::resume(trace);
        o.opt_str("thread_id", ctx.session.as_deref());
        o.close();
    } else {
        write_shared(span, r, project);
    }
    write_span_tail(span, r);
}

/// The members a trace and its span share, after their ids and names.
fn write_shared(out: &mut Vec<u8>, r: &TraceRecord, project: Option<&str>) {
    let ctx = &r.context;
    let mut o = Composite::resume(out);
    let project = ctx
        .opik_parent
        .as_ref()
        .and_then(|p| p.project_name.as_deref())
        .or(ctx.project_name.as_deref())
        .or(project);
    o.opt_str("project_name", project);
    o.str("start_time", &iso8601(r.start_ns));
    o.str("end_time", &iso8601(r.end_ns.max(r.start_ns)));
    write_input(o.object_at("input"), r);
    write_output(o.object_at("output"), r);
    write_metadata(o.object_at("metadata"), r);
    o.strs("tags", trace_tags(opik_name(&r.provider), &ctx.tags));
    if let Some(ttft) = r.ttft_ms() {
        o.float("ttft", ttft);
    }
    if let Some(err) = &r.error {
        write_error(o.object_at("error_info"), r, err);
    }
}

/// The span's own members after the shared ones, and its end.
fn write_span_tail(out: &mut Vec<u8>, r: &TraceRecord) {
    let mut o = Composite::resume(out);
    o.opt_str(
        "model",
        r.response_model.as_deref().or(r.request_model.as_deref()),
    );
    o.str("provider", opik_name(&r.provider));
    if !r.usage.is_empty() {
        write_usage(o.object_at("usage"), r);
    }
    // Opik's schema has `minimum: 0` with the OpenAPI 3.0 boolean exclusiveMinimum;
    // a zero cost is left out rather than risk a validator reading it as exclusive.
    if let Some(total) = r.cost.map(|c| c.total).filter(|t| *t > 0.0) {
        o.float("total_estimated_cost", total);
    }
    o.close();
}

/// `{operation} {model}`, the OTel GenAI span name, as a JSON string.
pub(crate) fn span_name(out: &mut Vec<u8>, r: &TraceRecord) {
    match &r.request_model {
        Some(m) => write::string_of(out, [r.operation, " ", m]),
        None => write::string(out, r.operation),
    }
}

/// `input`: `{"messages": […], "tools": […]}`.
fn write_input(mut o: Composite<'_>, r: &TraceRecord) {
    let mut messages = o.array_at("messages");
    for m in &r.messages {
        write_message(messages.item_object(), m);
    }
    messages.close();
    if let Some(tools) = r.tools_json.as_deref().and_then(write::raw_json) {
        o.key("tools").extend_from_slice(tools.as_bytes());
    }
    o.close();
}

/// `output`: `{"embeddings": n, "choices": [{index, message, finish_reason}]}`.
fn write_output(mut o: Composite<'_>, r: &TraceRecord) {
    if let Some(n) = r.embedding_count {
        o.uint("embeddings", n);
    }
    let mut choices = o.array_at("choices");
    for c in &r.choices {
        let mut choice = choices.item_object();
        choice.uint("index", u64::from(c.index));
        write_message(choice.object_at("message"), &c.message);
        choice.opt_str("finish_reason", c.finish_reason.as_deref());
        choice.close();
    }
    choices.close();
    o.close();
}

/// A message in OpenAI's chat shape, which Opik renders natively: `content` is null, one
/// string, or an array of parts; tool calls go to `tool_calls`.
fn write_message(mut o: Composite<'_>, msg: &Message) {
    o.str("role", &msg.role);
    let is_call = |p: &&Part| matches!(p, Part::ToolCall { .. });
    let mut content = msg.parts.iter().filter(|p| !is_call(p));
    match (content.next(), content.next()) {
        (None, _) => o.key("content").extend_from_slice(b"null"),
        (Some(Part::Text(t)), None) => o.str("content", t),
        _ => {
            let mut parts = o.array_at("content");
            for p in msg.parts.iter().filter(|p| !is_call(p)) {
                write_content_part(parts.item(), p);
            }
            parts.close();
        }
    }
    if msg.parts.iter().any(|p| is_call(&p)) {
        let mut calls = o.array_at("tool_calls");
        for p in &msg.parts {
            if let Part::ToolCall {
                id,
                name,
                arguments,
            } = p
            {
                let mut call = calls.item_object();
                call.str("id", id);
                call.str("type", "function");
                let mut function = call.object_at("function");
                function.str("name", name);
                function.str("arguments", arguments);
                function.close();
                call.close();
            }
        }
        calls.close();
    }
    o.opt_str("name", msg.name.as_deref());
    o.opt_str("tool_call_id", msg.tool_call_id.as_deref());
    o.close();
}

/// A content part in OpenAI's shape; other parts as their own JSON (null when it is not JSON).
fn write_content_part(out: &mut Vec<u8>, part: &Part) {
    let (kind, key, text) = match part {
        Part::Text(t) => ("text", "text", t.as_str()),
        Part::Reasoning(t) => ("reasoning", "text", t.as_str()),
        Part::Uri { modality, uri } if *modality == "image" => {
            let mut o = Composite::object(out);
            o.str("type", "image_url");
            let mut url = o.object_at("image_url");
            url.str("url", uri);
            url.close();
            o.close();
            return;
        }
        Part::Uri { modality, uri } => (*modality, "url", uri.as_str()),
        Part::Other { json, .. } => {
            let raw = write::raw_json(json).unwrap_or("null");
            out.extend_from_slice(raw.as_bytes());
            return;
        }
        Part::ToolCall { .. } => {
            out.extend_from_slice(b"null");
            return;
        }
    };
    let mut o = Composite::object(out);
    o.str("type", kind);
    o.str(key, text);
    o.close();
}

/// The keys [`write_metadata`] writes itself.
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

/// The span's and trace's metadata: the exchange's own fields, then [`extra_metadata`].
fn write_metadata(mut m: Composite<'_>, r: &TraceRecord) {
    let p = &r.params;
    m.str("created_from", "llm-tracer");
    m.str("provider", &r.provider);
    m.str("path", &r.path);
    m.bool("stream", p.stream);
    m.opt_str("request_model", r.request_model.as_deref());
    let floats = [("temperature", p.temperature), ("top_p", p.top_p)];
    for (key, v) in floats {
        if let Some(v) = v {
            m.float(key, v);
        }
    }
    let ints = [
        ("max_tokens", p.max_tokens),
        ("max_completion_tokens", p.max_completion_tokens),
    ];
    for (key, v) in ints {
        if let Some(v) = v {
            m.uint(key, v);
        }
    }
    let floats = [
        ("frequency_penalty", p.frequency_penalty),
        ("presence_penalty", p.presence_penalty),
    ];
    for (key, v) in floats {
        if let Some(v) = v {
            m.float(key, v);
        }
    }
    if let Some(seed) = p.seed {
        m.int("seed", seed);
    }
    if let Some(n) = p.n {
        m.uint("n", n);
    }
    if !p.stop.is_empty() {
        m.strs("stop", p.stop.iter().map(String::as_str));
    }
    m.opt_str("response_id", r.response_id.as_deref());
    m.opt_str("system_fingerprint", r.system_fingerprint.as_deref());
    if r.choices.iter().any(|c| c.finish_reason.is_some()) {
        let reasons = r.choices.iter().filter_map(|c| c.finish_reason.as_deref());
        m.strs("finish_reasons", reasons);
    }
    if let Some(status) = r.status {
        m.uint("http.status_code", u64::from(status));
    }
    m.opt_str("server.address", r.server_address.as_deref());
    if r.incomplete {
        m.bool("incomplete", true);
    }
    if r.truncated {
        m.bool("truncated", true);
    }
    if !r.unparsed.is_empty() {
        m.strs("unparsed", r.unparsed.iter().map(String::as_str));
    }
    extra_metadata(r, METADATA_KEYS, |key, value| {
        let out = m.key(key);
        match value {
            Meta::Str(s) => write::string(out, s),
            Meta::Float(v) => write::float(out, v),
            Meta::Cost(cost) => write_cost(Composite::object(out), cost),
            Meta::Json(v) => write::value(out, v),
        }
    });
    m.close();
}

/// Token counts under Opik's usage keys (int32, saturated).
fn write_usage(mut m: Composite<'_>, r: &TraceRecord) {
    const INT32_MAX: u64 = i32::MAX as u64;
    let int32 = |v: u64| v.min(INT32_MAX);
    let u = &r.usage;
    let counts = [
        ("prompt_tokens", u.input),
        ("completion_tokens", u.output),
        ("total_tokens", u.total()),
        (
            "original_usage.prompt_tokens_details.cached_tokens",
            u.cached_input,
        ),
    ];
    for (key, v) in counts {
        if let Some(v) = v {
            m.uint(key, int32(v));
        }
    }
    if let Some(v) = u.cache_creation {
        m.uint("cache_creation_input_tokens", int32(v));
        m.uint(
            "cache_read_input_tokens",
            int32(u.cached_input.unwrap_or(0)),
        );
    }
    if let Some(v) = u.reasoning {
        m.uint(
            "original_usage.completion_tokens_details.reasoning_tokens",
            int32(v),
        );
    }
    m.close();
}

/// Opik's `error_info`: the error's kind and message, and the request as the traceback.
fn write_error(mut m: Composite<'_>, r: &TraceRecord, e: &crate::record::ErrorInfo) {
    m.str(
        "exception_type",
        if e.kind.is_empty() { "error" } else { &e.kind },
    );
    if !e.message.is_empty() {
        m.str("message", &e.message);
    }
    let mut digits = [0; 20];
    let outcome = match r.status {
        Some(status) => write::decimal(&mut digits, u64::from(status)),
        None => "no complete response",
    };
    m.str_of("traceback", ["POST ", &r.path, " -> ", outcome]);
    m.close();
}
