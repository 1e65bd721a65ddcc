//! Encoder tests against JSON written out by hand: what each backend gets, read back.

use super::langfuse::LangfuseSink;
use super::opik::OpikSink;
use super::*;
use crate::config::Config;
use crate::context::OpikParent;
use crate::record::{Choice, Message, Part, Usage};
use serde_json::{json, Value};

/// Text with every kind of character JSON escapes, and some that it does not.
const TRICKY: &str = "say \"hi\" \\ \n\t\u{1}\u{1f} é 😀 and sixteen more bytes";
const START: u64 = 1_785_585_600_000_000_000;

fn record() -> TraceRecord {
    let mut r = TraceRecord {
        operation: "chat",
        api: "chat.completions",
        provider: "openai".into(),
        path: "/v1/chat/completions".into(),
        start_ns: START,
        end_ns: START + 1_000_000_000,
        request_model: Some("gpt-4o-mini".into()),
        usage: Usage {
            input: Some(10),
            output: Some(5),
            ..Usage::default()
        },
        cost: Some(Cost {
            input: 0.5,
            output: 0.25,
            total: 0.75,
            ..Cost::default()
        }),
        ..TraceRecord::default()
    };
    r.messages = vec![Message {
        role: "user".into(),
        parts: vec![Part::Text(TRICKY.into())],
        ..Message::default()
    }];
    let call = Part::ToolCall {
        id: "c1".into(),
        name: "f".into(),
        arguments: r#"{"q": "a\"b"}"#.into(),
    };
    r.choices = vec![Choice {
        index: 0,
        message: Message {
            role: "assistant".into(),
            parts: vec![Part::Text("ok".into()), call],
            ..Message::default()
        },
        finish_reason: Some("tool_calls".into()),
    }];
    r.context
        .metadata
        .insert("nested".into(), json!({"k": ["v\"", 1]}));
    r
}

fn config() -> Config {
    Config::parse(
        br#"{"opik":{"endpoint":"http://opik:5173/api"},
             "langfuse":{"endpoint":"http://langfuse:3000","public_key":"pk","secret_key":"sk"}}"#,
    )
    .expect("config")
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON")
}

#[test]
fn opik_trace_and_span_carry_the_same_exchange() {
    let sink = OpikSink::new(config().opik.expect("opik"));
    let records = [Rc::new(record()), Rc::new(record())];
    let requests = sink.encode(&records);
    assert_eq!(requests.len(), 2);
    let traces = parse(&requests[0].body);
    let spans = parse(&requests[1].body);
    let (trace, span) = (&traces["traces"][1], &spans["spans"][1]);
    assert_eq!(spans["spans"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        span["input"],
        json!({"messages": [{"role": "user", "content": TRICKY}]})
    );
    let call = json!({"id": "c1", "type": "function",
                      "function": {"name": "f", "arguments": "{\"q\": \"a\\\"b\"}"}});
    let message = json!({"role": "assistant", "content": "ok", "tool_calls": [call]});
    assert_eq!(
        span["output"],
        json!({"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]})
    );
    assert_eq!(
        span["metadata"]["cost"],
        json!({"input": 0.5, "output": 0.25, "total": 0.75})
    );
    assert_eq!(span["metadata"]["nested"], json!({"k": ["v\"", 1]}));
    assert_eq!(span["metadata"]["latency_ms"], json!(1000.0));
    for key in [
        "input",
        "output",
        "metadata",
        "tags",
        "start_time",
        "end_time",
    ] {
        assert_eq!(trace[key], span[key], "{key}");
    }
    assert_eq!(span["name"], "chat gpt-4o-mini");
    assert_eq!(
        span["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
    );
    assert_eq!(trace["id"], span["trace_id"]);
    assert!(trace.get("usage").is_none() && span.get("thread_id").is_none());
}

#[test]
fn opik_span_that_joins_a_trace_goes_alone() {
    let sink = OpikSink::new(config().opik.expect("opik"));
    let mut r = record();
    r.context.opik_parent = Some(OpikParent {
        trace_id: "0193e2c4-0000-7000-8000-000000000001".into(),
        span_id: None,
        project_name: None,
    });
    let requests = sink.encode(&[Rc::new(r)]);
    assert_eq!(requests.len(), 1);
    assert!(requests[0].path.ends_with("/v1/private/spans/batch"));
    let span = &parse(&requests[0].body)["spans"][0];
    assert_eq!(span["trace_id"], "0193e2c4-0000-7000-8000-000000000001");
    assert_eq!(span["input"]["messages"][0]["content"], TRICKY);
}

#[test]
fn langfuse_json_attributes_read_back() {
    let sink = LangfuseSink::new(config().langfuse.expect("langfuse"));
    let body = parse(&sink.encode(&[Rc::new(record())])[0].body);
    let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let attr = |key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|list| list.iter().find(|kv| kv["key"] == key))
            .map(|kv| kv["value"].clone())
            .unwrap_or(Value::Null)
    };
    let json_attr = |key: &str| -> Value {
        let text = attr(key)["stringValue"].as_str().map(str::to_owned);
        serde_json::from_str(&text.unwrap_or_default()).expect("JSON text")
    };
    assert_eq!(
        json_attr("gen_ai.input.messages"),
        json!([{"role": "user", "parts": [{"type": "text", "content": TRICKY}]}])
    );
    let call = json!({"type": "tool_call", "id": "c1", "name": "f", "arguments": {"q": "a\"b"}});
    assert_eq!(
        json_attr("gen_ai.output.messages"),
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}, call],
                "finish_reason": "tool_call"}])
    );
    assert_eq!(
        json_attr("langfuse.observation.cost_details"),
        json!({"input": 0.5, "output": 0.25, "total": 0.75})
    );
    assert_eq!(
        json_attr("langfuse.observation.usage_details"),
        json!({"input": 10, "output": 5, "total": 15})
    );
    assert_eq!(
        json_attr("langfuse.trace.metadata.nested"),
        json!({"k": ["v\"", 1]})
    );
    assert_eq!(
        attr("langfuse.trace.metadata.latency_ms"),
        json!({"doubleValue": 1000.0})
    );
    assert_eq!(attr("gen_ai.usage.input_tokens"), json!({"intValue": "10"}));
    assert_eq!(span["startTimeUnixNano"], START.to_string());
    assert_eq!(span["name"], "chat gpt-4o-mini");
}

#[test]
fn authority_split() {
    assert_eq!(
        split_authority("api.openai.com", true),
        ("api.openai.com", 443)
    );
    assert_eq!(
        split_authority("127.0.0.1:8080", false),
        ("127.0.0.1", 8080)
    );
    assert_eq!(split_authority("[::1]:9000", false), ("::1", 9000));
    assert_eq!(split_authority("[::1]", false), ("::1", 80));
    assert_eq!(split_authority("host:bad", false), ("host:bad", 80));
}
