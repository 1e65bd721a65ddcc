//! The proxy-wasm encoding of a header map (what `proxy_get_header_map_pairs` returns), read
//! in place: a little-endian `u32` count, then a name length and a value length per pair, then
//! each name and each value followed by a NUL byte. No host calls.
//!
//! The SDK's own reader copies every name and value and panics on a name that is not UTF-8 or
//! on a map that is cut short; this one borrows them as bytes and answers `None` instead.

/// The pairs of an encoded header map, in the host's order; `None` when the bytes are not a
/// whole map (too short, or a name or value not followed by its NUL). Empty bytes are an
/// empty map.
pub fn decode(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let word = bytes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes(<[u8; 4]>::try_from(word).ok()?)).ok()
    };
    let count = word(0)?;
    let mut at = count.checked_mul(8)?.checked_add(4)?;
    let mut pairs = Vec::new();
    let mut item = |len: usize| -> Option<&[u8]> {
        let end = at.checked_add(len)?;
        let item = bytes.get(at..end)?;
        if bytes.get(end) != Some(&0) {
            return None;
        }
        at = end + 1;
        Some(item)
    };
    for i in 0..count {
        let lens = 4 + i * 8;
        let name = item(word(lens)?)?;
        let value = item(word(lens + 4)?)?;
        pairs.push((name, value));
    }
    Some(pairs)
}

/// The first value of header `name` (compared without ASCII case, as both gateways do) as
/// text, lossy on invalid UTF-8.
pub fn first(pairs: &[(&[u8], &[u8])], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding, written the way the ABI specification describes it.
    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
        let mut out = len(pairs.len()).to_vec();
        for (k, v) in pairs {
            out.extend(len(k.len()));
            out.extend(len(v.len()));
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn maps_read_back_as_written() {
        let maps: [&[(&[u8], &[u8])]; 4] = [
            &[],
            &[(b":path", b"/v1/chat/completions"), (b"x-a", b"")],
            &[
                (b"", b""),
                (b"X-Odd\xff\xfe", b"\x00\x01bytes\xc3"),
                (b"a", b"b"),
            ],
            &[(b"dup", b"1"), (b"DUP", b"2")],
        ];
        for map in maps {
            let bytes = encode(map);
            assert_eq!(decode(&bytes).as_deref(), Some(map));
        }
        assert_eq!(decode(b""), Some(Vec::new()));
    }

    #[test]
    fn a_cut_or_inflated_map_is_refused() {
        let bytes = encode(&[(b"name", b"value"), (b"other", b"v")]);
        for cut in 1..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut inflated = bytes.clone();
        inflated[0] = 0xff;
        inflated[3] = 0xff;
        assert_eq!(decode(&inflated), None);
        let mut long_name = bytes.clone();
        long_name[4] = 0xf0;
        long_name[7] = 0xff;
        assert_eq!(decode(&long_name), None);
        let mut unterminated = bytes;
        let nul = 4 + 2 * 8 + 4;
        assert_eq!(unterminated[nul], 0);
        unterminated[nul] = b'x';
        assert_eq!(decode(&unterminated), None);
    }

    #[test]
    fn lookups_ignore_case_and_take_the_first() {
        let pairs: [(&[u8], &[u8]); 3] = [
            (b"X-User-Id", b"first"),
            (b"x-user-id", b"second"),
            (b"x-bin", b"a\xffb"),
        ];
        assert_eq!(first(&pairs, "x-user-id").as_deref(), Some("first"));
        assert_eq!(first(&pairs, "X-BIN").as_deref(), Some("a\u{fffd}b"));
        assert_eq!(first(&pairs, "x-none"), None);
    }
}
