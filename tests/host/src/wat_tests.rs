//! Tests of the host against small WAT guests: ABI edge cases (untrusted pointers, map
//! formats, unknown imports) and the personality rules, independent of the real filter.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::abi::codec::encode_map;
use crate::http;
use crate::personality::kong::DISPATCH_PHASE_TRAP;
use crate::{
    CalloutFailure, CalloutResult, Chunking, ClockMode, Exchange, Host, HostError, HostOptions,
    MetricValue, Personality, WasmModule,
};

/// Result slots the guests write to: slot `i` is the `u32` at `0x100 + 4 i`.
const SLOTS: u32 = 0x100;
/// Out-parameters: data pointer at 0x200, size at 0x204, cas/extra at 0x208.
const RET: u32 = 0x200;
const UPSTREAM: u32 = 0x1000;
const TRAILERS: u32 = 0x10f0;
const HEADERS: u32 = 0x1100;
const TEXT: u32 = 0x3000;

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A guest with the common imports, a bump allocator, and `body` (callbacks and data).
fn guest_wat(body: &str) -> String {
    format!(
        r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment_metric (param i32 i64) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local_response
    (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 0x8000))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap)
      (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func $slot (param $i i32) (param $v i32)
    (i32.store (i32.add (i32.const {SLOTS}) (i32.shl (local.get $i) (i32.const 2))) (local.get $v)))
  (func $bump (param $i i32)
    (call $slot (local.get $i)
      (i32.add (i32.load (i32.add (i32.const {SLOTS}) (i32.shl (local.get $i) (i32.const 2))))
               (i32.const 1))))
  (data (i32.const {TRAILERS}) "\00\00\00\00")
{body}
)"#
    )
}

fn module(body: &str) -> WasmModule {
    WasmModule::from_bytes(guest_wat(body).as_bytes()).expect("test guest compiles")
}

/// Data segments for a dispatch to `upstream` with `headers`.
fn dispatch_data(upstream: &str, headers: &[(&str, &str)]) -> String {
    format!(
        "(data (i32.const {UPSTREAM}) \"{}\")\n(data (i32.const {HEADERS}) \"{}\")",
        escape(upstream.as_bytes()),
        escape(&encode_map(headers)),
    )
}

/// Instructions dispatching with the data of [`dispatch_data`]; the status goes to `slot`,
/// the token to slot `slot + 1`.
fn dispatch_call(upstream: &str, headers: &[(&str, &str)], timeout_ms: u32, slot: u32) -> String {
    let up_len = upstream.len();
    let hdr_len = encode_map(headers).len();
    format!(
        "(call $slot (i32.const {slot}) (call $http_call (i32.const {UPSTREAM}) (i32.const {up_len}) \
         (i32.const {HEADERS}) (i32.const {hdr_len}) (i32.const 0) (i32.const 0) \
         (i32.const {TRAILERS}) (i32.const 4) (i32.const {timeout_ms}) (i32.const {RET}))) \
         (call $slot (i32.const {}) (i32.load (i32.const {RET})))",
        slot + 1
    )
}

fn slot(host: &Host, i: u32) -> u32 {
    read_u32(host, SLOTS + 4 * i)
}

fn read_u32(host: &Host, at: u32) -> u32 {
    let mem = host.ex.as_ref().expect("instance").memory;
    let data = mem.data(&host.store);
    let at = at as usize;
    u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

fn read_bytes(host: &Host, ptr: u32, len: u32) -> Vec<u8> {
    let mem = host.ex.as_ref().expect("instance").memory;
    mem.data(&host.store)[ptr as usize..(ptr + len) as usize].to_vec()
}

fn opts(p: Personality) -> HostOptions {
    HostOptions::new(p, b"{}".to_vec())
}

fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

const FULL_HEADERS: &[(&str, &str)] = &[
    (":method", "POST"),
    (":path", "/ingest"),
    (":authority", "collector"),
];

#[test]
fn unknown_import_is_named() {
    let wat = r#"(module
        (import "env" "proxy_frobnicate" (func (param i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 8)))"#;
    match WasmModule::from_bytes(wat.as_bytes()) {
        Err(HostError::UnknownImport { module, name }) => {
            assert_eq!(
                (module.as_str(), name.as_str()),
                ("env", "proxy_frobnicate")
            );
        }
        other => panic!("expected UnknownImport, got {other:?}"),
    }
}

#[test]
fn wrong_import_signature_is_named() {
    let wat = r#"(module
        (import "env" "proxy_log" (func (param i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 8)))"#;
    match WasmModule::from_bytes(wat.as_bytes()) {
        Err(HostError::ImportSignature { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "proxy_log"));
        }
        other => panic!("expected ImportSignature, got {other:?}"),
    }
}

#[test]
fn module_without_abi_marker_is_refused() {
    let wat = r#"(module (memory (export "memory") 1))"#;
    assert!(matches!(
        WasmModule::from_bytes(wat.as_bytes()),
        Err(HostError::UnsupportedAbi)
    ));
}

#[test]
fn untrusted_pointers_return_bad_argument_or_fault() {
    let m = module(&format!(
        r#"(data (i32.const {TEXT}) "hello")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          ;; message past the end of memory, and a length that overflows the address
          (call $slot (i32.const 0) (call $log (i32.const 2) (i32.const 0x1fff0) (i32.const 100)))
          (call $slot (i32.const 1) (call $log (i32.const 2) (i32.const {TEXT}) (i32.const -1)))
          ;; out-pointer past the end
          (call $slot (i32.const 2) (call $now (i32.const 0x1fffc)))
          ;; return pointers past the end: nothing may be allocated or written
          (call $slot (i32.const 3) (call $get_buffer (i32.const 6) (i32.const 0) (i32.const 100)
              (i32.const -1) (i32.const {RET})))
          ;; bad log level
          (call $slot (i32.const 4) (call $log (i32.const 9) (i32.const {TEXT}) (i32.const 5)))
          ;; WASI: an iovec array outside memory is FAULT (21)
          (call $slot (i32.const 5) (call $fd_write (i32.const 1) (i32.const 0x1fffc) (i32.const 2) (i32.const {RET})))
          ;; a good call still works
          (call $slot (i32.const 6) (call $log (i32.const 2) (i32.const {TEXT}) (i32.const 5)))
          (i32.const 1))"#
    ));
    let mut o = opts(Personality::Envoy);
    o.vm_config = b"vm-config".to_vec();
    let host = Host::new(&m, o).expect("host");
    assert_eq!(
        (0..7).map(|i| slot(&host, i)).collect::<Vec<_>>(),
        vec![2, 2, 2, 2, 2, 21, 0]
    );
    let logs = host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "hello");
}

#[test]
fn header_maps_round_trip_through_guest_memory() {
    // The guest reads the request headers as a serialized map; the host's decoder must read
    // back what its encoder wrote.
    let m = module(&format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $slot (i32.const 0) (call $get_pairs (i32.const 0) (i32.const {RET}) (i32.const 0x204)))
          (call $slot (i32.const 1) (local.get 1))
          (i32.const 0))"#
    ));
    for p in [Personality::Kong, Personality::Envoy] {
        let mut host = Host::new(&m, opts(p)).expect("host");
        let headers = [
            (":method", "GET"),
            (":path", "/x"),
            ("x-a", "1"),
            ("x-b", ""),
        ];
        host.begin(&headers, true);
        assert_eq!(slot(&host, 0), 0);
        assert_eq!(slot(&host, 1), 4);
        let bytes = read_bytes(&host, read_u32(&host, RET), read_u32(&host, 0x204));
        let decoded = crate::abi::codec::decode_map(&bytes).expect("valid map");
        assert_eq!(decoded, crate::state::pairs_from_strs(&headers));
    }
}

#[test]
fn kong_marshals_at_most_100_header_pairs() {
    let m = module(&format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $slot (i32.const 0) (call $get_pairs (i32.const 0) (i32.const {RET}) (i32.const 0x204)))
          (i32.const 0))"#
    ));
    let names: Vec<String> = (0..120).map(|i| format!("x-h{i}")).collect();
    let mut headers = vec![(":method", "GET"), (":path", "/x")];
    headers.extend(names.iter().map(|n| (n.as_str(), "v")));
    for (p, expected) in [(Personality::Kong, 100), (Personality::Envoy, 122)] {
        let mut host = Host::new(&m, opts(p)).expect("host");
        host.begin(&headers, true);
        assert_eq!(slot(&host, 0), 0);
        let bytes = read_bytes(&host, read_u32(&host, RET), read_u32(&host, 0x204));
        let decoded = crate::abi::codec::decode_map(&bytes).expect("valid map");
        assert_eq!(
            decoded,
            crate::state::pairs_from_strs(&headers[..expected]),
            "{p:?}"
        );
    }
}

/// A guest that dispatches from `on_http_response_headers`.
fn response_dispatcher(upstream: &str) -> WasmModule {
    module(&format!(
        r#"{}
        (data (i32.const {TEXT}) "vm_start")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $log (i32.const 2) (i32.const {TEXT}) (i32.const 8)))
          (i32.const 1))
        (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
          {}
          (i32.const 0))"#,
        dispatch_data(upstream, FULL_HEADERS),
        dispatch_call(upstream, FULL_HEADERS, 1000, 0),
    ))
}

#[test]
fn kong_dispatch_in_response_phase_traps_and_response_passes() {
    let m = response_dispatcher("127.0.0.1:9");
    let mut host = Host::new(&m, opts(Personality::Kong)).expect("host");
    let ex = Exchange::new("POST", "/v1/chat/completions")
        .response(200, &[("content-type", "application/json")])
        .response_body(b"{\"ok\":true}".to_vec(), Chunking::Whole);
    let out = host.exchange(&ex);
    // "in response headers/body/log: the response continues unchanged" (hosts.md §4.11).
    assert_eq!(out.client_status, 200);
    assert_eq!(out.client_body, b"{\"ok\":true}");
    assert!(out
        .trap
        .as_deref()
        .is_some_and(|t| t.contains(DISPATCH_PHASE_TRAP)));
    assert!(host.traps()[0].starts_with("proxy_on_response_headers: can only send HTTP dispatch"));
    let calls = host.callouts();
    assert_eq!(
        calls[0].result,
        CalloutResult::Rejected {
            status: 0,
            trapped: true
        }
    );
    assert!(!host.is_running());
    // The next request runs on a fresh instance: on_vm_start ran again.
    let out2 = host.exchange(&ex);
    assert_eq!(out2.client_status, 200);
    let starts = host
        .logs()
        .iter()
        .filter(|l| l.message == "vm_start")
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn envoy_allows_dispatch_in_response_phase_to_known_cluster() {
    let server = http::serve(TcpListener::bind("127.0.0.1:0").expect("bind"), |_r, w| {
        let _ = w.full(200, &[], b"ok");
    });
    let m = response_dispatcher("collector");
    let o = opts(Personality::Envoy).with_cluster("collector", server.addr);
    let mut host = Host::new(&m, o).expect("host");
    let out = host.exchange(&Exchange::new("GET", "/"));
    assert_eq!(out.trap, None);
    assert_eq!(out.client_status, 200);
    let calls = host.callouts();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].phase, crate::Phase::ResponseHeaders);
    // The stream ended before the response: Envoy cancels the call (hosts.md §5.2).
    assert_eq!(
        calls[0].result,
        CalloutResult::Failed(CalloutFailure::Cancelled)
    );
}

#[test]
fn envoy_dispatch_requires_cluster_and_pseudo_headers() {
    let no_authority: &[(&str, &str)] = &[(":method", "POST"), (":path", "/x")];
    let wat = format!(
        r#"(data (i32.const {UPSTREAM}) "collectornope")
        (data (i32.const {HEADERS}) "{full}")
        (data (i32.const 0x1400) "{partial}")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $set_tick (i32.const 1000))) (i32.const 1))
        (func (export "proxy_on_tick") (param i32)
          ;; unknown cluster "nope"
          (call $slot (i32.const 0) (call $http_call (i32.const 0x1009) (i32.const 4)
             (i32.const {HEADERS}) (i32.const {full_len}) (i32.const 0) (i32.const 0)
             (i32.const {TRAILERS}) (i32.const 4) (i32.const 100) (i32.const {RET})))
          ;; known cluster, no :authority
          (call $slot (i32.const 1) (call $http_call (i32.const {UPSTREAM}) (i32.const 9)
             (i32.const 0x1400) (i32.const {partial_len}) (i32.const 0) (i32.const 0)
             (i32.const {TRAILERS}) (i32.const 4) (i32.const 100) (i32.const {RET})))
          ;; all good
          (call $slot (i32.const 2) (call $http_call (i32.const {UPSTREAM}) (i32.const 9)
             (i32.const {HEADERS}) (i32.const {full_len}) (i32.const 0) (i32.const 0)
             (i32.const {TRAILERS}) (i32.const 4) (i32.const 100) (i32.const {RET}))))"#,
        full = escape(&encode_map(FULL_HEADERS)),
        full_len = encode_map(FULL_HEADERS).len(),
        partial = escape(&encode_map(no_authority)),
        partial_len = encode_map(no_authority).len(),
    );
    let m = module(&wat);
    let o = opts(Personality::Envoy).with_cluster("collector", refused_addr());
    let mut host = Host::new(&m, o).expect("host");
    host.tick();
    assert_eq!((slot(&host, 0), slot(&host, 1), slot(&host, 2)), (2, 2, 0));
    let calls = host.callouts();
    assert_eq!(calls.len(), 3);
    assert!(matches!(
        calls[0].result,
        CalloutResult::Rejected {
            status: 2,
            trapped: false
        }
    ));
    assert!(matches!(
        calls[1].result,
        CalloutResult::Rejected {
            status: 2,
            trapped: false
        }
    ));
}

/// A guest that dispatches from `on_tick` and records what `on_http_call_response` sees:
/// slot 2 = num_headers, 3 = body size, 4 = status of reading `header`, 5/6 = its ptr/len,
/// 7 = status of reading the body, 8 = calls.
fn tick_dispatcher(upstream: &str, timeout_ms: u32, header: &str) -> WasmModule {
    module(&format!(
        r#"{data}
        (data (i32.const {TEXT}) "{header}")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $set_tick (i32.const 1000))) (i32.const 1))
        (func (export "proxy_on_tick") (param i32) {call})
        (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
          (call $bump (i32.const 8))
          (call $slot (i32.const 2) (local.get 2))
          (call $slot (i32.const 3) (local.get 3))
          (call $slot (i32.const 4) (call $get_header (i32.const 6) (i32.const {TEXT})
             (i32.const {hlen}) (i32.const {RET}) (i32.const 0x204)))
          (call $slot (i32.const 5) (i32.load (i32.const {RET})))
          (call $slot (i32.const 6) (i32.load (i32.const 0x204)))
          (call $slot (i32.const 7) (call $get_buffer (i32.const 4) (i32.const 0) (local.get 3)
             (i32.const 0x208) (i32.const 0x20c))))"#,
        data = dispatch_data(upstream, FULL_HEADERS),
        call = dispatch_call(upstream, FULL_HEADERS, timeout_ms, 0),
        header = header,
        hlen = header.len(),
    ))
}

#[test]
fn failed_callout_envoy_zero_headers_and_bad_argument_status() {
    let m = tick_dispatcher("collector", 500, ":status");
    let o = opts(Personality::Envoy).with_cluster("collector", refused_addr());
    let mut host = Host::new(&m, o).expect("host");
    host.tick();
    assert_eq!(slot(&host, 0), 0, "dispatch accepted");
    assert_eq!(host.pump(Duration::from_secs(5)), 1);
    assert_eq!(slot(&host, 8), 1, "on_http_call_response ran once");
    assert_eq!(
        (slot(&host, 2), slot(&host, 3)),
        (0, 0),
        "zero headers, empty body"
    );
    // Reading `:status` of a failed call: BadArgument, which panics the Rust SDK (§5.2).
    assert_eq!(slot(&host, 4), 2);
    assert_eq!(
        host.callouts()[0].result,
        CalloutResult::Failed(CalloutFailure::Refused)
    );
}

#[test]
fn failed_callout_kong_zero_headers_and_dispatch_status() {
    let up = refused_addr().to_string();
    let m = tick_dispatcher(&up, 500, ":dispatch_status");
    let mut host = Host::new(&m, opts(Personality::Kong)).expect("host");
    host.tick();
    assert_eq!(slot(&host, 0), 0);
    host.pump(Duration::from_secs(5));
    assert_eq!((slot(&host, 2), slot(&host, 3)), (0, 0));
    assert_eq!(slot(&host, 4), 0, "`:dispatch_status` readable");
    let value = read_bytes(&host, slot(&host, 5), slot(&host, 6));
    assert_eq!(value, b"broken connection");
}

#[test]
fn callout_timeout_is_real() {
    let server = http::serve(TcpListener::bind("127.0.0.1:0").expect("bind"), |_r, w| {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = w.full(200, &[], b"late");
    });
    let up = server.addr.to_string();
    let m = tick_dispatcher(&up, 100, ":dispatch_status");
    let mut host = Host::new(&m, opts(Personality::Kong)).expect("host");
    host.tick();
    assert_eq!(host.pending_callouts(), 1);
    host.pump(Duration::from_secs(5));
    assert_eq!(host.pending_callouts(), 0);
    assert_eq!(
        host.callouts()[0].result,
        CalloutResult::Failed(CalloutFailure::Timeout)
    );
    assert_eq!(
        read_bytes(&host, slot(&host, 5), slot(&host, 6)),
        b"timeout"
    );
}

#[test]
fn successful_callout_delivers_headers_and_body() {
    let server = http::serve(TcpListener::bind("127.0.0.1:0").expect("bind"), |req, w| {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/ingest");
        assert_eq!(req.header("host"), Some("collector"));
        let _ = w.full(201, &[("x-reply", "yes")], b"created");
    });
    for p in [Personality::Kong, Personality::Envoy] {
        let up = match p {
            Personality::Kong => server.addr.to_string(),
            Personality::Envoy => "collector".to_string(),
        };
        let m = tick_dispatcher(&up, 2000, ":status");
        let o = opts(p).with_cluster("collector", server.addr);
        let mut host = Host::new(&m, o).expect("host");
        host.tick();
        host.pump(Duration::from_secs(5));
        assert_eq!(slot(&host, 3), 7, "{p}: body size");
        assert!(slot(&host, 2) >= 2, "{p}: :status + headers");
        assert_eq!(read_bytes(&host, slot(&host, 5), slot(&host, 6)), b"201");
        assert_eq!(slot(&host, 7), 0);
        let body = read_bytes(&host, read_u32(&host, 0x208), read_u32(&host, 0x20c));
        assert_eq!(body, b"created");
        let call = &host.callouts()[0];
        assert!(call.delivered);
        assert!(
            matches!(&call.result, CalloutResult::Response { status: 201, body, .. } if body == b"created")
        );
    }
}

#[test]
fn kong_missing_method_in_tick_returns_status_and_in_request_traps() {
    let headers: &[(&str, &str)] = &[(":path", "/x"), (":authority", "c")];
    let m = module(&format!(
        r#"{data}
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $set_tick (i32.const 1000))) (i32.const 1))
        (func (export "proxy_on_tick") (param i32) {call})
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          {call} (i32.const 0))"#,
        data = dispatch_data("127.0.0.1:9", headers),
        call = dispatch_call("127.0.0.1:9", headers, 100, 0),
    ));
    let mut host = Host::new(&m, opts(Personality::Kong)).expect("host");
    host.tick();
    assert_eq!(slot(&host, 0), 2, "tick: error status, no trap");
    assert!(host.traps().is_empty());
    let out = host.exchange(&Exchange::new("GET", "/"));
    assert_eq!(out.client_status, 500);
    assert!(!out.reached_upstream);
    assert!(host.traps()[0].contains("no :method"));
}

/// Records body callbacks: slot 0 = calls, 1 = last size, 2 = last eof, 3 = eof=true calls,
/// 4 = status of reading the request body, 5 = its length.
fn body_recorder(callback: &str, buffer: u32) -> WasmModule {
    module(&format!(
        r#"(func (export "{callback}") (param i32 i32 i32) (result i32)
          (call $bump (i32.const 0))
          (call $slot (i32.const 1) (local.get 1))
          (call $slot (i32.const 2) (local.get 2))
          (if (local.get 2) (then (call $bump (i32.const 3))))
          (call $slot (i32.const 4) (call $get_buffer (i32.const {buffer}) (i32.const 0)
             (local.get 1) (i32.const {RET}) (i32.const 0x204)))
          (call $slot (i32.const 5) (i32.load (i32.const 0x204)))
          (i32.const 0))"#
    ))
}

#[test]
fn request_body_delivery_per_personality() {
    let m = body_recorder("proxy_on_request_body", 0);
    let ex = Exchange::new("POST", "/v1/chat/completions")
        .request_body(vec![b'x'; 100], Chunking::Fixed(30));
    // Kong: once, whole, eof=true (hosts.md §4.8).
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let out = kong.exchange(&ex);
    assert_eq!(
        (slot(&kong, 0), slot(&kong, 1), slot(&kong, 2)),
        (1, 100, 1)
    );
    assert_eq!((slot(&kong, 4), slot(&kong, 5)), (0, 100));
    assert_eq!(out.upstream_body.len(), 100);
    // Envoy: per frame, eof on the last (§5.6).
    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    let out = envoy.exchange(&ex);
    assert_eq!(
        (slot(&envoy, 0), slot(&envoy, 1), slot(&envoy, 3)),
        (4, 10, 1)
    );
    assert_eq!(out.upstream_body.len(), 100);
    // No body: no call on either.
    for p in [Personality::Kong, Personality::Envoy] {
        let mut h = Host::new(&m, opts(p)).expect("host");
        h.exchange(&Exchange::new("GET", "/"));
        assert_eq!(slot(&h, 0), 0, "{p}");
    }
}

#[test]
fn kong_body_over_client_buffer_is_unreadable() {
    let m = body_recorder("proxy_on_request_body", 0);
    let mut o = opts(Personality::Kong);
    o.client_body_buffer_size = Some(64);
    let mut host = Host::new(&m, o).expect("host");
    let out =
        host.exchange(&Exchange::new("POST", "/").request_body(vec![b'y'; 65], Chunking::Whole));
    assert_eq!(slot(&host, 4), 1, "NotFound");
    assert_eq!(out.upstream_body.len(), 65, "still proxied");
}

#[test]
fn response_body_delivery_per_personality() {
    let m = body_recorder("proxy_on_response_body", 1);
    let sse = b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n".to_vec();
    let chunked = Exchange::new("POST", "/")
        .response(200, &[("content-type", "text/event-stream")])
        .response_body(sse.clone(), Chunking::Fixed(9));
    // Kong, no content-length: per chunk eof=false, then a 0-byte eof=true call (§4.8).
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let out = kong.exchange(&chunked);
    assert_eq!(out.client_body, sse);
    let chunks = sse.len().div_ceil(9) as u32;
    assert_eq!(
        (slot(&kong, 0), slot(&kong, 1), slot(&kong, 3)),
        (chunks + 1, 0, 1)
    );
    // Kong with content-length: eof on the chunk that reaches it, no extra call.
    let len = sse.len().to_string();
    let sized = Exchange::new("POST", "/")
        .response(200, &[("content-length", &len)])
        .response_body(sse.clone(), Chunking::Fixed(9));
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    kong.exchange(&sized);
    assert_eq!((slot(&kong, 0), slot(&kong, 3)), (chunks, 1));
    assert_eq!(slot(&kong, 1), (sse.len() % 9) as u32);
    // Envoy: frames as given.
    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    let out = envoy.exchange(&chunked);
    assert_eq!(out.client_body, sse);
    assert_eq!((slot(&envoy, 0), slot(&envoy, 3)), (chunks, 1));
}

#[test]
fn kong_response_body_read_outside_its_phase_traps() {
    let m = module(&format!(
        r#"(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
          (drop (call $get_buffer (i32.const 1) (i32.const 0) (i32.const 10) (i32.const {RET}) (i32.const 0x204)))
          (i32.const 0))"#
    ));
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let ex = Exchange::new("GET", "/").response_body(b"abc".to_vec(), Chunking::Whole);
    let out = kong.exchange(&ex);
    assert!(out.trap.is_some());
    assert_eq!(out.client_body, b"abc", "response passes unchanged");
    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    let out = envoy.exchange(&ex);
    assert_eq!(out.trap, None, "Envoy: NotFound, no trap");
}

#[test]
fn pause_on_response_body_is_recorded() {
    let m = module(
        r#"(func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
          (i32.xor (local.get 2) (i32.const 1)))"#,
    );
    let ex = Exchange::new("GET", "/").response_body(vec![b'z'; 50], Chunking::Fixed(10));
    for p in [Personality::Kong, Personality::Envoy] {
        let mut host = Host::new(&m, opts(p)).expect("host");
        let out = host.exchange(&ex);
        assert!(out.paused_response, "{p}");
        assert_eq!(out.client_body.len(), 50, "{p}: buffered then released");
    }
}

#[test]
fn tick_period_twice_traps_on_kong_only() {
    let m = module(
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (call $set_tick (i32.const 100)))
          (drop (call $set_tick (i32.const 200)))
          (i32.const 1))"#,
    );
    match Host::new(&m, opts(Personality::Kong)) {
        Err(HostError::StartupTrap { callback, message }) => {
            assert_eq!(callback, "proxy_on_configure");
            assert_eq!(message, "tick_period already set");
        }
        other => panic!("expected a startup trap, got {other:?}"),
    }
    let envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    assert_eq!(envoy.tick_period_ms(), Some(200));
}

#[test]
fn failed_configure_per_personality() {
    let m = module(
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    assert!(matches!(
        Host::new(&m, opts(Personality::Envoy)),
        Err(HostError::ConfigurationRejected {
            callback: "proxy_on_configure"
        })
    ));
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    assert!(!kong.configured());
    let out = kong.exchange(&Exchange::new("GET", "/"));
    assert_eq!(out.client_status, 500);
    assert!(!out.reached_upstream);
}

#[test]
fn trap_policies() {
    // Traps when the request has 5 headers (the 4 pseudo-headers plus `x-boom`).
    let m = module(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (if (i32.eq (local.get 1) (i32.const 5)) (then unreachable))
          (i32.const 0))"#,
    );
    let boom = Exchange::new("GET", "/")
        .request_header("x-boom", "1")
        .response_body(b"ok".to_vec(), Chunking::Whole);
    let fine = Exchange::new("GET", "/").response_body(b"ok".to_vec(), Chunking::Whole);
    // Kong: 500 for the trapping request, then a fresh instance serves the next (§4.11).
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let first = kong.exchange(&boom);
    assert_eq!((first.client_status, first.reached_upstream), (500, false));
    assert!(first.trap.is_some());
    let second = kong.exchange(&fine);
    assert_eq!(
        (second.client_status, second.client_body.as_slice()),
        (200, &b"ok"[..])
    );
    assert!(kong.is_running());
    // Envoy fail-closed: 503 wasm_fail_stream for the trapping request and every later one.
    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    let first = envoy.exchange(&boom);
    assert_eq!(first.client_status, 503);
    let later = envoy.exchange(&fine);
    assert_eq!(later.client_status, 503);
    assert_eq!(
        later.local_response.as_ref().map(|l| l.details.as_str()),
        Some("wasm_fail_stream")
    );
    assert!(!later.reached_upstream);
    // Envoy fail-open: the filter is skipped.
    let mut o = opts(Personality::Envoy);
    o.fail_open = true;
    let mut open = Host::new(&m, o).expect("host");
    let first = open.exchange(&boom);
    assert_eq!((first.client_status, first.reached_upstream), (200, true));
    let later = open.exchange(&fine);
    assert_eq!(
        (later.client_status, later.client_body.as_slice()),
        (200, &b"ok"[..])
    );
}

#[test]
fn properties_per_personality() {
    let m = module(&format!(
        r#"(data (i32.const {TEXT}) "response.code")
        (data (i32.const 0x3100) "request.path")
        (func (export "proxy_on_log") (param i32)
          (call $slot (i32.const 0) (call $get_property (i32.const {TEXT}) (i32.const 13)
             (i32.const {RET}) (i32.const 0x204)))
          (call $slot (i32.const 1) (i32.load (i32.const {RET})))
          (call $slot (i32.const 2) (i32.load (i32.const 0x204))))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $set_tick (i32.const 1000))) (i32.const 1))
        (func (export "proxy_on_tick") (param i32)
          (drop (call $get_property (i32.const 0x3100) (i32.const 12) (i32.const {RET}) (i32.const 0x204))))"#
    ));
    let ex = Exchange::new("GET", "/v1/models").response(201, &[]);
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    kong.exchange(&ex);
    assert_eq!(slot(&kong, 0), 0);
    assert_eq!(read_bytes(&kong, slot(&kong, 1), slot(&kong, 2)), b"201");
    // Request-scoped property from the root context: "segfault" (trap) on Kong.
    kong.tick();
    assert!(kong
        .traps()
        .iter()
        .any(|t| t.contains("request-scoped property")));

    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    envoy.exchange(&ex);
    assert_eq!(slot(&envoy, 0), 0);
    assert_eq!(
        read_bytes(&envoy, slot(&envoy, 1), slot(&envoy, 2)),
        201i64.to_le_bytes().to_vec()
    );
    envoy.tick();
    assert!(envoy.traps().is_empty(), "NotFound on Envoy");
}

#[test]
fn metric_names_per_personality() {
    let m = module(&format!(
        r#"(data (i32.const {TEXT}) "requests_total")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (call $define_metric (i32.const 0) (i32.const {TEXT}) (i32.const 14) (i32.const {RET})))
          (drop (call $increment_metric (i32.load (i32.const {RET})) (i64.const 3)))
          (call $slot (i32.const 0) (call $increment_metric (i32.load (i32.const {RET})) (i64.const -1)))
          (i32.const 1))"#
    ));
    let kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    assert_eq!(kong.metric("requests_total"), Some(3));
    assert_eq!(
        kong.metrics().get("pw:llm_tracer:requests_total"),
        Some(&MetricValue::Counter(3))
    );
    assert_eq!(slot(&kong, 0), 2, "counters cannot decrease");
    let envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    assert!(envoy.metrics().contains_key("wasmcustom.requests_total"));
    let mut old = opts(Personality::Kong);
    old.kong_version = "3.7.1".into();
    assert!(matches!(
        Host::new(&m, old),
        Err(HostError::StartupTrap { .. })
    ));
}

#[test]
fn clock_and_random_are_controlled() {
    let m = module(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (drop (call $now (i32.const 0x300)))
          (drop (call $random_get (i32.const 0x310) (i32.const 16)))
          (i32.const 0))"#,
    );
    let manual = ClockMode::Manual {
        start_unix_ms: 1_700_000_000_123,
    };
    let run = |p: Personality, seed: u64| {
        let mut o = opts(p);
        o.clock = manual;
        o.seed = seed;
        let mut h = Host::new(&m, o).expect("host");
        h.advance_ms(1);
        h.store
            .data_mut()
            .rec
            .clock
            .advance(Duration::from_nanos(456));
        h.begin(&[(":method", "GET"), (":path", "/")], true);
        let t = u64::from(read_u32(&h, 0x300)) | (u64::from(read_u32(&h, 0x304)) << 32);
        (t, read_bytes(&h, 0x310, 16))
    };
    let (kong_t, kong_r) = run(Personality::Kong, 7);
    let (envoy_t, envoy_r) = run(Personality::Envoy, 7);
    assert_eq!(
        kong_t, 1_700_000_000_124_000_000,
        "Kong: millisecond resolution"
    );
    assert_eq!(envoy_t, 1_700_000_000_124_000_456, "Envoy: nanoseconds");
    assert_eq!(kong_r, envoy_r, "same seed, same bytes");
    assert_ne!(run(Personality::Kong, 8).1, kong_r);
}

#[test]
fn envoy_request_pause_buffers_until_end_and_enforces_the_limit() {
    // The portable pattern: Pause until end_of_stream, then read everything and Continue.
    let m = module(
        r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
          (call $bump (i32.const 0))
          (call $slot (i32.const 1) (local.get 1))
          (i32.eqz (local.get 2)))"#,
    );
    let ex = Exchange::new("POST", "/").request_body(vec![b'q'; 100], Chunking::Fixed(30));
    let mut envoy = Host::new(&m, opts(Personality::Envoy)).expect("host");
    let out = envoy.exchange(&ex);
    assert_eq!(
        (slot(&envoy, 0), slot(&envoy, 1)),
        (4, 100),
        "sizes grow to the whole body"
    );
    assert_eq!(out.upstream_body.len(), 100);
    assert!(out.paused_request);
    assert_eq!(out.client_status, 200);

    let mut o = opts(Personality::Envoy);
    o.envoy_buffer_limit = 50;
    let mut small = Host::new(&m, o).expect("host");
    let out = small.exchange(&ex);
    assert_eq!(out.client_status, 413);
    assert!(out.upstream_body.is_empty());

    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let out = kong.exchange(&ex);
    assert_eq!((slot(&kong, 0), slot(&kong, 1)), (1, 100));
    assert_eq!(out.upstream_body.len(), 100);
}

#[test]
fn kong_request_phase_dispatch_holds_the_request_until_it_completes() {
    let server = http::serve(TcpListener::bind("127.0.0.1:0").expect("bind"), |_r, w| {
        std::thread::sleep(Duration::from_millis(50));
        let _ = w.full(200, &[], b"auth ok");
    });
    let up = server.addr.to_string();
    let m = module(&format!(
        r#"{data}
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          {call} (i32.const 1))
        (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
          (call $bump (i32.const 8)))"#,
        data = dispatch_data(&up, FULL_HEADERS),
        call = dispatch_call(&up, FULL_HEADERS, 2000, 0),
    ));
    let mut kong = Host::new(&m, opts(Personality::Kong)).expect("host");
    let id = kong.begin(&[(":method", "GET"), (":path", "/")], true);
    let before = kong.outcome(id).expect("stream");
    assert!(before.request_stalled && !before.reached_upstream, "held");
    kong.pump(Duration::from_secs(5));
    assert_eq!(slot(&kong, 8), 1);
    let after = kong.outcome(id).expect("stream");
    assert!(
        !after.request_stalled && after.reached_upstream,
        "resumed by itself"
    );
    // Envoy: Pause waits for proxy_continue_stream, which this guest never calls.
    let o = opts(Personality::Envoy).with_cluster(&up, server.addr);
    let mut envoy = Host::new(&m, o).expect("host");
    let out = envoy.exchange(&Exchange::new("GET", "/"));
    assert!(out.request_stalled && !out.reached_upstream);
}

#[test]
fn shared_data_rules() {
    let m = module(&format!(
        r#"(data (i32.const {TEXT}) "kv")
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (call $slot (i32.const 0) (call $set_shared (i32.const {TEXT}) (i32.const 1)
             (i32.const 0x3001) (i32.const 1) (i32.const 0)))
          (call $slot (i32.const 1) (call $set_shared (i32.const {TEXT}) (i32.const 1)
             (i32.const 0x3001) (i32.const 1) (i32.const 99)))
          (call $slot (i32.const 2) (call $get_shared (i32.const {TEXT}) (i32.const 1)
             (i32.const {RET}) (i32.const 0x204) (i32.const 0x208)))
          (call $slot (i32.const 3) (i32.load (i32.const 0x208)))
          (i32.const 1))"#
    ));
    // Kong without a matching shm_kv zone: "could not resolve namespace" (hosts.md §4.6).
    match Host::new(&m, opts(Personality::Kong)) {
        Err(HostError::StartupTrap { message, .. }) => {
            assert_eq!(message, "could not resolve namespace")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    let mut o = opts(Personality::Kong);
    o.kong_shm_kv_zones = vec!["*".into()];
    for o in [o, opts(Personality::Envoy)] {
        let host = Host::new(&m, o).expect("host");
        assert_eq!(
            (
                slot(&host, 0),
                slot(&host, 1),
                slot(&host, 2),
                slot(&host, 3)
            ),
            (0, 8, 0, 1)
        );
        assert_eq!(host.shared_data().get(&b"k"[..]), Some(&b"v".to_vec()));
    }
}

#[test]
fn module_is_shareable_and_hosts_are_sendable() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<WasmModule>();
    send::<Host>();
    // One module, hosts in parallel threads.
    let m = module(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))"#,
    );
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let m = m.clone();
            std::thread::spawn(move || {
                let p = if i % 2 == 0 {
                    Personality::Kong
                } else {
                    Personality::Envoy
                };
                let mut h = Host::new(&m, opts(p)).expect("host");
                h.exchange(&Exchange::new("GET", "/")).client_status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread"), 200);
    }
}

#[test]
fn a_buffer_cut_by_the_allocator_is_not_returned() {
    // The allocator is guest code: while the host serves `proxy_get_buffer_bytes` it may change
    // the very buffer being returned. When `$cut` is set, it replaces the body by one byte.
    let wat = guest_wat(&format!(
        r#"(global $cut (mut i32) (i32.const 0))
        (data (i32.const {TEXT}) "x")
        (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
          (if (global.get $cut)
            (then (call $slot (i32.const 3) (call $set_buffer (i32.const 1) (i32.const 0)
                    (i32.const 1000) (i32.const {TEXT}) (i32.const 1)))))
          (i32.const 0x9000))
        (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
          (call $slot (i32.const 0)
            (call $get_buffer (i32.const 1) (i32.const 0) (i32.const 1000) (i32.const {RET}) (i32.const 0x204)))
          (call $slot (i32.const 1) (i32.load (i32.const 0x204)))
          (global.set $cut (i32.const 1))
          (call $slot (i32.const 2)
            (call $get_buffer (i32.const 1) (i32.const 0) (i32.const 1000) (i32.const {RET}) (i32.const 0x204)))
          (global.set $cut (i32.const 0))
          (i32.const 0))"#
    ))
    .replace(
        "(func (export \"proxy_on_memory_allocate\") (param $n i32) (result i32)\n    (local $p i32)",
        "(func $bump_allocate (param $n i32) (result i32)\n    (local $p i32)",
    );
    let m = WasmModule::from_bytes(wat.as_bytes()).expect("test guest compiles");
    let mut host = Host::new(&m, opts(Personality::Envoy)).expect("host");
    host.exchange(&Exchange::new("GET", "/").response_body(b"abc".to_vec(), Chunking::Whole));
    assert_eq!(
        (slot(&host, 0), slot(&host, 1)),
        (0, 3),
        "the body as it is"
    );
    assert_eq!(slot(&host, 3), 0, "the allocator cut the body");
    assert_eq!(
        slot(&host, 2),
        10,
        "InternalFailure, not 3 bytes of a 1-byte body"
    );
}
