//! The export queue: bounded per-sink queues of finished records, batching, one callout in
//! flight per sink, retries with exponential backoff, and exact counts of what was sent,
//! retried and dropped.
//!
//! Time comes in as an argument and callouts go out through the [`Dispatch`] trait, so this
//! module makes no host calls and is tested natively. The glue calls [`Exporter::tick`] from the
//! root context's `on_tick` and [`Exporter::on_reply`] from `on_http_call_response`: the only
//! places where both Kong and Envoy allow, and keep, a dispatch.

use crate::config::{Config, RetryConfig};
use crate::record::TraceRecord;
use crate::sinks::langfuse::LangfuseSink;
use crate::sinks::opik::OpikSink;
use crate::sinks::otlp::OtlpSink;
use crate::sinks::{classify, OutboundRequest, Sink, Verdict};
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

/// The host's `dispatch_http_call`, as the exporter needs it.
pub trait Dispatch {
    /// Sends one request; returns the callout token.
    ///
    /// # Errors
    /// The host refused the call synchronously (unknown cluster, bad headers).
    fn dispatch(
        &mut self,
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, DispatchError>;
}

/// A synchronous dispatch refusal, with the host's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchError {
    /// proxy-wasm status code (2 = BadArgument, 10 = InternalFailure, …).
    pub status: u32,
}

/// Counters per sink; the glue mirrors them into metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Records delivered.
    pub sent: u64,
    /// Callouts that failed transiently and were retried.
    pub retries: u64,
    /// Records dropped because the queue was full (oldest first).
    pub dropped_overflow: u64,
    /// Records dropped because the backend rejected them (4xx).
    pub dropped_rejected: u64,
    /// Records dropped after the last retry failed.
    pub dropped_exhausted: u64,
}

impl SinkStats {
    /// All dropped records.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_rejected + self.dropped_exhausted
    }
}

/// Something the glue should log once (never with header values or secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportEvent {
    /// The backend refused a batch.
    Rejected {
        /// Sink name.
        sink: &'static str,
        /// HTTP status.
        status: u16,
        /// Records dropped.
        records: usize,
        /// Start of the reply body, control characters removed.
        body_head: String,
    },
    /// A batch was given up after its last attempt.
    Exhausted {
        /// Sink name.
        sink: &'static str,
        /// Records dropped.
        records: usize,
        /// Attempts made.
        attempts: u32,
    },
    /// A transient failure; the batch will be tried again.
    Retrying {
        /// Sink name.
        sink: &'static str,
        /// HTTP status, `None` when the callout itself failed.
        status: Option<u16>,
        /// Delay before the next attempt.
        delay_ms: u64,
    },
    /// The host refused the dispatch synchronously.
    DispatchFailed {
        /// Sink name.
        sink: &'static str,
        /// The host's status code.
        status: u32,
    },
}

impl fmt::Display for ExportEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportEvent::Rejected { sink, status, records, body_head } => write!(
                f,
                "{sink}: backend rejected a batch with HTTP {status}; dropped {records} records: {body_head}"
            ),
            ExportEvent::Exhausted { sink, records, attempts } => write!(
                f,
                "{sink}: gave up on a batch after {attempts} attempts; dropped {records} records"
            ),
            ExportEvent::Retrying { sink, status: Some(s), delay_ms } => {
                write!(f, "{sink}: export got HTTP {s}; retrying in {delay_ms} ms")
            }
            ExportEvent::Retrying { sink, status: None, delay_ms } => {
                write!(f, "{sink}: export callout failed; retrying in {delay_ms} ms")
            }
            ExportEvent::DispatchFailed { sink, status } => {
                write!(f, "{sink}: the host refused the export callout (status {status})")
            }
        }
    }
}

/// A batch on its way: the requests still to send, in order.
struct InFlight {
    records: usize,
    requests: VecDeque<OutboundRequest>,
    attempts: u32,
    token: Option<u32>,
    not_before_ms: u64,
}

struct SinkQueue {
    sink: Box<dyn Sink>,
    queue: VecDeque<(Rc<TraceRecord>, usize)>,
    queued_bytes: usize,
    inflight: Option<InFlight>,
    stats: SinkStats,
}

impl SinkQueue {
    /// After a transient failure of the batch in flight: schedule the next attempt with
    /// backoff, or give the batch up when its attempts are spent.
    fn failed_attempt(
        &mut self,
        retry: &RetryConfig,
        now_ms: u64,
        status: Option<u16>,
        after_ms: Option<u64>,
    ) -> Option<ExportEvent> {
        let sink = self.sink.name();
        let flight = self.inflight.as_mut()?;
        if flight.attempts >= retry.max_attempts {
            let (records, attempts) = (flight.records, flight.attempts);
            self.stats.dropped_exhausted += records as u64;
            self.inflight = None;
            return Some(ExportEvent::Exhausted {
                sink,
                records,
                attempts,
            });
        }
        let delay_ms =
            backoff_ms(retry, flight.attempts).max(after_ms.unwrap_or(0).min(retry.max_backoff_ms));
        flight.not_before_ms = now_ms.saturating_add(delay_ms);
        self.stats.retries += 1;
        Some(ExportEvent::Retrying {
            sink,
            status,
            delay_ms,
        })
    }
}

/// Bounded queues and delivery state for every configured sink.
pub struct Exporter {
    sinks: Vec<SinkQueue>,
    retry: RetryConfig,
    batch_max_records: usize,
    batch_max_bytes: usize,
    queue_max_records: usize,
    queue_max_bytes: usize,
    events: Vec<ExportEvent>,
}

impl Exporter {
    /// An exporter for the sinks in `config`.
    pub fn new(config: &Config) -> Self {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(opik) = &config.opik {
            sinks.push(Box::new(OpikSink::new(opik.clone())));
        }
        if let Some(langfuse) = &config.langfuse {
            sinks.push(Box::new(LangfuseSink::new(langfuse.clone())));
        }
        if let Some(otlp) = &config.otlp {
            sinks.push(Box::new(OtlpSink::new(otlp.clone())));
        }
        Exporter::with_sinks(config, sinks)
    }

    /// An exporter over explicit sinks (limits from `config`).
    pub fn with_sinks(config: &Config, sinks: Vec<Box<dyn Sink>>) -> Self {
        Exporter {
            sinks: sinks
                .into_iter()
                .map(|sink| SinkQueue {
                    sink,
                    queue: VecDeque::new(),
                    queued_bytes: 0,
                    inflight: None,
                    stats: SinkStats::default(),
                })
                .collect(),
            retry: config.retry,
            batch_max_records: config.batch_max_records,
            batch_max_bytes: config.batch_max_bytes,
            queue_max_records: config.queue_max_records,
            queue_max_bytes: config.queue_max_bytes,
            events: Vec::new(),
        }
    }

    /// Queues a finished record for every sink, dropping the oldest where a queue is full.
    pub fn push(&mut self, record: TraceRecord) {
        let size = record.estimated_bytes();
        let record = Rc::new(record);
        for s in &mut self.sinks {
            s.queue.push_back((Rc::clone(&record), size));
            s.queued_bytes += size;
            while s.queue.len() > self.queue_max_records
                || (s.queued_bytes > self.queue_max_bytes && s.queue.len() > 1)
            {
                if let Some((_, dropped)) = s.queue.pop_front() {
                    s.queued_bytes -= dropped;
                    s.stats.dropped_overflow += 1;
                }
            }
        }
    }

    /// Starts or resumes deliveries that are due. Call from `on_tick`.
    pub fn tick(&mut self, now_ms: u64, host: &mut dyn Dispatch) {
        for i in 0..self.sinks.len() {
            self.advance(i, now_ms, host);
        }
    }

    /// Handles the reply to callout `token`: `status` is `None` when the callout failed.
    /// Returns false when the token is not one of the exporter's.
    pub fn on_reply(
        &mut self,
        token: u32,
        status: Option<u16>,
        retry_after_s: Option<u64>,
        body_head: &[u8],
        now_ms: u64,
        host: &mut dyn Dispatch,
    ) -> bool {
        let Some(i) = self
            .sinks
            .iter()
            .position(|s| s.inflight.as_ref().is_some_and(|f| f.token == Some(token)))
        else {
            return false;
        };
        let retry = self.retry;
        let s = &mut self.sinks[i];
        let name = s.sink.name();
        let verdict = classify(s.sink.as_ref(), status, retry_after_s);
        let Some(flight) = s.inflight.as_mut() else {
            return false;
        };
        flight.token = None;
        match verdict {
            Verdict::Sent => {
                flight.requests.pop_front();
                flight.attempts = 0;
                if flight.requests.is_empty() {
                    s.stats.sent += flight.records as u64;
                    s.inflight = None;
                }
            }
            Verdict::Rejected => {
                let records = flight.records;
                s.stats.dropped_rejected += records as u64;
                s.inflight = None;
                self.events.push(ExportEvent::Rejected {
                    sink: name,
                    status: status.unwrap_or(0),
                    records,
                    body_head: sanitize(body_head),
                });
            }
            Verdict::Retry { after_ms } => {
                let event = s.failed_attempt(&retry, now_ms, status, after_ms);
                self.events.extend(event);
            }
        }
        // Keep a backlog moving without waiting for the next tick.
        self.advance(i, now_ms, host);
        true
    }

    fn advance(&mut self, i: usize, now_ms: u64, host: &mut dyn Dispatch) {
        if self.sinks[i].inflight.is_none() {
            self.start_batch(i);
        }
        let retry = self.retry;
        let s = &mut self.sinks[i];
        let Some(flight) = s.inflight.as_mut() else {
            return;
        };
        if flight.token.is_some() || now_ms < flight.not_before_ms {
            return;
        }
        let Some(request) = flight.requests.front() else {
            s.inflight = None;
            return;
        };
        let endpoint = s.sink.endpoint();
        let headers = request.dispatch_headers(endpoint);
        flight.attempts += 1;
        match host.dispatch(
            &endpoint.upstream,
            &headers,
            &request.body,
            endpoint.timeout_ms,
        ) {
            Ok(token) => flight.token = Some(token),
            Err(e) => {
                self.events.push(ExportEvent::DispatchFailed {
                    sink: s.sink.name(),
                    status: e.status,
                });
                let event = s.failed_attempt(&retry, now_ms, None, None);
                self.events.extend(event);
            }
        }
    }

    /// Takes the next batch off sink `i`'s queue, bounded by records and estimated bytes.
    fn start_batch(&mut self, i: usize) {
        let s = &mut self.sinks[i];
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((_, size)) = s.queue.front() {
            let size = *size;
            if batch.len() >= self.batch_max_records
                || (!batch.is_empty() && bytes + size > self.batch_max_bytes)
            {
                break;
            }
            if let Some((record, _)) = s.queue.pop_front() {
                s.queued_bytes -= size;
                bytes += size;
                batch.push(record);
            }
        }
        if batch.is_empty() {
            return;
        }
        s.inflight = Some(InFlight {
            records: batch.len(),
            requests: s.sink.encode(&batch).into(),
            attempts: 0,
            token: None,
            not_before_ms: 0,
        });
    }

    /// Events since the last call, for the glue to log.
    pub fn take_events(&mut self) -> Vec<ExportEvent> {
        std::mem::take(&mut self.events)
    }

    /// Per-sink counters: `(name, stats, records queued or in flight)`.
    pub fn stats(&self) -> impl Iterator<Item = (&'static str, SinkStats, usize)> + '_ {
        self.sinks.iter().map(|s| {
            let flying = s.inflight.as_ref().map_or(0, |f| f.records);
            (s.sink.name(), s.stats, s.queue.len() + flying)
        })
    }

    /// Callouts currently awaiting a reply.
    pub fn in_flight(&self) -> usize {
        self.sinks
            .iter()
            .filter(|s| s.inflight.as_ref().is_some_and(|f| f.token.is_some()))
            .count()
    }
}

/// `initial × 2^(attempt−1)`, capped.
fn backoff_ms(retry: &RetryConfig, attempt: u32) -> u64 {
    let shift = attempt.saturating_sub(1).min(32);
    retry
        .initial_backoff_ms
        .saturating_mul(1u64 << shift)
        .min(retry.max_backoff_ms)
}

/// The first 200 bytes of a reply, as printable text.
fn sanitize(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
