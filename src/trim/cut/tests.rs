use super::*;
use proptest::prelude::*;
use serde_json::json;

fn redactor(config: serde_json::Value) -> Redactor {
    Redactor::from_config(Some(&config)).expect("valid redact config")
}

fn all_rules() -> Redactor {
    redactor(json!({
        "builtin": ["email", "card_number", "bearer_token", "api_key", "jwt", "ipv4"],
        "literals": ["Zq9-literal-secret"],
        "replacement": "[{kind}]"
    }))
}

fn trim(max_field_bytes: usize) -> Trim {
    Trim {
        max_field_bytes,
        ..Trim::default()
    }
}

/// What `finalize` did before: redact the whole field, then trim it.
fn whole(t: &Trim, r: &Redactor, text: &str) -> String {
    let mut text = text.to_string();
    r.redact_as(&mut text, TextKind::Plain);
    t.apply(&mut text, TextKind::Plain);
    text
}

fn cut(t: &Trim, r: &Redactor, text: &str) -> String {
    let mut text = text.to_string();
    redact_and_trim(t, r, &mut text, TextKind::Plain);
    text
}

/// The text without its truncation mark.
fn body(text: &str) -> &str {
    text.get(..split_mark(text).0).unwrap_or_default()
}

/// Secrets of every built-in and the literal (key-shaped values assembled so that no
/// credential pattern sits in the source).
fn secrets() -> Vec<String> {
    vec![
        "jane.doe@example.com".into(),
        "4111 1111 1111 1111".into(),
        "Bearer abcDEF1234567890".into(),
        concat!("sk-", "proj-", "Ab3dEf6hIj9kLm2nOp5qRs8t").into(),
        concat!(
            "eyJhbGciOiJIUzI1NiJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIn0",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        )
        .into(),
        "192.168.10.254".into(),
        "Zq9-literal-secret".into(),
    ]
}

fn prose(len: usize) -> String {
    let mut out = String::new();
    while out.len() < len {
        out.push_str("the gateway forwards every request ");
    }
    out.truncate(len);
    out
}

/// The part of a secret an output shows: the longest prefix (of 4 bytes or more) it
/// contains. Of a bearer token only the credential is secret (the word `Bearer` is kept).
fn shown_part<'a>(output: &str, secret: &'a str) -> Option<&'a str> {
    let secret = secret.strip_prefix("Bearer ").unwrap_or(secret);
    (4..=secret.len())
        .rev()
        .filter_map(|n| secret.get(..n))
        .find(|prefix| output.contains(prefix))
}

/// A secret across the cap, across the first cut target, and anywhere near them: the output
/// is the whole-field output (up to the mark's count), and shows no part of the secret.
#[test]
fn a_secret_across_the_cut_is_never_half_kept() {
    let r = all_rules();
    let t = trim(300);
    let target = t.max_field_bytes + r.cut_margin();
    for secret in secrets() {
        let mut offsets: Vec<usize> = (0..secret.len() + 2).map(|d| 300 - d).collect();
        offsets.extend((0..secret.len() + 2).map(|d| target - d));
        offsets.extend([target + 1, target + 7]);
        for at in offsets {
            let text = format!("{} {secret} {}", prose(at), prose(3 * target));
            let out = cut(&t, &r, &text);
            assert!(text.len() > target + 100 && out.contains("…[truncated "));
            assert_eq!(body(&out), body(&whole(&t, &r, &text)), "{secret} at {at}");
            assert_eq!(shown_part(&out, &secret), None, "{secret} at {at}: {out}");
        }
    }
}

/// The secret is redacted in the kept part however the cut falls in the secret itself: cut
/// targets inside each secret (the cut moves past token bytes), for each rule on its own.
#[test]
fn cut_targets_inside_a_secret() {
    let t = trim(200);
    for (rule, secret) in [
        ("email", secrets()[0].clone()),
        ("card_number", secrets()[1].clone()),
        ("bearer_token", secrets()[2].clone()),
        ("api_key", secrets()[3].clone()),
        ("jwt", secrets()[4].clone()),
        ("ipv4", secrets()[5].clone()),
    ] {
        let r = redactor(json!({ "builtin": [rule] }));
        let target = t.max_field_bytes + r.cut_margin();
        // The secret starts in the kept part only when shrinking pulled it in; here it starts
        // right before the cap, then right before the cut target.
        for start in [195, 199, target - 3, target - 1] {
            let text = format!("{} {secret} {}", prose(start), prose(2 * target));
            let out = cut(&t, &r, &text);
            assert_eq!(body(&out), body(&whole(&t, &r, &text)), "{rule} at {start}");
            assert_eq!(shown_part(&out, &secret), None, "{rule} at {start}: {out}");
        }
    }
}

/// A literal across the cap and across the cut target, with the literal's own margin.
#[test]
fn a_literal_across_the_cut() {
    let literal = format!("Secret{}", "x".repeat(900));
    let r = redactor(json!({ "builtin": [], "literals": [literal.clone()] }));
    let t = trim(256);
    let target = t.max_field_bytes + r.cut_margin();
    assert!(r.cut_margin() >= 3 * literal.len());
    for at in [250, 255, 256, target - 10, target - 900] {
        let text = format!("{} {literal} {}", prose(at), prose(2 * target));
        let out = cut(&t, &r, &text);
        assert_eq!(body(&out), body(&whole(&t, &r, &text)), "at {at}");
        assert!(!out.contains("Secretxxxx"), "at {at}");
    }
}

/// Replacements that shorten the head pull later text into the kept part: the cut is then
/// retried further on, and the output is still the whole-field output.
#[test]
fn shrinking_heads_move_the_cut() {
    let r = all_rules();
    let t = trim(400);
    let jwt = &secrets()[4];
    let text = format!(
        "{} tail {}",
        vec![jwt.as_str(); 200].join(" "),
        prose(20_000)
    );
    let out = cut(&t, &r, &text);
    assert_eq!(body(&out), body(&whole(&t, &r, &text)));
    assert!(!out.contains("eyJ"));
    // Base64 replacements shorten too.
    let image = "QUJD".repeat(2_000);
    let text = format!("look: {image} then {} and {}", secrets()[3], prose(50_000));
    let out = cut(&t, &r, &text);
    assert_eq!(body(&out), body(&whole(&t, &r, &text)));
    assert!(
        out.starts_with("look: [base64: 8000 bytes] then [api_key]"),
        "{out}"
    );
}

/// A field that is one endless token has no safe cut short of its end: it is redacted whole,
/// exactly as before (mark included).
#[test]
fn an_endless_token_is_redacted_whole() {
    let r = Redactor::default();
    let t = trim(300);
    let token = format!("Bearer abc{}", "dEf9_".repeat(2_000));
    let out = cut(&t, &r, &token);
    assert_eq!(out, whole(&t, &r, &token));
    assert!(out.starts_with("Bearer [REDACTED]"));
    let base64url = format!("x {}", "aB3-_".repeat(3_000));
    assert_eq!(cut(&t, &r, &base64url), whole(&t, &r, &base64url));
}

/// The cut lands on char boundaries; the mark counts the bytes cut off as captured.
#[test]
fn cuts_on_char_boundaries_and_counts_captured_bytes() {
    let r = Redactor::default();
    let t = trim(301);
    let text = "é€".repeat(2_000);
    let out = cut(&t, &r, &text);
    assert_eq!(out, whole(&t, &r, &text));
    let kept = body(&out).len();
    assert!(kept <= 301 && kept > 295);
    assert_eq!(split_mark(&out).1, Some(text.len() - kept));
    // Cut again, the earlier count carries over.
    let again = format!("{}{}", prose(5_000), "…[truncated 7 bytes]");
    let out = cut(&t, &r, &again);
    assert_eq!(
        out,
        format!("{}…[truncated {} bytes]", prose(301), 5_000 - 301 + 7)
    );
}

/// Short fields, and fields just over the cap, take the whole-field path.
#[test]
fn fields_near_the_cap_are_redacted_whole() {
    let r = all_rules();
    let t = trim(300);
    for len in [0, 10, 300, 301, 1_000, 300 + r.cut_margin()] {
        let text = format!("{} {}", secrets()[0], prose(len));
        assert_eq!(cut(&t, &r, &text), whole(&t, &r, &text), "len {len}");
    }
}

/// JSON fields are redacted whole, as before.
#[test]
fn json_fields_are_redacted_whole() {
    let r = all_rules();
    let t = trim(300);
    let doc = json!({ "q": format!("{} {}", secrets()[3], prose(5_000)) }).to_string();
    let mut text = doc.clone();
    let changed = redact_and_trim(&t, &r, &mut text, TextKind::Json);
    let mut expected = doc;
    r.redact_as(&mut expected, TextKind::Json);
    t.apply(&mut expected, TextKind::Json);
    assert!(changed.cut);
    assert_eq!(text, expected);
}

/// Every kind of rule and a pattern: random fields of prose, secrets, base64 and non-ASCII
/// text, cut at random caps.
fn piece() -> impl Strategy<Value = String> {
    let secret = proptest::sample::select(secrets());
    prop_oneof![
        4 => (1usize..400).prop_map(prose),
        2 => secret,
        1 => "[a-zA-Z0-9+/]{100,1500}",
        1 => "[ é€\n\"]{1,30}",
        1 => Just("ACCT-123456".to_string()),
        1 => "[a-z0-9 .@-]{1,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn cutting_first_keeps_what_redacting_whole_keeps(
        pieces in proptest::collection::vec(piece(), 1..40),
        max in 64usize..3_000,
        base64_min_run in prop_oneof![Just(0usize), Just(1024usize), 100usize..400],
        with_pattern in any::<bool>(),
    ) {
        // A pattern widens the margin (4 KiB a pass); without one, more fields are cut first.
        let patterns: &[&str] = if with_pattern { &["ACCT-[0-9]{6}"] } else { &[] };
        let r = redactor(json!({
            "builtin": ["email", "card_number", "bearer_token", "api_key", "jwt", "ipv4"],
            "literals": ["Zq9-literal-secret"],
            "patterns": patterns,
        }));
        let t = Trim { max_field_bytes: max, base64_min_run };
        let text = pieces.join(" ");
        let fast = cut(&t, &r, &text);
        let slow = whole(&t, &r, &text);
        prop_assert_eq!(body(&fast), body(&slow));
        prop_assert_eq!(split_mark(&fast).1.is_some(), split_mark(&slow).1.is_some());
        if fast != slow {
            // Only the count differs, and only when the cut-off tail shrank or grew.
            prop_assert!(text.len() > max + r.cut_margin());
        }
    }
}
