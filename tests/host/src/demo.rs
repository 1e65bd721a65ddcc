//! The demo: the real filter in a local [`Gateway`] in front of the mock OpenAI upstream
//! ([`MockLlm`]), exporting to a local [`Collector`] that plays both Opik and Langfuse.
//!
//! Six requests go through the gateway over HTTP (plain and streamed chats, plain and streamed
//! tool calls, a stream without usage, an upstream error); then the exports are awaited and a
//! table shows, per request, what the client saw and what each backend received.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::collector::{Collector, CollectorOptions, Received, Sink};
use crate::fixtures::{Fixture, FIXTURE_HEADER};
use crate::gateway::Gateway;
use crate::http::{self, Request};
use crate::mock_llm::{MockLlm, CHUNK_DELAY_HEADER, SCENARIO_HEADER};
use crate::options::HostOptions;
use crate::personality::Personality;
use crate::WasmModule;

/// Langfuse keys the demo configures and the collector expects.
const LANGFUSE_KEYS: (&str, &str) = ("pk-lf-demo", "sk-lf-demo");
/// How long the demo waits for the exports after the last request.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of each client request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two SSE events of the mock's streams, so time to first token means something.
const STREAM_EVENT_DELAY_MS: &str = "15";

/// Demo settings.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// The gateway to emulate.
    pub personality: Personality,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            personality: Personality::Kong,
        }
    }
}

/// One request of the demo.
#[derive(Debug, Clone, Copy)]
struct Case {
    kind: &'static str,
    stream: bool,
    tools: bool,
    scenario: Option<&'static str>,
    prompt: &'static str,
    /// Replay this repository fixture (`<protocol>/<case>`) instead of an OpenAI chat request.
    fixture: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        kind: "chat",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "Say hello to the demo audience.",
        fixture: None,
    },
    Case {
        kind: "chat, streamed",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "Greet me, token by token.",
        fixture: None,
    },
    Case {
        kind: "tool call",
        stream: false,
        tools: true,
        scenario: Some("tool_calls"),
        prompt: "What is the weather in Paris?",
        fixture: None,
    },
    Case {
        kind: "tool call, streamed",
        stream: true,
        tools: true,
        scenario: Some("tool_calls"),
        prompt: "And what is the weather in Paris now?",
        fixture: None,
    },
    Case {
        kind: "stream, no usage",
        stream: true,
        tools: false,
        scenario: Some("no_usage"),
        prompt: "Stream without a usage chunk.",
        fixture: None,
    },
    Case {
        kind: "upstream error",
        stream: false,
        tools: false,
        scenario: Some("error_500"),
        prompt: "This one fails upstream.",
        fixture: None,
    },
    Case {
        kind: "completions, streamed",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("openai_completions/stream"),
    },
    Case {
        kind: "embeddings",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("openai_embeddings/basic"),
    },
    Case {
        kind: "responses, streamed",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("openai_responses/stream_tools"),
    },
    Case {
        kind: "anthropic, streamed",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("anthropic_messages/stream_text"),
    },
    Case {
        kind: "anthropic tool use",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("anthropic_messages/tool_use"),
    },
    Case {
        kind: "gemini, streamed",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("gemini/stream_text"),
    },
    Case {
        kind: "vertex ai",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("gemini/vertex_basic"),
    },
    Case {
        kind: "ollama chat, ndjson",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("ollama_chat/stream_tools"),
    },
    Case {
        kind: "ollama generate",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("ollama_generate/basic"),
    },
    Case {
        kind: "vllm generate",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("vllm_generate/basic"),
    },
    Case {
        kind: "chat, gzip",
        stream: false,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("openai_chat/gzip_json"),
    },
    Case {
        kind: "chat stream, brotli",
        stream: true,
        tools: false,
        scenario: None,
        prompt: "",
        fixture: Some("openai_chat/br_stream"),
    },
];

/// What the demo found for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoRow {
    /// What kind of request it was.
    pub kind: String,
    /// The session id sent (`x-session-id`), which finds its exports.
    pub session: String,
    /// The HTTP status the client saw (`None` when the request failed).
    pub status: Option<u16>,
    /// The model the exports name.
    pub model: Option<String>,
    /// Input tokens the exports report.
    pub input_tokens: Option<i64>,
    /// Output tokens the exports report.
    pub output_tokens: Option<i64>,
    /// Time to first token in milliseconds (streamed requests).
    pub ttft_ms: Option<f64>,
    /// Opik accepted a trace and a span for it.
    pub opik: bool,
    /// Langfuse accepted an OTLP span for it.
    pub langfuse: bool,
    /// Every payload that carried it met the specs (`None` when not validating).
    pub valid: Option<bool>,
}

/// The outcome of a demo run.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// One row per request.
    pub rows: Vec<DemoRow>,
    /// Why payloads were not validated, when they were not.
    pub validation_unavailable: Option<String>,
    /// Every request reached both backends and every payload was valid.
    pub success: bool,
}

/// Runs the demo, writing the human-readable report to `out`.
///
/// # Errors
/// When the filter is not built or cannot start, a local server cannot start, or `out` fails.
/// A failed check is not an error: see [`DemoReport::success`].
pub fn run(options: DemoOptions, out: &mut dyn Write) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    let module = WasmModule::default_build().context("loading the filter")?;
    let mock = MockLlm::try_start().context("starting the mock OpenAI upstream")?;
    let (mut collector_options, validation_unavailable) = match CollectorOptions::validating() {
        Ok(o) => (o, None),
        Err(e) => (CollectorOptions::default(), Some(e.to_string())),
    };
    collector_options.langfuse_keys = Some((LANGFUSE_KEYS.0.into(), LANGFUSE_KEYS.1.into()));
    let collector = Collector::try_start(collector_options).context("starting the collector")?;

    let p = options.personality;
    let (opik_upstream, langfuse_upstream) = match p {
        Personality::Kong => (collector.addr().to_string(), collector.addr().to_string()),
        Personality::Envoy => ("opik".to_string(), "langfuse".to_string()),
    };
    let config = json!({
        "flush_interval_ms": 100,
        "retry": {"max_attempts": 3, "initial_backoff_ms": 100, "max_backoff_ms": 500},
        "opik": {
            "endpoint": collector.opik_base_url(),
            "upstream": opik_upstream,
            "project_name": "demo",
            "timeout_ms": 2000
        },
        "langfuse": {
            "endpoint": collector.langfuse_base_url(),
            "upstream": langfuse_upstream,
            "public_key": LANGFUSE_KEYS.0,
            "secret_key": LANGFUSE_KEYS.1,
            "timeout_ms": 2000
        }
    });
    let host_options = HostOptions::new(p, config.to_string())
        .with_cluster("opik", collector.addr())
        .with_cluster("langfuse", collector.addr());
    let mut gateway =
        Gateway::start(&module, host_options, mock.addr()).context("starting the gateway")?;

    let gateway_name = match p {
        Personality::Kong => "Kong (ngx_wasm_module)",
        Personality::Envoy => "Envoy (envoy.filters.http.wasm)",
    };
    writeln!(
        out,
        "llm-tracer demo: the filter in an emulated {gateway_name} gateway"
    )?;
    let module_path = module
        .path()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    writeln!(
        out,
        "  filter     {}",
        module_path.map_or_else(|| "(in memory)".to_string(), |p| p.display().to_string())
    )?;
    writeln!(out, "  gateway    {}", gateway.base_url())?;
    writeln!(out, "  upstream   {} (mock OpenAI)", mock.base_url())?;
    writeln!(
        out,
        "  collector  {} (Opik REST at /api, Langfuse OTLP at /api/public/otel)",
        collector.langfuse_base_url()
    )?;
    match &validation_unavailable {
        None => writeln!(
            out,
            "  payloads   validated against the published Opik / OTLP / GenAI specs"
        )?,
        Some(why) => {
            writeln!(out, "  payloads   NOT VALIDATED: the specs were not found")?;
            writeln!(out, "             ({why})")?;
        }
    }
    writeln!(out)?;

    let mut statuses = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let session = format!("demo-session-{}", i + 1);
        let req = request(case, &session)?;
        statuses.push(http::send(gateway.addr(), &req, REQUEST_TIMEOUT).map(|r| r.status));
    }
    let settled = gateway.settle(SETTLE_TIMEOUT)?;
    let metrics = gateway.with_host(export_metrics)?;
    gateway.stop();

    let received = collector.received();
    let validating = validation_unavailable.is_none();
    let rows: Vec<DemoRow> = CASES
        .iter()
        .zip(&statuses)
        .enumerate()
        .map(|(i, (case, status))| {
            let session = format!("demo-session-{}", i + 1);
            let status = status.as_ref().ok().copied();
            row(case, session, status, &collector, &received, validating)
        })
        .collect();

    write_table(out, &rows)?;
    writeln!(out)?;
    for (case, status) in CASES.iter().zip(&statuses) {
        if let Err(e) = status {
            writeln!(out, "  request {:?} failed: {e}", case.kind)?;
        }
    }
    write_totals(out, &collector, &received, validating)?;
    writeln!(out)?;
    write_metrics(out, &metrics, p)?;
    writeln!(out)?;

    let violations = received.iter().any(|r| !r.violations.is_empty());
    let rejected = received.iter().any(|r| !r.accepted());
    let all_traced = rows.iter().all(|r| r.opik && r.langfuse);
    let success = all_traced && !violations && !rejected && statuses.iter().all(Result::is_ok);
    if !settled {
        writeln!(out, "The exports did not settle within {SETTLE_TIMEOUT:?}.")?;
    }
    if let Some(why) = &validation_unavailable {
        writeln!(out, "Note: payloads were not validated ({why}).")?;
    }
    writeln!(
        out,
        "{} in {:.1} s",
        if success && validation_unavailable.is_some() {
            "OK: every request was traced at both backends (payloads NOT validated)"
        } else if success {
            "OK: every request was traced at both backends"
        } else {
            "FAILED: a request lacks a trace, or a payload was rejected or invalid"
        },
        started.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    collector.stop();
    mock.stop();
    Ok(DemoReport {
        rows,
        validation_unavailable,
        success,
    })
}

/// The HTTP request of a case.
fn request(case: &Case, session: &str) -> anyhow::Result<Request> {
    if let Some(id) = case.fixture {
        return fixture_request(id, session);
    }
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": case.prompt}
        ],
        "temperature": 0.2
    });
    if case.stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    if case.tools {
        body["tools"] = json!([{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a location",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": {"type": "string"},
                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                    },
                    "required": ["location"]
                }
            }
        }]);
    }
    let mut req = Request::new("POST", "/v1/chat/completions");
    req.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("authorization".into(), "Bearer sk-demo-client-key".into()),
        ("x-user-id".into(), "demo-user".into()),
        ("x-session-id".into(), session.into()),
    ];
    if let Some(scenario) = case.scenario {
        req.headers.push((SCENARIO_HEADER.into(), scenario.into()));
    }
    if case.stream {
        req.headers
            .push((CHUNK_DELAY_HEADER.into(), STREAM_EVENT_DELAY_MS.into()));
    }
    req.body = body.to_string().into_bytes();
    Ok(req)
}

/// A recorded request of another API family, which the mock answers with the recording.
fn fixture_request(id: &str, session: &str) -> anyhow::Result<Request> {
    let fixture = Fixture::load(id).with_context(|| format!("loading fixture {id}"))?;
    let mut req = Request::new("POST", &fixture.path);
    req.headers = vec![
        ("host".into(), fixture.authority.clone()),
        ("content-type".into(), "application/json".into()),
        ("x-user-id".into(), "demo-user".into()),
        ("x-session-id".into(), session.into()),
        (FIXTURE_HEADER.into(), id.into()),
        (CHUNK_DELAY_HEADER.into(), STREAM_EVENT_DELAY_MS.into()),
    ];
    req.body = fixture.request;
    Ok(req)
}

/// The value of OTLP attribute `key` of a span.
fn otlp_attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span.get("attributes")?
        .as_array()?
        .iter()
        .find(|kv| kv.get("key").and_then(Value::as_str) == Some(key))
        .and_then(|kv| kv.get("value"))
}

fn otlp_int(span: &Value, key: &str) -> Option<i64> {
    let v = otlp_attr(span, key)?.get("intValue")?;
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

fn row(
    case: &Case,
    session: String,
    status: Option<u16>,
    collector: &Collector,
    received: &[Received],
    validating: bool,
) -> DemoRow {
    let trace = collector
        .opik_traces()
        .into_iter()
        .find(|t| t.get("thread_id").and_then(Value::as_str) == Some(&session));
    let span = collector
        .opik_spans()
        .into_iter()
        .find(|s| s.pointer("/metadata/session_id").and_then(Value::as_str) == Some(&session));
    let otlp = collector.otlp_spans().into_iter().find(|s| {
        otlp_attr(s, "session.id")
            .and_then(|v| v.get("stringValue"))
            .and_then(Value::as_str)
            == Some(&session)
    });
    let model = span
        .as_ref()
        .and_then(|s| s.get("model")?.as_str().map(str::to_string))
        .or_else(|| {
            let v = otlp_attr(otlp.as_ref()?, "gen_ai.response.model")?;
            v.get("stringValue")?.as_str().map(str::to_string)
        });
    let usage = |opik_key: &str, otlp_key: &str| {
        span.as_ref()
            .and_then(|s| s.get("usage")?.get(opik_key)?.as_i64())
            .or_else(|| otlp_int(otlp.as_ref()?, otlp_key))
    };
    let ttft_ms = span
        .as_ref()
        .and_then(|s| s.get("ttft")?.as_f64())
        .filter(|_| case.stream);
    let quoted = format!("\"{session}\"");
    let carriers: Vec<&Received> = received
        .iter()
        .filter(|r| r.body.to_string().contains(&quoted))
        .collect();
    let valid = validating
        .then(|| !carriers.is_empty() && carriers.iter().all(|r| r.violations.is_empty()));
    DemoRow {
        kind: case.kind.to_string(),
        session,
        status,
        model,
        input_tokens: usage("prompt_tokens", "gen_ai.usage.input_tokens"),
        output_tokens: usage("completion_tokens", "gen_ai.usage.output_tokens"),
        ttft_ms,
        opik: trace.is_some() && span.is_some(),
        langfuse: otlp.is_some(),
        valid,
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_string(), |v| v.to_string())
}

fn write_table(out: &mut dyn Write, rows: &[DemoRow]) -> std::io::Result<()> {
    let header = [
        "request", "status", "model", "in tok", "out tok", "TTFT ms", "Opik", "Langfuse", "schema",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.clone(),
                or_dash(r.status),
                or_dash(r.model.clone()),
                or_dash(r.input_tokens),
                or_dash(r.output_tokens),
                or_dash(r.ttft_ms.map(|t| format!("{t:.1}"))),
                mark(r.opik).to_string(),
                mark(r.langfuse).to_string(),
                r.valid
                    .map_or_else(|| "n/a".to_string(), |v| mark(v).to_string()),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Text columns left-aligned, numbers and marks right-aligned / centred by padding.
    let line = |cols: &[String]| {
        let mut s = String::from(" ");
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            if i == 0 || i == 2 {
                s.push_str(&format!(" {c}{} ", " ".repeat(pad)));
            } else {
                s.push_str(&format!(" {}{c} ", " ".repeat(pad)));
            }
        }
        s.trim_end().to_string()
    };
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    writeln!(out, "{}", line(&head))?;
    let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    writeln!(out, "{}", line(&rule))?;
    for row in &cells {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

fn write_totals(
    out: &mut dyn Write,
    collector: &Collector,
    received: &[Received],
    validating: bool,
) -> std::io::Result<()> {
    let answered = |sink: Sink| {
        let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
        for r in received.iter().filter(|r| r.sink == sink) {
            *by_status.entry(r.status_answered).or_default() += 1;
        }
        let n: usize = by_status.values().sum();
        let list: Vec<String> = by_status.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        (n, list.join(", "))
    };
    let (opik_n, opik_answers) = answered(Sink::Opik);
    let (lf_n, lf_answers) = answered(Sink::Langfuse);
    writeln!(out, "Backends received:")?;
    let traces = collector.opik_traces();
    let mut projects: Vec<String> = traces
        .iter()
        .map(|t| {
            t.get("project_name")
                .and_then(Value::as_str)
                .map_or_else(|| "(default)".to_string(), |p| format!("{p:?}"))
        })
        .collect();
    projects.sort();
    projects.dedup();
    writeln!(
        out,
        "  Opik      {opik_n} batch requests ({opik_answers}): {} traces, {} spans, project {}",
        traces.len(),
        collector.opik_spans().len(),
        projects.join(", ")
    )?;
    writeln!(
        out,
        "  Langfuse  {lf_n} OTLP exports ({lf_answers}): {} spans",
        collector.otlp_spans().len()
    )?;
    let unknown = received.iter().filter(|r| r.sink == Sink::Unknown).count();
    if unknown > 0 {
        writeln!(out, "  other     {unknown} requests to unknown paths")?;
    }
    if validating {
        let violations: usize = received.iter().map(|r| r.violations.len()).sum();
        writeln!(out, "  schema    {violations} violations")?;
        for r in received.iter().filter(|r| !r.violations.is_empty()) {
            for v in &r.violations {
                writeln!(out, "    {} {}: {v}", r.method, r.path)?;
            }
        }
    }
    Ok(())
}

/// Sinks whose metrics the demo shows.
const SINKS: [&str; 2] = ["opik", "langfuse"];
/// Per-sink metrics shown, by suffix, with their column titles.
const SINK_COLUMNS: [(&str, &str); 5] = [
    ("sent_records_total", "sent"),
    ("retries_total", "retries"),
    ("dropped_records_total", "dropped"),
    ("rejected_records_total", "rejected"),
    ("queue_records", "queued"),
];

/// The filter's metrics the demo shows, by short name.
#[derive(Debug, Clone, Default)]
struct FilterMetrics {
    traced: Option<i64>,
    errors: Option<i64>,
    /// Per sink, the values of [`SINK_COLUMNS`].
    sinks: Vec<(&'static str, [Option<i64>; 5])>,
    /// How the host names them, e.g. `pw:llm_tracer:<name>`.
    example_name: Option<String>,
}

fn export_metrics(host: &mut crate::Host) -> FilterMetrics {
    FilterMetrics {
        traced: host.metric_total("llm_tracer_requests_total"),
        errors: host.metric_total("llm_tracer_errors_total"),
        sinks: SINKS
            .iter()
            .map(|sink| {
                let values = SINK_COLUMNS.map(|(suffix, _)| {
                    host.metric(&format!("llm_tracer_export_{suffix}_sink={sink}"))
                });
                (*sink, values)
            })
            .collect(),
        example_name: host
            .metrics()
            .into_keys()
            .find(|k| k.contains("llm_tracer_export_sent_records_total")),
    }
}

fn write_metrics(
    out: &mut dyn Write,
    m: &FilterMetrics,
    personality: Personality,
) -> std::io::Result<()> {
    let naming = m
        .example_name
        .as_deref()
        .map(|n| match n.find("llm_tracer_") {
            Some(at) => format!("{}<name>", &n[..at]),
            None => n.to_string(),
        })
        .unwrap_or_else(|| "none defined".to_string());
    writeln!(
        out,
        "Filter metrics (as {personality} stores them: {naming}):"
    )?;
    writeln!(
        out,
        "  traced exchanges {}, of which errors {}",
        or_dash(m.traced),
        or_dash(m.errors)
    )?;
    let mut head = format!("  {:<10}", "export");
    for (_, title) in SINK_COLUMNS {
        head.push_str(&format!("{title:>10}"));
    }
    writeln!(out, "{head}")?;
    for (sink, values) in &m.sinks {
        let mut line = format!("  {sink:<10}");
        for v in values {
            line.push_str(&format!("{:>10}", or_dash(*v)));
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
