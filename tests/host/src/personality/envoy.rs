//! Envoy's `envoy.filters.http.wasm` (proxy-wasm-cpp-host), as described in
//! `shared/docs/hosts.md` §5.
//!
//! Every method cites the section it encodes. Envoy behaviour that shapes the request flow is
//! implemented by the host and documented at its use: bodies per frame with Pause meaning
//! StopIterationAndBuffer and the buffer limit (§5.6, `Host::request_body`,
//! `Host::response_body`), pending callouts of a destroyed stream context cancelled (§5.2,
//! `Host::end`), and fail-closed/fail-open after a trap (§5.1).

use std::time::Duration;

use super::{
    found, request_string_property, BodyAccess, DispatchRefusal, DispatchTarget, PropAnswer,
    PropQuery, Rules, TrapEffect,
};
use crate::abi::codec::{encode_map, Pair};
use crate::abi::{Abi, Status};
use crate::options::HostOptions;
use crate::state::{find_pair, CallOutcome, LocalResponse, Phase};

/// The Envoy personality.
pub(crate) struct Envoy;

/// Status details of Envoy's fail-closed local reply (§5.1).
pub const FAIL_STREAM_DETAILS: &str = "wasm_fail_stream";

fn int(v: i64) -> PropAnswer {
    found(v.to_le_bytes().to_vec())
}

impl Rules for Envoy {
    /// Envoy passes the codec's `end_stream` (a request without body has `true`).
    fn header_eof(&self, end_of_stream: bool) -> bool {
        end_of_stream
    }

    /// System time at nanosecond resolution (§5.8).
    fn wall_time_ns(&self, unix_ns: u64) -> u64 {
        unix_ns
    }

    fn clock_resolution_ns(&self) -> u64 {
        1
    }

    /// The ABI order: `on_done`, then `on_log` (spec "Context lifecycle"; §4.1 notes Kong
    /// differs).
    fn end_order(&self) -> [Phase; 2] {
        [Phase::Done, Phase::Log]
    }

    /// Bodies arrive per data frame (§5.6).
    fn request_body_whole(&self) -> bool {
        false
    }

    /// Envoy does not restrict where `dispatch_http_call` is called (§5.2 "Phases").
    fn dispatch_phase(&self, _phase: Phase) -> Result<(), Abi> {
        Ok(())
    }

    /// Upstream is a cluster name that must exist; `:path`, `:method`, `:authority` are
    /// required, else BadArgument; TLS comes from the cluster, `:scheme` does not enable it
    /// (§5.2).
    fn dispatch_target(
        &self,
        opts: &HostOptions,
        upstream: &str,
        headers: &[Pair],
    ) -> Result<DispatchTarget, DispatchRefusal> {
        let addr = opts
            .envoy_clusters
            .get(upstream)
            .copied()
            .ok_or(DispatchRefusal::UnknownCluster)?;
        for required in [":path", ":method", ":authority"] {
            if find_pair(headers, required.as_bytes()).is_none() {
                return Err(DispatchRefusal::MissingHeader(required));
            }
        }
        let host_header = find_pair(headers, b":authority")
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_default();
        Ok(DispatchTarget {
            addr: Some(addr),
            tls: false,
            host_header,
        })
    }

    /// Any synchronous refusal returns BadArgument (§5.2).
    fn dispatch_refused(&self, _phase: Phase, _in_root: bool, _why: &DispatchRefusal) -> Abi {
        Abi::Status(Status::BadArgument)
    }

    /// `timeout` in ms; `0` means none, capped here (§5.2 "Body and timeout").
    fn dispatch_timeout(&self, ms: u32, cap: Duration) -> Duration {
        if ms == 0 {
            cap
        } else {
            Duration::from_millis(u64::from(ms)).min(cap)
        }
    }

    fn keeps_dispatch_header(&self, name: &str) -> bool {
        !name.eq_ignore_ascii_case("host")
    }

    /// Envoy header maps have lowercase names; `:status` is a pseudo-header of the map.
    fn call_response_pairs(&self, outcome: &CallOutcome) -> Vec<Pair> {
        match outcome {
            Ok((headers, _)) => super::lowercased(headers, true),
            Err(_) => Vec::new(),
        }
    }

    /// A failed call has no header map at all: reading any header returns BadArgument, which
    /// makes the Rust SDK's `get_map_value` panic (§5.2 "Failure", §7).
    fn call_response_value(&self, outcome: &CallOutcome, name: &[u8]) -> Result<Vec<u8>, Abi> {
        match outcome {
            Ok((headers, _)) => find_pair(headers, name)
                .map(<[u8]>::to_vec)
                .ok_or(Abi::Status(Status::NotFound)),
            Err(_) => Err(Abi::Status(Status::BadArgument)),
        }
    }

    /// `proxy_get_status` is available (§5.2): Ok (0) for a response, BrokenConnection (11)
    /// for a failed call.
    fn call_status(&self, outcome: Option<&CallOutcome>) -> Result<(u32, Vec<u8>), Abi> {
        Ok(match outcome {
            Some(Err(f)) => (
                Status::BrokenConnection as u32,
                f.kong_dispatch_status().as_bytes().to_vec(),
            ),
            _ => (Status::Ok as u32, Vec::new()),
        })
    }

    /// The request body is readable only in the frame's callback (§5.6); NotFound elsewhere.
    fn request_body_access(&self, phase: Phase) -> BodyAccess {
        if phase == Phase::RequestBody {
            BodyAccess::Allowed
        } else {
            BodyAccess::NotAvailable
        }
    }

    /// "readable only in that frame's callback" (§8 "Response body").
    fn response_body_access(&self, phase: Phase) -> BodyAccess {
        if phase == Phase::ResponseBody {
            BodyAccess::Allowed
        } else {
            BodyAccess::NotAvailable
        }
    }

    /// Typed values: strings raw, integers as 8-byte little-endian, timestamps and durations as
    /// int64 nanoseconds, maps serialized (§5.7 "Encoding"). Response attributes only after
    /// completion (in `on_log`), request duration and sizes likewise (§5.7). `xds.*`,
    /// `plugin_name`, `plugin_root_id`, `plugin_vm_id` (§5.7); no `ngx.*` (§8 "Detect host").
    fn property(&self, q: &PropQuery<'_>) -> PropAnswer {
        let path = q.path;
        if let Some(v) = q.opts.properties.get(path) {
            return found(v.clone());
        }
        match path {
            "plugin_name" => return found(q.opts.plugin_name.clone()),
            "plugin_root_id" => return found(q.opts.root_id.clone()),
            "plugin_vm_id" => return found(q.opts.vm_id.clone()),
            "xds.route_name" | "route_name" => return found(q.opts.route_name.clone()),
            "xds.cluster_name" | "cluster_name" => return found(q.opts.cluster_name.clone()),
            _ => {}
        }
        let Some(s) = q.stream else {
            return Ok(None);
        };
        if let Some(v) = s.properties.get(path) {
            return found(v.clone());
        }
        let completed = s.end_ns.is_some() || q.phase == Phase::Log;
        match path {
            "request.host" => {
                return Ok(s.request_header(":authority").map(String::into_bytes));
            }
            "request.time" => return int(i64::try_from(s.start_ns).unwrap_or(i64::MAX)),
            "request.headers" => return found(encode_map(&s.request_headers)),
            "response.headers" if completed => return found(encode_map(&s.response_headers)),
            "request.duration" if completed => {
                let end = s.end_ns.unwrap_or(q.now_ns);
                return int(i64::try_from(end.saturating_sub(s.start_ns)).unwrap_or(i64::MAX));
            }
            "request.size" if completed => {
                return int(i64::try_from(s.request_body_seen.len()).unwrap_or(i64::MAX));
            }
            "request.total_size" if completed => {
                return int(i64::try_from(s.request_body_seen.len()).unwrap_or(i64::MAX));
            }
            "response.code" if completed => {
                return match s
                    .client_headers
                    .as_ref()
                    .and_then(|h| find_pair(h, b":status"))
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
                {
                    Some(code) => int(code),
                    None => Ok(None),
                };
            }
            "response.code_details" if completed => {
                let details = s
                    .local_response
                    .as_ref()
                    .map_or("via_upstream".to_string(), |l| l.details.clone());
                return found(details);
            }
            "response.size" | "response.total_size" if completed => {
                return int(i64::try_from(s.client_body.len()).unwrap_or(i64::MAX));
            }
            "upstream.address" if s.reached_upstream => {
                return found(q.opts.upstream_addr.to_string());
            }
            "upstream.port" if s.reached_upstream => {
                return int(i64::from(q.opts.upstream_addr.port()));
            }
            "source.address" => return found(q.opts.downstream_addr.to_string()),
            "source.port" => return int(i64::from(q.opts.downstream_addr.port())),
            "connection.id" => return int(i64::from(s.id)),
            _ => {}
        }
        if path.starts_with("response.headers.") && !completed {
            return Ok(None);
        }
        match request_string_property(path, s) {
            Some(v) => Ok(v.map(String::into_bytes)),
            None => Ok(None),
        }
    }

    /// Envoy stores filter-set properties as filter state: any path is accepted.
    fn set_property(&self, _path: &str, _in_root: bool) -> Result<(), Abi> {
        Ok(())
    }

    /// `wasmcustom.<name>`; the plugin name is not part of it (§5.5).
    fn metric_name(&self, _opts: &HostOptions, name: &str) -> Result<String, Abi> {
        Ok(format!("wasmcustom.{name}"))
    }

    fn bad_metric_type(&self) -> Abi {
        Abi::Status(Status::BadArgument)
    }

    fn not_implemented(&self, _opts: &HostOptions, _hostcall: &str) -> Option<Abi> {
        None
    }

    /// Works from `on_vm_start` and `on_configure` (§5.3); any context sets its root's period.
    fn tick_period(&self, _in_root: bool, _current: Option<u32>, _period: u32) -> Result<(), Abi> {
        Ok(())
    }

    /// Shared data is process-wide with CAS, no namespaces (§5.4).
    fn shared_key(&self, _opts: &HostOptions, _key: &[u8]) -> Result<(), Abi> {
        Ok(())
    }

    /// `registerQueue` creates or opens; the queue is unbounded (§5.4).
    fn register_queue(&self, _opts: &HostOptions, _name: &str) -> Result<Option<usize>, Abi> {
        Ok(None)
    }

    fn queue_full(&self, _name: &str) -> Abi {
        Abi::Status(Status::InternalFailure)
    }

    /// The last registrant receives `on_queue_ready` (§5.4).
    fn queue_ready_supported(&self) -> bool {
        true
    }

    /// Unused: Envoy rejects the configuration instead (§5.1 "Rejection").
    fn configure_failed_response(&self) -> LocalResponse {
        fail_stream()
    }

    /// Fail-closed: the stream gets a local 503 `wasm_fail_stream`, or is reset when response
    /// headers already went out; `fail_open: true` skips the filter (§5.1 "Fatal VM errors").
    fn trap_effect(&self, opts: &HostOptions, _phase: Phase, headers_sent: bool) -> TrapEffect {
        if opts.fail_open {
            TrapEffect::PassThrough
        } else if headers_sent {
            TrapEffect::Reset
        } else {
            TrapEffect::Local(fail_stream())
        }
    }

    /// The VM stays failed for every later request on that worker (§5.1).
    fn recycles_after_trap(&self) -> bool {
        false
    }

    fn failed_vm_response(&self, opts: &HostOptions) -> Option<LocalResponse> {
        (!opts.fail_open).then(fail_stream)
    }

    /// `random_get`: `RAND_bytes`, ≤ 64 KiB per call (§5.8).
    fn random_limit(&self) -> Option<usize> {
        Some(64 * 1024)
    }

    fn lowercase_header_names(&self) -> bool {
        true
    }

    fn max_map_pairs(&self) -> Option<usize> {
        None
    }
}

fn fail_stream() -> LocalResponse {
    LocalResponse {
        status: 503,
        details: FAIL_STREAM_DETAILS.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        from_filter: false,
    }
}
