//! Seams over host calls: clock, randomness, header reads, callouts and metrics. Uses
//! `proxy_wasm::hostcalls` directly (never the SDK trait getters, which `unwrap()` host results)
//! and reads header values as bytes (the SDK's string getters panic on invalid UTF-8).

use crate::export::{Dispatch, DispatchError, SinkStats};
use crate::metrics::{self, Kind, ModelLabels};
use crate::record::TraceRecord;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType};
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// Host time in Unix nanoseconds (millisecond resolution on Kong).
pub fn now_ns() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

/// A 64-bit seed from the host's randomness (`random_get`), mixed with the clock in case the
/// host fails the call.
pub fn random_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a valid, writable 8-byte buffer for the duration of the call, which is
    // all WASI `random_get` requires.
    let errno = unsafe { random_get(buf.as_mut_ptr(), buf.len()) };
    let random = if errno == 0 {
        u64::from_le_bytes(buf)
    } else {
        0
    };
    random ^ now_ns().rotate_left(17)
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// Header map `map` as the host encodes it (see [`crate::header_map`]); empty when the host
/// has none or fails. Read with [`crate::header_map::decode`] instead of the SDK's reader,
/// which copies every pair and panics on a header name that is not UTF-8.
pub fn header_map_bytes(map: MapType) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: both out-pointers are valid for writes during the call.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return Vec::new();
    }
    // SAFETY: on success the host wrote `size` bytes into a block it took from the module's
    // `proxy_on_memory_allocate`, which the SDK allocates as a boxed slice of exactly `size`
    // bytes; a `Vec` of that length and capacity owns and frees it with the same layout (the
    // SDK's own map reader takes it the same way).
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// A header value as text (lossy on invalid UTF-8); `None` when absent or unreadable.
pub fn header(map: MapType, name: &str) -> Option<String> {
    match hostcalls::get_map_value_bytes(map, name) {
        Ok(Some(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => None,
    }
}

/// Dispatches through `proxy_http_call`.
pub struct HostDispatch;

impl Dispatch for HostDispatch {
    fn dispatch(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, DispatchError> {
        hostcalls::dispatch_http_call(
            upstream,
            headers.to_vec(),
            Some(body),
            Vec::new(),
            Duration::from_millis(u64::from(timeout_ms)),
        )
        .map_err(|status| DispatchError {
            status: status as u32,
        })
    }
}

/// Metric ids, defined when first needed (a name per label set) and kept per root context;
/// export updates mirror the exporter's counters.
pub struct Metrics {
    ids: HashMap<String, Option<u32>>,
    last: Option<LabelSet>,
    models: ModelLabels,
    sinks: Vec<SinkMetrics>,
}

/// The exchange metric ids of the last label set used: traffic mostly repeats one provider,
/// model and route, and then no name is built or looked up.
struct LabelSet {
    labels: [String; 3],
    ids: [Option<Option<u32>>; metrics::at::EXCHANGE_METRICS],
}

struct SinkMetrics {
    name: &'static str,
    ids: [Option<u32>; 5],
    last: SinkStats,
}

/// The export metrics, in the order [`Metrics::export_stats`] updates them.
const SINK_METRICS: [&str; 5] = [
    "llm_tracer_export_sent_records_total",
    "llm_tracer_export_retries_total",
    "llm_tracer_export_dropped_records_total",
    "llm_tracer_export_rejected_records_total",
    "llm_tracer_export_queue_records",
];

fn define(name: &str, kind: Kind) -> Option<u32> {
    let kind = match kind {
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    match hostcalls::define_metric(kind, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("llm-tracer: could not define metric {name} (status {status:?})");
            None
        }
    }
}

fn add(id: Option<u32>, delta: u64) {
    if let (Some(id), true) = (id, delta > 0) {
        let _ = hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// Defines the export metrics of the given sinks; exchange metrics are defined as label
    /// sets appear, with at most `max_models` distinct model values.
    pub fn define(sinks: &[&'static str], max_models: usize) -> Self {
        let sink_ids = |sink: &str| {
            SINK_METRICS.map(|name| {
                let metric = metrics::find(name)?;
                define(&metrics::labelled(metric, &[sink]), metric.kind)
            })
        };
        Metrics {
            ids: HashMap::new(),
            last: None,
            models: ModelLabels::new(max_models),
            sinks: sinks
                .iter()
                .map(|&name| SinkMetrics {
                    name,
                    ids: sink_ids(name),
                    last: SinkStats::default(),
                })
                .collect(),
        }
    }

    /// Counts one finished exchange under its provider, model and route.
    pub fn exchange(&mut self, record: &TraceRecord, route: &str) {
        let model = record
            .response_model
            .as_deref()
            .or(record.request_model.as_deref());
        let model = self.models.label(model);
        let labels = [record.provider.as_str(), model, route];
        let last = match &mut self.last {
            Some(set) if set.labels == labels => set,
            other => other.insert(LabelSet {
                labels: labels.map(str::to_string),
                ids: [None; metrics::at::EXCHANGE_METRICS],
            }),
        };
        for (at, value) in metrics::exchange_updates(record) {
            let (Some(metric), Some(slot)) = (metrics::CATALOG.get(at), last.ids.get_mut(at))
            else {
                continue;
            };
            let id = *slot.get_or_insert_with(|| {
                let full = metrics::labelled(metric, &labels);
                *self
                    .ids
                    .entry(full)
                    .or_insert_with_key(|full| define(full, metric.kind))
            });
            match metric.kind {
                Kind::Histogram => {
                    if let Some(id) = id {
                        let _ = hostcalls::record_metric(id, value);
                    }
                }
                _ => add(id, value),
            }
        }
    }

    /// Mirrors exporter counters: counters grow by what changed since the last call.
    pub fn export_stats(&mut self, stats: impl Iterator<Item = (&'static str, SinkStats, usize)>) {
        for (name, now, queued) in stats {
            let Some(m) = self.sinks.iter_mut().find(|m| m.name == name) else {
                continue;
            };
            let last = m.last;
            add(m.ids[0], now.sent - last.sent);
            add(m.ids[1], now.retries - last.retries);
            add(m.ids[2], now.dropped() - last.dropped());
            add(m.ids[3], now.dropped_rejected - last.dropped_rejected);
            if let Some(id) = m.ids[4] {
                let _ = hostcalls::record_metric(id, queued as u64);
            }
            m.last = now;
        }
    }
}

/// A property as text (lossy on invalid UTF-8); `None` when absent or unreadable.
pub fn property(path: &[&str]) -> Option<String> {
    match hostcalls::get_property(path.to_vec()) {
        Ok(Some(bytes)) if !bytes.is_empty() => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => None,
    }
}
