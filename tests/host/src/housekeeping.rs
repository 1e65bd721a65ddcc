//! Long runs through one [`Host`]: the host keeps every stream, callout and log line it has seen
//! so that tests can inspect them, which a run of a hundred thousand exchanges cannot afford
//! (memory grows with every body, and resuming streams scans them all). These helpers drop what
//! is finished, after the test has looked at it.

use crate::host::Host;
use crate::state::{CalloutResult, LogLine};

/// What [`Host::forget_finished`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// Ended streams removed (their outcomes are no longer available).
    pub streams: usize,
    /// Finished callouts removed (delivered, failed, cancelled or refused).
    pub callouts: usize,
}

impl Host {
    /// Drops the records of ended streams and finished callouts. Streams still running, streams
    /// waiting for `proxy_done`, and callouts still pending are kept, so the host behaves as
    /// before; [`Host::outcome`] and [`Host::callouts`] simply no longer show what was dropped.
    pub fn forget_finished(&mut self) -> Forgotten {
        let rec = &mut self.store.data_mut().rec;
        let streams_before = rec.streams.len();
        rec.streams.retain(|_, s| !s.ended);

        let callouts_before = rec.callouts.len();
        let mut kept_generations = Vec::with_capacity(rec.callout_generation.len());
        let mut generations = rec.callout_generation.iter().copied();
        rec.callouts.retain(|c| {
            let generation = generations.next().unwrap_or(0);
            let keep = c.result == CalloutResult::Pending;
            if keep {
                kept_generations.push(generation);
            }
            keep
        });
        rec.callout_generation = kept_generations;

        Forgotten {
            streams: streams_before - rec.streams.len(),
            callouts: callouts_before - rec.callouts.len(),
        }
    }

    /// Removes and returns every log line captured so far.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.store.data_mut().rec.logs)
    }

    /// Number of streams the host still keeps (running or ended but not forgotten).
    pub fn kept_streams(&self) -> usize {
        self.store.data().rec.streams.len()
    }
}
