//! Host side of proxy-wasm ABI v0.2.1 (`proxy-wasm/spec` `abi-versions/v0.2.1/README.md`) and of
//! the WASI preview1 functions a `wasm32-wasip1` filter imports.
//!
//! Every import is registered by `(module, name)` through `Registrar`, which remembers what
//! it registered so a module importing anything else is refused by name at load time instead of
//! being linked to a silent stub. Hostcalls read guest memory only through `memory`, which
//! bounds-checks every pointer. Gateway differences are asked of the personality
//! (`personality::Rules`); this module holds no gateway rule itself.

pub mod codec;
pub(crate) mod memory;

mod env_call;
mod env_core;
mod env_data;
mod env_maps;
mod wasi;

use std::collections::BTreeSet;
use std::fmt;

use wasmtime::{IntoFunc, Linker};

use crate::state::HostState;

/// `proxy_status_t` values (spec "Types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// `OK` (0).
    Ok = 0,
    /// `NOT_FOUND` (1).
    NotFound = 1,
    /// `BAD_ARGUMENT` (2). Also what this host returns for an out-of-bounds guest pointer:
    /// the spec lists `INVALID_MEMORY_ACCESS` (6), but the Rust SDK's `Status` enum has no such
    /// variant, so a 6 would be an invalid enum value inside the guest.
    BadArgument = 2,
    /// `SERIALIZATION_FAILURE` (3).
    SerializationFailure = 3,
    /// `PARSE_FAILURE` (4).
    ParseFailure = 4,
    /// `INVALID_MEMORY_ACCESS` (6); not returned by this host, see [`Status::BadArgument`].
    InvalidMemoryAccess = 6,
    /// `EMPTY` (7).
    Empty = 7,
    /// `CAS_MISMATCH` (8).
    CasMismatch = 8,
    /// `INTERNAL_FAILURE` (10).
    InternalFailure = 10,
    /// `BROKEN_CONNECTION` (11): Envoy's status code for a failed HTTP call, read with
    /// `proxy_get_status`.
    BrokenConnection = 11,
    /// `UNIMPLEMENTED` (12).
    Unimplemented = 12,
}

/// Why a hostcall did not succeed.
pub(crate) enum Abi {
    /// Return this status to the guest.
    Status(Status),
    /// Trap the guest with this message (a gateway rule, e.g. Kong's NYI hostcalls).
    Trap(String),
    /// The guest trapped while the host called back into it (its allocator); propagate.
    Guest(wasmtime::Error),
}

impl From<Status> for Abi {
    fn from(s: Status) -> Self {
        Abi::Status(s)
    }
}

impl fmt::Debug for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Abi::Status(s) => write!(f, "Status({s:?})"),
            Abi::Trap(m) => write!(f, "Trap({m})"),
            Abi::Guest(e) => write!(f, "Guest({e})"),
        }
    }
}

/// A trap raised by a hostcall; recognised by the host to attribute the trap.
#[derive(Debug, Clone)]
pub(crate) struct HostTrap(pub String);

impl fmt::Display for HostTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HostTrap {}

/// Turns a hostcall result into what the import returns: a status code, or a trap.
pub(crate) fn finish(state: &mut HostState, r: Result<(), Abi>) -> wasmtime::Result<u32> {
    match r {
        Ok(()) => Ok(Status::Ok as u32),
        Err(Abi::Status(s)) => Ok(s as u32),
        Err(Abi::Trap(msg)) => {
            state.vm.host_trap = Some(msg.clone());
            Err(wasmtime::Error::new(HostTrap(msg)))
        }
        Err(Abi::Guest(e)) => Err(e),
    }
}

/// Registers host functions and remembers their `(module, name)`.
pub(crate) struct Registrar<'a> {
    linker: &'a mut Linker<HostState>,
    names: BTreeSet<(String, String)>,
}

impl<'a> Registrar<'a> {
    fn new(linker: &'a mut Linker<HostState>) -> Self {
        Registrar {
            linker,
            names: BTreeSet::new(),
        }
    }

    /// Registers `func` as `module.name`.
    ///
    /// # Panics
    /// On a duplicate registration (a bug in this crate, caught by its tests).
    pub(crate) fn func<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<HostState, Params, Args>,
    ) {
        self.linker
            .func_wrap(module, name, func)
            .expect("each import is registered once");
        self.names.insert((module.to_string(), name.to_string()));
    }
}

/// Adds every implemented import to `linker`; returns their `(module, name)` set.
pub(crate) fn register_all(linker: &mut Linker<HostState>) -> BTreeSet<(String, String)> {
    let mut r = Registrar::new(linker);
    env_core::register(&mut r);
    env_maps::register(&mut r);
    env_call::register(&mut r);
    env_data::register(&mut r);
    wasi::register(&mut r);
    r.names
}

/// The NYI trap message of ngx_wasm_module (hosts.md §4.2: "An NYI hostcall traps").
pub(crate) fn nyi(name: &str) -> Abi {
    Abi::Trap(format!("{name}: host trap (function not yet implemented)"))
}
