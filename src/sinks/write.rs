//! A small JSON writer for the encoders: members and elements go straight into one byte buffer
//! and every string is escaped once, sixteen bytes at a time where nothing needs escaping. JSON
//! that travels inside a JSON string (OTLP attributes holding messages) is written in the same
//! pass, its quotes and escapes escaped again. The output is byte for byte what `serde_json`
//! writes for the same values (same escapes, same number forms).

use serde_json::value::RawValue;
use serde_json::Value;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Flags the bytes of `w` that JSON strings escape: controls, `"` and `\`. A byte's high bit is
/// set when the byte, xor-ed with `"` or `\` (or as it is, for controls), is below 0x01 (0x20):
/// the subtraction borrows there and nowhere below the first such byte, so the lowest flag
/// marks the first byte to escape (flags above it may be spurious). Bytes of 0x80 and above are
/// never flagged.
fn escape_mask(w: u64) -> u64 {
    let quote = (w ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (w ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    let control = w.wrapping_sub(ONES * 0x20);
    (quote | backslash | control) & !w & HIGHS
}

/// The eight bytes of `bytes` from `at`, padded with spaces (which need no escape) past the end.
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let rest = bytes.get(at..).unwrap_or_default();
    if let Some(word) = rest.first_chunk::<8>() {
        return u64::from_le_bytes(*word);
    }
    let mut word = [b' '; 8];
    word[..rest.len()].copy_from_slice(rest);
    u64::from_le_bytes(word)
}

/// Whether the sixteen bytes of `bytes` from `at` are there and need no escape.
fn clean_16(bytes: &[u8], at: usize) -> bool {
    let Some((low, high)) = bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<16>)
        .and_then(|c| c.split_first_chunk::<8>())
    else {
        return false;
    };
    let high = high.first_chunk::<8>().copied().unwrap_or_default();
    escape_mask(u64::from_le_bytes(*low)) | escape_mask(u64::from_le_bytes(high)) == 0
}

/// Appends the escape of one byte that needs it, as `serde_json` writes it; `nested`: that
/// escape escaped again.
fn push_escape(out: &mut Vec<u8>, b: u8, nested: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if nested {
        // The escape's backslash, escaped; a quote or backslash after it needs its own.
        out.extend_from_slice(b"\\\\");
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
    } else {
        out.push(b'\\');
    }
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        _ => {
            out.extend_from_slice(b"u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            return;
        }
    };
    out.push(short);
}

/// Appends `bytes` escaped for the inside of a JSON string (no quotes); `nested`: escaped
/// twice, for a string in JSON that is itself inside a JSON string. Bytes of 0x80 and above
/// pass through, so UTF-8 stays UTF-8.
fn escape(out: &mut Vec<u8>, bytes: &[u8], nested: bool) {
    out.reserve(bytes.len());
    let mut run = 0;
    let mut at = 0;
    while at < bytes.len() {
        while clean_16(bytes, at) {
            at += 16;
        }
        let mask = escape_mask(word_at(bytes, at));
        if mask == 0 {
            at += 8;
            continue;
        }
        // The lowest flag is exact and padding is never flagged: this byte needs an escape.
        at += (mask.trailing_zeros() / 8) as usize;
        let Some(&b) = bytes.get(at) else { break };
        out.extend_from_slice(&bytes[run..at]);
        push_escape(out, b, nested);
        at += 1;
        run = at;
    }
    out.extend_from_slice(&bytes[run..]);
}

/// A string's quote: `\"` inside a JSON string.
fn quote(out: &mut Vec<u8>, nested: bool) {
    if nested {
        out.push(b'\\');
    }
    out.push(b'"');
}

/// Appends the concatenation of `parts` as one JSON string (`nested`: see [`escape`]).
fn string_in<'s>(out: &mut Vec<u8>, parts: impl IntoIterator<Item = &'s str>, nested: bool) {
    quote(out, nested);
    for part in parts {
        escape(out, part.as_bytes(), nested);
    }
    quote(out, nested);
}

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    string_in(out, [s], false);
}

/// Appends the concatenation of `parts` as one JSON string.
pub(crate) fn string_of<'s>(out: &mut Vec<u8>, parts: impl IntoIterator<Item = &'s str>) {
    string_in(out, parts, false);
}

/// Appends the JSON text of `v`, escaped for the inside of a JSON string (no quotes).
pub(crate) fn value_escaped(out: &mut Vec<u8>, v: &Value) {
    // Serializing a `Value` cannot fail: its keys are strings.
    let text = serde_json::to_vec(v).unwrap_or_default();
    escape(out, &text, false);
}

/// The ASCII digits of `v`, written at the end of `buf`.
fn digits(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    while let Some(slot) = i.checked_sub(1).and_then(|j| buf.get_mut(j)) {
        *slot = b'0' + (v % 10) as u8;
        i -= 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// `v` in decimal, written at the end of `buf`.
pub(crate) fn decimal(buf: &mut [u8; 20], v: u64) -> &str {
    std::str::from_utf8(digits(buf, v)).unwrap_or_default()
}

/// Appends `v` in decimal.
pub(crate) fn uint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0; 20];
    out.extend_from_slice(digits(&mut buf, v));
}

/// Appends `v` in decimal, with its sign.
fn int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    uint(out, v.unsigned_abs());
}

/// Appends `v` as `serde_json` writes an `f64`: the shortest form that reads back the same,
/// `null` when it is not finite.
pub(crate) fn float(out: &mut Vec<u8>, v: f64) {
    // Writing to a Vec cannot fail, nor can serializing a float.
    let _ = serde_json::to_writer(out, &v);
}

/// Appends a JSON value as `serde_json` writes it.
pub(crate) fn value(out: &mut Vec<u8>, v: &Value) {
    // Writing to a Vec cannot fail, and a `Value`'s keys are strings.
    let _ = serde_json::to_writer(out, v);
}

/// `text` without surrounding whitespace when it is one valid JSON value (text taken from a
/// parsed body, embedded verbatim).
pub(crate) fn raw_json(text: &str) -> Option<&str> {
    serde_json::from_slice::<&RawValue>(text.as_bytes())
        .ok()
        .map(RawValue::get)
}

/// Lowercase hex of `bytes` as a JSON string.
pub(crate) fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]);
    }
    out.push(b'"');
}

/// A JSON object or array being written: opens on creation, puts the commas between members,
/// closes on [`Composite::close`]. A `nested` one is JSON text inside a JSON string (an OTLP
/// attribute's value): its quotes and escapes come out escaped, in the same pass.
pub(crate) struct Composite<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    end: u8,
    nested: bool,
}

impl<'a> Composite<'a> {
    fn open(out: &'a mut Vec<u8>, brackets: [u8; 2], nested: bool) -> Self {
        out.push(brackets[0]);
        Composite {
            out,
            first: true,
            end: brackets[1],
            nested,
        }
    }

    /// Opens an object.
    pub(crate) fn object(out: &'a mut Vec<u8>) -> Self {
        Composite::open(out, *b"{}", false)
    }

    /// Opens an object inside a JSON string, whose quotes the caller writes.
    pub(crate) fn object_in_string(out: &'a mut Vec<u8>) -> Self {
        Composite::open(out, *b"{}", true)
    }

    /// Opens an array inside a JSON string, whose quotes the caller writes.
    pub(crate) fn array_in_string(out: &'a mut Vec<u8>) -> Self {
        Composite::open(out, *b"[]", true)
    }

    /// Adds members to an object that already has some, written elsewhere.
    pub(crate) fn resume(out: &'a mut Vec<u8>) -> Self {
        Composite {
            out,
            first: false,
            end: b'}',
            nested: false,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// Starts the next array element; write it into the returned buffer (unless nested).
    pub(crate) fn item(&mut self) -> &mut Vec<u8> {
        self.comma();
        self.out
    }

    /// Starts member `key`; write its value into the returned buffer (unless nested).
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        self.comma();
        string_in(self.out, [key], self.nested);
        self.out.push(b':');
        self.out
    }

    /// The next array element, an object.
    pub(crate) fn item_object(&mut self) -> Composite<'_> {
        let nested = self.nested;
        Composite::open(self.item(), *b"{}", nested)
    }

    /// Member `key`, an object.
    pub(crate) fn object_at(&mut self, key: &str) -> Composite<'_> {
        let nested = self.nested;
        Composite::open(self.key(key), *b"{}", nested)
    }

    /// Member `key`, an array.
    pub(crate) fn array_at(&mut self, key: &str) -> Composite<'_> {
        let nested = self.nested;
        Composite::open(self.key(key), *b"[]", nested)
    }

    /// Member `key` with a string value.
    pub(crate) fn str(&mut self, key: &str, v: &str) {
        self.str_of(key, [v]);
    }

    /// Member `key` with the concatenation of `parts` as its string value.
    pub(crate) fn str_of<'s>(&mut self, key: &str, parts: impl IntoIterator<Item = &'s str>) {
        let nested = self.nested;
        string_in(self.key(key), parts, nested);
    }

    /// Member `key` with a string value, when there is one.
    pub(crate) fn opt_str(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(key, v);
        }
    }

    /// Member `key` with an unsigned integer value.
    pub(crate) fn uint(&mut self, key: &str, v: u64) {
        uint(self.key(key), v);
    }

    /// Member `key` with a signed integer value.
    pub(crate) fn int(&mut self, key: &str, v: i64) {
        int(self.key(key), v);
    }

    /// Member `key` with a float value (`null` when not finite).
    pub(crate) fn float(&mut self, key: &str, v: f64) {
        float(self.key(key), v);
    }

    /// Member `key` with a boolean value.
    pub(crate) fn bool(&mut self, key: &str, v: bool) {
        let text: &[u8] = if v { b"true" } else { b"false" };
        self.key(key).extend_from_slice(text);
    }

    /// Member `key` with a JSON value.
    pub(crate) fn value(&mut self, key: &str, v: &Value) {
        if self.nested {
            value_escaped(self.key(key), v);
        } else {
            value(self.key(key), v);
        }
    }

    /// Member `key` with an array of strings.
    pub(crate) fn strs<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        let nested = self.nested;
        let mut array = self.array_at(key);
        for v in values {
            string_in(array.item(), [v], nested);
        }
        array.close();
    }

    /// Closes the object or array.
    pub(crate) fn close(self) {
        self.out.push(self.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap_or_default()
    }

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, s);
        text(out)
    }

    /// `s` in a JSON object inside a JSON string.
    fn nested(s: &str) -> String {
        let mut out = vec![b'"'];
        let mut o = Composite::object_in_string(&mut out);
        o.str("k", s);
        o.close();
        out.push(b'"');
        text(out)
    }

    fn nested_as_serde(s: &str) -> String {
        serde_json::to_string(&json!({ "k": s }).to_string()).unwrap_or_default()
    }

    #[test]
    fn escapes_like_serde_json() {
        let cases = [
            "",
            "plain ascii text that is longer than sixteen bytes",
            "\"\\\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "é ü 中文 😀 \u{2028} </script>",
            "0123456\"89abcdef\\",
            "abcdefghijklmno\u{1}",
            "abcdefghijklmnopqrstuvwxyz0123456789\"",
        ];
        for s in cases {
            assert_eq!(escaped(s), serde_json::to_string(s).unwrap_or_default());
            assert_eq!(nested(s), nested_as_serde(s));
        }
    }

    #[test]
    fn numbers_like_serde_json() {
        for v in [0, 1, 9, 10, 12_345, u64::MAX] {
            let mut out = Vec::new();
            uint(&mut out, v);
            assert_eq!(text(out), v.to_string());
        }
        for v in [0, -1, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            int(&mut out, v);
            assert_eq!(text(out), v.to_string());
        }
        for v in [0.1, -5.0, 1e300, 3.6e-6, f64::NAN, f64::INFINITY] {
            let mut out = Vec::new();
            float(&mut out, v);
            assert_eq!(text(out), json!(v).to_string());
        }
    }

    #[test]
    fn composites_put_commas_between_members() {
        let mut out = Vec::new();
        let mut o = Composite::object(&mut out);
        o.str("a", "x");
        o.uint("b", 2);
        o.strs("c", ["y", "z"]);
        let mut inner = o.object_at("d");
        inner.bool("e", true);
        inner.close();
        let mut list = o.array_at("f");
        list.item_object().close();
        list.close();
        o.close();
        assert_eq!(
            text(out),
            r#"{"a":"x","b":2,"c":["y","z"],"d":{"e":true},"f":[{}]}"#
        );
    }

    #[test]
    fn nested_json_reads_back_as_the_same_value() {
        let value = json!({"q": "a\"b\\c\nd\u{1}", "n": [1, 2.5, null]});
        let mut out = vec![b'"'];
        let mut list = Composite::array_in_string(&mut out);
        let mut o = list.item_object();
        o.value("v", &value);
        o.strs("s", ["x\"", "y"]);
        o.int("i", -3);
        o.close();
        list.close();
        out.push(b'"');
        let inner: String = serde_json::from_slice(&out).unwrap_or_default();
        let parsed: Value = serde_json::from_str(&inner).unwrap_or_default();
        assert_eq!(parsed, json!([{"v": value, "s": ["x\"", "y"], "i": -3}]));
    }

    proptest! {
        #[test]
        fn any_string_escapes_like_serde_json(s in any::<String>()) {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap_or_default());
            prop_assert_eq!(nested(&s), nested_as_serde(&s));
        }

        #[test]
        fn ascii_escapes_like_serde_json(s in "[\\x00-\\x7f]*") {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap_or_default());
            prop_assert_eq!(nested(&s), nested_as_serde(&s));
        }
    }
}
