//! Per-exchange cost of the filter inside wasmtime, against a naive baseline filter.
//!
//! For each workload: the time spent in the guest's callbacks per exchange (median and 95th
//! percentile after warm-up), the same through the naive baseline, the ratio; SSE throughput
//! inside the module; the export cost per record on the root's tick; linear memory per
//! in-flight exchange. Run with `make bench` (or `cargo bench -p llm-tracer-host --bench
//! filter` once both modules are built).

mod common;

use std::time::Duration;

use common::{
    drive, filter_module, mb_per_s, naive_module, naive_path, options, us, with_settings,
    workloads, Effort, ExchangeTime, Stats, TimedHost, Workload,
};
use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::{Host, Personality, WasmModule};
use serde_json::{json, Value};

/// Exchanges run on one host instance before it is replaced, so that the host's own records
/// of past streams (kept for inspection) stay small.
const PER_HOST: usize = 200;
/// Untimed exchanges on each new instance.
const WARM_UP: usize = 10;

/// One filter under test.
struct Subject {
    label: &'static str,
    module: WasmModule,
    personality: Personality,
    /// Keys set in the filter configuration (a JSON object).
    settings: Value,
    /// How to tell that it traced the warm-up exchanges.
    proof: Proof,
}

/// How a run checks that the filter really traced (and did not pass traffic through).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proof {
    /// The records reach the collector at the next ticks (llm-tracer).
    Exported,
    /// The module counts them in this metric (the baseline).
    Metric(&'static str),
    /// Nothing reaches the collector: the filter is set to capture nothing, so what is
    /// measured is the cost of its callbacks alone.
    Untraced,
}

impl Subject {
    fn new(label: &'static str, module: &WasmModule, personality: Personality) -> Self {
        Subject {
            label,
            module: module.clone(),
            personality,
            settings: json!({}),
            proof: Proof::Exported,
        }
    }

    fn host(&self, collector: &Collector, split: bool) -> Result<TimedHost, String> {
        let opts = with_settings(options(self.personality, collector.addr()), &self.settings);
        TimedHost::new(&self.module, opts, split).map_err(|e| format!("{}: {e}", self.label))
    }

    /// Checks that the `n` exchanges run so far on `h` were traced.
    fn check_traced(
        &self,
        h: &mut TimedHost,
        n: usize,
        collector: &Collector,
    ) -> Result<(), String> {
        let got = match self.proof {
            Proof::Exported | Proof::Untraced => {
                let before = collector.otlp_spans().len();
                h.host.settle(100);
                collector.otlp_spans().len().saturating_sub(before)
            }
            Proof::Metric(name) => h
                .host
                .metric(name)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(0),
        };
        let expected = if self.proof == Proof::Untraced { 0 } else { n };
        if got != expected {
            return Err(format!("{}: {n} exchanges, {got} traced", self.label));
        }
        Ok(())
    }
}

/// Timed runs of one workload through one subject.
struct Run {
    samples: Vec<ExchangeTime>,
}

impl Run {
    fn stats(&self, f: impl Fn(&ExchangeTime) -> Duration) -> Stats {
        Stats::of(&self.samples.iter().map(f).collect::<Vec<_>>())
    }
}

fn iterations(w: &Workload, effort: &Effort) -> usize {
    let base = match w.name {
        "stream 500 chunks" => 600,
        "1 MB request" => 150,
        _ => 2000,
    };
    effort.iters(base)
}

/// Exchanges run on one subject before the next subject's turn: subjects take turns, so that
/// they share the machine's conditions (other processes come and go) and their ratio holds
/// even when the absolute figures move.
const TURN: usize = 20;
/// How long the export between turns may wait for the collector's replies.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// One subject's host and how many exchanges it has run.
struct Slot {
    host: TimedHost,
    runs: usize,
}

/// Runs `n` timed exchanges of `w` through each subject, in turns of [`TURN`], on fresh hosts
/// every [`PER_HOST`] exchanges (fewer for the 1 MB workload) after [`WARM_UP`] untimed ones.
/// Checks, on each subject's first host, that the warm-up exchanges were traced; on every host,
/// that nothing trapped.
fn run_all(
    subjects: &[Subject],
    w: &Workload,
    n: usize,
    split: bool,
    collector: &Collector,
) -> Result<Vec<Run>, String> {
    let per_host = match w.name {
        "1 MB request" => 25,
        _ => PER_HOST,
    };
    let mut runs: Vec<Run> = subjects
        .iter()
        .map(|_| Run {
            samples: Vec::with_capacity(n),
        })
        .collect();
    let mut slots: Vec<Option<Slot>> = subjects.iter().map(|_| None).collect();
    while runs.iter().any(|r| r.samples.len() < n) {
        for ((subject, run), slot) in subjects.iter().zip(&mut runs).zip(&mut slots) {
            if run.samples.len() >= n {
                continue;
            }
            let mut current = match slot.take() {
                Some(s) => s,
                None => {
                    let mut host = subject.host(collector, split)?;
                    for i in 0..WARM_UP {
                        drive(&mut host, w, i == 0)?;
                    }
                    if run.samples.is_empty() {
                        subject.check_traced(&mut host, WARM_UP, collector)?;
                    }
                    Slot { host, runs: 0 }
                }
            };
            let turn = TURN.min(n - run.samples.len()).min(per_host - current.runs);
            for _ in 0..turn {
                run.samples.push(drive(&mut current.host, w, false)?);
            }
            current.runs += turn;
            // Between turns, outside the timed window, the root's tick exports what the turn
            // queued, as a gateway's tick does every flush interval: without it the queue would
            // grow for the host's whole life, and every exchange would pay for touching fresh
            // pages of linear memory, which no gateway in a steady state does.
            current.host.host.tick();
            current.host.host.pump(FLUSH_WAIT);
            let traps = current.host.host.traps();
            if !traps.is_empty() {
                return Err(format!("{} {}: traps {traps:?}", subject.label, w.name));
            }
            if current.runs < per_host {
                *slot = Some(current);
            }
        }
    }
    Ok(runs)
}

fn print_workloads() {
    println!("## Workloads\n");
    println!(
        "| workload | what | request bytes | request chunks | response bytes | response chunks |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for w in workloads() {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            w.name,
            w.description,
            w.request_body.len(),
            w.request_chunking.split(&w.request_body).len(),
            w.response_len(),
            w.response_chunks.len()
        );
    }
    println!();
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available, load average {load}")
}

fn file_size(path: &std::path::Path) -> String {
    std::fs::metadata(path).map_or_else(
        |_| "?".into(),
        |m| format!("{} bytes ({:.3} MiB)", m.len(), m.len() as f64 / 1048576.0),
    )
}

fn per_exchange(
    subjects: &[Subject],
    effort: &Effort,
    collector: &Collector,
) -> Result<Vec<(String, Vec<Run>)>, String> {
    println!("## Per-exchange guest CPU (µs; all of the exchange's callbacks)\n");
    println!(
        "| workload | filter | median | p95 | min | request phase (median) \
         | response phase (median) | host wall incl. bookkeeping (median) | samples |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut all = Vec::new();
    for w in workloads() {
        let n = iterations(&w, effort);
        let runs = run_all(subjects, &w, n, false, collector)?;
        for (s, r) in subjects.iter().zip(&runs) {
            let total = r.stats(ExchangeTime::guest);
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                w.name,
                s.label,
                us(total.median),
                us(total.p95),
                us(total.min),
                us(r.stats(|t| t.request.callbacks).median),
                us(r.stats(|t| t.response.callbacks).median),
                us(r.stats(|t| t.host_wall).median),
                total.n
            );
        }
        all.push((w.name.to_string(), runs));
    }
    println!();
    Ok(all)
}

fn ratios(subjects: &[Subject], results: &[(String, Vec<Run>)]) {
    let (Some(filter), Some(naive)) = (
        subjects
            .iter()
            .position(|s| s.label == "llm-tracer (Envoy)"),
        subjects.iter().position(|s| s.label == "naive (Envoy)"),
    ) else {
        return;
    };
    println!("## Against the naive baseline (Envoy, median guest µs per exchange)\n");
    println!("| workload | llm-tracer | naive | naive ÷ llm-tracer |");
    println!("|---|---:|---:|---:|");
    for (name, runs) in results {
        let f = runs[filter].stats(ExchangeTime::guest).median;
        let n = runs[naive].stats(ExchangeTime::guest).median;
        let ratio = if f.is_zero() {
            0.0
        } else {
            n.as_secs_f64() / f.as_secs_f64()
        };
        println!("| {name} | {} | {} | {ratio:.2}× |", us(f), us(n));
    }
    println!();
}

fn hostcall_share(subject: &Subject, effort: &Effort, collector: &Collector) -> Result<(), String> {
    println!(
        "## Share of hostcalls in the guest time ({})\n",
        subject.label
    );
    println!(
        "| workload | median guest µs (timing hostcalls too) | of which hostcalls | share \
         | request phase (median) | of which hostcalls |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for w in workloads() {
        let n = iterations(&w, effort).div_ceil(4);
        let mut runs = run_all(std::slice::from_ref(subject), &w, n, true, collector)?;
        let Some(r) = runs.pop() else {
            continue;
        };
        let total = r.stats(ExchangeTime::guest).median;
        let calls = r.stats(ExchangeTime::hostcalls).median;
        let share = if total.is_zero() {
            0.0
        } else {
            100.0 * calls.as_secs_f64() / total.as_secs_f64()
        };
        println!(
            "| {} | {} | {} | {share:.0} % | {} | {} |",
            w.name,
            us(total),
            us(calls),
            us(r.stats(|t| t.request.callbacks).median),
            us(r.stats(|t| t.request.hostcalls).median)
        );
    }
    println!();
    Ok(())
}

fn sse_in_wasm(subjects: &[Subject], results: &[(String, Vec<Run>)]) {
    println!(
        "## SSE throughput inside the module (response bytes ÷ median response-phase guest time)\n"
    );
    println!("| workload | filter | response bytes | MB/s |");
    println!("|---|---|---:|---:|");
    for w in workloads().iter().filter(|w| w.streamed) {
        let Some((_, runs)) = results.iter().find(|(n, _)| n == w.name) else {
            continue;
        };
        for (s, r) in subjects.iter().zip(runs) {
            let t = r.stats(|t| t.response.callbacks).median;
            println!(
                "| {} | {} | {} | {:.0} |",
                w.name,
                s.label,
                w.response_len(),
                mb_per_s(w.response_len(), t)
            );
        }
    }
    println!();
}

/// What the defaults that work on every string of a record cost (redaction and capture), and
/// the floor: the same callbacks with capture off, which trace nothing.
fn settings(filter: &WasmModule, effort: &Effort, collector: &Collector) -> Result<(), String> {
    let variants = [
        ("defaults", json!({})),
        ("no built-in redaction", json!({"redact": {"builtin": []}})),
        (
            "capture metadata, no redaction",
            json!({"capture": "metadata", "redact": {"builtin": []}}),
        ),
        (
            "capture off (the callbacks alone)",
            json!({"capture": "off"}),
        ),
    ];
    println!("## What the settings cost (llm-tracer, Envoy; median guest µs per exchange)\n");
    let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
    println!("| workload | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for w in workloads() {
        let n = iterations(&w, effort).div_ceil(4);
        let subjects: Vec<Subject> = variants
            .iter()
            .map(|(label, settings)| Subject {
                settings: settings.clone(),
                proof: if settings["capture"] == "off" {
                    Proof::Untraced
                } else {
                    Proof::Exported
                },
                ..Subject::new(label, filter, Personality::Envoy)
            })
            .collect();
        let runs = run_all(&subjects, &w, n, false, collector)?;
        let cells: Vec<String> = runs
            .iter()
            .map(|r| us(r.stats(ExchangeTime::guest).median))
            .collect();
        println!("| {} | {} |", w.name, cells.join(" | "));
    }
    println!();
    Ok(())
}

/// Guest time of the root's ticks and callout replies that export `records` exchanges.
fn export_cost(module: &WasmModule, effort: &Effort, collector: &Collector) -> Result<(), String> {
    println!("## Export on the root's tick (llm-tracer, Envoy; both sinks)\n");
    println!("| records | workload | guest time of ticks and replies | per record |");
    println!("|---:|---|---:|---:|");
    let records = effort.iters(300);
    for w in [common::chat_8k_4k(), common::stream_500()] {
        collector.clear();
        let mut h = TimedHost::new(module, options(Personality::Envoy, collector.addr()), false)
            .map_err(|e| e.to_string())?;
        for _ in 0..records {
            drive(&mut h, &w, false)?;
        }
        let before = h.guest();
        h.host.settle(1000);
        let spent = h.guest().since(&before).callbacks;
        let traces = collector.opik_traces().len();
        let spans = collector.otlp_spans().len();
        if traces != records || spans != records {
            return Err(format!(
                "export: {records} records, the collector got {traces} Opik traces and {spans} OTLP spans"
            ));
        }
        let per = spent / u32::try_from(records).unwrap_or(u32::MAX);
        println!(
            "| {records} | {} | {} µs | {} µs |",
            w.name,
            us(spent),
            us(per)
        );
    }
    println!();
    Ok(())
}

/// Linear memory growth while `n` exchanges are open at once, divided by `n`.
fn memory(subjects: &[Subject], effort: &Effort, collector: &Collector) -> Result<(), String> {
    println!("## Linear memory per in-flight exchange (bytes)\n");
    println!(
        "Each exchange is opened up to its last response chunk (request read, response headers \
         and all but the last body chunk delivered); growth of the instance's linear memory \
         ÷ exchanges open; per finished exchange: the same once they all ended (their records \
         wait in the export queue).\n"
    );
    println!("| workload | filter | exchanges open | memory at start | per in-flight exchange | per finished exchange (queued) |");
    println!("|---|---|---:|---:|---:|---:|");
    for w in workloads() {
        let n = if effort.smoke {
            2
        } else if w.name == "1 MB request" {
            20
        } else {
            200
        };
        for s in subjects
            .iter()
            .filter(|s| s.personality == Personality::Envoy)
        {
            let opts = with_settings(options(s.personality, collector.addr()), &s.settings);
            let host = Host::new(&s.module, opts).map_err(|e| e.to_string())?;
            let mut steps = Stepper { host };
            // Warm the allocator up with a few complete exchanges first.
            for _ in 0..3 {
                steps.complete(&w);
            }
            let start = steps.host.memory_bytes();
            let open: Vec<_> = (0..n).map(|_| steps.open(&w)).collect();
            let in_flight = steps.host.memory_bytes();
            for id in open {
                steps.close(&w, id);
            }
            let traps = steps.host.traps();
            if !traps.is_empty() {
                return Err(format!("{} {}: traps {traps:?}", s.label, w.name));
            }
            let after = steps.host.memory_bytes();
            println!(
                "| {} | {} | {n} | {start} | {} | {} |",
                w.name,
                s.label,
                in_flight.saturating_sub(start) / n,
                after.saturating_sub(start) / n
            );
        }
    }
    println!();
    Ok(())
}

/// Drives exchanges in steps on an untimed host, for the memory measurement.
struct Stepper {
    host: Host,
}

impl Stepper {
    fn open(&mut self, w: &Workload) -> llm_tracer_host::StreamId {
        let headers: Vec<(&str, &str)> = w
            .request_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = self.host.begin(&headers, w.request_body.is_empty());
        let chunks = w.request_chunking.split(&w.request_body);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            self.host.request_body(id, chunk, i == last);
        }
        let headers: Vec<(&str, &str)> = w
            .response_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.host.response_headers(id, &headers, false);
        let held = w.response_chunks.len().saturating_sub(1);
        for chunk in &w.response_chunks[..held] {
            self.host.response_body(id, chunk, false);
        }
        id
    }

    fn close(&mut self, w: &Workload, id: llm_tracer_host::StreamId) {
        if let Some(last) = w.response_chunks.last() {
            self.host.response_body(id, last, true);
        }
        self.host.end(id);
    }

    fn complete(&mut self, w: &Workload) {
        let id = self.open(w);
        self.close(w, id);
    }
}

fn main() {
    let effort = Effort::from_env();
    let filter = filter_module();
    let naive = naive_module();
    let collector = Collector::start(CollectorOptions::default());
    println!("# llm-tracer filter benchmarks\n");
    println!("- machine: {}", machine());
    println!(
        "- llm_tracer.wasm: {}",
        file_size(&WasmModule::default_path())
    );
    println!("- naive baseline: {}", file_size(&naive_path()));
    if effort.smoke {
        println!("- smoke run (not `cargo bench`): numbers are meaningless");
    }
    println!();
    let subjects = [
        Subject::new("llm-tracer (Envoy)", &filter, Personality::Envoy),
        Subject::new("llm-tracer (Kong)", &filter, Personality::Kong),
        Subject {
            proof: Proof::Metric("naive_traced_exchanges_total"),
            ..Subject::new("naive (Envoy)", &naive, Personality::Envoy)
        },
    ];
    print_workloads();
    let outcome = per_exchange(&subjects, &effort, &collector).and_then(|results| {
        ratios(&subjects, &results);
        sse_in_wasm(&subjects, &results);
        hostcall_share(&subjects[0], &effort, &collector)?;
        settings(&filter, &effort, &collector)?;
        export_cost(&filter, &effort, &collector)?;
        memory(&subjects, &effort, &collector)
    });
    if let Err(e) = outcome {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}
