//! Wire shapes several APIs share: OpenAI's `stop` (a string or a list), OpenAI's usage object
//! (also spoken by OpenAI-compatible servers), and a lenient reader for fields that servers
//! fill with values of varying types. No host calls.

use crate::record::Usage;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// `stop`: one sequence or several.
pub(crate) enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

/// The stop sequences of an optional `stop` field, as a list.
pub(crate) fn stop_list(stop: Option<Stop>) -> Vec<String> {
    match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    }
}

/// A string, or a list whose every element is a string; anything else is a type error.
impl<'de> Deserialize<'de> for Stop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StopVisitor;
        impl<'de> Visitor<'de> for StopVisitor {
            type Value = Stop;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Stop, E> {
                Ok(Stop::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stop, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(Stop::Many(all))
            }
        }
        d.deserialize_any(StopVisitor)
    }
}

/// A message's `content`: a string, or a list of parts each kept as JSON text for its
/// protocol to read, or another value, kept as JSON text.
///
/// A string is read once, as `serde_json` reads any string (borrowed when it holds no
/// escapes), instead of first being kept as raw JSON and then read again.
pub(crate) enum Content<'a> {
    /// A string.
    Text(Cow<'a, str>),
    /// A list.
    Parts(Vec<&'a RawValue>),
    /// Any other value but `null`, which is read as absent (the field is an `Option`).
    Other(String),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ContentVisitor<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("message content")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element()? {
                    parts.push(part);
                }
                Ok(Content::Parts(parts))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut json = String::from("{");
                while let Some((Key(key), value)) = map.next_entry::<Key<'_>, &RawValue>()? {
                    if json.len() > 1 {
                        json.push(',');
                    }
                    json.push_str(&Value::from(key).to_string());
                    json.push(':');
                    json.push_str(value.get());
                }
                json.push('}');
                Ok(Content::Other(json))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Content::Other(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Content::Other(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Content::Other(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Content::Other(v.to_string()))
            }
        }
        d.deserialize_any(ContentVisitor(PhantomData))
    }
}

/// Deserializes an optional value, taking a value of the wrong type as absent.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Lenient,
{
    Loose::deserialize(d).map(T::from_loose)
}

/// Any JSON value, kept only as far as [`Lenient`] types can use it; one reader serves them all.
pub(crate) enum Loose {
    /// `true` or `false`.
    Bool(bool),
    /// An integer ≥ 0.
    U64(u64),
    /// An integer < 0.
    I64(i64),
    /// Any other number.
    F64(f64),
    /// A string.
    Str(String),
    /// A list whose elements are all strings.
    Strings(Vec<String>),
    /// `null`, an object, or a list with an element that is not a string.
    Other,
}

/// A type [`lenient`] reads: `None` when the value does not fit.
pub(crate) trait Lenient: Sized {
    /// The value, when `loose` has a fitting type.
    fn from_loose(loose: Loose) -> Option<Self>;
}

impl Lenient for bool {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::Bool(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient for u64 {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::U64(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient for i64 {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::U64(v) => i64::try_from(v).ok(),
            Loose::I64(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient for f64 {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::U64(v) => Some(v as f64),
            Loose::I64(v) => Some(v as f64),
            Loose::F64(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient for String {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::Str(v) => Some(v),
            _ => None,
        }
    }
}

impl Lenient for Stop {
    fn from_loose(loose: Loose) -> Option<Self> {
        match loose {
            Loose::Str(v) => Some(Stop::One(v)),
            Loose::Strings(v) => Some(Stop::Many(v)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::U64(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::I64(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::F64(v))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_owned()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Other)
    }

    /// Every element is read, so the list is consumed whether or not it fits.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut strings = Some(Vec::new());
        while let Some(element) = seq.next_element::<Loose>()? {
            match (&mut strings, element) {
                (Some(all), Loose::Str(s)) => all.push(s),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Loose::Other, Loose::Strings))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

/// A small JSON object read flat: its scalar members, and those of the objects inside it
/// under dotted keys (`error.message`); a nested object
/// also leaves a [`Scalar::Object`] mark under its own key, and a value that is not an object
/// is kept under the empty key. Lists are skipped.
///
/// Error objects and the other small, rare objects of the APIs are read through this one
/// reader instead of one derived reader each, which keeps the `.wasm` small; a member of an
/// unexpected type is then absent rather than failing the whole body. Usage objects, in every
/// response, go through [`counts`], which keeps nothing it was not asked for.
#[derive(Debug, Default)]
pub(crate) struct Flat(Vec<(String, Scalar)>);

/// A member of a [`Flat`] object.
#[derive(Debug)]
pub(crate) enum Scalar {
    /// A string.
    Str(String),
    /// An integer ≥ 0.
    U64(u64),
    /// An integer < 0.
    I64(i64),
    /// A number that is not an integer, or `true` or `false`.
    Other,
    /// `null`.
    Null,
    /// An object (its members follow under dotted keys).
    Object,
    /// A list (skipped).
    List,
}

/// The key of member `name` of the object under `parent` (the empty key for the top level).
pub(crate) fn dotted(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

impl Flat {
    /// The object `body` holds; `None` when it is not JSON or not an object.
    pub(crate) fn read(body: &[u8]) -> Option<Flat> {
        crate::objects::from_slice::<Flat>(body)
            .ok()
            .filter(|f| !f.has(""))
    }

    /// Reads a value that must be an object, for a type read through `Flat`.
    pub(crate) fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Flat, D::Error> {
        let flat = Flat::deserialize(d)?;
        if flat.has("") {
            return Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Other("a value that is not an object"),
                &"an object",
            ));
        }
        Ok(flat)
    }

    /// The member under `key`; the last one when repeated.
    pub(crate) fn get(&self, key: &str) -> Option<&Scalar> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether there is a member under `key`, of any type.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The string under `key`, moved out.
    pub(crate) fn take_str(&mut self, key: &str) -> Option<String> {
        let (_, value) = self.0.iter_mut().rev().find(|(k, _)| k == key)?;
        match value {
            Scalar::Str(s) => Some(std::mem::take(s)),
            _ => None,
        }
    }

    /// The string under `key`, or an integer there as its decimal text (error codes).
    pub(crate) fn text(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Scalar::U64(v) => Some(v.to_string()),
            Scalar::I64(v) => Some(v.to_string()),
            Scalar::Str(_) => self.take_str(key),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Flat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut flat = Flat::default();
        FlatSeed {
            key: String::new(),
            into: &mut flat.0,
        }
        .deserialize(d)?;
        Ok(flat)
    }
}

/// Reads one value of a [`Flat`] object under `key`.
struct FlatSeed<'a> {
    key: String,
    into: &'a mut Vec<(String, Scalar)>,
}

impl FlatSeed<'_> {
    fn keep<E>(self, value: Scalar) -> Result<(), E> {
        self.into.push((self.key, value));
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for FlatSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FlatSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.keep(Scalar::U64(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.keep(Scalar::I64(v))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.keep(Scalar::Other)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.keep(Scalar::Other)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.keep(Scalar::Str(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<(), E> {
        self.keep(Scalar::Str(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.keep(Scalar::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.keep(Scalar::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if !self.key.is_empty() {
            self.into.push((self.key.clone(), Scalar::Object));
        }
        while let Some(Key(key)) = map.next_key()? {
            map.next_value_seed(FlatSeed {
                key: dotted(&self.key, &key),
                into: self.into,
            })?;
        }
        Ok(())
    }
}

/// How many counts [`counts`] picks at most.
pub(crate) const MAX_COUNTS: usize = 5;

/// Token counts picked from a usage object: the integer under `keys[i]` lands in `[i]`, a key
/// with a dot naming a member of an object inside (`prompt_tokens_details.cached_tokens`).
/// Members of other types and keys not asked for are skipped, nothing is allocated, and one
/// reader serves every API's usage object.
pub(crate) fn counts<'de, D: Deserializer<'de>>(
    d: D,
    keys: &'static [&'static str],
) -> Result<[Option<u64>; MAX_COUNTS], D::Error> {
    let mut out = [None; MAX_COUNTS];
    d.deserialize_any(CountsSeed {
        keys,
        parent: None,
        key: None,
        out: &mut out,
    })?;
    Ok(out)
}

/// One value of a usage object: the object itself (`key` none), a member of it, or a member of
/// an object inside it (`parent` set).
struct CountsSeed<'a> {
    keys: &'static [&'static str],
    parent: Option<&'a str>,
    key: Option<&'a str>,
    out: &'a mut [Option<u64>; MAX_COUNTS],
}

impl<'de> DeserializeSeed<'de> for CountsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token counts")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        let Some(key) = self.key else {
            return Ok(());
        };
        for (slot, wanted) in self.out.iter_mut().zip(self.keys) {
            if names(wanted, self.parent, key) {
                *slot = Some(v);
            }
        }
        Ok(())
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.parent.is_some() {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while let Some(Key(key)) = map.next_key()? {
            map.next_value_seed(CountsSeed {
                keys: self.keys,
                parent: self.key,
                key: Some(&key),
                out: self.out,
            })?;
        }
        Ok(())
    }
}

/// Whether `wanted` (`key`, or `parent.key` for a member of an object inside) names the member
/// `key` of `parent`. Compares lengths and ends instead of splitting `wanted`: this runs for
/// every count of every usage object.
fn names(wanted: &str, parent: Option<&str>, key: &str) -> bool {
    match parent {
        None => wanted == key,
        Some(parent) => {
            wanted.len() == parent.len() + 1 + key.len()
                && wanted.as_bytes().get(parent.len()) == Some(&b'.')
                && wanted.starts_with(parent)
                && wanted.ends_with(key)
                && !parent.contains('.')
        }
    }
}

/// A member's key, borrowed from the body unless it has escapes (serde reads a `Cow` key as
/// an owned string every time).
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

/// OpenAI's `usage` object (chat, completions, and what OpenAI-compatible servers send).
pub(crate) struct OpenAiUsage([Option<u64>; MAX_COUNTS]);

impl<'de> Deserialize<'de> for OpenAiUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &[
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details.cached_tokens",
            "completion_tokens_details.reasoning_tokens",
        ];
        counts(d, KEYS).map(OpenAiUsage)
    }
}

impl From<OpenAiUsage> for Usage {
    fn from(OpenAiUsage([input, output, total, cached_input, reasoning]): OpenAiUsage) -> Usage {
        Usage {
            input,
            output,
            total,
            cached_input,
            cache_creation: None,
            reasoning,
        }
    }
}

/// Declares a struct of optional string members read through [`Flat`], each from the first of
/// its keys that holds a string: `field: "key" | "alias"`. A value that is not an object is a
/// type error, as for a derived struct.
macro_rules! flat_strings {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $key:literal $(| $alias:literal)*),* $(,)? }) => {
        $(#[$meta])*
        struct $name {
            $($field: Option<String>,)*
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut f = $crate::protocols::wire::Flat::object(d)?;
                Ok($name {
                    $($field: f.take_str($key)$(.or_else(|| f.take_str($alias)))*,)*
                })
            }
        }
    };
}
pub(crate) use flat_strings;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects;

    #[test]
    fn flat_reads_nested_members_under_dotted_keys() {
        let body = br#"{"a":1,"b":{"c":"x","d":{"e":2},"l":[1,{"f":3}]},"n":null,"neg":-4,"f":1.5,"t":true}"#;
        let mut flat = objects::from_slice::<Flat>(body).expect("reads");
        assert!(matches!(flat.get("a"), Some(Scalar::U64(1))));
        assert!(matches!(flat.get("b"), Some(Scalar::Object)));
        assert!(matches!(flat.get("b.d.e"), Some(Scalar::U64(2))));
        assert!(matches!(flat.get("b.l"), Some(Scalar::List)));
        assert!(!flat.has("b.l.f"), "lists are skipped");
        assert!(matches!(flat.get("n"), Some(Scalar::Null)));
        assert_eq!(flat.text("neg"), Some("-4".into()));
        assert!(matches!(flat.get("f"), Some(Scalar::Other)));
        assert!(matches!(flat.get("t"), Some(Scalar::Other)));
        assert!(matches!(flat.get("neg"), Some(Scalar::I64(-4))));
        assert_eq!(flat.take_str("b.c"), Some("x".into()));
        assert!(!flat.has(""));
    }

    #[test]
    fn flat_keeps_the_last_of_repeated_keys_and_a_bare_value_under_the_empty_key() {
        let mut flat = objects::from_slice::<Flat>(br#"{"k":"first","k":"last"}"#).expect("reads");
        assert_eq!(flat.take_str("k"), Some("last".into()));
        let mut bare = objects::from_slice::<Flat>(br#""text""#).expect("reads");
        assert_eq!(bare.take_str(""), Some("text".into()));
        assert!(objects::from_slice::<Flat>(br#"{"k":"#).is_err());
    }

    flat_strings! {
        struct Sample { one: "one" | "first", two: "two" }
    }

    #[test]
    fn flat_strings_take_the_first_key_holding_a_string() {
        let s: Sample = objects::from_slice(br#"{"first":"a","two":2}"#).expect("reads");
        assert_eq!((s.one.as_deref(), s.two), (Some("a"), None));
        let s: Sample = objects::from_slice(br#"{"one":"b","first":"a"}"#).expect("reads");
        assert_eq!(s.one.as_deref(), Some("b"));
        assert!(objects::from_slice::<Sample>(br#""not an object""#).is_err());
        assert!(objects::from_slice::<Sample>(br#"["a"]"#).is_err());
    }

    #[derive(Deserialize)]
    struct Params {
        #[serde(default, deserialize_with = "lenient")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "lenient")]
        seed: Option<i64>,
        #[serde(default, deserialize_with = "lenient")]
        temperature: Option<f64>,
        #[serde(default, deserialize_with = "lenient")]
        stream: Option<bool>,
        #[serde(default, deserialize_with = "lenient")]
        model: Option<String>,
        #[serde(default, deserialize_with = "lenient")]
        stop: Option<Stop>,
        after: Option<String>,
    }

    fn params(body: &str) -> Params {
        objects::from_slice(body.as_bytes()).expect("reads")
    }

    #[test]
    fn lenient_takes_values_that_fit_and_skips_the_rest_whole() {
        let p = params(
            r#"{"n":3,"seed":-2,"temperature":1,"stream":true,"model":"m","stop":["a","b"],"after":"x"}"#,
        );
        assert_eq!(
            (p.n, p.seed, p.temperature, p.stream),
            (Some(3), Some(-2), Some(1.0), Some(true))
        );
        assert_eq!(p.model.as_deref(), Some("m"));
        assert_eq!(stop_list(p.stop), ["a", "b"]);
        let p = params(
            r#"{"n":-1,"seed":18446744073709551615,"temperature":"hot","stream":{"x":[1]},"model":["m"],"stop":["a",1,["b"]],"after":"x"}"#,
        );
        assert_eq!(
            (p.n, p.seed, p.temperature, p.stream),
            (None, None, None, None)
        );
        assert_eq!((p.model, p.stop.is_none()), (None, true));
        assert_eq!(
            p.after.as_deref(),
            Some("x"),
            "wrong-typed values are consumed whole"
        );
        let p = params(r#"{"n":null,"stop":"END","temperature":0.25}"#);
        assert_eq!((p.n, p.temperature), (None, Some(0.25)));
        assert_eq!(stop_list(p.stop), ["END"]);
    }

    #[test]
    fn stop_is_a_string_or_a_list_of_strings() {
        let read =
            |body: &str| objects::from_slice::<Stop>(body.as_bytes()).map(|s| stop_list(Some(s)));
        assert_eq!(read(r#""x""#).expect("string"), ["x"]);
        assert_eq!(read(r#"["x","y"]"#).expect("list"), ["x", "y"]);
        assert!(read("[]").expect("empty list").is_empty());
        assert!(read(r#"["x",1]"#).is_err());
        assert!(read("7").is_err());
    }

    #[test]
    fn counts_pick_asked_keys_one_level_deep() {
        struct Picked([Option<u64>; MAX_COUNTS]);
        impl<'de> Deserialize<'de> for Picked {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                counts(d, &["a", "o.b", "o.p.c", "z", "e\u{301}"]).map(Picked)
            }
        }
        let read = |body: &str| objects::from_slice::<Picked>(body.as_bytes()).map(|p| p.0);
        let body = r#"{"a":1,"o":{"b":2,"p":{"c":3},"a":9},"b":7,"z":4,"z":5,"e\u0301":6}"#;
        assert_eq!(
            read(body).expect("reads"),
            [Some(1), Some(2), None, Some(5), Some(6)]
        );
        assert_eq!(
            read("[1]").expect("a list has no counts"),
            [None; MAX_COUNTS]
        );
        assert!(read(r#"{"a":1"#).is_err());
        // `o.p.c` is the member `p.c` of `o`, never the member `c` of `o.p`.
        assert_eq!(
            read(r#"{"o.p":{"c":1},"o":{"p.c":2}}"#).expect("reads")[2],
            Some(2)
        );
        assert_eq!(read(r#"{"o.p":{"c":1}}"#).expect("reads")[2], None);
        assert_eq!(read(r#"{"o":{"bb":1,"b.":2}}"#).expect("reads")[1], None);
    }

    #[test]
    fn usage_counts_ignore_members_of_other_types() {
        let body = br#"{"prompt_tokens":10,"completion_tokens":"5","total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":null}"#;
        let usage = Usage::from(objects::from_slice::<OpenAiUsage>(body).expect("reads"));
        assert_eq!(
            (
                usage.input,
                usage.output,
                usage.total,
                usage.cached_input,
                usage.reasoning
            ),
            (Some(10), None, Some(15), Some(4), None)
        );
    }
}
