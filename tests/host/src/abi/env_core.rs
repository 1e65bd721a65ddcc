//! `env` hostcalls for logging, time, timers, context and stream control, local responses and
//! buffers (spec sections "Logging", "Clocks", "Timers", "Context lifecycle", "Buffers",
//! "Common stream operations", "HTTP").

use wasmtime::Caller;

use super::memory::{read, return_bytes, return_held, write_u32, write_u64};
use super::{codec, finish, Abi, Registrar, Status};
use crate::personality::BodyAccess;
use crate::state::{pairs_to_strings, HostState, LocalResponse, LogLevel, LogSource, Phase};

type C<'a> = Caller<'a, HostState>;

pub(super) fn register(r: &mut Registrar<'_>) {
    r.func(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: u32, ptr: u32, len: u32| {
            let res = log(&mut c, level, ptr, len);
            finish(c.data_mut(), res)
        },
    );
    r.func("env", "proxy_get_log_level", |mut c: C<'_>, ret: u32| {
        let res = get_log_level(&mut c, ret);
        finish(c.data_mut(), res)
    });
    r.func(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ret: u32| {
            let st = c.data();
            let now = st.cfg.rules.wall_time_ns(st.rec.clock.unix_ns());
            let res = write_u64(&mut c, ret, now);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: u32| {
            let res = set_tick_period(c.data_mut(), period);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: u32| {
            let res = set_effective_context(c.data_mut(), id);
            finish(c.data_mut(), res)
        },
    );
    r.func("env", "proxy_done", |mut c: C<'_>| {
        let res = done(c.data_mut());
        finish(c.data_mut(), res)
    });
    r.func(
        "env",
        "proxy_get_status",
        |mut c: C<'_>, code: u32, msg: u32, msg_size: u32| {
            let res = get_status(&mut c, code, msg, msg_size);
            finish(c.data_mut(), res)
        },
    );
    r.func("env", "proxy_continue_stream", |mut c: C<'_>, ty: u32| {
        let res = continue_stream(c.data_mut(), ty);
        finish(c.data_mut(), res)
    });
    r.func("env", "proxy_close_stream", |mut c: C<'_>, ty: u32| {
        let res = close_stream(c.data_mut(), ty);
        finish(c.data_mut(), res)
    });
    r.func(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: u32,
         det: u32,
         det_len: u32,
         body: u32,
         body_len: u32,
         hdrs: u32,
         hdrs_len: u32,
         _grpc: i32| {
            let res = send_local_response(
                &mut c,
                status,
                (det, det_len),
                (body, body_len),
                (hdrs, hdrs_len),
            );
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, ty: u32, start: u32, max: u32, ret: u32, ret_size: u32| {
            let res = get_buffer(&mut c, ty, start, max, ret, ret_size);
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_get_buffer_status",
        |mut c: C<'_>, ty: u32, ret_size: u32, ret_flags: u32| {
            let res = buffer_logged(c.data_mut(), ty)
                .map(<[u8]>::len)
                .and_then(|len| {
                    let len = u32::try_from(len).map_err(|_| Status::InternalFailure)?;
                    write_u32(&mut c, ret_size, len)?;
                    write_u32(&mut c, ret_flags, 0)
                });
            finish(c.data_mut(), res)
        },
    );
    r.func(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, ty: u32, start: u32, size: u32, ptr: u32, len: u32| {
            let res = set_buffer(&mut c, ty, start, size, ptr, len);
            finish(c.data_mut(), res)
        },
    );
}

fn log(c: &mut C<'_>, level: u32, ptr: u32, len: u32) -> Result<(), Abi> {
    let msg = read(c, ptr, len)?;
    let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
    let text = String::from_utf8_lossy(&msg).into_owned();
    c.data_mut().log(level, LogSource::ProxyLog, text);
    Ok(())
}

fn get_log_level(c: &mut C<'_>, ret: u32) -> Result<(), Abi> {
    c.data().nyi_check("proxy_get_log_level")?;
    let level = c.data().cfg.opts.log_level.to_abi();
    write_u32(c, ret, level)
}

fn set_tick_period(st: &mut HostState, period: u32) -> Result<(), Abi> {
    let in_root = st.in_root_context();
    st.cfg
        .rules
        .tick_period(in_root, st.vm.tick_period_ms, period)?;
    st.vm.tick_period_ms = (period != 0).then_some(period);
    Ok(())
}

fn set_effective_context(st: &mut HostState, id: u32) -> Result<(), Abi> {
    let generation = st.rec.generation;
    let known = id == st.vm.root_id
        || st
            .rec
            .streams
            .get(&id)
            .is_some_and(|s| s.generation == generation && !s.ended);
    if !known {
        return Err(Abi::Status(Status::BadArgument));
    }
    st.vm.effective_context = id;
    Ok(())
}

fn done(st: &mut HostState) -> Result<(), Abi> {
    st.nyi_check("proxy_done")?;
    match st.effective_stream() {
        Some(s) if s.done_deferred => {
            s.done_requested = true;
            Ok(())
        }
        _ => Err(Abi::Status(Status::NotFound)),
    }
}

fn get_status(c: &mut C<'_>, code_ptr: u32, msg: u32, msg_size: u32) -> Result<(), Abi> {
    c.data().nyi_check("proxy_get_status")?;
    let st = c.data();
    let outcome = st.vm.call_response.as_ref().map(|r| &r.outcome);
    let (code, message) = st.cfg.rules.call_status(outcome)?;
    super::memory::check(c, code_ptr, 4)?;
    return_bytes(c, &message, msg, msg_size)?;
    write_u32(c, code_ptr, code)
}

fn continue_stream(st: &mut HostState, ty: u32) -> Result<(), Abi> {
    if ty > 3 {
        return Err(Abi::Status(Status::BadArgument));
    }
    let Some(s) = st.effective_stream() else {
        return Err(Abi::Status(Status::NotFound));
    };
    match ty {
        0 => s.resume_requested = true,
        1 => s.response_resume_requested = true,
        _ => {}
    }
    Ok(())
}

fn close_stream(st: &mut HostState, ty: u32) -> Result<(), Abi> {
    st.nyi_check("proxy_close_stream")?;
    if ty > 3 {
        return Err(Abi::Status(Status::BadArgument));
    }
    let Some(s) = st.effective_stream() else {
        return Err(Abi::Status(Status::NotFound));
    };
    s.reset = true;
    Ok(())
}

fn send_local_response(
    c: &mut C<'_>,
    status: u32,
    details: (u32, u32),
    body: (u32, u32),
    headers: (u32, u32),
) -> Result<(), Abi> {
    let details = read(c, details.0, details.1)?;
    let body = read(c, body.0, body.1)?;
    let headers = read(c, headers.0, headers.1)?;
    let headers = codec::decode_map(&headers).map_err(|_| Status::BadArgument)?;
    let status = u16::try_from(status).map_err(|_| Status::BadArgument)?;
    let st = c.data_mut();
    let Some(s) = st.effective_stream() else {
        return Err(Abi::Status(Status::NotFound));
    };
    // "This can be used as long as HTTP response headers were not send downstream."
    if s.client_headers.is_some() {
        return Err(Abi::Status(Status::BadArgument));
    }
    s.local_response = Some(LocalResponse {
        status,
        details: String::from_utf8_lossy(&details).into_owned(),
        headers: pairs_to_strings(&headers),
        body,
        from_filter: true,
    });
    Ok(())
}

/// The bytes of buffer `ty` in the current callback, per the personality's access rules; a
/// request body the gateway cannot read is logged as the gateway logs it.
fn buffer_logged(st: &mut HostState, ty: u32) -> Result<&[u8], Abi> {
    if ty == 0 {
        let unreadable = allowed(st.cfg.rules.request_body_access(st.vm.phase)).is_ok()
            && st
                .effective_stream_ref()
                .is_some_and(|s| s.req_body_unreadable);
        if unreadable {
            // ngx_proxy_wasm_host.c: "cannot read request body buffered to file" (§4.8).
            st.log(
                LogLevel::Error,
                LogSource::Host,
                "cannot read request body buffered to file".to_string(),
            );
        }
    }
    buffer(st, ty)
}

/// The bytes of buffer `ty` in the current callback, per the personality's access rules.
fn buffer(st: &HostState, ty: u32) -> Result<&[u8], Abi> {
    let phase = st.vm.phase;
    let rules = st.cfg.rules;
    match ty {
        // HTTP_REQUEST_BODY
        0 => {
            allowed(rules.request_body_access(phase))?;
            let s = st.effective_stream_ref().ok_or(Status::NotFound)?;
            if s.req_body_unreadable {
                return Err(Abi::Status(Status::NotFound));
            }
            Ok(if phase == Phase::Log {
                &s.request_body_seen
            } else {
                &s.req_buf
            })
        }
        // HTTP_RESPONSE_BODY
        1 => {
            allowed(rules.response_body_access(phase))?;
            let s = st.effective_stream_ref().ok_or(Status::NotFound)?;
            Ok(&s.resp_buf)
        }
        // HTTP_CALL_RESPONSE_BODY
        4 => match &st.vm.call_response {
            Some(r) => Ok(r.outcome.as_ref().map_or(&[][..], |(_, b)| &b[..])),
            None => Err(Abi::Status(Status::NotFound)),
        },
        // VM_CONFIGURATION
        6 if phase == Phase::VmStart => Ok(&st.cfg.opts.vm_config),
        // PLUGIN_CONFIGURATION
        7 if phase == Phase::Configure => Ok(&st.cfg.opts.plugin_config),
        // Downstream/upstream data, gRPC message, foreign-function arguments: not available.
        2..=8 => Err(Abi::Status(Status::NotFound)),
        _ => Err(Abi::Status(Status::BadArgument)),
    }
}

fn allowed(access: BodyAccess) -> Result<(), Abi> {
    match access {
        BodyAccess::Allowed => Ok(()),
        BodyAccess::NotAvailable => Err(Abi::Status(Status::NotFound)),
        BodyAccess::Trap(msg) => Err(Abi::Trap(msg)),
    }
}

fn get_buffer(
    c: &mut C<'_>,
    ty: u32,
    start: u32,
    max: u32,
    ret: u32,
    ret_size: u32,
) -> Result<(), Abi> {
    let len = buffer_logged(c.data_mut(), ty)?.len();
    let start = usize::try_from(start).map_err(|_| Status::BadArgument)?;
    if start > len {
        return Err(Abi::Status(Status::BadArgument));
    }
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let end = start.saturating_add(max).min(len);
    // Copied from the buffer into the guest's block, as a gateway does.
    return_held(c, end - start, ret, ret_size, |st| {
        buffer(st, ty)?
            .get(start..end)
            .ok_or(Abi::Status(Status::InternalFailure))
    })
}

fn set_buffer(
    c: &mut C<'_>,
    ty: u32,
    start: u32,
    size: u32,
    ptr: u32,
    len: u32,
) -> Result<(), Abi> {
    let data = read(c, ptr, len)?;
    let st = c.data_mut();
    let phase = st.vm.phase;
    let rules = st.cfg.rules;
    let buf = match ty {
        0 => {
            allowed(rules.request_body_access(phase))?;
            if phase != Phase::RequestBody {
                return Err(Abi::Status(Status::NotFound));
            }
            &mut st.effective_stream().ok_or(Status::NotFound)?.req_buf
        }
        1 => {
            allowed(rules.response_body_access(phase))?;
            &mut st.effective_stream().ok_or(Status::NotFound)?.resp_buf
        }
        2..=8 => return Err(Abi::Status(Status::NotFound)),
        _ => return Err(Abi::Status(Status::BadArgument)),
    };
    // Spec: replace `size` bytes at `start`; `start` at or past the end appends.
    let start = usize::try_from(start).unwrap_or(usize::MAX).min(buf.len());
    let end = start
        .saturating_add(usize::try_from(size).unwrap_or(usize::MAX))
        .min(buf.len());
    buf.splice(start..end, data);
    Ok(())
}
