//! Long runs of one byte class, found by skipping: to find runs of at least `min` bytes, the
//! scan tests the last byte of a `min`-byte window first. Outside the class, no run that long
//! can overlap the window, and the scan jumps `min` bytes ahead; inside, it walks back to the
//! run's start and moves the window there. Prose reaches a base64 run of 1024 bytes after
//! reading a few bytes per kilobyte.

/// Iterator over the maximal runs of bytes satisfying `class` that are at least `min` bytes
/// long, as `(start, end)`, in text order.
pub(super) struct LongRuns<'a, F> {
    text: &'a [u8],
    min: usize,
    class: F,
    /// Where the window starts: 0, or just after a byte outside the class.
    at: usize,
}

impl<'a, F: Fn(u8) -> bool> LongRuns<'a, F> {
    /// The runs of `class` in `text` of at least `min` bytes (`min` 0 counts as 1).
    pub fn new(text: &'a [u8], min: usize, class: F) -> Self {
        LongRuns {
            text,
            min: min.max(1),
            class,
            at: 0,
        }
    }

    fn in_class(&self, i: usize) -> bool {
        self.text.get(i).is_some_and(|&b| (self.class)(b))
    }
}

impl<F: Fn(u8) -> bool> Iterator for LongRuns<'_, F> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        // Bytes `at..known` are known to be in the class.
        let mut known = self.at;
        loop {
            let last = self.at.checked_add(self.min - 1)?;
            if last >= self.text.len() {
                self.at = self.text.len();
                return None;
            }
            if !self.in_class(last) {
                self.at = last + 1;
                known = self.at;
                continue;
            }
            let mut first = last;
            while first > known && self.in_class(first - 1) {
                first -= 1;
            }
            if first > known {
                // The byte before `first` is outside: the next window starts at `first`.
                self.at = first;
                known = last + 1;
                continue;
            }
            let start = self.at;
            let mut end = last + 1;
            while self.in_class(end) {
                end += 1;
            }
            self.at = end + 1;
            return Some((start, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn is_x(b: u8) -> bool {
        b == b'x'
    }

    fn runs(text: &str, min: usize) -> Vec<(usize, usize)> {
        LongRuns::new(text.as_bytes(), min, is_x).collect()
    }

    fn reference(text: &str, min: usize) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if !is_x(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_x(bytes[i]) {
                i += 1;
            }
            if i - start >= min.max(1) {
                out.push((start, i));
            }
        }
        out
    }

    #[test]
    fn runs_at_the_ends_and_of_every_length() {
        assert_eq!(runs("", 1), vec![]);
        assert_eq!(runs("xxx", 3), vec![(0, 3)]);
        assert_eq!(runs("xxx", 4), vec![]);
        assert_eq!(runs("axxxb xxxx", 3), vec![(1, 4), (6, 10)]);
        assert_eq!(runs("xxxxaxx", 0), vec![(0, 4), (5, 7)]);
        assert_eq!(runs("éxxé", 2), vec![(2, 4)]);
    }

    proptest! {
        #[test]
        fn skipping_finds_every_long_run(text in "[xé a]{0,80}", min in 0usize..12) {
            prop_assert_eq!(runs(&text, min), reference(&text, min));
        }
    }
}
