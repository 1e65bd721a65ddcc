//! `FilterRoot`: reads the configuration once, owns the export queue, flushes it on ticks and
//! receives export replies. A bad configuration is logged and turns the filter into a
//! pass-through: returning false from `on_configure` would make Kong answer 500 to every request
//! on the route and make Envoy reject the listener.

use super::host::{self, HostDispatch, Metrics};
use super::http::FilterHttp;
use crate::config::{Config, LogLevel};
use crate::context::KeyPrints;
use crate::export::Exporter;
use crate::ids::IdGen;
use crate::pricing::PriceMemo;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// State shared by a root context and the HTTP contexts it creates (one VM, one thread).
pub struct Active {
    /// The validated configuration.
    pub config: Config,
    /// Per-sink export queues.
    pub exporter: RefCell<Exporter>,
    /// Id generator.
    pub ids: RefCell<IdGen>,
    /// The last API key's fingerprint.
    pub key_prints: RefCell<KeyPrints>,
    /// The last model name priced.
    pub price_memo: RefCell<PriceMemo>,
    /// Metric handles, when metrics are enabled.
    pub metrics: Option<RefCell<Metrics>>,
    /// The host is Envoy (it has `plugin_vm_id`); otherwise Kong.
    pub envoy: bool,
}

/// The root context.
#[derive(Default)]
pub struct FilterRoot {
    active: Option<Rc<Active>>,
    tick_period_set: bool,
}

impl Context for FilterRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        let Some(active) = self.active.clone() else {
            return;
        };
        // A failed callout (refused, reset, timed out) arrives with no headers on both hosts;
        // reading a header then would make Envoy answer BadArgument and the SDK panic.
        let (status, retry_after) = if num_headers == 0 {
            (None, None)
        } else {
            let status = host::header(MapType::HttpCallResponseHeaders, ":status")
                .and_then(|s| s.trim().parse::<u16>().ok());
            let retry_after = ["retry-after", "ratelimit-reset"].iter().find_map(|h| {
                host::header(MapType::HttpCallResponseHeaders, h)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            });
            (status, retry_after)
        };
        let body_head = if body_size > 0 && status.is_some_and(|s| s >= 300) {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size.min(256))
                .ok()
                .flatten()
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let now_ms = host::now_ns() / 1_000_000;
        active.exporter.borrow_mut().on_reply(
            token,
            status,
            retry_after,
            &body_head,
            now_ms,
            &mut HostDispatch,
        );
        report(&active);
    }
}

impl RootContext for FilterRoot {
    fn on_vm_start(&mut self, _: usize) -> bool {
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(bytes)) => bytes,
            _ => Vec::new(),
        };
        self.active = match Config::parse(&bytes) {
            Err(e) => {
                log::error!("llm-tracer: {e}; the filter passes traffic through untouched");
                None
            }
            Ok(config) if !config.has_sink() => {
                log::warn!("llm-tracer: no sink configured (opik, langfuse); nothing is traced");
                None
            }
            Ok(config) => Some(Rc::new(activate(config))),
        };
        if let Some(active) = &self.active {
            if !self.tick_period_set {
                // Kong traps on a second non-zero set_tick_period for the same root context.
                let period = Duration::from_millis(active.config.flush_interval_ms);
                self.tick_period_set = hostcalls::set_tick_period(period).is_ok();
            }
        }
        true
    }

    fn on_tick(&mut self) {
        let Some(active) = &self.active else {
            return;
        };
        let now_ms = host::now_ns() / 1_000_000;
        active.exporter.borrow_mut().tick(now_ms, &mut HostDispatch);
        report(active);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FilterHttp::new(self.active.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

fn activate(config: Config) -> Active {
    let exporter = Exporter::new(&config);
    let metrics = config.metrics.then(|| {
        let names: Vec<&'static str> = exporter.stats().map(|(name, _, _)| name).collect();
        RefCell::new(Metrics::define(&names, config.metrics_max_models))
    });
    if let Some(level) = config.log_level {
        proxy_wasm::set_log_level(match level {
            LogLevel::Trace => proxy_wasm::types::LogLevel::Trace,
            LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
            LogLevel::Info => proxy_wasm::types::LogLevel::Info,
            LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
            LogLevel::Error => proxy_wasm::types::LogLevel::Error,
        });
    }
    Active {
        envoy: host::property(&["plugin_vm_id"]).is_some(),
        exporter: RefCell::new(exporter),
        ids: RefCell::new(IdGen::new(host::random_seed())),
        key_prints: RefCell::new(KeyPrints::default()),
        price_memo: RefCell::new(PriceMemo::default()),
        metrics,
        config,
    }
}

/// Logs export events and mirrors counters into metrics.
fn report(active: &Active) {
    let mut exporter = active.exporter.borrow_mut();
    for event in exporter.take_events() {
        match event {
            crate::export::ExportEvent::Retrying { .. } => log::warn!("llm-tracer: {event}"),
            _ => log::error!("llm-tracer: {event}"),
        }
    }
    if let Some(metrics) = &active.metrics {
        metrics.borrow_mut().export_stats(exporter.stats());
    }
}
