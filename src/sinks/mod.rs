//! Trace backends. A sink turns a batch of records into the HTTP requests its backend's ingestion
//! API takes, and classifies the backend's replies. Encoders write straight into the output
//! buffer through `serde` (no intermediate `Value` trees); no host calls.

pub mod langfuse;
pub mod opik;
pub mod otlp;

use crate::config::Endpoint;
use crate::pricing::Cost;
use crate::record::TraceRecord;
use serde_json::Value;
use std::rc::Rc;

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

/// Joins the endpoint's base path and an API path.
/// Metadata both backends get besides the exchange's own fields: the context (ids, release,
/// environment, the caller's metadata), cost details or why there is no cost, and derived
/// timings. Keys in `taken` (the sink's own metadata keys) are never repeated.
pub(crate) fn extra_metadata(r: &TraceRecord, taken: &[&str]) -> Vec<(String, Value)> {
    let c = &r.context;
    let mut out: Vec<(String, Value)> = Vec::new();
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
            out.push((key.into(), Value::String(v.clone())));
        }
    }
    if let Some(cost) = &r.cost {
        out.push(("cost".into(), cost_details(cost)));
        if let Some(entry) = &r.priced_as {
            out.push(("cost.priced_as".into(), Value::String(entry.clone())));
        }
    } else if !r.usage.is_empty() {
        out.push((
            "cost.status".into(),
            Value::String("not computed: model not in the price table".into()),
        ));
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
        if let Some(n) = value.and_then(serde_json::Number::from_f64) {
            out.push((key.into(), Value::Number(n)));
        }
    }
    for (k, v) in &c.metadata {
        let clash = taken.contains(&k.as_str()) || out.iter().any(|(o, _)| o == k);
        if !clash {
            out.push((k.clone(), v.clone()));
        }
    }
    out
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

/// Cost parts in USD, as `{input, output, cache_read, cache_write, reasoning, total}` with zero
/// parts left out (total always present).
pub(crate) fn cost_details(cost: &Cost) -> Value {
    let mut m = serde_json::Map::new();
    let parts = [
        ("input", cost.input),
        ("output", cost.output),
        ("cache_read", cost.cache_read),
        ("cache_write", cost.cache_write),
        ("reasoning", cost.reasoning),
    ];
    for (key, usd) in parts {
        if usd > 0.0 {
            if let Some(n) = serde_json::Number::from_f64(usd) {
                m.insert(key.into(), Value::Number(n));
            }
        }
    }
    let total = serde_json::Number::from_f64(cost.total).unwrap_or_else(|| 0.into());
    m.insert("total".into(), Value::Number(total));
    Value::Object(m)
}

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
mod tests {
    use super::*;

    #[test]
    fn authority_split() {
        assert_eq!(
            split_authority("api.openai.com", true),
            ("api.openai.com", 443)
        );
        assert_eq!(
            split_authority("127.0.0.1:8080", false),
            ("127.0.0.1", 8080)
        );
        assert_eq!(split_authority("[::1]:9000", false), ("::1", 9000));
        assert_eq!(split_authority("[::1]", false), ("::1", 80));
        assert_eq!(split_authority("host:bad", false), ("host:bad", 80));
    }
}
