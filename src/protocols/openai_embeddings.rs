//! OpenAI Embeddings (`POST …/embeddings`): request and JSON response folded into a
//! [`TraceRecord`]. Embeddings do not stream.
//!
//! Follows OpenAI's API reference for "Create embeddings" (request `model` and `input`:
//! a string, an array of strings, an array of token ids or an array of token-id arrays) and
//! the embeddings list object (`data[]`, `model`, `usage.prompt_tokens`/`total_tokens`);
//! Azure OpenAI and OpenAI-compatible servers speak the same shapes.
//!
//! The record keeps the inputs (as one `user` message with a text part per input; token
//! inputs are described as `[N tokens]`) and how many there were, never the vectors: the
//! response's `data[]` entries are only counted, skipped by serde without being materialized.
//! The inputs kept are bounded by the request body, which is only parsed when it fits the body
//! cap (`max_body_bytes`); when it does not, the count comes from the response's `data[]`.
//! Nothing here calls the host.

use super::wire::{counts, MAX_COUNTS};
use super::ProtocolError;
use crate::objects;
use crate::record::{Message, Part, TraceRecord, Usage};
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One prompt or embedding input: text, or a pre-tokenized input of `n` tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TextInput {
    /// A text input.
    Text(String),
    /// A token-id array of this many tokens.
    Tokens(usize),
}

impl TextInput {
    /// The input as message text: itself, or `[N tokens]`.
    pub(super) fn into_text(self) -> String {
        match self {
            TextInput::Text(text) => text,
            TextInput::Tokens(n) => format!("[{n} tokens]"),
        }
    }
}

/// The OpenAI `prompt` / `input` union: `string | string[] | integer[] | integer[][]`.
///
/// Token arrays are counted, never collected. A flat array of token ids is one input; each
/// nested array is one input. Elements of any other type are skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TextInputs(pub(super) Vec<TextInput>);

impl<'de> Deserialize<'de> for TextInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputsVisitor)
    }
}

struct InputsVisitor;

impl<'de> Visitor<'de> for InputsVisitor {
    type Value = TextInputs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, or an array of strings or token arrays")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextInputs, E> {
        Ok(TextInputs(vec![TextInput::Text(v.to_owned())]))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<TextInputs, E> {
        Ok(TextInputs(vec![TextInput::Text(v)]))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextInputs, E> {
        Ok(TextInputs::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextInputs, A::Error> {
        let mut inputs = Vec::new();
        // Bare token ids (a flat `integer[]`) make one input, placed where the first was seen.
        let mut bare: Option<(usize, usize)> = None;
        while let Some(item) = seq.next_element::<InputElement>()? {
            match item {
                InputElement::Text(text) => inputs.push(TextInput::Text(text)),
                InputElement::Tokens(n) => inputs.push(TextInput::Tokens(n)),
                InputElement::Token => match &mut bare {
                    Some((_, n)) => *n += 1,
                    None => bare = Some((inputs.len(), 1)),
                },
                InputElement::Other => {}
            }
        }
        if let Some((at, n)) = bare {
            // `at` was `inputs.len()` when recorded and `inputs` only grows.
            inputs.insert(at.min(inputs.len()), TextInput::Tokens(n));
        }
        Ok(TextInputs(inputs))
    }
}

/// One element of an input array.
enum InputElement {
    Text(String),
    Tokens(usize),
    Token,
    Other,
}

impl<'de> Deserialize<'de> for InputElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = InputElement;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a token id or a token array")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<InputElement, E> {
        Ok(InputElement::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<InputElement, E> {
        Ok(InputElement::Text(v))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<InputElement, E> {
        Ok(InputElement::Token)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<InputElement, E> {
        Ok(InputElement::Token)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<InputElement, E> {
        Ok(InputElement::Token)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<InputElement, E> {
        Ok(InputElement::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<InputElement, E> {
        Ok(InputElement::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<InputElement, A::Error> {
        Ok(InputElement::Tokens(count_elements(seq)?))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<InputElement, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(InputElement::Other)
    }
}

fn count_elements<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0usize;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n = n.saturating_add(1);
    }
    Ok(n)
}

/// The length of a JSON array, its elements skipped unread (`null` counts as empty).
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
                count_elements(seq).map(Count)
            }
        }
        d.deserialize_any(CountVisitor)
    }
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: Option<String>,
    input: Option<TextInputs>,
}

/// Fills the request side of `record` from an embeddings request body: model, the inputs as
/// one `user` message, and how many inputs there are.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not an embeddings request.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: EmbeddingsRequest = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    let Some(TextInputs(inputs)) = req.input else {
        return Ok(());
    };
    record.embedding_count = Some(inputs.len() as u64);
    if !inputs.is_empty() {
        record.messages = vec![Message {
            role: "user".into(),
            parts: inputs
                .into_iter()
                .map(|i| Part::Text(i.into_text()))
                .collect(),
            ..Message::default()
        }];
    }
    Ok(())
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    model: Option<String>,
    /// The embeddings, counted and skipped: the vectors are never read into memory.
    data: Option<Count>,
    usage: Option<WireUsage>,
}

/// The embeddings `usage` object: `prompt_tokens` and `total_tokens`.
struct WireUsage([Option<u64>; MAX_COUNTS]);

impl<'de> Deserialize<'de> for WireUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        counts(d, &["prompt_tokens", "total_tokens"]).map(WireUsage)
    }
}

/// Fills the response side of `record` from an embeddings list: model, usage (input and
/// total; embeddings produce no output tokens) and, when the request did not say, how many
/// embeddings came back.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not an embeddings list.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let resp: EmbeddingsResponse = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.response_model = resp.model.filter(|m| !m.is_empty());
    if let Some(WireUsage([input, total, ..])) = resp.usage {
        record.usage = Usage {
            input,
            total,
            ..Usage::default()
        };
    }
    if record.embedding_count.is_none() {
        record.embedding_count = resp.data.map(|Count(n)| n as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::harness::{check_family, check_hostile};
    use crate::protocols::Protocol;

    #[test]
    fn fixtures() {
        check_family("openai_embeddings", 5);
    }

    #[test]
    fn input_shapes() {
        let cases: [(&str, Vec<&str>); 8] = [
            (r#""hello""#, vec!["hello"]),
            (r#"["a","b"]"#, vec!["a", "b"]),
            ("[1,2,3]", vec!["[3 tokens]"]),
            (
                "[[1,2],[3],[]]",
                vec!["[2 tokens]", "[1 tokens]", "[0 tokens]"],
            ),
            ("[]", vec![]),
            ("null", vec![]),
            (r#"["a",{"x":[1]},true,null,"b"]"#, vec!["a", "b"]),
            (r#"["a",5,6,"b"]"#, vec!["a", "[2 tokens]", "b"]),
        ];
        for (input, expected) in cases {
            let body = format!(r#"{{"model":"m","input":{input}}}"#);
            let mut r = TraceRecord::default();
            parse_request(body.as_bytes(), &mut r).unwrap_or_else(|e| panic!("{input}: {e}"));
            let texts: Vec<String> = r
                .messages
                .iter()
                .flat_map(|m| m.parts.iter())
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(texts, expected, "{input}");
            let count = if input == "null" {
                None
            } else {
                Some(expected.len() as u64)
            };
            assert_eq!(r.embedding_count, count, "{input}");
            assert!(r.messages.len() <= 1);
        }
    }

    #[test]
    fn count_comes_from_the_response_when_the_request_was_not_parsed() {
        let mut r = TraceRecord::default();
        let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]},{"object":"embedding","index":1,"embedding":"AAAAAA=="}],"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        parse_response(body, &mut r).expect("parses");
        assert_eq!(r.embedding_count, Some(2));
        assert_eq!(r.usage.input, Some(4));
        assert_eq!(r.usage.output, None);
        assert!(r.choices.is_empty());

        let mut r = TraceRecord {
            embedding_count: Some(3),
            ..TraceRecord::default()
        };
        parse_response(body, &mut r).expect("parses");
        assert_eq!(r.embedding_count, Some(3), "the request's count is kept");
    }

    #[test]
    fn vectors_are_never_kept() {
        let vector = (0..3000)
            .map(|i| format!("{}.0123", i % 7))
            .collect::<Vec<_>>()
            .join(",");
        let body = format!(
            r#"{{"data":[{{"embedding":[{vector}],"index":0}}],"model":"m","usage":null}}"#
        );
        let mut r = TraceRecord::default();
        parse_response(body.as_bytes(), &mut r).expect("parses");
        assert!(r.estimated_bytes() < 1024);
        assert_eq!(r.embedding_count, Some(1));
        assert!(r.usage.is_empty());
    }

    #[test]
    fn deep_nesting_and_wrong_types_do_not_panic() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for body in [
            format!(r#"{{"input":{deep}}}"#),
            format!(r#"{{"data":{deep}}}"#),
            r#"{"input":42}"#.to_string(),
            r#"{"input":{"a":1},"model":7}"#.to_string(),
            r#"{"data":{"a":1}}"#.to_string(),
        ] {
            let mut r = TraceRecord::default();
            let _ = parse_request(body.as_bytes(), &mut r);
            let _ = parse_response(body.as_bytes(), &mut r);
        }
        check_hostile(Protocol::OpenAiEmbeddings);
    }
}
