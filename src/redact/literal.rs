//! Operator literals and patterns, each with a prefilter.
//!
//! A [`Literal`] is searched for through its rarest byte (by the byte frequencies of English
//! and JSON text), found eight bytes at a time; each hit is then compared in full. A
//! [`Pattern`] whose every match must start with a fixed string (`ACCT-[0-9]{6}` starts with
//! `ACCT-`) is only run on text that contains that string.

use super::swar;
use std::fmt;

/// An operator literal and the byte its search looks for.
#[derive(Clone)]
pub(super) struct Literal {
    text: String,
    /// Offset in `text` of its rarest byte.
    rare_at: usize,
}

impl Literal {
    /// The literal `text` (not empty).
    pub fn new(text: &str) -> Literal {
        let rare_at = text
            .bytes()
            .enumerate()
            .min_by_key(|&(i, b)| (commonness(b), i))
            .map_or(0, |(i, _)| i);
        Literal {
            text: text.to_string(),
            rare_at,
        }
    }

    /// The literal itself.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// The first occurrence in `haystack` starting at or after `from`.
    pub fn find(&self, haystack: &[u8], from: usize) -> Option<usize> {
        let needle = self.text.as_bytes();
        let rare = *needle.get(self.rare_at)?;
        let mut probe = from.checked_add(self.rare_at)?;
        loop {
            let hit = swar::find_byte(haystack, rare, probe)?;
            let start = hit - self.rare_at;
            if haystack.get(start..start + needle.len()) == Some(needle) {
                return Some(start);
            }
            probe = hit + 1;
        }
    }

    /// The occurrences in `haystack` from left to right, not overlapping (as
    /// [`str::match_indices`] finds them), as `(start, end)`.
    pub fn each(&self, haystack: &[u8], mut f: impl FnMut(usize, usize)) {
        let mut from = 0;
        while let Some(start) = self.find(haystack, from) {
            let end = start + self.len();
            f(start, end);
            from = end;
        }
    }
}

/// Shows the length, not the literal (it may be a secret).
impl fmt::Debug for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Literal")
            .field("len", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// How often `b` occurs in English prose and JSON, roughly: the lower, the better a byte to
/// search for.
fn commonness(b: u8) -> u8 {
    match b {
        b' ' | b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' => 9,
        b'l' | b'd' | b'c' | b'u' | b'm' | b'"' | b',' | b'.' | b':' => 8,
        b'f' | b'p' | b'g' | b'w' | b'y' | b'b' | b'\n' => 7,
        b'a'..=b'z' | b'0' | b'1' | b'2' | b'-' | b'_' | b'/' => 6,
        b'0'..=b'9' | b'{' | b'}' | b'[' | b']' | b'\'' | b'(' | b')' => 5,
        b'A'..=b'Z' | b'=' | b'\\' | b'\t' | b'\r' => 4,
        0x80..=0xff => 3,
        _ => 2,
    }
}

/// An operator pattern, and the string all its matches start with, when it has one.
#[derive(Clone)]
pub(super) struct Pattern {
    regex: regex_lite::Regex,
    prefix: Option<Literal>,
}

/// Shows whether there is a prefilter, not the pattern (it may name a secret).
impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("prefiltered", &self.prefix.is_some())
            .finish_non_exhaustive()
    }
}

impl Pattern {
    /// Wraps a compiled pattern and its source.
    pub fn new(regex: regex_lite::Regex, source: &str) -> Pattern {
        let prefix = required_prefix(source).map(|p| Literal::new(&p));
        Pattern { regex, prefix }
    }

    /// Whether the pattern cannot match anywhere in `text` (nor in any part of it), known
    /// without running it.
    pub fn ruled_out(&self, text: &str) -> bool {
        self.prefix
            .as_ref()
            .is_some_and(|p| p.find(text.as_bytes(), 0).is_none())
    }

    /// The non-empty matches in `text`, as `(start, end)`.
    pub fn each(&self, text: &str, mut f: impl FnMut(usize, usize)) {
        if self.ruled_out(text) {
            return;
        }
        for m in self.regex.find_iter(text).filter(|m| !m.is_empty()) {
            f(m.start(), m.end());
        }
    }
}

/// The literal text every match of the pattern `source` starts with, if it is sure to have
/// one: the leading characters that are literal in regex syntax (ASCII letters, digits and a
/// few punctuation marks; not the last one if a quantifier follows it), in a pattern without
/// any `|` (an alternative need not start the same way). Anything else gives `None`, which
/// only costs the prefilter.
fn required_prefix(source: &str) -> Option<String> {
    if source.contains('|') {
        return None;
    }
    let literal = |c: char| c.is_ascii_alphanumeric() || "-_:=@#%&'\",;<>/!~ ".contains(c);
    let mut prefix: String = source.chars().take_while(|&c| literal(c)).collect();
    let next = source
        .get(prefix.len()..)
        .and_then(|rest| rest.chars().next());
    if matches!(next, Some('?' | '*' | '+' | '{')) {
        prefix.pop();
    }
    (!prefix.is_empty()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(literal: &str, haystack: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        Literal::new(literal).each(haystack.as_bytes(), |s, e| out.push((s, e)));
        out
    }

    fn reference(literal: &str, haystack: &str) -> Vec<(usize, usize)> {
        haystack
            .match_indices(literal)
            .map(|(at, m)| (at, at + m.len()))
            .collect()
    }

    #[test]
    fn literals_are_found_as_match_indices_finds_them() {
        let cases = [
            ("aa", "aaaaa"),
            ("Zq9", "Zq9Zq9 xZq9"),
            ("é€", "aé€bé€"),
            ("x", ""),
            ("long literal", "long"),
            ("hunter2", "pw hunter2 and hunter22, not HUNTER2"),
            ("ab", "abababab"),
            ("\"", "say \"hi\""),
        ];
        for (literal, haystack) in cases {
            assert_eq!(
                all(literal, haystack),
                reference(literal, haystack),
                "{literal}"
            );
        }
    }

    #[test]
    fn the_rarest_byte_is_searched() {
        assert_eq!(Literal::new("the Zebra").rare_at, 4);
        assert_eq!(Literal::new("eee").rare_at, 0);
        assert_eq!(Literal::new("ab#").rare_at, 2);
    }

    #[test]
    fn prefixes_of_patterns() {
        let cases = [
            ("ACCT-[0-9]{6}", Some("ACCT-")),
            ("EMP-[0-9]{6}", Some("EMP-")),
            ("abc?d", Some("ab")),
            ("ab+", Some("a")),
            ("a*", None),
            ("a{2}", None),
            ("(?i)project\\s+[a-z]+", None),
            ("foo|bar", None),
            ("foo(bar|baz)", None),
            ("\\bword", None),
            ("x.y", Some("x")),
            ("T-[0-9]+", Some("T-")),
            ("^start", None),
            ("é", None),
        ];
        for (source, expected) in cases {
            assert_eq!(required_prefix(source).as_deref(), expected, "{source}");
        }
    }

    proptest! {
        #[test]
        fn literal_search_matches_match_indices(
            literal in "[ab é]{1,4}",
            haystack in "[ab é]{0,40}",
        ) {
            prop_assert_eq!(all(&literal, &haystack), reference(&literal, &haystack));
        }

        #[test]
        fn a_prefiltered_pattern_finds_what_the_regex_finds(
            source in prop_oneof![
                Just("ab[0-9]+"), Just("a-b?c"), Just("x{2}y"), Just("ab.c"), Just("b#c*"),
            ],
            haystack in "[abcxy0-9#-]{0,40}",
        ) {
            let regex = regex_lite::Regex::new(source).expect("valid");
            let pattern = Pattern::new(regex.clone(), source);
            let mut found = Vec::new();
            pattern.each(&haystack, |s, e| found.push((s, e)));
            let expected: Vec<(usize, usize)> = regex
                .find_iter(&haystack)
                .filter(|m| !m.is_empty())
                .map(|m| (m.start(), m.end()))
                .collect();
            prop_assert_eq!(found, expected);
        }
    }
}
