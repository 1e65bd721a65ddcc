//! The proxy-wasm metrics the filter defines: names, labels and what an exchange adds.
//!
//! Hosts add their own prefix: Kong 3.9 exports `pw_llm_tracer_<name>` through its Prometheus
//! plugin, Envoy stores `wasmcustom.<name>` and shows `<name>` on `/stats/prometheus`. Names are
//! snake_case with a unit suffix; the `llm_tracer_` prefix keeps them apart from other filters
//! on Envoy, where the plugin name is not part of the stat name. proxy-wasm metrics have no
//! labels, so labels travel as `_<label>=<value>` fragments of the name, which
//! [`LABEL_PATTERNS`] turn back into Prometheus labels on both gateways.

use crate::memo::LastKey;
use crate::record::TraceRecord;

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

/// Longest label value kept; longer ones are cut. With it the longest defined name stays
/// within [`MAX_NAME_BYTES`].
pub const MAX_LABEL_VALUE: usize = 48;

/// Longest name the filter defines: Kong stores `pw:<filter>:<name>` in at most 256 bytes and
/// traps beyond, which leaves 242 bytes under the filter name `llm_tracer`.
pub const MAX_NAME_BYTES: usize = 256 - "pw:llm_tracer:".len();

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

/// The catalog entry named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    CATALOG.iter().find(|m| m.name == name)
}

/// Bounds the distinct model label values: the first `max` models seen keep their name, any
/// later one is counted as `other`, so a client sending random model names cannot grow the
/// gateway's metric store without bound.
#[derive(Debug, Clone)]
pub struct ModelLabels {
    seen: Vec<String>,
    max: usize,
    /// The label of the last model name asked for (a name's label never changes once given,
    /// and exchanges mostly name the model the previous one did); names up to 256 bytes.
    last: LastKey<String>,
}

impl ModelLabels {
    /// Keeps up to `max` distinct model names.
    pub fn new(max: usize) -> Self {
        ModelLabels {
            seen: Vec::new(),
            max,
            last: LastKey::new(256),
        }
    }

    /// The label value for `model` (`unknown` when none).
    pub fn label(&mut self, model: Option<&str>) -> &str {
        let Some(model) = model.map(str::trim).filter(|m| !m.is_empty()) else {
            return "unknown";
        };
        let (seen, max) = (&mut self.seen, self.max);
        self.last.get(model, |model| first_label(seen, max, model))
    }
}

/// The label a model name gets the first time it is asked for: its own while fewer than `max`
/// names are `seen`, else `other`.
fn first_label(seen: &mut Vec<String>, max: usize, model: &str) -> String {
    let value = label_value(model);
    if seen.contains(&value) {
        return value;
    }
    if seen.len() < max {
        seen.push(value.clone());
        return value;
    }
    "other".into()
}

/// Positions in [`CATALOG`] of the exchange metrics, which come first (a test checks each).
pub mod at {
    /// `llm_tracer_requests_total`.
    pub const REQUESTS: usize = 0;
    /// `llm_tracer_errors_total`.
    pub const ERRORS: usize = 1;
    /// `llm_tracer_input_tokens_total`.
    pub const INPUT_TOKENS: usize = 2;
    /// `llm_tracer_output_tokens_total`.
    pub const OUTPUT_TOKENS: usize = 3;
    /// `llm_tracer_cached_input_tokens_total`.
    pub const CACHED_INPUT_TOKENS: usize = 4;
    /// `llm_tracer_reasoning_tokens_total`.
    pub const REASONING_TOKENS: usize = 5;
    /// `llm_tracer_cost_microusd_total`.
    pub const COST: usize = 6;
    /// `llm_tracer_latency_ms`.
    pub const LATENCY: usize = 7;
    /// `llm_tracer_ttft_ms`.
    pub const TTFT: usize = 8;
    /// How many exchange metrics there are.
    pub const EXCHANGE_METRICS: usize = 9;
}

/// What one exchange adds to the exchange metrics: `(position in CATALOG, value)` for
/// counters, and the observations of histograms, all under the same labels.
pub fn exchange_updates(record: &TraceRecord) -> Vec<(usize, u64)> {
    let u = &record.usage;
    let mut out = vec![(at::REQUESTS, 1)];
    if record.error.is_some() {
        out.push((at::ERRORS, 1));
    }
    let tokens = [
        (at::INPUT_TOKENS, u.input),
        (at::OUTPUT_TOKENS, u.output),
        (at::CACHED_INPUT_TOKENS, u.cached_input),
        (at::REASONING_TOKENS, u.reasoning),
    ];
    out.extend(
        tokens
            .into_iter()
            .filter_map(|(metric, n)| n.filter(|&n| n > 0).map(|n| (metric, n))),
    );
    if let Some(cost) = &record.cost {
        let micro = (cost.total * 1e6).round();
        if micro.is_finite() && micro >= 1.0 {
            out.push((at::COST, micro as u64));
        }
    }
    out.push((
        at::LATENCY,
        record.end_ns.saturating_sub(record.start_ns) / 1_000_000,
    ));
    if let Some(ttft) = record.first_token_ns {
        out.push((at::TTFT, ttft.saturating_sub(record.start_ns) / 1_000_000));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies the label patterns as Kong and Envoy do: capture 1 leaves the name, capture 2
    /// becomes the label's value.
    fn extract(name: &str) -> (String, Vec<(String, String)>) {
        let mut rest = name.to_string();
        let mut labels = Vec::new();
        for (label, pattern) in LABEL_PATTERNS {
            let re = regex_lite::Regex::new(pattern).expect("pattern compiles");
            if let Some(c) = re.captures(&rest.clone()) {
                let (Some(whole), Some(value)) = (c.get(1), c.get(2)) else {
                    continue;
                };
                labels.push((label.to_string(), value.as_str().to_string()));
                rest.replace_range(whole.range(), "");
            }
        }
        (rest, labels)
    }

    #[test]
    fn every_catalog_name_turns_back_into_base_name_and_labels() {
        let values = [
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "default",
        ];
        for metric in CATALOG {
            let given: &[&str] = if metric.labels == ["sink"] {
                &["otlp"]
            } else {
                &values
            };
            let name = labelled(metric, given);
            let (base, labels) = extract(&name);
            assert_eq!(base, metric.name, "{name}");
            let names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
            let mut expected: Vec<&str> = metric.labels.to_vec();
            expected.sort_unstable();
            let mut got = names.clone();
            got.sort_unstable();
            assert_eq!(got, expected, "{name}");
            for (label, value) in &labels {
                let at = metric
                    .labels
                    .iter()
                    .position(|l| l == label)
                    .expect("label");
                assert_eq!(value, &label_value(given[at]), "{name}");
            }
        }
    }

    #[test]
    fn names_fit_kong_with_the_longest_values() {
        let long = "x".repeat(500);
        for metric in CATALOG {
            let values = vec![long.as_str(); metric.labels.len()];
            let name = labelled(metric, &values);
            assert!(name.len() <= MAX_NAME_BYTES, "{} bytes: {name}", name.len());
        }
    }

    #[test]
    fn label_values_are_sanitized() {
        assert_eq!(label_value("GPT-4o_mini:latest/x"), "gpt-4o-mini-latest-x");
        assert_eq!(label_value(""), "unknown");
        assert_eq!(label_value("é"), "-");
        assert_eq!(label_value(&"a".repeat(100)).len(), MAX_LABEL_VALUE);
    }

    #[test]
    fn model_labels_are_bounded() {
        let mut models = ModelLabels::new(2);
        assert_eq!(models.label(Some("gpt-4o")), "gpt-4o");
        assert_eq!(models.label(Some("claude")), "claude");
        assert_eq!(models.label(Some("random-1")), "other");
        assert_eq!(models.label(Some("GPT-4o")), "gpt-4o", "already seen");
        assert_eq!(models.label(None), "unknown");
        // The same answers again, from the last name kept and from the list.
        for _ in 0..2 {
            assert_eq!(models.label(Some(" random-1 ")), "other");
            assert_eq!(models.label(Some("random-1")), "other");
            assert_eq!(models.label(Some("claude")), "claude");
            assert_eq!(models.label(Some("claude")), "claude");
            assert_eq!(models.label(Some("gpt-4o")), "gpt-4o");
        }
        let long = "x".repeat(300);
        assert_eq!(models.label(Some(&long)), "other");
        assert_eq!(models.label(Some(&long)), "other");
        assert_eq!(models.label(Some("claude")), "claude");
    }

    #[test]
    fn exchange_updates_count_what_was_reported() {
        let record = TraceRecord {
            start_ns: 0,
            end_ns: 1_500_000_000,
            first_token_ns: Some(200_000_000),
            usage: crate::record::Usage {
                input: Some(10),
                output: Some(5),
                cached_input: Some(0),
                ..Default::default()
            },
            ..TraceRecord::default()
        };
        let updates: Vec<(&str, u64)> = exchange_updates(&record)
            .into_iter()
            .map(|(metric, value)| (CATALOG[metric].name, value))
            .collect();
        assert_eq!(
            updates,
            vec![
                ("llm_tracer_requests_total", 1),
                ("llm_tracer_input_tokens_total", 10),
                ("llm_tracer_output_tokens_total", 5),
                ("llm_tracer_latency_ms", 1500),
                ("llm_tracer_ttft_ms", 200),
            ]
        );
    }

    #[test]
    fn exchange_positions_name_the_exchange_metrics() {
        let named = [
            (at::REQUESTS, "llm_tracer_requests_total"),
            (at::ERRORS, "llm_tracer_errors_total"),
            (at::INPUT_TOKENS, "llm_tracer_input_tokens_total"),
            (at::OUTPUT_TOKENS, "llm_tracer_output_tokens_total"),
            (
                at::CACHED_INPUT_TOKENS,
                "llm_tracer_cached_input_tokens_total",
            ),
            (at::REASONING_TOKENS, "llm_tracer_reasoning_tokens_total"),
            (at::COST, "llm_tracer_cost_microusd_total"),
            (at::LATENCY, "llm_tracer_latency_ms"),
            (at::TTFT, "llm_tracer_ttft_ms"),
        ];
        assert_eq!(named.len(), at::EXCHANGE_METRICS);
        for (position, name) in named {
            assert_eq!(CATALOG[position].name, name);
            assert_eq!(CATALOG[position].labels, EXCHANGE);
        }
        assert!(CATALOG[at::EXCHANGE_METRICS..]
            .iter()
            .all(|m| m.labels != EXCHANGE));
    }
}
