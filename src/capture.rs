//! Per-exchange capture: what the HTTP context has seen of one traced request and its response,
//! kept under a byte cap, and turned into a [`TraceRecord`] when the exchange ends.
//!
//! The glue feeds bytes and timestamps in; nothing here calls the host or decides what the host
//! does with traffic: every byte is forwarded whatever happens here.
//!
//! A response compressed with `Content-Encoding: gzip`, `deflate` or `br` (an upstream that
//! ignored `accept-encoding: identity`) is decoded chunk by chunk as it passes ([`BodyDecoder`]),
//! and the decoded bytes go where plain ones would. Decoded output is bounded: a whole body by
//! the body cap, a stream by [`STREAM_DECODE_FACTOR`] times it; past that decoding stops and the
//! record is marked truncated. Other codings are noted in `record.unparsed` and not parsed.

use crate::context::Context;
use crate::decode::{self, BodyDecoder};
use crate::protocols::{self, ChunkEffect, Protocol, StreamFold};
use crate::providers;
use crate::record::{ErrorInfo, TraceRecord};
use crate::sse::SseDecoder;

/// How many times the body cap a compressed stream may decode to. A stream's text is kept under
/// the cap by its fold, but its framing (SSE events, JSON envelopes) is many times the text, and
/// an uncompressed stream is not capped at all; a compressed one is, against decompression bombs.
pub const STREAM_DECODE_FACTOR: usize = 16;

/// What is known about a request when its headers arrive.
#[derive(Debug, Clone, Default)]
pub struct RequestStart {
    /// Request path, query included.
    pub path: String,
    /// `:authority`.
    pub authority: Option<String>,
    /// Provider for the route; empty means: detect it from host, path and protocol.
    pub provider: String,
    /// Context from headers and defaults; the request body adds to it when `body_context`.
    pub context: Context,
    /// Read `user` and `metadata` from the request body into the context.
    pub body_context: bool,
    /// Start time, Unix ns.
    pub now_ns: u64,
    /// W3C trace id.
    pub trace_id: [u8; 16],
    /// W3C span id.
    pub span_id: [u8; 8],
    /// Extra random bits.
    pub entropy: [u8; 16],
}

enum Body {
    /// No response headers yet.
    Pending,
    /// A JSON (or other non-stream) body, kept up to the cap.
    Whole(Vec<u8>),
    /// An event stream (SSE or NDJSON) being decoded and folded as it passes.
    Stream(SseDecoder, Box<dyn StreamFold>),
    /// Not parsed (unsupported or corrupt content-encoding, or already finished); the reason
    /// is in `record.unparsed`.
    Skipped,
}

/// A response body being decoded from its content-encoding.
struct Decoding {
    decoder: BodyDecoder,
    /// Decoding failed; the rest of the body is ignored.
    failed: bool,
}

/// One exchange in progress.
pub struct Capture {
    /// `None` until the request body's shape tells (routes whose path says nothing).
    protocol: Option<Protocol>,
    record: TraceRecord,
    max_body: usize,
    body_context: bool,
    request: Vec<u8>,
    request_done: bool,
    response: Body,
    response_done: bool,
    decoding: Option<Decoding>,
}

impl Capture {
    /// Starts capturing an exchange of `protocol`; `max_body` bounds each body kept.
    pub fn new(start: RequestStart, protocol: Protocol, max_body: usize) -> Self {
        let mut capture = Capture::sniffing(start, max_body);
        capture.set_protocol(protocol);
        capture
    }

    /// Starts capturing an exchange whose API the request body's shape will tell
    /// ([`Protocol::sniff`]).
    pub fn sniffing(start: RequestStart, max_body: usize) -> Self {
        let record = TraceRecord {
            span_id: start.span_id,
            entropy: start.entropy,
            start_ns: start.now_ns,
            end_ns: start.now_ns,
            operation: "unknown",
            api: "unknown",
            provider: start.provider,
            path: start.path,
            server_address: start.authority,
            trace_id: start
                .context
                .parent
                .as_ref()
                .map_or(start.trace_id, |p| p.trace_id),
            context: start.context,
            ..TraceRecord::default()
        };
        Capture {
            protocol: None,
            record,
            max_body,
            body_context: start.body_context,
            request: Vec::new(),
            request_done: false,
            response: Body::Pending,
            response_done: false,
            decoding: None,
        }
    }

    fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = Some(protocol);
        self.record.operation = protocol.operation();
        self.record.api = protocol.api();
        if self.record.provider.is_empty() {
            let authority = self.record.server_address.as_deref().unwrap_or("");
            self.record.provider = providers::detect(authority, &self.record.path, protocol).into();
        }
    }

    /// A request body chunk (`None`: the host could not provide it, e.g. Kong spooled it to a
    /// temporary file).
    pub fn request_chunk(&mut self, chunk: Option<&[u8]>, end_of_stream: bool) {
        if self.request_done {
            return;
        }
        match chunk {
            Some(bytes) => {
                if !keep(&mut self.request, bytes, self.max_body) {
                    self.record.truncated = true;
                }
            }
            None => self.record.unparsed.push(
                "request: body not readable by the filter (buffered to disk by the host?)".into(),
            ),
        }
        if end_of_stream {
            self.finish_request();
        }
    }

    /// [`Capture::request_chunk`] for a chunk the caller owns: when it is the first and fits
    /// under `max_body_bytes` (a whole body, as Kong delivers it), it is kept as it is instead
    /// of being copied.
    pub fn request_chunk_owned(&mut self, chunk: Option<Vec<u8>>, end_of_stream: bool) {
        match chunk {
            Some(bytes)
                if !self.request_done
                    && self.request.is_empty()
                    && bytes.len() <= self.max_body =>
            {
                self.request = bytes;
                if end_of_stream {
                    self.finish_request();
                }
            }
            other => self.request_chunk(other.as_deref(), end_of_stream),
        }
    }

    fn finish_request(&mut self) {
        self.request_done = true;
        let body = std::mem::take(&mut self.request);
        if body.is_empty() {
            return;
        }
        let truncated = self.record.truncated;
        if self.protocol.is_none() {
            match Protocol::sniff(&body) {
                Some(protocol) => self.set_protocol(protocol),
                None => self
                    .record
                    .unparsed
                    .push("request: the API is not recognised, exchange not parsed".into()),
            }
        }
        let mut members = None;
        if let Some(protocol) = self.protocol {
            if truncated {
                self.record
                    .unparsed
                    .push("request: body over max_body_bytes, not parsed".into());
            } else {
                match protocol.parse_request(&body, &mut self.record) {
                    Ok(read) => members = read,
                    Err(e) => self.record.unparsed.push(format!("request: {e}")),
                }
            }
        }
        if self.body_context && !truncated {
            match members {
                Some(m) => self.record.context.apply_members(m.user, m.metadata),
                None => self.record.context.apply_body(&body),
            }
        }
    }

    /// Response headers: status, `content-type`, `content-encoding`.
    pub fn response_headers(
        &mut self,
        status: Option<u16>,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) {
        self.record.status = status;
        let encoding = content_encoding
            .map(str::trim)
            .filter(|e| !decode::is_identity(e));
        self.decoding = encoding
            .and_then(BodyDecoder::for_encoding)
            .map(|decoder| Decoding {
                decoder,
                failed: false,
            });
        let unsupported = encoding.filter(|_| self.decoding.is_none());
        let content_type = content_type.unwrap_or("").trim_start().to_ascii_lowercase();
        let framing = if content_type.starts_with("text/event-stream") {
            Some(SseDecoder::new(self.max_body))
        } else if content_type.starts_with("application/x-ndjson")
            || content_type.starts_with("application/jsonl")
        {
            Some(SseDecoder::ndjson(self.max_body))
        } else {
            None
        };
        self.response = if let Some(encoding) = unsupported {
            let shown: String = encoding.chars().take(40).collect();
            self.record.unparsed.push(format!(
                "response: content-encoding {shown:?} is not supported, body not parsed"
            ));
            Body::Skipped
        } else if self.protocol.is_none() {
            // Only when the response starts before the request body was complete.
            Body::Skipped
        } else if let Some(decoder) = framing {
            self.record.streamed = true;
            match self.protocol.and_then(|p| p.stream(self.max_body)) {
                Some(fold) => Body::Stream(decoder, fold),
                None => {
                    self.record
                        .unparsed
                        .push("response: this API does not stream; stream not parsed".into());
                    Body::Skipped
                }
            }
        } else {
            Body::Whole(Vec::new())
        };
    }

    /// Whether the first output token is still to come, so that the time of the next chunk
    /// matters (the caller may skip reading the clock otherwise).
    pub fn awaits_first_token(&self) -> bool {
        self.record.first_token_ns.is_none()
    }

    /// A response body chunk passing through at `now_ns` (only read while
    /// [`Capture::awaits_first_token`]).
    pub fn response_chunk(&mut self, chunk: &[u8], now_ns: u64) {
        if self.decoding.is_some() {
            self.decoded_response_chunk(chunk, now_ns);
            return;
        }
        match &mut self.response {
            Body::Whole(buf) => {
                if !keep(buf, chunk, self.max_body) {
                    self.record.truncated = true;
                }
            }
            Body::Stream(decoder, fold) => {
                let first = &mut self.record.first_token_ns;
                protocols::push_chunk(decoder, fold.as_mut(), chunk, &mut |effect| {
                    if effect == ChunkEffect::Output && first.is_none() {
                        *first = Some(now_ns);
                    }
                });
            }
            Body::Pending | Body::Skipped => {}
        }
    }

    /// A compressed response chunk: decoded, then handled as a plain one would be.
    fn decoded_response_chunk(&mut self, chunk: &[u8], now_ns: u64) {
        let Capture {
            decoding: Some(decoding),
            response,
            record,
            max_body,
            ..
        } = self
        else {
            return;
        };
        if decoding.failed {
            return;
        }
        let result = match response {
            Body::Whole(buf) => decoding.decoder.push(chunk, buf, *max_body),
            Body::Stream(sse, fold) => {
                let first = &mut record.first_token_ns;
                let limit = max_body.saturating_mul(STREAM_DECODE_FACTOR);
                decoding.decoder.push_with(chunk, limit, &mut |bytes| {
                    protocols::push_chunk(sse, fold.as_mut(), bytes, &mut |effect| {
                        if effect == ChunkEffect::Output && first.is_none() {
                            *first = Some(now_ns);
                        }
                    });
                })
            }
            Body::Pending | Body::Skipped => return,
        };
        if decoding.decoder.capped() {
            record.truncated = true;
        }
        if let Err(e) = result {
            decoding.failed = true;
            record.unparsed.push(format!(
                "response: content-encoding {}: {e}",
                decoding.decoder.encoding()
            ));
            // A partly decoded whole body is not worth parsing; a stream keeps what it folded.
            if matches!(response, Body::Whole(_)) {
                *response = Body::Skipped;
            }
        }
    }

    /// The response ended normally (end of stream seen).
    pub fn response_end(&mut self) {
        self.response_done = true;
    }

    /// Whether the response has ended.
    pub fn response_ended(&self) -> bool {
        self.response_done
    }

    /// The finished record. When the response never ended, the record is marked incomplete and
    /// keeps what was seen.
    pub fn finish(mut self, now_ns: u64) -> TraceRecord {
        if !self.request_done {
            self.finish_request();
        }
        self.record.end_ns = now_ns;
        let ok = self.record.status.is_some_and(|s| (200..300).contains(&s));
        if self.response_done {
            self.finish_decoding();
        }
        match std::mem::replace(&mut self.response, Body::Skipped) {
            Body::Whole(body) => self.finish_whole(&body, ok),
            Body::Stream(mut decoder, mut fold) => {
                if self.response_done {
                    decoder.finish(&mut |event| {
                        fold.push(event);
                    });
                }
                if decoder.oversized_lines() > 0 {
                    self.record.truncated = true;
                }
                fold.finish(&mut self.record);
            }
            Body::Pending | Body::Skipped => {}
        }
        if self.record.error.is_none() {
            if let Some(status) = self.record.status.filter(|_| !ok) {
                self.record.error = Some(ErrorInfo {
                    kind: status.to_string(),
                    message: format!("HTTP {status} from upstream"),
                });
            }
        }
        if !self.response_done {
            self.record.incomplete = true;
            if self.record.error.is_none() {
                self.record.error = Some(ErrorInfo {
                    kind: "incomplete".into(),
                    message: "the exchange ended before the response was complete".into(),
                });
            }
        }
        self.record
    }

    /// The compressed body ended: a stream cut inside the compressed data is noted, and a whole
    /// body cut there is not parsed.
    fn finish_decoding(&mut self) {
        let Some(decoding) = self.decoding.as_mut().filter(|d| !d.failed) else {
            return;
        };
        if let Err(e) = decoding.decoder.finish() {
            decoding.failed = true;
            self.record.unparsed.push(format!(
                "response: content-encoding {}: {e}",
                decoding.decoder.encoding()
            ));
            if matches!(self.response, Body::Whole(_)) {
                self.response = Body::Skipped;
            }
        }
    }

    fn finish_whole(&mut self, body: &[u8], ok: bool) {
        if body.is_empty() {
            return;
        }
        let protocol = self.protocol.unwrap_or(Protocol::OpenAiChat);
        if !ok {
            if let Some(mut err) = protocol.parse_error(body) {
                if let Some(status) = self.record.status {
                    if err.kind == "error" {
                        err.kind = status.to_string();
                    }
                }
                self.record.error = Some(err);
            }
            return;
        }
        if self.record.truncated || !self.response_done {
            self.record
                .unparsed
                .push("response: body incomplete or over max_body_bytes, not parsed".into());
        } else if let Err(e) = protocol.parse_response(body, &mut self.record) {
            self.record.unparsed.push(format!("response: {e}"));
        }
    }
}

/// Appends what fits under `cap`; false when something was left out.
fn keep(buf: &mut Vec<u8>, bytes: &[u8], cap: usize) -> bool {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    bytes.len() <= room
}

#[cfg(test)]
pub(crate) mod harness;
#[cfg(test)]
mod tests;
