//! llm-tracer: a proxy-wasm filter for Kong (ngx_wasm_module) and Envoy that traces LLM API
//! traffic — OpenAI chat completions, streamed or not — into provider-neutral records and ships
//! them in batches to Opik and Langfuse from the root context's tick.
//!
//! Everything but [`glue`] is plain Rust with no host calls, so parsing, normalization and
//! encoding are tested natively; `glue` moves bytes between the host and that core.
#![deny(missing_docs)]

pub mod capture;
pub mod config;
pub mod context;
pub mod decode;
pub mod export;
pub mod header_map;
pub mod ids;
pub mod json;
pub mod memo;
pub mod metrics;
pub mod objects;
pub mod policy;
pub mod pricing;
pub mod protocols;
pub mod providers;
pub mod record;
pub mod redact;
pub mod rewrite;
pub mod sha256;
pub mod sinks;
pub mod skim;
pub mod sse;
pub mod timestamp;
pub mod trim;

#[cfg(target_arch = "wasm32")]
mod glue;

// The macro defines the module's `_initialize` export, which has no doc comment of its own.
#[cfg(target_arch = "wasm32")]
#[allow(missing_docs)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::glue::FilterRoot::default())
        });
    }}
}
