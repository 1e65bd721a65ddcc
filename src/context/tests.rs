use super::*;
use serde_json::json;

fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    move |name| {
        owned
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn config(value: serde_json::Value) -> ContextConfig {
    ContextConfig::parse(Some(&value)).expect("valid context config")
}

#[test]
fn default_headers_cover_every_field() {
    let h = headers(&[
        ("x-user-id", "u1"),
        ("x-session-id", "s1"),
        ("x-chat-id", "c1"),
        ("x-message-id", "m1"),
        ("x-organization-id", "o1"),
        ("x-project-id", "p1"),
        ("opik-project-name", "proj"),
        ("langfuse_trace_name", "my-trace"),
        ("langfuse-release", "1.2.3"),
        ("opik_tags", "[\"a\",\"b\"]"),
        ("langfuse-tags", "b, c ,,d"),
    ]);
    let ctx = Context::from_headers(&ContextConfig::default(), &h);
    assert_eq!(ctx.user.as_deref(), Some("u1"));
    assert_eq!(ctx.session.as_deref(), Some("s1"));
    assert_eq!(ctx.chat_id.as_deref(), Some("c1"));
    assert_eq!(ctx.message_id.as_deref(), Some("m1"));
    assert_eq!(ctx.organization_id.as_deref(), Some("o1"));
    assert_eq!(ctx.project_id.as_deref(), Some("p1"));
    assert_eq!(ctx.project_name.as_deref(), Some("proj"));
    assert_eq!(ctx.trace_name.as_deref(), Some("my-trace"));
    assert_eq!(ctx.release.as_deref(), Some("1.2.3"));
    // The first tags header present wins (opik_tags comes before langfuse-tags).
    assert_eq!(ctx.tags, ["a", "b"]);
}

#[test]
fn session_is_never_invented() {
    let ctx = resolve(&ContextConfig::default(), None, &headers(&[]));
    assert_eq!(ctx.session, None);
    assert_eq!(ctx.user, None);
    assert!(ctx.tags.is_empty());
}

#[test]
fn configured_headers_replace_the_defaults() {
    let c = config(
        json!({"headers": {"user": ["X-Consumer-Username"]}, "metadata_headers": ["x-team"]}),
    );
    let h = headers(&[
        ("x-user-id", "ignored"),
        ("x-consumer-username", "alice"),
        ("x-team", "search"),
    ]);
    let ctx = Context::from_headers(&c, &h);
    assert_eq!(ctx.user.as_deref(), Some("alice"));
    assert_eq!(ctx.metadata.get("header.x-team"), Some(&json!("search")));
}

#[test]
fn credential_headers_cannot_be_recorded() {
    for h in ["authorization", "Cookie", "x-api-key"] {
        let err = ContextConfig::parse(Some(&json!({ "metadata_headers": [h] })))
            .expect_err("credential header refused");
        assert!(
            err.to_string().contains("context.metadata_headers[0]"),
            "{err}"
        );
    }
}

#[test]
fn precedence_body_headers_key_route_config() {
    let key = "sk-test-123456";
    let print = fingerprint(key);
    let c = config(json!({
        "defaults": {"user": "cfg-user", "project_name": "cfg-proj", "trace_name": "cfg-trace",
                     "release": "cfg-rel", "environment": "prod", "tags": ["cfg"], "metadata": {"k": "cfg", "only_cfg": 1}},
        "api_keys": { (&print[..16]): {"user": "key-user", "project_name": "key-proj", "tags": ["key"], "metadata": {"k": "key"}} }
    }));
    let route = Defaults {
        user: Some("route-user".into()),
        project_name: Some("route-proj".into()),
        trace_name: Some("route-trace".into()),
        tags: vec!["route".into()],
        ..Defaults::default()
    };
    let bearer = format!("Bearer {key}");
    let h = headers(&[
        ("authorization", &bearer),
        ("x-user-id", "header-user"),
        ("opik_tags", "hdr"),
    ]);
    let mut ctx = resolve(&c, Some(&route), &h);
    assert_eq!(
        ctx.user.as_deref(),
        Some("header-user"),
        "headers over key defaults"
    );
    assert_eq!(
        ctx.project_name.as_deref(),
        Some("key-proj"),
        "key over route"
    );
    assert_eq!(
        ctx.trace_name.as_deref(),
        Some("route-trace"),
        "route over config"
    );
    assert_eq!(ctx.release.as_deref(), Some("cfg-rel"));
    assert_eq!(ctx.environment.as_deref(), Some("prod"));
    assert_eq!(ctx.tags, ["hdr", "key", "route", "cfg"]);
    assert_eq!(ctx.metadata.get("k"), Some(&json!("key")));
    assert_eq!(ctx.metadata.get("only_cfg"), Some(&json!(1)));
    assert_eq!(
        ctx.metadata.get("api_key.fingerprint"),
        Some(&json!(print[..FINGERPRINT_HEX].to_string()))
    );
    ctx.apply_body(
        br#"{"model":"m","user":"body-user","metadata":{"opik":{"project_name":"body-proj","tags":["body"]},"k":"body"}}"#,
    );
    assert_eq!(ctx.user.as_deref(), Some("body-user"), "body over headers");
    assert_eq!(ctx.project_name.as_deref(), Some("body-proj"));
    assert_eq!(ctx.tags, ["body", "hdr", "key", "route", "cfg"]);
    assert_eq!(ctx.metadata.get("k"), Some(&json!("body")));
}

#[test]
fn the_key_itself_never_reaches_the_context() {
    let key = "sk-proj-SECRETSECRETSECRET";
    let h = headers(&[("x-api-key", key)]);
    let ctx = resolve(&ContextConfig::default(), None, &h);
    let dump = format!("{ctx:?}");
    assert!(!dump.contains("SECRET"), "{dump}");
    assert!(ctx.metadata.contains_key("api_key.fingerprint"));
}

#[test]
fn api_key_prefixes_are_validated_without_echoing_them() {
    for bad in ["sk-live-abcdef", "ABCDEF0123", "abc"] {
        let err =
            ContextConfig::parse(Some(&json!({"api_keys": { bad: {} }}))).expect_err("refused");
        assert!(!err.to_string().contains(bad), "{err}");
    }
    let c = config(
        json!({"api_keys": {"0123456789abcdef": {"user": "long"}, "01234567": {"user": "short"}}}),
    );
    assert_eq!(
        c.key_defaults("0123456789abcdef99")
            .and_then(|d| d.user.as_deref()),
        Some("long"),
        "the longest matching prefix wins"
    );
    assert_eq!(
        c.key_defaults("01234567ff").and_then(|d| d.user.as_deref()),
        Some("short")
    );
    assert_eq!(c.key_defaults("ff"), None);
}

#[test]
fn presented_key_strips_schemes() {
    assert_eq!(
        presented_key(&headers(&[("Authorization", "Bearer abc")])).as_deref(),
        Some("abc")
    );
    assert_eq!(
        presented_key(&headers(&[("api-key", " xyz ")])).as_deref(),
        Some("xyz")
    );
    assert_eq!(
        presented_key(&headers(&[("authorization", "Bearer ")])),
        None
    );
    assert_eq!(presented_key(&headers(&[])), None);
}

#[test]
fn body_sources() {
    let mut ctx = Context::default();
    ctx.apply_body(
        br#"{"metadata":{"user_id":"u","session_id":"s","chat_id":"c","message_id":"m",
            "organization_id":"o","project_id":"p","tags":"x,y","team":"search","n":3,"nested":{"a":1},
            "langfuse":{"trace_name":"lf-trace","release":"r9","metadata":{"lf_extra":"e"}}}}"#,
    );
    assert_eq!(ctx.user.as_deref(), Some("u"));
    assert_eq!(ctx.session.as_deref(), Some("s"));
    assert_eq!(ctx.chat_id.as_deref(), Some("c"));
    assert_eq!(ctx.message_id.as_deref(), Some("m"));
    assert_eq!(ctx.organization_id.as_deref(), Some("o"));
    assert_eq!(ctx.project_id.as_deref(), Some("p"));
    assert_eq!(ctx.trace_name.as_deref(), Some("lf-trace"));
    assert_eq!(ctx.release.as_deref(), Some("r9"));
    assert_eq!(ctx.tags, ["x", "y"]);
    assert_eq!(ctx.metadata.get("team"), Some(&json!("search")));
    assert_eq!(ctx.metadata.get("n"), Some(&json!(3)));
    assert_eq!(ctx.metadata.get("lf_extra"), Some(&json!("e")));
    assert!(!ctx.metadata.contains_key("nested"), "only scalars");
    assert!(
        !ctx.metadata.contains_key("session_id"),
        "context keys are fields"
    );
}

#[test]
fn namespaced_keys_win_over_generic_ones() {
    let mut ctx = Context::default();
    ctx.apply_body(
        br#"{"user":"openai-user","metadata":{"user_id":"generic","langfuse":{"user_id":"lf","session_id":"lf-s"},
            "opik":{"thread_id":"opik-t"},"session_id":"generic-s"}}"#,
    );
    assert_eq!(ctx.user.as_deref(), Some("lf"));
    assert_eq!(ctx.session.as_deref(), Some("opik-t"), "opik is read first");
    let mut plain = Context::default();
    plain.apply_body(br#"{"user":"openai-user"}"#);
    assert_eq!(plain.user.as_deref(), Some("openai-user"));
}

#[test]
fn opik_current_span_data() {
    let mut ctx = Context::default();
    ctx.apply_body(
        br#"{"metadata":{"opik":{"current_span_data":{"trace_id":"0193E2C4-0000-7000-8000-000000000001",
            "id":"0193e2c4-0000-7000-8000-000000000002","project_name":"agents"}}}}"#,
    );
    let parent = ctx.opik_parent.expect("linked");
    assert_eq!(parent.trace_id, "0193e2c4-0000-7000-8000-000000000001");
    assert_eq!(
        parent.span_id.as_deref(),
        Some("0193e2c4-0000-7000-8000-000000000002")
    );
    assert_eq!(parent.project_name.as_deref(), Some("agents"));
    let mut bad = Context::default();
    bad.apply_body(br#"{"metadata":{"opik":{"current_span_data":{"trace_id":"not-a-uuid"}}}}"#);
    assert_eq!(bad.opik_parent, None);
}

#[test]
fn traceparent_parsing() {
    let p = parse_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("congo=t61rcWkgMzE"),
    )
    .expect("valid");
    assert_eq!(p.trace_id[0], 0x4b);
    assert_eq!(p.span_id[7], 0xb7);
    assert!(p.sampled);
    assert_eq!(p.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
    for bad in [
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "0é-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        assert_eq!(parse_traceparent(bad, None), None, "{bad}");
    }
    let future = parse_traceparent(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
        None,
    )
    .expect("later versions are read as 00");
    assert!(!future.sampled);
}

#[test]
fn header_traceparent_can_be_turned_off() {
    let h = headers(&[(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )]);
    assert!(Context::from_headers(&ContextConfig::default(), &h)
        .parent
        .is_some());
    let off = config(json!({"traceparent": false}));
    assert!(Context::from_headers(&off, &h).parent.is_none());
}

#[test]
fn values_and_tags_are_bounded() {
    let long = "é".repeat(1000);
    let many: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    let mut ctx = Context::default();
    ctx.set(Field::User, &long);
    ctx.set(Field::Tags, &many.join(","));
    let user = ctx.user.expect("set");
    assert!(user.len() <= MAX_VALUE_BYTES && user.chars().all(|c| c == 'é'));
    assert_eq!(ctx.tags.len(), MAX_TAGS);
}

#[test]
fn hostile_bodies_are_ignored() {
    for body in [
        &b"\xff\xfe"[..],
        b"[1,2]",
        b"{\"metadata\":[1]}",
        b"{\"metadata\":{\"tags\":{\"x\":1}},\"user\":7}",
        b"{",
    ] {
        let mut ctx = Context::default();
        ctx.apply_body(body);
        assert_eq!(ctx, Context::default(), "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn defaults_errors_name_the_path() {
    let cases = [
        (json!({"defaults": {"tags": "x"}}), "context.defaults.tags"),
        (
            json!({"defaults": {"tags": [""]}}),
            "context.defaults.tags[0]",
        ),
        (
            json!({"defaults": {"metadata": 1}}),
            "context.defaults.metadata",
        ),
        (
            json!({"defaults": {"colour": 1}}),
            "context.defaults.colour",
        ),
        (json!({"headers": {"users": []}}), "context.headers.users"),
        (
            json!({"headers": {"user": ["bad header"]}}),
            "context.headers.user[0]",
        ),
    ];
    for (value, path) in cases {
        let err = ContextConfig::parse(Some(&value)).expect_err(path);
        assert!(err.to_string().contains(path), "{err}");
    }
}

#[test]
fn key_prints_answer_each_key_its_own_fingerprint() {
    let mut prints = KeyPrints::default();
    for key in ["sk-a", "sk-a", "sk-b", "sk-a", "", "sk-b", "sk-b"] {
        assert_eq!(prints.fingerprint(key), fingerprint(key), "{key}");
    }
    assert!(!format!("{prints:?}").contains("sk-"), "Debug shows no key");
    let h = headers(&[("authorization", "Bearer sk-test-123456")]);
    let c = ContextConfig::default();
    let once = resolve(&c, None, &h);
    let mut prints = KeyPrints::default();
    for _ in 0..3 {
        let kept = resolve_with(&c, None, &h, &mut prints);
        assert_eq!(kept.metadata, once.metadata);
    }
}
