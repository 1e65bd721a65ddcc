//! The only modules that talk to the proxy-wasm host. They move bytes and timestamps between
//! the host and the pure core, map results to host actions in one place, and never let an
//! error reach the traffic: every request and response is continued untouched.

mod host;
mod http;
mod root;

pub use root::FilterRoot;
