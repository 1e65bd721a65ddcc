use super::*;
use serde_json::{json, Value};

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

#[test]
fn strips_tracing_metadata_and_keeps_the_rest_verbatim() {
    let body = br#"{"model":"gpt-4o","temperature":0.30000000000000004,"big":12345678901234567890,
        "metadata":{"user_id":"u","session_id":"s","opik":{"tags":["x"]},"langfuse":{}},"messages":[{"role":"user","content":"hi"}]}"#;
    let edited = edit_request(
        body,
        RequestEdits {
            strip_metadata: true,
            include_usage: false,
        },
    );
    let out = edited.body.expect("changed");
    let text = String::from_utf8(out.clone()).expect("utf8");
    assert!(
        text.contains("0.30000000000000004"),
        "numbers kept as written: {text}"
    );
    assert!(text.contains("12345678901234567890"), "{text}");
    assert_eq!(parse(&out)["metadata"], json!({"user_id": "u"}));
    assert_eq!(parse(&out)["messages"], parse(body)["messages"]);
    assert!(!edited.injected_usage);
}

#[test]
fn metadata_left_empty_is_removed() {
    let body = br#"{"model":"m","metadata":{"opik":{"project_name":"p"},"tags":["a"]}}"#;
    let out = edit_request(
        body,
        RequestEdits {
            strip_metadata: true,
            include_usage: false,
        },
    )
    .body
    .expect("changed");
    assert_eq!(parse(&out), json!({"model": "m"}));
}

#[test]
fn nothing_to_strip_means_untouched() {
    for body in [
        &br#"{"model":"m","metadata":{"user_id":"u"}}"#[..],
        br#"{"model":"m"}"#,
        br#"not json"#,
        br#"[1,2]"#,
        br#"{"metadata":"string"}"#,
    ] {
        let edited = edit_request(
            body,
            RequestEdits {
                strip_metadata: true,
                include_usage: true,
            },
        );
        assert_eq!(
            edited,
            Edited::default(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn injects_include_usage_only_into_streamed_requests_lacking_it() {
    let edits = RequestEdits {
        strip_metadata: false,
        include_usage: true,
    };
    let added = edit_request(br#"{"model":"m","stream":true}"#, edits);
    assert!(added.injected_usage);
    assert_eq!(
        parse(&added.body.expect("changed"))["stream_options"],
        json!({"include_usage": true})
    );
    let merged = edit_request(br#"{"stream":true,"stream_options":{"x":1}}"#, edits);
    assert_eq!(
        parse(&merged.body.expect("changed"))["stream_options"],
        json!({"x": 1, "include_usage": true})
    );
    let flipped = edit_request(
        br#"{"stream":true,"stream_options":{"include_usage":false}}"#,
        edits,
    );
    assert!(flipped.injected_usage);
    assert_eq!(
        parse(&flipped.body.expect("changed"))["stream_options"]["include_usage"],
        json!(true)
    );
    for body in [
        &br#"{"stream":true,"stream_options":{"include_usage":true}}"#[..],
        br#"{"stream":false}"#,
        br#"{"model":"m"}"#,
    ] {
        assert_eq!(edit_request(body, edits), Edited::default());
    }
}

const STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\": null}\n\n",
    "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}\n\n",
    "data: [DONE]\n\n",
);

const CLIENT_VIEW: &str = concat!(
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn usage_filter_gives_the_client_its_own_stream_at_every_split() {
    let bytes = STREAM.as_bytes();
    for split in 0..=bytes.len() {
        let mut f = UsageChunkFilter::new(1 << 20);
        let mut out = f.push(&bytes[..split], false);
        out.extend(f.push(&bytes[split..], false));
        out.extend(f.push(b"", true));
        assert_eq!(
            String::from_utf8_lossy(&out),
            CLIENT_VIEW,
            "split at {split}"
        );
    }
}

#[test]
fn complete_events_pass_at_once() {
    let mut f = UsageChunkFilter::new(1 << 20);
    let first =
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\ndata: {\"cho";
    let out = f.push(first.as_bytes(), false);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
    );
}

#[test]
fn text_that_only_looks_like_usage_is_kept() {
    let event = "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":null\"}}]}\n\n";
    let mut f = UsageChunkFilter::new(1 << 20);
    assert_eq!(
        String::from_utf8_lossy(&f.push(event.as_bytes(), true)),
        event
    );
}

#[test]
fn oversized_partial_events_pass_unfiltered() {
    let mut f = UsageChunkFilter::new(16);
    let big = format!("data: {}", "x".repeat(64));
    assert_eq!(f.push(big.as_bytes(), false), big.as_bytes());
    assert_eq!(f.push(b"\n\n", false), b"\n\n");
}

#[test]
fn null_usage_removal_forms() {
    let cases = [
        ("{\"a\":1,\"usage\":null}", "{\"a\":1}"),
        ("{\"usage\":null,\"a\":1}", "{\"a\":1}"),
        ("{\"usage\" : null}", "{}"),
        ("{\"a\":1 , \"usage\":null}", "{\"a\":1 }"),
        ("{\"usage\":{\"x\":1}}", "{\"usage\":{\"x\":1}}"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            String::from_utf8_lossy(&remove_null_usage(input.as_bytes())),
            expected,
            "{input}"
        );
    }
}
