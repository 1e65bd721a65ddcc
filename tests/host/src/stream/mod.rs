//! The request/response path of [`Host`]: one HTTP context per stream, driven phase by phase.
//!
//! Callers (the gateway mode, abort tests, [`Host::exchange`]) feed what a client and an
//! upstream would send; the host runs the filter's callbacks with each gateway's delivery rules
//! and records what the upstream and the client receive.

mod request;
mod response;

use crate::exchange::ExchangeOutcome;
use crate::host::{len_u32, Health, Host, Invoke, StreamId};
use crate::personality::{Personality, TrapEffect};
use crate::state::{
    find_pair, pairs_from_strs, pairs_to_strings, Phase, RequestStage, StreamState,
};

/// `proxy_action_t`: CONTINUE = 0, PAUSE = 1.
const PAUSE: u32 = 1;

/// Whether the filter runs for a stream step.
enum Gate {
    Run,
    /// The filter is out of the picture: traffic passes unchanged.
    Skip,
    /// The stream is finished (local response or reset).
    Stop,
}

impl Host {
    fn stream(&self, id: u32) -> Option<&StreamState> {
        self.store.data().rec.streams.get(&id)
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut StreamState> {
        self.store.data_mut().rec.streams.get_mut(&id)
    }

    fn now_ns(&self) -> u64 {
        self.store.data().rec.clock.unix_ns()
    }

    /// Decides whether the filter runs for stream `id` now.
    fn gate(&mut self, id: u32, phase: Phase) -> Gate {
        let generation = self.store.data().rec.generation;
        let health = self.health;
        let opts = &self.cfg.opts;
        let rules = self.cfg.rules;
        let Some(s) = self.store.data_mut().rec.streams.get_mut(&id) else {
            return Gate::Stop;
        };
        if s.ended || s.local_response.is_some() || s.reset {
            return Gate::Stop;
        }
        if s.filter_skipped {
            return Gate::Skip;
        }
        if s.generation != generation {
            // Kong recycled the instance under this request: "filter chain failed resuming:
            // previous error (instance trapped)" (hosts.md §4.11).
            s.filter_skipped = true;
            return Gate::Skip;
        }
        match health {
            Health::Running => Gate::Run,
            Health::Trapped => {
                s.filter_skipped = true;
                Gate::Skip
            }
            Health::Failed => {
                // Envoy: every later callback of a failed VM fails the stream (§5.1).
                s.filter_skipped = true;
                match rules.trap_effect(opts, phase, s.client_headers.is_some()) {
                    TrapEffect::PassThrough => Gate::Skip,
                    TrapEffect::Local(resp) => {
                        s.local_response = Some(resp);
                        s.stage = RequestStage::Complete;
                        Gate::Stop
                    }
                    TrapEffect::Reset => {
                        s.reset = true;
                        Gate::Stop
                    }
                }
            }
        }
    }

    /// Applies the personality's trap policy to the stream whose callback trapped.
    pub(crate) fn stream_trapped(&mut self, id: u32, phase: Phase, message: String) {
        let opts = self.cfg.opts.clone();
        let rules = self.cfg.rules;
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        // A callout response for a request still waiting on it counts as a request phase.
        let phase = if phase == Phase::HttpCallResponse && s.stage != RequestStage::Complete {
            Phase::RequestHeaders
        } else {
            phase
        };
        s.trap = Some(message);
        s.filter_skipped = true;
        match rules.trap_effect(&opts, phase, s.client_headers.is_some()) {
            TrapEffect::PassThrough => {}
            TrapEffect::Local(resp) => {
                if s.client_headers.is_none() {
                    s.local_response = Some(resp);
                    s.stage = RequestStage::Complete;
                } else {
                    s.reset = true;
                }
            }
            TrapEffect::Reset => s.reset = true,
        }
    }

    /// Starts a stream: creates its HTTP context and runs `on_http_request_headers`.
    ///
    /// `headers` should carry the pseudo-headers `:method`, `:path`, `:authority` and
    /// `:scheme`, as both gateways expose them. `end_of_stream` is true when no body follows;
    /// Kong passes `false` to the filter regardless (hosts.md §4.1).
    ///
    /// Requests that cannot reach the filter are answered here: Kong with a failed
    /// `on_configure` gives 500 (§3.4); Envoy after a trap gives 503 `wasm_fail_stream`, or
    /// skips the filter with `fail_open` (§5.1). Kong replaces a trapped instance first (§4.11).
    pub fn begin(&mut self, headers: &[(&str, &str)], end_of_stream: bool) -> StreamId {
        self.begin_pairs(pairs_from_strs(headers), end_of_stream)
    }

    /// [`Host::begin`] with headers as bytes, for names and values that are not UTF-8 (a
    /// gateway that accepts them hands them to the filter as they came).
    pub fn begin_pairs(
        &mut self,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        end_of_stream: bool,
    ) -> StreamId {
        self.recover();
        let id = self.next_context_id();
        let now = self.now_ns();
        let generation = self.store.data().rec.generation;
        let mut s = StreamState::new(id, generation, headers, now);
        s.req_eos_seen = end_of_stream;
        if self.cfg.rules.lowercase_header_names() {
            for (k, _) in &mut s.request_headers {
                k.make_ascii_lowercase();
            }
        }
        self.store.data_mut().rec.streams.insert(id, s);

        let gate_response = match self.health {
            Health::Failed => Some(self.cfg.rules.failed_vm_response(&self.cfg.opts)),
            Health::Trapped => Some(Some(self.cfg.rules.configure_failed_response())),
            Health::Running if !self.configured => {
                Some(Some(self.cfg.rules.configure_failed_response()))
            }
            Health::Running => None,
        };
        if let Some(resp) = gate_response {
            let s = self.stream_mut(id).expect("inserted above");
            s.filter_skipped = true;
            match resp {
                Some(r) => {
                    s.local_response = Some(r);
                    s.stage = RequestStage::Complete;
                }
                None => self.forward_headers(id),
            }
            return StreamId(id);
        }

        let root = self.store.data().vm.root_id;
        let ex = self.ex.clone();
        let create = ex.as_ref().and_then(|e| e.on_context_create.clone());
        if let Invoke::Trapped(m) = self.invoke(Phase::ContextCreate, id, create, (id, root)) {
            self.stream_trapped(id, Phase::RequestHeaders, m);
            return StreamId(id);
        }
        let n = len_u32(self.stream(id).map_or(0, |s| s.request_headers.len()));
        let eof = u32::from(self.cfg.rules.header_eof(end_of_stream));
        let f = ex.as_ref().and_then(|e| e.on_request_headers.clone());
        let r = self.invoke(Phase::RequestHeaders, id, f, (id, n, eof));
        self.after_request_callback(id, Phase::RequestHeaders, r);
        self.process_resumes();
        StreamId(id)
    }

    /// Resumes streams the filter continued (`proxy_continue_stream`) or whose request-phase
    /// callouts all completed (Kong), and finishes deferred `on_done` (Envoy `proxy_done`).
    pub(crate) fn process_resumes(&mut self) {
        let ids: Vec<u32> = self
            .store
            .data()
            .rec
            .streams
            .values()
            .filter(|s| s.resume_requested || s.response_resume_requested || s.done_requested)
            .map(|s| s.id)
            .collect();
        for id in ids {
            let Some(s) = self.stream_mut(id) else {
                continue;
            };
            if std::mem::take(&mut s.done_requested) {
                self.finish_end(id);
                continue;
            }
            if std::mem::take(&mut s.response_resume_requested) && s.resp_buffering {
                s.resp_buffering = false;
                let bytes = std::mem::take(&mut s.resp_buf);
                s.client_body.extend_from_slice(&bytes);
            }
            let Some(s) = self.stream_mut(id) else {
                continue;
            };
            if !std::mem::take(&mut s.resume_requested) || !s.request_paused {
                continue;
            }
            s.request_paused = false;
            s.paused_for_callouts = false;
            match s.stage {
                RequestStage::Headers => self.headers_passed(id),
                RequestStage::Body => self.body_passed(id),
                RequestStage::Complete => {}
            }
        }
    }

    /// Ends the stream: runs the final callbacks in the gateway's order (Kong `on_log` then
    /// `on_done`, hosts.md §4.1; Envoy `on_done` then `on_log`, the ABI order), then
    /// `on_delete`. Pending callouts of the context are cancelled (Envoy, §5.2; Kong has no
    /// context left to deliver them to).
    ///
    /// On Envoy, `on_done` returning false defers `on_log`/`on_delete` until the filter calls
    /// `proxy_done`.
    pub fn end(&mut self, id: StreamId) {
        let id = id.0;
        let now = self.now_ns();
        let Some(s) = self.stream_mut(id) else {
            return;
        };
        if s.ended || s.done_called {
            return;
        }
        s.done_called = true;
        s.end_ns = Some(now);
        let runs = match self.gate(id, Phase::Log) {
            Gate::Run => true,
            // A local response still ends with the stream's callbacks if the filter is alive.
            Gate::Stop => self.stream(id).is_some_and(|s| {
                !s.filter_skipped
                    && s.generation == self.store.data().rec.generation
                    && self.health == Health::Running
            }),
            Gate::Skip => false,
        };
        if runs {
            let ex = self.ex.clone();
            for phase in self.cfg.rules.end_order() {
                let r = match phase {
                    Phase::Log => {
                        let f = ex.as_ref().and_then(|e| e.on_log.clone());
                        match self.invoke(Phase::Log, id, f, id) {
                            Invoke::Trapped(m) => Err(m),
                            _ => Ok(true),
                        }
                    }
                    _ => {
                        let f = ex.as_ref().and_then(|e| e.on_done.clone());
                        match self.invoke(Phase::Done, id, f, id) {
                            Invoke::Trapped(m) => Err(m),
                            Invoke::Done(0) => Ok(false),
                            _ => Ok(true),
                        }
                    }
                };
                match r {
                    Err(m) => {
                        self.stream_trapped(id, phase, m);
                        break;
                    }
                    Ok(false) if self.cfg.opts.personality == Personality::Envoy => {
                        // Spec: on_log and on_delete follow `proxy_done`.
                        if let Some(s) = self.stream_mut(id) {
                            s.done_deferred = true;
                        }
                        self.cancel_callouts_of(id);
                        return;
                    }
                    Ok(_) => {}
                }
            }
            if self.stream(id).is_some_and(|s| s.trap.is_none()) {
                let f = ex.as_ref().and_then(|e| e.on_delete.clone());
                if let Invoke::Trapped(m) = self.invoke(Phase::Delete, id, f, id) {
                    self.stream_trapped(id, Phase::Delete, m);
                }
            }
        }
        if let Some(s) = self.stream_mut(id) {
            s.ended = true;
        }
        self.cancel_callouts_of(id);
    }

    /// Envoy: after `proxy_done`, runs the deferred `on_log` and `on_delete`.
    fn finish_end(&mut self, id: u32) {
        let ex = self.ex.clone();
        let f = ex.as_ref().and_then(|e| e.on_log.clone());
        if let Invoke::Trapped(m) = self.invoke(Phase::Log, id, f, id) {
            self.stream_trapped(id, Phase::Log, m);
        } else {
            let f = ex.as_ref().and_then(|e| e.on_delete.clone());
            if let Invoke::Trapped(m) = self.invoke(Phase::Delete, id, f, id) {
                self.stream_trapped(id, Phase::Delete, m);
            }
        }
        if let Some(s) = self.stream_mut(id) {
            s.ended = true;
        }
    }

    /// What happened to stream `id` so far, from the client's and the upstream's side.
    pub fn outcome(&self, id: StreamId) -> Option<ExchangeOutcome> {
        let s = self.stream(id.0)?;
        let (client_status, client_headers, client_body) = match (&s.local_response, s.reset) {
            (Some(l), _) => (l.status, l.headers.clone(), l.body.clone()),
            (None, _) => {
                let headers = s.client_headers.clone().unwrap_or_default();
                let status = find_pair(&headers, b":status")
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                let visible: Vec<_> = headers
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with(b":"))
                    .collect();
                (status, pairs_to_strings(&visible), s.client_body.clone())
            }
        };
        Some(ExchangeOutcome {
            stream: id,
            client_status,
            client_headers,
            client_body,
            upstream_headers: s
                .upstream_headers
                .as_deref()
                .map(pairs_to_strings)
                .unwrap_or_default(),
            upstream_body: s.upstream_body.clone(),
            reached_upstream: s.reached_upstream,
            local_response: s.local_response.clone(),
            paused_request: s.request_paused_ever,
            request_stalled: s.request_paused && s.stage != RequestStage::Complete,
            paused_response: s.paused_response,
            response_reset: s.reset,
            trap: s.trap.clone(),
        })
    }
}

impl Gate {
    fn is_run(&self) -> bool {
        matches!(self, Gate::Run)
    }
}
