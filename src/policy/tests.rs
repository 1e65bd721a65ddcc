use super::*;
use crate::context::Context;
use crate::record::{Choice, ErrorInfo, Message, Part, Usage};

fn config(json: &str) -> Config {
    Config::parse(json.as_bytes()).expect("valid config")
}

fn record(trace_first_byte: u8) -> TraceRecord {
    let mut trace_id = [0u8; 16];
    trace_id[0] = trace_first_byte;
    TraceRecord {
        trace_id,
        request_model: Some("gpt-4o-2024-08-06".into()),
        messages: vec![Message {
            role: "user".into(),
            parts: vec![Part::Text("mail me at jane.doe@example.com".into())],
            ..Message::default()
        }],
        tools_json: Some("[]".into()),
        choices: vec![Choice {
            message: Message {
                role: "assistant".into(),
                parts: vec![Part::Text("ok".into())],
                ..Message::default()
            },
            ..Choice::default()
        }],
        usage: Usage {
            input: Some(1_000_000),
            output: Some(1_000_000),
            ..Usage::default()
        },
        context: Context {
            user: Some("u".into()),
            ..Context::default()
        },
        ..TraceRecord::default()
    }
}

#[test]
fn omit_header_words() {
    assert_eq!(
        Omit::parse("request, RESPONSE"),
        Omit {
            request: true,
            response: true,
            all: false
        }
    );
    assert!(Omit::parse("all").all);
    assert_eq!(Omit::parse("nothing,, "), Omit::default());
}

#[test]
fn full_capture_keeps_content_and_prices_dated_models() {
    let c = config("{}");
    let mut r = record(0);
    price(&mut r, &c, &mut PriceMemo::default());
    assert!(finalize(&mut r, &c, CaptureMode::Full, Omit::default()));
    assert_eq!(r.messages.len(), 1);
    assert_eq!(r.priced_as.as_deref(), Some("gpt-4o"));
    let cost = r.cost.expect("priced");
    // 1M input and 1M output tokens of gpt-4o: exactly one input price plus one output price.
    let price = c.pricing.lookup("gpt-4o").expect("entry").price;
    assert!((cost.total - (price.input + price.output)).abs() < 1e-9);
}

#[test]
fn unknown_models_get_no_cost() {
    let mut r = record(0);
    r.request_model = Some("house-model-7".into());
    price(&mut r, &config("{}"), &mut PriceMemo::default());
    assert_eq!(r.cost, None);
    assert_eq!(r.priced_as, None);
}

#[test]
fn the_memo_prices_like_the_table() {
    let c = config(r#"{"pricing":{"house-model":{"input":2,"output":4}}}"#);
    let mut memo = PriceMemo::default();
    // Each model twice in a row (the second from the memo), then back to an earlier one.
    let models = [
        "gpt-4o-2024-08-06",
        "gpt-4o-2024-08-06",
        "house-model-7",
        "house-model-7",
        "unknown-9",
        "unknown-9",
        "gpt-4o-mini",
        "gpt-4o-2024-08-06",
    ];
    for model in models {
        let mut with_memo = record(0);
        with_memo.request_model = Some(model.into());
        let mut fresh = with_memo.clone();
        price(&mut with_memo, &c, &mut memo);
        price(&mut fresh, &c, &mut PriceMemo::default());
        assert_eq!(with_memo.priced_as, fresh.priced_as, "{model}");
        assert_eq!(with_memo.cost, fresh.cost, "{model}");
    }
    let mut r = record(0);
    r.request_model = Some("house-model-7".into());
    price(&mut r, &c, &mut memo);
    assert_eq!(r.priced_as.as_deref(), Some("house-model"));
    // A name too long to be priced (and to be kept) is priced as none, every time.
    for _ in 0..2 {
        let mut long = record(0);
        long.request_model = Some(format!("gpt-4o-{}", "x".repeat(300)));
        price(&mut long, &c, &mut memo);
        assert_eq!((long.priced_as, long.cost), (None, None));
    }
}

#[test]
fn configured_prices_override() {
    let c = config(r#"{"pricing":{"house-model":{"input":2,"output":4}}}"#);
    let mut r = record(0);
    r.request_model = Some("house-model-2025-01-01".into());
    price(&mut r, &c, &mut PriceMemo::default());
    let cost = r.cost.expect("priced");
    assert!((cost.total - 6.0).abs() < 1e-9, "{cost:?}");
}

#[test]
fn metadata_mode_and_omit_drop_content_only() {
    let c = config("{}");
    let mut r = record(0);
    price(&mut r, &c, &mut PriceMemo::default());
    assert!(finalize(&mut r, &c, CaptureMode::Metadata, Omit::default()));
    assert!(r.messages.is_empty() && r.tools_json.is_none());
    assert!(r.choices.iter().all(|ch| ch.message.parts.is_empty()));
    assert_eq!(r.usage.input, Some(1_000_000), "usage stays");
    assert!(r.cost.is_some(), "cost stays");
    let mut only_request = record(0);
    let omit = Omit::parse("request");
    assert!(finalize(&mut only_request, &c, CaptureMode::Full, omit));
    assert!(only_request.messages.is_empty());
    assert_eq!(only_request.choices[0].message.parts.len(), 1);
}

#[test]
fn redaction_runs_before_export() {
    let c = config(r#"{"redact":{"builtin":["email"]}}"#);
    let mut r = record(0);
    assert!(finalize(&mut r, &c, CaptureMode::Full, Omit::default()));
    let text = r.messages[0].text().expect("text");
    assert!(!text.contains("jane.doe@example.com"), "{text}");
}

#[test]
fn fields_are_capped() {
    let c = config(r#"{"max_field_bytes":1024}"#);
    let mut r = record(0);
    r.messages[0].parts = vec![Part::Text("word ".repeat(10_000))];
    assert!(finalize(&mut r, &c, CaptureMode::Full, Omit::default()));
    let text = r.messages[0].text().expect("text");
    assert!(text.len() < 1200, "{}", text.len());
}

#[test]
fn sampling_is_decided_on_the_trace_id() {
    let c = config(r#"{"sampling":{"rate":0.5,"keep_errors":false}}"#);
    // The first byte of the trace id places it in [0, 1): below 0x80 is under one half.
    assert!(finalize(
        &mut record(0x10),
        &c,
        CaptureMode::Full,
        Omit::default()
    ));
    assert!(!finalize(
        &mut record(0xf0),
        &c,
        CaptureMode::Full,
        Omit::default()
    ));
    let keep = config(r#"{"sampling":{"rate":0.0}}"#);
    let mut failed = record(0x00);
    failed.error = Some(ErrorInfo {
        kind: "500".into(),
        message: "boom".into(),
    });
    assert!(finalize(
        &mut failed,
        &keep,
        CaptureMode::Full,
        Omit::default()
    ));
    assert!(!finalize(
        &mut record(0x00),
        &keep,
        CaptureMode::Full,
        Omit::default()
    ));
}

#[test]
fn sampling_rate_holds_statistically() {
    // 20,000 random trace ids at rate 0.25: the sampled share lies within 5 standard deviations
    // (sqrt(0.25*0.75/20000) ≈ 0.0031) of the rate.
    let c = config(r#"{"sampling":{"rate":0.25,"keep_errors":false}}"#);
    let mut ids = crate::ids::IdGen::new(42);
    let n = 20_000;
    let kept = (0..n)
        .filter(|_| {
            let mut trace_id = [0u8; 16];
            ids.fill(&mut trace_id);
            c.sampling.samples(&trace_id)
        })
        .count();
    let share = kept as f64 / n as f64;
    assert!((share - 0.25).abs() < 5.0 * 0.0031, "{share}");
}

#[test]
fn large_fields_are_cut_before_redaction_without_leaking_a_cut_secret() {
    // A key that starts just before the 1 KiB cap of a 200 KB message: the message is cut
    // before it is redacted, and the key is still redacted whole, not kept in part.
    let c = config(r#"{"max_field_bytes":1024}"#);
    let key = concat!("sk-", "proj-", "Ab3dEf6hIj9kLm2nOp5qRs8t");
    let head = "word ".repeat(203);
    let text = format!("{head}{key} {}", "more text ".repeat(20_000));
    let mut r = record(0);
    r.messages[0].parts = vec![Part::Text(text.clone())];
    assert!(finalize(&mut r, &c, CaptureMode::Full, Omit::default()));
    let out = r.messages[0].text().expect("text");
    assert!(r.truncated);
    assert!(out.starts_with(&format!("{head}[REDACTED")), "{out}");
    assert!(!out.contains("sk-") && !out.contains("Ab3d"), "{out}");
    // The count is what redacting the whole message would give (its tail has no secrets).
    let removed = text.len() - key.len() + "[REDACTED]".len() - 1024;
    assert!(
        out.ends_with(&format!("…[truncated {removed} bytes]")),
        "{out}"
    );
}
