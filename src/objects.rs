//! Reading wire types from JSON where every struct is a JSON object. No host calls.
//!
//! `serde_json` lets a struct be written either as an object or as an array of its fields in
//! order, so every derived struct carries a second reader for the array form. No LLM API
//! sends a struct as an array, and that second reader, instantiated for each of the filter's
//! wire types, made up about a third of their decoding code in the `.wasm`. [`from_slice`]
//! reads through a thin layer over `serde_json` that asks for structs as maps: the array form
//! is then an ordinary type error, and the code that reads it is never linked.
//!
//! Everything else passes through unchanged: strings are borrowed as before, `&RawValue` and
//! `serde_json::Value` read as they do with `serde_json` alone, and errors are `serde_json`'s.

use serde::de::{
    DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;
use std::fmt;

/// Reads a `T` from JSON text, with structs read from objects only; trailing characters other
/// than whitespace are an error, as with [`serde_json::from_slice`]. The whole text must be
/// UTF-8 (JSON is), checked once up front rather than string by string as it is read.
///
/// # Errors
/// The text is not UTF-8, is not JSON, does not have the shape of `T`, or gives a struct as an
/// array.
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> serde_json::Result<T> {
    let Some(text) = crate::json::utf8(bytes) else {
        return Err(serde::de::Error::custom("the text is not UTF-8"));
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let value = T::deserialize(Objects(&mut de))?;
    de.end()?;
    Ok(value)
}

/// The layer: wraps a deserializer, a visitor, a seed or an access and passes every call
/// through, wrapping what it hands on, except that a struct is asked for as a map.
struct Objects<T>(T);

/// A struct's visitor, offered maps only; an array gets `Visitor`'s default type error.
struct MapOnly<V>(V);

/// Deserializer methods that take only a visitor, passed through with the visitor wrapped.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Objects(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Objects<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Objects(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Objects(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Objects(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, Objects(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(MapOnly(Objects(visitor)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Objects(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Visitor methods that take a plain value, passed through.
macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: serde::de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Objects<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Objects(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Objects(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Objects(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Objects(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Objects(data))
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<Objects<V>> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Objects<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Objects(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Objects<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(Objects(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Objects<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(Objects(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(Objects(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Objects<A> {
    type Error = A::Error;
    type Variant = Objects<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Self::Error> {
        let (value, variant) = self.0.variant_seed(Objects(seed))?;
        Ok((value, Objects(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Objects<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(Objects(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Objects(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, MapOnly(Objects(visitor)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use serde_json::Value;

    /// Compared through its `Debug` text, which the dead-code lint does not count as a read.
    #[allow(dead_code)]
    #[derive(Deserialize, Debug)]
    struct Message<'a> {
        role: &'a str,
        #[serde(borrow)]
        content: Option<&'a RawValue>,
        #[serde(default)]
        parts: Vec<Part>,
        #[serde(default)]
        stop: Option<Stop>,
        kind: Option<Kind>,
        temperature: Option<f64>,
        n: Option<u64>,
        extra: Option<Value>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        text: Option<String>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Stop {
        One(String),
        Many(Vec<String>),
        Object { at: u32 },
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Scored(f64),
        Pair(u8, u8),
        Span { from: u32, to: u32 },
    }

    const BODIES: &[&str] = &[
        r#"{"role":"user","content":"hi \u00e9\n","parts":[{"type":"text","text":"a"},{"type":"image"}]}"#,
        r#" { "role" : "tool" , "content" : [1, {"a": [null]}], "stop": "END", "n": 3 } "#,
        r#"{"role":"a","stop":["x","y"],"kind":"plain","temperature":0.5,"extra":{"k":[1,2.5,"s"]}}"#,
        r#"{"role":"a","stop":{"at":7},"kind":{"scored":1e3}}"#,
        r#"{"role":"a","kind":{"pair":[1,2]}}"#,
        r#"{"role":"a","kind":{"span":{"from":1,"to":2}}}"#,
        r#"{"role":"a","unknown":{"deep":[[[{}]]]},"content":null}"#,
        r#"{"role":"esc\"aped"}"#,
        r#"{"role":"a","role":"b"}"#,
        r#"{"role":"a","n":-1}"#,
        r#"{"role":"a","kind":"other"}"#,
        r#"{"role":"a"} x"#,
        r#"{"role":"a""#,
        r#"{"content":"missing role"}"#,
        r#"["a", null]"#,
        "{\"role\":\"\u{1F600}\",\"parts\":[]}",
    ];

    /// Everything that is not a struct given as an array reads exactly as `serde_json` reads it.
    #[test]
    fn reads_as_serde_json_reads() {
        for body in BODIES {
            let ours = from_slice::<Message>(body.as_bytes());
            let theirs = serde_json::from_slice::<Message>(body.as_bytes());
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{body}"),
                (Err(_), Err(_)) => {}
                _ if body.starts_with('[') => assert!(ours.is_err() && theirs.is_ok(), "{body}"),
                _ => panic!("{body}: {ours:?} vs {theirs:?}"),
            }
        }
    }

    #[test]
    fn strings_and_raw_values_are_borrowed() {
        let body = br#"{"role":"user","content":{"x": [1, 2]}}"#;
        let message = from_slice::<Message>(body).expect("reads");
        assert_eq!(message.content.map(RawValue::get), Some(r#"{"x": [1, 2]}"#));
        let start = body.as_ptr() as usize;
        let role = message.role.as_ptr() as usize;
        assert!((start..start + body.len()).contains(&role));
    }

    #[test]
    fn a_struct_given_as_an_array_is_a_type_error() {
        let err = from_slice::<Part>(br#"["text", "hello"]"#).expect_err("array refused");
        assert!(err.is_data(), "{err}");
        assert!(err.to_string().contains("struct Part"), "{err}");
        let err = from_slice::<Kind>(br#"{"span":[1,2]}"#).expect_err("array refused");
        assert!(err.is_data(), "{err}");
        assert!(serde_json::from_slice::<Part>(br#"["text", "hello"]"#).is_ok());
    }

    #[test]
    fn values_and_depth_limits_are_serde_jsons() {
        let body = br#"{"a":[1,-2,3.5,true,null,{"b":"c"}],"d":18446744073709551615}"#;
        let ours: Value = from_slice(body).expect("reads");
        let theirs: Value = serde_json::from_slice(body).expect("reads");
        assert_eq!(ours, theirs);
        let deep = format!("{}{}", "[".repeat(4096), "]".repeat(4096));
        let err = from_slice::<Value>(deep.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
}
