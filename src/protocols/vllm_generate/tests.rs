use super::*;
use crate::capture::harness::check_family;
use crate::capture::{Capture, RequestStart};
use crate::protocols::Protocol;

fn record<'a>(records: &'a [(String, TraceRecord)], name: &str) -> &'a TraceRecord {
    &records
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .1
}

fn texts(r: &TraceRecord) -> Vec<Option<String>> {
    r.choices.iter().map(|c| c.message.text()).collect()
}

#[test]
fn fixtures_parse_to_the_expected_records_at_every_split_point() {
    let records = check_family("vllm_generate", 5);

    let basic = record(&records, "vllm_generate/basic");
    assert_eq!(
        basic.params,
        Params {
            temperature: Some(0.7),
            top_p: Some(0.95),
            max_tokens: Some(48),
            seed: Some(1234),
            stop: vec!["\n".into()],
            ..Params::default()
        }
    );
    assert_eq!(
        basic.messages[0].text().as_deref(),
        Some("San Francisco is a")
    );
    assert!(
        basic.usage.is_empty(),
        "vLLM's demo server reports no usage"
    );
    assert!(!basic.streamed);

    let two = record(&records, "vllm_generate/two_outputs");
    assert_eq!(two.params.n, Some(2));
    assert_eq!(
        texts(two),
        vec![
            Some(" Paris.".to_string()),
            Some(" Paris, which is also its largest city.".to_string())
        ]
    );
    assert_eq!(two.choices[1].index, 1);

    for name in ["vllm_generate/stream_nul", "vllm_generate/stream_newline"] {
        let r = record(&records, name);
        assert!(r.streamed, "{name}: several frames in one body");
        assert!(r.params.stream, "{name}");
        assert_eq!(
            r.first_token_ns, None,
            "{name}: not measurable from a whole body"
        );
    }

    let error = record(&records, "vllm_generate/error_500");
    assert_eq!(
        error.error.as_ref().map(|e| e.message.as_str()),
        Some("HTTP 500 from upstream")
    );
}

#[test]
fn whole_bodies() {
    struct Case {
        prompt: &'static str,
        body: &'static [u8],
        texts: &'static [&'static str],
        streamed: bool,
    }
    let cases = [
        Case {
            prompt: "Hi",
            body: br#"{"text": ["Hi there"]}"#,
            texts: &[" there"],
            streamed: false,
        },
        // Pretty-printed: one object, not frames.
        Case {
            prompt: "Hi",
            body: b"{\n  \"text\": [\n    \"Hi there\"\n  ]\n}\n",
            texts: &[" there"],
            streamed: false,
        },
        // The last frame is cut: the one before holds the text.
        Case {
            prompt: "Hi",
            body: b"{\"text\": [\"Hi t\"]}\0{\"text\": [\"Hi the\"]}\0{\"text\": [\"Hi th",
            texts: &[" the"],
            streamed: true,
        },
        // Output not starting with the prompt is kept whole.
        Case {
            prompt: "Hello",
            body: br#"{"text": ["Bonjour", "Hello", ""]}"#,
            texts: &["Bonjour", "", ""],
            streamed: false,
        },
        // No prompt known.
        Case {
            prompt: "",
            body: br#"{"text": ["abc"]}"#,
            texts: &["abc"],
            streamed: false,
        },
        Case {
            prompt: "x",
            body: br#"{"text": []}"#,
            texts: &[],
            streamed: false,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut r = TraceRecord::default();
        let request = serde_json::json!({ "prompt": case.prompt }).to_string();
        parse_request(request.as_bytes(), &mut r).expect("request");
        assert_eq!(parse_response(case.body, &mut r), Ok(()), "case {i}");
        let got: Vec<String> = texts(&r)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect();
        assert_eq!(got, case.texts, "case {i}");
        assert_eq!(r.streamed, case.streamed, "case {i}");
    }
    // A stream of one frame is still a stream.
    let mut r = TraceRecord::default();
    parse_request(br#"{"prompt": "a", "stream": true}"#, &mut r).expect("request");
    parse_response(b"{\"text\": [\"ab\"]}\0", &mut r).expect("response");
    assert!(r.streamed);
    assert_eq!(texts(&r), vec![Some("b".to_string())]);
    for bad in [
        &b"{}"[..],
        b"{\"text\": \"abc\"}",
        b"\0\0",
        b"not json",
        b"",
    ] {
        let mut r = TraceRecord::default();
        assert!(parse_response(bad, &mut r).is_err(), "{bad:?}");
    }
}

#[test]
fn requests() {
    let cases: [(&str, Params, Option<Part>); 4] = [
        (
            r#"{"prompt": "p", "stream": true, "n": 3, "stop": "END", "presence_penalty": 0.1, "frequency_penalty": 0.2}"#,
            Params {
                stream: true,
                n: Some(3),
                stop: vec!["END".into()],
                presence_penalty: Some(0.1),
                frequency_penalty: Some(0.2),
                ..Params::default()
            },
            Some(Part::Text("p".into())),
        ),
        // Wrong types are ignored.
        (
            r#"{"prompt": {"prompt": "as object"}, "max_tokens": "many", "temperature": [1], "stream": 1}"#,
            Params::default(),
            Some(Part::Text("as object".into())),
        ),
        (
            r#"{"prompt": {"prompt_token_ids": [1, 2, 3]}}"#,
            Params::default(),
            Some(Part::Other {
                kind: "prompt".into(),
                json: r#"{"prompt_token_ids": [1, 2, 3]}"#.into(),
            }),
        ),
        (r#"{"prompt": null}"#, Params::default(), None),
    ];
    for (body, params, part) in cases {
        let mut r = TraceRecord::default();
        assert_eq!(parse_request(body.as_bytes(), &mut r), Ok(()), "{body}");
        assert_eq!(r.params, params, "{body}");
        assert_eq!(
            r.messages.first().and_then(|m| m.parts.first()).cloned(),
            part,
            "{body}"
        );
        assert_eq!(r.request_model, None);
    }
}

#[test]
fn framed_streams_keep_the_latest_text() {
    let frames = [
        &b"{\"text\": [\"Q: A\"]}\0"[..],
        b"{\"text\": [\"Q: A b\"]}\0{\"text\": [\"Q: A bc\"]}\0",
        b"{\"text\": [\"Q: A bc\"]}\0",
        b"garbage\0",
    ];
    let mut fold = GenerateStream::new(1 << 20);
    let effects: Vec<ChunkEffect> = frames
        .iter()
        .map(|data| {
            fold.push(&Event {
                event: String::new(),
                data: data.to_vec(),
            })
        })
        .collect();
    assert_eq!(
        effects,
        [
            ChunkEffect::Output,
            ChunkEffect::Output,
            ChunkEffect::Quiet,
            ChunkEffect::Quiet
        ]
    );
    let mut r = TraceRecord::default();
    parse_request(br#"{"prompt": "Q:"}"#, &mut r).expect("request");
    Box::new(fold).finish(&mut r);
    assert_eq!(texts(&r), vec![Some(" A bc".to_string())]);
    assert_eq!(
        r.unparsed,
        vec!["response: 1 malformed stream frames".to_string()]
    );

    // Framed as NDJSON by a route: the capture folds the lines, first token included.
    let mut c = Capture::new(RequestStart::default(), Protocol::VllmGenerate, 1 << 20);
    c.request_chunk(Some(br#"{"prompt": "Q:", "stream": true}"#), true);
    c.response_headers(Some(200), Some("application/x-ndjson"), None);
    c.response_chunk(b"{\"text\": [\"Q: x\"]}\n{\"text\": [\"Q: x", 5);
    c.response_chunk(b"y\"]}\n", 9);
    c.response_end();
    let r = c.finish(10);
    assert_eq!(texts(&r), vec![Some(" xy".to_string())]);
    assert_eq!(r.first_token_ns, Some(5));
}

#[test]
fn the_budget_bounds_the_text() {
    let mut fold = GenerateStream::new(8);
    fold.push(&Event {
        event: String::new(),
        data: br#"{"text": ["0123456789", "abcdef"]}"#.to_vec(),
    });
    let mut r = TraceRecord::default();
    Box::new(fold).finish(&mut r);
    assert!(r.truncated);
    assert_eq!(
        texts(&r),
        vec![Some("01234567".to_string()), None],
        "the budget is shared by all outputs"
    );
}

#[test]
fn hostile_input_never_panics() {
    let inputs: &[&[u8]] = &[
        b"",
        b"\0",
        b"\xff\xfe\x00",
        b"{\"text\":[1,2]}",
        b"{\"text\":[\"\xff\"]}",
        b"{\"prompt\":1e400,\"n\":-1,\"seed\":99999999999999999999999}",
        b"{\"text\":[\"a\"]}\0\0\0{\"text\"",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    for input in inputs {
        let mut r = TraceRecord::default();
        let _ = parse_request(input, &mut r);
        let _ = parse_response(input, &mut r);
        let _ = Protocol::VllmGenerate.parse_error(input);
        for ct in [
            "application/json",
            "application/x-ndjson",
            "text/event-stream",
        ] {
            let mut c = Capture::new(RequestStart::default(), Protocol::VllmGenerate, 1 << 20);
            c.request_chunk(Some(input), true);
            c.response_headers(Some(200), Some(ct), None);
            c.response_chunk(input, 1);
            c.response_end();
            let _ = c.finish(2);
        }
    }
}
