//! The WASI preview1 functions (`wasi_snapshot_preview1`) a `wasm32-wasip1` filter imports,
//! as proxy-wasm hosts provide them: stdout/stderr captured as log lines, the host clock, a
//! seeded random generator, plugin-configured environment variables, no files, and `proc_exit`
//! as a trap (spec sections "Logging", "Clocks", "Randomness", "Environment variables",
//! "Unimplemented WASI functions"; hosts.md §4.10, §5.8).
//!
//! Out-of-bounds pointers return `FAULT`, never trap.

use wasmtime::Caller;

use super::memory::{check, read, read_u32, write, write_u32, write_u64};
use super::{Abi, HostTrap, Registrar};
use crate::state::{HostState, LogLevel, LogSource};

type C<'a> = Caller<'a, HostState>;

const M: &str = "wasi_snapshot_preview1";

const SUCCESS: u32 = 0;
const BADF: u32 = 8;
const FAULT: u32 = 21;
const INVAL: u32 = 28;
const NOTSUP: u32 = 58;

fn errno(r: Result<(), Abi>) -> wasmtime::Result<u32> {
    match r {
        Ok(()) => Ok(SUCCESS),
        Err(Abi::Guest(e)) => Err(e),
        Err(Abi::Trap(m)) => Err(wasmtime::Error::new(HostTrap(m))),
        Err(Abi::Status(_)) => Ok(FAULT),
    }
}

pub(super) fn register(r: &mut Registrar<'_>) {
    r.func(
        M,
        "fd_write",
        |mut c: C<'_>, fd: u32, iovs: u32, n: u32, ret: u32| -> wasmtime::Result<u32> {
            if fd != 1 && fd != 2 {
                return Ok(BADF);
            }
            errno(fd_write(&mut c, fd, iovs, n, ret))
        },
    );
    r.func(
        M,
        "fd_read",
        |_c: C<'_>, _fd: u32, _iovs: u32, _n: u32, _ret: u32| -> u32 { BADF },
    );
    r.func(M, "fd_close", |_c: C<'_>, _fd: u32| -> u32 { BADF });
    r.func(
        M,
        "fd_seek",
        |_c: C<'_>, _fd: u32, _off: i64, _whence: u32, _ret: u32| -> u32 { BADF },
    );
    r.func(
        M,
        "fd_fdstat_get",
        |mut c: C<'_>, fd: u32, ret: u32| -> wasmtime::Result<u32> {
            if fd > 2 {
                return Ok(BADF);
            }
            // fdstat: filetype u8 (2 = character device), flags u16, rights u64 ×2.
            let mut stat = [0u8; 24];
            stat[0] = 2;
            stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            errno(write(&mut c, ret, &stat))
        },
    );
    r.func(
        M,
        "fd_fdstat_set_flags",
        |_c: C<'_>, _fd: u32, _flags: u32| -> u32 { NOTSUP },
    );
    r.func(
        M,
        "fd_filestat_get",
        |_c: C<'_>, _fd: u32, _ret: u32| -> u32 { BADF },
    );
    // No preopened directories: BADF ends the guest's preopen scan.
    r.func(
        M,
        "fd_prestat_get",
        |_c: C<'_>, _fd: u32, _ret: u32| -> u32 { BADF },
    );
    r.func(
        M,
        "fd_prestat_dir_name",
        |_c: C<'_>, _fd: u32, _p: u32, _l: u32| -> u32 { BADF },
    );
    r.func(
        M,
        "path_open",
        |_c: C<'_>,
         _fd: u32,
         _dirflags: u32,
         _p: u32,
         _l: u32,
         _oflags: u32,
         _base: u64,
         _inherit: u64,
         _fdflags: u32,
         _ret: u32|
         -> u32 { NOTSUP },
    );
    r.func(
        M,
        "poll_oneoff",
        |_c: C<'_>, _in: u32, _out: u32, _n: u32, _ret: u32| -> u32 { NOTSUP },
    );
    r.func(M, "sched_yield", |_c: C<'_>| -> u32 { SUCCESS });
    r.func(
        M,
        "proc_exit",
        |mut c: C<'_>, code: u32| -> wasmtime::Result<()> {
            // ngx_wasm_module: "proc_exit is an NYI trap" (hosts.md §4.10); the spec: "never
            // called".
            let msg = format!("proc_exit({code})");
            c.data_mut().vm.host_trap = Some(msg.clone());
            Err(wasmtime::Error::new(HostTrap(msg)))
        },
    );
    r.func(
        M,
        "args_sizes_get",
        |mut c: C<'_>, argc: u32, size: u32| -> wasmtime::Result<u32> {
            // Spec: "Hosts must write 0 to both output arguments".
            errno(write_u32(&mut c, argc, 0).and_then(|()| write_u32(&mut c, size, 0)))
        },
    );
    r.func(M, "args_get", |_c: C<'_>, _argv: u32, _buf: u32| -> u32 {
        SUCCESS
    });
    r.func(
        M,
        "environ_sizes_get",
        |mut c: C<'_>, count: u32, size: u32| -> wasmtime::Result<u32> {
            let env = &c.data().cfg.opts.env;
            let n = u32::try_from(env.len()).unwrap_or(u32::MAX);
            let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
            let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
            errno(write_u32(&mut c, count, n).and_then(|()| write_u32(&mut c, size, bytes)))
        },
    );
    r.func(
        M,
        "environ_get",
        |mut c: C<'_>, array: u32, buf: u32| -> wasmtime::Result<u32> {
            errno(environ_get(&mut c, array, buf))
        },
    );
    r.func(
        M,
        "clock_time_get",
        |mut c: C<'_>, id: u32, _precision: u64, ret: u32| -> wasmtime::Result<u32> {
            let st = c.data();
            let now = match id {
                0 => st.cfg.rules.wall_time_ns(st.rec.clock.unix_ns()),
                1 => st.rec.clock.monotonic_ns(),
                // Kong: "other clock ids return ENOTSUP" (hosts.md §4.10).
                _ => return Ok(NOTSUP),
            };
            errno(write_u64(&mut c, ret, now))
        },
    );
    r.func(
        M,
        "clock_res_get",
        |mut c: C<'_>, id: u32, ret: u32| -> wasmtime::Result<u32> {
            if id > 1 {
                return Ok(NOTSUP);
            }
            let res = c.data().cfg.rules.clock_resolution_ns();
            errno(write_u64(&mut c, ret, res))
        },
    );
    r.func(
        M,
        "random_get",
        |mut c: C<'_>, buf: u32, len: u32| -> wasmtime::Result<u32> {
            let limit = c.data().cfg.rules.random_limit();
            let n = usize::try_from(len).unwrap_or(usize::MAX);
            if limit.is_some_and(|l| n > l) {
                return Ok(INVAL);
            }
            if check(&c, buf, len).is_err() {
                return Ok(FAULT);
            }
            let mut bytes = vec![0u8; n];
            c.data_mut().rec.rng.fill(&mut bytes);
            errno(write(&mut c, buf, &bytes))
        },
    );
}

fn fd_write(c: &mut C<'_>, fd: u32, iovs: u32, n: u32, ret: u32) -> Result<(), Abi> {
    check(c, ret, 4)?;
    let mut text = Vec::new();
    for i in 0..n {
        let at = i
            .checked_mul(8)
            .and_then(|o| iovs.checked_add(o))
            .ok_or(Abi::Status(super::Status::BadArgument))?;
        let ptr = read_u32(c, at)?;
        let len = read_u32(c, at.checked_add(4).ok_or(super::Status::BadArgument)?)?;
        text.extend_from_slice(&read(c, ptr, len)?);
    }
    let written = u32::try_from(text.len()).unwrap_or(u32::MAX);
    // Spec: STDOUT is logged at INFO, STDERR at ERROR.
    let (level, source) = if fd == 1 {
        (LogLevel::Info, LogSource::Stdout)
    } else {
        (LogLevel::Error, LogSource::Stderr)
    };
    let msg = String::from_utf8_lossy(&text)
        .trim_end_matches('\n')
        .to_string();
    if !msg.is_empty() {
        c.data_mut().log(level, source, msg);
    }
    write_u32(c, ret, written)
}

fn environ_get(c: &mut C<'_>, array: u32, buf: u32) -> Result<(), Abi> {
    let env = c.data().cfg.opts.env.clone();
    let mut offset = 0u32;
    for (i, (k, v)) in env.iter().enumerate() {
        let entry = format!("{k}={v}\0");
        let at = buf
            .checked_add(offset)
            .ok_or(Abi::Status(super::Status::BadArgument))?;
        write(c, at, entry.as_bytes())?;
        let slot = u32::try_from(i * 4)
            .ok()
            .and_then(|o| array.checked_add(o))
            .ok_or(Abi::Status(super::Status::BadArgument))?;
        write_u32(c, slot, at)?;
        offset = offset
            .checked_add(u32::try_from(entry.len()).unwrap_or(u32::MAX))
            .ok_or(Abi::Status(super::Status::BadArgument))?;
    }
    Ok(())
}
