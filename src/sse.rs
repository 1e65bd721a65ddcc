//! Incremental decoder for `text/event-stream` bodies (WHATWG HTML, "Server-sent events",
//! §9.2.6 "Interpreting an event stream").
//!
//! Owns only bytes: no host calls, no JSON. The gateway hands it network chunks as they pass
//! through, split anywhere (inside a line, inside a `\r\n` pair, inside a multi-byte UTF-8
//! character); it yields an [`Event`] every time a blank line completes one. Each byte is scanned
//! once: only the new chunk is searched for line breaks, never the pending partial line.
//!
//! The same line machinery also frames NDJSON (`application/x-ndjson`, one JSON value per
//! line, as Ollama streams): [`SseDecoder::ndjson`] yields every non-empty line as an event's
//! `data`.
//!
//! # Background
//! A line longer than the configured maximum is not buffered further: the decoder switches to a
//! discarding state until the next line break and counts the event as oversized, so a hostile
//! upstream cannot grow memory without bound.

/// One dispatched event: its `event:` type (empty when absent) and its `data:` lines joined
/// with `\n`, as raw bytes (UTF-8 is checked by whoever parses the data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field, empty for the default "message" type.
    pub event: String,
    /// The `data:` lines of the event joined by `\n`.
    pub data: Vec<u8>,
}

/// An incremental event-stream decoder: [`SseDecoder::push`] bytes, then [`SseDecoder::finish`].
#[derive(Debug)]
pub struct SseDecoder {
    pending: Vec<u8>,
    skip_lf: bool,
    discarding: bool,
    max_line: usize,
    current: Event,
    has_data: bool,
    /// The event being built passed `max_line` bytes of data: it is dropped when it ends.
    dropping: bool,
    oversized: usize,
    ndjson: bool,
}

impl SseDecoder {
    /// A decoder that refuses to buffer lines longer than `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        SseDecoder {
            pending: Vec::new(),
            skip_lf: false,
            discarding: false,
            max_line: max_line.max(1),
            current: Event::default(),
            has_data: false,
            dropping: false,
            oversized: 0,
            ndjson: false,
        }
    }

    /// A decoder for newline-delimited JSON: each non-empty line is one event.
    pub fn ndjson(max_line: usize) -> Self {
        SseDecoder {
            ndjson: true,
            ..SseDecoder::new(max_line)
        }
    }

    /// Number of lines, and of events, dropped because they exceeded the line limit.
    pub fn oversized_lines(&self) -> usize {
        self.oversized
    }

    /// Feeds one network chunk; calls `on_event` for every event it completes. The event is
    /// lent: the decoder reuses its buffers for the next one.
    pub fn push(&mut self, mut chunk: &[u8], on_event: &mut dyn FnMut(&Event)) {
        if self.skip_lf && !chunk.is_empty() {
            // The byte after a chunk-final `\r` decides: a `\n` completes the CRLF.
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(at) = line_end(chunk) {
            let (line, rest) = chunk.split_at(at);
            if self.pending.is_empty() && !self.discarding {
                // The whole line is in this chunk: read it in place.
                if line.len() > self.max_line {
                    self.oversized += 1;
                } else {
                    self.line(line, on_event);
                }
            } else {
                self.append(line);
                self.end_line(on_event);
            }
            chunk = match rest {
                [b'\r', b'\n', after @ ..] => after,
                [b'\r'] => {
                    self.skip_lf = true;
                    &[]
                }
                [_, after @ ..] => after,
                [] => &[],
            };
        }
        self.append(chunk);
    }

    /// The data of `chunk` when the chunk is one whole event of one `data` line
    /// (`data: X\n\n`) and nothing of earlier chunks is pending, so that [`SseDecoder::push`]
    /// would dispatch one event with data `X` and end as it is now, provided `X` holds no line
    /// break. That is for the caller to prove: it reads `X` anyway, so this looks at the chunk's
    /// ends only and scans nothing.
    pub fn lone_data_line<'c>(&self, chunk: &'c [u8]) -> Option<&'c [u8]> {
        let clean = !self.ndjson
            && !self.skip_lf
            && !self.discarding
            && !self.has_data
            && !self.dropping
            && self.pending.is_empty()
            && self.current.event.is_empty();
        // Patterns rather than `strip_*`, which compare through `memcmp`.
        let [line @ .., b'\n', b'\n'] = chunk else {
            return None;
        };
        let [b'd', b'a', b't', b'a', b':', value @ ..] = line else {
            return None;
        };
        if !clean || line.len() > self.max_line {
            return None;
        }
        Some(match value {
            [b' ', rest @ ..] => rest,
            _ => value,
        })
    }

    /// Ends the stream. Per the spec an event not terminated by a blank line is discarded, but
    /// providers regularly omit the final blank line, so a pending event with data is delivered.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(&Event)) {
        if !self.pending.is_empty() || self.discarding {
            self.end_line(on_event);
        }
        self.dispatch(on_event);
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.discarding || bytes.is_empty() {
            return;
        }
        if self.pending.len() + bytes.len() > self.max_line {
            self.pending.clear();
            self.discarding = true;
            self.oversized += 1;
            return;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The buffered line is complete.
    fn end_line(&mut self, on_event: &mut dyn FnMut(&Event)) {
        if self.discarding {
            self.discarding = false;
            self.pending.clear();
            return;
        }
        let line = std::mem::take(&mut self.pending);
        self.line(&line, on_event);
        // Reuse the allocation for the next line.
        self.pending = line;
        self.pending.clear();
    }

    /// One complete line, without its line ending.
    fn line(&mut self, line: &[u8], on_event: &mut dyn FnMut(&Event)) {
        if self.ndjson {
            if !line.trim_ascii().is_empty() {
                self.current.data.clear();
                self.current.data.extend_from_slice(line);
                on_event(&self.current);
                self.current.data.clear();
            }
        } else if line.is_empty() {
            self.dispatch(on_event);
        } else {
            self.field(line);
        }
    }

    fn field(&mut self, line: &[u8]) {
        if line[0] == b':' {
            return; // comment
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => self.data_line(value),
            b"event" => {
                self.current.event.clear();
                self.current.event.push_str(&String::from_utf8_lossy(value));
            }
            _ => {} // id, retry and unknown fields carry nothing a trace needs
        }
    }

    /// Adds one `data:` line to the event, unless the event's data would pass `max_line`
    /// bytes: then the event is dropped as a whole (an event without a blank line must not
    /// grow memory any more than a line without a line break).
    fn data_line(&mut self, value: &[u8]) {
        if self.dropping {
            return;
        }
        let separator = usize::from(self.has_data);
        if self.current.data.len() + separator + value.len() > self.max_line {
            self.current.data = Vec::new();
            self.dropping = true;
            self.oversized += 1;
            return;
        }
        if self.has_data {
            self.current.data.push(b'\n');
        }
        self.current.data.extend_from_slice(value);
        self.has_data = true;
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(&Event)) {
        if self.has_data && !self.dropping {
            on_event(&self.current);
        }
        self.current.event.clear();
        self.current.data.clear();
        self.has_data = false;
        self.dropping = false;
    }
}

/// The position of the first `\n` or `\r` in `bytes`, eight bytes at a time.
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const LF: u64 = u64::from_ne_bytes([b'\n'; 8]);
    const CR: u64 = u64::from_ne_bytes([b'\r'; 8]);
    // A word has a zero byte exactly when this is non-zero (the classic "haszero" test).
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut at = 0;
    // `try_from`, not `copy_from_slice`, which at `opt-level = "s"` calls `memcpy`.
    while let Some(word) = bytes.get(at..at + 8) {
        let w = <[u8; 8]>::try_from(word).map_or(0, u64::from_ne_bytes);
        if has_zero(w ^ LF) | has_zero(w ^ CR) != 0 {
            break;
        }
        at += 8;
    }
    bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in(chunks: &[&[u8]], max_line: usize) -> (Vec<Event>, usize) {
        let mut decoder = SseDecoder::new(max_line);
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut |e| events.push(e.clone()));
        }
        decoder.finish(&mut |e| events.push(e.clone()));
        (events, decoder.oversized_lines())
    }

    fn data(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| String::from_utf8(e.data.clone()).expect("utf-8 test data"))
            .collect()
    }

    #[test]
    fn fields_comments_and_line_endings() {
        let cases: &[(&[u8], &[&str])] = &[
            (b"data: a\n\ndata: b\n\n", &["a", "b"]),
            (b"data: a\r\n\r\ndata:b\r\r", &["a", "b"]),
            (b": keep-alive\n\ndata: x\n\n", &["x"]),
            (b"data: one\ndata: two\n\n", &["one\ntwo"]),
            (b"event: ping\n\n", &[]),
            (b"data\n\n", &[""]),
            (
                b"data: tail-without-blank-line",
                &["tail-without-blank-line"],
            ),
            (b"id: 7\nretry: 10\ndata: y\n\n", &["y"]),
        ];
        for (input, expected) in cases {
            let (events, _) = decode_in(&[input], 1 << 20);
            assert_eq!(
                data(&events),
                *expected,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_lone_data_line_is_the_one_event_push_would_give() {
        let cases: [(&[u8], Option<&[u8]>); 10] = [
            (b"data: x\n\n", Some(b"x")),
            (b"data:x\n\n", Some(b"x")),
            (b"data:  x\n\n", Some(b" x")),
            (b"data:\n\n", Some(b"")),
            (b"data: {\"a\":1}\n\n", Some(b"{\"a\":1}")),
            (b"event: e\ndata: x\n\n", None),
            (b"data: x\n", None),
            (b"data: x\r\n\r\n", None),
            (b": comment\n\n", None),
            // Longer than a line may be (16 bytes here).
            (b"data: 0123456789ab\n\n", None),
        ];
        for (chunk, expected) in cases {
            assert_eq!(
                SseDecoder::new(16).lone_data_line(chunk),
                expected,
                "{chunk:?}"
            );
            if let Some(data) = expected {
                // What push dispatches for the same chunk: that event, and only that.
                let (events, oversized) = decode_in(&[chunk], 16);
                assert_eq!(events.len(), 1, "{chunk:?}");
                assert_eq!((&events[0].data[..], &events[0].event[..]), (data, ""));
                assert_eq!(oversized, 0);
            }
        }
        // Anything pending from earlier chunks, and NDJSON framing, rule it out.
        let earlier: [(&[u8], &[u8]); 4] = [
            (b"data: a", b"data: x\n\n"),
            (b"data: a\n", b"data: x\n\n"),
            (b"event: e\n", b"data: x\n\n"),
            (b"data: a\r\r", b"data: x\n\n"),
        ];
        for (before, chunk) in earlier {
            let mut decoder = SseDecoder::new(1024);
            decoder.push(before, &mut |_| {});
            assert_eq!(decoder.lone_data_line(chunk), None, "after {before:?}");
        }
        assert_eq!(
            SseDecoder::ndjson(1024).lone_data_line(b"data: x\n\n"),
            None
        );
    }

    #[test]
    fn event_type_is_kept_and_reset() {
        let (events, _) = decode_in(&[b"event: error\ndata: {}\n\ndata: z\n\n"], 1024);
        assert_eq!(events[0].event, "error");
        assert_eq!(events[1].event, "");
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream = "data: {\"c\":\"h\u{e9}llo \u{1f600}\"}\r\n\r\n: c\n\ndata: [DONE]\r\n\r\n";
        let bytes = stream.as_bytes();
        let (whole, _) = decode_in(&[bytes], 1024);
        assert_eq!(whole.len(), 2);
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let (split, _) = decode_in(&[&bytes[..a], &bytes[a..b], &bytes[b..]], 1024);
                assert_eq!(split, whole, "split at {a},{b}");
            }
        }
    }

    #[test]
    fn ndjson_lines_are_events() {
        let mut decoder = SseDecoder::ndjson(1024);
        let mut events = Vec::new();
        for chunk in [&b"{\"a\":1}\n\n{\"b\""[..], b":2}\r\n", b"{\"c\":3}"] {
            decoder.push(chunk, &mut |e| events.push(e.clone()));
        }
        decoder.finish(&mut |e| events.push(e.clone()));
        assert_eq!(data(&events), vec!["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[test]
    fn overlong_lines_are_discarded_not_buffered() {
        let long = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        let (events, oversized) = decode_in(&[long.as_bytes()], 32);
        assert_eq!(data(&events), vec!["ok"]);
        assert_eq!(oversized, 1);
    }

    #[test]
    fn an_event_whose_data_lines_pass_the_limit_is_dropped_whole() {
        // Short lines that never end the event: memory stays at the limit, the event is
        // dropped and counted once, and the next event decodes.
        let mut stream = "data: 0123456789\n".repeat(100);
        stream.push_str("\ndata: next\n\n");
        let (events, oversized) = decode_in(&[stream.as_bytes()], 64);
        assert_eq!(data(&events), vec!["next"]);
        assert_eq!(oversized, 1);
        let mut decoder = SseDecoder::new(64);
        decoder.push("data: 0123456789\n".repeat(1000).as_bytes(), &mut |_| {});
        assert!(decoder.current.data.capacity() <= 64);
        // Up to the limit, data lines still join.
        let (events, oversized) = decode_in(&[b"data: 0123\ndata: 4567\n\n"], 10);
        assert_eq!(data(&events), vec!["0123\n4567"]);
        assert_eq!(oversized, 0);
    }

    #[test]
    fn a_lone_lf_chunk_after_cr_does_not_swallow_the_next_line_end() {
        // Found by the `sse` fuzz target: `\r`, then a chunk holding only `\n`, used to leave
        // the CRLF pending and eat the blank line after it, merging two events.
        let mut decoder = SseDecoder::new(1024);
        let mut events = Vec::new();
        for byte in b"data: a\r\n\ndata: b\n\n" {
            decoder.push(std::slice::from_ref(byte), &mut |e| events.push(e.clone()));
        }
        decoder.finish(&mut |e| events.push(e.clone()));
        let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_slice()).collect();
        assert_eq!(data, [&b"a"[..], b"b"]);
    }
}
