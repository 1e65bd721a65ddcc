//! The byte layout of fuzz inputs: a few leading fields (selectors, sizes, short strings) read
//! by [`Input`], then the payload. [`Layout`] writes the same layout, for the seed corpora.
//! Reading never fails: a field past the end of the input reads as zero or empty, so every
//! byte string is a valid input.

/// Most chunk sizes one input may list.
const MAX_SIZES: u8 = 16;

/// A cursor over one fuzz input.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next byte, 0 past the end.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A list of chunk sizes for [`chunks`]: a count byte (modulo 16), then that many sizes.
    pub fn sizes(&mut self) -> &'a [u8] {
        let n = self.byte() % MAX_SIZES;
        self.take(usize::from(n))
    }

    /// A short string: a length byte, then that many bytes, decoded lossily.
    pub fn text(&mut self) -> String {
        let n = self.byte();
        String::from_utf8_lossy(self.take(usize::from(n))).into_owned()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Writes inputs in the layout [`Input`] reads.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    bytes: Vec<u8>,
}

impl Layout {
    /// An empty input.
    pub fn new() -> Self {
        Layout::default()
    }

    /// Appends one byte.
    pub fn byte(mut self, b: u8) -> Self {
        self.bytes.push(b);
        self
    }

    /// Appends a little-endian `u16`.
    pub fn u16(mut self, v: u16) -> Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a size list (at most 15 sizes are kept).
    pub fn sizes(mut self, sizes: &[u8]) -> Self {
        let sizes = sizes
            .get(..sizes.len().min(usize::from(MAX_SIZES - 1)))
            .unwrap_or(&[]);
        self.bytes.push(u8::try_from(sizes.len()).unwrap_or(0));
        self.bytes.extend_from_slice(sizes);
        self
    }

    /// Appends a short string (cut to 255 bytes).
    pub fn text(mut self, s: &str) -> Self {
        let s = s.as_bytes();
        let s = s.get(..s.len().min(255)).unwrap_or(&[]);
        self.bytes.push(u8::try_from(s.len()).unwrap_or(0));
        self.bytes.extend_from_slice(s);
        self
    }

    /// Appends raw bytes.
    pub fn bytes(mut self, data: &[u8]) -> Self {
        self.bytes.extend_from_slice(data);
        self
    }

    /// The finished input.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Cuts `data` into chunks whose sizes cycle through `sizes`; a size of 0 adds an empty chunk
/// (hosts deliver those) before a one-byte one. No sizes: one chunk.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    if sizes.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        if size == 0 {
            out.push(&rest[..0]);
        }
        let (head, tail) = rest.split_at(usize::from(size).clamp(1, rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_through_input() {
        let data = Layout::new()
            .byte(7)
            .u16(0xBEEF)
            .sizes(&[1, 0, 9])
            .text("/v1/chat/completions")
            .bytes(b"payload")
            .finish();
        let mut input = Input::new(&data);
        assert_eq!(input.byte(), 7);
        assert_eq!(input.u16(), 0xBEEF);
        assert_eq!(input.sizes(), &[1, 0, 9]);
        assert_eq!(input.text(), "/v1/chat/completions");
        assert_eq!(input.rest(), b"payload");
    }

    #[test]
    fn reading_past_the_end_gives_zeros_and_empties() {
        let mut input = Input::new(&[5]);
        assert_eq!(input.u16(), 5);
        assert_eq!(input.byte(), 0);
        assert_eq!(input.sizes(), &[] as &[u8]);
        assert_eq!(input.text(), "");
        assert!(input.rest().is_empty());
    }

    #[test]
    fn chunks_cover_the_data_in_order() {
        let data: Vec<u8> = (0..=99).collect();
        for sizes in [&[][..], &[1], &[0, 3], &[200], &[7, 0, 0, 13]] {
            let cut = chunks(&data, sizes);
            assert_eq!(cut.concat(), data, "{sizes:?}");
            let empties = cut.iter().filter(|c| c.is_empty()).count();
            assert_eq!(empties > 0, sizes.contains(&0), "{sizes:?}");
        }
        assert_eq!(chunks(&data, &[30]).len(), 4);
    }
}
