//! Trace backends. A sink turns a batch of records into the HTTP requests its backend's ingestion
//! API takes, and classifies the backend's replies. Encoders write JSON straight into one
//! pre-sized buffer per request (module `write`): every string is escaped once (twice for JSON sent
//! as an OTLP string value), nothing is built as a `Value` tree first; no host calls.

pub mod langfuse;
pub mod opik;
pub mod otlp;
mod write;

use crate::config::Endpoint;
use crate::pricing::Cost;
use crate::record::TraceRecord;
use serde_json::Value;
use std::rc::Rc;
use write::Composite;

/// One HTTP request for the host to dispatch (always `POST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// Full path, query included.
    pub path: String,
    /// Headers besides the pseudo-headers (content type, credentials).
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl OutboundRequest {
    /// The value of a header by name (names are lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The header list `dispatch_http_call` needs: pseudo-headers first. Kong reads `:scheme`
    /// to decide on TLS and `:authority` for Host and SNI; Envoy requires `:authority`.
    pub fn dispatch_headers<'a>(&'a self, endpoint: &'a Endpoint) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![
            (":method", "POST"),
            (":path", self.path.as_str()),
            (":authority", endpoint.authority.as_str()),
            (":scheme", endpoint.scheme.as_str()),
        ];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers
    }
}

/// A trace backend.
pub trait Sink {
    /// Short name used in logs and metric names (`opik`, `langfuse`).
    fn name(&self) -> &'static str;
    /// Where its requests go.
    fn endpoint(&self) -> &Endpoint;
    /// The requests that deliver `records`, in the order they must be sent.
    fn encode(&self, records: &[Rc<TraceRecord>]) -> Vec<OutboundRequest>;
    /// Whether a status means the batch was accepted.
    fn accepted(&self, status: u16) -> bool {
        (200..300).contains(&status)
    }
}

/// What to do after a callout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered.
    Sent,
    /// Transient: try again later, after at least this many ms when the backend said so.
    Retry {
        /// `Retry-After` / `RateLimit-Reset` in milliseconds, when given.
        after_ms: Option<u64>,
    },
    /// The backend refused the batch; retrying cannot help.
    Rejected,
}

/// Classifies a reply: `None` status means the callout failed (refused, reset, timed out).
pub fn classify(sink: &dyn Sink, status: Option<u16>, retry_after_s: Option<u64>) -> Verdict {
    match status {
        Some(s) if sink.accepted(s) => Verdict::Sent,
        None | Some(429) | Some(408) => Verdict::Retry {
            after_ms: retry_after_s.map(|s| s.saturating_mul(1000)),
        },
        Some(s) if s >= 500 => Verdict::Retry {
            after_ms: retry_after_s.map(|s| s.saturating_mul(1000)),
        },
        Some(_) => Verdict::Rejected,
    }
}

/// A metadata value both backends get, written by each in its own way.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Meta<'a> {
    /// A string.
    Str(&'a str),
    /// A finite number.
    Float(f64),
    /// Cost details, as [`write_cost`] writes them.
    Cost(&'a Cost),
    /// A value from the caller's metadata.
    Json(&'a Value),
}

/// Metadata both backends get besides the exchange's own fields, in order: the context (ids,
/// release, environment), cost details or why there is no cost, derived timings, then the
/// caller's metadata. Keys in `taken` (the sink's own metadata keys) and keys already given are
/// never repeated.
pub(crate) fn extra_metadata<'r>(
    r: &'r TraceRecord,
    taken: &[&str],
    mut emit: impl FnMut(&str, Meta<'r>),
) {
    let c = &r.context;
    // At most 8 context fields, 2 cost members and 4 timings.
    let mut given = [""; 14];
    let mut count = 0;
    let mut put = |key: &'static str, value: Meta<'r>| {
        if let Some(slot) = given.get_mut(count) {
            *slot = key;
            count += 1;
        }
        emit(key, value);
    };
    let fields = [
        ("user_id", &c.user),
        ("session_id", &c.session),
        ("chat_id", &c.chat_id),
        ("message_id", &c.message_id),
        ("organization_id", &c.organization_id),
        ("project_id", &c.project_id),
        ("release", &c.release),
        ("environment", &c.environment),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            put(key, Meta::Str(v));
        }
    }
    if let Some(cost) = &r.cost {
        put("cost", Meta::Cost(cost));
        if let Some(entry) = &r.priced_as {
            put("cost.priced_as", Meta::Str(entry));
        }
    } else if !r.usage.is_empty() {
        put(
            "cost.status",
            Meta::Str("not computed: model not in the price table"),
        );
    }
    let timings = [
        (
            "latency_ms",
            Some(r.end_ns.saturating_sub(r.start_ns) as f64 / 1e6),
        ),
        ("ttft_ms", r.ttft_ms()),
        ("time_per_output_token_ms", r.time_per_output_token_ms()),
        ("output_tokens_per_second", r.output_tokens_per_second()),
    ];
    for (key, value) in timings {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            put(key, Meta::Float(v));
        }
    }
    let given = &given[..count];
    for (k, v) in &c.metadata {
        if !taken.contains(&k.as_str()) && !given.contains(&k.as_str()) {
            emit(k, Meta::Json(v));
        }
    }
}

/// Trace tags: `llm-tracer`, the provider as the backend names it, then the context's tags
/// without repeats.
pub(crate) fn trace_tags<'a>(provider: &'a str, tags: &'a [String]) -> Vec<&'a str> {
    let mut out = vec!["llm-tracer", provider];
    for tag in tags {
        if !out.contains(&tag.as_str()) {
            out.push(tag);
        }
    }
    out
}

/// Cost parts in USD as the members of `o`, keys in order: `cache_read`, `cache_write`,
/// `input`, `output`, `reasoning`, `total`; zero parts left out (total always present, 0 when it
/// is not a number).
pub(crate) fn write_cost(mut o: Composite<'_>, cost: &Cost) {
    let parts = [
        ("cache_read", cost.cache_read),
        ("cache_write", cost.cache_write),
        ("input", cost.input),
        ("output", cost.output),
        ("reasoning", cost.reasoning),
    ];
    for (key, usd) in parts {
        if usd > 0.0 && usd.is_finite() {
            o.float(key, usd);
        }
    }
    if cost.total.is_finite() {
        o.float("total", cost.total);
    } else {
        o.uint("total", 0);
    }
    o.close();
}

/// Bytes to reserve for a body carrying `records`: `per_record` bytes of fields each, plus
/// their estimated size when the body carries their text. Encoders reserve this once and give
/// back what they did not use, so a batch in flight holds no slack.
pub(crate) fn body_capacity(records: &[Rc<TraceRecord>], per_record: usize, text: bool) -> usize {
    records
        .iter()
        .map(|r| per_record.saturating_add(if text { r.estimated_bytes() } else { 0 }))
        .fold(64, usize::saturating_add)
}

/// Joins the endpoint's base path and an API path.
pub(crate) fn api_path(endpoint: &Endpoint, path: &str) -> String {
    let mut p = String::with_capacity(endpoint.base_path.len() + path.len());
    p.push_str(&endpoint.base_path);
    p.push_str(path);
    p
}

/// Splits `host[:port]` into host and port, defaulting the port from the scheme.
pub(crate) fn split_authority(authority: &str, https: bool) -> (&str, u16) {
    let default = if https { 443 } else { 80 };
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (
                host,
                rest.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(default),
            ),
            None => (authority, default),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(p) => (host, p),
            Err(_) => (authority, default),
        },
        None => (authority, default),
    }
}

#[cfg(test)]
mod tests;
