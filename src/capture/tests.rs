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
    run_encoded(case, status, content_type, None, body, cuts, 1 << 20)
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

// ---- Content-Encoding ----

use crate::capture::harness;
use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

/// A gzip body (one member, no optional header fields) around `data`.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&compress_to_vec(data, 6));
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Runs an OpenAI chat exchange whose response is `body` sent with `encoding`, cut at `cuts`.
fn run_encoded(
    case: &str,
    status: u16,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
    cuts: &[usize],
    max_body: usize,
) -> TraceRecord {
    let mut c = Capture::new(start(), Protocol::OpenAiChat, max_body);
    c.request_chunk(Some(&fixture(case, "request.json")), true);
    c.response_headers(Some(status), Some(content_type), encoding);
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
fn compressed_fixtures_decode_at_every_split_point() {
    let cases: Vec<harness::Case> = harness::cases("openai_chat")
        .into_iter()
        .filter(|c| c.content_encoding.is_some())
        .collect();
    assert!(cases.len() >= 2, "gzip_json and br_stream");
    for case in &cases {
        let whole = case.run(&[]);
        let problems = case.check(&whole);
        assert!(problems.is_empty(), "{problems:#?}");
        assert!(
            !whole.truncated && whole.unparsed.is_empty(),
            "{}",
            case.name
        );
        for cut in 1..case.response.len() {
            let mut split = case.run(&[cut]);
            split.first_token_ns = whole.first_token_ns;
            assert_eq!(split, whole, "{} cut at {cut}", case.name);
        }
    }
}

#[test]
fn a_compressed_stream_gives_the_record_of_the_plain_one() {
    let plain = fixture("stream_tools", "response.sse");
    let expected = run("stream_tools", 200, "text/event-stream", &plain, &[]);
    for (encoding, body) in [
        ("gzip", gzip(&plain)),
        ("deflate", compress_to_vec_zlib(&plain, 6)),
        ("deflate", compress_to_vec(&plain, 9)),
    ] {
        for cut in (1..body.len()).step_by(3) {
            let mut r = run_encoded(
                "stream_tools",
                200,
                "text/event-stream",
                Some(encoding),
                &body,
                &[cut],
                1 << 20,
            );
            assert!(r.first_token_ns.is_some(), "{encoding} cut at {cut}");
            r.first_token_ns = expected.first_token_ns;
            assert_eq!(r, expected, "{encoding} cut at {cut}");
        }
    }
}

#[test]
fn time_to_first_token_comes_from_decoded_events() {
    // Each event compressed on its own member, as a server flushing per event would send it:
    // the first content event's chunk marks the first token.
    let plain = fixture("stream_text", "response.sse");
    let text = String::from_utf8(plain).expect("utf-8");
    let members: Vec<Vec<u8>> = text
        .split_inclusive("\n\n")
        .map(|event| gzip(event.as_bytes()))
        .collect();
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(Some(&fixture("stream_text", "request.json")), true);
    c.response_headers(Some(200), Some("text/event-stream"), Some("gzip"));
    for (i, member) in members.iter().enumerate() {
        c.response_chunk(member, (1_100 + 10 * i as u64) * MS);
    }
    c.response_end();
    let r = c.finish(2_000 * MS);
    assert_eq!(r.first_token_ns, Some(1_110 * MS));
    assert_eq!(
        r.choices[0].message.text().as_deref(),
        Some("Sunset — warm 🌅")
    );
    assert!(r.unparsed.is_empty(), "{:?}", r.unparsed);
}

#[test]
fn a_compressed_error_body_gives_the_provider_error() {
    let body = gzip(&fixture("error_400", "response.json"));
    let r = run_encoded(
        "error_400",
        400,
        "application/json",
        Some("gzip"),
        &body,
        &[7],
        1 << 20,
    );
    assert_eq!(
        r.error.map(|e| e.kind),
        Some("invalid_request_error".into())
    );
    assert!(r.unparsed.is_empty(), "{:?}", r.unparsed);
}

#[test]
fn corrupt_compressed_bodies_are_noted_not_parsed() {
    let plain = fixture("basic", "response.json");
    let mut body = gzip(&plain);
    let n = body.len();
    body[n - 6] ^= 0x55; // CRC-32 of the trailer
    let r = run_encoded(
        "basic",
        200,
        "application/json",
        Some("gzip"),
        &body,
        &[],
        1 << 20,
    );
    assert_eq!(
        r.unparsed,
        vec!["response: content-encoding gzip: checksum or length mismatch".to_string()]
    );
    assert!(r.choices.is_empty() && r.error.is_none());

    // Garbage from the first byte.
    let r = run_encoded(
        "basic",
        200,
        "application/json",
        Some("br"),
        &plain,
        &[],
        1 << 20,
    );
    assert_eq!(r.unparsed.len(), 1, "{:?}", r.unparsed);
    assert!(r.unparsed[0].starts_with("response: content-encoding br: "));
    assert!(r.choices.is_empty());

    // A stream corrupted half way keeps the events decoded before.
    let sse = fixture("stream_text", "response.sse");
    let mut body = compress_to_vec(&sse, 0); // stored blocks: bytes map one to one
    let n = body.len();
    body.truncate(n - 40);
    body.extend_from_slice(&[0xff; 8]);
    let r = run_encoded(
        "stream_text",
        200,
        "text/event-stream",
        Some("deflate"),
        &body,
        &[],
        1 << 20,
    );
    assert!(
        r.unparsed
            .iter()
            .any(|u| u.contains("content-encoding deflate")),
        "{:?}",
        r.unparsed
    );
    assert!(r.choices[0]
        .message
        .text()
        .is_some_and(|t| t.starts_with("Sun")));
}

#[test]
fn decompression_bombs_are_cut_at_the_cap() {
    // 8 MiB of spaces after a JSON value: far over a 64 KiB cap once decoded.
    let mut plain = fixture("basic", "response.json");
    plain.resize(8 << 20, b' ');
    let body = compress_to_vec_zlib(&plain, 9);
    assert!(body.len() < 64 << 10);
    let r = run_encoded(
        "basic",
        200,
        "application/json",
        Some("deflate"),
        &body,
        &[],
        64 << 10,
    );
    assert!(r.truncated);
    assert_eq!(
        r.unparsed,
        vec!["response: body incomplete or over max_body_bytes, not parsed".to_string()]
    );

    // A stream may decode to STREAM_DECODE_FACTOR times the cap, then stops.
    let mut sse = fixture("stream_text", "response.sse");
    let events = sse.clone();
    while sse.len() < 4 << 20 {
        sse.extend_from_slice(b": keep-alive padding padding padding padding\n\n");
    }
    sse.extend_from_slice(&events);
    let body = gzip(&sse);
    let cap = 16 << 10;
    let r = run_encoded(
        "stream_text",
        200,
        "text/event-stream",
        Some("gzip"),
        &body,
        &[],
        cap,
    );
    assert!(r.truncated);
    assert_eq!(
        r.choices[0].message.text().as_deref(),
        Some("Sunset — warm 🌅"),
        "what came before the cap is kept, nothing after it is decoded"
    );
    assert!(STREAM_DECODE_FACTOR * cap < sse.len());
}

#[test]
fn unsupported_and_identity_encodings() {
    let plain = fixture("basic", "response.json");
    let r = run_encoded(
        "basic",
        200,
        "application/json",
        Some("zstd"),
        &plain,
        &[],
        1 << 20,
    );
    assert_eq!(
        r.unparsed,
        vec!["response: content-encoding \"zstd\" is not supported, body not parsed".to_string()]
    );
    assert!(r.choices.is_empty());
    let r = run_encoded(
        "basic",
        200,
        "application/json",
        Some("gzip, br"),
        &plain,
        &[],
        1 << 20,
    );
    assert!(r.unparsed[0].contains("not supported"));
    for identity in ["identity", "", " Identity ", "identity, identity"] {
        let r = run_encoded(
            "basic",
            200,
            "application/json",
            Some(identity),
            &plain,
            &[],
            1 << 20,
        );
        assert!(r.unparsed.is_empty(), "{identity:?}: {:?}", r.unparsed);
        assert_eq!(r.choices[0].message.text().as_deref(), Some("Hi!"));
    }
}

#[test]
fn an_aborted_compressed_exchange_keeps_what_was_decoded() {
    let sse = fixture("stream_text", "response.sse");
    let body = gzip(&sse);
    let mut c = Capture::new(start(), Protocol::OpenAiChat, 1 << 20);
    c.request_chunk(Some(&fixture("stream_text", "request.json")), true);
    c.response_headers(Some(200), Some("text/event-stream"), Some("gzip"));
    c.response_chunk(&body[..body.len() - 30], 1_100 * MS);
    let r = c.finish(1_500 * MS);
    assert!(r.incomplete);
    assert!(
        r.unparsed.is_empty(),
        "no decoding error for a cut exchange: {:?}",
        r.unparsed
    );
    assert!(r.choices[0]
        .message
        .text()
        .is_some_and(|t| t.starts_with("Sun")));
}

#[test]
fn unknown_paths_on_a_route_are_recognised_by_body_shape() {
    let request = br#"{"model":"claude-sonnet-4-5","system":"Be brief.","max_tokens":64,
        "messages":[{"role":"user","content":"Hi"}]}"#;
    let response = br#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
        "content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":12,"output_tokens":3}}"#;
    let start = RequestStart {
        path: "/internal/llm".into(),
        authority: Some("gateway.local".into()),
        ..start()
    };
    let start = RequestStart {
        provider: String::new(),
        ..start
    };
    let mut c = Capture::sniffing(start, 1 << 20);
    c.request_chunk(Some(request), true);
    c.response_headers(Some(200), Some("application/json"), None);
    c.response_chunk(response, 1_100 * MS);
    c.response_end();
    let r = c.finish(1_200 * MS);
    assert_eq!(
        (r.operation, r.api, r.provider.as_str()),
        ("chat", "messages", "anthropic")
    );
    assert_eq!(r.messages[0].role, "system");
    assert_eq!(r.choices[0].message.text().as_deref(), Some("Hello!"));
    assert_eq!(r.usage.input, Some(12));

    let mut c = Capture::sniffing(
        RequestStart {
            provider: String::new(),
            ..start_unknown()
        },
        1 << 20,
    );
    c.request_chunk(Some(b"{\"hello\":1}"), true);
    c.response_headers(Some(200), Some("application/json"), None);
    c.response_chunk(b"{}", 1_100 * MS);
    c.response_end();
    let r = c.finish(1_200 * MS);
    assert_eq!(r.api, "unknown");
    assert!(r.unparsed[0].contains("not recognised"), "{:?}", r.unparsed);
}

fn start_unknown() -> RequestStart {
    RequestStart {
        path: "/internal/other".into(),
        ..start()
    }
}

/// A context from headers, for the body to add to and override.
fn header_context() -> Context {
    let mut ctx = Context {
        user: Some("from-header".into()),
        session: Some("session-from-header".into()),
        ..Context::default()
    };
    ctx.metadata.insert("team".into(), "platform".into());
    ctx
}

/// The chat reader hands the body's `user` and `metadata` to the context; any other body is
/// scanned for them. Either way the context is what `Context::apply_body` makes of the body.
#[test]
fn the_body_context_is_the_same_from_the_chat_reader_as_from_a_scan() {
    let bodies: [&[u8]; 10] = [
        br#"{"model":"m","user":"u-1","metadata":{"session_id":"s-9","team":"ml"},"messages":[{"role":"user","content":"hi"}]}"#,
        br#"{"metadata":{"user_id":"u-meta"},"model":"m","messages":[],"user":"u-1b"}"#,
        br#"{"model":"m","us\u0065r":"u-2","messages":[]}"#,
        br#"{"model":"m","user":null,"metadata":null,"messages":[]}"#,
        br#"{"model":"m","user":7,"metadata":[1],"messages":[]}"#,
        // A repeated member fails the typed reader; the scan keeps the first.
        br#"{"model":"m","user":"first","user":"second","messages":[]}"#,
        // Messages of the wrong type: not parsed, the context read all the same.
        br#"{"model":"m","user":"u-3","messages":"no"}"#,
        br#"[{"user":"u-4"}]"#,
        // Half a surrogate pair: the body is read again with the replacement character.
        br#"{"model":"m","messages":[{"role":"user","content":"\udc00"}],"user":"u-6"}"#,
        b"{\"user\":\"u-5\"",
    ];
    for body in bodies {
        let text = String::from_utf8_lossy(body);
        let mut expected = header_context();
        expected.apply_body(body);
        for owned in [false, true] {
            let mut c = Capture::new(
                RequestStart {
                    context: header_context(),
                    body_context: true,
                    ..start()
                },
                Protocol::OpenAiChat,
                1 << 20,
            );
            if owned {
                c.request_chunk_owned(Some(body.to_vec()), true);
            } else {
                c.request_chunk(Some(body), true);
            }
            let r = c.finish(2_000 * MS);
            assert_eq!(r.context, expected, "{text}");
        }
    }
    let mut first = header_context();
    first.apply_body(bodies[0]);
    assert_eq!(first.user.as_deref(), Some("u-1"));
    assert_eq!(first.session.as_deref(), Some("s-9"));
    assert_eq!(first.metadata.get("team"), Some(&"ml".into()));
    let mut repeated = header_context();
    repeated.apply_body(bodies[5]);
    assert_eq!(repeated.user.as_deref(), Some("first"));
}

/// A request body handed over owned is kept without a copy when it comes whole; in chunks, or
/// over the cap, it goes the way of borrowed chunks. The records are the same.
#[test]
fn owned_and_borrowed_request_chunks_give_the_same_record() {
    let body = fixture("basic", "request.json");
    let run = |cap: usize, cuts: &[usize], owned: bool| {
        let mut c = Capture::new(start(), Protocol::OpenAiChat, cap);
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            let chunk = &body[at..cut];
            let last = cut == body.len();
            if owned {
                c.request_chunk_owned(Some(chunk.to_vec()), last);
            } else {
                c.request_chunk(Some(chunk), last);
            }
            at = cut;
        }
        c.response_headers(Some(200), Some("application/json"), None);
        c.response_chunk(&fixture("basic", "response.json"), 1_100 * MS);
        c.response_end();
        c.finish(2_000 * MS)
    };
    let whole = run(1 << 20, &[], false);
    assert!(!whole.messages.is_empty() && whole.unparsed.is_empty());
    let half = body.len() / 2;
    for cuts in [&[][..], &[0], &[half], &[1, half, body.len() - 1]] {
        assert_eq!(run(1 << 20, cuts, true), whole, "cut at {cuts:?}");
    }
    let over = run(body.len() - 1, &[], false);
    assert!(over.truncated && over.messages.is_empty());
    assert_eq!(run(body.len() - 1, &[], true), over);
    assert_eq!(run(body.len() - 1, &[half], true), over);
    let at_cap = run(body.len(), &[], false);
    assert!(!at_cap.messages.is_empty());
    assert_eq!(run(body.len(), &[], true), at_cap);
}
