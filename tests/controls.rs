//! Context, cost, privacy and volume controls, end to end on the real `llm_tracer.wasm` as Kong
//! and as Envoy: where the context comes from and in which order, joining callers' traces,
//! request edits, capture modes, opt-out, credentials, redaction, sampling and cost.
//!
//! Build the module first (`make test` does): `cargo build --release --target wasm32-wasip1`.

mod common;

use common::*;
use llm_tracer_host::{Chunking, Exchange, Personality};
use serde_json::{json, Value};

/// The basic chat request with `metadata` merged into its body.
fn body_with(extra: Value) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture("basic", "request.json")).expect("fixture JSON");
    if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&body).expect("encode")
}

fn basic_exchange(body: Vec<u8>) -> Exchange {
    exchange_at(
        "/v1/chat/completions",
        body,
        200,
        fixture("basic", "response.json"),
    )
}

fn exchange_at(path: &str, body: Vec<u8>, status: u16, response: Vec<u8>) -> Exchange {
    Exchange::new("POST", path)
        .request_header("content-type", "application/json")
        .request_header("authorization", "Bearer sk-client-secret")
        .request_body(body, Chunking::Whole)
        .response(status, &[("content-type", "application/json")])
        .response_body(response, Chunking::Fixed(64))
}

fn new_rig(p: Personality, extra: &str) -> Rig {
    let collector = validating_collector();
    let addr = collector.addr();
    rig_with(p, collector, addr, extra)
}

/// Every byte the collector received, as text (bodies and headers).
fn everything_exported(rig: &Rig) -> String {
    rig.collector
        .received()
        .iter()
        .map(|r| format!("{:?} {}", r.headers, r.body))
        .collect()
}

#[test]
fn context_sources_apply_in_precedence_order() {
    let key_print = llm_tracer::context::fingerprint("sk-client-secret");
    let extra = format!(
        r#","context":{{"defaults":{{"user":"cfg-user","project_name":"cfg-proj","trace_name":"cfg-trace","release":"cfg-rel","environment":"prod","tags":["cfg"],"metadata":{{"k":"cfg","region":"eu"}}}},
            "api_keys":{{"{}":{{"project_name":"key-proj","trace_name":"key-trace","tags":["key"],"metadata":{{"k":"key"}}}}}}}},
           "routes":[{{"name":"chat","path_prefix":"/v1/","context":{{"trace_name":"route-trace","release":"route-rel","tags":["route"]}}}}]"#,
        &key_print[..16]
    );
    for p in BOTH {
        let mut rig = new_rig(p, &extra);
        let body = body_with(
            json!({"metadata": {"session_id": "body-session", "tags": ["body"], "k": "body", "opik": {"project_name": "body-proj"}}}),
        );
        let ex = basic_exchange(body)
            .request_header("x-user-id", "header-user")
            .request_header("x-chat-id", "chat-1")
            .request_header("opik-tags", "hdr1,hdr2");
        rig.host.exchange(&ex);
        let (trace, span, otlp) = exported(&mut rig);
        // Body over headers: the body's `user` (end-user-9) outranks x-user-id.
        assert_eq!(span["metadata"]["user_id"], "end-user-9", "{p:?}");
        assert_eq!(trace["thread_id"], "body-session");
        assert_eq!(trace["project_name"], "body-proj", "body over API key");
        assert_eq!(trace["name"], "key-trace", "API key over route");
        assert_eq!(
            span["metadata"]["release"], "route-rel",
            "route over config"
        );
        assert_eq!(span["metadata"]["environment"], "prod", "config last");
        assert_eq!(span["metadata"]["chat_id"], "chat-1");
        assert_eq!(span["metadata"]["k"], "body");
        assert_eq!(span["metadata"]["region"], "eu");
        assert_eq!(
            span["tags"],
            json!([
                "llm-tracer",
                "openai",
                "body",
                "hdr1",
                "hdr2",
                "key",
                "route",
                "cfg"
            ])
        );
        assert_eq!(
            span["metadata"]["api_key.fingerprint"],
            json!(&key_print[..12])
        );
        assert_eq!(
            attr(&otlp, "langfuse.trace.name")["stringValue"],
            "key-trace"
        );
        assert_eq!(attr(&otlp, "session.id")["stringValue"], "body-session");
        assert_eq!(attr(&otlp, "langfuse.release")["stringValue"], "route-rel");
        assert_eq!(attr(&otlp, "langfuse.environment")["stringValue"], "prod");
        assert!(!everything_exported(&rig).contains("sk-client-secret"));
    }
}

#[test]
fn no_session_is_invented() {
    for p in BOTH {
        let mut rig = new_rig(p, "");
        rig.host
            .exchange(&basic_exchange(fixture("basic", "request.json")));
        let (trace, span, otlp) = exported(&mut rig);
        assert!(trace.get("thread_id").is_none(), "{p:?}");
        assert!(span["metadata"].get("session_id").is_none());
        assert_eq!(attr(&otlp, "session.id"), Value::Null);
    }
}

#[test]
fn traceparent_makes_exchanges_children_of_the_callers_span() {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for p in BOTH {
        let mut rig = new_rig(p, "");
        for _ in 0..2 {
            let ex = basic_exchange(fixture("basic", "request.json"))
                .request_header("traceparent", tp)
                .request_header("tracestate", "vendor=1");
            rig.host.exchange(&ex);
        }
        rig.host.settle(20);
        let otlp = rig.collector.otlp_spans();
        assert_eq!(otlp.len(), 2, "{p:?}");
        for span in &otlp {
            assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
            assert_eq!(span["traceState"], "vendor=1");
        }
        assert_ne!(otlp[0]["spanId"], otlp[1]["spanId"]);
        let spans = rig.collector.opik_spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(
            spans[0]["trace_id"], spans[1]["trace_id"],
            "one Opik trace per W3C trace"
        );
    }
}

#[test]
fn opik_current_span_data_attaches_to_an_existing_trace() {
    for p in BOTH {
        let mut rig = new_rig(p, "");
        let body = body_with(json!({"metadata": {"opik": {"current_span_data": {
            "trace_id": "0193e2c4-0000-7000-8000-0000000000aa",
            "id": "0193e2c4-0000-7000-8000-0000000000bb"}}}}));
        rig.host.exchange(&basic_exchange(body));
        rig.host.settle(20);
        assert!(
            rig.collector.opik_traces().is_empty(),
            "no new trace ({p:?})"
        );
        let spans = rig.collector.opik_spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["trace_id"], "0193e2c4-0000-7000-8000-0000000000aa");
        assert_eq!(
            spans[0]["parent_span_id"],
            "0193e2c4-0000-7000-8000-0000000000bb"
        );
        assert!(rig.collector.received().iter().all(|r| r.accepted()));
    }
}

#[test]
fn gateway_route_and_service_become_metadata() {
    for p in BOTH {
        let mut rig = new_rig(p, "");
        rig.host
            .exchange(&basic_exchange(fixture("basic", "request.json")));
        let (_, span, otlp) = exported(&mut rig);
        let meta = &span["metadata"];
        match p {
            Personality::Kong => {
                assert_eq!(meta["kong.route_name"], "llm_route");
                assert_eq!(meta["kong.service_name"], "llm_upstream");
                assert!(meta["kong.route_id"]
                    .as_str()
                    .is_some_and(|id| id.len() == 36));
            }
            Personality::Envoy => {
                assert_eq!(meta["envoy.route_name"], "llm_route");
                assert_eq!(meta["envoy.cluster_name"], "llm_upstream");
            }
        }
        let key = match p {
            Personality::Kong => "langfuse.trace.metadata.kong.route_name",
            Personality::Envoy => "langfuse.trace.metadata.envoy.route_name",
        };
        assert_eq!(attr(&otlp, key)["stringValue"], "llm_route");
    }
}

#[test]
fn strip_request_metadata_forwards_a_clean_body_with_a_matching_length() {
    for p in BOTH {
        let mut rig = new_rig(p, r#","strip_request_metadata":true"#);
        let body = body_with(json!({"metadata": {"user_id": "u-1", "session_id": "s-1",
            "opik": {"project_name": "p"}, "langfuse": {"trace_name": "t"}}}));
        let ex =
            basic_exchange(body.clone()).request_header("content-length", &body.len().to_string());
        let out = rig.host.exchange(&ex);
        assert!(out.trap.is_none(), "{:?}", out.trap);
        let forwarded: Value = serde_json::from_slice(&out.upstream_body).expect("JSON upstream");
        assert_eq!(forwarded["metadata"], json!({"user_id": "u-1"}), "{p:?}");
        assert_eq!(
            forwarded["messages"],
            serde_json::from_slice::<Value>(&body).expect("json")["messages"]
        );
        assert_eq!(
            out.upstream_header("content-length"),
            Some(out.upstream_body.len().to_string().as_str()),
            "{p:?}"
        );
        assert_eq!(out.client_body, fixture("basic", "response.json"));
        let (trace, _, _) = exported(&mut rig);
        assert_eq!(
            trace["thread_id"], "s-1",
            "the trace still read the metadata"
        );
        assert_eq!(trace["name"], "t");
    }
}

/// What the client of `stream_text` sees without `include_usage`: no usage-only chunk, no
/// `"usage":null` members.
fn stream_without_usage(sse: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(sse);
    text.split_inclusive("\n\n")
        .filter(|event| !event.contains("\"choices\":[]"))
        .map(|event| event.replace(",\"usage\":null", ""))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn inject_stream_usage_gives_the_trace_usage_and_the_client_its_own_stream() {
    let mut request: Value =
        serde_json::from_slice(&fixture("stream_text", "request.json")).expect("json");
    if let Some(obj) = request.as_object_mut() {
        obj.remove("stream_options");
    }
    let request = serde_json::to_vec(&request).expect("encode");
    let sse = fixture("stream_text", "response.sse");
    let expected = stream_without_usage(&sse);
    assert!(expected.len() < sse.len());
    for p in BOTH {
        for chunking in [Chunking::Fixed(7), Chunking::Fixed(100), Chunking::Whole] {
            let mut rig = new_rig(p, r#","inject_stream_usage":true"#);
            let ex = Exchange::new("POST", "/v1/chat/completions")
                .request_header("content-type", "application/json")
                .request_body(request.clone(), Chunking::Whole)
                .response(200, &[("content-type", "text/event-stream")])
                .response_body(sse.clone(), chunking.clone());
            let out = rig.host.exchange(&ex);
            assert!(out.trap.is_none() && !out.paused_response, "{p:?}");
            let forwarded: Value = serde_json::from_slice(&out.upstream_body).expect("json");
            assert_eq!(forwarded["stream_options"]["include_usage"], true);
            assert_eq!(
                String::from_utf8_lossy(&out.client_body),
                String::from_utf8_lossy(&expected),
                "{p:?} {chunking:?}"
            );
            let (_, span, _) = exported(&mut rig);
            assert_eq!(span["usage"]["prompt_tokens"], 1120);
            assert_eq!(span["usage"]["completion_tokens"], 6);
        }
    }
}

#[test]
fn requests_that_asked_for_usage_are_left_alone() {
    for p in BOTH {
        let mut rig = new_rig(p, r#","inject_stream_usage":true"#);
        let ex = Exchange::new("POST", "/v1/chat/completions")
            .request_header("content-type", "application/json")
            .request_body(fixture("stream_text", "request.json"), Chunking::Whole)
            .response(200, &[("content-type", "text/event-stream")])
            .response_body(fixture("stream_text", "response.sse"), Chunking::Fixed(50));
        let out = rig.host.exchange(&ex);
        assert_eq!(out.upstream_body, ex.request_body, "{p:?}");
        assert_eq!(out.client_body, ex.response_body);
    }
}

#[test]
fn capture_modes_and_the_opt_out_header() {
    let routes = r#","routes":[{"path_prefix":"/meta/","capture":"metadata","provider":"openai"},
        {"path_prefix":"/off/","capture":"off"},{"path_prefix":"/"}]"#;
    for p in BOTH {
        let mut rig = new_rig(p, routes);
        let meta = exchange_at(
            "/meta/v1/chat/completions",
            fixture("basic", "request.json"),
            200,
            fixture("basic", "response.json"),
        );
        rig.host.exchange(&meta);
        let (_, span, otlp) = exported(&mut rig);
        assert_eq!(span["usage"]["total_tokens"], 24, "{p:?}");
        assert!(!span.to_string().contains("Say hi") && !span.to_string().contains("Hi!"));
        assert_eq!(attr(&otlp, "gen_ai.input.messages"), Value::Null);
        assert_eq!(attr(&otlp, "gen_ai.usage.input_tokens")["intValue"], "21");

        let mut rig = new_rig(p, routes);
        let off = exchange_at(
            "/off/v1/chat/completions",
            fixture("basic", "request.json"),
            200,
            fixture("basic", "response.json"),
        );
        let out = rig.host.exchange(&off);
        assert_eq!(out.client_body, off.response_body);
        rig.host.settle(10);
        assert!(rig.collector.received().is_empty(), "off is off");

        let mut rig = new_rig(p, "");
        let ex = basic_exchange(fixture("basic", "request.json"))
            .request_header("X-LLM-Tracer-Omit", "response");
        let out = rig.host.exchange(&ex);
        assert_eq!(
            out.upstream_header("x-llm-tracer-omit"),
            None,
            "removed before forwarding"
        );
        let (_, span, _) = exported(&mut rig);
        assert!(span.to_string().contains("Say hi"));
        assert!(!span.to_string().contains("Hi!"));

        let mut rig = new_rig(p, "");
        let ex = basic_exchange(fixture("basic", "request.json"))
            .request_header("x-llm-tracer-omit", "all");
        let out = rig.host.exchange(&ex);
        assert_eq!(out.upstream_header("x-llm-tracer-omit"), None);
        rig.host.settle(10);
        assert!(rig.collector.received().is_empty());
    }
}

/// Kong hands a filter at most 100 header pairs at once; a request header past them is still
/// read (the opt-out, a context header) and the opt-out still removed, and so is a response
/// header (`content-type`).
#[test]
fn headers_past_the_hundredth_are_read() {
    for p in BOTH {
        let crowded = |mut ex: Exchange| {
            for i in 0..110 {
                ex = ex.request_header(&format!("x-filler-{i}"), "v");
            }
            ex
        };
        let mut rig = new_rig(p, "");
        let ex = crowded(basic_exchange(fixture("basic", "request.json")))
            .request_header("x-chat-id", "late-chat");
        rig.host.exchange(&ex);
        let (_, span, _) = exported(&mut rig);
        assert_eq!(span["metadata"]["chat_id"], "late-chat", "{p:?}");

        let mut rig = new_rig(p, "");
        let ex = crowded(basic_exchange(fixture("basic", "request.json")))
            .request_header("x-llm-tracer-omit", "all");
        let out = rig.host.exchange(&ex);
        assert_eq!(out.upstream_header("x-llm-tracer-omit"), None, "{p:?}");
        assert_eq!(out.client_body, ex.response_body);
        rig.host.settle(10);
        assert!(rig.collector.received().is_empty(), "{p:?}: opted out");

        // Response headers too: the event stream is known from a `content-type` past them.
        let mut rig = new_rig(p, "");
        let mut headers: Vec<(String, String)> = (0..110)
            .map(|i| (format!("x-filler-{i}"), "v".to_string()))
            .collect();
        headers.push(("content-type".into(), "text/event-stream".into()));
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ex = Exchange::new("POST", "/v1/chat/completions")
            .request_header("content-type", "application/json")
            .request_body(fixture("stream_text", "request.json"), Chunking::Whole)
            .response(200, &headers)
            .response_body(fixture("stream_text", "response.sse"), Chunking::Fixed(80));
        rig.host.exchange(&ex);
        let (_, span, _) = exported(&mut rig);
        assert!(span["metadata"]["ttft_ms"].is_number(), "{p:?}: streamed");
    }
}

#[test]
fn credentials_never_leave_the_filter() {
    let extra = r#","credential_headers":["x-internal-token"],
        "context":{"metadata_headers":["x-team"]}"#;
    let secrets = [
        ("authorization", "Bearer sk-proj-CREDENTIAL0001"),
        ("x-api-key", "CREDENTIAL0002"),
        ("api-key", "CREDENTIAL0003"),
        ("cookie", "session=CREDENTIAL0004"),
        ("proxy-authorization", "Basic CREDENTIAL0005"),
        ("X-Internal-Token", "CREDENTIAL0006"),
    ];
    for p in BOTH {
        let mut rig = new_rig(p, extra);
        let mut ex =
            basic_exchange(fixture("basic", "request.json")).request_header("x-team", "search");
        for (k, v) in secrets {
            ex = ex.request_header(k, v);
        }
        rig.host.exchange(&ex);
        let (_, span, _) = exported(&mut rig);
        assert_eq!(span["metadata"]["header.x-team"], "search");
        let all = everything_exported(&rig);
        assert!(
            !all.contains("CREDENTIAL"),
            "{p:?}: a credential left the filter"
        );
        let logs = format!("{:?}", rig.host.logs());
        assert!(!logs.contains("CREDENTIAL"));
    }
}

#[test]
fn redaction_leaves_nothing_matching() {
    let extra = r#","redact":{"builtin":["email","card_number","bearer_token","api_key","jwt"],
        "literals":["Project Falcon"],"patterns":["EMP-[0-9]{6}"],"replacement":"[{kind}]"}"#;
    let planted = [
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "Bearer abcdefgh12345678",
        "sk-proj-abcdefghijklmnop1234",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlc2lnbmF0dXJl",
        "Project Falcon",
        "EMP-123456",
    ];
    let prompt = format!("Please handle: {}", planted.join(" and "));
    let body = body_with(json!({
        "messages": [{"role": "user", "content": prompt}],
        "metadata": {"note": "contact jane.doe@example.com"},
        "user": "jane.doe@example.com"
    }));
    for p in BOTH {
        let mut rig = new_rig(p, extra);
        rig.host.exchange(&basic_exchange(body.clone()));
        let (_, span, _) = exported(&mut rig);
        let all = everything_exported(&rig);
        for secret in planted {
            assert!(!all.contains(secret), "{p:?}: {secret} was exported");
        }
        // The JSON-escaped forms are checked too, so nothing hides behind escaping.
        assert!(!all.contains("Falcon"));
        assert!(span.to_string().contains("[email]"), "{span}");
        assert!(span.to_string().contains("[literal]"));
        assert!(span.to_string().contains("[pattern]"));
    }
}

#[test]
fn sampling_keeps_the_configured_share_and_every_error() {
    // 300 exchanges at rate 0.5: the kept count lies within 5 standard deviations
    // (sqrt(300 * 0.25) ≈ 8.7) of 150.
    for p in BOTH {
        let mut rig = new_rig(
            p,
            r#","sampling":{"rate":0.5,"keep_errors":true},"batch_max_records":1000"#,
        );
        let n = 300;
        for _ in 0..n {
            rig.host
                .exchange(&basic_exchange(fixture("basic", "request.json")));
        }
        let failed_ex = exchange_at(
            "/v1/chat/completions",
            fixture("basic", "request.json"),
            500,
            fixture("error_400", "response.json"),
        );
        let errors = 40;
        for _ in 0..errors {
            rig.host.exchange(&failed_ex);
        }
        rig.host.settle(40);
        let spans = rig.collector.opik_spans();
        let failed_kept = spans
            .iter()
            .filter(|s| s.get("error_info").is_some())
            .count();
        let ok_kept = spans.len() - failed_kept;
        assert_eq!(failed_kept, errors, "{p:?}: every error is kept");
        assert!(
            (ok_kept as f64 - 150.0).abs() < 5.0 * 8.7,
            "{p:?}: kept {ok_kept} of {n}"
        );
        assert_eq!(
            rig.host.metric_total("llm_tracer_requests_total"),
            Some((n + errors) as i64),
            "metrics count every exchange, sampled or not"
        );
    }
}

#[test]
fn cost_is_computed_from_the_price_table_and_configuration() {
    for p in BOTH {
        let mut rig = new_rig(p, "");
        rig.host
            .exchange(&basic_exchange(fixture("basic", "request.json")));
        let (_, span, otlp) = exported(&mut rig);
        // gpt-4o-mini-2024-07-18 resolves to gpt-4o-mini at $0.15 / $0.60 per 1M tokens:
        // 21 input and 3 output tokens cost (21 × 0.15 + 3 × 0.60) / 1e6 = 4.95e-6 USD.
        let cost = span["total_estimated_cost"].as_f64().expect("cost");
        assert!((cost - 4.95e-6).abs() < 1e-12, "{p:?}: {cost}");
        assert_eq!(span["metadata"]["cost.priced_as"], "gpt-4o-mini");
        let details: Value = serde_json::from_str(
            attr(&otlp, "langfuse.observation.cost_details")["stringValue"]
                .as_str()
                .expect("cost details"),
        )
        .expect("json");
        assert!((details["total"].as_f64().expect("total") - 4.95e-6).abs() < 1e-12);

        let mut rig = new_rig(p, r#","pricing":{"gpt-4o-mini":{"input":1,"output":2}}"#);
        rig.host
            .exchange(&basic_exchange(fixture("basic", "request.json")));
        let (_, span, _) = exported(&mut rig);
        // Configured: (21 × 1 + 3 × 2) / 1e6 = 2.7e-5 USD.
        let cost = span["total_estimated_cost"].as_f64().expect("cost");
        assert!((cost - 2.7e-5).abs() < 1e-12, "{p:?}: {cost}");

        let mut rig = new_rig(p, "");
        let body = body_with(json!({"model": "house-model"}));
        let mut ex = basic_exchange(body);
        let mut response: Value =
            serde_json::from_slice(&fixture("basic", "response.json")).expect("json");
        response["model"] = json!("house-model");
        ex.response_body = serde_json::to_vec(&response).expect("encode");
        rig.host.exchange(&ex);
        let (_, span, otlp) = exported(&mut rig);
        assert!(
            span.get("total_estimated_cost").is_none(),
            "unknown model: no cost, not 0"
        );
        assert_eq!(
            span["metadata"]["cost.status"],
            "not computed: model not in the price table"
        );
        assert_eq!(
            attr(&otlp, "langfuse.observation.cost_details"),
            Value::Null
        );
    }
}

#[test]
fn streamed_timings_are_recorded() {
    for p in BOTH {
        let mut rig = new_rig(p, "");
        let ex = Exchange::new("POST", "/v1/chat/completions")
            .request_header("content-type", "application/json")
            .request_body(fixture("stream_text", "request.json"), Chunking::Whole)
            .response(200, &[("content-type", "text/event-stream")])
            .response_body(fixture("stream_text", "response.sse"), Chunking::Fixed(80));
        rig.host.exchange(&ex);
        let (_, span, _) = exported(&mut rig);
        let meta = &span["metadata"];
        assert!(meta["ttft_ms"].is_number(), "{p:?}: {meta}");
        assert!(meta["latency_ms"].is_number());
        assert!(meta["output_tokens_per_second"].is_number() || meta["latency_ms"] == 0.0);
    }
}

#[test]
fn opik_log_plugin_configuration_works_as_is() {
    // The flat keys of the opik-log Lua plugin, as a Kong user has them today.
    let collector = validating_collector();
    let addr = collector.addr();
    let config = format!(
        r#"{{"http_endpoint":"http://{addr}/","timeout":10000,"keepalive":60000,"ai_proxy_name":"proxy","flush_interval_ms":1000}}"#
    );
    let opts = llm_tracer_host::HostOptions::new(Personality::Kong, config);
    let mut host = llm_tracer_host::Host::new(module(), opts).expect("loads");
    assert!(host.configured());
    host.exchange(&basic_exchange(fixture("basic", "request.json")));
    host.settle(20);
    assert_eq!(collector.opik_spans().len(), 1);
    assert!(collector
        .received()
        .iter()
        .all(|r| r.accepted() && r.violations.is_empty()));
}
