//! A forward-only reader of JSON text for the hot paths that need a few members of a small
//! document (one stream event) and would rather not build it.
//!
//! It is deliberately conservative: it accepts only what it can read exactly as `serde_json`
//! would, and answers [`Bail`] for anything else — malformed text, `\u` escapes, deep nesting,
//! numbers it does not read — so that its caller falls back to the full parser, which stays the
//! reference for every input. No host calls, no allocation.

/// The reader cannot decide; use the full parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

/// What a skim step returns.
pub type Skimmed<T> = Result<T, Bail>;

/// Deepest nesting [`Skim::skip_value`] follows before bailing.
const MAX_DEPTH: usize = 32;

/// A JSON string as written between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStr<'a> {
    /// The bytes between the quotes, escapes not decoded.
    pub raw: &'a str,
    /// Whether `raw` holds a backslash escape.
    pub escaped: bool,
}

impl<'a> RawStr<'a> {
    /// The decoded text: borrowed when it had no escape.
    pub fn decode(self) -> std::borrow::Cow<'a, str> {
        if !self.escaped {
            return std::borrow::Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            // `string` admits only these escapes (never `\u`).
            out.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('b') => '\u{8}',
                Some('f') => '\u{c}',
                Some(other) => other, // `"`, `\` and `/`
                None => break,
            });
        }
        std::borrow::Cow::Owned(out)
    }
}

/// A cursor over one JSON document that is valid UTF-8.
#[derive(Debug)]
pub struct Skim<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Skim<'a> {
    /// A reader of `bytes`; bails when they are not UTF-8 (JSON text always is).
    pub fn new(bytes: &'a [u8]) -> Skimmed<Self> {
        let text = crate::json::utf8(bytes).ok_or(Bail)?;
        Ok(Skim { text, at: 0 })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes().get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips whitespace and consumes `byte`, or bails.
    fn expect(&mut self, byte: u8) -> Skimmed<()> {
        self.ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Ends the document: only whitespace may follow.
    pub fn end(mut self) -> Skimmed<()> {
        self.ws();
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Whether the next value is `null`; consumes it when it is.
    pub fn null(&mut self) -> Skimmed<bool> {
        self.ws();
        if self.rest().starts_with(b"null") {
            self.at += 4;
            self.delimited()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A literal or number must be followed by a delimiter, not by more letters or digits.
    fn delimited(&self) -> Skimmed<()> {
        match self.peek() {
            None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') => Ok(()),
            Some(_) => Err(Bail),
        }
    }

    /// A string value.
    pub fn string(&mut self) -> Skimmed<RawStr<'a>> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.bytes();
        let mut escaped = false;
        loop {
            self.at += plain_run(bytes.get(self.at..).unwrap_or_default());
            let Some(&b) = bytes.get(self.at) else {
                return Err(Bail);
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match bytes.get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1;
                        }
                        // `\u` (surrogates and all) is left to the full parser.
                        _ => return Err(Bail),
                    }
                }
                // A control character, which JSON strings may not hold raw.
                _ => return Err(Bail),
            }
        }
        let raw = self.text.get(start..self.at - 1).ok_or(Bail)?;
        Ok(RawStr { raw, escaped })
    }

    /// A string or `null`.
    pub fn opt_string(&mut self) -> Skimmed<Option<RawStr<'a>>> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// A non-negative integer without fraction or exponent that fits `u32`.
    pub fn u32(&mut self) -> Skimmed<u32> {
        self.ws();
        let bytes = self.bytes();
        let start = self.at;
        while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = self.text.get(start..self.at).ok_or(Bail)?;
        if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
            return Err(Bail);
        }
        self.delimited()?;
        digits.parse().map_err(|_| Bail)
    }

    /// Reads an object, calling `member` with each key; `member` must consume the value.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, RawStr<'a>) -> Skimmed<()>,
    ) -> Skimmed<()> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            member(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// Reads an array, calling `element` for each element; `element` must consume it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Skimmed<()>) -> Skimmed<()> {
        self.expect(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Bail),
            }
        }
    }

    /// Skips one value of any type, checking its syntax.
    pub fn skip_value(&mut self) -> Skimmed<()> {
        self.skip_nested(0)
    }

    /// Skips one value of any type, checking its syntax, and returns its text as written.
    pub fn value_text(&mut self) -> Skimmed<&'a str> {
        self.ws();
        let start = self.at;
        self.skip_value()?;
        self.text.get(start..self.at).ok_or(Bail)
    }

    fn skip_nested(&mut self, depth: usize) -> Skimmed<()> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.ws();
        match self.peek().ok_or(Bail)? {
            b'"' => self.string().map(drop),
            b'{' => self.object(|s, _| s.skip_nested(depth + 1)),
            b'[' => self.array(|s| s.skip_nested(depth + 1)),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(Bail),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Skimmed<()> {
        if !self.rest().starts_with(word) {
            return Err(Bail);
        }
        self.at += word.len();
        self.delimited()
    }

    /// A number per RFC 8259: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Skimmed<()> {
        let bytes = self.bytes();
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let int = digits(&mut at);
        if int == 0 || (int > 1 && bytes.get(at - int) == Some(&b'0')) {
            return Err(Bail);
        }
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            if digits(&mut at) == 0 {
                return Err(Bail);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            if digits(&mut at) == 0 {
                return Err(Bail);
            }
        }
        self.at = at;
        self.delimited()
    }
}

/// The members of one object a skim reads: serde refuses a struct field given twice, so a
/// repeated one bails.
#[derive(Debug, Default)]
pub struct Seen(u8);

impl Seen {
    /// `key` when it is one of `fields` (up to 8, not seen before), `""` for any other key.
    /// Bails on a repeated field and on a key with escapes (serde would match it decoded).
    pub fn first<'k>(&mut self, key: RawStr<'k>, fields: &[&'static str]) -> Skimmed<&'k str> {
        if key.escaped {
            return Err(Bail);
        }
        let Some(bit) = fields.iter().position(|f| *f == key.raw) else {
            return Ok("");
        };
        let mask = 1u8 << bit.min(7);
        if self.0 & mask != 0 {
            return Err(Bail);
        }
        self.0 |= mask;
        Ok(key.raw)
    }
}

/// A document already read, kept to read the next ones of the same shape fast: streams repeat
/// the same event with one string value changed (the next piece of text), so a document equal to
/// the template outside that value, whose value is a valid string, means what the template meant
/// with the new value.
#[derive(Debug, Default)]
pub struct Template {
    bytes: Vec<u8>,
    /// Where the value starts (just after its opening quote) and ends (at its closing quote).
    start: usize,
    end: usize,
    /// `bytes` hold no line break (`\n`, `\r`): a document that matches is one line.
    one_line: bool,
}

impl Template {
    /// Remembers `doc` with `value`, a string read from `doc` itself, as the part that varies.
    pub fn set(&mut self, doc: &[u8], value: RawStr<'_>) {
        let start = (value.raw.as_ptr() as usize).wrapping_sub(doc.as_ptr() as usize);
        let end = start.saturating_add(value.raw.len());
        self.bytes.clear();
        (self.start, self.end) = (0, 0);
        let quoted = doc.get(start.wrapping_sub(1)) == Some(&b'"') && doc.get(end) == Some(&b'"');
        if quoted && doc.get(start..end) == Some(value.raw.as_bytes()) {
            self.bytes.extend_from_slice(doc);
            (self.start, self.end) = (start, end);
            self.one_line = !doc.contains(&b'\n') && !doc.contains(&b'\r');
        }
    }

    /// Whether every document [`Template::value`] reads is one line: the template's own bytes
    /// hold no line break, and a value with a control character (a line break among them) is
    /// not read.
    pub fn one_line(&self) -> bool {
        self.one_line && !self.bytes.is_empty()
    }

    /// Forgets the template.
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// The value of `doc` when `doc` is the template with another valid string as its value.
    pub fn value<'d>(&self, doc: &'d [u8]) -> Option<RawStr<'d>> {
        if self.bytes.is_empty() {
            return None;
        }
        let prefix = self.bytes.get(..self.start)?;
        let suffix = self.bytes.get(self.end..).filter(|s| !s.is_empty())?;
        if doc.len() < prefix.len() + suffix.len()
            || !same_bytes(doc.get(..prefix.len())?, prefix)
            || !same_bytes(doc.get(doc.len() - suffix.len()..)?, suffix)
        {
            return None;
        }
        let body = doc.get(prefix.len()..doc.len() - suffix.len())?;
        let raw = crate::json::utf8(body)?;
        let escaped = string_body(body).ok()?;
        Some(RawStr { raw, escaped })
    }
}

/// `a == b`, eight bytes at a time: slice equality goes through `memcmp`, which on
/// `wasm32` is a byte-by-byte loop, and a template's prefix is most of every event.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map_or(0, u64::from_ne_bytes);
    let mut at = 0;
    while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
        if word(x) != word(y) {
            return false;
        }
        at += 8;
    }
    a.get(at..) == b.get(at..)
}

/// Checks that `body` is the inside of a JSON string with no `\u` escape, whole: no unescaped
/// quote, no control character, no escape cut at the end. Returns whether it has escapes.
fn string_body(body: &[u8]) -> Skimmed<bool> {
    let mut at = 0;
    let mut escaped = false;
    loop {
        at += plain_run(body.get(at..).unwrap_or_default());
        match body.get(at) {
            None => return Ok(escaped),
            Some(b'\\') => match body.get(at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    escaped = true;
                    at += 2;
                }
                _ => return Err(Bail),
            },
            Some(_) => return Err(Bail),
        }
    }
}

/// How many leading bytes of `bytes` a string holds as they are: neither `"`, `\\` nor a control
/// character.
fn plain_run(bytes: &[u8]) -> usize {
    run_until(bytes, stops, |b| b == b'"' || b == b'\\' || b < 0x20)
}

/// How many leading bytes of `bytes` are not stops, `in_word` flagging the words that hold one
/// (non-zero) and `is_stop` telling the bytes: sixteen bytes (two words, one branch) at a time
/// while sixteen remain, then eight, then one.
pub(crate) fn run_until(
    bytes: &[u8],
    in_word: impl Fn(u64) -> u64,
    is_stop: impl Fn(u8) -> bool,
) -> usize {
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map_or(u64::MAX, u64::from_ne_bytes);
    let mut at = 0;
    for block in bytes.chunks_exact(16) {
        let (a, b) = block.split_at(8);
        if in_word(word(a)) | in_word(word(b)) != 0 {
            break;
        }
        at += 16;
    }
    let rest = bytes.get(at..).unwrap_or_default();
    if let Some(w) = rest.first_chunk::<8>() {
        if in_word(u64::from_ne_bytes(*w)) == 0 {
            at += 8;
        }
    }
    while let Some(&b) = bytes.get(at) {
        if is_stop(b) {
            break;
        }
        at += 1;
    }
    at
}

/// Non-zero when some byte of `w` is `"`, `\\` or below 0x20: the classic "haszero" on `w`
/// xor each of the two, and `w - 0x20…` flags bytes below 0x20 the same way, masked by `!w`
/// so that bytes of 0x80 and up never count.
fn stops(w: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero(w ^ QUOTES) | zero(w ^ BACKSLASHES) | w.wrapping_sub(SPACES)) & !w & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips a whole document; Ok when the reader accepts it.
    fn skims(text: &str) -> bool {
        Skim::new(text.as_bytes())
            .and_then(|mut s| {
                s.skip_value()?;
                s.end()
            })
            .is_ok()
    }

    #[test]
    fn accepts_only_what_serde_json_accepts() {
        let cases = [
            r#"{"a":[1,-2.5e+3,0,true,false,null,"x\"y\\z\n"],"b":{}}"#,
            " [ ] ",
            "0",
            "-0.0E-0",
            r#""é😀""#,
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "tru",
            "truex",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "\"tab\there\"",
            "\"open",
            "{} x",
            "[\"\\q\"]",
            "",
        ];
        for text in cases {
            let reference = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(skims(text), reference, "{text:?}");
        }
    }

    #[test]
    fn bails_where_it_does_not_decide() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        for text in [r#""\u00e9""#, deep.as_str()] {
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
            assert!(!skims(text), "{text:?}");
        }
        assert!(Skim::new(b"\"\xff\"").is_err());
    }

    #[test]
    fn strings_decode_their_escapes() {
        let mut s = Skim::new(br#""a\"b\\c\/d\ne\tf\rg\bh\fi""#).unwrap_or_else(|_| panic!());
        let raw = s.string().unwrap_or_else(|_| panic!());
        assert!(raw.escaped);
        let expected: String =
            serde_json::from_str(r#""a\"b\\c\/d\ne\tf\rg\bh\fi""#).unwrap_or_default();
        assert_eq!(raw.decode(), expected);
        let mut plain = Skim::new(br#" "plain" "#).unwrap_or_else(|_| panic!());
        let raw = plain.string().unwrap_or_else(|_| panic!());
        assert!(matches!(raw.decode(), std::borrow::Cow::Borrowed("plain")));
    }

    #[test]
    fn plain_runs_stop_at_quotes_backslashes_and_control_characters() {
        let reference = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xc3, 0xa9, 0xff, 0x00, 0x21,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..40 {
            for _ in 0..200 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        // Mostly plain bytes, so that runs are long.
                        if seed % 5 == 0 {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        } else {
                            b'a' + (seed >> 16) as u8 % 26
                        }
                    })
                    .collect();
                assert_eq!(plain_run(&text), reference(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn a_template_reads_documents_that_differ_only_in_its_value() {
        let first = br#"{"a":1,"delta":{"content":"Hel"},"z":null}"#;
        let mut s = Skim::new(first).unwrap_or_else(|_| panic!());
        let mut value = None;
        s.object(|s, key| {
            if key.raw == "delta" {
                s.object(|s, _| {
                    value = Some(s.string()?);
                    Ok(())
                })
            } else {
                s.skip_value()
            }
        })
        .unwrap_or_else(|_| panic!());
        let mut template = Template::default();
        template.set(first, value.unwrap_or_else(|| panic!()));
        fn read_with(template: &Template, doc: &str) -> Option<String> {
            template
                .value(doc.as_bytes())
                .map(|v| v.decode().into_owned())
        }
        let read = |doc: &str| read_with(&template, doc);
        assert_eq!(
            read(r#"{"a":1,"delta":{"content":"lo"},"z":null}"#).as_deref(),
            Some("lo")
        );
        assert_eq!(
            read(r#"{"a":1,"delta":{"content":""},"z":null}"#).as_deref(),
            Some("")
        );
        assert_eq!(
            read(r#"{"a":1,"delta":{"content":"a\"b\n"},"z":null}"#).as_deref(),
            Some("a\"b\n")
        );
        for other in [
            r#"{"a":2,"delta":{"content":"lo"},"z":null}"#,
            r#"{"a":1,"delta":{"content":"x","role":"y"},"z":null}"#,
            r#"{"a":1,"delta":{"content":"x\"},"z":null}"#,
            r#"{"a":1,"delta":{"content":"\u0041"},"z":null}"#,
            "{\"a\":1,\"delta\":{\"content\":\"tab\there\"},\"z\":null}",
            r#"{"a":1,"delta":{"content":"x"},"z":nul}"#,
            r#"{"a":1,"delta":{"content":"},"z":null}"#,
        ] {
            assert_eq!(read(other), None, "{other}");
        }
        template.set(
            b"{}",
            RawStr {
                raw: "x",
                escaped: false,
            },
        );
        let doc = r#"{"a":1,"delta":{"content":"lo"},"z":null}"#;
        assert_eq!(read_with(&template, doc), None);
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).collect();
        for len in 0..base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same_bytes(a, &b), "{len} {at}");
            }
            assert!(!same_bytes(a, &base[..len + 1]));
        }
    }

    #[test]
    fn u32_reads_plain_integers_only() {
        let read = |t: &str| Skim::new(t.as_bytes()).and_then(|mut s| s.u32());
        assert_eq!(read("7"), Ok(7));
        assert_eq!(read(" 4294967295,"), Ok(u32::MAX));
        for bad in ["4294967296", "1.0", "-1", "07", "1e2", "", "x"] {
            assert_eq!(read(bad), Err(Bail), "{bad:?}");
        }
    }
}
