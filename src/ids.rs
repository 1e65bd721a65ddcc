//! Identifiers: W3C trace/span ids, Opik's UUIDv7 and their text forms.
//!
//! Randomness comes from a SplitMix64 generator seeded once by the glue from the host's
//! `random_get` (ngx_random on Kong, RAND_bytes on Envoy); ids need uniqueness, not secrecy.
//! UUIDv7 follows RFC 9562 §5.7: 48-bit Unix milliseconds, version 7, variant `10`.

/// SplitMix64: tiny, fast, and good enough to spread ids.
#[derive(Debug, Clone)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        IdGen { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fills `out` with random bytes; never all zero (W3C forbids all-zero ids).
    pub fn fill(&mut self, out: &mut [u8]) {
        loop {
            for chunk in out.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            if out.iter().any(|&b| b != 0) {
                return;
            }
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A UUIDv7 whose timestamp is `unix_ms` and whose other 74 bits come from `tail`.
pub fn uuid_v7(unix_ms: u64, tail: &[u8; 10]) -> String {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    b[6..].copy_from_slice(tail);
    b[6] = 0x70 | (b[6] & 0x0F);
    b[8] = 0x80 | (b[8] & 0x3F);
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_v7_layout_matches_rfc_9562() {
        // 2026-08-01T12:00:00.000Z is 0x019fbd320600 ms since the epoch.
        let id = uuid_v7(1_785_585_600_000, &[0xff; 10]);
        assert_eq!(id, "019fbd32-0600-7fff-bfff-ffffffffffff");
        let id = uuid_v7(1_785_585_600_005, &[0; 10]);
        assert_eq!(id, "019fbd32-0605-7000-8000-000000000000");
    }

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let mut g = IdGen::new(0);
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        g.fill(&mut a);
        g.fill(&mut b);
        assert_ne!(a, [0; 16]);
        assert_ne!(a, b);
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
    }
}
