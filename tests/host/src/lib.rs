//! A proxy-wasm ABI v0.2.1 host built on wasmtime that runs `llm_tracer.wasm` the way Kong
//! (ngx_wasm_module) or Envoy would, plus the local servers the tests and the demo talk to.
//!
//! * [`WasmModule`] compiles a filter once; [`Host`] runs one instance of it with a
//!   [`Personality`]'s rules (`shared/docs/hosts.md`), entirely inside its own
//!   `wasmtime::Store`, so tests run in parallel.
//! * Requests go through [`Host::begin`] … [`Host::end`] phase by phase, or whole through
//!   [`Host::exchange`]. Callouts are real HTTP to local servers ([`http`]), delivered by
//!   [`Host::pump`]; time is manual or real ([`ClockMode`]).
//! * [`abi`] holds the hostcalls and the ABI wire formats, [`personality`] the gateway rules.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod abi;
mod callouts;
pub mod clock;
pub mod collector;
pub mod demo;
pub mod error;
pub mod exchange;
pub mod fixtures;
pub mod gateway;
pub mod har;
mod host;
pub mod housekeeping;
pub mod http;
pub mod instrument;
pub mod mock_llm;
mod module;
pub mod options;
pub mod personality;
pub mod relay;
pub mod state;
mod stream;
pub mod validate;

pub use clock::ClockMode;
pub use error::HostError;
pub use exchange::{Chunking, Exchange, ExchangeOutcome};
pub use host::{Host, StreamId};
pub use module::{WasmModule, WASM_ENV};
pub use options::HostOptions;
pub use personality::Personality;
pub use state::{
    Callout, CalloutFailure, CalloutResult, LocalResponse, LogLevel, LogLine, LogSource,
    MetricKind, MetricValue, Phase, TrapRecord,
};

#[cfg(test)]
mod wat_tests;
