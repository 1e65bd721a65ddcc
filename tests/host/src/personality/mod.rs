//! Gateway personalities: every rule where Kong (ngx_wasm_module) and Envoy differ, as the
//! `Rules` trait with one implementation per gateway.
//!
//! Each rule's doc comment in `kong.rs` and `envoy.rs` cites the section of
//! `shared/docs/hosts.md` it encodes. The host and the hostcalls ask these rules and contain no
//! gateway-specific constant of their own.

pub mod envoy;
pub mod kong;

use std::net::SocketAddr;
use std::time::Duration;

use crate::abi::codec::Pair;
use crate::abi::Abi;
use crate::options::HostOptions;
use crate::state::{CallOutcome, LocalResponse, Phase, StreamState};

/// Which gateway the host emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Personality {
    /// Kong Gateway 3.x with ngx_wasm_module (hosts.md §3–§4).
    Kong,
    /// Envoy's `envoy.filters.http.wasm` on proxy-wasm-cpp-host (hosts.md §5).
    Envoy,
}

impl Personality {
    /// `"kong"` or `"envoy"`.
    pub fn name(self) -> &'static str {
        match self {
            Personality::Kong => "kong",
            Personality::Envoy => "envoy",
        }
    }

    pub(crate) fn rules(self) -> &'static dyn Rules {
        match self {
            Personality::Kong => &kong::Kong,
            Personality::Envoy => &envoy::Envoy,
        }
    }
}

impl std::fmt::Display for Personality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a dispatch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DispatchTarget {
    /// Address to connect to; `None` when the name does not resolve (an asynchronous failure).
    pub addr: Option<SocketAddr>,
    /// The call asked for TLS, which this host cannot do (an asynchronous failure).
    pub tls: bool,
    /// `Host` header to send.
    pub host_header: String,
}

/// A dispatch refused before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DispatchRefusal {
    /// A required pseudo-header is missing (`:method`, `:path`, `:authority`).
    MissingHeader(&'static str),
    /// The upstream string is not `host[:port]` (Kong).
    BadUpstream,
    /// The upstream names no configured cluster (Envoy).
    UnknownCluster,
}

impl std::fmt::Display for DispatchRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchRefusal::MissingHeader(h) => write!(f, "no {h}"),
            DispatchRefusal::BadUpstream => f.write_str("invalid upstream"),
            DispatchRefusal::UnknownCluster => f.write_str("unknown cluster"),
        }
    }
}

/// How a property query is answered: `Ok(None)` is NotFound.
pub(crate) type PropAnswer = Result<Option<Vec<u8>>, Abi>;

/// What a property lookup can see.
pub(crate) struct PropQuery<'a> {
    /// Dotted path, e.g. `request.headers.x-request-id`.
    pub path: &'a str,
    pub phase: Phase,
    /// The effective context is the root context.
    pub in_root: bool,
    pub root_id: u32,
    /// The effective context's stream, if any.
    pub stream: Option<&'a StreamState>,
    pub opts: &'a HostOptions,
    pub now_ns: u64,
}

/// Access to a body buffer in the current callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyAccess {
    /// The buffer of the current callback may be read and written.
    Allowed,
    /// No such buffer here (NotFound).
    NotAvailable,
    /// The gateway traps.
    Trap(String),
}

/// What a trap does to the stream whose callback trapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrapEffect {
    /// The client gets this response instead (the request never reaches upstream, or the
    /// upstream response is replaced when its headers were not sent yet).
    Local(LocalResponse),
    /// Traffic continues unchanged without the filter.
    PassThrough,
    /// The stream is reset (the client sees a truncated response).
    Reset,
}

/// The rules of one gateway.
pub(crate) trait Rules: Send + Sync {
    /// `end_of_stream` passed to `on_http_request_headers` / `on_http_response_headers`.
    fn header_eof(&self, end_of_stream: bool) -> bool;

    /// Time returned by `proxy_get_current_time_nanoseconds` and WASI `clock_time_get`
    /// (REALTIME) for a clock reading of `unix_ns`.
    fn wall_time_ns(&self, unix_ns: u64) -> u64;

    /// Resolution reported by WASI `clock_res_get`.
    fn clock_resolution_ns(&self) -> u64;

    /// Order of the final callbacks of a stream (before `on_delete`).
    fn end_order(&self) -> [Phase; 2];

    /// The request body is delivered once, whole, at end of stream (Kong) rather than per
    /// frame (Envoy).
    fn request_body_whole(&self) -> bool;

    /// Checks that `dispatch_http_call` may run in `phase`.
    fn dispatch_phase(&self, phase: Phase) -> Result<(), Abi>;

    /// Resolves the `upstream` argument and checks the required headers.
    fn dispatch_target(
        &self,
        opts: &HostOptions,
        upstream: &str,
        headers: &[Pair],
    ) -> Result<DispatchTarget, DispatchRefusal>;

    /// What the hostcall does with a synchronous refusal made in `phase`, from the root
    /// context (`in_root`) or an HTTP context.
    fn dispatch_refused(&self, phase: Phase, in_root: bool, why: &DispatchRefusal) -> Abi;

    /// The effective timeout for a `timeout` argument of `ms` milliseconds.
    fn dispatch_timeout(&self, ms: u32, cap: Duration) -> Duration;

    /// Headers the guest passed that are sent on the wire (pseudo-headers are handled apart).
    fn keeps_dispatch_header(&self, name: &str) -> bool;

    /// Header pairs of a finished callout as `proxy_get_header_map_pairs` returns them.
    fn call_response_pairs(&self, outcome: &CallOutcome) -> Vec<Pair>;

    /// One header of a finished callout (`proxy_get_header_map_value`).
    fn call_response_value(&self, outcome: &CallOutcome, name: &[u8]) -> Result<Vec<u8>, Abi>;

    /// `proxy_get_status` during `on_http_call_response`: `(code, message)`.
    fn call_status(&self, outcome: Option<&CallOutcome>) -> Result<(u32, Vec<u8>), Abi>;

    /// Whether the request body buffer may be accessed in `phase`.
    fn request_body_access(&self, phase: Phase) -> BodyAccess;

    /// Whether the response body buffer may be accessed in `phase`.
    fn response_body_access(&self, phase: Phase) -> BodyAccess;

    /// Answers `proxy_get_property`.
    fn property(&self, q: &PropQuery<'_>) -> PropAnswer;

    /// Decides `proxy_set_property`: `Ok` stores the value.
    fn set_property(&self, path: &str, in_root: bool) -> Result<(), Abi>;

    /// Full stored name of a metric defined as `name`.
    fn metric_name(&self, opts: &HostOptions, name: &str) -> Result<String, Abi>;

    /// What `proxy_define_metric` does with an unknown metric type.
    fn bad_metric_type(&self) -> Abi;

    /// `Some(trap)` when `hostcall` is not implemented by the gateway.
    fn not_implemented(&self, opts: &HostOptions, hostcall: &str) -> Option<Abi>;

    /// Checks a `proxy_set_tick_period_milliseconds` call.
    fn tick_period(&self, in_root: bool, current: Option<u32>, period: u32) -> Result<(), Abi>;

    /// Checks a shared-data key (Kong resolves a namespace zone).
    fn shared_key(&self, opts: &HostOptions, key: &[u8]) -> Result<(), Abi>;

    /// `proxy_register_shared_queue`: `Ok(Some(capacity))`/`Ok(None)` (unbounded) to create or
    /// open the queue.
    fn register_queue(&self, opts: &HostOptions, name: &str) -> Result<Option<usize>, Abi>;

    /// What enqueueing onto a full queue does.
    fn queue_full(&self, name: &str) -> Abi;

    /// Whether `on_queue_ready` is delivered.
    fn queue_ready_supported(&self) -> bool;

    /// Response when `on_configure` returned false and a request arrives (Kong), if the host
    /// is still running at all.
    fn configure_failed_response(&self) -> LocalResponse;

    /// What a trap in `phase` does to its stream; `headers_sent` tells whether the client
    /// already has response headers.
    fn trap_effect(&self, opts: &HostOptions, phase: Phase, headers_sent: bool) -> TrapEffect;

    /// The instance is recycled after a trap (Kong) rather than failed for good (Envoy).
    fn recycles_after_trap(&self) -> bool;

    /// Response for a request arriving after the VM failed (Envoy fail-closed); `None` means
    /// the filter is skipped.
    fn failed_vm_response(&self, opts: &HostOptions) -> Option<LocalResponse>;

    /// Largest `random_get` request (Envoy: 64 KiB per call).
    fn random_limit(&self) -> Option<usize>;

    /// Header names are lowercased when the filter adds or replaces them (Envoy).
    fn lowercase_header_names(&self) -> bool;

    /// Most pairs `proxy_get_header_map_pairs` returns; the rest are left out (Kong: 100,
    /// logging "marshalled map truncated to 100 elements"). A lookup by name still finds them.
    fn max_map_pairs(&self) -> Option<usize>;
}

/// Copies header pairs, lowercasing names when asked (Envoy header maps are lowercase).
pub(crate) fn lowercased(headers: &[Pair], lowercase: bool) -> Vec<Pair> {
    let mut out = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        let k = if lowercase {
            k.to_ascii_lowercase()
        } else {
            k.clone()
        };
        out.push((k, v.clone()));
    }
    out
}

/// Status as a `NotFound`-or-value answer.
pub(crate) fn found(v: impl Into<Vec<u8>>) -> PropAnswer {
    Ok(Some(v.into()))
}

/// Request properties common to both gateways' naming, as strings. `None` when the path is
/// not one of them.
pub(crate) fn request_string_property(path: &str, s: &StreamState) -> Option<Option<String>> {
    let header = |n: &str| s.request_header(n);
    let path_and_query = header(":path").unwrap_or_default();
    let (url_path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path_and_query.clone(), String::new()),
    };
    Some(match path {
        "request.path" => Some(path_and_query),
        "request.url_path" => Some(url_path),
        "request.query" => Some(query),
        "request.method" => header(":method"),
        "request.scheme" => Some(header(":scheme").unwrap_or_else(|| "http".to_string())),
        "request.protocol" => Some("HTTP/1.1".to_string()),
        "request.useragent" => header("user-agent"),
        "request.referer" => header("referer"),
        "request.id" => header("x-request-id"),
        _ => {
            if let Some(name) = path.strip_prefix("request.headers.") {
                header(name)
            } else if let Some(name) = path.strip_prefix("response.headers.") {
                s.response_header(name)
            } else {
                return None;
            }
        }
    })
}
