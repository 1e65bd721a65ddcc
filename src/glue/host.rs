//! Seams over host calls: clock, randomness, header reads, callouts and metrics. Uses
//! `proxy_wasm::hostcalls` directly (never the SDK trait getters, which `unwrap()` host results)
//! and reads header values as bytes (the SDK's string getters panic on invalid UTF-8).

use crate::export::{Dispatch, DispatchError, SinkStats};
use crate::metrics::{self, Kind};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType};
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

/// Metric ids, defined once per root context; updates mirror the exporter's counters.
pub struct Metrics {
    traced: Option<u32>,
    errors: Option<u32>,
    sinks: Vec<SinkMetrics>,
}

struct SinkMetrics {
    name: &'static str,
    ids: [Option<u32>; 5],
    last: SinkStats,
}

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
    /// Defines the filter's metrics for the given sinks.
    pub fn define(sinks: &[&'static str]) -> Self {
        Metrics {
            traced: define(metrics::TRACED, Kind::Counter),
            errors: define(metrics::ERRORS, Kind::Counter),
            sinks: sinks
                .iter()
                .map(|&name| SinkMetrics {
                    name,
                    ids: metrics::sink_metrics(name).map(|(n, kind)| define(&n, kind)),
                    last: SinkStats::default(),
                })
                .collect(),
        }
    }

    /// Counts one traced exchange.
    pub fn traced(&self, error: bool) {
        add(self.traced, 1);
        if error {
            add(self.errors, 1);
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
