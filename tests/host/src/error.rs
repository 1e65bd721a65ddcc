//! Errors the host library returns to its caller (tests, the CLI).
//!
//! Guest misbehaviour inside a callback is not an error here: it is recorded as a trap
//! ([`crate::Host::traps`]) and handled the way the personality's gateway would. These variants
//! are for failures to load, link or configure the module at all.

use std::fmt;
use std::path::PathBuf;

/// Why a module could not be loaded or a [`crate::Host`] could not be created.
#[derive(Debug)]
pub enum HostError {
    /// The `.wasm` file could not be read.
    Read {
        /// The path that was read.
        path: PathBuf,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
    },
    /// The default build of the filter does not exist.
    ModuleNotBuilt {
        /// Where the module was looked for.
        path: PathBuf,
    },
    /// Wasmtime rejected the module bytes (invalid Wasm, or a compile error).
    Compile {
        /// Wasmtime's message.
        message: String,
    },
    /// The module does not export `proxy_abi_version_0_2_1` (nor `_0_2_0`).
    UnsupportedAbi,
    /// The module imports a function this host does not implement.
    UnknownImport {
        /// Import module, e.g. `env` or `wasi_snapshot_preview1`.
        module: String,
        /// Import name.
        name: String,
    },
    /// The module imports a known function with a signature other than the ABI's.
    ImportSignature {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// A required export is missing or has the wrong signature.
    BadExport {
        /// Export name, e.g. `memory` or `proxy_on_memory_allocate`.
        name: String,
    },
    /// Instantiating the module, or running `_initialize`, failed.
    Instantiate {
        /// Wasmtime's message (the trap text for a trapping `_initialize`).
        message: String,
    },
    /// A root-context callback (`on_context_create`, `on_vm_start`, `on_configure`) trapped.
    StartupTrap {
        /// The callback, e.g. `proxy_on_configure`.
        callback: &'static str,
        /// The trap message (the panic message when the guest logged one).
        message: String,
    },
    /// Envoy rejects a configuration whose `on_vm_start` or `on_configure` returns false
    /// (hosts.md §5.1 "Rejection").
    ConfigurationRejected {
        /// The callback that returned false.
        callback: &'static str,
    },
    /// A [`crate::HostOptions`] value is invalid.
    Options {
        /// Which option, and why.
        what: &'static str,
    },
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Read { path, kind } => {
                write!(f, "cannot read wasm module {}: {kind}", path.display())
            }
            HostError::ModuleNotBuilt { path } => write!(
                f,
                "wasm module not found at {}; build it with \
                 `cargo build --release --target wasm32-wasip1 -p llm-tracer` \
                 or set LLM_TRACER_WASM to a built module",
                path.display()
            ),
            HostError::Compile { message } => write!(f, "cannot compile wasm module: {message}"),
            HostError::UnsupportedAbi => f.write_str(
                "module exports no proxy_abi_version_0_2_1 (or _0_2_0) marker; \
                 is it a proxy-wasm filter?",
            ),
            HostError::UnknownImport { module, name } => write!(
                f,
                "module imports `{module}.{name}`, which this host does not implement"
            ),
            HostError::ImportSignature { module, name } => write!(
                f,
                "module imports `{module}.{name}` with a signature other than the ABI's"
            ),
            HostError::BadExport { name } => {
                write!(f, "module export `{name}` is missing or has the wrong type")
            }
            HostError::Instantiate { message } => {
                write!(f, "cannot instantiate wasm module: {message}")
            }
            HostError::StartupTrap { callback, message } => {
                write!(f, "{callback} trapped: {message}")
            }
            HostError::ConfigurationRejected { callback } => write!(
                f,
                "configuration rejected: {callback} returned false (Envoy refuses the \
                 configuration; on first start Envoy does not start)"
            ),
            HostError::Options { what } => write!(f, "invalid host options: {what}"),
        }
    }
}

impl std::error::Error for HostError {}
