//! OTLP/HTTP JSON trace export with the OpenTelemetry GenAI semantic conventions (v1.41:
//! `gen_ai.*`, messages in the parts-based JSON of `gen-ai-input-messages.json` /
//! `gen-ai-output-messages.json`, sent as JSON strings): one CLIENT span per exchange. OTLP/JSON
//! rules: lowercase hex ids, enums as integers, int64 as decimal strings.
//!
//! Two flavours share the encoder: the generic [`OtlpSink`] (any OTLP collector: Jaeger, Tempo,
//! Phoenix, Datadog, Honeycomb, an OpenTelemetry Collector) sends the semantic conventions
//! only, with message content when configured; the Langfuse sink adds the `langfuse.*`
//! attributes that pin trace name, tags, usage, cost and completion start.

use super::{cost_details, extra_metadata, split_authority, trace_tags, OutboundRequest, Sink};
use crate::config::{Endpoint, OtlpConfig};
use crate::ids::hex;
use crate::record::{Message, Part, TraceRecord};
use crate::timestamp::iso8601;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::borrow::Cow;
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
    // Serializing cannot fail: keys are strings and no impl here returns an error.
    serde_json::to_vec(&Export(records, flavor)).unwrap_or_default()
}

struct Export<'a>(&'a [Rc<TraceRecord>], &'a Flavor<'a>);

impl Serialize for Export<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut attributes = vec![Kv::new("service.name", Any::Str(SCOPE))];
        for (k, v) in self.1.resource {
            if k != "service.name" {
                attributes.push(Kv::new(k.as_str(), Any::Str(v)));
            } else {
                attributes[0] = Kv::new("service.name", Any::Str(v));
            }
        }
        let resource = Resource { attributes };
        let scope_spans = [ScopeSpans {
            scope: Scope {
                name: SCOPE,
                version: env!("CARGO_PKG_VERSION"),
            },
            spans: Spans(self.0, self.1),
        }];
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(
            "resourceSpans",
            &[ResourceSpans {
                resource,
                scope_spans,
            }],
        )?;
        m.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<Kv<'a>>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Spans<'a>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

struct Spans<'a>(&'a [Rc<TraceRecord>], &'a Flavor<'a>);

impl Serialize for Spans<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0 {
            seq.serialize_element(&span(r, self.1))?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_state: Option<&'a str>,
    name: String,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<Kv<'a>>,
    status: Status<'a>,
}

#[derive(Serialize)]
struct Status<'a> {
    code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

/// An OTLP `KeyValue`.
#[derive(Serialize)]
struct Kv<'a> {
    key: Cow<'a, str>,
    value: Any<'a>,
}

impl<'a> Kv<'a> {
    fn new(key: impl Into<Cow<'a, str>>, value: Any<'a>) -> Self {
        Kv {
            key: key.into(),
            value,
        }
    }
}

/// An OTLP `AnyValue`; int64 goes out as a decimal string, per OTLP/JSON.
enum Any<'a> {
    Str(&'a str),
    Owned(String),
    Int(u64),
    Double(f64),
    Bool(bool),
    StrArray(Vec<&'a str>),
    /// A JSON value: strings, numbers and booleans as themselves, anything else as JSON text.
    Json(Value),
}

impl Serialize for Any<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Any::Str(v) => m.serialize_entry("stringValue", v)?,
            Any::Owned(v) => m.serialize_entry("stringValue", v)?,
            Any::Int(v) => m.serialize_entry("intValue", &v.to_string())?,
            Any::Double(v) => m.serialize_entry("doubleValue", v)?,
            Any::Bool(v) => m.serialize_entry("boolValue", v)?,
            Any::Json(Value::String(v)) => m.serialize_entry("stringValue", v)?,
            Any::Json(Value::Bool(v)) => m.serialize_entry("boolValue", v)?,
            Any::Json(Value::Number(n)) => match n.as_u64() {
                Some(i) => m.serialize_entry("intValue", &i.to_string())?,
                None => m.serialize_entry("doubleValue", &n.as_f64().unwrap_or(0.0))?,
            },
            Any::Json(other) => m.serialize_entry("stringValue", &other.to_string())?,
            Any::StrArray(values) => {
                let values: Vec<_> = values.iter().map(|v| Any::Str(v)).collect();
                m.serialize_entry("arrayValue", &ArrayValue { values })?
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct ArrayValue<'a> {
    values: Vec<Any<'a>>,
}

fn span<'a>(r: &'a TraceRecord, flavor: &Flavor<'_>) -> Span<'a> {
    let error_message = r.error.as_ref().map(|e| {
        if e.message.is_empty() {
            e.kind.as_str()
        } else {
            e.message.as_str()
        }
    });
    let parent = r.context.parent.as_ref();
    Span {
        trace_id: hex(&r.trace_id),
        span_id: hex(&r.span_id),
        parent_span_id: parent.map(|p| hex(&p.span_id)),
        trace_state: parent.and_then(|p| p.tracestate.as_deref()),
        name: super::opik::span_name(r),
        kind: 3,
        start_time_unix_nano: r.start_ns.to_string(),
        end_time_unix_nano: r.end_ns.max(r.start_ns).to_string(),
        attributes: attributes(r, error_message, flavor),
        status: Status {
            code: if r.error.is_some() { 2 } else { 1 },
            message: error_message,
        },
    }
}

fn attributes<'a>(
    r: &'a TraceRecord,
    error_message: Option<&'a str>,
    flavor: &Flavor<'_>,
) -> Vec<Kv<'a>> {
    let mut a = genai_attributes(r, flavor.content);
    if flavor.langfuse {
        // Deprecated, but still what Opik's and older collectors' mappers read.
        a.push(Kv::new("gen_ai.system", Any::Str(&r.provider)));
        langfuse_attributes(r, error_message, &mut a);
    }
    a
}

/// The GenAI semantic-convention attributes (and the HTTP and error ones they sit with).
fn genai_attributes<'a>(r: &'a TraceRecord, content: bool) -> Vec<Kv<'a>> {
    let p = &r.params;
    let mut a = Vec::with_capacity(32);
    a.push(Kv::new("gen_ai.operation.name", Any::Str(r.operation)));
    a.push(Kv::new("gen_ai.provider.name", Any::Str(&r.provider)));
    let mut push_str = |key, value: &'a Option<String>| {
        if let Some(v) = value {
            a.push(Kv::new(key, Any::Str(v)));
        }
    };
    push_str("gen_ai.request.model", &r.request_model);
    push_str("gen_ai.response.model", &r.response_model);
    push_str("gen_ai.response.id", &r.response_id);
    let ctx = &r.context;
    push_str("gen_ai.conversation.id", &ctx.session);
    push_str("session.id", &ctx.session);
    push_str("user.id", &ctx.user);
    push_str(
        "gen_ai.openai.response.system_fingerprint",
        &r.system_fingerprint,
    );
    let doubles = [
        ("gen_ai.request.temperature", p.temperature),
        ("gen_ai.request.top_p", p.top_p),
        ("gen_ai.request.frequency_penalty", p.frequency_penalty),
        ("gen_ai.request.presence_penalty", p.presence_penalty),
    ];
    for (key, value) in doubles {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            a.push(Kv::new(key, Any::Double(v)));
        }
    }
    if let Some(v) = p.max_completion_tokens.or(p.max_tokens) {
        a.push(Kv::new("gen_ai.request.max_tokens", Any::Int(v)));
    }
    if let Some(seed) = p.seed.and_then(|s| u64::try_from(s).ok()) {
        a.push(Kv::new("gen_ai.request.seed", Any::Int(seed)));
    }
    if let Some(n) = p.n.filter(|&n| n != 1) {
        a.push(Kv::new("gen_ai.request.choice.count", Any::Int(n)));
    }
    if !p.stop.is_empty() {
        let stops = p.stop.iter().map(String::as_str).collect();
        a.push(Kv::new(
            "gen_ai.request.stop_sequences",
            Any::StrArray(stops),
        ));
    }
    if p.stream {
        a.push(Kv::new("gen_ai.request.stream", Any::Bool(true)));
    }
    let reasons = r.finish_reasons();
    if !reasons.is_empty() {
        a.push(Kv::new(
            "gen_ai.response.finish_reasons",
            Any::StrArray(reasons),
        ));
    }
    usage_attributes(r, &mut a);
    if let Some(ttft) = r.ttft_ms() {
        a.push(Kv::new(
            "gen_ai.response.time_to_first_chunk",
            Any::Double(ttft / 1000.0),
        ));
    }

    if let Some(addr) = &r.server_address {
        let (host, port) = split_authority(addr, true);
        a.push(Kv::new("server.address", Any::Str(host)));
        a.push(Kv::new("server.port", Any::Int(u64::from(port))));
    }
    if content && !r.messages.is_empty() {
        a.push(Kv::new(
            "gen_ai.input.messages",
            Any::Owned(input_messages(r)),
        ));
    }
    if content && !r.choices.is_empty() {
        a.push(Kv::new(
            "gen_ai.output.messages",
            Any::Owned(output_messages(r)),
        ));
    }
    a.push(Kv::new("url.path", Any::Str(&r.path)));
    if let Some(status) = r.status {
        a.push(Kv::new(
            "http.response.status_code",
            Any::Int(u64::from(status)),
        ));
    }
    if let Some(e) = &r.error {
        a.push(Kv::new("error.type", Any::Str(&e.kind)));
    }
    a
}

/// The `langfuse.*` attributes, the record's own flags and its metadata.
fn langfuse_attributes<'a>(
    r: &'a TraceRecord,
    error_message: Option<&'a str>,
    a: &mut Vec<Kv<'a>>,
) {
    let ctx = &r.context;
    if let Some(release) = &ctx.release {
        a.push(Kv::new("langfuse.release", Any::Str(release)));
    }
    if let Some(environment) = &ctx.environment {
        a.push(Kv::new("langfuse.environment", Any::Str(environment)));
    }
    if let Some(first) = r.first_token_ns {
        a.push(Kv::new(
            "langfuse.observation.completion_start_time",
            Any::Owned(iso8601(first)),
        ));
    }
    usage_details(r, a);
    if let Some(n) = r.embedding_count {
        a.push(Kv::new("llm_tracer.embedding.count", Any::Int(n)));
    }
    let observation = if r.operation == "embeddings" {
        "embedding"
    } else {
        "generation"
    };
    a.push(Kv::new("langfuse.observation.type", Any::Str(observation)));
    let trace_name = ctx.trace_name.as_deref().unwrap_or(r.api);
    a.push(Kv::new("langfuse.trace.name", Any::Str(trace_name)));
    let tags = trace_tags(&r.provider, &ctx.tags);
    a.push(Kv::new("langfuse.trace.tags", Any::StrArray(tags)));
    if let Some(cost) = &r.cost {
        a.push(Kv::new(
            "langfuse.observation.cost_details",
            Any::Owned(cost_details(cost).to_string()),
        ));
        a.push(Kv::new("gen_ai.usage.cost", Any::Double(cost.total)));
    }
    if r.error.is_some() {
        a.push(Kv::new("langfuse.observation.level", Any::Str("ERROR")));
        if let Some(msg) = error_message {
            a.push(Kv::new(
                "langfuse.observation.status_message",
                Any::Str(msg),
            ));
        }
    }
    if r.incomplete {
        a.push(Kv::new("llm_tracer.incomplete", Any::Bool(true)));
    }
    if r.truncated {
        a.push(Kv::new("llm_tracer.truncated", Any::Bool(true)));
    }
    for (key, value) in extra_metadata(r, &[]) {
        a.push(Kv::new(
            format!("langfuse.trace.metadata.{key}"),
            Any::Json(value),
        ));
    }
}

fn usage_attributes<'a>(r: &'a TraceRecord, a: &mut Vec<Kv<'a>>) {
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
            a.push(Kv::new(key, Any::Int(v)));
        }
    }
}

/// Langfuse's `usage_details`, which its own token accounting reads.
fn usage_details<'a>(r: &'a TraceRecord, a: &mut Vec<Kv<'a>>) {
    let u = &r.usage;
    if u.is_empty() {
        return;
    }
    // Langfuse's usage_details: `input` excludes cache reads and writes and `output` excludes
    // reasoning tokens, which get keys of their own; `total` is the grand total.
    let mut details = serde_json::Map::new();
    let cached = u.cached_input.unwrap_or(0) + u.cache_creation.unwrap_or(0);
    let reasoning = u.reasoning.unwrap_or(0);
    if let Some(i) = u.input {
        details.insert("input".into(), i.saturating_sub(cached).into());
    }
    if let Some(c) = u.cached_input {
        details.insert("input_cached_tokens".into(), c.into());
    }
    if let Some(c) = u.cache_creation {
        details.insert("input_cache_creation".into(), c.into());
    }
    if let Some(o) = u.output {
        details.insert("output".into(), o.saturating_sub(reasoning).into());
    }
    if let Some(rt) = u.reasoning {
        details.insert("output_reasoning_tokens".into(), rt.into());
    }
    if let Some(t) = u.total() {
        details.insert("total".into(), t.into());
    }
    a.push(Kv::new(
        "langfuse.observation.usage_details",
        Any::Owned(serde_json::Value::Object(details).to_string()),
    ));
}

fn input_messages(r: &TraceRecord) -> String {
    let messages: Vec<_> = r
        .messages
        .iter()
        .map(|m| PartsMessage {
            message: m,
            finish_reason: None,
        })
        .collect();
    serde_json::to_string(&messages).unwrap_or_else(|_| "[]".into())
}

fn output_messages(r: &TraceRecord) -> String {
    let messages: Vec<_> = r
        .choices
        .iter()
        .map(|c| PartsMessage {
            message: &c.message,
            finish_reason: Some(otel_finish_reason(
                c.finish_reason.as_deref(),
                r.error.is_some(),
            )),
        })
        .collect();
    serde_json::to_string(&messages).unwrap_or_else(|_| "[]".into())
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

/// A message in the GenAI parts format.
struct PartsMessage<'a> {
    message: &'a Message,
    finish_reason: Option<&'a str>,
}

impl Serialize for PartsMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let msg = self.message;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(
            "role",
            if msg.role.is_empty() {
                "user"
            } else {
                &msg.role
            },
        )?;
        let mut parts: Vec<OtelPart<'_>> = msg.parts.iter().map(OtelPart::Part).collect();
        if msg.role == "tool" {
            // A tool message is the response to a call: one tool_call_response part.
            parts = vec![OtelPart::ToolResponse {
                id: msg.tool_call_id.as_deref(),
                response: msg.text().unwrap_or_default(),
            }];
        }
        m.serialize_entry("parts", &parts)?;
        if let Some(name) = &msg.name {
            m.serialize_entry("name", name)?;
        }
        if let Some(reason) = self.finish_reason {
            m.serialize_entry("finish_reason", reason)?;
        }
        m.end()
    }
}

enum OtelPart<'a> {
    Part(&'a Part),
    ToolResponse {
        id: Option<&'a str>,
        response: String,
    },
}

impl Serialize for OtelPart<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            OtelPart::Part(Part::Text(t)) => {
                m.serialize_entry("type", "text")?;
                m.serialize_entry("content", t)?;
            }
            OtelPart::Part(Part::Reasoning(t)) => {
                m.serialize_entry("type", "reasoning")?;
                m.serialize_entry("content", t)?;
            }
            OtelPart::Part(Part::ToolCall {
                id,
                name,
                arguments,
            }) => {
                m.serialize_entry("type", "tool_call")?;
                m.serialize_entry("id", id)?;
                m.serialize_entry("name", name)?;
                match serde_json::from_slice::<serde_json::Value>(arguments.as_bytes()) {
                    Ok(v) => m.serialize_entry("arguments", &v)?,
                    Err(_) => m.serialize_entry("arguments", arguments)?,
                }
            }
            OtelPart::Part(Part::Uri { modality, uri }) => {
                m.serialize_entry("type", "uri")?;
                m.serialize_entry("modality", modality)?;
                m.serialize_entry("uri", uri)?;
            }
            OtelPart::Part(Part::Other { kind, json }) => {
                m.serialize_entry("type", kind)?;
                m.serialize_entry("content", json)?;
            }
            OtelPart::ToolResponse { id, response } => {
                m.serialize_entry("type", "tool_call_response")?;
                if let Some(id) = id {
                    m.serialize_entry("id", id)?;
                }
                m.serialize_entry("response", response)?;
            }
        }
        m.end()
    }
}
