//! OTLP/HTTP JSON trace export with the OpenTelemetry GenAI semantic conventions (v1.41:
//! `gen_ai.*`, messages in the parts-based JSON of `gen-ai-input-messages.json` /
//! `gen-ai-output-messages.json`, sent as JSON strings): one CLIENT span per exchange. OTLP/JSON
//! rules: lowercase hex ids, enums as integers, int64 as decimal strings.
//!
//! Two flavours share the encoder: the generic [`OtlpSink`] (any OTLP collector: Jaeger, Tempo,
//! Phoenix, Datadog, Honeycomb, an OpenTelemetry Collector) sends the semantic conventions
//! only, with message content when configured; the Langfuse sink adds the `langfuse.*`
//! attributes that pin trace name, tags, usage, cost and completion start.

use super::opik::span_name;
use super::write::{self, Composite};
use super::{
    body_capacity, extra_metadata, split_authority, trace_tags, write_cost, Meta, OutboundRequest,
    Sink,
};
use crate::config::{Endpoint, OtlpConfig};
use crate::record::{Message, Part, TraceRecord};
use crate::timestamp::iso8601;
use serde_json::Value;
use std::rc::Rc;

/// Instrumentation scope and `service.name` the spans carry.
const SCOPE: &str = "llm-tracer";

/// What the encoder adds beyond the GenAI semantic conventions.
#[derive(Debug, Clone, Copy)]
pub struct Flavor<'a> {
    /// Add the `langfuse.*` attributes, the deprecated `gen_ai.system` and the record's
    /// metadata (`langfuse.trace.metadata.*`).
    pub langfuse: bool,
    /// Send input and output messages (`gen_ai.input.messages`, `gen_ai.output.messages`).
    pub content: bool,
    /// Resource attributes besides `service.name`.
    pub resource: &'a [(String, String)],
}

/// The generic OTLP sink.
#[derive(Debug)]
pub struct OtlpSink {
    config: OtlpConfig,
    headers: Vec<(String, String)>,
    path: String,
}

impl OtlpSink {
    /// A sink for `config`. The path is the endpoint's, with `/v1/traces` appended unless it
    /// already ends so.
    pub fn new(config: OtlpConfig) -> Self {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(config.headers.iter().cloned());
        let path = if config.endpoint.base_path.ends_with("/v1/traces") {
            config.endpoint.base_path.clone()
        } else {
            format!("{}/v1/traces", config.endpoint.base_path)
        };
        OtlpSink {
            config,
            headers,
            path,
        }
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> &'static str {
        "otlp"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.config.endpoint
    }

    fn encode(&self, records: &[Rc<TraceRecord>]) -> Vec<OutboundRequest> {
        let flavor = Flavor {
            langfuse: false,
            content: self.config.capture_content,
            resource: &self.config.resource_attributes,
        };
        vec![OutboundRequest {
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: encode_otlp(records, &flavor),
        }]
    }
}

/// An `ExportTraceServiceRequest` in OTLP/JSON with one span per record.
pub fn encode_otlp(records: &[Rc<TraceRecord>], flavor: &Flavor<'_>) -> Vec<u8> {
    // A span takes about 1.8 KB besides its messages, 2.5 KB with the Langfuse attributes.
    let per_record = if flavor.langfuse { 3072 } else { 2048 };
    let mut out = Vec::with_capacity(body_capacity(records, per_record, flavor.content));
    let mut request = Composite::object(&mut out);
    let mut resource_spans = request.array_at("resourceSpans");
    let mut resource_span = resource_spans.item_object();
    write_resource(resource_span.object_at("resource"), flavor.resource);
    let mut scope_spans = resource_span.array_at("scopeSpans");
    let mut scope_span = scope_spans.item_object();
    let mut scope = scope_span.object_at("scope");
    scope.str("name", SCOPE);
    scope.str("version", env!("CARGO_PKG_VERSION"));
    scope.close();
    let mut spans = scope_span.array_at("spans");
    for r in records {
        write_span(spans.item_object(), r, flavor);
    }
    spans.close();
    scope_span.close();
    scope_spans.close();
    resource_span.close();
    resource_spans.close();
    request.close();
    out.shrink_to_fit();
    out
}

/// The resource's `attributes`: `service.name` first (the configured one, else [`SCOPE`]), then
/// the other configured resource attributes.
fn write_resource(mut o: Composite<'_>, resource: &[(String, String)]) {
    let service = resource
        .iter()
        .rev()
        .find(|(k, _)| k == "service.name")
        .map_or(SCOPE, |(_, v)| v.as_str());
    let mut list = o.array_at("attributes");
    let mut attributes = Attributes(&mut list);
    attributes.put("service.name", Any::Str(service));
    for (k, v) in resource.iter().filter(|(k, _)| k != "service.name") {
        attributes.put(k, Any::Str(v));
    }
    list.close();
    o.close();
}

/// One CLIENT span, the members of `o`.
fn write_span(mut o: Composite<'_>, r: &TraceRecord, flavor: &Flavor<'_>) {
    let error_message = r.error.as_ref().map(|e| {
        if e.message.is_empty() {
            e.kind.as_str()
        } else {
            e.message.as_str()
        }
    });
    let parent = r.context.parent.as_ref();
    write::hex_string(o.key("traceId"), &r.trace_id);
    write::hex_string(o.key("spanId"), &r.span_id);
    if let Some(p) = parent {
        write::hex_string(o.key("parentSpanId"), &p.span_id);
    }
    o.opt_str("traceState", parent.and_then(|p| p.tracestate.as_deref()));
    span_name(o.key("name"), r);
    o.uint("kind", 3);
    int64(o.key("startTimeUnixNano"), r.start_ns);
    int64(o.key("endTimeUnixNano"), r.end_ns.max(r.start_ns));
    let mut list = o.array_at("attributes");
    let mut a = Attributes(&mut list);
    genai_attributes(&mut a, r, flavor.content);
    if flavor.langfuse {
        // Deprecated, but still what Opik's and older collectors' mappers read.
        a.put("gen_ai.system", Any::Str(&r.provider));
        langfuse_attributes(&mut a, r, error_message);
    }
    list.close();
    let mut status = o.object_at("status");
    status.uint("code", if r.error.is_some() { 2 } else { 1 });
    status.opt_str("message", error_message);
    status.close();
    o.close();
}

/// An int64 as OTLP/JSON writes it: a decimal string.
fn int64(out: &mut Vec<u8>, v: u64) {
    out.push(b'"');
    write::uint(out, v);
    out.push(b'"');
}

/// A scalar OTLP `AnyValue`; int64 goes out as a decimal string.
#[derive(Debug, Clone, Copy)]
enum Any<'a> {
    Str(&'a str),
    Int(u64),
    Double(f64),
    Bool(bool),
}

/// A span's or resource's `attributes` list of OTLP `KeyValue`s being written.
struct Attributes<'l, 'o>(&'l mut Composite<'o>);

impl Attributes<'_, '_> {
    /// Starts a `KeyValue` whose key is the concatenation of `key` and whose `AnyValue` has
    /// the member `kind`; returns the buffer for that member's value. [`Attributes::end`]
    /// closes it.
    fn start<'b>(list: &'b mut Composite<'_>, key: &[&str], kind: &str) -> &'b mut Vec<u8> {
        let out = list.item();
        out.extend_from_slice(b"{\"key\":");
        write::string_of(out, key.iter().copied());
        out.extend_from_slice(b",\"value\":{\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\":");
        out
    }

    fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(b"}}");
    }

    /// Attribute `key`, the concatenation of its parts.
    fn put_at(&mut self, key: &[&str], value: Any<'_>) {
        let kind = match value {
            Any::Str(_) => "stringValue",
            Any::Int(_) => "intValue",
            Any::Double(_) => "doubleValue",
            Any::Bool(_) => "boolValue",
        };
        let out = Self::start(self.0, key, kind);
        match value {
            Any::Str(v) => write::string(out, v),
            Any::Int(v) => int64(out, v),
            Any::Double(v) => write::float(out, v),
            Any::Bool(v) => out.extend_from_slice(if v { b"true" } else { b"false" }),
        }
        Self::end(out);
    }

    fn put(&mut self, key: &str, value: Any<'_>) {
        self.put_at(&[key], value);
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.put(key, Any::Str(v));
        }
    }

    /// An array of strings.
    fn strs<'v>(&mut self, key: &str, values: impl IntoIterator<Item = &'v str>) {
        let out = Self::start(self.0, &[key], "arrayValue");
        let mut array = Composite::object(out);
        let mut items = array.array_at("values");
        for v in values {
            let mut any = items.item_object();
            any.str("stringValue", v);
            any.close();
        }
        items.close();
        array.close();
        Self::end(out);
    }

    /// A string holding JSON text, which `write` writes escaped, with
    /// [`Composite::object_in_string`] or [`Composite::array_in_string`].
    fn json_at(&mut self, key: &[&str], write: impl FnOnce(&mut Vec<u8>)) {
        let out = Self::start(self.0, key, "stringValue");
        out.push(b'"');
        write(out);
        out.push(b'"');
        Self::end(out);
    }

    fn json(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        self.json_at(&[key], write);
    }

    /// A metadata value: strings, numbers and booleans as themselves, anything else as JSON
    /// text.
    fn meta(&mut self, key: &[&str], value: Meta<'_>) {
        let scalar = match value {
            Meta::Str(v) => Any::Str(v),
            Meta::Float(v) => Any::Double(v),
            Meta::Json(Value::String(v)) => Any::Str(v),
            Meta::Json(Value::Bool(v)) => Any::Bool(*v),
            Meta::Json(Value::Number(n)) => match n.as_u64() {
                Some(i) => Any::Int(i),
                None => Any::Double(n.as_f64().unwrap_or(0.0)),
            },
            Meta::Cost(cost) => {
                return self.json_at(key, |out| {
                    write_cost(Composite::object_in_string(out), cost);
                });
            }
            Meta::Json(other) => return self.json_at(key, |out| write::value_escaped(out, other)),
        };
        self.put_at(key, scalar);
    }
}

/// The GenAI semantic-convention attributes (and the HTTP and error ones they sit with).
fn genai_attributes(a: &mut Attributes<'_, '_>, r: &TraceRecord, content: bool) {
    let p = &r.params;
    let ctx = &r.context;
    a.put("gen_ai.operation.name", Any::Str(r.operation));
    a.put("gen_ai.provider.name", Any::Str(&r.provider));
    let strings = [
        ("gen_ai.request.model", &r.request_model),
        ("gen_ai.response.model", &r.response_model),
        ("gen_ai.response.id", &r.response_id),
        ("gen_ai.conversation.id", &ctx.session),
        ("session.id", &ctx.session),
        ("user.id", &ctx.user),
        (
            "gen_ai.openai.response.system_fingerprint",
            &r.system_fingerprint,
        ),
    ];
    for (key, value) in strings {
        a.opt_str(key, value.as_deref());
    }
    let doubles = [
        ("gen_ai.request.temperature", p.temperature),
        ("gen_ai.request.top_p", p.top_p),
        ("gen_ai.request.frequency_penalty", p.frequency_penalty),
        ("gen_ai.request.presence_penalty", p.presence_penalty),
    ];
    for (key, value) in doubles {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            a.put(key, Any::Double(v));
        }
    }
    if let Some(v) = p.max_completion_tokens.or(p.max_tokens) {
        a.put("gen_ai.request.max_tokens", Any::Int(v));
    }
    if let Some(seed) = p.seed.and_then(|s| u64::try_from(s).ok()) {
        a.put("gen_ai.request.seed", Any::Int(seed));
    }
    if let Some(n) = p.n.filter(|&n| n != 1) {
        a.put("gen_ai.request.choice.count", Any::Int(n));
    }
    if !p.stop.is_empty() {
        a.strs(
            "gen_ai.request.stop_sequences",
            p.stop.iter().map(String::as_str),
        );
    }
    if p.stream {
        a.put("gen_ai.request.stream", Any::Bool(true));
    }
    if r.choices.iter().any(|c| c.finish_reason.is_some()) {
        let reasons = r.choices.iter().filter_map(|c| c.finish_reason.as_deref());
        a.strs("gen_ai.response.finish_reasons", reasons);
    }
    usage_attributes(a, r);
    if let Some(ttft) = r.ttft_ms() {
        a.put(
            "gen_ai.response.time_to_first_chunk",
            Any::Double(ttft / 1000.0),
        );
    }
    if let Some(addr) = &r.server_address {
        let (host, port) = split_authority(addr, true);
        a.put("server.address", Any::Str(host));
        a.put("server.port", Any::Int(u64::from(port)));
    }
    if content && !r.messages.is_empty() {
        a.json("gen_ai.input.messages", |out| input_messages(out, r));
    }
    if content && !r.choices.is_empty() {
        a.json("gen_ai.output.messages", |out| output_messages(out, r));
    }
    a.put("url.path", Any::Str(&r.path));
    if let Some(status) = r.status {
        a.put("http.response.status_code", Any::Int(u64::from(status)));
    }
    if let Some(e) = &r.error {
        a.put("error.type", Any::Str(&e.kind));
    }
}

/// The `langfuse.*` attributes, the record's own flags and its metadata.
fn langfuse_attributes(a: &mut Attributes<'_, '_>, r: &TraceRecord, error_message: Option<&str>) {
    let ctx = &r.context;
    a.opt_str("langfuse.release", ctx.release.as_deref());
    a.opt_str("langfuse.environment", ctx.environment.as_deref());
    if let Some(first) = r.first_token_ns {
        let time = iso8601(first);
        a.put(
            "langfuse.observation.completion_start_time",
            Any::Str(&time),
        );
    }
    if !r.usage.is_empty() {
        a.json("langfuse.observation.usage_details", |out| {
            usage_details(out, r)
        });
    }
    if let Some(n) = r.embedding_count {
        a.put("llm_tracer.embedding.count", Any::Int(n));
    }
    let observation = if r.operation == "embeddings" {
        "embedding"
    } else {
        "generation"
    };
    a.put("langfuse.observation.type", Any::Str(observation));
    let trace_name = ctx.trace_name.as_deref().unwrap_or(r.api);
    a.put("langfuse.trace.name", Any::Str(trace_name));
    a.strs("langfuse.trace.tags", trace_tags(&r.provider, &ctx.tags));
    if let Some(cost) = &r.cost {
        a.json("langfuse.observation.cost_details", |out| {
            write_cost(Composite::object_in_string(out), cost);
        });
        a.put("gen_ai.usage.cost", Any::Double(cost.total));
    }
    if r.error.is_some() {
        a.put("langfuse.observation.level", Any::Str("ERROR"));
        a.opt_str("langfuse.observation.status_message", error_message);
    }
    if r.incomplete {
        a.put("llm_tracer.incomplete", Any::Bool(true));
    }
    if r.truncated {
        a.put("llm_tracer.truncated", Any::Bool(true));
    }
    extra_metadata(r, &[], |key, value| {
        a.meta(&["langfuse.trace.metadata.", key], value);
    });
}

fn usage_attributes(a: &mut Attributes<'_, '_>, r: &TraceRecord) {
    let u = &r.usage;
    let ints = [
        ("gen_ai.usage.input_tokens", u.input),
        ("gen_ai.usage.output_tokens", u.output),
        ("gen_ai.usage.cache_read.input_tokens", u.cached_input),
        ("gen_ai.usage.cache_creation.input_tokens", u.cache_creation),
        ("gen_ai.usage.reasoning.output_tokens", u.reasoning),
    ];
    for (key, value) in ints {
        if let Some(v) = value {
            a.put(key, Any::Int(v));
        }
    }
}

/// Langfuse's `usage_details`, which its own token accounting reads: `input` excludes cache
/// reads and writes and `output` excludes reasoning tokens, which get keys of their own;
/// `total` is the grand total. Keys in sorted order.
fn usage_details(out: &mut Vec<u8>, r: &TraceRecord) {
    let u = &r.usage;
    let cached = u
        .cached_input
        .unwrap_or(0)
        .saturating_add(u.cache_creation.unwrap_or(0));
    let reasoning = u.reasoning.unwrap_or(0);
    let details = [
        ("input", u.input.map(|i| i.saturating_sub(cached))),
        ("input_cache_creation", u.cache_creation),
        ("input_cached_tokens", u.cached_input),
        ("output", u.output.map(|o| o.saturating_sub(reasoning))),
        ("output_reasoning_tokens", u.reasoning),
        ("total", u.total()),
    ];
    let mut o = Composite::object_in_string(out);
    for (key, value) in details {
        if let Some(v) = value {
            o.uint(key, v);
        }
    }
    o.close();
}

/// `gen_ai.input.messages`: the input messages in the parts format.
fn input_messages(out: &mut Vec<u8>, r: &TraceRecord) {
    let mut list = Composite::array_in_string(out);
    for m in &r.messages {
        parts_message(list.item_object(), m, None);
    }
    list.close();
}

/// `gen_ai.output.messages`: one message per choice, with its finish reason.
fn output_messages(out: &mut Vec<u8>, r: &TraceRecord) {
    let failed = r.error.is_some();
    let mut list = Composite::array_in_string(out);
    for c in &r.choices {
        let reason = otel_finish_reason(c.finish_reason.as_deref(), failed);
        parts_message(list.item_object(), &c.message, Some(reason));
    }
    list.close();
}

/// OTel's finish reasons are `stop`, `length`, `content_filter`, `tool_call` and `error`; the
/// schema requires one, so a provider that gives none (vLLM, an interrupted stream) gets `error`
/// when the exchange failed and `stop` otherwise.
fn otel_finish_reason(reason: Option<&str>, failed: bool) -> &str {
    match reason {
        Some("tool_calls" | "function_call" | "tool_use") => "tool_call",
        Some("max_tokens" | "MAX_TOKENS" | "max_output_tokens") => "length",
        Some("end_turn" | "STOP" | "stop_sequence") => "stop",
        Some(other) => other,
        None if failed => "error",
        None => "stop",
    }
}

/// A message in the GenAI parts format, the members of `m`. A tool message is the response to
/// a call: one `tool_call_response` part with its text.
fn parts_message(mut m: Composite<'_>, msg: &Message, finish_reason: Option<&str>) {
    let role = if msg.role.is_empty() {
        "user"
    } else {
        &msg.role
    };
    m.str("role", role);
    let mut parts = m.array_at("parts");
    if msg.role == "tool" {
        let mut part = parts.item_object();
        part.str("type", "tool_call_response");
        part.opt_str("id", msg.tool_call_id.as_deref());
        let texts = msg.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        });
        part.str_of("response", texts);
        part.close();
    } else {
        for p in &msg.parts {
            otel_part(parts.item_object(), p);
        }
    }
    parts.close();
    m.opt_str("name", msg.name.as_deref());
    m.opt_str("finish_reason", finish_reason);
    m.close();
}

/// One part in the GenAI parts format, the members of `m`.
fn otel_part(mut m: Composite<'_>, part: &Part) {
    match part {
        Part::Text(t) => {
            m.str("type", "text");
            m.str("content", t);
        }
        Part::Reasoning(t) => {
            m.str("type", "reasoning");
            m.str("content", t);
        }
        Part::ToolCall {
            id,
            name,
            arguments,
        } => {
            m.str("type", "tool_call");
            m.str("id", id);
            m.str("name", name);
            // Arguments that are JSON go as JSON, the rest as the text the model produced.
            match serde_json::from_slice::<Value>(arguments.as_bytes()) {
                Ok(v) => m.value("arguments", &v),
                Err(_) => m.str("arguments", arguments),
            }
        }
        Part::Uri { modality, uri } => {
            m.str("type", "uri");
            m.str("modality", modality);
            m.str("uri", uri);
        }
        Part::Other { kind, json } => {
            m.str("type", kind);
            m.str("content", json);
        }
    }
    m.close();
}
