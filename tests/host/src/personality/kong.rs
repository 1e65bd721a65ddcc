//! Kong Gateway 3.x with ngx_wasm_module, as described in `shared/docs/hosts.md` §3–§4.
//!
//! Every method cites the section it encodes. Kong behaviour the host implements outside this
//! file (because it shapes the request flow rather than answering a question) is documented at
//! its use: the request body delivered once and whole (§4.8, `Host::request_body`), response
//! chunks with a final 0-byte `eof` call and Pause buffering (§4.8, `Host::response_body`), the
//! client request waiting for request-phase dispatches (§4.4, `Host::pump`), and instance
//! recycling after a trap (§4.11, `Host::recover`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{
    found, request_string_property, BodyAccess, DispatchRefusal, DispatchTarget, PropAnswer,
    PropQuery, Rules, TrapEffect,
};
use crate::abi::codec::Pair;
use crate::abi::{nyi, Abi, Status};
use crate::options::HostOptions;
use crate::state::{find_pair, CallOutcome, LocalResponse, Phase};

/// The Kong personality.
pub(crate) struct Kong;

/// ngx_wasm_module's message for a dispatch outside the allowed phases (§4.3).
pub const DISPATCH_PHASE_TRAP: &str = "can only send HTTP dispatch during \"on_request_headers\", \
\"on_request_body\", \"on_tick\", \"on_dispatch_response\", \"on_foreign_function\"";

/// `kong.route_id` of the emulated route (override with `HostOptions::properties`).
pub const KONG_ROUTE_ID: &str = "7a9f3c2e-0d1b-4c5a-9e8f-000000000001";
/// `kong.service_id` of the emulated service.
pub const KONG_SERVICE_ID: &str = "7a9f3c2e-0d1b-4c5a-9e8f-000000000002";
/// `kong.node.id` of the emulated node.
pub const KONG_NODE_ID: &str = "7a9f3c2e-0d1b-4c5a-9e8f-000000000003";

/// Hostcalls ngx_wasm_module does not implement: calling one traps (§4.2 "NYI").
const NYI: &[&str] = &[
    "proxy_get_log_level",
    "proxy_done",
    "proxy_close_stream",
    "proxy_get_status",
    "proxy_resolve_shared_queue",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_call_foreign_function",
];

/// Metric hostcalls, NYI before Kong 3.8 (§3.1, §4.2).
const METRIC_CALLS: &[&str] = &[
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
];

impl Rules for Kong {
    /// "`eof` is always `false` in the header callbacks" (§4.1, PR #514).
    fn header_eof(&self, _end_of_stream: bool) -> bool {
        false
    }

    /// Wall clock at millisecond resolution (§4.10).
    fn wall_time_ns(&self, unix_ns: u64) -> u64 {
        unix_ns / 1_000_000 * 1_000_000
    }

    fn clock_resolution_ns(&self) -> u64 {
        1_000_000
    }

    /// nginx runs the log phase, then a "done" phase (§4.1 "Order").
    fn end_order(&self) -> [Phase; 2] {
        [Phase::Log, Phase::Done]
    }

    /// "calls `on_http_request_body(len, eof=true)` once" (§4.8).
    fn request_body_whole(&self) -> bool {
        true
    }

    /// Allowed in `on_request_headers`, `on_request_body`, `on_tick`, `on_http_call_response`;
    /// elsewhere the call traps with ngx_wasm_module's message (§4.3, §7 first pitfall).
    fn dispatch_phase(&self, phase: Phase) -> Result<(), Abi> {
        match phase {
            Phase::RequestHeaders | Phase::RequestBody | Phase::Tick | Phase::HttpCallResponse => {
                Ok(())
            }
            _ => Err(Abi::Trap(DISPATCH_PHASE_TRAP.to_string())),
        }
    }

    /// Upstream is `host[:port]` (IP or name; port 80, or 443 with `:scheme: https`);
    /// `:method` and `:path` are required; `:authority` sets Host (without it Host is empty,
    /// here the upstream); `:scheme: https` asks for TLS (§4.4 "Upstream argument", "Headers").
    fn dispatch_target(
        &self,
        opts: &HostOptions,
        upstream: &str,
        headers: &[Pair],
    ) -> Result<DispatchTarget, DispatchRefusal> {
        for required in [":method", ":path"] {
            if find_pair(headers, required.as_bytes()).is_none() {
                return Err(DispatchRefusal::MissingHeader(required));
            }
        }
        let tls = find_pair(headers, b":scheme").is_some_and(|s| s.eq_ignore_ascii_case(b"https"));
        let (host, port) = split_host_port(upstream, if tls { 443 } else { 80 })?;
        let addr = if let Ok(ip) = host.parse::<IpAddr>() {
            Some(SocketAddr::new(ip, port))
        } else if host.eq_ignore_ascii_case("localhost") {
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        } else {
            opts.kong_hosts
                .get(host)
                .map(|ip| SocketAddr::new(*ip, port))
        };
        let host_header = find_pair(headers, b":authority")
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_else(|| upstream.to_string());
        Ok(DispatchTarget {
            addr,
            tls,
            host_header,
        })
    }

    /// In an HTTP context a synchronous failure is a trap and the client gets 500; in the tick
    /// context it is only logged and the hostcall returns an error status (§4.4 "Failures").
    /// Responses to tick dispatches reach the root context on the tick's fake request, so a
    /// root context counts as the tick context.
    fn dispatch_refused(&self, phase: Phase, in_root: bool, why: &DispatchRefusal) -> Abi {
        if phase == Phase::Tick || in_root {
            Abi::Status(Status::BadArgument)
        } else {
            Abi::Trap(format!("dispatch failed: {why}"))
        }
    }

    /// `0` falls back to the `socket_*` defaults, 60 s (§4.4 "Timeout").
    fn dispatch_timeout(&self, ms: u32, cap: Duration) -> Duration {
        let t = if ms == 0 {
            Duration::from_secs(60)
        } else {
            Duration::from_millis(u64::from(ms))
        };
        t.min(cap)
    }

    /// "`Host` and `Connection` headers set by the filter are ignored" (§4.4 "Headers").
    fn keeps_dispatch_header(&self, name: &str) -> bool {
        !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("connection")
    }

    /// A failed call has no headers (§4.4 "Failures"); a response's headers are as received.
    fn call_response_pairs(&self, outcome: &CallOutcome) -> Vec<Pair> {
        match outcome {
            Ok((headers, _)) => headers.clone(),
            Err(_) => Vec::new(),
        }
    }

    /// `get_http_call_response_header(":dispatch_status")` gives the failure reason
    /// (`timeout`, `broken connection`, ...), an ngx_wasm_module extension (§4.4 "Failures").
    fn call_response_value(&self, outcome: &CallOutcome, name: &[u8]) -> Result<Vec<u8>, Abi> {
        match outcome {
            Ok((headers, _)) => find_pair(headers, name)
                .map(<[u8]>::to_vec)
                .ok_or(Abi::Status(Status::NotFound)),
            Err(failure) if name.eq_ignore_ascii_case(b":dispatch_status") => {
                Ok(failure.kong_dispatch_status().as_bytes().to_vec())
            }
            Err(_) => Err(Abi::Status(Status::NotFound)),
        }
    }

    /// `proxy_get_status` is NYI (§4.2).
    fn call_status(&self, _outcome: Option<&CallOutcome>) -> Result<(u32, Vec<u8>), Abi> {
        Err(nyi("proxy_get_status"))
    }

    /// `get_http_request_body` only in `on_request_body` and `on_log`, else trap (§4.3).
    fn request_body_access(&self, phase: Phase) -> BodyAccess {
        match phase {
            Phase::RequestBody | Phase::Log => BodyAccess::Allowed,
            _ => BodyAccess::Trap(format!(
                "cannot get request body during \"{}\"",
                phase.export_name()
            )),
        }
    }

    /// `get_http_response_body` only in `on_response_body`, else trap (§4.3).
    fn response_body_access(&self, phase: Phase) -> BodyAccess {
        match phase {
            Phase::ResponseBody => BodyAccess::Allowed,
            _ => BodyAccess::Trap(format!(
                "cannot get response body during \"{}\"",
                phase.export_name()
            )),
        }
    }

    /// All values are strings (§4.9); `kong.*` (§3.7); `request.*`, `response.*`, `upstream.*`
    /// from a root context "segfault" in every Kong release, emulated as a trap (§3.1, §4.3);
    /// `plugin_name` is unreadable in the tick context before `fa0cd87` (§3.1), answered
    /// NotFound; `plugin_vm_id`, `node`, `xds.*` do not exist (§4.9 "Not available").
    fn property(&self, q: &PropQuery<'_>) -> PropAnswer {
        let path = q.path;
        if let Some(v) = q.opts.properties.get(path) {
            return found(v.clone());
        }
        let request_scoped = [
            "request.",
            "response.",
            "upstream.",
            "source.",
            "destination.",
        ]
        .iter()
        .any(|p| path.starts_with(p));
        if q.in_root && request_scoped {
            return Err(Abi::Trap(format!(
                "segmentation fault (emulated): request-scoped property \"{path}\" read from \
                 a root context (ngx_wasm_module before a31f6d87)"
            )));
        }
        match path {
            "plugin_name" if q.phase == Phase::Tick => return Ok(None),
            "plugin_name" => return found(q.opts.plugin_name.clone()),
            "plugin_root_id" => return found(q.root_id.to_string()),
            "ngx.hostname" => return found(q.opts.hostname.clone()),
            "kong.version" => return found(q.opts.kong_version.clone()),
            "kong.route_id" => return found(KONG_ROUTE_ID),
            "kong.service_id" => return found(KONG_SERVICE_ID),
            "kong.node.id" => return found(KONG_NODE_ID),
            "kong.route_name" => return found(q.opts.route_name.clone()),
            "kong.service_name" => return found(q.opts.cluster_name.clone()),
            "kong.nginx.subsystem" => return found("http"),
            "kong.client.protocol" => return found("http"),
            _ => {}
        }
        let Some(s) = q.stream else {
            return Ok(None);
        };
        if let Some(v) = s.properties.get(path) {
            return found(v.clone());
        }
        if let Some(v) = request_string_property(path, s) {
            return Ok(v.map(String::into_bytes));
        }
        let since_start = q.now_ns.saturating_sub(s.start_ns);
        let v = match path {
            // `request.host` is `$hostname`, the server's name (§4.9).
            "request.host" => Some(q.opts.hostname.clone()),
            "request.time" => Some(format!(
                "{}.{:03}",
                s.start_ns / 1_000_000_000,
                s.start_ns / 1_000_000 % 1000
            )),
            "request.duration" => Some(format!(
                "{}.{:03}",
                since_start / 1_000_000_000,
                since_start / 1_000_000 % 1000
            )),
            "request.size" => s.request_header("content-length"),
            "request.total_size" => Some(s.request_body_seen.len().to_string()),
            "ngx.kong_request_id" => s.request_header("x-request-id"),
            "response.code" => s.response_header(":status"),
            "response.size" => Some(s.client_body.len().to_string()),
            "response.total_size" => Some(s.client_body.len().to_string()),
            "upstream.address" if s.reached_upstream => Some(q.opts.upstream_addr.ip().to_string()),
            "upstream.port" if s.reached_upstream => Some(q.opts.upstream_addr.port().to_string()),
            "source.address" => Some(q.opts.downstream_addr.ip().to_string()),
            "source.port" => Some(q.opts.downstream_addr.port().to_string()),
            "connection.id" => Some(s.id.to_string()),
            _ => None,
        };
        Ok(v.map(String::into_bytes))
    }

    /// `ngx.*` variables are immutable (setting one traps, §4.9); `kong.ctx.shared.*` and the
    /// writable `kong.*` setters are stored (§3.7); anything else is NotFound.
    fn set_property(&self, path: &str, _in_root: bool) -> Result<(), Abi> {
        const WRITABLE: &[&str] = &[
            "kong.response.status",
            "kong.service.target",
            "kong.service.upstream",
            "kong.service.request.scheme",
        ];
        if path.starts_with("ngx.") {
            return Err(Abi::Trap(format!("variable \"{path}\" is not changeable")));
        }
        if path.starts_with("kong.ctx.shared.") || WRITABLE.contains(&path) {
            return Ok(());
        }
        Err(Abi::Status(Status::NotFound))
    }

    /// `pw:<filter>:<name>` from 3.9, `pw.<filter>.<name>` in 3.8; the prefixed name must fit
    /// 256 bytes, else trap (§4.7 "Names", "Errors that trap").
    fn metric_name(&self, opts: &HostOptions, name: &str) -> Result<String, Abi> {
        let full = if opts.kong_version_pair() >= (3, 9) {
            format!("pw:{}:{name}", opts.plugin_name)
        } else {
            format!("pw.{}.{name}", opts.plugin_name)
        };
        if full.len() > 256 {
            return Err(Abi::Trap(format!(
                "metric name too long ({} > 256 bytes)",
                full.len()
            )));
        }
        Ok(full)
    }

    /// "unknown metric type" traps (§4.7).
    fn bad_metric_type(&self) -> Abi {
        Abi::Trap("unknown metric type".to_string())
    }

    /// §4.2 NYI list; metric calls are NYI before 3.8 (§3.1).
    fn not_implemented(&self, opts: &HostOptions, hostcall: &str) -> Option<Abi> {
        let old_metrics = opts.kong_version_pair() < (3, 8) && METRIC_CALLS.contains(&hostcall);
        (NYI.contains(&hostcall) || old_metrics).then(|| nyi(hostcall))
    }

    /// Root context only, once: a second non-zero period traps "tick_period already set";
    /// `0` cancels (§4.3).
    fn tick_period(&self, in_root: bool, current: Option<u32>, period: u32) -> Result<(), Abi> {
        if !in_root {
            return Err(Abi::Trap(
                "can only set tick_period in root context".to_string(),
            ));
        }
        if period != 0 && current.is_some() {
            return Err(Abi::Trap("tick_period already set".to_string()));
        }
        Ok(())
    }

    /// Keys resolve to a `shm_kv` zone by `<zone>/` prefix, else the `*` zone; without one the
    /// call traps "could not resolve namespace" (§4.6).
    fn shared_key(&self, opts: &HostOptions, key: &[u8]) -> Result<(), Abi> {
        let zones = &opts.kong_shm_kv_zones;
        let prefixed = key
            .iter()
            .position(|&b| b == b'/')
            .map(|i| String::from_utf8_lossy(&key[..i]).into_owned())
            .is_some_and(|zone| zones.contains(&zone));
        if prefixed || zones.iter().any(|z| z == "*") {
            Ok(())
        } else {
            Err(Abi::Trap("could not resolve namespace".to_string()))
        }
    }

    /// `register_shared_queue` does not create: it traps "could not find queue" unless a
    /// `shm_queue` zone of that name is declared (§4.6).
    fn register_queue(&self, opts: &HostOptions, name: &str) -> Result<Option<usize>, Abi> {
        opts.kong_shm_queues
            .get(name)
            .map(|cap| Some(*cap))
            .ok_or_else(|| Abi::Trap(format!("could not find queue \"{name}\"")))
    }

    /// "could not enqueue (queue is full)" traps (§4.6).
    fn queue_full(&self, _name: &str) -> Abi {
        Abi::Trap("could not enqueue (queue is full)".to_string())
    }

    /// `on_queue_ready` is NYI (§4.1, §4.6).
    fn queue_ready_supported(&self) -> bool {
        false
    }

    /// A failed `on_configure` gives every request through the chain a 500 (§3.4 "Rejected
    /// configuration").
    fn configure_failed_response(&self) -> LocalResponse {
        LocalResponse {
            status: 500,
            details: "configure_failed".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            from_filter: false,
        }
    }

    /// A trap in `on_request_headers`/`on_request_body` gives the client 500; in response
    /// headers/body/log the response continues unchanged (§4.11).
    fn trap_effect(&self, _opts: &HostOptions, phase: Phase, _headers_sent: bool) -> TrapEffect {
        if phase.is_request_phase() {
            TrapEffect::Local(LocalResponse {
                status: 500,
                details: "instance_trapped".to_string(),
                headers: Vec::new(),
                body: Vec::new(),
                from_filter: false,
            })
        } else {
            TrapEffect::PassThrough
        }
    }

    /// "the next request or tick creates a new instance" (§4.11, §4.5).
    fn recycles_after_trap(&self) -> bool {
        true
    }

    fn failed_vm_response(&self, _opts: &HostOptions) -> Option<LocalResponse> {
        None
    }

    fn random_limit(&self) -> Option<usize> {
        None
    }

    fn lowercase_header_names(&self) -> bool {
        false
    }

    /// ngx_wasm_module marshals at most 100 pairs (its `t/03-proxy_wasm/hfuncs/
    /// 103-proxy_get_http_request_headers.t`, test 4).
    fn max_map_pairs(&self) -> Option<usize> {
        Some(100)
    }
}

/// Splits `host[:port]` (IPv6 as `[addr]:port`).
fn split_host_port(upstream: &str, default_port: u16) -> Result<(&str, u16), DispatchRefusal> {
    if upstream.is_empty() || upstream.starts_with("unix:") {
        return Err(DispatchRefusal::BadUpstream);
    }
    if let Some(rest) = upstream.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(DispatchRefusal::BadUpstream)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| DispatchRefusal::BadUpstream)?,
            None if after.is_empty() => default_port,
            None => return Err(DispatchRefusal::BadUpstream),
        };
        return Ok((host, port));
    }
    match upstream.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port: u16 = port.parse().map_err(|_| DispatchRefusal::BadUpstream)?;
            if host.is_empty() || port == 0 {
                return Err(DispatchRefusal::BadUpstream);
            }
            Ok((host, port))
        }
        Some(_) => Err(DispatchRefusal::BadUpstream),
        None => Ok((upstream, default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            split_host_port("127.0.0.1:8080", 80),
            Ok(("127.0.0.1", 8080))
        );
        assert_eq!(split_host_port("opik", 80), Ok(("opik", 80)));
        assert_eq!(split_host_port("[::1]:9", 80), Ok(("::1", 9)));
        assert_eq!(split_host_port("[::1]", 443), Ok(("::1", 443)));
        for bad in [
            "",
            "h:",
            "h:x",
            "h:0",
            ":80",
            "a:b:c",
            "unix:/tmp/s",
            "[::1]x",
        ] {
            assert_eq!(
                split_host_port(bad, 80),
                Err(DispatchRefusal::BadUpstream),
                "{bad}"
            );
        }
    }

    #[test]
    fn metric_prefix_follows_version() {
        let mut o = HostOptions::new(super::super::Personality::Kong, "");
        assert_eq!(
            Kong.metric_name(&o, "x").ok(),
            Some("pw:llm_tracer:x".into())
        );
        o.kong_version = "3.8.0".into();
        assert_eq!(
            Kong.metric_name(&o, "x").ok(),
            Some("pw.llm_tracer.x".into())
        );
        o.kong_version = "3.7.1".into();
        assert!(Kong.not_implemented(&o, "proxy_define_metric").is_some());
    }
}
