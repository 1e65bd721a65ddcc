//! [`Host`]: one emulated gateway worker running one filter instance.
//!
//! The host drives the guest through the proxy-wasm lifecycle (instantiate, `_initialize`, root
//! context, `on_vm_start`, `on_configure`, then per-request callbacks, ticks and callout
//! responses) and applies the personality's rules on the way. This file holds the instance
//! lifecycle, ticks, callouts and inspection; the request/response path is in
//! [`crate::stream`], the whole-exchange helper in [`crate::exchange`].

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Instance, Memory, Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::abi::HostTrap;
use crate::callouts::{response_pairs, CalloutDone};
use crate::clock::{Clock, SeededRng};
use crate::error::HostError;
use crate::module::WasmModule;
use crate::options::HostOptions;
use crate::personality::Personality;
use crate::state::{
    CallResponse, Callout, CalloutFailure, CalloutResult, Config, HostState, LogLine, MetricValue,
    Phase, Records, TrapRecord, VmState,
};

/// Guest time that must pass without dispatches before [`Host::settle`] stops.
const SETTLE_QUIET: Duration = Duration::from_secs(5);

/// Identifies one request/response stream (its HTTP context id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(pub u32);

/// Health of the current instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    Running,
    /// Kong: trapped; the next request or tick creates a new instance (hosts.md §4.11).
    Trapped,
    /// Envoy: failed for good (hosts.md §5.1).
    Failed,
}

/// `proxy_on_http_call_response(context, token, headers, body size, trailers)`.
type CallResponseFn = TypedFunc<(u32, u32, u32, u32, u32), ()>;

/// The guest's exports, resolved once per instance. Callbacks are optional (spec: "All
/// callbacks ... are optional").
#[derive(Clone)]
pub(crate) struct Exports {
    pub memory: Memory,
    pub on_context_create: Option<TypedFunc<(u32, u32), ()>>,
    pub on_vm_start: Option<TypedFunc<(u32, u32), u32>>,
    pub on_configure: Option<TypedFunc<(u32, u32), u32>>,
    pub on_tick: Option<TypedFunc<u32, ()>>,
    pub on_queue_ready: Option<TypedFunc<(u32, u32), ()>>,
    pub on_request_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_request_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_headers: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_response_body: Option<TypedFunc<(u32, u32, u32), u32>>,
    pub on_http_call_response: Option<CallResponseFn>,
    pub on_done: Option<TypedFunc<u32, u32>>,
    pub on_log: Option<TypedFunc<u32, ()>>,
    pub on_delete: Option<TypedFunc<u32, ()>>,
}

/// Result of calling a guest callback.
pub(crate) enum Invoke<R> {
    /// The module does not export the callback.
    Missing,
    /// It returned.
    Done(R),
    /// It trapped; the message is recorded in [`Host::traps`].
    Trapped(String),
}

/// An emulated gateway running one instance of a filter.
///
/// Each test creates its own `Host`; hosts share nothing but the compiled [`WasmModule`], so
/// tests run in parallel.
pub struct Host {
    pub(crate) module: WasmModule,
    pub(crate) cfg: Arc<Config>,
    pub(crate) store: Store<HostState>,
    pub(crate) ex: Option<Exports>,
    pub(crate) health: Health,
    pub(crate) configured: bool,
    rx: Receiver<CalloutDone>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("personality", &self.cfg.opts.personality)
            .field("health", &self.health)
            .field("configured", &self.configured)
            .finish()
    }
}

impl Host {
    /// Instantiates `module`, runs `_initialize`, creates the root context and runs
    /// `on_vm_start` and `on_configure`.
    ///
    /// # Errors
    /// [`HostError::Instantiate`] when instantiation or `_initialize` fails,
    /// [`HostError::StartupTrap`] when a root callback traps,
    /// [`HostError::ConfigurationRejected`] on Envoy when `on_vm_start` or `on_configure`
    /// returns false (Kong keeps running and answers 500, see [`Host::configured`]),
    /// [`HostError::Options`] for inconsistent options.
    pub fn new(module: &WasmModule, opts: HostOptions) -> Result<Host, HostError> {
        if opts.callout_timeout_cap.is_zero() {
            return Err(HostError::Options {
                what: "callout_timeout_cap must be positive",
            });
        }
        let cfg = Arc::new(Config {
            rules: opts.personality.rules(),
            opts,
        });
        let (tx, rx) = mpsc::channel();
        let rec = Records {
            logs: Vec::new(),
            traps: Vec::new(),
            callouts: Vec::new(),
            callout_generation: Vec::new(),
            metrics: Vec::new(),
            shared_data: BTreeMap::new(),
            queues: Vec::new(),
            queue_ready: Vec::new(),
            streams: BTreeMap::new(),
            rng: SeededRng::new(cfg.opts.seed),
            clock: Clock::new(cfg.opts.clock),
            next_token: 0,
            next_context_id: 1,
            generation: 0,
            callout_tx: tx,
        };
        let store = Store::new(
            module.engine(),
            HostState {
                cfg: cfg.clone(),
                vm: VmState::new(),
                rec,
            },
        );
        let mut host = Host {
            module: module.clone(),
            cfg,
            store,
            ex: None,
            health: Health::Running,
            configured: false,
            rx,
        };
        match host.start_instance()? {
            Ok(()) => host.configured = true,
            Err(callback) => {
                if host.cfg.opts.personality == Personality::Envoy {
                    return Err(HostError::ConfigurationRejected { callback });
                }
                host.configured = false;
            }
        }
        Ok(host)
    }

    /// Creates a new instance in the store and runs its start-up callbacks.
    ///
    /// Returns `Ok(Err(callback))` when a start-up callback returned false. A recycled
    /// instance's memory stays in the store until the host is dropped.
    fn start_instance(&mut self) -> Result<Result<(), &'static str>, HostError> {
        self.ex = None;
        {
            let st = self.store.data_mut();
            st.vm = VmState::new();
            st.rec.generation += 1;
        }
        let instance = self
            .module
            .pre()
            .instantiate(&mut self.store)
            .map_err(|e| HostError::Instantiate {
                message: format!("{e:#}"),
            })?;
        let ex = resolve_exports(&instance, &mut self.store)?;
        let alloc = instance
            .get_typed_func::<u32, u32>(&mut self.store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<u32, u32>(&mut self.store, "malloc"))
            .map_err(|_| HostError::BadExport {
                name: "proxy_on_memory_allocate".to_string(),
            })?;
        {
            let vm = &mut self.store.data_mut().vm;
            vm.memory = Some(ex.memory);
            vm.alloc = Some(alloc);
        }
        self.ex = Some(ex.clone());
        self.health = Health::Running;

        // Spec "Integration": `_initialize`, else `_start`.
        let init = instance
            .get_typed_func::<(), ()>(&mut self.store, "_initialize")
            .or_else(|_| instance.get_typed_func::<(), ()>(&mut self.store, "_start"))
            .ok();
        if let Invoke::Trapped(message) = self.invoke(Phase::Initialize, 0, init, ()) {
            return Err(HostError::Instantiate { message });
        }

        let root = self.next_context_id();
        self.store.data_mut().vm.root_id = root;
        let startup_trap =
            |callback: &'static str, message: String| HostError::StartupTrap { callback, message };
        if let Invoke::Trapped(m) =
            self.invoke(Phase::ContextCreate, root, ex.on_context_create, (root, 0))
        {
            return Err(startup_trap("proxy_on_context_create", m));
        }
        let vm_config_len = len_u32(self.cfg.opts.vm_config.len());
        match self.invoke(Phase::VmStart, root, ex.on_vm_start, (root, vm_config_len)) {
            Invoke::Trapped(m) => return Err(startup_trap("proxy_on_vm_start", m)),
            Invoke::Done(0) => return Ok(Err("proxy_on_vm_start")),
            _ => {}
        }
        let config_len = len_u32(self.cfg.opts.plugin_config.len());
        match self.invoke(Phase::Configure, root, ex.on_configure, (root, config_len)) {
            Invoke::Trapped(m) => Err(startup_trap("proxy_on_configure", m)),
            Invoke::Done(0) => Ok(Err("proxy_on_configure")),
            _ => Ok(Ok(())),
        }
    }

    /// Kong: replaces a trapped instance before the next request or tick (hosts.md §4.11:
    /// "the next request or tick creates a new instance"; §4.5: "`on_vm_start` and
    /// `on_configure` run again and the tick period is reset").
    pub(crate) fn recover(&mut self) {
        if self.health != Health::Trapped || !self.cfg.rules.recycles_after_trap() {
            return;
        }
        match self.start_instance() {
            Ok(Ok(())) => self.configured = true,
            Ok(Err(_)) => self.configured = false,
            Err(_) => {
                // The new instance failed to start; try again at the next request or tick.
                self.ex = None;
                self.health = Health::Trapped;
            }
        }
    }

    pub(crate) fn next_context_id(&mut self) -> u32 {
        let rec = &mut self.store.data_mut().rec;
        let id = rec.next_context_id;
        rec.next_context_id += 1;
        id
    }

    /// Calls a guest callback for context `ctx` in `phase`, recording a trap.
    pub(crate) fn invoke<P: WasmParams, R: WasmResults>(
        &mut self,
        phase: Phase,
        ctx: u32,
        func: Option<TypedFunc<P, R>>,
        params: P,
    ) -> Invoke<R> {
        let Some(func) = func else {
            return Invoke::Missing;
        };
        if self.health != Health::Running {
            return Invoke::Missing;
        }
        {
            let vm = &mut self.store.data_mut().vm;
            vm.phase = phase;
            vm.active_context = ctx;
            vm.effective_context = ctx;
            vm.last_critical = None;
            vm.host_trap = None;
            vm.dispatched_in_call = 0;
        }
        let result = func.call(&mut self.store, params);
        let st = self.store.data_mut();
        st.vm.phase = Phase::None;
        st.vm.active_context = 0;
        st.vm.effective_context = 0;
        match result {
            Ok(r) => Invoke::Done(r),
            Err(e) => {
                // A hostcall that traps records its message before returning the error.
                let host_trap = st
                    .vm
                    .host_trap
                    .take()
                    .or_else(|| e.downcast_ref::<HostTrap>().map(|t| t.0.clone()));
                let host_raised = host_trap.is_some();
                let message = if let Some(m) = host_trap {
                    m
                } else if let Some(panic) = st.vm.last_critical.take() {
                    panic
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    trap.to_string()
                } else {
                    format!("{e:#}")
                };
                st.rec.traps.push(TrapRecord {
                    phase,
                    context_id: ctx,
                    message: message.clone(),
                    host_raised,
                });
                self.health = if self.cfg.rules.recycles_after_trap() {
                    Health::Trapped
                } else {
                    Health::Failed
                };
                Invoke::Trapped(message)
            }
        }
    }

    /// True unless `on_vm_start` or `on_configure` returned false (possible on Kong only:
    /// every request then gets 500 without reaching upstream, hosts.md §3.4).
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The emulated gateway.
    pub fn personality(&self) -> Personality {
        self.cfg.opts.personality
    }

    /// The options the host runs with.
    pub fn options(&self) -> &HostOptions {
        &self.cfg.opts
    }

    /// True while the instance can run callbacks (false after an Envoy trap, or between a Kong
    /// trap and the next request or tick).
    pub fn is_running(&self) -> bool {
        self.health == Health::Running
    }

    /// Runs `on_tick` now if the filter set a tick period (after replacing a trapped Kong
    /// instance). The clock does not move; see [`Host::advance_ms`].
    pub fn tick(&mut self) {
        self.recover();
        let (root, period) = {
            let vm = &self.store.data().vm;
            (vm.root_id, vm.tick_period_ms)
        };
        if period.is_none() {
            return;
        }
        let f = self.ex.as_ref().and_then(|e| e.on_tick.clone());
        let _ = self.invoke(Phase::Tick, root, f, root);
        self.process_resumes();
    }

    /// Moves a manual clock forward by `ms` (a real clock ignores it). No tick runs.
    pub fn advance_ms(&mut self, ms: u64) {
        self.store
            .data_mut()
            .rec
            .clock
            .advance(Duration::from_millis(ms));
    }

    /// The tick period the filter set, if any.
    pub fn tick_period_ms(&self) -> Option<u64> {
        self.store.data().vm.tick_period_ms.map(u64::from)
    }

    /// Current guest wall-clock time in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.store.data().rec.clock.unix_ns() / 1_000_000
    }

    /// Callouts whose response has not arrived yet.
    pub fn pending_callouts(&self) -> usize {
        self.store
            .data()
            .rec
            .callouts
            .iter()
            .filter(|c| c.result == CalloutResult::Pending)
            .count()
    }

    /// Delivers finished callouts to the guest (`proxy_on_http_call_response` on the context
    /// that dispatched each), waiting up to `wait` for pending ones; returns how many were
    /// delivered. Also delivers `on_queue_ready` on Envoy.
    pub fn pump(&mut self, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        let mut delivered = 0;
        loop {
            while let Ok(done) = self.rx.try_recv() {
                delivered += self.deliver(done);
            }
            delivered += self.deliver_queue_ready();
            if self.pending_callouts() == 0 {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.rx.recv_timeout(left) {
                Ok(done) => delivered += self.deliver(done),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        delivered
    }

    /// Ticks and pumps until nothing is pending and no tick has dispatched for 5 s of guest
    /// time, at most `max_ticks` ticks; returns the number of callouts delivered.
    ///
    /// Before each tick a manual clock advances by one tick period; a real clock is waited on
    /// (at most 1 s per tick). Each pump waits up to the callout timeout cap.
    pub fn settle(&mut self, max_ticks: usize) -> usize {
        let mut delivered = self.pump(Duration::ZERO);
        let mut quiet = Duration::ZERO;
        for _ in 0..max_ticks {
            let Some(period) = self.tick_period_ms() else {
                break;
            };
            let period = Duration::from_millis(period.max(1));
            if self.store.data().rec.clock.is_manual() {
                self.store.data_mut().rec.clock.advance(period);
            } else {
                std::thread::sleep(period.min(Duration::from_secs(1)));
            }
            let before = self.store.data().rec.callouts.len();
            self.tick();
            delivered += self.pump(self.cfg.opts.callout_timeout_cap);
            let dispatched = self.store.data().rec.callouts.len() > before;
            if dispatched || self.pending_callouts() > 0 {
                quiet = Duration::ZERO;
            } else {
                quiet += period;
                if quiet >= SETTLE_QUIET {
                    break;
                }
            }
        }
        delivered
    }

    fn deliver(&mut self, done: CalloutDone) -> usize {
        let (index, ctx, generation) = {
            let rec = &mut self.store.data_mut().rec;
            let Some(i) = rec.callouts.iter().position(|c| c.token == done.token) else {
                return 0;
            };
            if rec.callouts[i].result != CalloutResult::Pending {
                return 0; // cancelled meanwhile
            }
            rec.callouts[i].result = match &done.result {
                Ok((status, headers, body)) => CalloutResult::Response {
                    status: *status,
                    headers: headers.clone(),
                    body: body.clone(),
                },
                Err(f) => CalloutResult::Failed(*f),
            };
            (i, rec.callouts[i].context_id, rec.callout_generation[i])
        };
        let (current, root) = {
            let st = self.store.data();
            (st.rec.generation, st.vm.root_id)
        };
        if generation != current || self.health != Health::Running {
            return 0;
        }
        let made_in_request_phase = self.store.data().rec.callouts[index]
            .phase
            .is_request_phase();
        if ctx != root {
            let live = self
                .store
                .data()
                .rec
                .streams
                .get(&ctx)
                .is_some_and(|s| !s.ended && !s.filter_skipped);
            if !live {
                return 0;
            }
        }
        let outcome = done
            .result
            .map(|(status, headers, body)| (response_pairs(status, &headers), body));
        let (num_headers, body_len) = match &outcome {
            Ok((pairs, body)) => (len_u32(pairs.len()), len_u32(body.len())),
            Err(_) => (0, 0),
        };
        self.store.data_mut().vm.call_response = Some(CallResponse { outcome });
        let f = self
            .ex
            .as_ref()
            .and_then(|e| e.on_http_call_response.clone());
        let r = self.invoke(
            Phase::HttpCallResponse,
            ctx,
            f,
            (ctx, done.token, num_headers, body_len, 0),
        );
        self.store.data_mut().vm.call_response = None;
        self.store.data_mut().rec.callouts[index].delivered = true;
        if ctx != root {
            if let Invoke::Trapped(msg) = r {
                self.stream_trapped(ctx, Phase::HttpCallResponse, msg);
            }
            if let Some(s) = self.store.data_mut().rec.streams.get_mut(&ctx) {
                if made_in_request_phase && s.pending_request_callouts > 0 {
                    s.pending_request_callouts -= 1;
                    // Kong: "the request resumes when all complete" (hosts.md §4.4).
                    if s.pending_request_callouts == 0 && s.paused_for_callouts {
                        s.resume_requested = true;
                    }
                }
            }
        }
        self.process_resumes();
        1
    }

    fn deliver_queue_ready(&mut self) -> usize {
        let events = std::mem::take(&mut self.store.data_mut().rec.queue_ready);
        let mut n = 0;
        for (ctx, queue) in events {
            let f = self.ex.as_ref().and_then(|e| e.on_queue_ready.clone());
            if let Invoke::Done(()) = self.invoke(Phase::QueueReady, ctx, f, (ctx, queue)) {
                n += 1;
            }
        }
        n
    }

    /// Marks pending callouts of context `ctx` cancelled (Envoy: `Context::~Context()` cancels
    /// outstanding `http_request_`s, hosts.md §5.2).
    pub(crate) fn cancel_callouts_of(&mut self, ctx: u32) {
        for c in &mut self.store.data_mut().rec.callouts {
            if c.context_id == ctx && c.result == CalloutResult::Pending {
                c.result = CalloutResult::Failed(CalloutFailure::Cancelled);
            }
        }
    }

    /// Every dispatch the filter attempted, in order.
    pub fn callouts(&self) -> Vec<Callout> {
        self.store.data().rec.callouts.clone()
    }

    /// Every metric by its full host name (`pw:llm_tracer:<name>` on Kong 3.9,
    /// `wasmcustom.<name>` on Envoy).
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        self.store
            .data()
            .rec
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect()
    }

    /// The value of the metric the filter defined as `short_name` (the host prefix is added);
    /// histograms give their count. `None` when it was never defined.
    pub fn metric(&self, short_name: &str) -> Option<i64> {
        let full = self
            .cfg
            .rules
            .metric_name(&self.cfg.opts, short_name)
            .ok()?;
        self.store
            .data()
            .rec
            .metrics
            .iter()
            .find(|m| m.name == full)
            .map(|m| m.value.as_i64())
    }

    /// The sum over every label set of the metric the filter defined as `base` plus label
    /// fragments (`<base>_provider=openai_model=…`), or as `base` itself; histograms count
    /// observations. `None` when no such metric was defined.
    pub fn metric_total(&self, base: &str) -> Option<i64> {
        let full = self.cfg.rules.metric_name(&self.cfg.opts, base).ok()?;
        let labelled = format!("{full}_");
        let mut found = None;
        for m in &self.store.data().rec.metrics {
            let matches = m.name == full
                || m.name
                    .strip_prefix(&labelled)
                    .is_some_and(|rest| rest.split('_').next().is_some_and(|f| f.contains('=')));
            if matches {
                *found.get_or_insert(0) += m.value.as_i64();
            }
        }
        found
    }

    /// Every captured log line (`proxy_log`, stdout/stderr, host messages).
    pub fn logs(&self) -> Vec<LogLine> {
        self.store.data().rec.logs.clone()
    }

    /// Every trap as `"<callback>: <message>"` (the panic message when the guest logged one).
    pub fn traps(&self) -> Vec<String> {
        self.store
            .data()
            .rec
            .traps
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Every trap with its context.
    pub fn trap_records(&self) -> Vec<TrapRecord> {
        self.store.data().rec.traps.clone()
    }

    /// Size of the current instance's linear memory in bytes (0 without an instance).
    pub fn memory_bytes(&self) -> usize {
        self.ex
            .as_ref()
            .map_or(0, |e| e.memory.data_size(&self.store))
    }

    /// Shared data the filter stored, by key.
    pub fn shared_data(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.store
            .data()
            .rec
            .shared_data
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

fn resolve_exports(
    instance: &Instance,
    store: &mut Store<HostState>,
) -> Result<Exports, HostError> {
    let memory =
        instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| HostError::BadExport {
                name: "memory".to_string(),
            })?;
    Ok(Exports {
        memory,
        on_context_create: optional(instance, store, "proxy_on_context_create")?,
        on_vm_start: optional(instance, store, "proxy_on_vm_start")?,
        on_configure: optional(instance, store, "proxy_on_configure")?,
        on_tick: optional(instance, store, "proxy_on_tick")?,
        on_queue_ready: optional(instance, store, "proxy_on_queue_ready")?,
        on_request_headers: optional(instance, store, "proxy_on_request_headers")?,
        on_request_body: optional(instance, store, "proxy_on_request_body")?,
        on_response_headers: optional(instance, store, "proxy_on_response_headers")?,
        on_response_body: optional(instance, store, "proxy_on_response_body")?,
        on_http_call_response: optional(instance, store, "proxy_on_http_call_response")?,
        on_done: optional(instance, store, "proxy_on_done")?,
        on_log: optional(instance, store, "proxy_on_log")?,
        on_delete: optional(instance, store, "proxy_on_delete")?,
    })
}

/// A callback export: absent is fine, present with the wrong type is an error.
fn optional<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Result<Option<TypedFunc<P, R>>, HostError> {
    if instance.get_export(&mut *store, name).is_none() {
        return Ok(None);
    }
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map(Some)
        .map_err(|_| HostError::BadExport {
            name: name.to_string(),
        })
}

/// Sizes passed to the guest as `usize` (32-bit on wasm32).
pub(crate) fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
