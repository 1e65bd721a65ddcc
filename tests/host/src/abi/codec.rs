//! Wire formats of proxy-wasm ABI v0.2.1 that do not touch Wasm memory: serialized header
//! maps and property paths.
//!
//! Spec: `proxy-wasm/spec` `abi-versions/v0.2.1/README.md`, section "Serialization": a
//! non-empty map is a little-endian `u32` pair count, then `count` pairs of `u32` key and value
//! lengths, then each key and value followed by a NUL byte. An empty map may be sent as zero
//! bytes or as a single `0x00` byte. Property paths are the path segments joined by NUL
//! (the Rust SDK's `serialize_property_path`).
//!
//! Decoding never panics on short or inconsistent input: it returns [`CodecError`].

use std::fmt;

/// One header (or trailer, or metadata) pair, raw bytes as the ABI carries them.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Why serialized bytes are not a valid map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecError {
    /// The input ends before the header, a length, or a key/value.
    Truncated,
    /// A key or value is not followed by its NUL terminator.
    MissingNul,
    /// Bytes remain after the last pair.
    TrailingBytes,
    /// The pair count cannot fit in the input (lengths alone would overflow it).
    CountTooLarge,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodecError::Truncated => "serialized map is truncated",
            CodecError::MissingNul => "serialized map key or value lacks its NUL terminator",
            CodecError::TrailingBytes => "serialized map has trailing bytes",
            CodecError::CountTooLarge => "serialized map pair count exceeds its size",
        })
    }
}

impl std::error::Error for CodecError {}

fn read_u32(bytes: &[u8], at: usize) -> Result<usize, CodecError> {
    let end = at.checked_add(4).ok_or(CodecError::Truncated)?;
    let raw = bytes.get(at..end).ok_or(CodecError::Truncated)?;
    let mut word = [0u8; 4];
    word.copy_from_slice(raw);
    usize::try_from(u32::from_le_bytes(word)).map_err(|_| CodecError::CountTooLarge)
}

/// Serializes pairs in the ABI map format. An empty map is the 4-byte zero count (what the
/// Rust SDK sends), which every host accepts.
pub fn encode_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let payload: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 10)
        .sum();
    let mut out = Vec::with_capacity(4 + payload);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Decodes a serialized map.
///
/// # Errors
/// [`CodecError`] when the bytes are not exactly one well-formed map.
pub fn decode_map(bytes: &[u8]) -> Result<Vec<Pair>, CodecError> {
    // Spec: "An empty map may be represented either as an empty value (size=0), or as a single
    // 0x00 byte (size=1)."
    if bytes.is_empty() || bytes == [0] {
        return Ok(Vec::new());
    }
    let count = read_u32(bytes, 0)?;
    // Each pair needs 8 bytes of lengths and 2 NULs: reject absurd counts before allocating.
    let min = count
        .checked_mul(10)
        .and_then(|n| n.checked_add(4))
        .ok_or(CodecError::CountTooLarge)?;
    if min > bytes.len() {
        return Err(CodecError::CountTooLarge);
    }
    let mut data = 4 + count * 8;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let klen = read_u32(bytes, 4 + i * 8)?;
        let vlen = read_u32(bytes, 8 + i * 8)?;
        let key = take_terminated(bytes, &mut data, klen)?;
        let value = take_terminated(bytes, &mut data, vlen)?;
        pairs.push((key, value));
    }
    if data != bytes.len() {
        return Err(CodecError::TrailingBytes);
    }
    Ok(pairs)
}

fn take_terminated(bytes: &[u8], at: &mut usize, len: usize) -> Result<Vec<u8>, CodecError> {
    let end = at.checked_add(len).ok_or(CodecError::Truncated)?;
    let value = bytes.get(*at..end).ok_or(CodecError::Truncated)?.to_vec();
    match bytes.get(end) {
        Some(0) => {}
        Some(_) => return Err(CodecError::MissingNul),
        None => return Err(CodecError::Truncated),
    }
    *at = end + 1;
    Ok(value)
}

/// Splits a serialized property path into its segments (NUL-separated; an empty input is
/// the empty path).
pub fn decode_path(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// Joins path segments with `.`, the form both gateways document properties in
/// (`request.path`, `kong.route_id`). Non-UTF-8 bytes are replaced.
pub fn dotted_path(segments: &[Vec<u8>]) -> String {
    segments
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The spec's own example, `{{"a": "1"}, {"b": "22"}}`.
    #[test]
    fn spec_example() {
        let bytes = encode_map(&[("a", "1"), ("b", "22")]);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            2, 0, 0, 0,
            1, 0, 0, 0, 1, 0, 0, 0,
            1, 0, 0, 0, 2, 0, 0, 0,
            b'a', 0, b'1', 0, b'b', 0, b'2', b'2', 0,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(
            decode_map(&bytes),
            Ok(vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"22".to_vec())
            ])
        );
    }

    #[test]
    fn empty_forms() {
        assert_eq!(decode_map(&[]), Ok(vec![]));
        assert_eq!(decode_map(&[0]), Ok(vec![]));
        assert_eq!(decode_map(&[0, 0, 0, 0]), Ok(vec![]));
        assert_eq!(encode_map::<&str, &str>(&[]), vec![0, 0, 0, 0]);
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let good = encode_map(&[("key", "value")]);
        let cases: Vec<(Vec<u8>, CodecError)> = vec![
            (vec![1, 0], CodecError::Truncated),
            (vec![255, 255, 255, 255], CodecError::CountTooLarge),
            (good[..good.len() - 1].to_vec(), CodecError::Truncated),
            ([good.clone(), vec![7]].concat(), CodecError::TrailingBytes),
            (
                {
                    let mut b = good.clone();
                    let nul = 4 + 8 + 3;
                    b[nul] = b'x';
                    b
                },
                CodecError::MissingNul,
            ),
            (
                {
                    let mut b = good.clone();
                    b[4] = 200; // key length far beyond the data
                    b
                },
                CodecError::Truncated,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(decode_map(&input), Err(want), "input {input:?}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(decode_path(b""), Vec::<Vec<u8>>::new());
        let segs = decode_path(b"request\0headers\0x-id");
        assert_eq!(dotted_path(&segs), "request.headers.x-id");
        assert_eq!(dotted_path(&decode_path(b"kong.route_id")), "kong.route_id");
    }

    proptest! {
        #[test]
        fn round_trip(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20),
             proptest::collection::vec(any::<u8>(), 0..40)), 0..12)) {
            let bytes = encode_map(&pairs);
            prop_assert_eq!(decode_map(&bytes), Ok(pairs));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_map(&bytes);
        }
    }
}
