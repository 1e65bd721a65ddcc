//! `env` hostcalls that leave the host: `proxy_http_call` (spec section "HTTP calls") and the
//! gRPC calls (section "gRPC calls"), which no emulated gateway can serve here.
//!
//! `proxy_http_call` asks the personality whether the call is allowed in this phase, where it
//! goes and which headers it needs, records every attempt in [`crate::Callout`], and launches
//! accepted calls over real HTTP ([`crate::callouts`]).

use wasmtime::Caller;

use super::memory::{check, read, write_u32};
use super::{codec, finish, Abi, Registrar, Status};
use crate::callouts::{self, Outbound};
use crate::personality::DispatchRefusal;
use crate::state::{
    pairs_to_strings, Callout, CalloutResult, HostState, LogLevel, LogSource, Phase,
};

type C<'a> = Caller<'a, HostState>;

pub(super) fn register(r: &mut Registrar<'_>) {
    r.func(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         up: u32,
         up_len: u32,
         hdrs: u32,
         hdrs_len: u32,
         body: u32,
         body_len: u32,
         trl: u32,
         trl_len: u32,
         timeout: u32,
         ret: u32| {
            let res = http_call(
                &mut c,
                [
                    (up, up_len),
                    (hdrs, hdrs_len),
                    (body, body_len),
                    (trl, trl_len),
                ],
                timeout,
                ret,
            );
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_grpc_call",
        |mut c: C<'_>,
         _upstream: u32,
         _upstream_len: u32,
         _service: u32,
         _service_len: u32,
         _method: u32,
         _method_len: u32,
         _metadata: u32,
         _metadata_len: u32,
         _message: u32,
         _message_len: u32,
         _timeout: u32,
         _ret: u32| {
            let res = grpc_unavailable(c.data(), "proxy_grpc_call", Status::ParseFailure);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_grpc_stream",
        |mut c: C<'_>,
         _upstream: u32,
         _upstream_len: u32,
         _service: u32,
         _service_len: u32,
         _method: u32,
         _method_len: u32,
         _metadata: u32,
         _metadata_len: u32,
         _ret: u32| {
            let res = grpc_unavailable(c.data(), "proxy_grpc_stream", Status::ParseFailure);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_grpc_send",
        |mut c: C<'_>, _token: u32, _ptr: u32, _len: u32, _end: u32| {
            let res = grpc_unavailable(c.data(), "proxy_grpc_send", Status::NotFound);
            finish(c.data_mut(), res)
        },
    );
    r.func("env", "proxy_grpc_cancel", |mut c: C<'_>, _token: u32| {
        let res = grpc_unavailable(c.data(), "proxy_grpc_cancel", Status::NotFound);
        finish(c.data_mut(), res)
    });
    r.func("env", "proxy_grpc_close", |mut c: C<'_>, _token: u32| {
        let res = grpc_unavailable(c.data(), "proxy_grpc_close", Status::NotFound);
        finish(c.data_mut(), res)
    });
}

/// Kong traps (NYI); Envoy has no gRPC cluster configured, so calls name an unknown upstream
/// (`PARSE_FAILURE` per the spec) and ids are unknown (`NOT_FOUND`).
fn grpc_unavailable(st: &HostState, name: &str, status: Status) -> Result<(), Abi> {
    st.nyi_check(name)?;
    Err(Abi::Status(status))
}

fn http_call(c: &mut C<'_>, args: [(u32, u32); 4], timeout: u32, ret: u32) -> Result<(), Abi> {
    let [up, hdrs, body, trl] = args;
    let upstream = read(c, up.0, up.1)?;
    let headers = read(c, hdrs.0, hdrs.1)?;
    let body = read(c, body.0, body.1)?;
    let trailers = read(c, trl.0, trl.1)?;
    check(c, ret, 4)?;
    let headers = codec::decode_map(&headers).map_err(|_| Status::BadArgument)?;
    codec::decode_map(&trailers).map_err(|_| Status::BadArgument)?;

    let st = c.data_mut();
    let cfg = st.cfg.clone();
    let rules = cfg.rules;
    let phase = st.vm.phase;
    let in_root = st.in_root_context();
    let upstream_text = String::from_utf8_lossy(&upstream).into_owned();
    let mut record = Callout {
        token: 0,
        context_id: st.vm.effective_context,
        upstream: upstream_text.clone(),
        headers: pairs_to_strings(&headers),
        body: body.clone(),
        timeout_ms: timeout,
        phase,
        result: CalloutResult::Pending,
        delivered: false,
    };

    let accepted = rules.dispatch_phase(phase).and_then(|()| {
        let upstream = std::str::from_utf8(&upstream).map_err(|_| DispatchRefusal::BadUpstream);
        upstream
            .and_then(|u| rules.dispatch_target(&cfg.opts, u, &headers))
            .map_err(|why| {
                let abi = rules.dispatch_refused(phase, in_root, &why);
                st.log(
                    LogLevel::Error,
                    LogSource::Host,
                    format!("dispatch to \"{upstream_text}\" failed: {why}"),
                );
                abi
            })
    });
    let target = match accepted {
        Ok(t) => t,
        Err(abi) => {
            record.result = CalloutResult::Rejected {
                status: match &abi {
                    Abi::Status(s) => *s as u32,
                    _ => 0,
                },
                trapped: matches!(abi, Abi::Trap(_)),
            };
            st.rec.callouts.push(record);
            st.rec.callout_generation.push(st.rec.generation);
            return Err(abi);
        }
    };

    st.rec.next_token = st.rec.next_token.wrapping_add(1).max(1);
    let token = st.rec.next_token;
    record.token = token;
    st.rec.callouts.push(record);
    st.rec.callout_generation.push(st.rec.generation);
    st.vm.dispatched_in_call += 1;
    // Kong: a dispatch from a request phase holds the client request until every such call has
    // completed (hosts.md §4.4 "Blocking").
    if matches!(phase, Phase::RequestHeaders | Phase::RequestBody) {
        if let Some(s) = st.effective_stream() {
            s.pending_request_callouts += 1;
        }
    }
    let request = callouts::build_request(&headers, &body, &target.host_header, |n| {
        rules.keeps_dispatch_header(n)
    });
    let call = Outbound {
        token,
        addr: target.addr,
        tls: target.tls,
        request,
        timeout: rules.dispatch_timeout(timeout, cfg.opts.callout_timeout_cap),
    };
    callouts::launch(call, st.rec.callout_tx.clone());
    write_u32(c, ret, token)
}
