//! Raw access to JSON objects: members in document order with their values as the exact text
//! the document holds, for reading a few members of a large body and for rewriting one member
//! while keeping every other byte. No host calls.

use crate::skim::{run_until, Skim, Skimmed};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A JSON object's members in document order, values as the raw text the document holds.
pub struct Members<'a>(pub Vec<(Cow<'a, str>, &'a str)>);

impl<'a> Members<'a> {
    /// The members of `body` when it is one JSON object; `None` when it is not.
    ///
    /// The forward reader ([`crate::skim`]) reads the everyday body in one pass; anything it
    /// does not read exactly as `serde_json` would goes to `serde_json`, which decides.
    pub fn parse(body: &'a [u8]) -> Option<Self> {
        if let Ok(members) = Self::skim(body) {
            return Some(members);
        }
        serde_json::from_slice::<Parsed<'a>>(body)
            .ok()
            .map(|p| Members(p.0))
    }

    fn skim(body: &'a [u8]) -> Skimmed<Self> {
        let mut skim = Skim::new(body)?;
        let mut members = Vec::new();
        skim.object(|s, key| {
            members.push((key.decode(), s.value_text()?));
            Ok(())
        })?;
        skim.end()?;
        Ok(Members(members))
    }

    /// The raw value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The object again, with members `replaced` (`None` removes them) and `added` at the end.
    pub fn encode(&self, replaced: &[(&str, Option<String>)], added: &[(&str, String)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.0
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
                + 64,
        );
        out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, key: &str, value: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(json_string(key).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (k, v) in &self.0 {
            match replaced.iter().find(|(name, _)| name == k) {
                Some((_, Some(new))) => member(&mut out, k, new),
                Some((_, None)) => {}
                None => member(&mut out, k, v),
            }
        }
        for (k, v) in added {
            member(&mut out, k, v);
        }
        out.push(b'}');
        out
    }
}

/// The members as `serde_json` reads them, the reference for [`Members::parse`].
struct Parsed<'a>(Vec<(Cow<'a, str>, &'a str)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Parsed<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Parsed<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed<'a>, A::Error> {
                let mut members = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'a RawValue>()? {
                    members.push((Cow::Owned(k), v.get()));
                }
                Ok(Parsed(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// `bytes` as text when they are UTF-8 (what [`std::str::from_utf8`] accepts). LLM bodies are
/// ASCII for most of their length: the ASCII start is checked sixteen bytes at a time
/// ([`run_until`]; the standard library takes eight at a time on wasm32), the rest by the
/// standard library.
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let ascii = run_until(bytes, |word| word & HIGH, |b| !b.is_ascii());
    std::str::from_utf8(bytes.get(ascii..)?).ok()?;
    // SAFETY: `bytes[..ascii]` is ASCII and `bytes[ascii..]` is UTF-8. An ASCII byte is a
    // whole character, so the split is at a character boundary and the whole is UTF-8.
    Some(unsafe { std::str::from_utf8_unchecked(bytes) })
}

/// `bytes` as text, invalid UTF-8 sequences replaced by U+FFFD (borrowed when valid).
pub fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match utf8(bytes) {
        Some(text) => Cow::Borrowed(text),
        None => String::from_utf8_lossy(bytes),
    }
}

/// `body` with every `\u` escape of half a UTF-16 surrogate pair (a leading half not followed
/// by a trailing one, or a trailing half alone) written as `\ufffd`, the replacement
/// character; `None` when it has none. Clients that cut UTF-16 text send such escapes and
/// `serde_json` refuses them; a string cannot hold them, so the replacement character stands
/// for them. The escape and its replacement are both six bytes.
pub fn lone_surrogates_replaced(body: &[u8]) -> Option<Vec<u8>> {
    // The UTF-16 code unit a `\uXXXX` escape at `at` stands for.
    let unit = |at: usize| {
        let hex = body.get(at..at + 6)?.strip_prefix(b"\\u")?;
        hex.iter()
            .try_fold(0, |unit, &b| Some(unit << 4 | char::from(b).to_digit(16)?))
    };
    // Copied only once a lone half is found: most bodies refused are refused for other reasons.
    let mut fixed: Option<Vec<u8>> = None;
    let mut at = 0;
    while let Some(&b) = body.get(at) {
        if b != b'\\' {
            at += 1;
            continue;
        }
        at += match unit(at) {
            None => 2,
            Some(0xD800..=0xDBFF) if matches!(unit(at + 6), Some(0xDC00..=0xDFFF)) => 12,
            Some(0xD800..=0xDFFF) => {
                let out = fixed.get_or_insert_with(|| body.to_vec());
                if let Some(escape) = out.get_mut(at..at + 6) {
                    escape.copy_from_slice(b"\\ufffd");
                }
                6
            }
            Some(_) => 6,
        };
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serde_json` reads, as owned pairs; `None` when it refuses the body.
    fn reference(body: &[u8]) -> Option<Vec<(String, String)>> {
        let parsed = serde_json::from_slice::<Parsed<'_>>(body).ok()?;
        Some(own(parsed.0))
    }

    fn own(members: Vec<(Cow<'_, str>, &str)>) -> Vec<(String, String)> {
        members
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.to_string()))
            .collect()
    }

    fn bodies() -> Vec<Vec<u8>> {
        let mut bodies: Vec<Vec<u8>> = [
            r#"{"model":"m","messages":[{"role":"user","content":"hi \"there\"\n"}],"user":"u-1"}"#,
            r#" { "metadata" : {"session_id":"s","tags":["a","b"]} , "n" : -1.5e3 , "x":[true,false,null] } "#,
            r#"{"a":1,"a":2}"#,
            r#"{"k\tey":"v","\u0061":"escaped key"}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#"{"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            r#"{"a":01}"#,
            r#"{"a":"x"} trailing"#,
        ]
        .iter()
        .map(|b| b.as_bytes().to_vec())
        .collect();
        for dir in [
            "openai_chat/basic",
            "openai_chat/tool_result",
            "anthropic_messages/basic",
        ] {
            let path = format!(
                "{}/tests/fixtures/{dir}/request.json",
                env!("CARGO_MANIFEST_DIR")
            );
            if let Ok(body) = std::fs::read(path) {
                bodies.push(body);
            }
        }
        let base = bodies[0].clone();
        for at in 0..base.len() {
            for byte in [b'"', b'\\', b'x', b'}', b',', b':', b'1', 0x01, 0xff] {
                let mut changed = base.clone();
                changed[at] = byte;
                bodies.push(changed);
            }
        }
        bodies
    }

    #[test]
    fn parse_reads_every_body_as_serde_json_does() {
        let mut skimmed = 0;
        for body in bodies() {
            let text = String::from_utf8_lossy(&body).into_owned();
            let got = Members::parse(&body).map(|m| own(m.0));
            assert_eq!(got, reference(&body), "{text}");
            if let Ok(fast) = Members::skim(&body) {
                skimmed += 1;
                assert_eq!(Some(own(fast.0)), reference(&body), "{text}");
            }
        }
        // The forward reader answers most bodies itself; the rest fall back.
        assert!(skimmed > 100, "only {skimmed} bodies skimmed");
    }

    #[test]
    fn get_answers_the_first_member_of_a_name() {
        let members = Members::parse(br#"{"a":1,"b":{"c":2},"a":3}"#).unwrap_or(Members(vec![]));
        assert_eq!(members.get("a"), Some("1"));
        assert_eq!(members.get("b"), Some(r#"{"c":2}"#));
        assert_eq!(members.get("c"), None);
        assert!(Members::parse(b"[]").is_none());
        assert!(Members::parse(b"{\"a\":").is_none());
    }

    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let cases: [(&str, Option<&str>); 10] = [
            (r#"{"a":"\ud800"}"#, Some(r#"{"a":"\ufffd"}"#)),
            (r#"{"a":"x\uDC00y"}"#, Some(r#"{"a":"x\ufffdy"}"#)),
            (
                r#"["\ud83d\ude00","\ud83d"]"#,
                Some(r#"["\ud83d\ude00","\ufffd"]"#),
            ),
            (
                r#"["\ud83d\ud83d\ude00"]"#,
                Some(r#"["\ufffd\ud83d\ude00"]"#),
            ),
            (r#"["\ude00\ud83d"]"#, Some(r#"["\ufffd\ufffd"]"#)),
            (r#"["\ud83d\ude00"]"#, None),
            (r#"["\\ud800"]"#, None),
            (r#"["\u00e9\n\"\\"]"#, None),
            (r#"["\ud80"]"#, None),
            (r#"["\"#, None),
        ];
        for (body, expected) in cases {
            let fixed = lone_surrogates_replaced(body.as_bytes());
            assert_eq!(
                fixed.as_deref().map(String::from_utf8_lossy).as_deref(),
                expected,
                "{body}"
            );
            if let Some(fixed) = fixed {
                assert!(
                    serde_json::from_str::<serde_json::Value>(body).is_err(),
                    "{body}"
                );
                let read: serde_json::Value = serde_json::from_slice(&fixed).unwrap_or_default();
                assert!(read.to_string().contains('\u{fffd}'), "{body}");
            }
        }
    }

    /// Every split of ASCII and multi-byte text around the sixteen-byte blocks, and bytes
    /// that are not UTF-8 at every position: the same verdict as the standard library.
    #[test]
    fn utf8_agrees_with_the_standard_library() {
        let pieces: [&[u8]; 7] = [
            b"a",
            "é".as_bytes(),
            "€".as_bytes(),
            "😀".as_bytes(),
            b"\xff",
            b"\xc3",
            b"\x80",
        ];
        for len in 0..40 {
            for at in 0..=len {
                for piece in pieces {
                    let mut bytes = vec![b'x'; len];
                    bytes.splice(at..at, piece.iter().copied());
                    let theirs = std::str::from_utf8(&bytes).ok();
                    assert_eq!(utf8(&bytes), theirs, "{bytes:?}");
                    let lossy = String::from_utf8_lossy(&bytes);
                    assert_eq!(utf8_lossy(&bytes), lossy, "{bytes:?}");
                    assert_eq!(
                        matches!(utf8_lossy(&bytes), Cow::Borrowed(_)),
                        theirs.is_some()
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn utf8_agrees_on_any_bytes(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![4 => 0x20u8..0x7f, 1 => proptest::num::u8::ANY], 0..80),
        ) {
            proptest::prop_assert_eq!(utf8(&bytes), std::str::from_utf8(&bytes).ok());
        }
    }
}
