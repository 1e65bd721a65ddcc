//! Instrumentation of a running [`Host`]: access to the wasmtime store its filter instance runs
//! in, and [`GuestClock`], which turns the store's call-hook transitions into the time spent
//! inside the guest's callbacks.
//!
//! The benchmarks install a call hook (`Store::call_hook`, behind wasmtime's `call-hook`
//! feature, enabled in this crate's wasmtime dependency) and feed every transition to a [`GuestClock`]. The
//! time counted runs from the moment the host calls into the module until the callback returns:
//! what the host does between callbacks (building header maps, buffering bodies, its own
//! bookkeeping) is left out; the hostcalls the guest makes from inside a callback are part of
//! the callback, and can be counted apart.

use std::time::{Duration, Instant};

use wasmtime::{CallHook, Store};

use crate::host::Host;

impl Host {
    /// The wasmtime store the filter instance runs in, its host state kept opaque: for
    /// instrumentation such as `Store::call_hook`. A hook that returns an error makes the guest
    /// call in progress trap, as any trap would.
    pub fn wasm_store(&mut self) -> &mut Store<impl Send + 'static> {
        &mut self.store
    }
}

/// Time spent inside guest callbacks, as counted by a [`GuestClock`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestTime {
    /// From each call into the module to its return, the hostcalls it made included.
    pub callbacks: Duration,
    /// Of that, the time spent in hostcalls (zero unless the clock splits them out).
    pub hostcalls: Duration,
    /// Number of calls into the module (nested calls, such as the allocator called from a
    /// hostcall, are not counted apart).
    pub calls: u64,
}

impl GuestTime {
    /// Callback time outside hostcalls: the guest's own code.
    pub fn in_wasm(&self) -> Duration {
        self.callbacks.saturating_sub(self.hostcalls)
    }

    /// What was counted since `earlier` (fields that went down give zero).
    pub fn since(&self, earlier: &GuestTime) -> GuestTime {
        GuestTime {
            callbacks: self.callbacks.saturating_sub(earlier.callbacks),
            hostcalls: self.hostcalls.saturating_sub(earlier.hostcalls),
            calls: self.calls.saturating_sub(earlier.calls),
        }
    }
}

/// Accumulates [`GuestTime`] from call-hook transitions.
///
/// Only the outermost call into the module is timed; a call made while one is running (the
/// allocator, called by the host while serving a hostcall) is part of it. Unbalanced
/// transitions (a trap unwinding) never underflow.
#[derive(Debug, Clone, Default)]
pub struct GuestClock {
    split_hostcalls: bool,
    wasm_depth: u32,
    host_depth: u32,
    entered: Option<Instant>,
    hostcall_started: Option<Instant>,
    total: GuestTime,
}

impl GuestClock {
    /// A clock that times whole callbacks; with `split_hostcalls` it also times the hostcalls
    /// made inside them, which costs two more clock reads per hostcall.
    pub fn new(split_hostcalls: bool) -> Self {
        GuestClock {
            split_hostcalls,
            ..GuestClock::default()
        }
    }

    /// What has been counted so far.
    pub fn time(&self) -> GuestTime {
        self.total
    }

    /// Records one transition; `now` is read only when the transition starts or ends an
    /// interval. Returns true when an outermost callback has just returned.
    pub fn transition(&mut self, hook: CallHook, now: impl FnOnce() -> Instant) -> bool {
        match hook {
            CallHook::CallingWasm => {
                if self.wasm_depth == 0 {
                    self.entered = Some(now());
                }
                self.wasm_depth = self.wasm_depth.saturating_add(1);
                false
            }
            CallHook::ReturningFromWasm => {
                self.wasm_depth = self.wasm_depth.saturating_sub(1);
                if self.wasm_depth > 0 {
                    return false;
                }
                let Some(entered) = self.entered.take() else {
                    return false;
                };
                self.total.callbacks += now().saturating_duration_since(entered);
                self.total.calls = self.total.calls.saturating_add(1);
                self.host_depth = 0;
                self.hostcall_started = None;
                true
            }
            CallHook::CallingHost => {
                if self.split_hostcalls && self.wasm_depth > 0 {
                    if self.host_depth == 0 {
                        self.hostcall_started = Some(now());
                    }
                    self.host_depth = self.host_depth.saturating_add(1);
                }
                false
            }
            CallHook::ReturningFromHost => {
                if self.host_depth == 0 {
                    return false;
                }
                self.host_depth -= 1;
                if self.host_depth == 0 {
                    if let Some(started) = self.hostcall_started.take() {
                        self.total.hostcalls += now().saturating_duration_since(started);
                    }
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `steps` (transition, microseconds since `base`) to a clock.
    fn run(clock: &mut GuestClock, base: Instant, steps: &[(CallHook, u64)]) -> Vec<bool> {
        steps
            .iter()
            .map(|&(hook, us)| clock.transition(hook, || base + Duration::from_micros(us)))
            .collect()
    }

    #[test]
    fn times_outermost_callbacks_and_their_hostcalls() {
        use CallHook::*;
        let base = Instant::now();
        let mut clock = GuestClock::new(true);
        let done = run(
            &mut clock,
            base,
            &[
                (CallingWasm, 10),
                (CallingHost, 12),
                // The host calls the allocator while serving the hostcall.
                (CallingWasm, 13),
                (ReturningFromWasm, 14),
                (ReturningFromHost, 16),
                (ReturningFromWasm, 30),
                // Host bookkeeping between callbacks is not counted.
                (CallingWasm, 100),
                (ReturningFromWasm, 105),
            ],
        );
        assert_eq!(done, [false, false, false, false, false, true, false, true]);
        let t = clock.time();
        assert_eq!(t.callbacks, Duration::from_micros(25));
        assert_eq!(t.hostcalls, Duration::from_micros(4));
        assert_eq!(t.in_wasm(), Duration::from_micros(21));
        assert_eq!(t.calls, 2);
    }

    #[test]
    fn without_split_hostcalls_are_not_timed() {
        use CallHook::*;
        let base = Instant::now();
        let mut clock = GuestClock::new(false);
        let mut reads = 0;
        for (hook, us) in [
            (CallingWasm, 0),
            (CallingHost, 1),
            (ReturningFromHost, 2),
            (ReturningFromWasm, 7),
        ] {
            clock.transition(hook, || {
                reads += 1;
                base + Duration::from_micros(us)
            });
        }
        assert_eq!(reads, 2, "the clock is read on entry and return only");
        assert_eq!(clock.time().callbacks, Duration::from_micros(7));
        assert_eq!(clock.time().hostcalls, Duration::ZERO);
    }

    #[test]
    fn unbalanced_transitions_do_not_underflow() {
        use CallHook::*;
        let base = Instant::now();
        let mut clock = GuestClock::new(true);
        let done = run(
            &mut clock,
            base,
            &[(ReturningFromWasm, 1), (ReturningFromHost, 2)],
        );
        assert_eq!(done, [false, false]);
        assert_eq!(clock.time(), GuestTime::default());
        // A later callback is still timed.
        run(
            &mut clock,
            base,
            &[(CallingWasm, 3), (ReturningFromWasm, 9)],
        );
        assert_eq!(clock.time().callbacks, Duration::from_micros(6));
    }

    #[test]
    fn since_subtracts_field_by_field() {
        let a = GuestTime {
            callbacks: Duration::from_micros(10),
            hostcalls: Duration::from_micros(4),
            calls: 3,
        };
        let b = GuestTime {
            callbacks: Duration::from_micros(25),
            hostcalls: Duration::from_micros(5),
            calls: 7,
        };
        let d = b.since(&a);
        assert_eq!(d.callbacks, Duration::from_micros(15));
        assert_eq!(d.hostcalls, Duration::from_micros(1));
        assert_eq!(d.calls, 4);
        assert_eq!(a.since(&b), GuestTime::default());
    }
}
