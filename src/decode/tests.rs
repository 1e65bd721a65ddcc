use super::*;
use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

const NO_LIMIT: usize = usize::MAX;

fn fixture(case: &str, file: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openai_chat/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Decodes `input` cut at `cuts`, then finishes.
fn decode_cut(
    encoding: &str,
    input: &[u8],
    cuts: &[usize],
    limit: usize,
) -> (Vec<u8>, Result<(), DecodeError>, bool) {
    let mut d = BodyDecoder::for_encoding(encoding).expect("known encoding");
    let mut out = Vec::new();
    let mut at = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let r = d.push(&input[at..cut], &mut out, limit);
        if result.is_ok() {
            result = r;
        }
        at = cut;
    }
    if result.is_ok() {
        result = d.finish();
    }
    (out, result, d.capped())
}

fn decode(encoding: &str, input: &[u8]) -> (Vec<u8>, Result<(), DecodeError>) {
    let (out, result, _) = decode_cut(encoding, input, &[], NO_LIMIT);
    (out, result)
}

/// A gzip member around raw DEFLATE data, with the optional header fields `flags` asks for.
fn gzip_member(data: &[u8], flags: u8) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, flags, 0x80, 0x5b, 0x27, 0x69, 2, 3];
    if flags & FEXTRA != 0 {
        out.extend_from_slice(&[6, 0, b'A', b'p', 2, 0, 0xaa, 0xbb]);
    }
    if flags & FNAME != 0 {
        out.extend_from_slice(b"response.json\0");
    }
    if flags & FCOMMENT != 0 {
        out.extend_from_slice(b"made by a test\0");
    }
    if flags & FHCRC != 0 {
        out.extend_from_slice(&[0x12, 0x34]);
    }
    out.extend_from_slice(&compress_to_vec(data, 6));
    out.extend_from_slice(&crc32_update(0, data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn sample_text() -> Vec<u8> {
    let mut text = Vec::new();
    for i in 0..400 {
        text.extend_from_slice(
            format!(
                "data: {{\"i\":{i},\"content\":\"h\u{e9}llo \u{1f600} {}\"}}\n\n",
                i * 7919 % 1013
            )
            .as_bytes(),
        );
    }
    text
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn encodings_recognised() {
    let cases = [
        ("gzip", Some("gzip")),
        ("GZip", Some("gzip")),
        ("x-gzip", Some("gzip")),
        (" deflate ", Some("deflate")),
        ("br", Some("br")),
        ("BR", Some("br")),
        ("identity, gzip", Some("gzip")),
        ("gzip,identity", Some("gzip")),
        ("identity", None),
        ("", None),
        (" , ", None),
        ("zstd", None),
        ("compress", None),
        ("gzip, br", None),
        ("gzip, gzip", None),
    ];
    for (value, expected) in cases {
        assert_eq!(
            BodyDecoder::for_encoding(value).map(|d| d.encoding()),
            expected,
            "{value:?}"
        );
    }
}

#[test]
fn identity_values() {
    for value in [
        "",
        " ",
        "identity",
        "IDENTITY",
        "identity, identity",
        " , identity",
    ] {
        assert!(is_identity(value), "{value:?}");
    }
    for value in ["gzip", "identity, br", "zstd"] {
        assert!(!is_identity(value), "{value:?}");
    }
}

#[test]
fn crc32_known_values() {
    assert_eq!(crc32_update(0, b""), 0);
    assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
    let split = crc32_update(crc32_update(0, b"1234"), b"56789");
    assert_eq!(split, 0xCBF4_3926);
}

#[test]
fn gzip_fixture_at_every_split_point() {
    let gz = fixture("gzip_json", "response.json.gz");
    let plain = fixture("gzip_json", "response.json");
    let (whole, result) = decode("gzip", &gz);
    assert_eq!(result, Ok(()));
    assert_eq!(whole, plain);
    for a in 0..=gz.len() {
        let (out, result, _) = decode_cut("gzip", &gz, &[a], NO_LIMIT);
        assert_eq!(result, Ok(()), "split at {a}");
        assert_eq!(out, plain, "split at {a}");
    }
    for a in (0..gz.len()).step_by(5) {
        for b in (a..gz.len()).step_by(11) {
            let (out, result, _) = decode_cut("gzip", &gz, &[a, b], NO_LIMIT);
            assert_eq!((out == plain, result), (true, Ok(())), "split at {a},{b}");
        }
    }
}

#[test]
fn brotli_fixture_at_every_split_point() {
    let br = fixture("br_stream", "response.sse.br");
    let plain = fixture("br_stream", "response.sse");
    let (whole, result) = decode("br", &br);
    assert_eq!(result, Ok(()));
    assert_eq!(whole, plain);
    for a in 0..=br.len() {
        let (out, result, _) = decode_cut("br", &br, &[a], NO_LIMIT);
        assert_eq!(result, Ok(()), "split at {a}");
        assert_eq!(out, plain, "split at {a}");
    }
    // Byte by byte.
    let cuts: Vec<usize> = (1..br.len()).collect();
    let (out, result, _) = decode_cut("br", &br, &cuts, NO_LIMIT);
    assert_eq!((out == plain, result), (true, Ok(())));
}

#[test]
fn gzip_header_fields_and_members_at_every_split_point() {
    let text = sample_text();
    let (first, second) = text.split_at(text.len() / 3);
    for flags in [
        0,
        FEXTRA,
        FNAME,
        FCOMMENT,
        FHCRC,
        FEXTRA | FNAME | FCOMMENT | FHCRC,
    ] {
        // Two members: the decoded body is their concatenation (RFC 1952 §2.2).
        let mut body = gzip_member(first, flags);
        body.extend_from_slice(&gzip_member(second, flags));
        for cut in (0..=body.len()).step_by(3) {
            let (out, result, _) = decode_cut("gzip", &body, &[cut], NO_LIMIT);
            assert_eq!(result, Ok(()), "flags {flags:#x}, split at {cut}");
            assert!(out == text, "flags {flags:#x}, split at {cut}");
        }
    }
}

#[test]
fn deflate_zlib_and_raw_at_every_split_point() {
    let text = sample_text();
    for (name, body) in [
        ("zlib", compress_to_vec_zlib(&text, 6)),
        ("raw", compress_to_vec(&text, 6)),
        ("raw stored", compress_to_vec(&text, 0)),
    ] {
        for cut in 0..=body.len().min(4_000) {
            let (out, result, _) = decode_cut("deflate", &body, &[cut], NO_LIMIT);
            assert_eq!(result, Ok(()), "{name}, split at {cut}");
            assert!(out == text, "{name}, split at {cut}");
        }
        let cuts: Vec<usize> = (1..body.len()).collect();
        let (out, result, _) = decode_cut("deflate", &body, &cuts, NO_LIMIT);
        assert!(result.is_ok() && out == text, "{name}, byte by byte");
    }
}

#[test]
fn empty_bodies_are_fine() {
    for encoding in ["gzip", "deflate", "br"] {
        let (out, result) = decode(encoding, b"");
        assert!(out.is_empty());
        assert_eq!(result, Ok(()), "{encoding}");
    }
}

#[test]
fn trailing_bytes_after_the_stream_are_ignored() {
    let text = b"{\"ok\":true}";
    let mut gz = gzip_member(text, 0);
    gz.extend_from_slice(b"\0\0\0\0garbage");
    assert_eq!(decode("gzip", &gz), (text.to_vec(), Ok(())));
    // Even when they look like the start of another member.
    let mut gz = gzip_member(text, 0);
    gz.extend_from_slice(&[0x1f, 0x8b, 8]);
    assert_eq!(decode("gzip", &gz), (text.to_vec(), Ok(())));
    let mut zlib = compress_to_vec_zlib(text, 6);
    zlib.extend_from_slice(b"garbage");
    assert_eq!(decode("deflate", &zlib), (text.to_vec(), Ok(())));
    let mut br = fixture("br_stream", "response.sse.br");
    br.extend_from_slice(b"garbage");
    assert_eq!(decode("br", &br).1, Ok(()));
}

#[test]
fn truncated_streams_are_reported_at_finish() {
    let text = sample_text();
    let gz = gzip_member(&text, FNAME);
    let zlib = compress_to_vec_zlib(&text, 6);
    let br = fixture("br_stream", "response.sse.br");
    for (encoding, body) in [("gzip", &gz), ("deflate", &zlib), ("br", &br)] {
        for cut in [1, 5, body.len() / 2, body.len() - 1] {
            let (out, result) = decode(encoding, &body[..cut]);
            assert_eq!(
                result,
                Err(DecodeError::Truncated),
                "{encoding} cut at {cut}"
            );
            assert!(out.len() <= text.len().max(4096));
        }
    }
    // The gzip trailer cut short.
    assert_eq!(
        decode("gzip", &gz[..gz.len() - 3]).1,
        Err(DecodeError::Truncated)
    );
}

#[test]
fn corrupt_data_is_an_error() {
    let text = sample_text();
    // Wrong magic, wrong method, reserved flags.
    for header in [
        &b"\x1f\x8c\x08\x00"[..],
        b"\x1f\x8b\x07\x00",
        b"\x1f\x8b\x08\xe0",
        b"{\"json\":1}",
    ] {
        let mut body = header.to_vec();
        body.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode("gzip", &body).1,
            Err(DecodeError::Header),
            "{header:?}"
        );
    }
    // A bad CRC and a bad length.
    let mut gz = gzip_member(&text, 0);
    let n = gz.len();
    gz[n - 8] ^= 0xff;
    assert_eq!(decode("gzip", &gz).1, Err(DecodeError::Checksum));
    let mut gz = gzip_member(&text, 0);
    gz[n - 1] ^= 0x01;
    assert_eq!(decode("gzip", &gz).1, Err(DecodeError::Checksum));
    // A bad Adler-32.
    let mut zlib = compress_to_vec_zlib(&text, 6);
    let n = zlib.len();
    zlib[n - 1] ^= 0xff;
    assert_eq!(decode("deflate", &zlib).1, Err(DecodeError::Corrupt));
    // An invalid DEFLATE block type (BTYPE = 11).
    assert_eq!(
        decode("deflate", &[0x07, 0x00, 0x00]).1,
        Err(DecodeError::Corrupt)
    );
    // Brotli: reserved bit set in the first metablock header.
    assert!(decode("br", b"\x1b\xff\xff\xff\xff\xff\xff\xff").1.is_err());
}

#[test]
fn after_an_error_input_is_ignored() {
    let mut d = BodyDecoder::for_encoding("gzip").expect("gzip");
    let mut out = Vec::new();
    assert_eq!(
        d.push(b"not gzip at all", &mut out, NO_LIMIT),
        Err(DecodeError::Header)
    );
    let gz = gzip_member(b"hello", 0);
    assert_eq!(d.push(&gz, &mut out, NO_LIMIT), Ok(()));
    assert_eq!(d.finish(), Ok(()));
    assert!(out.is_empty());
}

#[test]
fn flipped_bytes_and_noise_never_panic() {
    let text = sample_text();
    let bodies = [
        ("gzip", gzip_member(&text, FEXTRA | FNAME)),
        ("deflate", compress_to_vec_zlib(&text, 9)),
        ("deflate", compress_to_vec(&text, 1)),
        ("br", fixture("br_stream", "response.sse.br")),
    ];
    for (encoding, body) in &bodies {
        for (i, seed) in (0..body.len()).step_by(7).zip(1u64..) {
            let mut bad = body.clone();
            bad[i] ^= 1 << (seed % 8);
            let cut = (seed as usize * 31) % bad.len();
            let (out, _, _) = decode_cut(encoding, &bad, &[cut], 1 << 20);
            assert!(out.len() <= 1 << 20);
        }
    }
    for seed in 1..200u64 {
        let junk = noise(seed, (seed as usize * 37) % 3000);
        for encoding in ["gzip", "deflate", "br"] {
            let mut prefixed = match encoding {
                "gzip" => vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3],
                "deflate" => vec![0x78, 0x9c],
                _ => Vec::new(),
            };
            prefixed.extend_from_slice(&junk);
            for body in [&junk, &prefixed] {
                let cut = body.len() / 3;
                let (out, _, _) = decode_cut(encoding, body, &[cut], 1 << 16);
                assert!(out.len() <= 1 << 16);
            }
        }
    }
}

#[test]
fn decompression_bombs_stop_at_the_limit() {
    // 64 MiB of zeros: a few dozen KiB of DEFLATE, 106 bytes of Brotli.
    let zeros = vec![0u8; 64 << 20];
    let gz = gzip_member(&zeros, 0);
    let zlib = compress_to_vec_zlib(&zeros, 9);
    drop(zeros);
    let br: &[u8] = &[
        0xcb, 0xff, 0xff, 0x3f, 0xf8, 0x27, 0x00, 0xe2, 0xb1, 0x40, 0x20, 0xf7, 0xfe, 0x8f, 0xff,
        0xff, 0x7f, 0xf0, 0x4f, 0x00, 0xc4, 0x61, 0x11, 0x80, 0xee, 0xfd, 0x1f, 0xff, 0xff, 0xff,
        0xe0, 0x9f, 0x00, 0x88, 0xc3, 0x02, 0x00, 0xdd, 0xfb, 0x3f, 0xfe, 0xff, 0xff, 0xc1, 0x3f,
        0x01, 0x10, 0x87, 0x05, 0x00, 0xba, 0xf7, 0x7f, 0xfc, 0xff, 0xff, 0x83, 0x7f, 0x02, 0x20,
        0x0e, 0x0b, 0x00, 0x74, 0xef, 0xff, 0xf8, 0xff, 0xff, 0x07, 0xff, 0x04, 0x40, 0x1c, 0x16,
        0x00, 0xe8, 0xde, 0xff, 0xf1, 0xff, 0xff, 0x0f, 0xfe, 0x09, 0x80, 0x38, 0x2c, 0x00, 0xd0,
        0xbd, 0xff, 0xe3, 0xff, 0xff, 0x1f, 0xfc, 0x13, 0x00, 0x71, 0x58, 0x00, 0xa0, 0x7b, 0xff,
        0x37,
    ];
    let limit = 100_000;
    for (encoding, body) in [("gzip", &gz[..]), ("deflate", &zlib[..]), ("br", br)] {
        let (out, result, capped) = decode_cut(encoding, body, &[body.len() / 2], limit);
        assert_eq!(out.len(), limit, "{encoding}");
        assert!(capped, "{encoding}");
        assert_eq!(result, Ok(()), "{encoding}: a capped body is not an error");
        assert!(out.iter().all(|&b| b == 0));
    }
    // The whole bomb decodes when the limit allows it.
    let (out, result, capped) = decode_cut("br", br, &[], 64 << 20);
    assert_eq!((out.len(), result, capped), (64 << 20, Ok(()), false));
}

#[test]
fn output_that_exactly_fills_the_limit_is_not_capped() {
    let text = sample_text();
    let gz = gzip_member(&text, 0);
    let (out, result, capped) = decode_cut("gzip", &gz, &[], text.len());
    assert_eq!((out == text, result, capped), (true, Ok(()), false));
    let (out, _, capped) = decode_cut("gzip", &gz, &[], text.len() - 1);
    assert_eq!((out.len(), capped), (text.len() - 1, true));
}

#[test]
fn push_with_hands_out_bounded_pieces() {
    let zeros = vec![0u8; 1 << 20];
    let zlib = compress_to_vec_zlib(&zeros, 9);
    let mut d = BodyDecoder::for_encoding("deflate").expect("deflate");
    let mut pieces = 0;
    let mut total = 0;
    d.push_with(&zlib, NO_LIMIT, &mut |bytes| {
        assert!(!bytes.is_empty() && bytes.len() <= WORK_BUFFER);
        pieces += 1;
        total += bytes.len();
    })
    .expect("valid zlib");
    assert_eq!(d.finish(), Ok(()));
    assert_eq!(total, 1 << 20);
    assert_eq!(d.decoded_len(), 1 << 20);
    assert!(pieces >= (1 << 20) / WORK_BUFFER);
}
