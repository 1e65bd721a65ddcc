//! `FilterHttp`: copies what a traced exchange carries into a [`Capture`] and always answers
//! `Continue`. Response bodies are never paused: each chunk is forwarded as it arrives. The
//! finished record goes to the root's export queue; nothing is dispatched from here (Kong traps
//! on dispatches from response phases and `on_log`, Envoy cancels a stream's callouts when the
//! stream ends).

use super::host;
use super::root::Active;
use crate::capture::{Capture, RequestStart};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

/// The HTTP context; inert when the filter is not active or the route is not traced.
pub struct FilterHttp {
    active: Option<Rc<Active>>,
    capture: Option<Capture>,
}

impl FilterHttp {
    /// A context sharing the root's state.
    pub fn new(active: Option<Rc<Active>>) -> Self {
        FilterHttp {
            active,
            capture: None,
        }
    }

    fn start(&mut self, active: &Active) {
        let Some(path) = host::header(MapType::HttpRequestHeaders, ":path") else {
            return;
        };
        let authority = host::header(MapType::HttpRequestHeaders, ":authority");
        let authority_str = authority.as_deref().unwrap_or("");
        let Some(traced) = active.config.traced(&path, authority_str) else {
            return;
        };
        let mut start = RequestStart {
            // Empty: the capture names the provider once it knows the protocol.
            provider: traced.provider.unwrap_or_default().to_string(),
            authority,
            user: non_empty(host::header(
                MapType::HttpRequestHeaders,
                &active.config.user_header,
            )),
            session: non_empty(host::header(
                MapType::HttpRequestHeaders,
                &active.config.session_header,
            )),
            now_ns: host::now_ns(),
            path,
            ..RequestStart::default()
        };
        {
            let mut ids = active.ids.borrow_mut();
            ids.fill(&mut start.trace_id);
            ids.fill(&mut start.span_id);
            ids.fill(&mut start.entropy);
        }
        if active.config.force_identity_encoding {
            // Neither host decompresses for filters: ask the upstream for plain bytes.
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "accept-encoding",
                Some("identity"),
            );
        }
        let max_body = active.config.max_body_bytes;
        self.capture = Some(match traced.protocol {
            Some(protocol) => Capture::new(start, protocol, max_body),
            None => Capture::sniffing(start, max_body),
        });
    }

    /// Hands the record to the export queue, once.
    fn finish(&mut self) {
        let (Some(active), Some(capture)) = (&self.active, self.capture.take()) else {
            return;
        };
        let record = capture.finish(host::now_ns());
        if let Some(metrics) = &active.metrics {
            metrics.borrow().traced(record.error.is_some());
        }
        active.exporter.borrow_mut().push(record);
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl Context for FilterHttp {
    fn on_done(&mut self) -> bool {
        self.finish();
        true
    }
}

impl HttpContext for FilterHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        if let Some(active) = self.active.clone() {
            self.start(&active);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if let Some(capture) = &mut self.capture {
            let chunk = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
                .ok()
                .flatten();
            let chunk = match (chunk, size) {
                (None, 0) => Some(Vec::new()),
                (other, _) => other,
            };
            capture.request_chunk(chunk.as_deref(), end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if let Some(capture) = &mut self.capture {
            let status = host::header(MapType::HttpResponseHeaders, ":status")
                .and_then(|s| s.trim().parse().ok());
            capture.response_headers(
                status,
                host::header(MapType::HttpResponseHeaders, "content-type").as_deref(),
                host::header(MapType::HttpResponseHeaders, "content-encoding").as_deref(),
            );
            if end_of_stream {
                capture.response_end();
                self.finish();
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if let Some(capture) = &mut self.capture {
            if size > 0 {
                if let Ok(Some(chunk)) =
                    hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
                {
                    capture.response_chunk(&chunk, host::now_ns());
                }
            }
            if end_of_stream {
                capture.response_end();
                self.finish();
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish();
    }
}
