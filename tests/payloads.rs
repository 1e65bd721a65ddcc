//! What the filter's sink encoders produce for every fixture exchange, validated against the
//! published Opik OpenAPI spec, the OTLP/JSON rules and the OTel GenAI message schemas
//! (`../shared/specs`), plus the checks the specs cannot express (UUIDv7, hex ids, int64
//! strings) — all inside `llm_tracer_host::validate`.

use llm_tracer::capture::{Capture, RequestStart};
use llm_tracer::config::Config;
use llm_tracer::protocols::Protocol;
use llm_tracer::record::TraceRecord;
use llm_tracer::sinks::langfuse::LangfuseSink;
use llm_tracer::sinks::opik::OpikSink;
use llm_tracer::sinks::Sink;
use llm_tracer_host::validate::Specs;
use serde_json::Value;
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
        user: Some("user-123".into()),
        session: Some("conv-42".into()),
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
    c.finish(START + 1_250 * MS)
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
    let headers = &requests[0].headers;
    assert!(
        headers.contains(&("authorization", "opik-key".to_string())),
        "raw key, no Bearer"
    );
    assert!(headers.contains(&("comet-workspace", "team".to_string())));

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
    let headers = &requests[0].headers;
    // base64("pk-lf-1:sk-lf-2")
    assert!(headers.contains(&("authorization", "Basic cGstbGYtMTpzay1sZi0y".to_string())));
    assert!(headers.contains(&("x-langfuse-ingestion-version", "4".to_string())));

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
    assert_eq!(attr(basic, "user.id")["stringValue"], "user-123");
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
