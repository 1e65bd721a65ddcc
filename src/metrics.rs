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
