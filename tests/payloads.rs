//! What the filter's sink encoders produce for every fixture exchange, validated against the
//! published Opik OpenAPI spec, the OTLP/JSON rules and the OTel GenAI message schemas
//! (`../shared/specs`), plus the checks the specs cannot express (UUIDv7, hex ids, int64
//! strings) — all inside `llm_tracer_host::validate`.

use llm_tracer::capture::{Capture, RequestStart};
use llm_tracer::config::Config;
use llm_tracer::context::{Context, OpikParent, Parent};
use llm_tracer::protocols::Protocol;
use llm_tracer::record::TraceRecord;
use llm_tracer::sinks::langfuse::LangfuseSink;
use llm_tracer::sinks::opik::OpikSink;
use llm_tracer::sinks::otlp::OtlpSink;
use llm_tracer::sinks::Sink;
use llm_tracer_host::validate::Specs;
use serde_json::{json, Value};
use std::rc::Rc;

const MS: u64 = 1_000_000;
const START: u64 = 1_785_585_600_000 * MS;

struct Case {
    name: &'static str,
    status: u16,
    stream: bool,
    complete: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "basic",
        status: 200,
        stream: false,
        complete: true,
    },
    Case {
        name: "stream_text",
        status: 200,
        stream: true,
        complete: true,
    },
    Case {
        name: "stream_tools",
        status: 200,
        stream: true,
        complete: true,
    },
    Case {
        name: "stream_no_usage",
        status: 200,
        stream: true,
        complete: true,
    },
    Case {
        name: "error_400",
        status: 400,
        stream: false,
        complete: true,
    },
    Case {
        name: "tool_result",
        status: 200,
        stream: false,
        complete: true,
    },
    Case {
        name: "stream_tools",
        status: 200,
        stream: true,
        complete: false,
    },
];

fn fixture(case: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openai_chat/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn record(case: &Case, n: u8) -> TraceRecord {
    let start = RequestStart {
        path: "/v1/chat/completions".into(),
        authority: Some("api.openai.com".into()),
        provider: "openai".into(),
        context: context(),
        body_context: true,
        now_ns: START,
        trace_id: [n; 16],
        span_id: [n.wrapping_add(1); 8],
        entropy: [n; 16],
    };
    let mut c = Capture::new(start, Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(Some(&fixture(case.name, "request.json")), true);
    let (file, ct) = if case.stream {
        ("response.sse", "text/event-stream")
    } else {
        ("response.json", "application/json")
    };
    let body = fixture(case.name, file);
    c.response_headers(Some(case.status), Some(ct), None);
    let cut = if case.complete {
        body.len()
    } else {
        body.len() / 2
    };
    c.response_chunk(&body[..cut], START + 180 * MS);
    if case.complete {
        c.response_end();
    }
    let mut record = c.finish(START + 1_250 * MS);
    llm_tracer::policy::price(&mut record, &config(), &mut Default::default());
    record
}

/// A context with every field set, as headers and defaults would give it.
fn context() -> Context {
    let mut ctx = Context {
        user: Some("user-123".into()),
        session: Some("conv-42".into()),
        chat_id: Some("chat-7".into()),
        message_id: Some("msg-9".into()),
        organization_id: Some("org-1".into()),
        project_id: Some("proj-2".into()),
        release: Some("1.4.0".into()),
        environment: Some("staging".into()),
        tags: vec!["beta".into(), "search".into()],
        ..Context::default()
    };
    ctx.metadata.insert("team".into(), json!("search"));
    ctx.metadata.insert("tier".into(), json!(2));
    ctx.metadata
        .insert("provider".into(), json!("clashes with a built-in key"));
    ctx
}

fn records() -> Vec<Rc<TraceRecord>> {
    CASES
        .iter()
        .enumerate()
        .map(|(i, case)| Rc::new(record(case, i as u8 + 1)))
        .collect()
}

fn config() -> Config {
    Config::parse(
        br#"{"opik":{"endpoint":"https://www.comet.com/opik/api","api_key":"opik-key","workspace":"team","project_name":"gateway"},
             "langfuse":{"endpoint":"https://cloud.langfuse.com","public_key":"pk-lf-1","secret_key":"sk-lf-2"}}"#,
    )
    .expect("config")
}

fn specs() -> Specs {
    Specs::shared().expect("the published specs (../shared/specs or LLM_TRACER_SPECS)")
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("sinks emit JSON")
}

#[test]
fn opik_batches_validate_against_the_opik_spec() {
    let specs = specs();
    let sink = OpikSink::new(config().opik.expect("opik"));
    let requests = sink.encode(&records());
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/opik/api/v1/private/traces/batch");
    assert_eq!(requests[1].path, "/opik/api/v1/private/spans/batch");
    assert!(
        requests[0].header("authorization") == Some("opik-key"),
        "raw key, no Bearer"
    );
    assert_eq!(requests[0].header("comet-workspace"), Some("team"));

    let traces = json(&requests[0].body);
    let violations = specs.opik_trace_batch(&traces);
    assert!(violations.is_empty(), "traces: {violations:#?}");
    let spans = json(&requests[1].body);
    let violations = specs.opik_span_batch(&spans);
    assert!(violations.is_empty(), "spans: {violations:#?}");

    let traces = traces["traces"].as_array().expect("traces");
    let spans = spans["spans"].as_array().expect("spans");
    assert_eq!(traces.len(), CASES.len());
    for (trace, span) in traces.iter().zip(spans) {
        assert_eq!(span["trace_id"], trace["id"]);
        assert_eq!(span["type"], "llm");
        assert_eq!(span["project_name"], "gateway");
        assert_eq!(trace["thread_id"], "conv-42");
        assert!(trace["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("019fbd32-0600-7")));
    }
    // The basic exchange: model, usage, ttft absent (not streamed), output in OpenAI shape.
    let basic = &spans[0];
    assert_eq!(basic["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(basic["provider"], "openai");
    assert_eq!(basic["usage"]["prompt_tokens"], 21);
    assert_eq!(basic["usage"]["total_tokens"], 24);
    assert_eq!(basic["output"]["choices"][0]["message"]["content"], "Hi!");
    assert_eq!(basic["input"]["messages"][0]["role"], "system");
    assert_eq!(basic["metadata"]["temperature"], 0.2);
    assert!(basic.get("ttft").is_none());
    // The streamed one carries ttft in ms; the error one carries error_info.
    assert_eq!(spans[1]["ttft"], 180.0);
    assert_eq!(
        spans[4]["error_info"]["exception_type"],
        "invalid_request_error"
    );
    assert!(
        spans[3].get("usage").is_none(),
        "no usage reported, none invented"
    );
    assert_eq!(spans[6]["metadata"]["incomplete"], true);
}

#[test]
fn langfuse_otlp_validates_against_otlp_and_genai_schemas() {
    let specs = specs();
    let sink = LangfuseSink::new(config().langfuse.expect("langfuse"));
    let requests = sink.encode(&records());
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/api/public/otel/v1/traces");
    // base64("pk-lf-1:sk-lf-2")
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic cGstbGYtMTpzay1sZi0y")
    );
    assert_eq!(
        requests[0].header("x-langfuse-ingestion-version"),
        Some("4")
    );

    let body = json(&requests[0].body);
    let violations = specs.otlp_traces(&body);
    assert!(violations.is_empty(), "{violations:#?}");

    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .expect("spans");
    assert_eq!(spans.len(), CASES.len());
    let attr = |span: &Value, key: &str| -> Value {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map(|kv| kv["value"].clone())
            .unwrap_or(Value::Null)
    };
    let basic = &spans[0];
    assert_eq!(basic["traceId"], "01010101010101010101010101010101");
    assert_eq!(basic["spanId"], "0202020202020202");
    assert_eq!(basic["kind"], 3);
    assert_eq!(basic["startTimeUnixNano"], "1785585600000000000");
    assert_eq!(attr(basic, "gen_ai.usage.input_tokens")["intValue"], "21");
    assert_eq!(attr(basic, "session.id")["stringValue"], "conv-42");
    // The request body names its end user (`user`), which outranks headers.
    assert_eq!(attr(basic, "user.id")["stringValue"], "end-user-9");
    // Cached tokens leave Langfuse's `input`: 1120 prompt tokens, 1024 of them cached.
    let details = attr(&spans[1], "langfuse.observation.usage_details")["stringValue"]
        .as_str()
        .map(|s| serde_json::from_str::<Value>(s).expect("usage details JSON"))
        .expect("usage details");
    assert_eq!(details["input"], 96);
    assert_eq!(details["input_cached_tokens"], 1024);
    assert_eq!(details["total"], 1126);
    assert_eq!(
        attr(&spans[1], "langfuse.observation.completion_start_time")["stringValue"],
        "2026-08-01T12:00:00.180000Z"
    );
    let error = &spans[4];
    assert_eq!(error["status"]["code"], 2);
    assert_eq!(
        attr(error, "langfuse.observation.level")["stringValue"],
        "ERROR"
    );
    let out = attr(&spans[2], "gen_ai.output.messages")["stringValue"]
        .as_str()
        .map(|s| serde_json::from_str::<Value>(s).expect("messages JSON"))
        .expect("output messages");
    assert_eq!(out[0]["finish_reason"], "tool_call");
    assert_eq!(out[0]["parts"][1]["arguments"]["city"], "Tokyo");
}

#[test]
fn payloads_never_carry_credentials() {
    let config = config();
    let opik = OpikSink::new(config.opik.expect("opik"));
    let langfuse = LangfuseSink::new(config.langfuse.expect("langfuse"));
    let records = records();
    for request in opik
        .encode(&records)
        .into_iter()
        .chain(langfuse.encode(&records))
    {
        let body = String::from_utf8(request.body).expect("utf-8");
        for secret in ["opik-key", "sk-lf-2", "cGstbGYtMTpzay1sZi0y"] {
            assert!(
                !body.contains(secret),
                "{secret} leaked into {}",
                request.path
            );
        }
    }
}

#[test]
fn context_cost_and_parents_reach_both_backends_in_spec() {
    let specs = specs();
    let config = config();
    let mut joined = record(&CASES[0], 9);
    joined.context.parent = Some(Parent {
        trace_id: [0xab; 16],
        span_id: [0xcd; 8],
        sampled: true,
        tracestate: Some("vendor=x".into()),
    });
    joined.trace_id = [0xab; 16];
    let mut linked = record(&CASES[1], 10);
    linked.context.opik_parent = Some(OpikParent {
        trace_id: "0193e2c4-0000-7000-8000-000000000001".into(),
        span_id: Some("0193e2c4-0000-7000-8000-000000000002".into()),
        project_name: Some("agents".into()),
    });
    let records = vec![
        Rc::new(joined),
        Rc::new(linked),
        Rc::new(record(&CASES[0], 11)),
    ];

    let opik = OpikSink::new(config.opik.clone().expect("opik")).encode(&records);
    let traces = json(&opik[0].body);
    let spans = json(&opik[1].body);
    assert!(
        specs.opik_trace_batch(&traces).is_empty(),
        "{:#?}",
        specs.opik_trace_batch(&traces)
    );
    assert!(
        specs.opik_span_batch(&spans).is_empty(),
        "{:#?}",
        specs.opik_span_batch(&spans)
    );
    let traces = traces["traces"].as_array().expect("traces");
    let spans = spans["spans"].as_array().expect("spans");
    assert_eq!(
        traces.len(),
        2,
        "the linked exchange joins an existing Opik trace"
    );
    assert_eq!(spans.len(), 3);
    assert_eq!(spans[1]["trace_id"], "0193e2c4-0000-7000-8000-000000000001");
    assert_eq!(
        spans[1]["parent_span_id"],
        "0193e2c4-0000-7000-8000-000000000002"
    );
    assert_eq!(spans[1]["project_name"], "agents");
    // Two exchanges of one W3C trace share the Opik trace id, whatever their start times.
    let mut later = record(&CASES[0], 12);
    later.context.parent = records[0].context.parent.clone();
    later.trace_id = [0xab; 16];
    later.start_ns += 60_000 * MS;
    let (a, _) = llm_tracer::sinks::opik::ids(&records[0]);
    let (b, _) = llm_tracer::sinks::opik::ids(&later);
    assert_eq!(a, b);
    let span = &spans[0];
    assert_eq!(
        span["tags"],
        json!(["llm-tracer", "openai", "beta", "search"])
    );
    assert_eq!(span["metadata"]["chat_id"], "chat-7");
    assert_eq!(span["metadata"]["team"], "search");
    assert_eq!(span["metadata"]["provider"], "openai", "built-in keys win");
    assert_eq!(span["metadata"]["cost.priced_as"], "gpt-4o-mini");
    let cost = span["total_estimated_cost"].as_f64().expect("cost");
    let price = config.pricing.lookup("gpt-4o-mini").expect("priced").price;
    // 21 input and 3 output tokens.
    let expected = (21.0 * price.input + 3.0 * price.output) / 1e6;
    assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    assert_eq!(traces[0]["thread_id"], "conv-42");

    let body = json(
        &LangfuseSink::new(config.langfuse.clone().expect("langfuse")).encode(&records)[0].body,
    );
    assert!(
        specs.otlp_traces(&body).is_empty(),
        "{:#?}",
        specs.otlp_traces(&body)
    );
    let lf_spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .expect("spans");
    assert_eq!(lf_spans[0]["traceId"], "abababababababababababababababab");
    assert_eq!(lf_spans[0]["parentSpanId"], "cdcdcdcdcdcdcdcd");
    assert_eq!(lf_spans[0]["traceState"], "vendor=x");
    let attr = |key: &str| {
        lf_spans[0]["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .map(|kv| kv["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attr("langfuse.release")["stringValue"], "1.4.0");
    assert_eq!(attr("langfuse.environment")["stringValue"], "staging");
    assert_eq!(
        attr("langfuse.trace.metadata.team")["stringValue"],
        "search"
    );
    assert_eq!(attr("langfuse.trace.metadata.tier")["intValue"], "2");
    let details: Value = serde_json::from_str(
        attr("langfuse.observation.cost_details")["stringValue"]
            .as_str()
            .expect("cost details"),
    )
    .expect("JSON");
    assert!((details["total"].as_f64().expect("total") - expected).abs() < 1e-12);
    assert!(lf_spans[2].get("parentSpanId").is_none());
}

#[test]
fn generic_otlp_sends_semantic_conventions_only() {
    let specs = specs();
    let config = Config::parse(
        br#"{"otlp":{"endpoint":"https://api.honeycomb.io","headers":{"X-Honeycomb-Team":"hc-secret"},
             "resource_attributes":{"deployment.environment.name":"prod","service.name":"gateway"}}}"#,
    )
    .expect("config");
    let sink = OtlpSink::new(config.otlp.clone().expect("otlp"));
    let records = records();
    let requests = sink.encode(&records);
    assert_eq!(requests[0].path, "/v1/traces");
    assert_eq!(requests[0].header("x-honeycomb-team"), Some("hc-secret"));
    let body = json(&requests[0].body);
    assert!(
        specs.otlp_traces(&body).is_empty(),
        "{:#?}",
        specs.otlp_traces(&body)
    );
    let text = body.to_string();
    assert!(!text.contains("langfuse."), "no Langfuse attributes");
    assert!(!text.contains("gen_ai.input.messages"), "content is opt-in");
    assert!(!text.contains("Say hi"));
    assert!(!text.contains("hc-secret"));
    let resource = &body["resourceSpans"][0]["resource"]["attributes"];
    assert_eq!(resource[0]["key"], "service.name");
    assert_eq!(resource[0]["value"]["stringValue"], "gateway");
    assert_eq!(resource[1]["key"], "deployment.environment.name");
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .expect("spans");
    assert_eq!(spans.len(), CASES.len());
    let keys: Vec<&str> = spans[0]["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .filter_map(|kv| kv["key"].as_str())
        .collect();
    for key in &keys {
        let semconv = key.starts_with("gen_ai.")
            || [
                "server.address",
                "server.port",
                "url.path",
                "http.response.status_code",
                "error.type",
                "user.id",
                "session.id",
            ]
            .contains(key);
        assert!(semconv, "{key} is not a semantic-convention attribute");
    }
    assert!(keys.contains(&"gen_ai.usage.input_tokens"));

    let with_content = Config::parse(
        br#"{"otlp":{"endpoint":"http://collector:4318/v1/traces","capture_content":true}}"#,
    )
    .expect("config");
    let sink = OtlpSink::new(with_content.otlp.expect("otlp"));
    let requests = sink.encode(&records);
    assert_eq!(requests[0].path, "/v1/traces");
    let body = json(&requests[0].body);
    assert!(specs.otlp_traces(&body).is_empty());
    assert!(body.to_string().contains("gen_ai.input.messages"));
}
