//! The rig the end-to-end tests share: the real `llm_tracer.wasm` in the project's host,
//! exporting over real HTTP to a validating local collector.
#![allow(dead_code)]

use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::{
    Chunking, Exchange, ExchangeOutcome, Host, HostOptions, Personality, WasmModule,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::OnceLock;

pub const BOTH: [Personality; 2] = [Personality::Kong, Personality::Envoy];

pub fn module() -> &'static WasmModule {
    static MODULE: OnceLock<WasmModule> = OnceLock::new();
    MODULE.get_or_init(|| WasmModule::default_build().expect("llm_tracer.wasm (run `make test`)"))
}

pub fn fixture(case: &str, file: &str) -> Vec<u8> {
    fixture_of("openai_chat", case, file)
}

/// A filter configuration exporting to `opik` and `langfuse` at the given addresses. On Kong
/// the upstream is `host:port`; on Envoy it is a cluster name the host maps to the address.
pub fn config(p: Personality, opik: SocketAddr, langfuse: SocketAddr, extra: &str) -> String {
    let (opik_up, lf_up) = match p {
        Personality::Kong => (opik.to_string(), langfuse.to_string()),
        Personality::Envoy => ("opik".to_string(), "langfuse".to_string()),
    };
    format!(
        r#"{{"flush_interval_ms":1000,
            "retry":{{"max_attempts":4,"initial_backoff_ms":500,"max_backoff_ms":2000}},
            "opik":{{"endpoint":"http://{opik}/api","upstream":"{opik_up}","project_name":"e2e","timeout_ms":2000}},
            "langfuse":{{"endpoint":"http://{langfuse}","upstream":"{lf_up}","public_key":"pk-lf-e2e","secret_key":"sk-lf-e2e","timeout_ms":2000}}{extra}}}"#
    )
}

pub struct Rig {
    pub host: Host,
    pub collector: Collector,
}

pub fn rig_with(p: Personality, collector: Collector, opik: SocketAddr, extra: &str) -> Rig {
    let langfuse = collector.addr();
    let mut opts = HostOptions::new(p, config(p, opik, langfuse, extra))
        .with_cluster("opik", opik)
        .with_cluster("langfuse", langfuse);
    opts.client_body_buffer_size = Some(1 << 20);
    let host = Host::new(module(), opts).expect("filter loads and configures");
    assert!(host.configured());
    Rig { host, collector }
}

pub fn validating_collector() -> Collector {
    let mut opts = CollectorOptions::validating().expect("specs for validation");
    opts.langfuse_keys = Some(("pk-lf-e2e".into(), "sk-lf-e2e".into()));
    Collector::start(opts)
}

pub fn rig(p: Personality) -> Rig {
    let collector = validating_collector();
    let addr = collector.addr();
    rig_with(p, collector, addr, "")
}

pub fn chat(case: &str, status: u16, stream: bool, chunking: Chunking) -> Exchange {
    let (file, ct) = if stream {
        ("response.sse", "text/event-stream")
    } else {
        ("response.json", "application/json")
    };
    Exchange::new("POST", "/v1/chat/completions")
        .request_header("content-type", "application/json")
        .request_header("accept-encoding", "gzip, br")
        .request_header("authorization", "Bearer sk-client-secret")
        .request_header("x-user-id", "user-7")
        .request_header("x-session-id", "conv-7")
        .request_body(fixture(case, "request.json"), Chunking::Whole)
        .response(status, &[("content-type", ct)])
        .response_body(fixture(case, file), chunking)
}

/// Traffic passes byte for byte, unpaused and untrapped.
pub fn assert_transparent(out: &ExchangeOutcome, ex: &Exchange) {
    assert!(out.trap.is_none(), "trap: {:?}", out.trap);
    assert!(!out.paused_response, "the response was paused");
    assert!(out.reached_upstream);
    assert_eq!(
        out.client_body, ex.response_body,
        "client got different bytes"
    );
    assert_eq!(
        out.upstream_body, ex.request_body,
        "upstream got different bytes"
    );
}

/// Flushes, then returns the single Opik span and the single OTLP span of the exchange.
pub fn exported(rig: &mut Rig) -> (Value, Value, Value) {
    rig.host.settle(20);
    let received = rig.collector.received();
    for r in &received {
        assert!(
            r.violations.is_empty(),
            "{} {}: {:#?}",
            r.path,
            r.status_answered,
            r.violations
        );
        assert!(r.accepted(), "{} answered {}", r.path, r.status_answered);
    }
    let (traces, spans, otlp) = (
        rig.collector.opik_traces(),
        rig.collector.opik_spans(),
        rig.collector.otlp_spans(),
    );
    assert_eq!(
        (traces.len(), spans.len(), otlp.len()),
        (1, 1, 1),
        "one of each per exchange"
    );
    (traces[0].clone(), spans[0].clone(), otlp[0].clone())
}

pub fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map(|kv| kv["value"].clone())
        .unwrap_or(Value::Null)
}

pub fn fixture_of(family: &str, case: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/{family}/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
