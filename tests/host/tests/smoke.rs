//! Smoke test of the real filter (`llm_tracer.wasm`) under both personalities: it loads,
//! configures, passes a chat completion (plain and SSE) through unchanged, never pauses a
//! response, never traps, and its exports reach a local collector over real HTTP.
//!
//! Fails when the module has not been built: `make test` builds it first (or run
//! `cargo build --release --target wasm32-wasip1 -p llm-tracer`).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use llm_tracer_host::http::{self, Request};
use llm_tracer_host::{
    CalloutResult, Chunking, Exchange, Host, HostOptions, Personality, WasmModule,
};

fn module() -> Option<WasmModule> {
    match WasmModule::default_build() {
        Ok(m) => Some(m),
        Err(e) => panic!("llm_tracer.wasm does not load: {e}"),
    }
}

fn chat() -> Exchange {
    let request = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
    let response = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
    Exchange::new("POST", "/v1/chat/completions")
        .request_header("content-type", "application/json")
        .request_body(request.to_vec(), Chunking::Fixed(16))
        .response(200, &[("content-type", "application/json")])
        .response_body(response.to_vec(), Chunking::Fixed(40))
}

fn sse() -> Exchange {
    let request =
        br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
    let body = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    Exchange::new("POST", "/v1/chat/completions")
        .request_header("content-type", "application/json")
        .request_body(request.to_vec(), Chunking::Whole)
        .response(200, &[("content-type", "text/event-stream")])
        .response_body(body.as_bytes().to_vec(), Chunking::Random { seed: 11 })
}

#[test]
fn real_filter_passes_traffic_and_exports_under_both_personalities() {
    let Some(module) = module() else { return };
    eprintln!("imports: {:?}", module.imports());
    let received: Arc<Mutex<Vec<Request>>> = Arc::default();
    let sink = Arc::clone(&received);
    let collector = http::serve(
        TcpListener::bind("127.0.0.1:0").expect("bind"),
        move |req, w| {
            sink.lock().expect("lock").push(req);
            let _ = w.full(200, &[("content-type", "application/json")], b"{}");
        },
    );
    let addr = collector.addr;
    for personality in [Personality::Kong, Personality::Envoy] {
        let upstream = match personality {
            Personality::Kong => addr.to_string(),
            Personality::Envoy => "opik".to_string(),
        };
        let config = format!(
            r#"{{"flush_interval_ms":100,"opik":{{"endpoint":"http://{addr}/api","upstream":"{upstream}"}}}}"#
        );
        let opts = HostOptions::new(personality, config).with_cluster("opik", addr);
        let mut host = Host::new(&module, opts).expect("host starts");
        assert!(host.configured(), "{personality}: configured");
        for ex in [chat(), sse()] {
            let out = host.exchange(&ex);
            assert_eq!(out.trap, None, "{personality}: {:?}", host.traps());
            assert_eq!(out.client_status, 200, "{personality}");
            assert_eq!(
                out.client_body, ex.response_body,
                "{personality}: body unchanged"
            );
            assert_eq!(out.upstream_body, ex.request_body, "{personality}");
            assert!(
                !out.paused_response,
                "{personality}: never pauses a response"
            );
        }
        host.settle(100);
        assert!(host.traps().is_empty(), "{personality}: {:?}", host.traps());
        let calls = host.callouts();
        eprintln!(
            "{personality}: {} callouts, {} logs, metrics {:?}",
            calls.len(),
            host.logs().len(),
            host.metrics()
        );
        for c in &calls {
            eprintln!("  {} {:?} {:?}", c.upstream, c.header(":path"), c.result);
        }
        assert!(
            calls
                .iter()
                .any(|c| c.delivered
                    && matches!(c.result, CalloutResult::Response { status: 200, .. })),
            "{personality}: no export reached the collector"
        );
        assert_eq!(host.pending_callouts(), 0, "{personality}");
    }
    eprintln!(
        "collector received {} requests",
        received.lock().expect("lock").len()
    );
}
