//! Gateway-mode throughput: the host as a local HTTP proxy in front of the mock LLM, loaded by
//! concurrent clients, with the tracing filter against a pass-through.
//!
//! Three gateways run the same requests: a module with no callbacks at all (pure
//! pass-through), the filter with an empty configuration (loaded, tracing nothing), and the
//! filter tracing to both sinks of a local collector. Requests per second and latency are
//! reported, and the ratio to the pass-through. Run with `make bench` or
//! `cargo bench -p llm-tracer-host --bench gateway`.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{filter_module, tracing_config, us, Effort, Stats};
use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::gateway::Gateway;
use llm_tracer_host::http::{self, Request};
use llm_tracer_host::{HostOptions, Personality, WasmModule};
use serde_json::json;

/// Concurrent clients.
const CLIENTS: usize = 2;
/// Per-request client timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A proxy-wasm module that exports no callback: every request passes untouched.
const PASS_THROUGH_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024)))"#;

fn chat_request(stream: bool) -> Request {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello."}
        ]
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    let mut req = Request::new("POST", "/v1/chat/completions");
    req.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("x-user-id".into(), "user-bench".into()),
    ];
    req.body = body.to_string().into_bytes();
    req
}

/// What the clients achieved against one gateway.
struct Load {
    /// Latency of every request answered 200.
    latencies: Vec<Duration>,
    failures: usize,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// `CLIENTS` threads send `req` to `addr` back to back for `duration`.
fn load(addr: SocketAddr, req: &Request, stream: bool, duration: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let req = req.clone();
            thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut failures = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = if stream {
                        let mut status = 0;
                        let mut bytes = 0;
                        http::send_streaming(
                            addr,
                            &req,
                            TIMEOUT,
                            |s, _| status = s,
                            |c| bytes += c.len(),
                        )
                        .is_ok()
                            && status == 200
                            && bytes > 0
                    } else {
                        http::send(addr, &req, TIMEOUT).is_ok_and(|r| r.status == 200)
                    };
                    if ok {
                        latencies.push(t.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failures = 0;
    for h in handles {
        match h.join() {
            Ok((l, f)) => {
                latencies.extend(l);
                failures += f;
            }
            Err(_) => failures += 1,
        }
    }
    Load {
        latencies,
        failures,
        elapsed: started.elapsed(),
    }
}

/// CPU time used so far by the thread of this process named `name` (Linux: the first field of
/// `/proc/self/task/<tid>/schedstat`, in nanoseconds).
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

/// The name of a gateway's worker thread.
fn worker_name(gateway: &Gateway) -> String {
    format!("gateway-{}", gateway.addr().port())
}

/// One gateway set-up under test.
struct Variant {
    label: &'static str,
    module: WasmModule,
    config: String,
    /// Whether it exports records to the collector.
    traces: bool,
}

fn kind(stream: bool) -> &'static str {
    if stream {
        "streamed"
    } else {
        "not streamed"
    }
}

/// Waits for the tracing gateway to export what it queued; returns the records the collector
/// got (Opik traces, checked against the filter's `sent` counter) and the filter's count of
/// records it dropped, per sink.
fn export_accounting(gateway: &Gateway, collector: &Collector) -> Result<(usize, usize), String> {
    if !gateway
        .settle(Duration::from_secs(60))
        .map_err(|e| e.to_string())?
    {
        return Err("the exports did not settle within 60 s".into());
    }
    let counters = gateway
        .with_host(|h| h.metrics())
        .map_err(|e| e.to_string())?;
    let counter = |what: &str| {
        counters
            .iter()
            .filter(|(name, _)| name.contains(what) && name.contains("opik"))
            .map(|(_, v)| usize::try_from(v.as_i64()).unwrap_or(0))
            .sum::<usize>()
    };
    let (sent, dropped) = (
        counter("export_sent_records_total"),
        counter("export_dropped_records_total"),
    );
    let traces = collector.opik_traces().len();
    if traces != sent {
        return Err(format!(
            "the filter counted {sent} records sent to Opik, the collector got {traces}"
        ));
    }
    Ok((sent, dropped))
}

fn main() {
    let effort = Effort::from_env();
    let filter = filter_module();
    let pass_through = match WasmModule::from_bytes(PASS_THROUGH_WAT.as_bytes()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("pass-through module: {e}");
            std::process::exit(1);
        }
    };
    let mock = llm_tracer_host::mock_llm::MockLlm::start();
    let collector = Collector::start(CollectorOptions::default());
    let duration = effort.duration(Duration::from_secs(2));
    let warm_up = effort.duration(Duration::from_secs(1));
    let rounds = effort.iters(5);
    let personality = Personality::Kong;

    println!("# Gateway-mode throughput\n");
    println!(
        "The host as a local gateway (one worker, as one Kong worker process) in front of the \
         mock LLM; {CLIENTS} client threads send requests back to back. Each gateway is \
         warmed up for {:.1} s, then loaded for {rounds} rounds of {:.1} s in rotating order; \
         requests/s is the median round, latency over all rounds. Worker CPU is the CPU time \
         of the gateway's worker thread (which runs the filter, its ticks and its exports) from \
         the end of the warm-up until every record is exported, per request of the measured \
         rounds; unlike requests/s it does not move with the machine's load. Personality: \
         {personality}.\n",
        warm_up.as_secs_f64(),
        duration.as_secs_f64()
    );
    if effort.smoke {
        println!("smoke run (not `cargo bench`): numbers are meaningless\n");
    }
    println!(
        "| request | gateway | worker CPU µs per request | ÷ pass-through | requests/s \
         | ÷ pass-through | median latency µs | p95 latency µs | failures |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let variants = [
        Variant {
            label: "pass-through module",
            module: pass_through,
            config: String::new(),
            traces: false,
        },
        Variant {
            label: "llm-tracer, empty config",
            module: filter.clone(),
            config: "{}".into(),
            traces: false,
        },
        Variant {
            label: "llm-tracer, tracing",
            module: filter,
            config: {
                let mut c: serde_json::Value = serde_json::from_str(&tracing_config(
                    &collector.addr().to_string(),
                    personality,
                ))
                .unwrap_or_default();
                c["flush_interval_ms"] = json!(1000);
                c.to_string()
            },
            traces: true,
        },
    ];
    let mut failed = false;
    let mut notes = Vec::new();
    for stream in [false, true] {
        let req = chat_request(stream);
        collector.clear();
        let mut gateways = Vec::new();
        for v in &variants {
            let opts = HostOptions::new(personality, v.config.clone());
            match Gateway::start(&v.module, opts, mock.addr()) {
                Ok(g) => gateways.push(g),
                Err(e) => {
                    eprintln!("{}: {e}", v.label);
                    std::process::exit(1);
                }
            }
        }
        // Rounds in rotating order, so that a change of machine load hits every variant.
        let mut rates = vec![Vec::new(); variants.len()];
        let mut latencies = vec![Vec::new(); variants.len()];
        let mut served = vec![0; variants.len()];
        let mut failures = vec![0; variants.len()];
        for (i, g) in gateways.iter().enumerate() {
            let warm = load(g.addr(), &req, stream, warm_up);
            served[i] += warm.latencies.len();
            failures[i] += warm.failures;
        }
        let cpu_start: Vec<Option<Duration>> = gateways
            .iter()
            .map(|g| thread_cpu(&worker_name(g)))
            .collect();
        for round in 0..rounds {
            for k in 0..variants.len() {
                let i = (k + round) % variants.len();
                let l = load(gateways[i].addr(), &req, stream, duration);
                rates[i].push(l.per_second());
                served[i] += l.latencies.len();
                failures[i] += l.failures;
                latencies[i].extend(l.latencies);
            }
        }
        let median = |r: &[f64]| {
            let mut r = r.to_vec();
            r.sort_by(f64::total_cmp);
            r.get(r.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
        };
        let mut cpu_per_request = Vec::new();
        for (i, v) in variants.iter().enumerate() {
            if v.traces {
                match export_accounting(&gateways[i], &collector) {
                    Ok((exported, dropped)) if exported + dropped == served[i] => {
                        notes.push(format!(
                            "{} ({}): {} exchanges served, {exported} exported to Opik, \
                             {dropped} dropped by the export queue (counted in \
                             `llm_tracer_export_dropped_records_total`).",
                            v.label,
                            kind(stream),
                            served[i]
                        ));
                    }
                    Ok((exported, dropped)) => {
                        eprintln!(
                            "{}: {} requests served, {exported} exported + {dropped} dropped",
                            v.label, served[i]
                        );
                        failed = true;
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", v.label);
                        failed = true;
                    }
                }
            }
            let measured = latencies[i].len();
            let cpu = thread_cpu(&worker_name(&gateways[i]))
                .zip(cpu_start[i])
                .map(|(end, start)| end.saturating_sub(start))
                .filter(|_| measured > 0)
                .map(|c| c / u32::try_from(measured).unwrap_or(u32::MAX));
            cpu_per_request.push(cpu);
        }
        let base_rate = median(&rates[0]);
        for (i, v) in variants.iter().enumerate() {
            let rate = median(&rates[i]);
            let latency = Stats::of(&latencies[i]);
            let (cpu, cpu_ratio) = match (cpu_per_request[i], cpu_per_request[0]) {
                (Some(c), Some(b)) if !b.is_zero() => {
                    (us(c), format!("{:.2}", c.as_secs_f64() / b.as_secs_f64()))
                }
                (Some(c), _) => (us(c), "–".into()),
                _ => ("–".into(), "–".into()),
            };
            let rate_ratio = if base_rate > 0.0 {
                rate / base_rate
            } else {
                0.0
            };
            println!(
                "| {} | {} | {cpu} | {cpu_ratio} | {rate:.0} | {rate_ratio:.2} | {} | {} | {} |",
                kind(stream),
                v.label,
                us(latency.median),
                us(latency.p95),
                failures[i]
            );
            failed |= failures[i] > 0;
        }
    }
    println!();
    for note in notes {
        println!("- {note}");
    }
    println!();
    if failed {
        eprintln!("some requests failed or were not traced");
        std::process::exit(1);
    }
}
