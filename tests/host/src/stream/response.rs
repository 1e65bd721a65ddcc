//! The response half of a stream: headers and body from the upstream to the client, with each
//! gateway's delivery rules (hosts.md §4.8 for Kong, §5.6 for Envoy).

use super::{Gate, PAUSE};
use crate::host::{len_u32, Host, Invoke, StreamId};
use crate::personality::Personality;
use crate::state::{find_pair, pairs_from_strs, LogLevel, LogSource, Phase};

impl Host {
    /// Feeds the upstream's response headers (including `:status`) and runs
    /// `on_http_response_headers`. `end_of_stream` is true when no body follows (Kong passes
    /// `false` to the filter regardless, hosts.md §4.1).
    ///
    /// A Pause here is recorded (see [`crate::ExchangeOutcome::paused_response`]) and the headers go
    /// out anyway.
    pub fn response_headers(
        &mut self,
        id: StreamId,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) {
        let id = id.0;
        let lower = self.cfg.rules.lowercase_header_names();
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        if s.ended || s.local_response.is_some() || s.reset {
            return;
        }
        s.response_headers = pairs_from_strs(headers);
        if lower {
            for (k, _) in &mut s.response_headers {
                k.make_ascii_lowercase();
            }
        }
        s.response_content_length = find_pair(&s.response_headers, b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok());
        s.response_started = true;
        match self.gate(id, Phase::ResponseHeaders) {
            Gate::Stop => return,
            Gate::Skip => {
                if let Some(s) = self.stream_mut(id) {
                    s.client_headers = Some(s.response_headers.clone());
                }
                return;
            }
            Gate::Run => {}
        }
        let n = len_u32(self.stream(id).map_or(0, |s| s.response_headers.len()));
        let eof = u32::from(self.cfg.rules.header_eof(end_of_stream));
        let f = self.ex.as_ref().and_then(|e| e.on_response_headers.clone());
        let r = self.invoke(Phase::ResponseHeaders, id, f, (id, n, eof));
        match r {
            Invoke::Trapped(m) => self.stream_trapped(id, Phase::ResponseHeaders, m),
            Invoke::Done(PAUSE) => {
                self.host_log(
                    LogLevel::Warn,
                    "filter paused on_http_response_headers; headers sent anyway".to_string(),
                );
                if let Some(s) = self.stream_mut(id) {
                    s.paused_response = true;
                }
            }
            _ => {}
        }
        if let Some(s) = self.stream_mut(id) {
            if s.local_response.is_none() && !s.reset {
                s.client_headers = Some(s.response_headers.clone());
            }
        }
        self.process_resumes();
    }

    /// Feeds a chunk of the upstream's response body; returns the bytes forwarded to the
    /// client now.
    ///
    /// Kong calls `on_http_response_body` per chunk with `eof` true when the bytes reach
    /// `Content-Length`, and otherwise ends with a 0-byte `eof=true` call; Pause makes it
    /// buffer (up to `kong_response_body_buffers`) and call again with everything buffered
    /// (hosts.md §4.8). Envoy calls it per chunk as given; Pause buffers until Continue, and a
    /// buffer over `envoy_buffer_limit` resets the stream (§5.6). Both record the Pause.
    pub fn response_body(&mut self, id: StreamId, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
        let id = id.0;
        let gate = self.gate(id, Phase::ResponseBody);
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        if s.client_headers.is_none() && gate.is_run() {
            return Vec::new();
        }
        s.response_bytes_seen += chunk.len();
        let out = match gate {
            Gate::Stop => Vec::new(),
            Gate::Skip => {
                s.client_body.extend_from_slice(chunk);
                chunk.to_vec()
            }
            Gate::Run if self.cfg.opts.personality == Personality::Kong => {
                self.kong_response_body(id, chunk, end_of_stream)
            }
            Gate::Run => self.envoy_response_body(id, chunk, end_of_stream),
        };
        self.process_resumes();
        out
    }

    pub(super) fn kong_response_body(&mut self, id: u32, chunk: &[u8], eos: bool) -> Vec<u8> {
        let cap = self.cfg.opts.kong_response_body_buffers;
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        let cl_reached = s
            .response_content_length
            .is_some_and(|cl| s.response_bytes_seen >= cl);
        let at_end = eos || cl_reached;
        let mut out = Vec::new();
        if s.resp_buffering {
            s.resp_buf.extend_from_slice(chunk);
            let full = s.resp_buf.len() >= cap;
            if !(full || at_end) {
                return Vec::new();
            }
            // "on_http_response_body runs again with everything buffered, eof=true if it all
            // fit or eof=false when the buffers filled".
            s.resp_buffering = false;
            let buffered = std::mem::take(&mut s.resp_buf);
            let eof = at_end && !full;
            out.extend(self.kong_body_call(id, &buffered, eof));
        } else if !chunk.is_empty() {
            out.extend(self.kong_body_call(id, chunk, cl_reached));
        }
        let needs_final = self
            .stream(id)
            .is_some_and(|s| at_end && !s.resp_eof_delivered && !s.resp_buffering);
        if needs_final && self.gate(id, Phase::ResponseBody).is_run() {
            out.extend(self.kong_body_call(id, &[], true));
        }
        out
    }

    /// One Kong `on_http_response_body(len, eof)` call; returns the bytes forwarded.
    pub(super) fn kong_body_call(&mut self, id: u32, data: &[u8], eof: bool) -> Vec<u8> {
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        s.resp_buf = data.to_vec();
        let f = self.ex.as_ref().and_then(|e| e.on_response_body.clone());
        let r = self.invoke(
            Phase::ResponseBody,
            id,
            f,
            (id, len_u32(data.len()), u32::from(eof)),
        );
        match r {
            Invoke::Trapped(m) => {
                self.stream_trapped(id, Phase::ResponseBody, m);
                // "the header/body filter ignores the Wasm return code and the response
                // continues unchanged" (hosts.md §4.11).
                return self.send_to_client(id, data.to_vec());
            }
            Invoke::Done(PAUSE) => {
                let first = self.stream(id).is_some_and(|s| !s.resp_pause_used);
                if first {
                    if let Some(s) = self.stream_mut(id) {
                        s.paused_response = true;
                        s.resp_pause_used = true;
                        s.resp_buffering = true;
                    }
                    if eof {
                        // Nothing more will arrive: run again with what was buffered.
                        let buffered = self
                            .stream_mut(id)
                            .map(|s| {
                                s.resp_buffering = false;
                                std::mem::take(&mut s.resp_buf)
                            })
                            .unwrap_or_default();
                        return self.kong_body_call(id, &buffered, true);
                    }
                    return Vec::new();
                }
                self.host_log(
                    LogLevel::Error,
                    "bad \"on_response_body\" return action: already buffering".to_string(),
                );
            }
            _ => {}
        }
        let bytes = self
            .stream_mut(id)
            .map(|s| {
                if eof {
                    s.resp_eof_delivered = true;
                }
                std::mem::take(&mut s.resp_buf)
            })
            .unwrap_or_default();
        self.send_to_client(id, bytes)
    }

    pub(super) fn envoy_response_body(&mut self, id: u32, chunk: &[u8], eos: bool) -> Vec<u8> {
        let limit = self.cfg.opts.envoy_buffer_limit;
        let Some(s) = self.stream_mut(id) else {
            return Vec::new();
        };
        if s.resp_buffering && s.resp_buf.len() + chunk.len() > limit {
            // "responses over the limit are disconnected mid-response if headers were
            // already sent" (hosts.md §5.6).
            s.reset = true;
            return Vec::new();
        }
        s.resp_buf.extend_from_slice(chunk);
        let size = len_u32(s.resp_buf.len());
        let f = self.ex.as_ref().and_then(|e| e.on_response_body.clone());
        let r = self.invoke(Phase::ResponseBody, id, f, (id, size, u32::from(eos)));
        match r {
            Invoke::Trapped(m) => {
                self.stream_trapped(id, Phase::ResponseBody, m);
                let bytes = self
                    .stream_mut(id)
                    .filter(|s| !s.reset)
                    .map(|s| std::mem::take(&mut s.resp_buf))
                    .unwrap_or_default();
                self.send_to_client(id, bytes)
            }
            Invoke::Done(PAUSE) => {
                if let Some(s) = self.stream_mut(id) {
                    s.paused_response = true;
                    s.resp_buffering = true;
                }
                Vec::new()
            }
            _ => {
                let bytes = self
                    .stream_mut(id)
                    .map(|s| {
                        s.resp_buffering = false;
                        std::mem::take(&mut s.resp_buf)
                    })
                    .unwrap_or_default();
                self.send_to_client(id, bytes)
            }
        }
    }

    pub(super) fn send_to_client(&mut self, id: u32, bytes: Vec<u8>) -> Vec<u8> {
        match self.stream_mut(id) {
            Some(s) if !s.reset => {
                s.client_body.extend_from_slice(&bytes);
                bytes
            }
            _ => Vec::new(),
        }
    }

    pub(super) fn host_log(&mut self, level: LogLevel, message: String) {
        self.store.data_mut().log(level, LogSource::Host, message);
    }
}
