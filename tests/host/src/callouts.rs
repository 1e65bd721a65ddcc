//! Callouts (`dispatch_http_call`) travel over real HTTP/1.1 in background threads, so refused
//! connections and timeouts are real. A finished call is posted to the host's channel and
//! delivered to the guest when the test pumps the host ([`crate::Host::pump`]), on the context
//! that dispatched it.
//!
//! This module performs the I/O only; which calls are accepted, and how their results look to
//! the guest, are personality rules.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::thread;
use std::time::Duration;

use crate::abi::codec::Pair;
use crate::http::{self, HttpError};
use crate::state::CalloutFailure;

/// A response as received: status, headers, body.
pub(crate) type WireResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// A finished callout, posted by its thread.
#[derive(Debug)]
pub(crate) struct CalloutDone {
    pub token: u32,
    /// `Ok((status, headers, body))` or the failure.
    pub result: Result<WireResponse, CalloutFailure>,
}

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub token: u32,
    /// `None` when the target did not resolve: fails at once with a resolver failure.
    pub addr: Option<SocketAddr>,
    /// TLS was asked for; this host fails such calls with a handshake failure.
    pub tls: bool,
    pub request: http::Request,
    pub timeout: Duration,
}

/// Builds the wire request from the guest's headers: `:method` and `:path` from the
/// pseudo-headers, `Host` from `host_header`, other pseudo-headers dropped, regular headers
/// kept when `keep` says so.
pub(crate) fn build_request(
    headers: &[Pair],
    body: &[u8],
    host_header: &str,
    keep: impl Fn(&str) -> bool,
) -> http::Request {
    let mut req = http::Request::new("GET", "/");
    for (k, v) in headers {
        let name = String::from_utf8_lossy(k).into_owned();
        let value = String::from_utf8_lossy(v).into_owned();
        match name.as_str() {
            ":method" => req.method = value,
            ":path" => req.path = value,
            n if n.starts_with(':') => {}
            n if n.eq_ignore_ascii_case("content-length") => {}
            n if keep(n) => req.headers.push((name, value)),
            _ => {}
        }
    }
    req.headers
        .insert(0, ("Host".to_string(), host_header.to_string()));
    req.body = body.to_vec();
    req
}

/// Starts the call in a thread; the result goes to `tx`.
pub(crate) fn launch(call: Outbound, tx: Sender<CalloutDone>) {
    let token = call.token;
    let spawned = thread::Builder::new()
        .name(format!("callout-{token}"))
        .spawn({
            let tx = tx.clone();
            move || {
                let result = run(&call);
                let _ = tx.send(CalloutDone { token, result });
            }
        });
    if spawned.is_err() {
        let _ = tx.send(CalloutDone {
            token,
            result: Err(CalloutFailure::BrokenConnection),
        });
    }
}

fn run(call: &Outbound) -> Result<WireResponse, CalloutFailure> {
    if call.tls {
        return Err(CalloutFailure::TlsHandshake);
    }
    let addr = call.addr.ok_or(CalloutFailure::ResolverFailure)?;
    match http::send(addr, &call.request, call.timeout) {
        Ok(resp) => Ok((resp.status, resp.headers, resp.body)),
        Err(HttpError::Refused) => Err(CalloutFailure::Refused),
        Err(HttpError::Timeout) => Err(CalloutFailure::Timeout),
        Err(HttpError::Malformed) => Err(CalloutFailure::ReaderFailure),
        Err(HttpError::Io(_)) => Err(CalloutFailure::BrokenConnection),
    }
}

/// Header pairs of a response as the guest reads them: `:status` first, then the headers as
/// received.
pub(crate) fn response_pairs(status: u16, headers: &[(String, String)]) -> Vec<Pair> {
    let mut pairs = Vec::with_capacity(headers.len() + 1);
    pairs.push((b":status".to_vec(), status.to_string().into_bytes()));
    pairs.extend(
        headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())),
    );
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_request_from_pseudo_headers() {
        let headers: Vec<Pair> = [
            (":method", "POST"),
            (":path", "/v1/traces"),
            (":authority", "collector:8080"),
            (":scheme", "http"),
            ("content-type", "application/json"),
            ("Connection", "keep-alive"),
            ("content-length", "999"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        let req = build_request(&headers, b"{}", "collector:8080", |n| {
            !n.eq_ignore_ascii_case("connection")
        });
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/v1/traces");
        assert_eq!(
            req.headers,
            vec![
                ("Host".to_string(), "collector:8080".to_string()),
                ("content-type".to_string(), "application/json".to_string()),
            ]
        );
        assert_eq!(req.body, b"{}");
    }
}
