//! The request half of a stream: headers and body from the client to the upstream, with each
//! gateway's delivery rules (hosts.md §4.8 for Kong, §5.6 for Envoy).

use super::{Gate, PAUSE};
use crate::host::{len_u32, Host, Invoke, StreamId};
use crate::personality::Personality;
use crate::state::{pairs_to_strings, LocalResponse, Phase, RequestStage};

impl Host {
    /// Handles the outcome of `on_request_headers` / `on_request_body`.
    pub(super) fn after_request_callback(&mut self, id: u32, phase: Phase, r: Invoke<u32>) {
        let action = match r {
            Invoke::Trapped(m) => {
                self.stream_trapped(id, phase, m);
                // Envoy `fail_open`: the request goes on without the filter.
                let passes = self
                    .stream(id)
                    .is_some_and(|s| s.local_response.is_none() && !s.reset);
                if passes {
                    match phase {
                        Phase::RequestHeaders => self.headers_passed(id),
                        _ => self.body_passed(id),
                    }
                }
                return;
            }
            Invoke::Missing => 0,
            Invoke::Done(a) => a,
        };
        let personality = self.cfg.opts.personality;
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        if s.local_response.is_some() || s.reset {
            s.stage = RequestStage::Complete;
            return;
        }
        if action == PAUSE {
            s.request_paused = true;
            s.request_paused_ever = true;
            // Kong: a request-phase dispatch holds the request until the calls complete, then
            // it resumes by itself (hosts.md §4.4 "Blocking", "Parallel calls").
            s.paused_for_callouts =
                personality == Personality::Kong && s.pending_request_callouts > 0;
            return;
        }
        // Continue: "If the filter returns Continue anyway, the return value overrides the
        // pause" (Kong, hosts.md §4.4).
        match phase {
            Phase::RequestHeaders => self.headers_passed(id),
            _ => self.body_passed(id),
        }
    }

    /// The filter let the request headers through.
    pub(super) fn headers_passed(&mut self, id: u32) {
        let kong = self.cfg.rules.request_body_whole();
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        s.stage = RequestStage::Body;
        let no_body = s.req_eos_seen && s.held_body.is_empty();
        // Envoy sends headers upstream as soon as the filter continues; Kong proxies after
        // reading the whole body in the content phase (hosts.md §4.8).
        if !kong || no_body {
            self.forward_headers(id);
        }
        if no_body {
            if let Some(s) = self.stream_mut(id) {
                s.stage = RequestStage::Complete;
            }
            return;
        }
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        if !s.held_body.is_empty() || s.held_eos {
            let held = std::mem::take(&mut s.held_body);
            let eos = s.held_eos;
            s.held_eos = false;
            let _ = self.deliver_request_body(id, &held, eos);
        }
    }

    /// The filter let the buffered request body through.
    ///
    /// Kong sets `content_length_n` from the body the filter leaves (`ngx_http_wasm_set_req_body`),
    /// so a request whose body the filter replaced goes upstream with a matching
    /// `content-length`; Envoy sends the headers as the filter left them.
    pub(super) fn body_passed(&mut self, id: u32) {
        let kong = self.cfg.rules.request_body_whole();
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        let bytes = std::mem::take(&mut s.req_buf);
        s.req_buffering = false;
        if s.stage == RequestStage::Headers {
            // Envoy: Continue from the body callback resumes the stopped headers first.
            s.stage = RequestStage::Body;
            s.request_paused = false;
        }
        let eos = s.req_eos_seen;
        if kong && eos && s.upstream_headers.is_none() {
            let len = bytes.len().to_string();
            for (k, v) in s.request_headers.iter_mut() {
                if k.eq_ignore_ascii_case(b"content-length") {
                    *v = len.clone().into_bytes();
                }
            }
        }
        self.forward_body(id, &bytes, eos);
    }

    /// Snapshot of the request headers as sent upstream.
    pub(super) fn forward_headers(&mut self, id: u32) {
        if let Some(s) = self.stream_mut(id) {
            if s.upstream_headers.is_none() {
                s.upstream_headers = Some(s.request_headers.clone());
                s.reached_upstream = true;
            }
        }
    }

    pub(super) fn forward_body(&mut self, id: u32, bytes: &[u8], eos: bool) {
        self.forward_headers(id);
        if let Some(s) = self.stream_mut(id) {
            s.upstream_body.extend_from_slice(bytes);
            if eos {
                s.stage = RequestStage::Complete;
            }
        }
    }

    /// Feeds a chunk of the client's request body; returns the bytes forwarded upstream now.
    ///
    /// Kong accumulates the chunks and calls `on_http_request_body(len, eof=true)` once, at
    /// `end_of_stream`, never for an empty body; a body over `client_body_buffer_size` is
    /// "buffered to file" and unreadable (hosts.md §4.8). Envoy calls it per chunk (frame);
    /// Pause means StopIterationAndBuffer: the next call sees the whole buffered body, and a
    /// buffered body over `envoy_buffer_limit` gets 413 (§5.6).
    pub fn request_body(&mut self, id: StreamId, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        let id = id.0;
        let kong = self.cfg.rules.request_body_whole();
        let gate = self.gate(id, Phase::RequestBody);
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        if s.stage == RequestStage::Complete {
            return Vec::new();
        }
        s.request_body_seen.extend_from_slice(chunk);
        if end_of_stream {
            s.req_eos_seen = true;
        }
        match gate {
            Gate::Stop => return Vec::new(),
            Gate::Skip => {
                self.forward_body(id, chunk, end_of_stream);
                return chunk.to_vec();
            }
            Gate::Run => {}
        }
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        // Envoy still calls decodeData on a filter that stopped at the headers (Continue there
        // sends the headers first, FilterDataStatus docs); Kong runs the body step only
        // after the access phase resumed.
        let envoy_stopped_at_headers =
            !kong && s.stage == RequestStage::Headers && s.request_paused;
        if !envoy_stopped_at_headers
            && (s.stage == RequestStage::Headers || s.request_paused && !s.req_buffering)
        {
            // Paused at the headers: the gateway holds the body until the filter resumes.
            s.held_body.extend_from_slice(chunk);
            s.held_eos |= end_of_stream;
            return Vec::new();
        }
        let out = self.deliver_request_body(id, chunk, end_of_stream);
        self.process_resumes();
        out
    }

    pub(super) fn deliver_request_body(&mut self, id: u32, chunk: &[u8], eos: bool) -> Vec<u8> {
        let opts = self.cfg.opts.clone();
        let kong = self.cfg.rules.request_body_whole();
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        if kong {
            s.req_buf.extend_from_slice(chunk);
            if !eos {
                return Vec::new();
            }
            if s.req_buf.is_empty() {
                // "No `on_http_request_body` call when there is no body."
                self.forward_body(id, &[], true);
                return Vec::new();
            }
            s.req_body_unreadable = opts
                .client_body_buffer_size
                .is_some_and(|limit| s.req_buf.len() > limit);
        } else {
            if s.req_buffering && s.req_buf.len() + chunk.len() > opts.envoy_buffer_limit {
                s.local_response = Some(LocalResponse {
                    status: 413,
                    details: "request_payload_too_large".to_string(),
                    headers: Vec::new(),
                    body: b"Payload Too Large".to_vec(),
                    from_filter: false,
                });
                s.stage = RequestStage::Complete;
                return Vec::new();
            }
            s.req_buf.extend_from_slice(chunk);
        }
        let size = len_u32(s.req_buf.len());
        let f = self.ex.as_ref().and_then(|e| e.on_request_body.clone());
        let r = self.invoke(Phase::RequestBody, id, f, (id, size, u32::from(eos)));
        let paused = matches!(r, Invoke::Done(PAUSE));
        let before = self.stream(id).map_or(0, |s| s.upstream_body.len());
        if paused && !kong {
            // Envoy StopIterationAndBuffer: keep buffering; at end of stream the request waits
            // for `proxy_continue_stream`.
            if let Some(s) = self.stream_mut(id) {
                if s.local_response.is_none() {
                    s.req_buffering = true;
                    s.request_paused_ever = true;
                    if eos {
                        s.request_paused = true;
                    }
                    return Vec::new();
                }
            }
        }
        self.after_request_callback(id, Phase::RequestBody, r);
        self.stream(id)
            .map(|s| s.upstream_body[before.min(s.upstream_body.len())..].to_vec())
            .unwrap_or_default()
    }

    /// The request as the upstream received it so far: headers after the filter's edits
    /// (pseudo-headers included; empty until the request was forwarded) and the body bytes.
    pub fn upstream_request(&self, id: StreamId) -> (Vec<(String, String)>, Vec<u8>) {
        match self.stream(id.0) {
            Some(s) => (
                s.upstream_headers
                    .as_deref()
                    .map(pairs_to_strings)
                    .unwrap_or_default(),
                s.upstream_body.clone(),
            ),
            None => (Vec::new(), Vec::new()),
        }
    }
}
