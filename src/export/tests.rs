use super::*;
use crate::config::Config;
use proptest::prelude::*;

/// Records every dispatch; refuses when told to.
#[derive(Default)]
struct FakeHost {
    calls: Vec<(String, String, Vec<u8>)>,
    refuse: bool,
    next_token: u32,
}

impl Dispatch for FakeHost {
    fn dispatch(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout_ms: u32,
    ) -> Result<u32, DispatchError> {
        if self.refuse {
            return Err(DispatchError { status: 2 });
        }
        let path = headers
            .iter()
            .find(|(k, _)| *k == ":path")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        self.calls.push((upstream.to_string(), path, body.to_vec()));
        self.next_token += 1;
        Ok(self.next_token)
    }
}

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"opik":{{"endpoint":"http://127.0.0.1:5173/api"}},
            "retry":{{"max_attempts":3,"initial_backoff_ms":100,"max_backoff_ms":1000}}{extra}}}"#
    );
    Config::parse(json.as_bytes()).expect("test config")
}

fn record(n: u8) -> TraceRecord {
    TraceRecord {
        trace_id: [n; 16],
        span_id: [n; 8],
        start_ns: 1_785_585_600_000_000_000,
        end_ns: 1_785_585_601_000_000_000,
        operation: "chat",
        provider: "openai".into(),
        path: "/v1/chat/completions".into(),
        ..TraceRecord::default()
    }
}

fn stats(e: &Exporter) -> SinkStats {
    e.stats().next().map(|(_, s, _)| s).expect("one sink")
}

#[test]
fn opik_batch_is_traces_then_spans() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost::default();
    e.push(record(1));
    e.push(record(2));
    e.tick(0, &mut host);
    assert_eq!(host.calls.len(), 1);
    assert_eq!(host.calls[0].0, "127.0.0.1:5173");
    assert_eq!(host.calls[0].1, "/api/v1/private/traces/batch");
    assert!(e.on_reply(1, Some(204), None, b"", 0, &mut host));
    assert_eq!(host.calls[1].1, "/api/v1/private/spans/batch");
    assert_eq!(stats(&e).sent, 0, "not sent until the spans are in");
    assert!(e.on_reply(2, Some(204), None, b"", 0, &mut host));
    assert_eq!(stats(&e).sent, 2);
    assert_eq!(e.in_flight(), 0);
    assert!(
        !e.on_reply(99, Some(204), None, b"", 0, &mut host),
        "unknown token"
    );
}

#[test]
fn transient_failures_retry_with_backoff_then_succeed() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost::default();
    e.push(record(1));
    e.tick(0, &mut host);
    e.on_reply(1, Some(500), None, b"oops", 0, &mut host);
    assert_eq!(host.calls.len(), 1, "waits for the backoff");
    e.tick(50, &mut host);
    assert_eq!(host.calls.len(), 1);
    e.tick(100, &mut host);
    assert_eq!(host.calls.len(), 2, "retried after 100 ms");
    assert_eq!(host.calls[1].2, host.calls[0].2, "same bytes again");
    e.on_reply(2, None, None, b"", 100, &mut host); // refused connection
    e.tick(250, &mut host);
    assert_eq!(host.calls.len(), 2, "second backoff is 200 ms");
    e.tick(300, &mut host);
    assert_eq!(host.calls.len(), 3);
    e.on_reply(3, Some(204), None, b"", 300, &mut host);
    e.on_reply(4, Some(204), None, b"", 300, &mut host);
    let s = stats(&e);
    assert_eq!((s.sent, s.retries, s.dropped()), (1, 2, 0));
    let events = e.take_events();
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|ev| matches!(ev, ExportEvent::Retrying { .. })));
}

#[test]
fn retry_after_is_honoured_up_to_the_cap() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost::default();
    e.push(record(1));
    e.tick(0, &mut host);
    e.on_reply(1, Some(429), Some(60), b"", 0, &mut host);
    e.tick(999, &mut host);
    assert_eq!(host.calls.len(), 1);
    e.tick(1000, &mut host);
    assert_eq!(
        host.calls.len(),
        2,
        "Retry-After 60 s capped at max_backoff_ms"
    );
}

#[test]
fn exhausted_batches_are_dropped_and_counted() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost::default();
    e.push(record(1));
    let mut now = 0;
    for token in 1..=3 {
        e.tick(now, &mut host);
        e.on_reply(token, Some(503), None, b"", now, &mut host);
        now += 10_000;
    }
    e.tick(now, &mut host);
    assert_eq!(host.calls.len(), 3);
    let s = stats(&e);
    assert_eq!((s.sent, s.dropped_exhausted), (0, 1));
    assert!(e.take_events().iter().any(|ev| matches!(
        ev,
        ExportEvent::Exhausted {
            attempts: 3,
            records: 1,
            ..
        }
    )));
}

#[test]
fn client_errors_drop_the_batch_once() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost::default();
    e.push(record(1));
    e.tick(0, &mut host);
    e.on_reply(
        1,
        Some(422),
        None,
        b"{\"errors\":[\"bad\"]}\n",
        0,
        &mut host,
    );
    e.tick(10_000, &mut host);
    assert_eq!(host.calls.len(), 1);
    let s = stats(&e);
    assert_eq!((s.dropped_rejected, s.dropped()), (1, 1));
    match &e.take_events()[..] {
        [ExportEvent::Rejected {
            status: 422,
            body_head,
            ..
        }] => {
            assert_eq!(body_head, "{\"errors\":[\"bad\"]} ")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refused_dispatch_is_retried_like_a_failure() {
    let mut e = Exporter::new(&config(""));
    let mut host = FakeHost {
        refuse: true,
        ..FakeHost::default()
    };
    e.push(record(1));
    e.tick(0, &mut host);
    assert_eq!(stats(&e).retries, 1);
    host.refuse = false;
    e.tick(100, &mut host);
    assert_eq!(host.calls.len(), 1);
}

#[test]
fn overflow_drops_the_oldest() {
    let mut e = Exporter::new(&config(r#","queue_max_records":3"#));
    let mut host = FakeHost::default();
    for n in 1..=5 {
        e.push(record(n));
    }
    assert_eq!(stats(&e).dropped_overflow, 2);
    e.tick(0, &mut host);
    let body = String::from_utf8(host.calls[0].2.clone()).expect("utf-8");
    let traces: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(traces["traces"].as_array().map(Vec::len), Some(3));
    // Record 3 (the oldest kept) has trace id bytes 0x03…: its UUIDv7 tail starts with 03.
    let first_id = traces["traces"][0]["id"].as_str().unwrap_or_default();
    assert!(first_id.ends_with("-7303-8303-030303030303"), "{first_id}");
}

#[test]
fn byte_bound_drops_the_oldest_but_keeps_the_newest() {
    let mut e = Exporter::new(&config(r#","queue_max_bytes":2048"#));
    let mut big = record(1);
    big.tools_json = Some("x".repeat(1500));
    e.push(big.clone());
    e.push(big);
    assert_eq!(stats(&e).dropped_overflow, 1);
    let (_, _, waiting) = e.stats().next().expect("sink");
    assert_eq!(waiting, 1);
}

#[test]
fn batches_respect_the_record_limit_and_drain_back_to_back() {
    let mut e = Exporter::new(&config(r#","batch_max_records":2"#));
    let mut host = FakeHost::default();
    for n in 1..=5 {
        e.push(record(n));
    }
    e.tick(0, &mut host);
    let mut token = 0;
    while token < host.calls.len() as u32 {
        token += 1;
        e.on_reply(token, Some(204), None, b"", 0, &mut host);
    }
    // 3 batches × (traces + spans), with no tick in between.
    assert_eq!(host.calls.len(), 6);
    assert_eq!(stats(&e).sent, 5);
}

proptest! {
    /// Whatever the replies, every pushed record ends up counted exactly once: sent, dropped
    /// or still queued; queues never exceed their bound.
    #[test]
    fn every_record_is_accounted_for(
        pushes in proptest::collection::vec(0u8..4, 1..60),
        replies in proptest::collection::vec(prop_oneof![Just(Some(204u16)), Just(Some(500)), Just(Some(400)), Just(None)], 1..80),
    ) {
        let mut e = Exporter::new(&config(r#","queue_max_records":8,"batch_max_records":3"#));
        let mut host = FakeHost::default();
        let mut pushed = 0u64;
        let mut now = 0;
        let mut replies = replies.into_iter();
        for burst in pushes {
            for _ in 0..burst {
                pushed += 1;
                e.push(record(1));
            }
            now += 5_000;
            e.tick(now, &mut host);
            if let Some(status) = replies.next() {
                let token = host.next_token;
                e.on_reply(token, status, None, b"", now, &mut host);
            }
            let (_, s, waiting) = e.stats().next().expect("sink");
            prop_assert!(waiting <= 8 + 3);
            prop_assert_eq!(s.sent + s.dropped() + waiting as u64, pushed);
        }
    }
}
