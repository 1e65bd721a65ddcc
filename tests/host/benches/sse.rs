//! Native SSE throughput of the filter's core: the event-stream decoder alone
//! ([`SseDecoder`]), and the whole chat stream fold ([`Capture`]: decoding, JSON of every
//! event, accumulation of content and tool calls, the record at the end).
//!
//! The same workloads run inside wasmtime in the `filter` bench. Run with `make bench` or
//! `cargo bench -p llm-tracer-host --bench sse`.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{
    mb_per_s, stream_500, tool_stream, tracing_config, us, workloads, Effort, Stats, Workload,
};
use llm_tracer::capture::{Capture, RequestStart};
use llm_tracer::config::{CaptureMode, Config};
use llm_tracer::policy::{self, Omit};
use llm_tracer::protocols::Protocol;
use llm_tracer::record::TraceRecord;
use llm_tracer::sse::SseDecoder;
use llm_tracer_host::{Chunking, Personality};
use serde_json::json;

/// The filter's default body cap, which also bounds an SSE line.
const MAX_BODY: usize = 1024 * 1024;

/// Decodes the stream; returns the number of events.
fn decode(chunks: &[&[u8]]) -> usize {
    let mut decoder = SseDecoder::new(MAX_BODY);
    let mut events = 0;
    let mut count = |e: &llm_tracer::sse::Event| {
        black_box(&e);
        events += 1;
    };
    for chunk in chunks {
        decoder.push(chunk, &mut count);
    }
    decoder.finish(&mut count);
    events
}

/// Folds the whole exchange into a record; returns its output token count and the number of
/// choices, to check the fold saw the response.
fn fold(w: &Workload, chunks: &[&[u8]]) -> (Option<u64>, usize) {
    let record = record(w, chunks);
    (record.usage.output, record.choices.len())
}

/// The record of the whole exchange, as the HTTP context hands it over when the response ends.
fn record(w: &Workload, chunks: &[&[u8]]) -> TraceRecord {
    let start = RequestStart {
        path: "/v1/chat/completions".into(),
        authority: Some("api.openai.com".into()),
        now_ns: 1,
        ..RequestStart::default()
    };
    let mut capture = Capture::new(start, Protocol::OpenAiChat, MAX_BODY);
    capture.request_chunk(Some(&w.request_body), true);
    let content_type = if w.streamed {
        "text/event-stream; charset=utf-8"
    } else {
        "application/json"
    };
    capture.response_headers(Some(200), Some(content_type), None);
    for (i, chunk) in chunks.iter().enumerate() {
        capture.response_chunk(chunk, 2 + i as u64);
    }
    capture.response_end();
    capture.finish(1_000_000)
}

/// The record, then what the filter does to it before queueing it: price, sampling, capture
/// mode, redaction, trimming.
fn finalized(w: &Workload, chunks: &[&[u8]], config: &Config) -> bool {
    let mut record = record(w, chunks);
    policy::price(&mut record, config, &mut Default::default());
    policy::finalize(&mut record, config, CaptureMode::Full, Omit::default())
}

/// The filter configuration of the `filter` bench with `settings` added.
fn config(settings: serde_json::Value) -> Config {
    let mut c: serde_json::Value =
        serde_json::from_str(&tracing_config("127.0.0.1:9", Personality::Envoy))
            .unwrap_or_default();
    if let (Some(c), serde_json::Value::Object(extra)) = (c.as_object_mut(), settings) {
        c.extend(extra);
    }
    match Config::parse(c.to_string().as_bytes()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration: {e}");
            std::process::exit(1);
        }
    }
}

/// Times `f` over `reps` repetitions per sample; returns per-repetition durations.
fn sample(samples: usize, reps: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..reps {
        f();
    }
    let per: Vec<Duration> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            t.elapsed() / u32::try_from(reps).unwrap_or(u32::MAX)
        })
        .collect();
    Stats::of(&per)
}

fn main() {
    let effort = Effort::from_env();
    println!("# Native SSE throughput (llm_tracer built for the host)\n");
    if effort.smoke {
        println!("smoke run (not `cargo bench`): numbers are meaningless\n");
    }
    println!(
        "| workload | chunking | stage | bytes | median µs per stream | p95 µs | MB/s (median) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    let samples = effort.iters(60);
    let reps = effort.iters(20);
    for w in [stream_500(), tool_stream()] {
        let body = w.response_body();
        let expected_events = w.response_chunks.len();
        let random = Chunking::Random { seed: 7 }.split(&body);
        let network: Vec<&[u8]> = w.response_chunks.iter().map(Vec::as_slice).collect();
        for (chunking, chunks) in [
            ("one event per chunk", &network),
            ("random 1–64 B chunks", &random),
        ] {
            let events = decode(chunks);
            if events != expected_events {
                eprintln!(
                    "{}: decoded {events} events, expected {expected_events}",
                    w.name
                );
                std::process::exit(1);
            }
            let (tokens, choices) = fold(&w, chunks);
            if tokens.is_none() || choices != 1 {
                eprintln!("{}: the fold lost the usage or the choice", w.name);
                std::process::exit(1);
            }
            for (stage, stats) in [
                (
                    "SseDecoder",
                    sample(samples, reps, || {
                        black_box(decode(black_box(chunks)));
                    }),
                ),
                (
                    "Capture (decode + fold + record)",
                    sample(samples, reps, || {
                        black_box(fold(&w, black_box(chunks)));
                    }),
                ),
            ] {
                println!(
                    "| {} | {chunking} | {stage} | {} | {} | {} | {:.0} |",
                    w.name,
                    body.len(),
                    us(stats.median),
                    us(stats.p95),
                    mb_per_s(body.len(), stats.median)
                );
            }
        }
    }
    println!();
    per_exchange(&effort);
}

/// The native core's cost of each per-exchange workload of the `filter` bench, to tell the
/// algorithms' cost from the cost of running them in wasm.
fn per_exchange(effort: &Effort) {
    let defaults = config(json!({}));
    let no_redaction = config(json!({"redact": {"builtin": []}}));
    println!("# Native core per exchange (median µs)\n");
    println!(
        "`Capture`: request, response, record. Finalized: then priced, redacted and trimmed \
         as the filter does before queueing it.\n"
    );
    println!("| workload | Capture | finalized, defaults | finalized, no built-in redaction |");
    println!("|---|---:|---:|---:|");
    for w in workloads() {
        let mut chunks: Vec<&[u8]> = w.response_chunks.iter().map(Vec::as_slice).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let (tokens, choices) = fold(&w, &chunks);
        if tokens.is_none() || choices != 1 || !finalized(&w, &chunks, &defaults) {
            eprintln!("{}: the record lost the usage or the choice", w.name);
            std::process::exit(1);
        }
        let reps = if w.name == "1 MB request" { 1 } else { 10 };
        let (samples, reps) = (effort.iters(60), effort.iters(reps));
        let capture = sample(samples, reps, || {
            black_box(fold(&w, black_box(&chunks)));
        });
        let full = sample(samples, reps, || {
            black_box(finalized(&w, black_box(&chunks), &defaults));
        });
        let bare = sample(samples, reps, || {
            black_box(finalized(&w, black_box(&chunks), &no_redaction));
        });
        println!(
            "| {} | {} | {} | {} |",
            w.name,
            us(capture.median),
            us(full.median),
            us(bare.median)
        );
    }
    println!();
}
