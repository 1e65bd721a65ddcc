//! The host as a local gateway ([`Gateway`]): real HTTP in, the real filter, real HTTP to the
//! mock upstream, exports to a validating collector.
//!
//! Needs the built filter (`cargo build --release --target wasm32-wasip1 -p llm-tracer`).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::gateway::Gateway;
use llm_tracer_host::http::{self, Request};
use llm_tracer_host::mock_llm::{MockLlm, CHUNK_DELAY_HEADER, SCENARIO_HEADER};
use llm_tracer_host::{HostOptions, Personality, WasmModule};
use serde_json::{json, Value};

const BOTH: [Personality; 2] = [Personality::Kong, Personality::Envoy];
const TIMEOUT: Duration = Duration::from_secs(10);

fn module() -> &'static WasmModule {
    static MODULE: OnceLock<WasmModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        WasmModule::default_build()
            .expect("llm_tracer.wasm (cargo build --release --target wasm32-wasip1 -p llm-tracer)")
    })
}

fn collector() -> Collector {
    let mut opts = CollectorOptions::validating().expect("specs for validation");
    opts.langfuse_keys = Some(("pk-lf-gw".into(), "sk-lf-gw".into()));
    Collector::start(opts)
}

fn options(p: Personality, collector: SocketAddr) -> HostOptions {
    let upstream = |name: &str| match p {
        Personality::Kong => collector.to_string(),
        Personality::Envoy => name.to_string(),
    };
    let config = json!({
        "flush_interval_ms": 50,
        "opik": {"endpoint": format!("http://{collector}/api"), "upstream": upstream("opik"),
                 "project_name": "gateway-test"},
        "langfuse": {"endpoint": format!("http://{collector}"), "upstream": upstream("langfuse"),
                     "public_key": "pk-lf-gw", "secret_key": "sk-lf-gw"}
    });
    HostOptions::new(p, config.to_string())
        .with_cluster("opik", collector)
        .with_cluster("langfuse", collector)
}

fn chat_request(stream: bool, scenario: Option<&str>) -> Request {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Count to three."}]
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = Request::new("POST", "/v1/chat/completions");
    req.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("accept-encoding".into(), "gzip".into()),
        ("x-user-id".into(), "user-gw".into()),
        ("x-session-id".into(), "session-gw".into()),
        (CHUNK_DELAY_HEADER.into(), "20".into()),
    ];
    if let Some(s) = scenario {
        req.headers.push((SCENARIO_HEADER.into(), s.into()));
    }
    req.body = body.to_string().into_bytes();
    req
}

/// What a client got, with the arrival time of each body chunk.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    chunks: Vec<(Instant, Vec<u8>)>,
}

impl Got {
    fn body(&self) -> Vec<u8> {
        self.chunks.iter().flat_map(|(_, c)| c.clone()).collect()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn fetch(addr: SocketAddr, req: &Request) -> Got {
    let mut got = Got {
        status: 0,
        headers: Vec::new(),
        chunks: Vec::new(),
    };
    let mut head = None;
    let mut chunks = Vec::new();
    http::send_streaming(
        addr,
        req,
        TIMEOUT,
        |s, h| head = Some((s, h.to_vec())),
        |c| chunks.push((Instant::now(), c.to_vec())),
    )
    .expect("exchange completes");
    let (status, headers) = head.expect("a response head");
    got.status = status;
    got.headers = headers;
    got.chunks = chunks;
    got
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map_or(&Value::Null, |kv| &kv["value"])
}

#[test]
fn streamed_response_is_byte_identical_and_exported() {
    for p in BOTH {
        // Two mocks so both answers carry the same counter-based ids.
        let direct_mock = MockLlm::start();
        let proxied_mock = MockLlm::start();
        let collector = collector();
        let mut gateway =
            Gateway::start(module(), options(p, collector.addr()), proxied_mock.addr())
                .expect("gateway starts");
        let req = chat_request(true, None);

        let direct = fetch(direct_mock.addr(), &req);
        let proxied = fetch(gateway.addr(), &req);
        assert_eq!(proxied.status, direct.status, "{p}");
        assert_eq!(proxied.status, 200);
        assert_eq!(proxied.body(), direct.body(), "{p}: bytes differ");
        assert!(
            String::from_utf8_lossy(&proxied.body()).ends_with("data: [DONE]\n\n"),
            "{p}"
        );
        assert_eq!(
            proxied.header("content-type"),
            direct.header("content-type"),
            "{p}"
        );
        assert_eq!(proxied.header("transfer-encoding"), Some("chunked"), "{p}");
        assert_eq!(proxied.header("x-request-id"), Some("req_mock_1"), "{p}");
        // The chunks reached the client as the upstream sent them, not at the end.
        assert!(
            proxied.chunks.len() > 3,
            "{p}: {} chunks",
            proxied.chunks.len()
        );
        let first = proxied.chunks[0].0;
        let last = proxied.chunks[proxied.chunks.len() - 1].0;
        assert!(
            last.duration_since(first) >= Duration::from_millis(60),
            "{p}: the body arrived in one go"
        );

        // The upstream got the client's body unchanged, with the filter's header edit.
        let upstream = proxied_mock.requests();
        assert_eq!(upstream.len(), 1);
        assert_eq!(upstream[0].body, req.body, "{p}");
        assert_eq!(upstream[0].header("accept-encoding"), Some("identity"));
        assert_eq!(upstream[0].header("x-session-id"), Some("session-gw"));

        assert!(gateway.settle(TIMEOUT).expect("settle"), "{p}: settled");
        for r in collector.received() {
            assert!(
                r.violations.is_empty(),
                "{p} {}: {:?}",
                r.path,
                r.violations
            );
            assert!(r.accepted(), "{p} {}: {}", r.path, r.status_answered);
        }
        let (traces, spans, otlp) = (
            collector.opik_traces(),
            collector.opik_spans(),
            collector.otlp_spans(),
        );
        assert_eq!((traces.len(), spans.len(), otlp.len()), (1, 1, 1), "{p}");
        assert_eq!(traces[0]["project_name"], "gateway-test");
        assert_eq!(traces[0]["thread_id"], "session-gw");
        assert_eq!(spans[0]["model"], "gpt-4o-mini-2024-07-18");
        assert!(spans[0]["usage"]["completion_tokens"].as_i64() > Some(0));
        let ttft = spans[0]["ttft"].as_f64().expect("ttft of a stream");
        assert!(ttft >= 10.0, "{p}: ttft {ttft} ms on a real clock");
        assert_eq!(attr(&otlp[0], "gen_ai.request.stream")["boolValue"], true);
        assert_eq!(attr(&otlp[0], "user.id")["stringValue"], "user-gw");

        let (traced, sent, traps) = gateway
            .with_host(|h| {
                (
                    h.metric_total("llm_tracer_requests_total"),
                    h.metric("llm_tracer_export_sent_records_total_sink=langfuse"),
                    h.traps(),
                )
            })
            .expect("host");
        assert_eq!((traced, sent), (Some(1), Some(1)), "{p}");
        assert!(traps.is_empty(), "{p}: {traps:?}");
        gateway.stop();
        assert!(gateway.with_host(|_| ()).is_err(), "stopped");
    }
}

#[test]
fn plain_and_error_responses_pass_unchanged() {
    for p in BOTH {
        let direct_mock = MockLlm::start();
        let proxied_mock = MockLlm::start();
        let collector = collector();
        let gateway = Gateway::start(module(), options(p, collector.addr()), proxied_mock.addr())
            .expect("gateway starts");
        for (scenario, status) in [
            (None, 200),
            (Some("tool_calls"), 200),
            (Some("error_500"), 500),
        ] {
            let req = chat_request(false, scenario);
            let direct = fetch(direct_mock.addr(), &req);
            let proxied = fetch(gateway.addr(), &req);
            assert_eq!((proxied.status, direct.status), (status, status), "{p}");
            assert_eq!(proxied.body(), direct.body(), "{p} {scenario:?}");
        }
        assert!(gateway.settle(TIMEOUT).expect("settle"));
        assert_eq!(collector.opik_traces().len(), 3, "{p}");
        assert_eq!(collector.otlp_spans().len(), 3, "{p}");
        let errors = gateway
            .with_host(|h| h.metric_total("llm_tracer_errors_total"))
            .expect("host");
        assert_eq!(errors, Some(1), "{p}");
    }
}

#[test]
fn untraced_get_passes_through() {
    let mock = MockLlm::start();
    let collector = collector();
    let gateway = Gateway::start(
        module(),
        options(Personality::Kong, collector.addr()),
        mock.addr(),
    )
    .expect("gateway starts");
    let got = fetch(gateway.addr(), &Request::new("GET", "/v1/models"));
    assert_eq!(got.status, 404, "the mock's answer");
    assert!(String::from_utf8_lossy(&got.body()).contains("Invalid URL"));
    assert_eq!(mock.requests()[0].path, "/v1/models");
    assert!(gateway.settle(Duration::from_secs(2)).expect("settle"));
    assert!(collector.received().is_empty());
}

#[test]
fn unreachable_upstream_gives_502_and_an_error_trace() {
    for p in BOTH {
        let collector = collector();
        let gateway = Gateway::start(
            module(),
            options(p, collector.addr()),
            llm_tracer_host::http::closed_port(),
        )
        .expect("gateway starts");
        let got = fetch(gateway.addr(), &chat_request(false, None));
        assert_eq!(got.status, 502, "{p}");
        assert!(gateway.settle(TIMEOUT).expect("settle"));
        let spans = collector.opik_spans();
        assert_eq!(spans.len(), 1, "{p}");
        assert_eq!(spans[0]["error_info"]["exception_type"], "502", "{p}");
    }
}

/// A guest with only the exports the host needs, plus `callbacks`.
fn wat_module(callbacks: &str) -> WasmModule {
    let wat = format!(
        r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  {callbacks})"#
    );
    WasmModule::from_bytes(wat.as_bytes()).expect("test guest compiles")
}

#[test]
fn kong_failed_configure_answers_500_without_the_upstream() {
    let module = wat_module(
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    let mock = MockLlm::start();
    let gateway = Gateway::start(
        &module,
        HostOptions::new(Personality::Kong, "{}"),
        mock.addr(),
    )
    .expect("Kong starts anyway");
    let got = fetch(gateway.addr(), &chat_request(false, None));
    assert_eq!(got.status, 500);
    assert!(mock.requests().is_empty(), "never reached the upstream");

    let envoy = Gateway::start(
        &module,
        HostOptions::new(Personality::Envoy, "{}"),
        mock.addr(),
    );
    assert!(envoy.is_err(), "Envoy rejects the configuration");
}

#[test]
fn envoy_trap_fails_closed_with_503() {
    let module = wat_module(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)"#,
    );
    let mock = MockLlm::start();
    let gateway = Gateway::start(
        &module,
        HostOptions::new(Personality::Envoy, "{}"),
        mock.addr(),
    )
    .expect("gateway starts");
    for _ in 0..2 {
        let got = fetch(gateway.addr(), &chat_request(true, None));
        assert_eq!(got.status, 503);
    }
    assert!(mock.requests().is_empty());
    let traps = gateway.with_host(|h| h.traps()).expect("host");
    assert_eq!(traps.len(), 1, "{traps:?}");
}
