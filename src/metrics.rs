//! Names of the proxy-wasm metrics the filter defines. Hosts add their own prefix: Kong 3.9
//! exports `pw_llm_tracer_<name>` through its Prometheus plugin, Envoy stores
//! `wasmcustom.<name>` and shows `<name>` on `/stats/prometheus`. Names are snake_case with a
//! unit suffix; the `llm_tracer_` prefix keeps them apart from other filters on Envoy, where
//! the plugin name is not part of the stat name.

/// Kind of a metric, as proxy-wasm defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of observed values.
    Histogram,
}

/// One metric of the catalog: its base name, kind, labels in the order their fragments follow
/// the base name, and what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Base name, before label fragments.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Labels, in fragment order.
    pub labels: &'static [&'static str],
    /// What the metric measures.
    pub help: &'static str,
}

const EXCHANGE: &[&str] = &["provider", "model", "route"];
const SINK: &[&str] = &["sink"];

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

/// Every metric the filter defines. A defined name is the base name followed by one
/// `_<label>=<value>` fragment per label, in order: `llm_tracer_requests_total_provider=openai_model=gpt-4o_route=default`.
pub const CATALOG: &[Metric] = &[
    metric(
        "llm_tracer_requests_total",
        Kind::Counter,
        EXCHANGE,
        "Exchanges traced.",
    ),
    metric(
        "llm_tracer_errors_total",
        Kind::Counter,
        EXCHANGE,
        "Traced exchanges that failed (error status, provider error, abort).",
    ),
    metric(
        "llm_tracer_input_tokens_total",
        Kind::Counter,
        EXCHANGE,
        "Input tokens, cached included.",
    ),
    metric(
        "llm_tracer_output_tokens_total",
        Kind::Counter,
        EXCHANGE,
        "Output tokens, reasoning included.",
    ),
    metric(
        "llm_tracer_cached_input_tokens_total",
        Kind::Counter,
        EXCHANGE,
        "Input tokens read from the provider's cache.",
    ),
    metric(
        "llm_tracer_reasoning_tokens_total",
        Kind::Counter,
        EXCHANGE,
        "Output tokens spent on reasoning.",
    ),
    metric(
        "llm_tracer_cost_microusd_total",
        Kind::Counter,
        EXCHANGE,
        "Estimated cost in millionths of a US dollar (priced models only).",
    ),
    metric(
        "llm_tracer_latency_ms",
        Kind::Histogram,
        EXCHANGE,
        "Exchange duration, request start to response end, in milliseconds.",
    ),
    metric(
        "llm_tracer_ttft_ms",
        Kind::Histogram,
        EXCHANGE,
        "Time to first output token of streamed responses, in milliseconds.",
    ),
    metric(
        "llm_tracer_export_sent_records_total",
        Kind::Counter,
        SINK,
        "Records a backend accepted.",
    ),
    metric(
        "llm_tracer_export_retries_total",
        Kind::Counter,
        SINK,
        "Export attempts retried after a failure.",
    ),
    metric(
        "llm_tracer_export_dropped_records_total",
        Kind::Counter,
        SINK,
        "Records dropped: queue full, retries exhausted or rejected.",
    ),
    metric(
        "llm_tracer_export_rejected_records_total",
        Kind::Counter,
        SINK,
        "Records a backend rejected with a 4xx (included in dropped).",
    ),
    metric(
        "llm_tracer_export_queue_records",
        Kind::Gauge,
        SINK,
        "Records waiting for export.",
    ),
];

/// Regular expressions that turn label fragments back into labels: capture 1 is the fragment
/// removed from the name, capture 2 the value. Kong 3.9 reads them as `metrics.label_patterns`
/// in `llm_tracer.meta.json`, Envoy as `stats_config.stats_tags`.
pub const LABEL_PATTERNS: &[(&str, &str)] = &[
    ("provider", "(_provider=([a-z0-9.-]+))"),
    ("model", "(_model=([a-z0-9.-]+))"),
    ("route", "(_route=([a-z0-9.-]+))"),
    ("sink", "(_sink=([a-z0-9.-]+))"),
];

/// Longest label value kept; longer ones are cut.
pub const MAX_LABEL_VALUE: usize = 64;

/// A label value in the alphabet the patterns expect: lowercase ASCII letters, digits, `.`
/// and `-`; anything else becomes `-`. Empty input gives `unknown`.
pub fn label_value(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(MAX_LABEL_VALUE)
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
            _ => '-',
        })
        .collect();
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// The defined name of `base` with `values` for its labels, in the catalog's order. Values go
/// through [`label_value`].
pub fn labelled(base: &Metric, values: &[&str]) -> String {
    let mut name = String::from(base.name);
    for (label, value) in base.labels.iter().zip(values) {
        name.push('_');
        name.push_str(label);
        name.push('=');
        name.push_str(&label_value(value));
    }
    name
}

/// Exchanges traced (records handed to the exporter).
pub const TRACED: &str = "llm_tracer_traced_exchanges_total";
/// Traced exchanges that ended in an error (upstream error status, provider error, abort).
pub const ERRORS: &str = "llm_tracer_error_exchanges_total";

/// Per-sink metric names, in the order [`sink_metrics`] returns them.
pub const SINK_METRICS: [(&str, Kind); 5] = [
    ("sent_records_total", Kind::Counter),
    ("retries_total", Kind::Counter),
    ("dropped_records_total", Kind::Counter),
    ("rejected_records_total", Kind::Counter),
    ("queue_records", Kind::Gauge),
];

/// The full names of a sink's metrics: `llm_tracer_export_<sink>_<metric>`.
pub fn sink_metrics(sink: &str) -> [(String, Kind); 5] {
    SINK_METRICS.map(|(m, kind)| (format!("llm_tracer_export_{sink}_{m}"), kind))
}
