//! Whole request/response exchanges: the client request and the upstream response are given,
//! cut into chunks as chosen, and pushed through [`Host`]'s per-phase API in order.

use std::time::Duration;

use crate::clock::SeededRng;
use crate::host::{Host, StreamId};
use crate::state::LocalResponse;

/// How a body is cut into the chunks (frames) the gateway delivers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Chunking {
    /// One chunk.
    #[default]
    Whole,
    /// Chunks of `n` bytes (the last may be shorter); `0` counts as 1.
    Fixed(usize),
    /// Chunks of these sizes in order, the rest as one last chunk. A `0` size yields an empty
    /// chunk (e.g. Envoy's final `size=0, end_of_stream=true` frame of a stream).
    Sizes(Vec<usize>),
    /// Random sizes from 1 to 64 bytes, reproducible from `seed`.
    Random {
        /// PRNG seed.
        seed: u64,
    },
}

impl Chunking {
    /// Cuts `data` into chunks; an empty body gives no chunk except explicit `0` sizes.
    pub fn split<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        match self {
            Chunking::Whole => {
                if !data.is_empty() {
                    out.push(data);
                }
                return out;
            }
            Chunking::Fixed(n) => {
                return data.chunks((*n).max(1)).collect();
            }
            Chunking::Sizes(sizes) => {
                for &wanted in sizes {
                    let n = wanted.min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    if n > 0 || wanted == 0 {
                        out.push(head);
                    }
                    rest = tail;
                }
            }
            Chunking::Random { seed } => {
                let mut rng = SeededRng::new(*seed);
                while !rest.is_empty() {
                    let n = usize::try_from(rng.next_u64() % 64 + 1)
                        .unwrap_or(1)
                        .min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    out.push(head);
                    rest = tail;
                }
            }
        }
        if !rest.is_empty() {
            out.push(rest);
        }
        out
    }
}

/// A client request and the upstream's response, to run through the filter.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Request headers, pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) included.
    pub request_headers: Vec<(String, String)>,
    /// Request body.
    pub request_body: Vec<u8>,
    /// How the request body arrives.
    pub request_chunking: Chunking,
    /// Response headers, `:status` included.
    pub response_headers: Vec<(String, String)>,
    /// Response body.
    pub response_body: Vec<u8>,
    /// How the response body arrives.
    pub response_chunking: Chunking,
    /// The upstream connection breaks after this many response body bytes: the stream ends
    /// without `end_of_stream`.
    pub abort_after_response_bytes: Option<usize>,
}

impl Exchange {
    /// A request with the pseudo-headers for `method` and `path` on authority `llm.local`,
    /// answered `200` with no headers and no body.
    pub fn new(method: &str, path: &str) -> Self {
        Exchange {
            request_headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), "llm.local".into()),
                (":scheme".into(), "http".into()),
            ],
            response_headers: vec![(":status".into(), "200".into())],
            ..Exchange::default()
        }
    }

    /// Adds a request header.
    pub fn request_header(mut self, name: &str, value: &str) -> Self {
        self.request_headers.push((name.into(), value.into()));
        self
    }

    /// Sets the request body (and its `content-length`).
    pub fn request_body(mut self, body: impl Into<Vec<u8>>, chunking: Chunking) -> Self {
        self.request_body = body.into();
        self.request_headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
        self.request_headers
            .push(("content-length".into(), self.request_body.len().to_string()));
        self.request_chunking = chunking;
        self
    }

    /// Sets the response status and headers (`:status` is added first).
    pub fn response(mut self, status: u16, headers: &[(&str, &str)]) -> Self {
        self.response_headers = vec![(":status".into(), status.to_string())];
        self.response_headers
            .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// Sets the response body.
    pub fn response_body(mut self, body: impl Into<Vec<u8>>, chunking: Chunking) -> Self {
        self.response_body = body.into();
        self.response_chunking = chunking;
        self
    }
}

/// What the client and the upstream saw of one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeOutcome {
    /// The stream (HTTP context) it ran as.
    pub stream: StreamId,
    /// Status the client got (0 when it got no response headers).
    pub client_status: u16,
    /// Response headers the client got, pseudo-headers removed.
    pub client_headers: Vec<(String, String)>,
    /// Response body bytes the client got.
    pub client_body: Vec<u8>,
    /// Request headers the upstream got (pseudo-headers included).
    pub upstream_headers: Vec<(String, String)>,
    /// Request body bytes the upstream got.
    pub upstream_body: Vec<u8>,
    /// The request was forwarded upstream.
    pub reached_upstream: bool,
    /// The client got a local response (from the filter, or the gateway on its behalf).
    pub local_response: Option<LocalResponse>,
    /// The filter paused the request at least once.
    pub paused_request: bool,
    /// The request is still paused: nothing resumed it.
    pub request_stalled: bool,
    /// The filter returned Pause in a response phase (this project's filter must never).
    pub paused_response: bool,
    /// The stream was reset (the client saw a truncated response).
    pub response_reset: bool,
    /// The trap one of this stream's callbacks hit.
    pub trap: Option<String>,
}

impl ExchangeOutcome {
    /// First client response header value by name (case-insensitive).
    pub fn client_header(&self, name: &str) -> Option<&str> {
        self.client_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// First upstream request header value by name (case-insensitive).
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn as_strs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl Host {
    /// Runs a whole exchange: request headers, request body chunks, (if the request reached
    /// upstream) response headers and body chunks, then the end of the stream.
    ///
    /// While the request is paused with callouts pending (a Kong request-phase dispatch), the
    /// host pumps them, waiting up to the callout timeout cap.
    pub fn exchange(&mut self, ex: &Exchange) -> ExchangeOutcome {
        let req_headers = as_strs(&ex.request_headers);
        let id = self.begin(&req_headers, ex.request_body.is_empty());
        self.wait_request(id);
        let chunks = ex.request_chunking.split(&ex.request_body);
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            if self.outcome(id).is_some_and(|o| o.local_response.is_some()) {
                break;
            }
            self.request_body(id, chunk, i == last);
            self.wait_request(id);
        }
        let forwarded = self.outcome(id).is_some_and(|o| {
            o.reached_upstream && o.local_response.is_none() && !o.request_stalled
        });
        if forwarded {
            let resp_headers = as_strs(&ex.response_headers);
            let body = match ex.abort_after_response_bytes {
                Some(n) => &ex.response_body[..n.min(ex.response_body.len())],
                None => &ex.response_body[..],
            };
            let no_body = ex.response_body.is_empty() && ex.abort_after_response_bytes.is_none();
            self.response_headers(id, &resp_headers, no_body);
            let chunks = ex.response_chunking.split(body);
            let last = chunks.len().saturating_sub(1);
            for (i, chunk) in chunks.iter().enumerate() {
                let eos = i == last && ex.abort_after_response_bytes.is_none();
                self.response_body(id, chunk, eos);
            }
        }
        self.end(id);
        self.outcome(id).unwrap_or_else(|| ExchangeOutcome {
            stream: id,
            client_status: 0,
            client_headers: Vec::new(),
            client_body: Vec::new(),
            upstream_headers: Vec::new(),
            upstream_body: Vec::new(),
            reached_upstream: false,
            local_response: None,
            paused_request: false,
            request_stalled: false,
            paused_response: false,
            response_reset: false,
            trap: None,
        })
    }

    /// Pumps callouts while the request waits on them.
    fn wait_request(&mut self, id: StreamId) {
        let cap = self.options().callout_timeout_cap;
        for _ in 0..64 {
            let waiting = self.outcome(id).is_some_and(|o| o.request_stalled);
            if !waiting || self.pending_callouts() == 0 {
                return;
            }
            self.pump(cap.min(Duration::from_secs(120)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunkings() {
        let data = b"abcdefghij";
        assert_eq!(Chunking::Whole.split(data), vec![&data[..]]);
        assert_eq!(Chunking::Whole.split(b""), Vec::<&[u8]>::new());
        assert_eq!(
            Chunking::Fixed(4).split(data),
            vec![&b"abcd"[..], b"efgh", b"ij"]
        );
        assert_eq!(
            Chunking::Sizes(vec![1, 2]).split(data),
            vec![&b"a"[..], b"bc", b"defghij"]
        );
        assert_eq!(
            Chunking::Sizes(vec![10, 0]).split(data),
            vec![&b"abcdefghij"[..], b""]
        );
        let random = Chunking::Random { seed: 3 }.split(data);
        assert_eq!(random.concat(), data.to_vec());
        assert_eq!(random, Chunking::Random { seed: 3 }.split(data));
    }
}
