//! End to end on the real `llm_tracer.wasm`: exchanges go through the project's proxy-wasm host
//! acting as Kong or as Envoy, exports travel over real HTTP to a local collector that speaks
//! Opik and Langfuse and validates every payload against the published specs.
//!
//! Build the module first (`make test` does): `cargo build --release --target wasm32-wasip1`.

mod common;

use common::*;
use llm_tracer_host::{CalloutResult, Chunking, Exchange, Host, HostOptions, Personality};
use proptest::prelude::*;
use std::time::Duration;

#[test]
fn non_streamed_chat_reaches_both_backends() {
    for p in BOTH {
        let mut rig = rig(p);
        let ex = chat("basic", 200, false, Chunking::Fixed(100));
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        assert_eq!(
            out.upstream_header("accept-encoding"),
            Some("identity"),
            "{p:?}"
        );
        let (trace, span, otlp) = exported(&mut rig);
        assert_eq!(span["trace_id"], trace["id"]);
        assert_eq!(trace["project_name"], "e2e");
        assert_eq!(trace["thread_id"], "conv-7");
        assert_eq!(span["model"], "gpt-4o-mini-2024-07-18");
        assert_eq!(span["usage"]["total_tokens"], 24);
        assert_eq!(span["output"]["choices"][0]["message"]["content"], "Hi!");
        // The body's `user` outranks the `x-user-id` header.
        assert_eq!(span["metadata"]["user_id"], "end-user-9");
        assert_eq!(attr(&otlp, "gen_ai.usage.output_tokens")["intValue"], "3");
        assert_eq!(attr(&otlp, "user.id")["stringValue"], "end-user-9");
        assert_eq!(otlp["status"]["code"], 1);
        // Credentials of the client never leave in an export.
        for r in rig.collector.received() {
            assert!(!r.body.to_string().contains("sk-client-secret"), "{p:?}");
        }
        let callouts = rig.host.callouts();
        let opik = callouts
            .iter()
            .find(|c| c.header(":path") == Some("/api/v1/private/traces/batch"));
        assert!(
            opik.is_some_and(|c| c.header("authorization").is_none()),
            "self-hosted Opik: no key"
        );
        assert_eq!(
            rig.host.metric_total("llm_tracer_requests_total"),
            Some(1),
            "{p:?}"
        );
        assert_eq!(
            rig.host
                .metric("llm_tracer_export_sent_records_total_sink=opik"),
            Some(1),
            "{p:?}"
        );
        assert_eq!(
            rig.host
                .metric("llm_tracer_export_sent_records_total_sink=langfuse"),
            Some(1),
            "{p:?}"
        );
    }
}

#[test]
fn streamed_chat_with_usage_and_ttft() {
    for p in BOTH {
        for seed in [1, 2, 3] {
            let mut rig = rig(p);
            let ex = chat("stream_text", 200, true, Chunking::Random { seed });
            let out = rig.host.exchange(&ex);
            assert_transparent(&out, &ex);
            let (_, span, otlp) = exported(&mut rig);
            assert_eq!(
                span["output"]["choices"][0]["message"]["content"],
                "Sunset — warm 🌅"
            );
            assert_eq!(span["usage"]["prompt_tokens"], 1120);
            assert_eq!(
                span["usage"]["original_usage.prompt_tokens_details.cached_tokens"],
                1024
            );
            assert!(span["ttft"].as_f64().is_some(), "{p:?}: ttft");
            assert_eq!(attr(&otlp, "gen_ai.request.stream")["boolValue"], true);
            assert!(!attr(&otlp, "langfuse.observation.completion_start_time").is_null());
        }
    }
}

#[test]
fn streamed_tool_calls_are_reassembled() {
    for p in BOTH {
        let mut rig = rig(p);
        let ex = chat("stream_tools", 200, true, Chunking::Fixed(17));
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        let (_, span, otlp) = exported(&mut rig);
        let calls = &span["output"]["choices"][0]["message"]["tool_calls"];
        assert_eq!(calls[0]["id"], "call_paris01");
        assert_eq!(calls[1]["function"]["arguments"], "{\"city\": \"Tokyo\"}");
        assert_eq!(span["metadata"]["finish_reasons"][0], "tool_calls");
        assert!(span["input"]["tools"][0]["function"]["name"] == "get_weather");
        let finish = &attr(&otlp, "gen_ai.response.finish_reasons")["arrayValue"]["values"][0];
        assert_eq!(finish["stringValue"], "tool_calls");
    }
}

#[test]
fn stream_without_usage_reports_none() {
    for p in BOTH {
        let mut rig = rig(p);
        let ex = chat("stream_no_usage", 200, true, Chunking::Fixed(9));
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        let (_, span, otlp) = exported(&mut rig);
        assert!(span.get("usage").is_none(), "{p:?}: invented usage");
        assert!(attr(&otlp, "gen_ai.usage.input_tokens").is_null());
        assert_eq!(
            span["output"]["choices"][0]["message"]["content"],
            "1, 2, 3."
        );
    }
}

#[test]
fn upstream_errors_become_error_records() {
    for p in BOTH {
        let mut rig = rig(p);
        let ex = chat("error_400", 400, false, Chunking::Whole);
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        assert_eq!(out.client_status, 400);
        let (trace, span, otlp) = exported(&mut rig);
        assert_eq!(
            span["error_info"]["exception_type"],
            "invalid_request_error"
        );
        assert!(trace["error_info"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("temperature")));
        assert_eq!(otlp["status"]["code"], 2);
        assert_eq!(
            attr(&otlp, "langfuse.observation.level")["stringValue"],
            "ERROR"
        );

        let mut rig = self::rig(p);
        let ex = chat("basic", 503, false, Chunking::Whole)
            .response_body(b"upstream connect error".to_vec(), Chunking::Whole);
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        let (_, span, otlp) = exported(&mut rig);
        assert_eq!(span["error_info"]["exception_type"], "503");
        assert_eq!(attr(&otlp, "error.type")["stringValue"], "503");
        assert_eq!(rig.host.metric_total("llm_tracer_errors_total"), Some(1));
    }
}

#[test]
fn client_abort_mid_stream_gives_an_incomplete_record() {
    for p in BOTH {
        let mut rig = rig(p);
        let mut ex = chat("stream_text", 200, true, Chunking::Fixed(64));
        ex.abort_after_response_bytes = Some(ex.response_body.len() / 2);
        let out = rig.host.exchange(&ex);
        assert!(out.trap.is_none());
        assert!(!out.paused_response);
        assert_eq!(
            out.client_body,
            ex.response_body[..out.client_body.len()].to_vec()
        );
        let (_, span, otlp) = exported(&mut rig);
        assert_eq!(span["metadata"]["incomplete"], true, "{p:?}");
        assert_eq!(span["error_info"]["exception_type"], "incomplete");
        assert!(span["output"]["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("Sun")));
        assert_eq!(attr(&otlp, "llm_tracer.incomplete")["boolValue"], true);
    }
}

#[test]
fn refused_connections_are_retried_then_dropped_and_counted() {
    for p in BOTH {
        let collector = validating_collector();
        let mut rig = rig_with(p, collector, llm_tracer_host::http::closed_port(), "");
        let ex = chat("basic", 200, false, Chunking::Whole);
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        rig.host.settle(40);
        let opik_calls: Vec<_> = rig
            .host
            .callouts()
            .into_iter()
            .filter(|c| {
                c.header(":path")
                    .is_some_and(|path| path.contains("/v1/private/"))
            })
            .collect();
        assert_eq!(opik_calls.len(), 4, "{p:?}: max_attempts");
        assert!(opik_calls
            .iter()
            .all(|c| matches!(c.result, CalloutResult::Failed(_))));
        assert_eq!(
            rig.host
                .metric("llm_tracer_export_dropped_records_total_sink=opik"),
            Some(1)
        );
        assert_eq!(
            rig.host.metric("llm_tracer_export_retries_total_sink=opik"),
            Some(3)
        );
        // The other sink is unaffected.
        assert_eq!(rig.collector.otlp_spans().len(), 1);
        assert!(rig.host.traps().is_empty());
    }
}

#[test]
fn backend_500_then_204_loses_nothing() {
    for p in BOTH {
        let mut rig = rig(p);
        rig.collector.push_script(&[500, 500]);
        for case in ["basic", "tool_result"] {
            let ex = chat(case, 200, false, Chunking::Whole);
            assert_transparent(&rig.host.exchange(&ex), &ex);
        }
        rig.host.settle(40);
        assert_eq!(rig.collector.opik_traces().len(), 2, "{p:?}");
        assert_eq!(rig.collector.opik_spans().len(), 2);
        assert_eq!(rig.collector.otlp_spans().len(), 2);
        let retries = rig
            .host
            .metric("llm_tracer_export_retries_total_sink=opik")
            .unwrap_or(0)
            + rig
                .host
                .metric("llm_tracer_export_retries_total_sink=langfuse")
                .unwrap_or(0);
        assert_eq!(retries, 2);
        assert_eq!(
            rig.host
                .metric("llm_tracer_export_dropped_records_total_sink=opik"),
            Some(0)
        );
    }
}

#[test]
fn backend_4xx_drops_the_batch_with_one_error_log() {
    for p in BOTH {
        let mut rig = rig(p);
        rig.collector.push_script(&[422]);
        let ex = chat("basic", 200, false, Chunking::Whole);
        assert_transparent(&rig.host.exchange(&ex), &ex);
        rig.host.settle(10);
        let rejected = rig
            .host
            .metric("llm_tracer_export_rejected_records_total_sink=opik")
            .unwrap_or(0)
            + rig
                .host
                .metric("llm_tracer_export_rejected_records_total_sink=langfuse")
                .unwrap_or(0);
        assert_eq!(rejected, 1, "{p:?}");
        let errors: Vec<_> = rig
            .host
            .logs()
            .into_iter()
            .filter(|l| l.message.contains("rejected a batch with HTTP 422"))
            .collect();
        assert_eq!(errors.len(), 1, "{p:?}");
    }
}

#[test]
fn invalid_config_passes_traffic_untouched() {
    for p in BOTH {
        for bad in [
            r#"{"opik":{"endpoint":"nope"}}"#,
            "{not json",
            r#"{"flush_ms":5}"#,
        ] {
            let host = Host::new(module(), HostOptions::new(p, bad));
            let mut host = host.expect("an invalid config must not fail on_configure");
            let ex = chat("stream_text", 200, true, Chunking::Fixed(33));
            let out = host.exchange(&ex);
            assert_eq!(out.client_status, 200, "{p:?} {bad}");
            assert_transparent(&out, &ex);
            assert_eq!(
                out.upstream_header("accept-encoding"),
                Some("gzip, br"),
                "untouched"
            );
            host.settle(3);
            assert!(host.callouts().is_empty());
            let logged = host
                .logs()
                .iter()
                .any(|l| l.message.contains("passes traffic through"));
            assert!(logged, "{p:?}: the error is logged");
        }
    }
}

#[test]
fn untraced_paths_are_not_touched() {
    for p in BOTH {
        let mut rig = rig(p);
        let ex = Exchange::new("GET", "/v1/models")
            .request_header("accept-encoding", "gzip")
            .response(200, &[("content-type", "application/json")])
            .response_body(b"{}".to_vec(), Chunking::Whole);
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        assert_eq!(out.upstream_header("accept-encoding"), Some("gzip"));
        rig.host.settle(3);
        assert!(rig.collector.received().is_empty());
    }
}

#[test]
fn kong_request_body_spooled_to_disk_is_noted_not_fatal() {
    let collector = validating_collector();
    let addr = collector.addr();
    let mut opts = HostOptions::new(Personality::Kong, config(Personality::Kong, addr, addr, ""));
    opts.client_body_buffer_size = Some(64);
    let mut rig = Rig {
        host: Host::new(module(), opts).expect("host"),
        collector,
    };
    let ex = chat("basic", 200, false, Chunking::Whole);
    let out = rig.host.exchange(&ex);
    assert_transparent(&out, &ex);
    let (_, span, _) = exported(&mut rig);
    let unparsed = span["metadata"]["unparsed"].to_string();
    assert!(unparsed.contains("not readable"), "{unparsed}");
    assert_eq!(
        span["usage"]["total_tokens"], 24,
        "the response is still traced"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Random bodies cut at random places: the client always receives exactly the upstream's
    /// bytes and the filter never traps, whatever it makes of them.
    #[test]
    fn any_bytes_any_chunking_pass_through(
        request in proptest::collection::vec(any::<u8>(), 0..2048),
        response in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            Just(fixture("stream_tools", "response.sse")),
        ],
        sse in any::<bool>(),
        seed in any::<u64>(),
        kong in any::<bool>(),
    ) {
        let p = if kong { Personality::Kong } else { Personality::Envoy };
        let mut rig = rig(p);
        let ct = if sse { "text/event-stream" } else { "application/json" };
        let ex = Exchange::new("POST", "/v1/chat/completions")
            .request_body(request, Chunking::Random { seed })
            .response(200, &[("content-type", ct)])
            .response_body(response, Chunking::Random { seed: seed.wrapping_add(1) });
        let out = rig.host.exchange(&ex);
        prop_assert!(out.trap.is_none(), "trap: {:?}", out.trap);
        prop_assert!(!out.paused_response);
        prop_assert_eq!(&out.client_body, &ex.response_body);
        prop_assert_eq!(&out.upstream_body, &ex.request_body);
        rig.host.settle(5);
        prop_assert!(rig.host.traps().is_empty());
        prop_assert_eq!(rig.collector.otlp_spans().len(), 1);
    }
}

#[test]
fn exports_wait_for_the_tick() {
    // Nothing is dispatched from the HTTP context; only the root's tick sends.
    for p in BOTH {
        let mut rig = rig(p);
        let ex = chat("basic", 200, false, Chunking::Whole);
        rig.host.exchange(&ex);
        assert!(
            rig.host.callouts().is_empty(),
            "{p:?}: dispatched before a tick"
        );
        rig.host.advance_ms(1000);
        rig.host.tick();
        rig.host.pump(Duration::from_secs(2));
        assert!(!rig.host.callouts().is_empty());
        assert!(rig
            .host
            .callouts()
            .iter()
            .all(|c| c.phase == llm_tracer_host::Phase::Tick
                || c.phase == llm_tracer_host::Phase::HttpCallResponse));
    }
}

#[test]
fn routes_trace_unknown_paths_by_body_shape() {
    for p in BOTH {
        let collector = validating_collector();
        let addr = collector.addr();
        let mut rig = rig_with(
            p,
            collector,
            addr,
            r#","routes":[{"path_prefix":"/internal/"}]"#,
        );
        let ex = Exchange::new("POST", "/internal/claude")
            .request_body(
                fixture_of("anthropic_messages", "basic", "request.json"),
                Chunking::Whole,
            )
            .response(200, &[("content-type", "application/json")])
            .response_body(
                fixture_of("anthropic_messages", "basic", "response.json"),
                Chunking::Fixed(50),
            );
        let out = rig.host.exchange(&ex);
        assert_transparent(&out, &ex);
        let (trace, span, otlp) = exported(&mut rig);
        assert_eq!(trace["name"], "messages", "{p:?}");
        assert_eq!(span["provider"], "anthropic");
        assert_eq!(attr(&otlp, "gen_ai.operation.name")["stringValue"], "chat");
        // The default OpenAI path is not on the route: not traced.
        let ex = chat("basic", 200, false, Chunking::Whole);
        assert_transparent(&rig.host.exchange(&ex), &ex);
        rig.host.settle(5);
        assert_eq!(rig.collector.opik_spans().len(), 1);
    }
}

#[test]
fn opik_langfuse_and_generic_otlp_at_once() {
    for p in BOTH {
        let collector = validating_collector();
        let addr = collector.addr();
        let otlp_up = match p {
            Personality::Kong => addr.to_string(),
            Personality::Envoy => "otlp".to_string(),
        };
        let extra = format!(
            r#","otlp":{{"endpoint":"http://{addr}","upstream":"{otlp_up}","headers":{{"x-api-key":"otlp-secret"}},"capture_content":true}}"#
        );
        let opts = HostOptions::new(p, config(p, addr, addr, &extra))
            .with_cluster("opik", addr)
            .with_cluster("langfuse", addr)
            .with_cluster("otlp", addr);
        let mut host = Host::new(module(), opts).expect("loads");
        let ex = chat("basic", 200, false, Chunking::Fixed(100));
        assert_transparent(&host.exchange(&ex), &ex);
        host.settle(20);
        assert_eq!(collector.opik_spans().len(), 1, "{p:?}");
        assert_eq!(collector.otlp_spans().len(), 1);
        let generic = collector.generic_otlp_spans();
        assert_eq!(generic.len(), 1);
        assert!(generic[0].to_string().contains("gen_ai.output.messages"));
        assert!(!generic[0].to_string().contains("langfuse."));
        let otlp_call = host
            .callouts()
            .into_iter()
            .find(|c| c.header(":path") == Some("/v1/traces"))
            .expect("generic OTLP callout");
        assert_eq!(otlp_call.header("x-api-key"), Some("otlp-secret"));
        assert!(collector.received().iter().all(|r| r.violations.is_empty()));
        assert_eq!(
            host.metric("llm_tracer_export_sent_records_total_sink=otlp"),
            Some(1)
        );
    }
}

#[test]
fn exchange_metrics_carry_provider_model_and_route_labels() {
    for p in BOTH {
        let collector = validating_collector();
        let addr = collector.addr();
        let extra = r#","metrics_max_models":1,"routes":[{"name":"chat","path_prefix":"/v1/"}]"#;
        let mut rig = rig_with(p, collector, addr, extra);
        rig.host
            .exchange(&chat("basic", 200, false, Chunking::Whole));
        rig.host
            .exchange(&chat("stream_text", 200, true, Chunking::Fixed(40)));
        let labels = "_provider=openai_model=gpt-4o-mini-2024-07-18_route=chat";
        let metric = |base: &str| rig.host.metric(&format!("{base}{labels}"));
        assert_eq!(metric("llm_tracer_requests_total"), Some(1), "{p:?}");
        assert_eq!(metric("llm_tracer_input_tokens_total"), Some(21));
        assert_eq!(metric("llm_tracer_output_tokens_total"), Some(3));
        // 4.95e-6 USD is 4.95 micro-dollars, rounded to 5.
        assert_eq!(metric("llm_tracer_cost_microusd_total"), Some(5));
        assert_eq!(metric("llm_tracer_latency_ms"), Some(1), "one observation");
        // The second model is past metrics_max_models: counted as `other`.
        let other = "_provider=openai_model=other_route=chat";
        assert_eq!(
            rig.host
                .metric(&format!("llm_tracer_requests_total{other}")),
            Some(1)
        );
        assert_eq!(
            rig.host
                .metric(&format!("llm_tracer_cached_input_tokens_total{other}")),
            Some(1024)
        );
        assert_eq!(
            rig.host.metric(&format!("llm_tracer_ttft_ms{other}")),
            Some(1)
        );
        assert_eq!(rig.host.metric_total("llm_tracer_requests_total"), Some(2));
        // Back and forth between the label sets: each exchange lands under its own labels.
        for name in ["basic", "stream_text", "basic"] {
            let streamed = name == "stream_text";
            rig.host
                .exchange(&chat(name, 200, streamed, Chunking::Whole));
        }
        let metric = |base: &str| rig.host.metric(&format!("{base}{labels}"));
        assert_eq!(metric("llm_tracer_requests_total"), Some(3), "{p:?}");
        assert_eq!(metric("llm_tracer_input_tokens_total"), Some(63));
        assert_eq!(
            rig.host
                .metric(&format!("llm_tracer_requests_total{other}")),
            Some(2)
        );
        assert_eq!(rig.host.metric_total("llm_tracer_requests_total"), Some(5));
    }
}
