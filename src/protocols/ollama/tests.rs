use super::*;
use crate::capture::harness::{cases, check_family};

fn record<'a>(records: &'a [(String, TraceRecord)], name: &str) -> &'a TraceRecord {
    &records
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .1
}

#[test]
fn chat_fixtures_parse_to_the_expected_records_at_every_split_point() {
    let records = check_family("ollama_chat", 7);

    let basic = record(&records, "ollama_chat/basic");
    assert_eq!(
        basic.params,
        Params {
            temperature: Some(0.2),
            top_p: Some(0.9),
            max_tokens: Some(128),
            seed: Some(42),
            stop: vec!["\n\n".into()],
            stream: false,
            ..Params::default()
        }
    );
    assert_eq!(basic.usage.total, None, "Ollama reports no total");
    assert_eq!(basic.response_id, None);
    assert!(!basic.streamed);

    let image = record(&records, "ollama_chat/stream_image");
    assert!(image.params.stream, "stream defaults to true");
    assert!(image.streamed);
    assert_eq!(
        image.messages[0].parts[1],
        Part::Uri {
            modality: "image",
            uri: "[inline image/png, 108 base64 chars omitted]".into()
        }
    );
    assert_eq!(image.first_token_ns, Some(1_100 * 1_000_000));

    let tools = record(&records, "ollama_chat/stream_tools");
    assert_eq!(
        tools.choices[0].message.parts,
        vec![
            Part::ToolCall {
                id: "call_k3n8x2ab".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Tokyo","unit":"celsius"}"#.into()
            },
            Part::ToolCall {
                id: "call_p9f2m1qz".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris","unit":"celsius"}"#.into()
            },
        ]
    );
    assert!(tools
        .tools_json
        .as_deref()
        .is_some_and(|t| t.starts_with('[') && t.contains("\"get_weather\"")));

    let history = record(&records, "ollama_chat/tool_result");
    // Arguments are kept as sent (here pretty-printed); no id was sent.
    match history.messages[1].parts.as_slice() {
        [Part::ToolCall {
            id,
            name,
            arguments,
        }] => {
            assert_eq!((id.as_str(), name.as_str()), ("", "get_weather"));
            let args: serde_json::Value = serde_json::from_str(arguments).expect("JSON");
            assert_eq!(args, serde_json::json!({"city": "Toronto"}));
        }
        other => panic!("expected one tool call, got {other:?}"),
    }
    assert_eq!(history.messages[2].role, "tool");
    assert_eq!(history.messages[2].name.as_deref(), Some("get_weather"));

    let thinking = record(&records, "ollama_chat/stream_thinking");
    assert!(
        matches!(&thinking.choices[0].message.parts[0], Part::Reasoning(r)
        if r == "Okay, let me check whether 221 is prime. 221 = 13 × 17, so it is not prime.")
    );
    // Thinking is output: the first thinking line marks the first token.
    assert_eq!(thinking.first_token_ns, Some(1_100 * 1_000_000));

    let error = record(&records, "ollama_chat/error_404");
    assert_eq!(
        error.error.as_ref().map(|e| e.message.as_str()),
        Some("model \"llama9:70b\" not found, try pulling it first")
    );
    let mid = record(&records, "ollama_chat/stream_error");
    assert!(mid
        .error
        .as_ref()
        .is_some_and(|e| e.message.ends_with("unexpected EOF")));
    assert_eq!(mid.choices[0].finish_reason, None);
}

#[test]
fn generate_fixtures_parse_to_the_expected_records_at_every_split_point() {
    let records = check_family("ollama_generate", 5);

    let basic = record(&records, "ollama_generate/basic");
    assert_eq!(
        basic.messages[0].text().as_deref(),
        Some("You are a poet who writes in haiku.")
    );
    assert_eq!(basic.messages[1].role, "user");
    assert_eq!(
        basic.messages[1].text().as_deref(),
        Some("Write about autumn rain.")
    );
    assert_eq!(
        (
            basic.params.max_tokens,
            basic.params.seed,
            basic.params.temperature
        ),
        (Some(64), Some(123), Some(0.8))
    );

    let image = record(&records, "ollama_generate/stream_image");
    assert!(
        matches!(&image.messages[0].parts[1], Part::Uri { modality: "image", uri }
        if uri.starts_with("[inline image/png"))
    );

    let thinking = record(&records, "ollama_generate/stream_thinking");
    assert_eq!(
        thinking.params.max_tokens, None,
        "num_predict -1 is no limit"
    );
    assert_eq!(
        thinking.choices[0].message.parts,
        vec![
            Part::Reasoning("We need 17 × 23 = 340 + 51 = 391.".into()),
            Part::Text("17 × 23 = 391".into()),
        ]
    );
}

#[test]
fn stream_lines_fold() {
    struct Case {
        lines: &'static [&'static str],
        effects: &'static [ChunkEffect],
        text: Option<&'static str>,
        reasoning: Option<&'static str>,
        finish: Option<&'static str>,
        usage: (Option<u64>, Option<u64>),
        error: Option<(&'static str, &'static str)>,
        malformed: bool,
    }
    use ChunkEffect::{Done, Output, Quiet};
    let cases = [
        Case {
            lines: &[
                r#"{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}"#,
                r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":1}"#,
            ],
            effects: &[Output, Done],
            text: Some("Hi"),
            reasoning: None,
            finish: Some("length"),
            usage: (Some(3), Some(1)),
            error: None,
            malformed: false,
        },
        // A one-line stream whose final line carries the text counts as output.
        Case {
            lines: &[r#"{"model":"m","response":"All at once","done":true,"done_reason":"stop"}"#],
            effects: &[Output],
            text: Some("All at once"),
            reasoning: None,
            finish: Some("stop"),
            usage: (None, None),
            error: None,
            malformed: false,
        },
        // Older servers: no done_reason, no counts on a cached prompt.
        Case {
            lines: &[
                r#"{"model":"m","response":"x","done":false}"#,
                r#"{"model":"m","response":"","done":true,"eval_count":4}"#,
            ],
            effects: &[Output, Done],
            text: Some("x"),
            reasoning: None,
            finish: None,
            usage: (None, Some(4)),
            error: None,
            malformed: false,
        },
        Case {
            lines: &[
                r#"{"model":"m","response":"","thinking":"hmm","done":false}"#,
                "",
                "   ",
                r#"{"model":"m","response":"ok","done":false}"#,
            ],
            effects: &[Output, Quiet, Quiet, Output],
            text: Some("ok"),
            reasoning: Some("hmm"),
            finish: None,
            usage: (None, None),
            error: None,
            malformed: false,
        },
        Case {
            lines: &[
                r#"{"model":"m","response":"a","done":false}"#,
                "not json",
                r#"{"model":"m","response":7,"done":false}"#,
                r#"{"error":"boom"}"#,
            ],
            effects: &[Output, Quiet, Quiet, Quiet],
            text: Some("a"),
            reasoning: None,
            finish: None,
            usage: (None, None),
            error: Some(("error", "boom")),
            malformed: true,
        },
        Case {
            lines: &[r#"{"error":{"message":"overloaded","type":"server_error"}}"#],
            effects: &[Quiet],
            text: None,
            reasoning: None,
            finish: None,
            usage: (None, None),
            error: Some(("server_error", "overloaded")),
            malformed: false,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut fold = OllamaStream::new(1 << 20);
        let effects: Vec<ChunkEffect> = case
            .lines
            .iter()
            .map(|l| {
                fold.push(&Event {
                    event: String::new(),
                    data: l.as_bytes().to_vec(),
                })
            })
            .collect();
        assert_eq!(effects, case.effects, "case {i}");
        let mut r = TraceRecord::default();
        Box::new(fold).finish(&mut r);
        let message = r.choices.first().map(|c| &c.message);
        assert_eq!(
            message.and_then(Message::text).as_deref(),
            case.text,
            "case {i}"
        );
        let reasoning = message.and_then(|m| {
            m.parts.iter().find_map(|p| match p {
                Part::Reasoning(t) => Some(t.as_str()),
                _ => None,
            })
        });
        assert_eq!(reasoning, case.reasoning, "case {i}");
        assert_eq!(r.finish_reasons().first().copied(), case.finish, "case {i}");
        assert_eq!((r.usage.input, r.usage.output), case.usage, "case {i}");
        assert_eq!(
            r.error
                .as_ref()
                .map(|e| (e.kind.as_str(), e.message.as_str())),
            case.error,
            "case {i}"
        );
        assert_eq!(
            !r.unparsed.is_empty(),
            case.malformed,
            "case {i}: {:?}",
            r.unparsed
        );
    }
}

#[test]
fn requests() {
    struct Case {
        chat: bool,
        body: &'static str,
        params: Params,
        roles: &'static [&'static str],
        parts: usize,
    }
    let cases = [
        Case {
            chat: true,
            body: r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            params: Params {
                stream: true,
                ..Params::default()
            },
            roles: &["user"],
            parts: 1,
        },
        // Wrong-typed options are ignored, the rest is kept.
        Case {
            chat: true,
            body: r#"{"model":"m","stream":false,"options":{"temperature":"hot","top_p":1,"num_predict":-2,"seed":7,"stop":"END","presence_penalty":0.5,"frequency_penalty":null}}"#,
            params: Params {
                top_p: Some(1.0),
                seed: Some(7),
                presence_penalty: Some(0.5),
                stop: vec!["END".into()],
                ..Params::default()
            },
            roles: &[],
            parts: 0,
        },
        Case {
            chat: true,
            body: r#"{"model":"m","stream":"yes","options":[1,2],"messages":[{"role":"assistant","content":"","thinking":"t","tool_calls":[{"function":{"name":"f","arguments":"{\"a\":1}"}}]},{"role":"user","content":[{"type":"text","text":"x"}],"images":["/9j/4AAQ","data:image/gif;base64,R0lGODlh"]}]}"#,
            params: Params {
                stream: true,
                ..Params::default()
            },
            roles: &["assistant", "user"],
            parts: 5,
        },
        Case {
            chat: false,
            body: r#"{"model":"m","prompt":"","system":""}"#,
            params: Params {
                stream: true,
                ..Params::default()
            },
            roles: &[],
            parts: 0,
        },
        Case {
            chat: false,
            body: r#"{"model":"codellama:code","prompt":"def gcd(a, b):","suffix":"    return result","options":{"temperature":0},"stream":false}"#,
            params: Params {
                temperature: Some(0.0),
                ..Params::default()
            },
            roles: &["user"],
            parts: 2,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut r = TraceRecord::default();
        let result = if case.chat {
            parse_chat_request(case.body.as_bytes(), &mut r)
        } else {
            parse_generate_request(case.body.as_bytes(), &mut r)
        };
        assert_eq!(result, Ok(()), "case {i}");
        assert_eq!(r.params, case.params, "case {i}");
        let roles: Vec<&str> = r.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, case.roles, "case {i}");
        let parts: usize = r.messages.iter().map(|m| m.parts.len()).sum();
        assert_eq!(parts, case.parts, "case {i}: {:?}", r.messages);
    }

    // Images: media type sniffed, data URLs described, nothing copied.
    let mut r = TraceRecord::default();
    parse_chat_request(
        br#"{"messages":[{"role":"user","content":"x","images":["/9j/4AAQSkZJRg==","R0lGODlhAQAB","UklGRiQAAABXRUJQ","AAAA","data:image/gif;base64,R0lGODlh"]}]}"#,
        &mut r,
    )
    .expect("chat request");
    let uris: Vec<&str> = r.messages[0]
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Uri { uri, .. } => Some(uri.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        uris,
        [
            "[inline image/jpeg, 16 base64 chars omitted]",
            "[inline image/gif, 12 base64 chars omitted]",
            "[inline image/webp, 16 base64 chars omitted]",
            "[inline image, 4 base64 chars omitted]",
            "[inline image/gif, 8 base64 chars omitted]",
        ]
    );
    // A JSON-string tool-call argument is unwrapped.
    let mut r = TraceRecord::default();
    parse_chat_request(
        br#"{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","function":{"index":0,"name":"f","arguments":"{\"a\":1}"}}]},{"role":"tool","content":"2","tool_name":"f","tool_call_id":"c1"}]}"#,
        &mut r,
    )
    .expect("chat request");
    assert_eq!(
        r.messages[0].parts,
        vec![Part::ToolCall {
            id: "c1".into(),
            name: "f".into(),
            arguments: r#"{"a":1}"#.into()
        }]
    );
    assert_eq!(r.messages[1].tool_call_id.as_deref(), Some("c1"));
    assert_eq!(r.tools_json, None);
}

#[test]
fn a_stream_in_a_whole_body_is_folded_line_by_line() {
    for case in cases("ollama_chat")
        .into_iter()
        .chain(cases("ollama_generate"))
        .filter(|c| c.content_type.starts_with("application/x-ndjson") && c.status == 200)
    {
        let mut r = TraceRecord::default();
        let parse = if case.protocol == crate::protocols::Protocol::OllamaChat {
            parse_chat_response
        } else {
            parse_generate_response
        };
        assert_eq!(parse(&case.response, &mut r), Ok(()), "{}", case.name);
        assert!(r.streamed, "{}", case.name);
        let mut streamed = case.run(&[]);
        streamed.first_token_ns = None;
        assert_eq!(r.choices, streamed.choices, "{}", case.name);
        assert_eq!(r.usage, streamed.usage, "{}", case.name);
        assert_eq!(r.error, streamed.error, "{}", case.name);
    }
}

#[test]
fn error_bodies() {
    /// Kind and message.
    type Expected = Option<(&'static str, &'static str)>;
    let cases: [(&[u8], Expected); 6] = [
        (
            br#"{"error":"model 'x' not found"}"#,
            Some(("error", "model 'x' not found")),
        ),
        (
            br#"{"error":{"message":"rate limited","type":"rate_limit"}}"#,
            Some(("rate_limit", "rate limited")),
        ),
        (br#"{"error":null}"#, None),
        (br#"{"detail":"nope"}"#, None),
        (b"<html>502</html>", None),
        (b"\xff\xfe", None),
    ];
    for (body, expected) in cases {
        let got = parse_error(body);
        assert_eq!(
            got.as_ref().map(|e| (e.kind.as_str(), e.message.as_str())),
            expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_budget_bounds_text_thinking_and_arguments() {
    let mut fold = OllamaStream::new(10);
    for line in [
        r#"{"message":{"role":"assistant","content":"","thinking":"think think"}}"#,
        r#"{"message":{"role":"assistant","content":"more text"}}"#,
        r#"{"message":{"role":"assistant","tool_calls":[{"function":{"name":"f","arguments":{"a":"long value"}}}]}}"#,
        r#"{"done":true,"done_reason":"stop"}"#,
    ] {
        fold.push(&Event {
            event: String::new(),
            data: line.as_bytes().to_vec(),
        });
    }
    let mut r = TraceRecord::default();
    Box::new(fold).finish(&mut r);
    assert!(r.truncated);
    let kept: usize = r.choices[0]
        .message
        .parts
        .iter()
        .map(|p| match p {
            Part::Text(t) | Part::Reasoning(t) => t.len(),
            Part::ToolCall { arguments, .. } => arguments.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(kept, 10);
}

#[test]
fn hostile_input_never_panics() {
    let inputs: &[&[u8]] = &[
        b"",
        b"\xff\xfe\x00",
        b"null",
        b"[]",
        b"{\"messages\":{\"role\":1}}",
        b"{\"messages\":[{\"role\":1,\"content\":{},\"images\":[1,2],\"tool_calls\":{\"x\":1}}]}",
        b"{\"messages\":[{\"tool_calls\":[{\"function\":{\"index\":99999999999999999999,\"name\":[],\"arguments\":null}}]}]}",
        b"{\"prompt\":[\"a\"],\"images\":\"AAAA\",\"options\":{\"num_predict\":1e308,\"seed\":18446744073709551616}}",
        b"{\"message\":{\"content\":\"\xff\xfe\"},\"done\":true}",
        b"{\"done\":true,\"prompt_eval_count\":-1,\"eval_count\":1.5}",
        b"{\"error\":[1,2,3]}",
        b"{\"model\":\"m\",\"response\":\"a\"}\n{\"model\"\n\xff\n{\"done\":\"yes\"}\n",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];
    for input in inputs {
        for protocol in [
            crate::protocols::Protocol::OllamaChat,
            crate::protocols::Protocol::OllamaGenerate,
        ] {
            let mut r = TraceRecord::default();
            let _ = protocol.parse_request(input, &mut r);
            let _ = protocol.parse_response(input, &mut r);
            let _ = protocol.parse_error(input);
            for ct in ["application/json", "application/x-ndjson"] {
                let mut c = crate::capture::Capture::new(
                    crate::capture::RequestStart::default(),
                    protocol,
                    1 << 20,
                );
                c.request_chunk(Some(input), true);
                c.response_headers(Some(200), Some(ct), None);
                c.response_chunk(input, 1);
                c.response_end();
                let _ = c.finish(2);
            }
        }
    }
}
