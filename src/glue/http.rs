//! `FilterHttp`: copies what a traced exchange carries into a [`Capture`]. Response bodies are
//! never paused: each chunk is forwarded as it arrives (with `inject_stream_usage`, minus what
//! the injection added). The request body is only held when the configuration asks to edit it
//! (`strip_request_metadata`, `inject_stream_usage`). The finished record goes through the
//! policy to the root's export queue; nothing is dispatched from here (Kong traps on
//! dispatches from response phases and `on_log`, Envoy cancels a stream's callouts when the
//! stream ends).

use super::host;
use super::root::Active;
use crate::capture::{Capture, RequestStart};
use crate::config::{CaptureMode, Config};
use crate::context::{self, Context};
use crate::header_map;
use crate::policy::{self, Omit};
use crate::protocols::Protocol;
use crate::rewrite::{self, RequestEdits, UsageChunkFilter};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::HttpContext;
use proxy_wasm::types::{Action, BufferType, MapType};
use serde_json::Value;
use std::rc::Rc;

/// The HTTP context; inert when the filter is not active or the route is not traced.
pub struct FilterHttp {
    active: Option<Rc<Active>>,
    capture: Option<Capture>,
    mode: CaptureMode,
    omit: Omit,
    /// Request edits still to make once the whole body is here.
    edits: Option<RequestEdits>,
    /// Filters what `include_usage` added out of the client's stream.
    usage_filter: Option<UsageChunkFilter>,
    /// Whether the injected usage is to be hidden (set once the request was edited).
    injected_usage: bool,
    /// The `route` metric label.
    route: String,
}

impl FilterHttp {
    /// A context sharing the root's state.
    pub fn new(active: Option<Rc<Active>>) -> Self {
        FilterHttp {
            active,
            capture: None,
            mode: CaptureMode::Full,
            omit: Omit::default(),
            edits: None,
            usage_filter: None,
            injected_usage: false,
            route: String::new(),
        }
    }

    /// Reads the request headers; returns whether the headers must wait for the body (Envoy,
    /// with a body edit to make, so `content-length` can still be set).
    fn start(&mut self, active: &Active) -> bool {
        let config = &active.config;
        // One hostcall for every header the filter looks up, instead of one per name.
        let raw = host::header_map_bytes(MapType::HttpRequestHeaders);
        let headers = header_map::decode(&raw);
        let lookup = lookup_in(MapType::HttpRequestHeaders, headers.as_deref());
        let omit = take_omit_header(config, &lookup);
        let Some(path) = lookup(":path") else {
            return false;
        };
        let authority = lookup(":authority");
        let Some(traced) = config.traced(&path, authority.as_deref().unwrap_or("")) else {
            return false;
        };
        let route = traced.route;
        self.route = route
            .and_then(|r| r.name.as_deref())
            .unwrap_or("default")
            .to_string();
        self.mode = config.capture_for(route);
        if self.mode == CaptureMode::Off || omit.all {
            return false;
        }
        self.omit = omit;
        let mut ctx = context::resolve_with(
            &config.context,
            route.and_then(|r| r.context.as_ref()),
            &lookup,
            &mut active.key_prints.borrow_mut(),
        );
        if config.context.gateway_metadata {
            gateway_metadata(&mut ctx, active.envoy);
        }
        let mut start = RequestStart {
            // Empty: the capture names the provider once it knows the protocol.
            provider: traced.provider.unwrap_or_default().to_string(),
            authority,
            context: ctx,
            body_context: config.context.from_body,
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
        if config.force_identity_encoding {
            // Neither host decompresses for filters: ask the upstream for plain bytes.
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                "accept-encoding",
                Some("identity"),
            );
        }
        let edits = RequestEdits {
            strip_metadata: config.strip_request_metadata_for(route),
            include_usage: config.inject_stream_usage_for(route)
                && traced.protocol == Some(Protocol::OpenAiChat),
        };
        let max_body = config.max_body_bytes;
        self.capture = Some(match traced.protocol {
            Some(protocol) => Capture::new(start, protocol, max_body),
            None => Capture::sniffing(start, max_body),
        });
        if edits == RequestEdits::default() {
            return false;
        }
        self.edits = Some(edits);
        active.envoy
    }

    /// Edits the whole request body when asked to; returns the body the trace should see
    /// (the caller's original).
    fn edit_body(&mut self, size: usize, envoy: bool) -> Option<Vec<u8>> {
        let edits = self.edits.take()?;
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .ok()
            .flatten()?;
        let edited = rewrite::edit_request(&body, edits);
        if let Some(new_body) = &edited.body {
            if hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, new_body).is_ok() {
                self.injected_usage = edited.injected_usage;
                if envoy {
                    // Kong sets content-length from the new body itself.
                    let len = new_body.len().to_string();
                    let _ = hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        "content-length",
                        Some(&len),
                    );
                }
            }
        }
        Some(body)
    }

    /// Hands the record to the export queue, once.
    fn finish(&mut self) {
        let (Some(active), Some(capture)) = (&self.active, self.capture.take()) else {
            return;
        };
        let mut record = capture.finish(host::now_ns());
        policy::price(
            &mut record,
            &active.config,
            &mut active.price_memo.borrow_mut(),
        );
        if let Some(metrics) = &active.metrics {
            metrics.borrow_mut().exchange(&record, &self.route);
        }
        if policy::finalize(&mut record, &active.config, self.mode, self.omit) {
            active.exporter.borrow_mut().push(record);
        }
    }
}

/// The most header pairs Kong's `proxy_get_header_map_pairs` returns; it leaves out the rest.
const KONG_MAX_PAIRS: usize = 100;

/// Looks headers up in the `pairs` read from `map` in one hostcall. Past Kong's 100 pairs, a
/// name not among them is asked for alone, and so is every name when the map could not be
/// read (`None`).
fn lookup_in<'a>(
    map: MapType,
    pairs: Option<&'a [(&'a [u8], &'a [u8])]>,
) -> impl Fn(&str) -> Option<String> + 'a {
    let whole = pairs.is_some_and(|p| p.len() < KONG_MAX_PAIRS);
    let pairs = pairs.unwrap_or_default();
    move |name: &str| match header_map::first(pairs, name) {
        None if !whole => host::header(map, name),
        found => found,
    }
}

/// Reads and removes the opt-out header, so the upstream never sees it.
fn take_omit_header(config: &Config, lookup: &dyn Fn(&str) -> Option<String>) -> Omit {
    match lookup(&config.omit_header) {
        Some(value) => {
            let _ =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, &config.omit_header, None);
            Omit::parse(&value)
        }
        None => Omit::default(),
    }
}

/// The gateway's route and service (Kong) or route and upstream cluster (Envoy), as metadata.
fn gateway_metadata(ctx: &mut Context, envoy: bool) {
    let properties: &[(&[&str], &str)] = if envoy {
        &[
            (&["xds", "route_name"], "envoy.route_name"),
            (&["xds", "cluster_name"], "envoy.cluster_name"),
        ]
    } else {
        &[
            (&["kong", "route_id"], "kong.route_id"),
            (&["kong", "route_name"], "kong.route_name"),
            (&["kong", "service_id"], "kong.service_id"),
            (&["kong", "service_name"], "kong.service_name"),
        ]
    };
    for (path, key) in properties {
        if let Some(value) = host::property(path) {
            ctx.metadata
                .entry((*key).to_string())
                .or_insert(Value::String(value));
        }
    }
}

impl proxy_wasm::traits::Context for FilterHttp {
    fn on_done(&mut self) -> bool {
        self.finish();
        true
    }
}

impl HttpContext for FilterHttp {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else {
            return Action::Continue;
        };
        let wait_for_body = self.start(&active);
        if end_of_stream {
            self.edits = None;
            return Action::Continue;
        }
        if wait_for_body {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if self.capture.is_none() {
            return Action::Continue;
        }
        if self.edits.is_some() {
            // Hold the body until it is whole (Envoy buffers it; Kong delivers it whole).
            if !end_of_stream {
                return Action::Pause;
            }
            let envoy = self.active.as_ref().is_some_and(|a| a.envoy);
            let original = self.edit_body(size, envoy);
            if let Some(capture) = &mut self.capture {
                capture.request_chunk(original.as_deref(), true);
            }
            return Action::Continue;
        }
        if let Some(capture) = &mut self.capture {
            let chunk = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
                .ok()
                .flatten();
            let chunk = match (chunk, size) {
                (None, 0) => Some(Vec::new()),
                (other, _) => other,
            };
            capture.request_chunk_owned(chunk, end_of_stream);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        if let Some(capture) = &mut self.capture {
            let raw = host::header_map_bytes(MapType::HttpResponseHeaders);
            let headers = header_map::decode(&raw);
            let lookup = lookup_in(MapType::HttpResponseHeaders, headers.as_deref());
            let status = lookup(":status").and_then(|s| s.trim().parse().ok());
            let content_type = lookup("content-type");
            capture.response_headers(
                status,
                content_type.as_deref(),
                lookup("content-encoding").as_deref(),
            );
            let event_stream = content_type
                .as_deref()
                .is_some_and(|t| t.trim_start().starts_with("text/event-stream"));
            if self.injected_usage && event_stream && status == Some(200) {
                // The stream's length changes: let the gateway frame it.
                let _ =
                    hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
                let max = self
                    .active
                    .as_ref()
                    .map_or(1 << 20, |a| a.config.max_body_bytes);
                self.usage_filter = Some(UsageChunkFilter::new(max));
            }
            if end_of_stream {
                capture.response_end();
                self.finish();
            }
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if let Some(capture) = &mut self.capture {
            let chunk = if size > 0 {
                hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
                    .ok()
                    .flatten()
            } else {
                None
            };
            if let Some(chunk) = &chunk {
                // One hostcall less per chunk once the first token is timed.
                let now = if capture.awaits_first_token() {
                    host::now_ns()
                } else {
                    0
                };
                capture.response_chunk(chunk, now);
            }
            if let Some(filter) = &mut self.usage_filter {
                let out = filter.push(chunk.as_deref().unwrap_or_default(), end_of_stream);
                if out.len() != size || chunk.as_deref() != Some(&out[..]) {
                    let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &out);
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
