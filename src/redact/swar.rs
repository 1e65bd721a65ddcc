//! Word-at-a-time byte classification: eight bytes per step in a `u64` ("SIMD within a
//! register"), portable to wasm32 where `u64` arithmetic is native.
//!
//! A *mask* has the high bit of each byte set where that byte has the property asked about,
//! and every other bit clear. Bytes are loaded little-endian, so byte `k` of a chunk is bits
//! `8k..8k + 8` of the word and the lowest set bit is the first byte in text order. No carry
//! ever crosses from one byte into the next, so every mask is exact.

/// Bytes per word.
pub(crate) const WORD: usize = 8;
const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const SEVEN_BITS: u64 = !HIGH;

/// `b` in every byte of a word.
const fn splat(b: u8) -> u64 {
    LOW * b as u64
}

/// The word of the eight bytes of `chunk` (which has exactly [`WORD`] bytes; a shorter one
/// reads as zero). One load: `copy_from_slice` would be an outlined call at `opt-level = "s"`.
#[inline(always)]
fn load(chunk: &[u8]) -> u64 {
    <[u8; WORD]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

/// Mask of the zero bytes of `x`.
fn zero_bytes(x: u64) -> u64 {
    !(((x & SEVEN_BITS) + SEVEN_BITS) | x | SEVEN_BITS)
}

/// Mask of the bytes equal to `b`.
pub(crate) fn eq(word: u64, b: u8) -> u64 {
    zero_bytes(word ^ splat(b))
}

/// Mask of the ASCII bytes in `lo..=hi` (`lo <= hi < 0x80`).
pub(crate) fn ascii_range(word: u64, lo: u8, hi: u8) -> u64 {
    debug_assert!(lo <= hi && hi < 0x80);
    let low7 = word & SEVEN_BITS;
    // Per byte: `low7 + (0x80 - lo)` reaches the high bit iff `low7 >= lo`, and
    // `low7 + (0x7f - hi)` iff `low7 > hi`; neither sum exceeds 0xff.
    let at_least_lo = low7 + splat(0x80 - lo);
    let above_hi = low7 + splat(0x7f - hi);
    at_least_lo & !above_hi & !word & HIGH
}

/// Mask of the ASCII bytes at or above `lo` (`lo < 0x80`): one add, cheaper than a range.
pub(crate) fn ascii_at_least(word: u64, lo: u8) -> u64 {
    debug_assert!(lo < 0x80);
    ((word & SEVEN_BITS) + splat(0x80 - lo)) & !word & HIGH
}

/// Whether a byte of `x` is zero. Cheaper than [`zero_bytes`], whose mask it does not give
/// (a borrow can mark the byte above a zero byte).
fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(LOW) & !x & HIGH != 0
}

/// Index of the first byte at or after `from` equal to `needle`.
pub(crate) fn find_byte(text: &[u8], needle: u8, from: usize) -> Option<usize> {
    let rest = text.get(from..)?;
    let pattern = splat(needle);
    let mut pairs = rest.chunks_exact(2 * WORD);
    let mut base = from;
    for pair in pairs.by_ref() {
        let (a, b) = pair.split_at(WORD);
        if has_zero_byte(load(a) ^ pattern) || has_zero_byte(load(b) ^ pattern) {
            return pair.iter().position(|&c| c == needle).map(|i| base + i);
        }
        base += 2 * WORD;
    }
    let tail = pairs.remainder();
    tail.iter().position(|&c| c == needle).map(|i| base + i)
}

/// Index, within its word, of the first byte marked in the non-zero `mask`.
pub(crate) fn first_byte(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Bytes after the last byte marked in the non-zero `mask`, within its word.
fn bytes_after_last(mask: u64) -> usize {
    (mask.leading_zeros() / 8) as usize
}

/// A byte class tested a word at a time, with the same test for single bytes.
pub(crate) trait Class {
    /// Mask of the bytes of `word` in the class.
    fn mask(&self, word: u64) -> u64;
    /// Whether `b` is in the class.
    fn contains(&self, b: u8) -> bool;
}

/// Calls `f(start, end)` for every maximal run of bytes of `class` that is at least `min`
/// bytes long, in text order.
///
/// Only words that contain a byte outside the class stop the scan, and then only at their
/// first and last such byte: a run between two outsiders of one word is at most six bytes
/// long, so with `min >= 7` it never counts.
pub(crate) fn long_runs(
    text: &[u8],
    min: usize,
    class: &impl Class,
    mut f: impl FnMut(usize, usize),
) {
    debug_assert!(min >= WORD - 1);
    // Bytes of the class just before `base`, back to the last outsider.
    let mut carry = 0;
    let mut step = |word: u64, base: usize, carry: &mut usize| {
        let outside = !class.mask(word) & HIGH;
        if outside == 0 {
            *carry += WORD;
            return;
        }
        let lead = first_byte(outside);
        if *carry + lead >= min {
            f(base - *carry, base + lead);
        }
        *carry = bytes_after_last(outside);
    };
    let mut pairs = text.chunks_exact(2 * WORD);
    let mut base = 0;
    for pair in pairs.by_ref() {
        let (a, b) = pair.split_at(WORD);
        step(load(a), base, &mut carry);
        step(load(b), base + WORD, &mut carry);
        base += 2 * WORD;
    }
    let mut run_start = base - carry;
    for (i, &b) in pairs.remainder().iter().enumerate() {
        if !class.contains(b) {
            let at = base + i;
            if at - run_start >= min {
                f(run_start, at);
            }
            run_start = at + 1;
        }
    }
    if text.len().saturating_sub(run_start) >= min {
        f(run_start, text.len());
    }
}

/// Calls `f(i)` for every index `i` of `text` holding `needle`, in order; `f` returns the
/// index to resume from (to skip what it consumed), or `None` to stop.
pub(crate) fn each_byte(text: &[u8], needle: u8, mut f: impl FnMut(usize) -> Option<usize>) {
    let mut from = 0;
    while let Some(at) = find_byte(text, needle, from) {
        match f(at) {
            Some(next) => from = next.max(at + 1),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Digits;

    impl Class for Digits {
        fn mask(&self, word: u64) -> u64 {
            ascii_range(word, b'0', b'9')
        }
        fn contains(&self, b: u8) -> bool {
            b.is_ascii_digit()
        }
    }

    /// Every byte of every word classified by the mask agrees with the byte test.
    #[test]
    fn masks_agree_with_byte_tests_for_every_byte() {
        for b in 0..=255u8 {
            for at in 0..WORD {
                let mut bytes = [b'x'; WORD];
                bytes[at] = b;
                let word = u64::from_le_bytes(bytes);
                let bit = 1u64 << (8 * at + 7);
                assert_eq!(eq(word, b'@') & bit != 0, b == b'@', "eq {b:#x} at {at}");
                assert_eq!(Digits.mask(word) & bit != 0, b.is_ascii_digit(), "{b:#x}");
                let in_range = (0x2b..=0x7e).contains(&b);
                assert_eq!(ascii_range(word, 0x2b, 0x7e) & bit != 0, in_range, "{b:#x}");
                let at_least = (0x2b..0x80).contains(&b);
                assert_eq!(ascii_at_least(word, 0x2b) & bit != 0, at_least, "{b:#x}");
                assert_eq!(has_zero_byte(word ^ splat(b'@')), bytes.contains(&b'@'));
            }
        }
        // Neighbours never leak into each other: 0x80 and 0xff next to matches.
        let word = u64::from_le_bytes([0x80, b'@', 0xff, b'@', 0x00, 0x7f, b'@', 0x41]);
        assert_eq!(eq(word, b'@'), (1 << 15) | (1 << 31) | (1 << 55));
    }

    fn reference_runs(text: &[u8], min: usize) -> Vec<(usize, usize)> {
        let mut runs = Vec::new();
        let mut start = None;
        for (i, &b) in text.iter().chain([&b' ']).enumerate() {
            match (b.is_ascii_digit() && i < text.len(), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    if i - s >= min {
                        runs.push((s, i));
                    }
                    start = None;
                }
                _ => {}
            }
        }
        runs
    }

    fn runs(text: &[u8], min: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        long_runs(text, min, &Digits, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn runs_at_word_edges_and_text_ends() {
        type Case = (&'static str, usize, Vec<(usize, usize)>);
        let cases: [Case; 7] = [
            ("", 7, vec![]),
            ("123456", 7, vec![]),
            ("1234567", 7, vec![(0, 7)]),
            ("x1234567", 7, vec![(1, 8)]),
            ("abcdefg12345678", 8, vec![(7, 15)]),
            ("1234567x1234567", 7, vec![(0, 7), (8, 15)]),
            ("ab1234567x123456", 7, vec![(2, 9)]),
        ];
        for (text, min, expected) in cases {
            assert_eq!(runs(text.as_bytes(), min), expected, "{text:?}");
        }
        let long = format!("é{}é", "9".repeat(100));
        assert_eq!(runs(long.as_bytes(), 13), vec![(2, 102)]);
    }

    #[test]
    fn find_byte_everywhere() {
        let text = b"0123456789abcdef@0123456@";
        assert_eq!(find_byte(text, b'@', 0), Some(16));
        assert_eq!(find_byte(text, b'@', 17), Some(24));
        assert_eq!(find_byte(text, b'@', 25), None);
        assert_eq!(find_byte(text, b'@', 99), None);
        assert_eq!(find_byte(b"", b'@', 0), None);
        for at in 0..20 {
            let mut bytes = vec![b'.'; 20];
            bytes[at] = b'@';
            assert_eq!(find_byte(&bytes, b'@', 0), Some(at));
            assert_eq!(find_byte(&bytes, b'@', at + 1), None);
        }
        let mut seen = Vec::new();
        each_byte(b"@@x@", b'@', |at| {
            seen.push(at);
            Some(at + 2)
        });
        assert_eq!(seen, vec![0, 3]);
    }

    /// Every run of 1 to 24 bytes at every offset of five words, and two runs around one
    /// outsider, against every `min`: runs across a word boundary with and without a whole
    /// word inside, and runs at the text's ends.
    #[test]
    fn single_runs_at_every_offset_and_length() {
        for len in 1..=24 {
            for at in 0..=40 - len {
                let mut text = vec![b'x'; 40];
                text[at..at + len].fill(b'1');
                let mut two = text.clone();
                if let Some(gap) = two.get_mut(at + len) {
                    *gap = b'x';
                    two[at + len + 1..].fill(b'1');
                }
                for min in 7..=20 {
                    assert_eq!(
                        runs(&text, min),
                        reference_runs(&text, min),
                        "{at} {len} {min}"
                    );
                    assert_eq!(
                        runs(&two, min),
                        reference_runs(&two, min),
                        "{at} {len} {min}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn long_texts_of_alternating_runs_match_a_byte_by_byte_scan(
            runs_of in proptest::collection::vec((1usize..40, any::<bool>()), 0..60),
            min in 7usize..20,
        ) {
            // Alternating stretches of the class and outside it, so that runs of every length
            // end at every offset of a word, over texts of up to 2 KB.
            let text: Vec<u8> = runs_of
                .iter()
                .flat_map(|&(len, inside)| std::iter::repeat_n(if inside { b'1' } else { b'x' }, len))
                .collect();
            prop_assert_eq!(runs(&text, min), reference_runs(&text, min));
        }

        #[test]
        fn long_runs_match_a_byte_by_byte_scan(
            text in proptest::collection::vec(
                prop_oneof![Just(b'1'), Just(b'x'), Just(0xc3u8), any::<u8>()], 0..90),
            min in 7usize..20,
        ) {
            prop_assert_eq!(runs(&text, min), reference_runs(&text, min));
        }

        #[test]
        fn find_byte_matches_position(
            text in proptest::collection::vec(prop_oneof![Just(b'@'), any::<u8>()], 0..60),
            from in 0usize..70,
        ) {
            let expected = text
                .get(from..)
                .and_then(|t| t.iter().position(|&b| b == b'@'))
                .map(|i| from + i);
            prop_assert_eq!(find_byte(&text, b'@', from), expected);
        }
    }
}
