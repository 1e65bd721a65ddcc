//! Robustness of the real `llm_tracer.wasm` under load and abuse, as Kong and as Envoy:
//!
//! * soak: many exchanges replayed from `tests/fixtures` (every protocol, streamed and not,
//!   compressed and not, cut in many ways); the guest's linear memory stays flat after warm-up
//!   and every record reaches the collector, once;
//! * backend outage: the collector is unreachable for 60 s of ticks, then back; nothing is
//!   lost under the queue cap, drops past it are counted exactly, and traffic is untouched;
//! * slow backend: callouts time out, attempts per batch stop at `retry.max_attempts`, memory
//!   stays bounded;
//! * hostile input: invalid UTF-8, 10 MB bodies, deeply nested JSON, megabyte SSE lines,
//!   thousands of tool calls, odd or repeated headers and header names that are not UTF-8
//!   pass byte for byte, without a trap.
//!
//! The soak runs `LLM_TRACER_SOAK_EXCHANGES` exchanges per personality (default 10 000); the
//! full run is `LLM_TRACER_SOAK_EXCHANGES=100000 cargo test --test robustness soak -- --nocapture`.
//! Build the module first (`make wasm`).

use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::fixtures::{fixtures_dir, Fixture};
use llm_tracer_host::relay::Relay;
use llm_tracer_host::{
    CalloutFailure, CalloutResult, Chunking, Exchange, ExchangeOutcome, Host, HostOptions,
    LogLevel, Personality, WasmModule,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BOTH: [Personality; 2] = [Personality::Kong, Personality::Envoy];
const SINKS: [&str; 2] = ["opik", "langfuse"];
const FLUSH_MS: u64 = 1000;

fn module() -> &'static WasmModule {
    static MODULE: OnceLock<WasmModule> = OnceLock::new();
    MODULE.get_or_init(|| WasmModule::default_build().expect("llm_tracer.wasm (run `make wasm`)"))
}

/// Every recorded exchange of the repository, in a fixed order.
fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut ids = Vec::new();
        let dirs = |dir: &std::path::Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .expect("fixtures directory")
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect();
            names.sort();
            names
        };
        let root = fixtures_dir();
        for family in dirs(&root) {
            for case in dirs(&root.join(&family)) {
                ids.push(format!("{family}/{case}"));
            }
        }
        ids.iter()
            .map(|id| Fixture::load(id).unwrap_or_else(|e| panic!("{id}: {e}")))
            .collect()
    })
}

/// The recorded exchange `id` (`<api>/<case>`).
fn fixture(id: &str) -> &'static Fixture {
    fixtures()
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("fixture {id}"))
}

/// Where the filter exports to: one address for both sinks (Kong dispatches to it, Envoy to
/// the clusters `opik` and `langfuse` mapped to it).
fn config(p: Personality, backend: SocketAddr, extra: &str) -> String {
    let upstream = |cluster: &str| match p {
        Personality::Kong => backend.to_string(),
        Personality::Envoy => cluster.to_string(),
    };
    format!(
        r#"{{"flush_interval_ms":{FLUSH_MS},
            "opik":{{"endpoint":"http://{backend}/api","upstream":"{}","project_name":"soak","timeout_ms":5000}},
            "langfuse":{{"endpoint":"http://{backend}","upstream":"{}","public_key":"pk-lf-soak","secret_key":"sk-lf-soak","timeout_ms":5000}}{extra}}}"#,
        upstream("opik"),
        upstream("langfuse"),
    )
}

fn host(p: Personality, backend: SocketAddr, extra: &str) -> Host {
    let mut opts = HostOptions::new(p, config(p, backend, extra))
        .with_cluster("opik", backend)
        .with_cluster("langfuse", backend);
    // Kong spools request bodies over client_body_buffer_size to disk; keep fixtures readable.
    opts.client_body_buffer_size = Some(1 << 20);
    let host = Host::new(module(), opts).expect("the filter loads and configures");
    assert!(host.configured());
    host
}

/// A collector that accepts without validating (validation is `tests/gateway.rs`' job; here
/// volume matters).
fn collector() -> Collector {
    Collector::start(CollectorOptions::default())
}

fn validating_collector() -> Collector {
    let mut opts = CollectorOptions::validating().expect("specs for validation");
    opts.langfuse_keys = Some(("pk-lf-soak".into(), "sk-lf-soak".into()));
    Collector::start(opts)
}

/// A sink's counter, under either naming: `llm_tracer_export_<metric>_sink=<sink>` or
/// `llm_tracer_export_<sink>_<metric>`. 0 when the filter never defined it.
fn sink_metric(host: &Host, metric: &str, sink: &str) -> i64 {
    host.metric(&format!("llm_tracer_export_{metric}_sink={sink}"))
        .or_else(|| host.metric(&format!("llm_tracer_export_{sink}_{metric}")))
        .unwrap_or(0)
}

/// The request of a fixture, answered by its recorded response cut as `chunking`; `session`
/// (the `x-session-id` header) tells the exported records apart.
fn fixture_exchange(f: &Fixture, session: &str, chunking: Chunking) -> Exchange {
    let mut ex = Exchange::new("POST", &f.path)
        .request_header("content-type", "application/json")
        .request_header("x-session-id", session)
        .request_body(f.request.clone(), Chunking::Fixed(700));
    for (name, value) in &mut ex.request_headers {
        if name == ":authority" {
            value.clone_from(&f.authority);
        }
    }
    let mut headers = vec![("content-type", f.content_type.as_str())];
    if let Some(encoding) = &f.content_encoding {
        headers.push(("content-encoding", encoding.as_str()));
    }
    ex.response(f.status, &headers)
        .response_body(f.response.clone(), chunking)
}

/// The n-th way of cutting a body: whole, fixed sizes, random sizes, or odd sizes with the
/// empty final frame Envoy sends.
fn chunking(n: usize) -> Chunking {
    match n % 4 {
        0 => Chunking::Whole,
        1 => Chunking::Fixed(1 + n % 509),
        2 => Chunking::Random { seed: n as u64 },
        _ => Chunking::Sizes(vec![1, 2, 3, 5, 8, 13, 21, 34, 0]),
    }
}

/// Traffic passed byte for byte, without a pause or a trap.
fn assert_transparent(out: &ExchangeOutcome, ex: &Exchange, what: &str) {
    assert!(out.trap.is_none(), "{what}: trap {:?}", out.trap);
    assert!(!out.paused_response, "{what}: the response was paused");
    assert!(out.reached_upstream, "{what}: did not reach upstream");
    assert!(out.local_response.is_none(), "{what}: answered locally");
    assert!(
        out.upstream_body == ex.request_body,
        "{what}: upstream got other bytes"
    );
    assert!(
        out.client_body == ex.response_body,
        "{what}: client got other bytes ({} of {} bytes)",
        out.client_body.len(),
        ex.response_body.len()
    );
}

/// What the collector accepted, by trace id per sink.
#[derive(Default)]
struct Delivered {
    opik_traces: BTreeSet<String>,
    opik_spans: BTreeSet<String>,
    otlp_spans: BTreeSet<String>,
    /// Items seen, duplicates included.
    items: usize,
}

impl Delivered {
    /// Moves what the collector accepted so far into the tally. Call only with no callout
    /// pending, so nothing arrives between reading and clearing.
    fn collect(&mut self, collector: &Collector) {
        let ids = |items: Vec<Value>, key: &str| -> Vec<String> {
            items
                .iter()
                .map(|v| v[key].as_str().unwrap_or_default().to_string())
                .collect()
        };
        for (set, list) in [
            (&mut self.opik_traces, ids(collector.opik_traces(), "id")),
            (
                &mut self.opik_spans,
                ids(collector.opik_spans(), "trace_id"),
            ),
            (&mut self.otlp_spans, ids(collector.otlp_spans(), "traceId")),
        ] {
            self.items += list.len();
            set.extend(list);
        }
        collector.clear();
    }

    fn counts(&self) -> [usize; 3] {
        [
            self.opik_traces.len(),
            self.opik_spans.len(),
            self.otlp_spans.len(),
        ]
    }
}

/// One flush: a tick period passes, the tick exports, and every reply is delivered (replies
/// dispatch the next batch at once, so a backlog drains within one flush).
fn flush(host: &mut Host) {
    host.advance_ms(FLUSH_MS);
    host.tick();
    let deadline = Instant::now() + Duration::from_secs(60);
    while host.pending_callouts() > 0 && Instant::now() < deadline {
        host.pump(Duration::from_secs(5));
    }
    assert_eq!(host.pending_callouts(), 0, "callouts still pending");
}

/// Error lines the filter logged since the last call (the host's own lines excluded).
fn filter_errors(host: &mut Host) -> Vec<String> {
    host.take_logs()
        .into_iter()
        .filter(|l| l.level >= LogLevel::Error)
        .map(|l| l.message)
        .collect()
}

struct SoakReport {
    exchanges: usize,
    /// Guest memory after warm-up (a tenth of the run, at least 1 000 exchanges).
    memory_after_warmup: usize,
    /// The largest guest memory seen at any flush.
    memory_peak: usize,
    memory_at_end: usize,
    delivered: Delivered,
    elapsed: Duration,
}

/// Runs `exchanges` fixture exchanges through one host, flushing every `flush_every`.
fn soak(p: Personality, exchanges: usize, flush_every: usize) -> SoakReport {
    let collector = collector();
    let mut host = host(p, collector.addr(), "");
    let fixtures = fixtures();
    let warmup = (exchanges / 10).max(1000);
    let started = Instant::now();
    let mut delivered = Delivered::default();
    let (mut memory_after_warmup, mut memory_peak) = (0, 0);
    for i in 0..exchanges {
        let f = &fixtures[i % fixtures.len()];
        let ex = fixture_exchange(f, &format!("soak-{i}"), chunking(i / fixtures.len()));
        let out = host.exchange(&ex);
        assert_transparent(&out, &ex, &format!("{p:?} #{i} {}", f.id));
        if (i + 1) % flush_every == 0 || i + 1 == exchanges {
            flush(&mut host);
            delivered.collect(&collector);
            host.forget_finished();
            assert_eq!(filter_errors(&mut host), Vec::<String>::new(), "{p:?}");
            memory_peak = memory_peak.max(host.memory_bytes());
        }
        if i + 1 == warmup {
            memory_after_warmup = host.memory_bytes();
        }
    }
    assert!(host.traps().is_empty(), "{p:?}: {:?}", host.traps());
    for sink in SINKS {
        assert_eq!(
            sink_metric(&host, "sent_records_total", sink),
            exchanges as i64,
            "{p:?} {sink}: sent"
        );
        assert_eq!(sink_metric(&host, "dropped_records_total", sink), 0);
    }
    SoakReport {
        exchanges,
        memory_after_warmup,
        memory_peak,
        memory_at_end: host.memory_bytes(),
        delivered,
        elapsed: started.elapsed(),
    }
}

fn soak_size() -> usize {
    std::env::var("LLM_TRACER_SOAK_EXCHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// Growth allowed after warm-up. The guest allocator settles in 64 KiB pages over the first few
/// thousand exchanges (export replies arrive in varying order, so the exact point varies); a
/// leak of 100 bytes per exchange passes this within 10 000 exchanges.
const SETTLING_BYTES: usize = 1 << 20;

#[test]
fn soak_memory_stays_flat_and_every_record_is_exported() {
    let exchanges = soak_size();
    for p in BOTH {
        let report = soak(p, exchanges, 500);
        eprintln!(
            "soak {p:?}: {} exchanges in {:.1} s; guest memory {} B after warm-up, {} B at the end, {} B at most",
            report.exchanges,
            report.elapsed.as_secs_f64(),
            report.memory_after_warmup,
            report.memory_at_end,
            report.memory_peak,
        );
        assert_eq!(
            report.delivered.counts(),
            [exchanges; 3],
            "{p:?}: distinct traces at Opik (traces, spans) and Langfuse"
        );
        assert_eq!(report.delivered.items, 3 * exchanges, "{p:?}: duplicates");
        assert!(report.memory_after_warmup > 0);
        assert!(
            report.memory_peak <= report.memory_after_warmup + SETTLING_BYTES,
            "{p:?}: guest memory grew from {} to {} bytes after warm-up",
            report.memory_after_warmup,
            report.memory_peak
        );
    }
}

#[test]
fn housekeeping_forgets_only_what_is_finished() {
    let collector = collector();
    let mut host = host(Personality::Envoy, collector.addr(), "");
    let f = &fixtures()[0];
    for i in 0..3 {
        let ex = fixture_exchange(f, "u", chunking(i));
        assert_transparent(&host.exchange(&ex), &ex, "housekeeping");
    }
    host.advance_ms(FLUSH_MS);
    host.tick();
    let pending = host.pending_callouts();
    assert!(pending > 0, "the tick dispatched");
    let forgotten = host.forget_finished();
    assert_eq!(forgotten.streams, 3);
    assert_eq!(host.kept_streams(), 0);
    assert_eq!(host.callouts().len(), pending, "pending callouts are kept");
    flush(&mut host);
    let mut delivered = Delivered::default();
    delivered.collect(&collector);
    assert_eq!(delivered.counts(), [3; 3], "replies still reach the filter");
}

/// Outage settings: batches of 10, a queue of `queue` records, and retries that outlast a
/// 60 s outage (1, 2, 4, 8, then every 8 s: about 11 attempts in 60 s).
fn outage_extra(queue: usize) -> String {
    format!(
        r#","batch_max_records":10,"queue_max_records":{queue},
           "retry":{{"max_attempts":20,"initial_backoff_ms":1000,"max_backoff_ms":8000}}"#
    )
}

struct Outage {
    host: Host,
    collector: Collector,
    relay: Relay,
    /// The session of every exchange sent, in order.
    sessions: Vec<String>,
}

/// Sends `per_tick` exchanges per tick while the relay in front of the collector is down for
/// 60 ticks (60 s of guest time); checks traffic and that nothing reached the collector.
fn outage(p: Personality, queue: usize, per_tick: usize) -> Outage {
    let collector = collector();
    let relay = Relay::start(collector.addr()).expect("relay");
    relay.set_up(false).expect("down");
    let mut host = host(p, relay.addr(), &outage_extra(queue));
    let fixtures = fixtures();
    let mut sessions = Vec::new();
    for tick in 0..60 {
        for k in 0..per_tick {
            let n = sessions.len();
            let session = format!("outage-{n}");
            let ex = fixture_exchange(&fixtures[n % fixtures.len()], &session, chunking(tick + k));
            assert_transparent(&host.exchange(&ex), &ex, &format!("{p:?} during outage"));
            sessions.push(session);
        }
        flush(&mut host);
    }
    assert!(collector.received().is_empty(), "{p:?}: the relay was down");
    let calls = host.callouts();
    assert!(calls
        .iter()
        .all(|c| c.result == CalloutResult::Failed(CalloutFailure::Refused)));
    // One batch in flight per sink, retried with backoff: a bounded number of attempts.
    assert!(
        calls.len() <= 2 * 12,
        "{p:?}: {} attempts in 60 s",
        calls.len()
    );
    for sink in SINKS {
        let retries = sink_metric(&host, "retries_total", sink);
        assert!(retries >= 8, "{p:?} {sink}: {retries} retries");
    }
    Outage {
        host,
        collector,
        relay,
        sessions,
    }
}

/// Sessions of the records the collector accepted, per sink, in arrival order.
fn delivered_sessions(collector: &Collector) -> BTreeMap<&'static str, Vec<String>> {
    let attr = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|kv| kv["key"] == key))
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let opik = collector
        .opik_traces()
        .iter()
        .map(|t| t["thread_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let langfuse = collector
        .otlp_spans()
        .iter()
        .map(|s| attr(s, "session.id"))
        .collect();
    BTreeMap::from([("opik", opik), ("langfuse", langfuse)])
}

fn recover(outage: &mut Outage) {
    outage.relay.set_up(true).expect("the relay comes back");
    // Retries are due within 8 s; then each reply dispatches the next batch.
    for _ in 0..20 {
        flush(&mut outage.host);
    }
    assert!(outage.host.traps().is_empty());
}

#[test]
fn outage_under_the_queue_cap_loses_nothing() {
    for p in BOTH {
        // 60 records: the batch in flight plus 59 queued, under a cap of 100.
        let mut outage = outage(p, 100, 1);
        recover(&mut outage);
        for (sink, sessions) in delivered_sessions(&outage.collector) {
            assert_eq!(
                sessions, outage.sessions,
                "{p:?} {sink}: every record, in order"
            );
            assert_eq!(
                sink_metric(&outage.host, "sent_records_total", sink),
                60,
                "{p:?} {sink}"
            );
            assert_eq!(sink_metric(&outage.host, "dropped_records_total", sink), 0);
        }
        assert_eq!(outage.collector.opik_traces().len(), 60);
    }
}

#[test]
fn outage_past_the_queue_cap_counts_every_drop() {
    for p in BOTH {
        // 180 records. At the first tick a batch of the first 3 goes in flight and is retried
        // until the collector is back; the queue keeps the newest 20, the oldest are dropped.
        let (queue, per_tick) = (20, 3);
        let mut outage = outage(p, queue, per_tick);
        let total = outage.sessions.len();
        let in_flight = per_tick;
        let dropped = total - in_flight - queue;
        for sink in SINKS {
            assert_eq!(
                sink_metric(&outage.host, "dropped_records_total", sink),
                dropped as i64,
                "{p:?} {sink}: dropped while down"
            );
        }
        recover(&mut outage);
        let mut expected = outage.sessions[..in_flight].to_vec();
        expected.extend_from_slice(&outage.sessions[total - queue..]);
        for (sink, sessions) in delivered_sessions(&outage.collector) {
            assert_eq!(
                sessions, expected,
                "{p:?} {sink}: the batch in flight, then the newest"
            );
            let sent = sink_metric(&outage.host, "sent_records_total", sink);
            let dropped_now = sink_metric(&outage.host, "dropped_records_total", sink);
            assert_eq!(sent as usize, in_flight + queue, "{p:?} {sink}");
            assert_eq!(
                (sent + dropped_now) as usize,
                total,
                "{p:?} {sink}: every record sent or counted as dropped"
            );
        }
    }
}

#[test]
fn slow_backend_times_out_with_bounded_retries_and_memory() {
    let max_attempts = 3;
    for p in BOTH {
        let collector = Collector::start(CollectorOptions {
            delay: Some(Duration::from_millis(400)),
            ..CollectorOptions::default()
        });
        let extra = format!(
            r#","batch_max_records":5,"queue_max_records":20,
               "retry":{{"max_attempts":{max_attempts},"initial_backoff_ms":1000,"max_backoff_ms":2000}}"#
        );
        let config = config(p, collector.addr(), &extra)
            .replace("\"timeout_ms\":5000", "\"timeout_ms\":100");
        let mut opts = HostOptions::new(p, config)
            .with_cluster("opik", collector.addr())
            .with_cluster("langfuse", collector.addr());
        opts.client_body_buffer_size = Some(1 << 20);
        let mut host = Host::new(module(), opts).expect("host");
        let fixtures = fixtures();
        let mut memory_after_warmup = 0;
        // Attempts per distinct export request (path and body).
        let mut attempts: BTreeMap<(String, Vec<u8>), u32> = BTreeMap::new();
        let rounds = 40;
        for round in 0..rounds {
            // 25 records a second against a queue of 20: most are dropped, none is kept.
            for k in 0..25 {
                let f = &fixtures[(round * 25 + k) % fixtures.len()];
                let ex = fixture_exchange(f, "slow", chunking(round + k));
                assert_transparent(&host.exchange(&ex), &ex, &format!("{p:?} slow backend"));
            }
            flush(&mut host);
            for call in host.callouts() {
                assert_eq!(
                    call.result,
                    CalloutResult::Failed(CalloutFailure::Timeout),
                    "{p:?}: nothing answers within timeout_ms"
                );
                let path = call.header(":path").unwrap_or_default().to_string();
                *attempts.entry((path, call.body)).or_default() += 1;
            }
            host.forget_finished();
            if round == rounds / 4 {
                memory_after_warmup = host.memory_bytes();
            }
        }
        assert!(host.traps().is_empty(), "{p:?}");
        let memory = host.memory_bytes();
        assert!(
            memory_after_warmup > 0 && memory <= memory_after_warmup + SETTLING_BYTES,
            "{p:?}: guest memory grew from {memory_after_warmup} to {memory} bytes with a slow backend"
        );
        for sink in SINKS {
            let sent = sink_metric(&host, "sent_records_total", sink);
            let dropped = sink_metric(&host, "dropped_records_total", sink);
            let retries = sink_metric(&host, "retries_total", sink);
            assert_eq!(sent, 0, "{p:?} {sink}: nothing answers in time");
            assert!(dropped > 0 && retries > 0, "{p:?} {sink}");
        }
        let most = attempts.values().copied().max().unwrap_or(0);
        assert_eq!(
            most, max_attempts,
            "{p:?}: attempts per batch stop at max_attempts"
        );
        let exhausted = attempts.values().filter(|&&n| n == max_attempts).count();
        assert!(exhausted >= 10, "{p:?}: {exhausted} batches given up");
        let total_retries: i64 = SINKS
            .iter()
            .map(|sink| sink_metric(&host, "retries_total", sink))
            .sum();
        let calls: u32 = attempts.values().sum();
        // Every failed attempt is a retry, except the last one of a batch given up.
        assert_eq!(
            total_retries,
            i64::from(calls) - exhausted as i64,
            "{p:?}: retries counted exactly"
        );
    }
}

/// A chat request to `/v1/chat/completions` with `body`, answered `status` with `response`
/// of `content_type`, both cut as given.
fn chat(body: Vec<u8>, content_type: &str, response: Vec<u8>, chunking: Chunking) -> Exchange {
    Exchange::new("POST", "/v1/chat/completions")
        .request_header("content-type", "application/json")
        .request_body(body, Chunking::Fixed(64 * 1024))
        .response(200, &[("content-type", content_type)])
        .response_body(response, chunking)
}

fn sse_event(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// Runs hostile exchanges through a fresh host of each personality: traffic passes byte for
/// byte, nothing traps, every exchange gives one record that both backends accept. Returns the
/// guest memory growth per personality over the exchanges (after one ordinary warm-up exchange).
fn run_hostile(name: &str, exchanges: &[Exchange]) -> Vec<usize> {
    BOTH.iter()
        .map(|&p| {
            let collector = validating_collector();
            let mut host = host(p, collector.addr(), "");
            let warmup = fixture_exchange(&fixtures()[0], "warm-up", Chunking::Whole);
            assert_transparent(&host.exchange(&warmup), &warmup, "warm-up");
            flush(&mut host);
            collector.clear();
            let before = host.memory_bytes();
            for (i, ex) in exchanges.iter().enumerate() {
                let what = format!("{p:?} {name} #{i}");
                assert_transparent(&host.exchange(ex), ex, &what);
            }
            let growth = host.memory_bytes() - before;
            for _ in 0..3 {
                flush(&mut host);
            }
            assert!(host.traps().is_empty(), "{p:?} {name}: {:?}", host.traps());
            for r in collector.received() {
                assert!(
                    r.accepted(),
                    "{p:?} {name}: {} answered {}",
                    r.path,
                    r.status_answered
                );
                assert!(r.violations.is_empty(), "{p:?} {name}: {:?}", r.violations);
            }
            let n = exchanges.len();
            assert_eq!(collector.opik_spans().len(), n, "{p:?} {name}: Opik spans");
            assert_eq!(collector.otlp_spans().len(), n, "{p:?} {name}: OTLP spans");
            growth
        })
        .collect()
}

#[test]
fn hostile_invalid_utf8_passes_untouched() {
    let request = b"{\"model\":\"gpt-\xff\xfe\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80\"}]}".to_vec();
    let json = b"{\"id\":\"x\",\"model\":\"m\xc0\xaf\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\xe2\x82\"},\"finish_reason\":\"stop\"}]}".to_vec();
    let mut stream =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok \xff\"}}]}\n\n".to_vec();
    stream.extend_from_slice(b"event: \xfe\xfe\ndata: \x80\x81\n\n: \xc3\n\ndata: [DONE]\n\n");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    run_hostile(
        "invalid UTF-8",
        &[
            chat(
                request.clone(),
                "application/json",
                json,
                Chunking::Fixed(3),
            ),
            chat(
                request.clone(),
                "text/event-stream",
                stream,
                Chunking::Fixed(1),
            ),
            chat(
                binary.clone(),
                "application/json",
                binary.clone(),
                Chunking::Random { seed: 9 },
            ),
            chat(
                binary.clone(),
                "application/x-ndjson",
                binary,
                Chunking::Fixed(4096),
            ),
        ],
    );
}

#[test]
fn hostile_ten_megabyte_bodies_pass_with_bounded_memory() {
    const MB10: usize = 10 * 1024 * 1024;
    let content = "a".repeat(MB10);
    let request =
        format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{content}"}}]}}"#);
    let response = format!(
        r#"{{"id":"x","model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}]}}"#
    );
    let event = sse_event(
        r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"0123456789abcdef0123456789abcdef"}}]}"#,
    );
    let stream = event.repeat(MB10 / event.len() + 1) + "data: [DONE]\n\n";
    let chunks = Chunking::Fixed(64 * 1024);
    let growth = run_hostile(
        "10 MB bodies",
        &[
            chat(
                request.clone().into_bytes(),
                "application/json",
                response.into_bytes(),
                chunks.clone(),
            ),
            chat(
                request.into_bytes(),
                "text/event-stream",
                stream.into_bytes(),
                chunks,
            ),
        ],
    );
    for (p, grew) in BOTH.iter().zip(&growth) {
        // 40 MB went through; each body is kept up to max_body_bytes (1 MiB), a stream's text too.
        assert!(*grew < 16 << 20, "{p:?}: guest memory grew by {grew} bytes");
    }
}

#[test]
fn hostile_deeply_nested_json_is_refused_without_a_trap() {
    let nested = "[".repeat(100_000);
    let object = r#"{"a":"#.repeat(50_000);
    let stream = sse_event(&nested) + &sse_event(&format!(r#"{{"choices":{nested}"#));
    run_hostile(
        "deep nesting",
        &[
            chat(
                nested.clone().into_bytes(),
                "application/json",
                nested.clone().into_bytes(),
                Chunking::Fixed(999),
            ),
            chat(
                object.clone().into_bytes(),
                "application/json",
                object.into_bytes(),
                Chunking::Whole,
            ),
            chat(
                nested.into_bytes(),
                "text/event-stream",
                stream.into_bytes(),
                Chunking::Fixed(4096),
            ),
        ],
    );
}

#[test]
fn hostile_megabyte_sse_lines_pass() {
    let huge = "x".repeat(3 << 20);
    let line = sse_event(&format!(
        r#"{{"id":"x","model":"m","choices":[{{"index":0,"delta":{{"content":"{huge}"}}}}]}}"#
    ));
    let comment = format!(": {huge}\n\n");
    let ok =
        sse_event(r#"{"id":"x","model":"m","choices":[{"index":0,"delta":{"content":"fine"}}]}"#);
    let ndjson = format!("{{\"model\":\"m\",\"response\":\"{huge}\"}}\n{{\"done\":true}}\n");
    let ollama = Exchange::new("POST", "/api/generate")
        .request_body(br#"{"model":"m","prompt":"p"}"#.to_vec(), Chunking::Whole)
        .response(200, &[("content-type", "application/x-ndjson")])
        .response_body(ndjson.into_bytes(), Chunking::Fixed(100_000));
    run_hostile(
        "megabyte lines",
        &[
            chat(
                b"{}".to_vec(),
                "text/event-stream",
                format!("{line}{ok}data: [DONE]\n\n").into_bytes(),
                Chunking::Fixed(65_536),
            ),
            chat(
                b"{}".to_vec(),
                "text/event-stream",
                format!("{comment}{ok}").into_bytes(),
                Chunking::Whole,
            ),
            ollama,
        ],
    );
}

#[test]
fn hostile_thousands_of_tool_calls_are_traced() {
    const N: usize = 3000;
    let tools: Vec<String> = (0..N)
        .map(|i| format!(r#"{{"type":"function","function":{{"name":"tool_{i}","parameters":{{"type":"object"}}}}}}"#))
        .collect();
    let request = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"go"}}],"tools":[{}],"stream":true}}"#,
        tools.join(",")
    );
    let calls: Vec<String> = (0..N)
        .map(|i| format!(r#"{{"id":"call_{i}","type":"function","function":{{"name":"tool_{i}","arguments":"{{\"n\":{i}}}"}}}}"#))
        .collect();
    let response = format!(
        r#"{{"id":"x","model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":null,"tool_calls":[{}]}},"finish_reason":"tool_calls"}}]}}"#,
        calls.join(",")
    );
    let mut stream = String::new();
    for i in 0..N {
        stream += &sse_event(&format!(
            r#"{{"id":"x","model":"m","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{i},"id":"call_{i}","type":"function","function":{{"name":"tool_{i}","arguments":""}}}}]}}}}]}}"#
        ));
        stream += &sse_event(&format!(
            r#"{{"id":"x","model":"m","choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":{i},"function":{{"arguments":"{{\"n\":{i}}}"}}}}]}}}}]}}"#
        ));
    }
    stream += "data: [DONE]\n\n";
    run_hostile(
        "thousands of tool calls",
        &[
            chat(
                request.clone().into_bytes(),
                "application/json",
                response.into_bytes(),
                Chunking::Fixed(8192),
            ),
            chat(
                request.into_bytes(),
                "text/event-stream",
                stream.into_bytes(),
                Chunking::Random { seed: 4 },
            ),
        ],
    );
}

#[test]
fn hostile_odd_and_repeated_headers_pass() {
    let f = fixture("openai_chat/stream_text");
    let base = |response_headers: &[(&str, &str)]| {
        Exchange::new("POST", "/v1/chat/completions")
            .request_header("Content-Type", "APPLICATION/JSON")
            .request_header("X-USER-ID", "upper")
            .request_header("x-user-id", "lower")
            .request_header("x-session-id", "")
            .request_header("x-session-id", "s2")
            .request_header("Accept-Encoding", "GZIP, BR")
            .request_header("accept-encoding", "zstd")
            .request_body(f.request.clone(), Chunking::Whole)
            .response(200, response_headers)
            .response_body(f.response.clone(), Chunking::Fixed(7))
    };
    run_hostile(
        "odd headers",
        &[
            base(&[("Content-Type", "TEXT/EVENT-STREAM; Charset=UTF-8")]),
            base(&[
                ("content-type", "application/json"),
                ("content-type", "text/event-stream"),
            ]),
            base(&[
                ("content-type", "text/event-stream"),
                ("Content-Encoding", "GZIP"),
            ]),
            base(&[
                ("content-type", "text/event-stream"),
                ("content-encoding", "identity"),
                ("content-encoding", "br"),
            ]),
            base(&[
                ("content-type", "text/event-stream"),
                ("CONTENT-ENCODING", "x-unknown, gzip, br"),
            ]),
            base(&[
                ("content-type", "text/event-stream"),
                ("content-length", "5"),
                ("Content-Length", "99999"),
            ]),
            base(&[]),
        ],
    );
}

/// A header name or value that is not UTF-8 (nginx passes such names with
/// `ignore_invalid_headers off`): the filter reads the headers without trapping, passes the
/// exchange through and traces it, the odd value replaced in what it records.
#[test]
fn hostile_non_utf8_header_names_pass() {
    let f = fixture("openai_chat/basic");
    for p in BOTH {
        let collector = collector();
        let mut host = host(p, collector.addr(), "");
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "api.openai.com"),
            (":scheme", "https"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        headers.push((b"x-\xff\xfename".to_vec(), b"v".to_vec()));
        headers.push((b"x-chat-id".to_vec(), b"chat-\xc3".to_vec()));
        let id = host.begin_pairs(headers, false);
        let upstream = host.request_body(id, &f.request, true);
        assert_eq!(upstream, f.request, "{p:?}");
        host.response_headers(
            id,
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        );
        let client = host.response_body(id, &f.response, true);
        assert_eq!(client, f.response, "{p:?}");
        host.end(id);
        assert!(host.traps().is_empty(), "{p:?}: {:?}", host.traps());
        flush(&mut host);
        let spans = collector.opik_spans();
        assert_eq!(spans.len(), 1, "{p:?}");
        assert_eq!(spans[0]["metadata"]["chat_id"], "chat-\u{fffd}", "{p:?}");
    }
}

/// Guest memory growth over one exchange, on a fresh host after a warm-up exchange.
fn memory_growth(p: Personality, ex: &Exchange) -> usize {
    let collector = collector();
    let mut host = host(p, collector.addr(), "");
    let warmup = fixture_exchange(&fixtures()[0], "warm-up", Chunking::Whole);
    assert_transparent(&host.exchange(&warmup), &warmup, "warm-up");
    flush(&mut host);
    let before = host.memory_bytes();
    assert_transparent(&host.exchange(ex), ex, &format!("{p:?}"));
    flush(&mut host);
    assert!(host.traps().is_empty(), "{p:?}: {:?}", host.traps());
    host.memory_bytes() - before
}

/// About ten megabytes of the events `event(i)` gives, for i = 0, 1, 2, …
fn ten_megabytes_of(event: &dyn Fn(usize) -> String) -> Vec<u8> {
    const MB10: usize = 10 * 1024 * 1024;
    let mut out = String::new();
    let mut i = 0;
    while out.len() < MB10 {
        out += &event(i);
        i += 1;
    }
    out.into_bytes()
}

/// A streamed response on `path` of `body`.
fn stream_on(path: &str, body: Vec<u8>) -> Exchange {
    Exchange::new("POST", path)
        .request_body(b"{}".to_vec(), Chunking::Whole)
        .response(200, &[("content-type", "text/event-stream")])
        .response_body(body, Chunking::Fixed(64 * 1024))
}

/// Ten megabytes of stream events that each add a little to what the fold keeps: data lines
/// that never end an event, tool-call name deltas, and a new choice, content block, output
/// item or candidate per event, for every streaming API that indexes its items.
fn growing_streams() -> Vec<(&'static str, Exchange)> {
    let filler = "y".repeat(100);
    let chat_path = "/v1/chat/completions";
    vec![
        (
            "data lines without a blank line",
            stream_on(
                chat_path,
                ten_megabytes_of(&|_| format!("data: {filler}\n")),
            ),
        ),
        (
            "chat tool-call name deltas",
            stream_on(
                chat_path,
                ten_megabytes_of(&|_| {
                    sse_event(&format!(
                        r#"{{"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"name":"{filler}"}}}}]}}}}]}}"#
                    ))
                }),
            ),
        ),
        (
            "chat: a new choice and tool call per event",
            stream_on(
                chat_path,
                ten_megabytes_of(&|i| {
                    sse_event(&format!(
                        r#"{{"choices":[{{"index":{i},"delta":{{"tool_calls":[{{"index":{i},"id":"c{i}"}}]}}}}]}}"#
                    ))
                }),
            ),
        ),
        (
            "messages: a new content block per event",
            stream_on(
                "/v1/messages",
                ten_megabytes_of(&|i| {
                    format!(
                        "event: content_block_start\n{}",
                        sse_event(&format!(
                            r#"{{"type":"content_block_start","index":{i},"content_block":{{"type":"tool_use","id":"t{i}","name":"n{i}","input":{{}}}}}}"#
                        ))
                    )
                }),
            ),
        ),
        (
            "responses: a new output item per event",
            stream_on(
                "/v1/responses",
                ten_megabytes_of(&|i| {
                    format!(
                        "event: response.output_item.added\n{}",
                        sse_event(&format!(
                            r#"{{"type":"response.output_item.added","output_index":{i},"item":{{"id":"fc_{i}","type":"function_call","status":"in_progress","arguments":"","call_id":"call_{i}","name":"f"}}}}"#
                        ))
                    )
                }),
            ),
        ),
        (
            "gemini: a new function call per event on one candidate",
            stream_on(
                "/v1beta/models/g:streamGenerateContent?alt=sse",
                ten_megabytes_of(&|i| {
                    sse_event(&format!(
                        r#"{{"candidates":[{{"content":{{"parts":[{{"functionCall":{{"name":"f{i}{filler}","args":{{}}}}}}]}},"index":0}}]}}"#
                    ))
                }),
            ),
        ),
        (
            "ollama: a new tool call per line",
            Exchange::new("POST", "/api/chat")
                .request_body(b"{}".to_vec(), Chunking::Whole)
                .response(200, &[("content-type", "application/x-ndjson")])
                .response_body(
                    ten_megabytes_of(&|i| {
                        format!(
                            "{{\"message\":{{\"role\":\"assistant\",\"tool_calls\":[{{\"function\":{{\"name\":\"f{i}{filler}\",\"arguments\":{{}}}}}}]}},\"done\":false}}\n"
                        )
                    }),
                    Chunking::Fixed(64 * 1024),
                ),
        ),
        (
            "gemini: a new candidate per event",
            stream_on(
                "/v1beta/models/g:streamGenerateContent?alt=sse",
                ten_megabytes_of(&|i| {
                    sse_event(&format!(
                        r#"{{"candidates":[{{"content":{{"parts":[{{"functionCall":{{"name":"f{i}","args":{{}}}}}}],"role":"model"}},"index":{i}}}]}}"#
                    ))
                }),
            ),
        ),
    ]
}

#[test]
fn hostile_streams_keep_memory_bounded() {
    for (name, ex) in growing_streams() {
        for p in BOTH {
            let grew = memory_growth(p, &ex);
            // A stream keeps at most max_body_bytes (1 MiB) of data, whatever its framing.
            assert!(
                grew <= 4 << 20,
                "{p:?} {name}: guest memory grew by {grew} bytes"
            );
        }
    }
}
