//! Seed corpora, generated from the recorded exchanges in `tests/fixtures/<protocol>/<case>/`
//! (and, for `config`, from a few representative configurations): every fixture becomes inputs
//! for the targets whose layout it fits, so fuzzing starts from real provider traffic instead of
//! from nothing. Compressed fixtures are decoded for the plain targets; plain bodies are
//! compressed (gzip, zlib, raw DEFLATE) for `decode`.

use crate::input::Layout;
use crate::{
    CONTENT_ENCODINGS, CONTENT_TYPES, DECODE_ENCODINGS, FLAG_RESPONSE_ENDS, MAX_BODIES,
    MAX_BODY_SHIFT,
};
use llm_tracer::decode::BodyDecoder;
use llm_tracer::protocols::{self, Protocol};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// One seed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// A file name: `<protocol>-<case>-<variant>`.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

/// Why the fixtures could not be read.
#[derive(Debug)]
pub enum SeedError {
    /// A directory or file could not be read.
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `case.json` is not an object with a `path`, or names an unknown protocol directory.
    BadCase {
        /// The path.
        path: PathBuf,
    },
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedError::Read { path, source } => write!(f, "{}: {source}", path.display()),
            SeedError::BadCase { path } => write!(f, "{}: not a fixture case", path.display()),
        }
    }
}

impl std::error::Error for SeedError {}

/// `tests/fixtures` of the repository this crate sits in.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

/// One recorded exchange.
struct Fixture {
    name: String,
    protocol: Protocol,
    path: String,
    authority: String,
    status: u16,
    content_type: String,
    content_encoding: Option<String>,
    request: Vec<u8>,
    /// As on the wire (compressed when the fixture is).
    response: Vec<u8>,
}

impl Fixture {
    /// The response without its content coding (the wire bytes when it has none or when they
    /// do not decode).
    fn plain_response(&self) -> Vec<u8> {
        let Some(mut decoder) = self
            .content_encoding
            .as_deref()
            .and_then(BodyDecoder::for_encoding)
        else {
            return self.response.clone();
        };
        let mut out = Vec::new();
        match decoder.push(&self.response, &mut out, usize::MAX) {
            Ok(()) => out,
            Err(_) => self.response.clone(),
        }
    }

    fn is_sse(&self) -> bool {
        self.content_type
            .to_ascii_lowercase()
            .starts_with("text/event-stream")
    }

    fn is_ndjson(&self) -> bool {
        self.content_type.starts_with("application/x-ndjson")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SeedError> {
    std::fs::read(path).map_err(|source| SeedError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>, SeedError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SeedError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn load(case_dir: &Path, protocol: Protocol) -> Result<Fixture, SeedError> {
    let case_path = case_dir.join("case.json");
    let bad = || SeedError::BadCase {
        path: case_path.clone(),
    };
    let meta: Value = serde_json::from_slice(&read(&case_path)?).map_err(|_| bad())?;
    let response_file = match meta["response_file"].as_str() {
        Some(f) => f.to_string(),
        None => ["response.json", "response.sse", "response.ndjson"]
            .into_iter()
            .find(|f| case_dir.join(f).is_file())
            .ok_or_else(bad)?
            .to_string(),
    };
    let file_name = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string()
    };
    let family = case_dir.parent().map(file_name).unwrap_or_default();
    Ok(Fixture {
        name: format!("{family}-{}", file_name(case_dir)),
        protocol,
        path: meta["path"].as_str().ok_or_else(bad)?.to_string(),
        authority: meta["authority"].as_str().unwrap_or("").to_string(),
        status: meta["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or(200),
        content_type: meta["content_type"]
            .as_str()
            .unwrap_or("application/json")
            .to_string(),
        content_encoding: meta["content_encoding"].as_str().map(str::to_string),
        request: read(&case_dir.join("request.json"))?,
        response: read(&case_dir.join(response_file))?,
    })
}

fn fixtures(root: &Path) -> Result<Vec<Fixture>, SeedError> {
    let mut out = Vec::new();
    for family in sorted_dirs(root)? {
        let name = family.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let protocol = Protocol::from_name(name).ok_or_else(|| SeedError::BadCase {
            path: family.clone(),
        })?;
        for case in sorted_dirs(&family)? {
            if case.join("case.json").is_file() {
                out.push(load(&case, protocol)?);
            }
        }
    }
    Ok(out)
}

/// Every seed: those made from the fixtures under `root`, then the configuration seeds.
///
/// # Errors
/// [`SeedError`] when a fixture cannot be read.
pub fn all(root: &Path) -> Result<Vec<Seed>, SeedError> {
    let mut seeds = Vec::new();
    for fixture in fixtures(root)? {
        sse_seeds(&fixture, &mut seeds);
        protocol_seeds(&fixture, &mut seeds);
        decode_seeds(&fixture, &mut seeds);
        capture_seeds(&fixture, &mut seeds);
    }
    config_seeds(&mut seeds);
    Ok(seeds)
}

fn seed(seeds: &mut Vec<Seed>, target: &'static str, name: String, data: Vec<u8>) {
    seeds.push(Seed { target, name, data });
}

fn sse_seeds(f: &Fixture, seeds: &mut Vec<Seed>) {
    if !f.is_sse() && !f.is_ndjson() {
        return;
    }
    let stream = f.plain_response();
    let flags = u8::from(f.is_ndjson());
    for (variant, max_line, sizes) in [
        ("whole", u16::MAX, &[][..]),
        ("cut", u16::MAX, &[1, 7, 0, 64][..]),
        ("short-lines", 48, &[5][..]),
    ] {
        let data = Layout::new()
            .byte(flags)
            .u16(max_line)
            .sizes(sizes)
            .bytes(&stream)
            .finish();
        seed(seeds, "sse", format!("{}-{variant}", f.name), data);
    }
}

fn protocol_index(protocol: Protocol) -> u8 {
    let at = protocols::ALL.iter().position(|p| *p == protocol);
    at.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

fn protocol_seeds(f: &Fixture, seeds: &mut Vec<Seed>) {
    let index = protocol_index(f.protocol);
    let count = u8::try_from(protocols::ALL.len()).unwrap_or(9);
    // The selector's quotient picks the budget: 0 is the default body cap, 3 a small one
    // (16 bytes) that cuts the output.
    let small = count * 3;
    for (variant, selector, body) in [
        ("request", index, f.request.clone()),
        ("response", index, f.plain_response()),
        ("response-small", index + small, f.plain_response()),
    ] {
        let data = Layout::new().byte(selector).bytes(&body).finish();
        seed(seeds, "protocols", format!("{}-{variant}", f.name), data);
    }
}

fn encoding_index(name: &str) -> u8 {
    let at = DECODE_ENCODINGS.iter().position(|e| *e == name);
    at.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

fn decode_seeds(f: &Fixture, seeds: &mut Vec<Seed>) {
    let plain = f.plain_response();
    let mut bodies = vec![
        ("gzip", "gzip", gzip(&plain)),
        (
            "zlib",
            "deflate",
            miniz_oxide::deflate::compress_to_vec_zlib(&plain, 6),
        ),
        (
            "raw",
            "deflate",
            miniz_oxide::deflate::compress_to_vec(&plain, 6),
        ),
    ];
    if let Some(encoding) = f.content_encoding.as_deref() {
        bodies.push(("wire", encoding, f.response.clone()));
    }
    for (variant, encoding, body) in bodies {
        for (cut, sizes, limit) in [("whole", &[][..], u16::MAX), ("cut", &[3, 0, 50][..], 16)] {
            let data = Layout::new()
                .byte(encoding_index(encoding))
                .u16(limit)
                .sizes(sizes)
                .bytes(&body)
                .finish();
            seed(seeds, "decode", format!("{}-{variant}-{cut}", f.name), data);
        }
    }
}

fn index_of<T: PartialEq>(list: &[T], wanted: &T) -> u8 {
    let at = list.iter().position(|v| v == wanted);
    at.and_then(|i| u8::try_from(i).ok()).unwrap_or(0)
}

fn capture_seeds(f: &Fixture, seeds: &mut Vec<Seed>) {
    let Ok(request_len) = u16::try_from(f.request.len()) else {
        return;
    };
    let content_type = index_of(&CONTENT_TYPES, &Some(f.content_type.as_str()));
    let encoding = index_of(&CONTENT_ENCODINGS, &f.content_encoding.as_deref());
    let default_cap = index_of(&MAX_BODIES, &(1 << 20)) << MAX_BODY_SHIFT;
    let sniffing = u8::try_from(protocols::ALL.len()).unwrap_or(9);
    for (variant, selector, flags, sizes) in [
        (
            "whole",
            protocol_index(f.protocol),
            FLAG_RESPONSE_ENDS,
            &[][..],
        ),
        (
            "cut",
            protocol_index(f.protocol),
            FLAG_RESPONSE_ENDS,
            &[13, 0, 1][..],
        ),
        ("sniffed", sniffing, FLAG_RESPONSE_ENDS, &[64][..]),
        ("aborted", protocol_index(f.protocol), 0, &[5][..]),
    ] {
        let data = Layout::new()
            .byte(selector)
            .u16(f.status)
            .byte(content_type)
            .byte(encoding)
            .byte(flags | default_cap)
            .sizes(sizes)
            .sizes(sizes)
            .text(&f.path)
            .text(&f.authority)
            .u16(request_len)
            .bytes(&f.request)
            .bytes(&f.response)
            .finish();
        seed(seeds, "capture", format!("{}-{variant}", f.name), data);
    }
}

/// Configurations from the README's examples and edge cases of each key.
const CONFIGS: [(&str, &str); 8] = [
    ("empty", ""),
    ("defaults", "{}"),
    (
        "both-sinks",
        r#"{"flush_interval_ms":1000,
            "opik":{"endpoint":"https://www.comet.com/opik/api","upstream":"www.comet.com:443",
                    "api_key":"k","workspace":"my-team","project_name":"llm-gateway"},
            "langfuse":{"endpoint":"https://cloud.langfuse.com","upstream":"cloud.langfuse.com:443",
                        "public_key":"pk-lf-1","secret_key":"sk-lf-1"}}"#,
    ),
    (
        "routes",
        r#"{"routes":[{"path_prefix":"/internal/"},
                      {"host":".openai.azure.com","protocol":"openai_chat","provider":"azure"},
                      {"path_suffix":":rawPredict","protocol":"anthropic_messages"}],
            "opik":{"endpoint":"http://opik:5173/api","timeout_ms":2000}}"#,
    ),
    (
        "limits",
        r#"{"max_body_bytes":1024,"batch_max_records":1,"batch_max_bytes":1024,
            "queue_max_records":1,"queue_max_bytes":1024,"metrics":false,
            "force_identity_encoding":false,"user_header":"x-user","session_header":"x-conv",
            "retry":{"max_attempts":100,"initial_backoff_ms":1,"max_backoff_ms":3600000},
            "langfuse":{"endpoint":"http://[::1]:3000/base/","public_key":"p","secret_key":"s"}}"#,
    ),
    (
        "kong-string",
        r#""{\"opik\":{\"endpoint\":\"http://127.0.0.1:8080\"}}""#,
    ),
    (
        "wrong-types",
        r#"{"opik":{"endpoint":5},"routes":{},"retry":[],"metrics":"yes"}"#,
    ),
    (
        "unknown-key",
        r#"{"langfuse":{"endpoint":"http://x","public_key":"p","secret_key":"s","extra":1}}"#,
    ),
];

fn config_seeds(seeds: &mut Vec<Seed>) {
    for (name, text) in CONFIGS {
        seed(seeds, "config", name.to_string(), text.as_bytes().to_vec());
    }
}

/// A gzip member (RFC 1952) around raw DEFLATE: a minimal header, CRC-32 and length trailer.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (ISO-HDLC, the gzip one), bit by bit: seeds are few.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TARGETS;

    fn seeds() -> Vec<Seed> {
        all(&fixtures_dir()).expect("the repository's fixtures")
    }

    #[test]
    fn every_target_gets_seeds_from_every_fixture_family() {
        let seeds = seeds();
        for (target, _) in TARGETS {
            assert!(
                seeds.iter().any(|s| s.target == target),
                "no seed for {target}"
            );
        }
        for protocol in protocols::ALL {
            let prefix = format!("{}-", protocol.name());
            let has = |target: &str| {
                seeds
                    .iter()
                    .any(|s| s.target == target && s.name.starts_with(&prefix))
            };
            assert!(
                has("protocols") && has("capture") && has("decode"),
                "{prefix}"
            );
        }
        let mut names: Vec<_> = seeds.iter().map(|s| (s.target, &s.name)).collect();
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count, "seed names are unique per target");
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn compressed_seeds_decode_to_the_fixture() {
        let plain = b"data: {\"choices\":[]}\n\n".repeat(50);
        for (encoding, body) in [
            ("gzip", gzip(&plain)),
            (
                "deflate",
                miniz_oxide::deflate::compress_to_vec_zlib(&plain, 6),
            ),
        ] {
            let mut decoder = BodyDecoder::for_encoding(encoding).expect("a known coding");
            let mut out = Vec::new();
            decoder.push(&body, &mut out, usize::MAX).expect("decodes");
            decoder.finish().expect("complete");
            assert_eq!(out, plain, "{encoding}");
        }
    }

    #[test]
    fn every_seed_passes_its_target() {
        for s in seeds() {
            let (_, harness) = TARGETS
                .iter()
                .find(|(name, _)| *name == s.target)
                .expect("a known target");
            harness(&s.data);
        }
    }
}
