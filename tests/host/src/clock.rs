//! Time as the guest sees it: a real or a manual (test-driven) wall clock, plus a monotonic
//! clock, with the resolution of the emulated gateway.
//!
//! Kong's `proxy_get_current_time_nanoseconds` has millisecond resolution (hosts.md §4.10);
//! Envoy's has nanoseconds (§5.8). The resolution is applied by the personality, not here.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the host's wall clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The machine's clock.
    Real,
    /// A clock that starts at `start_unix_ms` and moves only through
    /// [`crate::Host::advance_ms`] (and [`crate::Host::settle`], one tick period per tick).
    Manual {
        /// Unix time in milliseconds the clock starts at.
        start_unix_ms: u64,
    },
}

impl Default for ClockMode {
    /// A manual clock at 2024-01-01T00:00:00Z, so outputs are reproducible.
    fn default() -> Self {
        ClockMode::Manual {
            start_unix_ms: 1_704_067_200_000,
        }
    }
}

/// The host's clock state.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    mode: ClockMode,
    started: Instant,
    /// Manual mode: how far the clock was advanced.
    advanced: Duration,
}

impl Clock {
    pub(crate) fn new(mode: ClockMode) -> Self {
        Clock {
            mode,
            started: Instant::now(),
            advanced: Duration::ZERO,
        }
    }

    /// Wall-clock time in nanoseconds since the Unix epoch.
    pub(crate) fn unix_ns(&self) -> u64 {
        match self.mode {
            ClockMode::Real => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
            ClockMode::Manual { start_unix_ms } => start_unix_ms
                .saturating_mul(1_000_000)
                .saturating_add(u64::try_from(self.advanced.as_nanos()).unwrap_or(u64::MAX)),
        }
    }

    /// Monotonic nanoseconds since the host started.
    pub(crate) fn monotonic_ns(&self) -> u64 {
        let d = match self.mode {
            ClockMode::Real => self.started.elapsed(),
            ClockMode::Manual { .. } => self.advanced,
        };
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Moves a manual clock forward; a real clock ignores it.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.advanced = self.advanced.saturating_add(by);
    }

    pub(crate) fn is_manual(&self) -> bool {
        matches!(self.mode, ClockMode::Manual { .. })
    }
}

/// A small deterministic PRNG (SplitMix64) for WASI `random_get`: the same seed gives the same
/// trace and span ids, so golden files stay stable. Not cryptographic, like Kong's
/// `ngx_random` (hosts.md §4.10).
#[derive(Debug, Clone)]
pub(crate) struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub(crate) fn new(seed: u64) -> Self {
        SeededRng { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let mut c = Clock::new(ClockMode::Manual {
            start_unix_ms: 1000,
        });
        assert_eq!(c.unix_ns(), 1_000_000_000);
        assert_eq!(c.monotonic_ns(), 0);
        c.advance(Duration::from_millis(5));
        assert_eq!(c.unix_ns(), 1_005_000_000);
        assert_eq!(c.monotonic_ns(), 5_000_000);
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
    }
}
