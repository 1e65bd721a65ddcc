//! What the benchmarks share: the workloads, the modules under test, a host whose guest
//! callbacks are timed, and the statistics they report.
//!
//! Each bench binary uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use llm_tracer_host::instrument::{GuestClock, GuestTime};
use llm_tracer_host::mock_llm::{chat_completion_json, chat_completion_sse, MockReply};
use llm_tracer_host::{Chunking, Host, HostError, HostOptions, Personality, WasmModule};
use serde_json::{json, Value};

/// Environment variable naming the baseline module; by default, where `make bench` puts it.
pub const NAIVE_WASM_ENV: &str = "LLM_TRACER_NAIVE_WASM";
/// Where `make bench` puts the baseline module, from the workspace root.
pub const NAIVE_WASM_DEFAULT: &str = "target/bench/naive_llm_filter.wasm";
/// Environment variable scaling every iteration count (e.g. `0.2` for a quick look).
pub const SCALE_ENV: &str = "BENCH_SCALE";
/// Environment variable with a JSON object merged into the filter configuration of the
/// per-exchange benches (e.g. `{"metrics": false}`), to see what a setting costs.
pub const CONFIG_ENV: &str = "BENCH_FILTER_CONFIG";
/// Environment variable restricting the per-exchange workloads to those whose name contains
/// one of its comma-separated words (e.g. `chat,1 MB`).
pub const WORKLOADS_ENV: &str = "BENCH_WORKLOADS";

/// The model every workload names.
pub const MODEL: &str = "gpt-4o-mini";
/// The model the responses report.
pub const SERVED_MODEL: &str = "gpt-4o-mini-2024-07-18";

/// How long and how hard a bench runs.
#[derive(Debug, Clone, Copy)]
pub struct Effort {
    /// Multiplies every iteration count and duration.
    pub scale: f64,
    /// A smoke run (`cargo test --benches`): a few iterations, to show the benches still work.
    pub smoke: bool,
}

impl Effort {
    /// `cargo bench` passes `--bench`; anything else (`cargo test --benches`) is a smoke run.
    /// [`SCALE_ENV`] scales a real run.
    pub fn from_env() -> Self {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let scale = std::env::var(SCALE_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0);
        Effort { scale, smoke }
    }

    /// `n` scaled, at least 1; 2 in a smoke run.
    pub fn iters(&self, n: usize) -> usize {
        if self.smoke {
            return 2.min(n.max(1));
        }
        let scaled = (n as f64 * self.scale).round();
        if scaled < 1.0 {
            1
        } else {
            scaled as usize
        }
    }

    /// `d` scaled; 200 ms in a smoke run.
    pub fn duration(&self, d: Duration) -> Duration {
        if self.smoke {
            return Duration::from_millis(200);
        }
        d.mul_f64(self.scale)
    }
}

/// Median, 95th percentile, mean and extremes of a set of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Smallest sample.
    pub min: Duration,
    /// Median (the lower middle sample for an even count).
    pub median: Duration,
    /// 95th percentile (nearest rank).
    pub p95: Duration,
    /// Largest sample.
    pub max: Duration,
    /// Arithmetic mean.
    pub mean: Duration,
}

impl Stats {
    /// Statistics of `samples` (all zero when empty).
    pub fn of(samples: &[Duration]) -> Stats {
        if samples.is_empty() {
            return Stats::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len();
        let rank = |p: usize| sorted[((n * p).div_ceil(100)).clamp(1, n) - 1];
        let total: Duration = sorted.iter().sum();
        Stats {
            n,
            min: sorted[0],
            median: sorted[(n - 1) / 2],
            p95: rank(95),
            max: sorted[n - 1],
            mean: total / u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

/// Microseconds with one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    if d.is_zero() {
        return 0.0;
    }
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// One request/response exchange to push through a filter.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Short name used in the reports.
    pub name: &'static str,
    /// What it stands for.
    pub description: String,
    /// Request headers, pseudo-headers included.
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: Vec<u8>,
    /// How the request body arrives.
    pub request_chunking: Chunking,
    /// Response headers, `:status` included.
    pub response_headers: Vec<(String, String)>,
    /// The response body as the chunks the gateway delivers.
    pub response_chunks: Vec<Vec<u8>>,
    /// Whether the response is an event stream.
    pub streamed: bool,
}

impl Workload {
    /// The whole response body.
    pub fn response_body(&self) -> Vec<u8> {
        self.response_chunks.concat()
    }

    /// Bytes of the response body.
    pub fn response_len(&self) -> usize {
        self.response_chunks.iter().map(Vec::len).sum()
    }
}

/// Deterministic filler prose of exactly `len` ASCII bytes.
pub fn prose(len: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "gateway", "forwards", "every", "request", "to", "a", "model", "which", "answers",
        "with", "tokens", "streamed", "back", "in", "order",
    ];
    let mut out = String::with_capacity(len + 16);
    let mut i = 0usize;
    while out.len() < len {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[(i * 7 + i / 16) % WORDS.len()]);
        i += 1;
    }
    out.truncate(len);
    out
}

/// `body` as JSON with the string at `pointer` padded so the whole document is `total` bytes
/// (when it is not already longer).
fn padded(mut body: Value, pointer: &str, total: usize) -> Vec<u8> {
    let base = body.to_string().len();
    if let Some(slot) = body.pointer_mut(pointer) {
        *slot = Value::String(prose(total.saturating_sub(base)));
    }
    body.to_string().into_bytes()
}

fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn request_headers(body_len: usize) -> Vec<(String, String)> {
    let mut h = strings(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "api.openai.com"),
        (":scheme", "https"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("authorization", "Bearer sk-bench-0000000000000000"),
        ("user-agent", "OpenAI/Python 1.99.0"),
        ("x-user-id", "user-bench"),
        ("x-session-id", "session-bench"),
    ]);
    h.push(("content-length".into(), body_len.to_string()));
    h
}

fn json_response_headers(len: usize) -> Vec<(String, String)> {
    let mut h = strings(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("x-request-id", "req_bench_1"),
        ("openai-processing-ms", "812"),
    ]);
    h.push(("content-length".into(), len.to_string()));
    h
}

fn stream_response_headers() -> Vec<(String, String)> {
    strings(&[
        (":status", "200"),
        ("content-type", "text/event-stream; charset=utf-8"),
        ("x-request-id", "req_bench_1"),
        ("openai-processing-ms", "95"),
    ])
}

/// A `chat.completion` body of about `len` bytes.
fn completion_of(len: usize) -> Vec<u8> {
    let empty = chat_completion_json(&MockReply::text(SERVED_MODEL, "")).len();
    let content = prose(len.saturating_sub(empty));
    chat_completion_json(&MockReply::text(SERVED_MODEL, &content))
}

/// 8 KB request, 4 KB response, not streamed.
pub fn chat_8k_4k() -> Workload {
    let body = padded(
        json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "You are a concise assistant for an operations team."},
                {"role": "user", "content": ""}
            ],
            "temperature": 0.2,
            "max_tokens": 1024
        }),
        "/messages/1/content",
        8 * 1024,
    );
    let response = completion_of(4 * 1024);
    Workload {
        name: "chat 8 KB / 4 KB",
        description: "8 KB request, 4 KB `chat.completion` response, not streamed".into(),
        request_headers: request_headers(body.len()),
        request_body: body,
        request_chunking: Chunking::Whole,
        response_headers: json_response_headers(response.len()),
        response_chunks: vec![response],
        streamed: false,
    }
}

fn stream_request(extra: Value) -> Vec<u8> {
    let mut body = json!({
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a concise assistant for an operations team."},
            {"role": "user", "content": "Write a long summary of the incident report."}
        ],
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body.to_string().into_bytes()
}

/// A streamed answer of 500 SSE events (496 content deltas), one event per network chunk.
pub fn stream_500() -> Workload {
    let body = stream_request(json!({}));
    let words: Vec<String> = (0..496).map(|i| format!("word{}", i % 97)).collect();
    let reply = MockReply::text(SERVED_MODEL, &words.join(" "));
    let chunks = chat_completion_sse(&reply);
    Workload {
        name: "stream 500 chunks",
        description: format!(
            "`chat.completion.chunk` stream, {} events, one per chunk",
            chunks.len()
        ),
        request_headers: request_headers(body.len()),
        request_body: body,
        request_chunking: Chunking::Whole,
        response_headers: stream_response_headers(),
        response_chunks: chunks,
        streamed: true,
    }
}

/// One `chat.completion.chunk` event carrying `choices` (and `"usage": null`).
fn sse_event(choices: Value, usage: Value) -> Vec<u8> {
    let chunk = json!({
        "id": "chatcmpl-bench-1",
        "object": "chat.completion.chunk",
        "created": 1_785_585_600u64,
        "model": SERVED_MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench01",
        "choices": choices,
        "usage": usage,
    });
    format!("data: {chunk}\n\n").into_bytes()
}

fn delta_event(delta: Value, finish: Value) -> Vec<u8> {
    sse_event(
        json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        Value::Null,
    )
}

/// Three function calls streamed as OpenAI does: a header delta per call, then its
/// arguments a few characters per event.
pub fn tool_stream() -> Workload {
    let tool = |name: &str, props: Value| {
        json!({"type": "function", "function": {
            "name": name,
            "description": format!("{name}: {}", prose(120)),
            "parameters": {"type": "object", "properties": props, "required": ["location"]}
        }})
    };
    let tools = json!([
        tool(
            "get_weather",
            json!({"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}})
        ),
        tool(
            "get_time",
            json!({"location": {"type": "string"}, "format": {"type": "string"}})
        ),
        tool(
            "find_flights",
            json!({"location": {"type": "string"}, "destination": {"type": "string"}, "date": {"type": "string"}})
        ),
    ]);
    let body = stream_request(json!({"tools": tools, "tool_choice": "auto"}));
    let calls = [
        (
            "get_weather",
            r#"{"location":"Paris, France","unit":"celsius","days":3,"detail":"hourly forecast with wind and humidity"}"#,
        ),
        (
            "get_time",
            r#"{"location":"Tokyo, Japan","format":"iso8601","include_offset":true,"note":"local business hours"}"#,
        ),
        (
            "find_flights",
            r#"{"location":"Paris, France","destination":"Tokyo, Japan","date":"2026-09-14","cabin":"economy"}"#,
        ),
    ];
    let mut chunks = vec![delta_event(
        json!({"role": "assistant", "content": null, "refusal": null}),
        Value::Null,
    )];
    for (index, (name, args)) in calls.iter().enumerate() {
        chunks.push(delta_event(
            json!({"tool_calls": [{"index": index, "id": format!("call_bench_{index}"),
                "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        let chars: Vec<char> = args.chars().collect();
        for piece in chars.chunks(4) {
            let piece: String = piece.iter().collect();
            chunks.push(delta_event(
                json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    chunks.push(delta_event(json!({}), json!("tool_calls")));
    chunks.push(sse_event(
        json!([]),
        json!({"prompt_tokens": 412, "completion_tokens": 96, "total_tokens": 508,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}),
    ));
    chunks.push(b"data: [DONE]\n\n".to_vec());
    Workload {
        name: "tool-call stream",
        description: format!(
            "3 tool definitions in the request; 3 calls streamed over {} events",
            chunks.len()
        ),
        request_headers: request_headers(body.len()),
        request_body: body,
        request_chunking: Chunking::Whole,
        response_headers: stream_response_headers(),
        response_chunks: chunks,
        streamed: true,
    }
}

/// A 1 MB (10^6 bytes) request in 16 KiB frames, answered with 4 KB, not streamed.
pub fn body_1mb() -> Workload {
    let body = padded(
        json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Summarise the attached document."},
                {"role": "user", "content": ""}
            ]
        }),
        "/messages/1/content",
        1_000_000,
    );
    let response = completion_of(4 * 1024);
    Workload {
        name: "1 MB request",
        description: "1 MB request body in 16 KiB frames, 4 KB response".into(),
        request_headers: request_headers(body.len()),
        request_body: body,
        request_chunking: Chunking::Fixed(16 * 1024),
        response_headers: json_response_headers(response.len()),
        response_chunks: vec![response],
        streamed: false,
    }
}

/// Every per-exchange workload, in report order, restricted by [`WORKLOADS_ENV`].
pub fn workloads() -> Vec<Workload> {
    let wanted: Vec<String> = std::env::var(WORKLOADS_ENV)
        .map(|v| v.split(',').map(|w| w.trim().to_string()).collect())
        .unwrap_or_default();
    vec![chat_8k_4k(), stream_500(), tool_stream(), body_1mb()]
        .into_iter()
        .filter(|w| wanted.is_empty() || wanted.iter().any(|n| w.name.contains(n.as_str())))
        .collect()
}

/// The filter as `make wasm` builds it.
///
/// # Panics
/// When it is not built: a benchmark cannot run without it.
pub fn filter_module() -> WasmModule {
    match WasmModule::default_build() {
        Ok(m) => m,
        Err(e) => panic!("{e} (run `make bench`, which builds it)"),
    }
}

/// Where the baseline module is looked for.
pub fn naive_path() -> PathBuf {
    match std::env::var_os(NAIVE_WASM_ENV) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join(NAIVE_WASM_DEFAULT),
    }
}

/// The naive baseline filter (`tests/host/benches/naive`).
///
/// # Panics
/// When it is not built.
pub fn naive_module() -> WasmModule {
    let path = naive_path();
    match WasmModule::load(&path) {
        Ok(m) => m,
        Err(e) => panic!("{e}: `make bench` builds the baseline"),
    }
}

/// A filter configuration that traces to both sinks at `collector`, with ticks far apart so
/// nothing is exported unless a bench ticks on purpose.
///
/// # Panics
/// When [`CONFIG_ENV`] is set to anything but a JSON object.
pub fn tracing_config(collector: &str, personality: Personality) -> String {
    let upstream = |cluster: &str| match personality {
        Personality::Kong => collector.to_string(),
        Personality::Envoy => cluster.to_string(),
    };
    let mut config = json!({
        "flush_interval_ms": 600_000,
        "opik": {"endpoint": format!("http://{collector}/api"), "upstream": upstream("opik"),
                 "project_name": "bench"},
        "langfuse": {"endpoint": format!("http://{collector}"), "upstream": upstream("langfuse"),
                     "public_key": "pk-lf-bench", "secret_key": "sk-lf-bench"}
    });
    if let Ok(extra) = std::env::var(CONFIG_ENV) {
        let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&extra) else {
            panic!("{CONFIG_ENV} must hold a JSON object");
        };
        if let Value::Object(c) = &mut config {
            c.extend(extra);
        }
    }
    config.to_string()
}

/// Host options for the benches: `personality`, the tracing configuration, and body limits
/// large enough for the whole-body baseline (Envoy buffers what a filter pauses on; Kong's
/// request body buffer is lifted so the filter can read a 1 MB request).
pub fn options(personality: Personality, collector: std::net::SocketAddr) -> HostOptions {
    let mut o = HostOptions::new(
        personality,
        tracing_config(&collector.to_string(), personality),
    )
    .with_cluster("opik", collector)
    .with_cluster("langfuse", collector);
    o.envoy_buffer_limit = 16 * 1024 * 1024;
    o.client_body_buffer_size = None;
    o
}

/// `opts` with the keys of `settings` (a JSON object) set in its filter configuration.
pub fn with_settings(mut opts: HostOptions, settings: &Value) -> HostOptions {
    let (Ok(Value::Object(mut config)), Value::Object(extra)) = (
        serde_json::from_slice::<Value>(&opts.plugin_config),
        settings,
    ) else {
        return opts;
    };
    config.extend(extra.clone());
    opts.plugin_config = Value::Object(config).to_string().into_bytes();
    opts
}

/// A host whose guest callbacks are timed by a [`GuestClock`].
pub struct TimedHost {
    /// The host.
    pub host: Host,
    time: Arc<Mutex<GuestTime>>,
}

impl TimedHost {
    /// Starts `module` and installs the call hook; start-up callbacks are not counted.
    pub fn new(
        module: &WasmModule,
        opts: HostOptions,
        split_hostcalls: bool,
    ) -> Result<Self, HostError> {
        let mut host = Host::new(module, opts)?;
        let time = Arc::new(Mutex::new(GuestTime::default()));
        let out = Arc::clone(&time);
        let mut clock = GuestClock::new(split_hostcalls);
        host.wasm_store().call_hook(move |_, hook| {
            if clock.transition(hook, Instant::now) {
                *out.lock().unwrap_or_else(PoisonError::into_inner) = clock.time();
            }
            Ok(())
        });
        Ok(TimedHost { host, time })
    }

    /// Guest time counted so far.
    pub fn guest(&self) -> GuestTime {
        *self.time.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Guest time of one exchange, by phase.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeTime {
    /// Context creation, request headers and body.
    pub request: GuestTime,
    /// Response headers and body.
    pub response: GuestTime,
    /// `on_log`, `on_done`, `on_delete`.
    pub end: GuestTime,
    /// Wall time of the whole exchange in the host, its bookkeeping included.
    pub host_wall: Duration,
}

impl ExchangeTime {
    /// All the guest's callbacks of the exchange.
    pub fn guest(&self) -> Duration {
        self.request.callbacks + self.response.callbacks + self.end.callbacks
    }

    /// Hostcall time inside those callbacks (zero unless split).
    pub fn hostcalls(&self) -> Duration {
        self.request.hostcalls + self.response.hostcalls + self.end.hostcalls
    }
}

/// Runs `w` through the host phase by phase, timing the guest. With `check`, verifies that
/// both sides got every byte unchanged and nothing trapped.
pub fn drive(h: &mut TimedHost, w: &Workload, check: bool) -> Result<ExchangeTime, String> {
    let wall = Instant::now();
    let t0 = h.guest();
    let headers: Vec<(&str, &str)> = w
        .request_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id = h.host.begin(&headers, w.request_body.is_empty());
    let chunks = w.request_chunking.split(&w.request_body);
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in chunks.iter().enumerate() {
        h.host.request_body(id, chunk, i == last);
    }
    let t1 = h.guest();
    let headers: Vec<(&str, &str)> = w
        .response_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    h.host.response_headers(id, &headers, false);
    let last = w.response_chunks.len().saturating_sub(1);
    let mut forwarded = Vec::new();
    for (i, chunk) in w.response_chunks.iter().enumerate() {
        let out = h.host.response_body(id, chunk, i == last);
        if check {
            forwarded.extend_from_slice(&out);
        }
    }
    let t2 = h.guest();
    h.host.end(id);
    let t3 = h.guest();
    let host_wall = wall.elapsed();
    if check {
        let outcome = h.host.outcome(id).ok_or("the stream is unknown")?;
        if let Some(trap) = outcome.trap {
            return Err(format!("{}: trap: {trap}", w.name));
        }
        if outcome.upstream_body != w.request_body {
            return Err(format!("{}: the upstream got another request body", w.name));
        }
        if forwarded != w.response_body() || outcome.client_body != forwarded {
            return Err(format!("{}: the client got another response body", w.name));
        }
    }
    // A gateway keeps nothing of a finished stream; the host keeps it for tests to inspect,
    // and would otherwise scan every earlier exchange's record on each callback.
    h.host.forget_finished();
    Ok(ExchangeTime {
        request: t1.since(&t0),
        response: t2.since(&t1),
        end: t3.since(&t2),
        host_wall,
    })
}
