use super::*;
use crate::protocols::Protocol;
use crate::record::Part;

const MS: u64 = 1_000_000;

fn fixture(case: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openai_chat/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn start() -> RequestStart {
    RequestStart {
        path: "/v1/chat/completions".into(),
        authority: Some("api.openai.com".into()),
        provider: "openai".into(),
        now_ns: 1_000 * MS,
        ..RequestStart::default()
    }
}

/// Runs one exchange with the response cut at the given offsets; each chunk arrives 10 ms
/// after the previous one.
fn run(case: &str, status: u16, content_type: &str, body: &[u8], cuts: &[usize]) -> TraceRecord {
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(Some(&fixture(case, "request.json")), true);
    c.response_headers(Some(status), Some(content_type), None);
    let mut at = 0;
    let mut now = 1_100 * MS;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        c.response_chunk(&body[at..cut], now);
        at = cut;
        now += 10 * MS;
    }
    c.response_end();
    c.finish(2_000 * MS)
}

#[test]
fn non_streamed_completion() {
    let body = fixture("basic", "response.json");
    let r = run("basic", 200, "application/json", &body, &[]);
    assert_eq!(r.request_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(r.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(r.params.temperature, Some(0.2));
    assert_eq!(r.params.max_tokens, Some(256));
    assert_eq!(r.params.seed, Some(7));
    assert_eq!(r.params.stop, vec!["\n\n".to_string()]);
    assert_eq!(r.messages.len(), 2);
    assert_eq!(r.messages[0].role, "system");
    assert_eq!(r.choices[0].message.text().as_deref(), Some("Hi!"));
    assert_eq!(r.finish_reasons(), vec!["stop"]);
    assert_eq!(
        (r.usage.input, r.usage.output, r.usage.total),
        (Some(21), Some(3), Some(24))
    );
    assert_eq!(r.usage.cached_input, Some(0));
    assert_eq!(
        r.response_id.as_deref(),
        Some("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT")
    );
    assert_eq!(r.system_fingerprint.as_deref(), Some("fp_06737a9306"));
    assert!(r.error.is_none() && !r.incomplete && !r.streamed);
    assert_eq!(r.first_token_ns, None);
    assert_eq!(r.end_ns, 2_000 * MS);
}

#[test]
fn streamed_text_at_every_split_point() {
    let body = fixture("stream_text", "response.sse");
    let whole = run(
        "stream_text",
        200,
        "text/event-stream; charset=utf-8",
        &body,
        &[],
    );
    assert!(whole.streamed);
    assert_eq!(whole.choices.len(), 1);
    assert_eq!(whole.choices[0].message.role, "assistant");
    assert_eq!(
        whole.choices[0].message.text().as_deref(),
        Some("Sunset — warm 🌅")
    );
    assert_eq!(whole.usage.input, Some(1120));
    assert_eq!(whole.usage.cached_input, Some(1024));
    assert_eq!(whole.params.max_completion_tokens, Some(50));
    assert!(whole.params.stream);
    // The inline image is described, not copied.
    match &whole.messages[0].parts[1] {
        Part::Uri { modality, uri } => {
            assert_eq!(*modality, "image");
            assert!(
                uri.starts_with("[inline image/png, 96 base64 chars omitted"),
                "{uri}"
            );
        }
        other => panic!("expected a uri part, got {other:?}"),
    }
    for cut in 1..body.len() {
        let split = run("stream_text", 200, "text/event-stream", &body, &[cut]);
        assert_eq!(split.choices, whole.choices, "split at {cut}");
        assert_eq!(split.usage, whole.usage, "split at {cut}");
    }
}

#[test]
fn time_to_first_token_is_the_first_content_chunk() {
    let body = fixture("stream_text", "response.sse");
    // The role-only chunk ends at the first blank line; the first content chunk follows.
    let first_event_end = body
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("event boundary")
        + 2;
    let r = run(
        "stream_text",
        200,
        "text/event-stream",
        &body,
        &[first_event_end],
    );
    // Chunk 0 (role only) at 1100 ms, chunk 1 (content) at 1110 ms; start was 1000 ms.
    assert_eq!(r.first_token_ns, Some(1_110 * MS));
    assert_eq!(r.ttft_ms(), Some(110.0));
}

#[test]
fn streamed_tool_calls_at_every_split_point() {
    let body = fixture("stream_tools", "response.sse");
    let whole = run("stream_tools", 200, "text/event-stream", &body, &[]);
    let parts = &whole.choices[0].message.parts;
    assert_eq!(
        parts,
        &vec![
            Part::ToolCall {
                id: "call_paris01".into(),
                name: "get_weather".into(),
                arguments: "{\"city\": \"Paris\"}".into()
            },
            Part::ToolCall {
                id: "call_tokyo02".into(),
                name: "get_weather".into(),
                arguments: "{\"city\": \"Tokyo\"}".into()
            },
        ]
    );
    assert_eq!(whole.finish_reasons(), vec!["tool_calls"]);
    assert!(whole
        .tools_json
        .as_deref()
        .is_some_and(|t| t.contains("get_weather")));
    assert_eq!(whole.usage.total, Some(110));
    for cut in 1..body.len() {
        let split = run("stream_tools", 200, "text/event-stream", &body, &[cut]);
        assert_eq!(split.choices, whole.choices, "split at {cut}");
    }
    for a in (1..body.len()).step_by(7) {
        for b in (a..body.len()).step_by(131) {
            let split = run("stream_tools", 200, "text/event-stream", &body, &[a, b]);
            assert_eq!(split.choices, whole.choices, "split at {a},{b}");
        }
    }
}

#[test]
fn stream_without_usage_has_no_counts() {
    let body = fixture("stream_no_usage", "response.sse");
    let r = run("stream_no_usage", 200, "text/event-stream", &body, &[]);
    assert_eq!(r.choices[0].message.text().as_deref(), Some("1, 2, 3."));
    assert!(r.usage.is_empty(), "absent usage must not become zeros");
    assert!(r.unparsed.is_empty());
}

#[test]
fn upstream_error_body_gives_the_provider_message() {
    let body = fixture("error_400", "response.json");
    let r = run("error_400", 400, "application/json", &body, &[]);
    let err = r.error.expect("error");
    assert_eq!(err.kind, "invalid_request_error");
    assert!(err.message.starts_with("Invalid 'temperature'"));
    assert_eq!(r.status, Some(400));
    assert!(r.choices.is_empty());
}

#[test]
fn upstream_5xx_without_json_still_errors() {
    let r = run("basic", 502, "text/html", b"<html>bad gateway</html>", &[]);
    let err = r.error.expect("error");
    assert_eq!(err.kind, "502");
    assert_eq!(err.message, "HTTP 502 from upstream");
}

#[test]
fn tool_result_conversation() {
    let body = fixture("tool_result", "response.json");
    let r = run("tool_result", 200, "application/json", &body, &[]);
    assert!(
        matches!(&r.messages[1].parts[0], Part::ToolCall { name, .. } if name == "get_weather")
    );
    assert_eq!(r.messages[2].tool_call_id.as_deref(), Some("call_paris01"));
    assert_eq!(r.usage.cached_input, None);
    assert_eq!(r.usage.reasoning, Some(0));
}

#[test]
fn abort_mid_stream_keeps_what_was_seen() {
    let body = fixture("stream_text", "response.sse");
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(Some(&fixture("stream_text", "request.json")), true);
    c.response_headers(Some(200), Some("text/event-stream"), None);
    let cut = body.len() / 2;
    c.response_chunk(&body[..cut], 1_100 * MS);
    assert!(!c.response_ended());
    let r = c.finish(1_500 * MS);
    assert!(r.incomplete);
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("incomplete")
    );
    let text = r.choices[0].message.text().unwrap_or_default();
    assert!(text.starts_with("Sun"), "{text}");
    assert!(r.usage.is_empty());
}

#[test]
fn bodies_over_the_cap_are_marked_truncated() {
    let body = fixture("basic", "response.json");
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 100);
    c.request_chunk(Some(&fixture("basic", "request.json")), true);
    c.response_headers(Some(200), Some("application/json"), None);
    c.response_chunk(&body, 1_100 * MS);
    c.response_end();
    let r = c.finish(1_200 * MS);
    assert!(r.truncated);
    assert_eq!(r.unparsed.len(), 2, "{:?}", r.unparsed);
    assert!(r.error.is_none());
}

#[test]
fn compressed_and_unreadable_bodies_are_noted() {
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(None, true);
    c.response_headers(Some(200), Some("application/json"), Some("gzip"));
    c.response_chunk(&[0x1f, 0x8b, 0x08, 0x00], 1_100 * MS);
    c.response_end();
    let r = c.finish(1_200 * MS);
    assert_eq!(r.unparsed.len(), 2, "{:?}", r.unparsed);
    assert!(r.unparsed[1].contains("content-encoding"));
    assert!(r.error.is_none());
}

#[test]
fn mid_stream_error_event_becomes_the_error() {
    let body =
        b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
        data: {\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}\n\n";
    let r = run("stream_no_usage", 200, "text/event-stream", body, &[]);
    assert_eq!(r.error.map(|e| e.kind), Some("server_error".into()));
    assert_eq!(r.choices[0].message.text().as_deref(), Some("Hel"));
}

#[test]
fn garbage_never_panics() {
    let inputs: [&[u8]; 6] = [
        b"",
        b"\xff\xfe\x00",
        b"{\"messages\":[{\"role\":1}]}",
        b"{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":99999999999}]}}]}",
        b"data: {\"choices\":[{\"index\":4294967296}]}\n\n",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    for input in inputs {
        for ct in ["application/json", "text/event-stream"] {
            let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
            c.request_chunk(Some(input), true);
            c.response_headers(Some(200), Some(ct), None);
            c.response_chunk(input, 1);
            c.response_end();
            let _ = c.finish(2);
        }
    }
}
