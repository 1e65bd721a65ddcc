//! Everything the host keeps about a running filter: the per-instance VM state, the records that
//! survive an instance being recycled (logs, traps, callouts, metrics, shared data), and the
//! per-request stream state. All of it lives in `Store<HostState>`; nothing is global, so any
//! number of hosts run side by side in one process.
//!
//! This module holds data and small helpers only; the rules that differ between gateways are in
//! [`crate::personality`], the hostcalls in [`crate::abi`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use wasmtime::{Memory, TypedFunc};

use crate::abi::codec::Pair;
use crate::callouts::CalloutDone;
use crate::clock::{Clock, SeededRng};
use crate::options::HostOptions;
use crate::personality::Rules;

/// The callback (or host step) running when something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// No guest callback is running (the host itself is acting).
    None,
    /// `_initialize` / `_start`.
    Initialize,
    /// `proxy_on_context_create`.
    ContextCreate,
    /// `proxy_on_vm_start`.
    VmStart,
    /// `proxy_on_configure`.
    Configure,
    /// `proxy_on_tick`.
    Tick,
    /// `proxy_on_queue_ready`.
    QueueReady,
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
    /// `proxy_on_http_call_response`.
    HttpCallResponse,
    /// `proxy_on_log`.
    Log,
    /// `proxy_on_done`.
    Done,
    /// `proxy_on_delete`.
    Delete,
    /// `proxy_on_memory_allocate` called by the host to return data.
    Allocate,
}

impl Phase {
    /// The guest export this phase runs, e.g. `proxy_on_tick`.
    pub fn export_name(self) -> &'static str {
        match self {
            Phase::None => "(host)",
            Phase::Initialize => "_initialize",
            Phase::ContextCreate => "proxy_on_context_create",
            Phase::VmStart => "proxy_on_vm_start",
            Phase::Configure => "proxy_on_configure",
            Phase::Tick => "proxy_on_tick",
            Phase::QueueReady => "proxy_on_queue_ready",
            Phase::RequestHeaders => "proxy_on_request_headers",
            Phase::RequestBody => "proxy_on_request_body",
            Phase::RequestTrailers => "proxy_on_request_trailers",
            Phase::ResponseHeaders => "proxy_on_response_headers",
            Phase::ResponseBody => "proxy_on_response_body",
            Phase::ResponseTrailers => "proxy_on_response_trailers",
            Phase::HttpCallResponse => "proxy_on_http_call_response",
            Phase::Log => "proxy_on_log",
            Phase::Done => "proxy_on_done",
            Phase::Delete => "proxy_on_delete",
            Phase::Allocate => "proxy_on_memory_allocate",
        }
    }

    /// True for the phases of the request path (a trap there costs the client its request).
    pub fn is_request_phase(self) -> bool {
        matches!(
            self,
            Phase::RequestHeaders | Phase::RequestBody | Phase::RequestTrailers
        )
    }

    /// True for the phases of the response path.
    pub fn is_response_phase(self) -> bool {
        matches!(
            self,
            Phase::ResponseHeaders | Phase::ResponseBody | Phase::ResponseTrailers
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.export_name())
    }
}

/// Log levels of the ABI (`proxy_log_level_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0
    Trace,
    /// 1
    Debug,
    /// 2
    Info,
    /// 3
    Warn,
    /// 4
    Error,
    /// 5; the Rust SDK's panic hook logs panics at this level.
    Critical,
}

impl LogLevel {
    /// Decodes the ABI value; `None` for values above 5.
    pub fn from_abi(v: u32) -> Option<Self> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }

    /// The ABI value.
    pub fn to_abi(self) -> u32 {
        self as u32
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// `proxy_log`.
    ProxyLog,
    /// WASI `fd_write` to stdout (logged at Info, per the ABI).
    Stdout,
    /// WASI `fd_write` to stderr (logged at Error, per the ABI).
    Stderr,
    /// The host itself (e.g. Kong's "cannot read request body buffered to file").
    Host,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Level.
    pub level: LogLevel,
    /// Message text (lossily decoded).
    pub message: String,
    /// The context whose callback logged it (0 when none).
    pub context_id: u32,
    /// The callback running at the time.
    pub phase: Phase,
    /// Where it came from.
    pub source: LogSource,
}

/// A trap the guest hit (a panic, `unreachable`, or a host-enforced trap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrapRecord {
    /// The callback that trapped.
    pub phase: Phase,
    /// The context it ran for.
    pub context_id: u32,
    /// The panic message when the guest logged one at Critical, else the trap text.
    pub message: String,
    /// True when the host raised it (a gateway rule such as Kong's dispatch-phase check),
    /// false for a trap inside the guest's own code.
    pub host_raised: bool,
}

impl fmt::Display for TrapRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.phase, self.message)
    }
}

/// Why a callout produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutFailure {
    /// Connection refused (Kong's `:dispatch_status` is `broken connection`).
    Refused,
    /// The dispatch timeout passed.
    Timeout,
    /// The connection broke mid-exchange.
    BrokenConnection,
    /// The response was not valid HTTP (Kong: `reader failure`).
    ReaderFailure,
    /// The upstream host name could not be resolved (Kong: `resolver failure`).
    ResolverFailure,
    /// TLS was requested (`:scheme: https` on Kong); this host speaks plain HTTP only.
    TlsHandshake,
    /// The dispatching context was destroyed first (Envoy, hosts.md §5.2), or the instance was
    /// recycled after a trap (Kong, §4.11).
    Cancelled,
}

impl CalloutFailure {
    /// Kong's `:dispatch_status` value for this failure (hosts.md §4.4 "Failures").
    pub fn kong_dispatch_status(self) -> &'static str {
        match self {
            CalloutFailure::Refused | CalloutFailure::BrokenConnection => "broken connection",
            CalloutFailure::Timeout => "timeout",
            CalloutFailure::ReaderFailure => "reader failure",
            CalloutFailure::ResolverFailure => "resolver failure",
            CalloutFailure::TlsHandshake => "tls handshake failure",
            CalloutFailure::Cancelled => "broken connection",
        }
    }
}

/// What became of one `dispatch_http_call`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutResult {
    /// Sent; no response yet.
    Pending,
    /// A response arrived.
    Response {
        /// Status code.
        status: u16,
        /// Response headers as received.
        headers: Vec<(String, String)>,
        /// Response body.
        body: Vec<u8>,
    },
    /// The call failed after it was accepted (delivered as zero headers).
    Failed(CalloutFailure),
    /// The hostcall refused the call synchronously.
    Rejected {
        /// The status the hostcall returned (BadArgument = 2, ...), 0 when it trapped instead.
        status: u32,
        /// True when the gateway traps instead of returning a status (Kong, HTTP contexts).
        trapped: bool,
    },
}

/// One `dispatch_http_call`, as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// Token returned to the guest (0 when rejected).
    pub token: u32,
    /// Context that dispatched it.
    pub context_id: u32,
    /// The `upstream` argument (Kong `host:port`, Envoy cluster name).
    pub upstream: String,
    /// Headers, pseudo-headers included, as the guest passed them.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// The `timeout` argument in milliseconds.
    pub timeout_ms: u32,
    /// The callback it was made from.
    pub phase: Phase,
    /// Outcome.
    pub result: CalloutResult,
    /// True once `proxy_on_http_call_response` ran for it.
    pub delivered: bool,
}

impl Callout {
    /// First value of request header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Kind of a metric (`proxy_metric_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// 0
    Counter,
    /// 1
    Gauge,
    /// 2
    Histogram,
}

/// Current value of a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    /// Monotonic counter.
    Counter(u64),
    /// Gauge (Envoy gauges may go negative through increments).
    Gauge(i64),
    /// Histogram: every recorded value, in order.
    Histogram(Vec<u64>),
}

impl MetricValue {
    /// Counter and gauge values as `i64`; for a histogram, the number of recorded values.
    pub fn as_i64(&self) -> i64 {
        match self {
            MetricValue::Counter(v) => i64::try_from(*v).unwrap_or(i64::MAX),
            MetricValue::Gauge(v) => *v,
            MetricValue::Histogram(v) => i64::try_from(v.len()).unwrap_or(i64::MAX),
        }
    }
}

/// A response the filter sent itself (`proxy_send_local_response`), or the gateway sent on
/// the filter's behalf (a failed configuration, a trap, a buffer limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// Status code.
    pub status: u16,
    /// Status details (`wasm_fail_stream`, `request_payload_too_large`, or the filter's own).
    pub details: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// True when the filter itself called `proxy_send_local_response`.
    pub from_filter: bool,
}

/// A defined metric.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub value: MetricValue,
}

/// A shared queue.
#[derive(Debug, Clone, Default)]
pub(crate) struct Queue {
    pub name: String,
    pub items: VecDeque<Vec<u8>>,
    pub bytes: usize,
    pub capacity: Option<usize>,
    /// Context (root) that registered it last; receives `on_queue_ready` (Envoy).
    pub owner: u32,
}

/// Where the request of a stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestStage {
    /// Headers not yet passed by the filter.
    Headers,
    /// Headers passed; body frames arriving.
    Body,
    /// The whole request went upstream (or was answered locally).
    Complete,
}

/// Per-request state.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    pub id: u32,
    /// Instance generation whose context this is.
    pub generation: u64,
    pub request_headers: Vec<Pair>,
    pub request_trailers: Vec<Pair>,
    pub response_headers: Vec<Pair>,
    pub response_trailers: Vec<Pair>,
    /// The request body bytes visible to the filter in the current request-body callback.
    pub req_buf: Vec<u8>,
    /// The response body bytes visible to the filter in the current response-body callback.
    pub resp_buf: Vec<u8>,
    /// Every request body byte received from the client.
    pub request_body_seen: Vec<u8>,
    /// Kong: the body was "spooled to a file" (over `client_body_buffer_size`).
    pub req_body_unreadable: bool,
    pub stage: RequestStage,
    /// The filter paused the request (headers or body); waits for a resume.
    pub request_paused: bool,
    /// The request was paused at least once.
    pub request_paused_ever: bool,
    /// Kong: the pause waits for request-phase dispatches and resumes when they complete.
    pub paused_for_callouts: bool,
    /// Body received while the request was paused at its headers, and whether it ended.
    pub held_body: Vec<u8>,
    pub held_eos: bool,
    /// A body was buffered because the filter returned Pause in `on_request_body` (Envoy).
    pub req_buffering: bool,
    pub req_eos_seen: bool,
    /// Kong: request-phase dispatches still pending (the request waits for them, §4.4).
    pub pending_request_callouts: usize,
    /// `proxy_continue_stream(HttpRequest)` was called for this stream.
    pub resume_requested: bool,
    /// `proxy_continue_stream(HttpResponse)` was called for this stream.
    pub response_resume_requested: bool,
    /// `proxy_done` was called for this stream after `on_done` returned false (Envoy).
    pub done_requested: bool,
    pub upstream_headers: Option<Vec<Pair>>,
    pub upstream_body: Vec<u8>,
    pub reached_upstream: bool,
    pub local_response: Option<LocalResponse>,
    /// Response headers as sent to the client (after the filter), once sent.
    pub client_headers: Option<Vec<Pair>>,
    pub client_body: Vec<u8>,
    pub response_started: bool,
    pub response_bytes_seen: usize,
    pub response_content_length: Option<usize>,
    /// The filter returned Pause in a response phase at least once.
    pub paused_response: bool,
    /// Response buffering in progress after a Pause (both hosts, different limits).
    pub resp_buffering: bool,
    /// Kong: the second Pause of a response is ignored (§4.8).
    pub resp_pause_used: bool,
    pub resp_eof_delivered: bool,
    /// Envoy: the stream was reset (response over the buffer limit after headers were sent,
    /// a trap after headers were sent, or `proxy_close_stream`).
    pub reset: bool,
    /// The filter no longer runs for this stream (trap, fail-open, recycled instance).
    pub filter_skipped: bool,
    /// This stream's callback trapped.
    pub trap: Option<String>,
    /// Properties set by the filter on this stream.
    pub properties: BTreeMap<String, Vec<u8>>,
    /// `on_done` returned false and the host waits for `proxy_done` (Envoy).
    pub done_deferred: bool,
    pub done_called: bool,
    pub ended: bool,
    /// Unix ns when the request started.
    pub start_ns: u64,
    /// Unix ns when the stream ended (for `request.duration`).
    pub end_ns: Option<u64>,
}

impl StreamState {
    pub(crate) fn new(id: u32, generation: u64, headers: Vec<Pair>, start_ns: u64) -> Self {
        StreamState {
            id,
            generation,
            request_headers: headers,
            request_trailers: Vec::new(),
            response_headers: Vec::new(),
            response_trailers: Vec::new(),
            req_buf: Vec::new(),
            resp_buf: Vec::new(),
            request_body_seen: Vec::new(),
            req_body_unreadable: false,
            stage: RequestStage::Headers,
            request_paused: false,
            request_paused_ever: false,
            paused_for_callouts: false,
            held_body: Vec::new(),
            held_eos: false,
            req_buffering: false,
            req_eos_seen: false,
            pending_request_callouts: 0,
            resume_requested: false,
            response_resume_requested: false,
            done_requested: false,
            upstream_headers: None,
            upstream_body: Vec::new(),
            reached_upstream: false,
            local_response: None,
            client_headers: None,
            client_body: Vec::new(),
            response_started: false,
            response_bytes_seen: 0,
            response_content_length: None,
            paused_response: false,
            resp_buffering: false,
            resp_pause_used: false,
            resp_eof_delivered: false,
            reset: false,
            filter_skipped: false,
            trap: None,
            properties: BTreeMap::new(),
            done_deferred: false,
            done_called: false,
            ended: false,
            start_ns,
            end_ns: None,
        }
    }

    /// First request header value by name (case-insensitive), lossily decoded.
    pub(crate) fn request_header(&self, name: &str) -> Option<String> {
        find_pair(&self.request_headers, name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// First response header value by name (case-insensitive), lossily decoded.
    pub(crate) fn response_header(&self, name: &str) -> Option<String> {
        find_pair(&self.response_headers, name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// First value whose key equals `name` ignoring ASCII case.
pub(crate) fn find_pair<'a>(pairs: &'a [Pair], name: &[u8]) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Converts pairs to strings (lossily) for the public API.
pub(crate) fn pairs_to_strings(pairs: &[Pair]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// Converts string pairs to raw pairs.
pub(crate) fn pairs_from_strs(pairs: &[(&str, &str)]) -> Vec<Pair> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// A finished callout as the guest reads it: header pairs (`:status` first) and body, or the
/// failure (zero headers).
pub(crate) type CallOutcome = Result<(Vec<Pair>, Vec<u8>), CalloutFailure>;

/// The response of a finished callout, readable during `proxy_on_http_call_response`.
#[derive(Debug, Clone)]
pub(crate) struct CallResponse {
    /// `Err` for a failed call (zero headers).
    pub outcome: CallOutcome,
}

/// State of one instance; replaced when Kong recycles a trapped instance.
pub(crate) struct VmState {
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<u32, u32>>,
    pub phase: Phase,
    pub active_context: u32,
    pub effective_context: u32,
    pub root_id: u32,
    pub tick_period_ms: Option<u32>,
    /// The response being delivered by `proxy_on_http_call_response`.
    pub call_response: Option<CallResponse>,
    /// Panic message logged (at Critical) during the current callback.
    pub last_critical: Option<String>,
    /// A trap raised by a hostcall during the current callback.
    pub host_trap: Option<String>,
    /// Properties set from the root context.
    pub root_properties: BTreeMap<String, Vec<u8>>,
    /// Dispatches made during the current callback.
    pub dispatched_in_call: usize,
}

impl VmState {
    pub(crate) fn new() -> Self {
        VmState {
            memory: None,
            alloc: None,
            phase: Phase::None,
            active_context: 0,
            effective_context: 0,
            root_id: 0,
            tick_period_ms: None,
            call_response: None,
            last_critical: None,
            host_trap: None,
            root_properties: BTreeMap::new(),
            dispatched_in_call: 0,
        }
    }
}

/// Records that outlive an instance.
pub(crate) struct Records {
    pub logs: Vec<LogLine>,
    pub traps: Vec<TrapRecord>,
    pub callouts: Vec<Callout>,
    /// Instance generation each callout belongs to (parallel to `callouts`).
    pub callout_generation: Vec<u64>,
    pub metrics: Vec<Metric>,
    pub shared_data: BTreeMap<Vec<u8>, (Vec<u8>, u32)>,
    pub queues: Vec<Queue>,
    /// `(context, queue id)` pairs owed an `on_queue_ready` (Envoy).
    pub queue_ready: Vec<(u32, u32)>,
    pub streams: BTreeMap<u32, StreamState>,
    pub rng: SeededRng,
    pub clock: Clock,
    pub next_token: u32,
    pub next_context_id: u32,
    pub generation: u64,
    pub callout_tx: Sender<CalloutDone>,
}

/// The `Store` data: configuration, the instance's state, and the lasting records.
pub(crate) struct HostState {
    pub cfg: Arc<Config>,
    pub vm: VmState,
    pub rec: Records,
}

/// Options plus the personality rules, shared by every instance of one host.
pub(crate) struct Config {
    pub opts: HostOptions,
    pub rules: &'static dyn Rules,
}

impl HostState {
    /// Appends a log line attributed to the current callback.
    pub(crate) fn log(&mut self, level: LogLevel, source: LogSource, message: String) {
        if level == LogLevel::Critical && source == LogSource::ProxyLog {
            self.vm.last_critical = Some(message.clone());
        }
        self.rec.logs.push(LogLine {
            level,
            message,
            context_id: self.vm.active_context,
            phase: self.vm.phase,
            source,
        });
    }

    /// The stream the effective context refers to, if it is a live stream of this instance.
    pub(crate) fn effective_stream(&mut self) -> Option<&mut StreamState> {
        let id = self.vm.effective_context;
        let generation = self.rec.generation;
        self.rec
            .streams
            .get_mut(&id)
            .filter(|s| s.generation == generation && !s.ended)
    }

    /// Read-only view of the effective context's stream.
    pub(crate) fn effective_stream_ref(&self) -> Option<&StreamState> {
        self.rec
            .streams
            .get(&self.vm.effective_context)
            .filter(|s| s.generation == self.rec.generation && !s.ended)
    }

    /// `Err(trap)` when the gateway does not implement `hostcall`.
    pub(crate) fn nyi_check(&self, hostcall: &str) -> Result<(), crate::abi::Abi> {
        match self.cfg.rules.not_implemented(&self.cfg.opts, hostcall) {
            Some(abi) => Err(abi),
            None => Ok(()),
        }
    }

    /// True when the effective context is the root context.
    pub(crate) fn in_root_context(&self) -> bool {
        self.vm.effective_context == self.vm.root_id
    }
}
