//! Test-only runner for the recorded exchanges under `tests/fixtures/<protocol>/<case>/`: drives
//! [`Capture`] as the glue does (request body, response headers with content type and encoding,
//! response chunks, end) and checks the record against the `expect` keys of `case.json`, the same
//! keys the end-to-end test checks on the exported spans.
//!
//! The one fixture runner of the crate: [`check_family`] / [`check_cases`] run every case whole,
//! cut at every byte offset and byte by byte (streamed) or at spread offsets (whole bodies), and
//! check the expectations, that nothing is unparsed, truncated or incomplete, that the stream
//! flags and time to first token agree with the response, and that no inline base64 payload of
//! the request or response is copied into the record; [`check_hostile`] feeds garbage and
//! corrupted fixtures through every path of a protocol.

use super::{Capture, RequestStart};
use crate::protocols::Protocol;
use crate::record::{Part, TraceRecord};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const MS: u64 = 1_000_000;

/// One fixture exchange.
#[derive(Clone)]
pub(crate) struct Case {
    /// `<protocol>/<case>`.
    pub name: String,
    pub protocol: Protocol,
    pub path: String,
    pub authority: String,
    pub status: u16,
    pub content_type: String,
    pub content_encoding: Option<String>,
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    pub expect: Map<String, Value>,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every case of protocol family `family`, in name order.
pub(crate) fn cases(family: &str) -> Vec<Case> {
    let protocol = Protocol::from_name(family).unwrap_or_else(|| panic!("protocol {family}"));
    let root: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", family]
        .iter()
        .collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let meta: Value =
                serde_json::from_slice(&read(&dir.join("case.json"))).expect("case.json is JSON");
            let response_file = meta["response_file"].as_str().map_or_else(
                || {
                    ["response.json", "response.sse", "response.ndjson"]
                        .into_iter()
                        .find(|f| dir.join(f).is_file())
                        .expect("a response file")
                        .to_string()
                },
                str::to_string,
            );
            let case = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            Case {
                name: format!("{family}/{case}"),
                protocol,
                path: meta["path"].as_str().expect("path").to_string(),
                authority: meta["authority"]
                    .as_str()
                    .unwrap_or("llm.local")
                    .to_string(),
                status: meta["status"].as_u64().map_or(200, |s| s as u16),
                content_type: meta["content_type"]
                    .as_str()
                    .unwrap_or("application/json")
                    .to_string(),
                content_encoding: meta["content_encoding"].as_str().map(str::to_string),
                request: read(&dir.join("request.json")),
                response: read(&dir.join(response_file)),
                expect: meta["expect"].as_object().cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// Case `name` (directory name) of protocol family `family`.
pub(crate) fn case(family: &str, name: &str) -> Case {
    cases(family)
        .into_iter()
        .find(|c| c.short_name() == name)
        .unwrap_or_else(|| panic!("no fixture {family}/{name}"))
}

impl Case {
    /// `basic` for `openai_responses/basic`.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Whether the response is streamed (SSE or NDJSON), by its content type.
    pub fn streamed(&self) -> bool {
        let ct = self.content_type.to_ascii_lowercase();
        ct.starts_with("text/event-stream") || ct.starts_with("application/x-ndjson")
    }

    /// Whether the content type says nothing about streaming: vLLM's `/generate` streams
    /// NUL- or newline-delimited frames as `application/octet-stream`, and the record then says
    /// from the body whether it was a stream.
    fn opaque(&self) -> bool {
        self.content_type
            .to_ascii_lowercase()
            .starts_with("application/octet-stream")
    }

    /// Runs the exchange with the response cut at `cuts` (ascending offsets), each chunk 10 ms
    /// after the previous one.
    pub fn run(&self, cuts: &[usize]) -> TraceRecord {
        let start = RequestStart {
            path: self.path.clone(),
            authority: Some(self.authority.clone()),
            provider: crate::providers::detect(&self.authority, &self.path, self.protocol).into(),
            now_ns: 1_000 * MS,
            ..RequestStart::default()
        };
        let mut c = Capture::new(start, self.protocol, 1 << 20);
        c.request_chunk_owned(Some(self.request.clone()), true);
        c.response_headers(
            Some(self.status),
            Some(&self.content_type),
            self.content_encoding.as_deref(),
        );
        let mut at = 0;
        let mut now = 1_100 * MS;
        for &cut in cuts.iter().chain(std::iter::once(&self.response.len())) {
            c.response_chunk(&self.response[at..cut], now);
            at = cut;
            now += 10 * MS;
        }
        c.response_end();
        c.finish(2_000 * MS)
    }

    /// What the record says for an `expect` key, as the exported span would say it.
    fn observed(&self, key: &str, r: &TraceRecord) -> Value {
        let opt = |v: Option<u64>| v.map_or(Value::Null, Value::from);
        let choice = r.choices.first().map(|c| &c.message);
        match key {
            "provider" => r.provider.clone().into(),
            "operation" => r.operation.into(),
            "request_model" => r.request_model.clone().map_or(Value::Null, Value::from),
            "response_model" => r.response_model.clone().map_or(Value::Null, Value::from),
            "output_text" => choice
                .and_then(|m| m.text())
                .map_or(Value::Null, Value::from),
            "reasoning_text_prefix" => {
                let reasoning: String = choice
                    .into_iter()
                    .flat_map(|m| &m.parts)
                    .filter_map(|p| match p {
                        Part::Reasoning(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                if reasoning.is_empty() {
                    Value::Null
                } else {
                    reasoning.into()
                }
            }
            "tool_calls" => choice
                .into_iter()
                .flat_map(|m| &m.parts)
                .filter_map(|p| match p {
                    Part::ToolCall { name, .. } => Some(Value::from(name.as_str())),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .into(),
            "input_tokens" => opt(r.usage.input),
            "output_tokens" => opt(r.usage.output),
            "total_tokens" => opt(r.usage.total()),
            "cached_input_tokens" => opt(r.usage.cached_input),
            "cache_creation_tokens" => opt(r.usage.cache_creation),
            "reasoning_tokens" => opt(r.usage.reasoning),
            // The first finish reason of any choice, which must also be the first choice's.
            "finish_reason" => {
                let any = r.finish_reasons().first().map(|f| f.to_string());
                let first = r.choices.first().and_then(|c| c.finish_reason.clone());
                if any == first {
                    any.map_or(Value::Null, Value::from)
                } else {
                    format!("first choice {first:?}, first of all choices {any:?}").into()
                }
            }
            "error_kind" => r
                .error
                .as_ref()
                .map_or(Value::Null, |e| e.kind.clone().into()),
            "embedding_count" => opt(r.embedding_count),
            "first_message_role" => r
                .messages
                .first()
                .map_or(Value::Null, |m| m.role.clone().into()),
            "message_count" => r.messages.len().into(),
            // The span carries `gen_ai.request.stream` only when true.
            "streamed" => {
                if r.params.stream {
                    true.into()
                } else {
                    Value::Null
                }
            }
            other => panic!("{}: unknown expect key {other}", self.name),
        }
    }

    /// Differences between the record and `expect`.
    pub fn check(&self, r: &TraceRecord) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, expected) in &self.expect {
            let got = self.observed(key, r);
            let ok = match (key.as_str(), expected) {
                ("reasoning_text_prefix", Value::String(prefix)) => {
                    got.as_str().is_some_and(|g| g.starts_with(prefix.as_str()))
                }
                _ => *expected == got,
            };
            if !ok {
                problems.push(format!(
                    "{}: {key}: expected {expected}, got {got}",
                    self.name
                ));
            }
        }
        if r.status.is_some_and(|s| (200..300).contains(&s)) && !r.unparsed.is_empty() {
            problems.push(format!("{}: unparsed {:?}", self.name, r.unparsed));
        }
        problems
    }
}

/// The record with what depends on chunk timing cleared.
fn timeless(mut r: TraceRecord) -> TraceRecord {
    r.first_token_ns = None;
    r
}

/// Long base64-looking strings of `value` (inline media payloads, base64 embeddings).
fn base64_strings<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
    match value {
        Value::String(s)
            if s.len() >= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) =>
        {
            out.push(s)
        }
        Value::Array(items) => items.iter().for_each(|v| base64_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| base64_strings(v, out)),
        _ => {}
    }
}

/// The JSON documents of a body: the body itself when it is JSON, else each line (SSE `data:`
/// lines and NDJSON lines) that is.
fn json_documents(body: &[u8]) -> Vec<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return vec![v];
    }
    body.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_prefix(b"data:").unwrap_or(line);
            serde_json::from_slice::<Value>(line).ok()
        })
        .collect()
}

impl Case {
    /// Everything the whole-body record must satisfy: the `expect` keys; nothing unparsed,
    /// truncated or incomplete; the stream flag as the content type says (unless it is
    /// `application/octet-stream`); for SSE and NDJSON streams, a time
    /// to first token exactly when there is output; no inline base64 payload of the request or
    /// response copied anywhere into the record.
    pub fn check_whole(&self, whole: &TraceRecord) -> Vec<String> {
        let mut problems = self.check(whole);
        let name = &self.name;
        // `check` already reports what is unparsed in a 2xx record.
        let ok = whole.status.is_some_and(|s| (200..300).contains(&s));
        if !ok && !whole.unparsed.is_empty() {
            problems.push(format!("{name}: unparsed {:?}", whole.unparsed));
        }
        if whole.truncated {
            problems.push(format!("{name}: truncated"));
        }
        if whole.incomplete {
            problems.push(format!("{name}: incomplete"));
        }
        if whole.streamed != self.streamed() && !self.opaque() {
            problems.push(format!(
                "{name}: streamed {} for content type {}",
                whole.streamed, self.content_type
            ));
        }
        if self.streamed() {
            let output = whole.choices.iter().any(|c| !c.message.parts.is_empty());
            if whole.first_token_ns.is_some() != output {
                problems.push(format!(
                    "{name}: time to first token {:?} with output {output}",
                    whole.first_token_ns
                ));
            }
        }
        let debug = format!("{whole:?}");
        for body in [&self.request, &self.response] {
            let documents = json_documents(body);
            let mut media = Vec::new();
            documents.iter().for_each(|d| base64_strings(d, &mut media));
            if media.iter().any(|m| debug.contains(m)) {
                problems.push(format!("{name}: inline base64 copied into the record"));
            }
        }
        problems
    }

    /// The record of the whole response must not change when the response is cut: streamed
    /// responses at every byte offset and byte by byte, whole bodies at offsets spread over the
    /// body (every byte offset up to 3000 bytes). Reports the first difference.
    pub fn check_cuts(&self, whole: &TraceRecord) -> Option<String> {
        let reference = timeless(whole.clone());
        let len = self.response.len();
        let step = if self.streamed() {
            1
        } else {
            (len / 1500).max(1)
        };
        // The cuts are independent; spread them over the available cores (the longest streams
        // dominate the test time) and report the first that differs.
        let cuts: Vec<usize> = (1..len).step_by(step).collect();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let first_bad = std::thread::scope(|scope| {
            let handles: Vec<_> = cuts
                .chunks(cuts.len().div_ceil(threads).max(1))
                .map(|chunk| {
                    let reference = &reference;
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .copied()
                            .find(|&cut| timeless(self.run(&[cut])) != *reference)
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("cut thread"))
                .min()
        });
        if let Some(cut) = first_bad {
            return Some(format!("{}: differs when cut at {cut}", self.name));
        }
        if self.streamed() {
            let every: Vec<usize> = (1..len).collect();
            if timeless(self.run(&every)) != reference {
                return Some(format!("{}: differs byte by byte", self.name));
            }
        }
        None
    }
}

/// Runs `cases` whole and cut (see [`Case::check_whole`] and [`Case::check_cuts`]); asserts
/// there is no problem and returns the whole-body records by case name (`<protocol>/<case>`).
pub(crate) fn check_cases(cases: &[Case]) -> Vec<(String, TraceRecord)> {
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for case in cases {
        let whole = case.run(&[]);
        problems.extend(case.check_whole(&whole));
        problems.extend(case.check_cuts(&whole));
        records.push((case.name.clone(), whole));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    records
}

/// Checks every case of `family` (at least `min_cases` of them) with [`check_cases`].
pub(crate) fn check_family(family: &str, min_cases: usize) -> Vec<(String, TraceRecord)> {
    let cases = cases(family);
    assert!(cases.len() >= min_cases, "{family}: {} cases", cases.len());
    check_cases(&cases)
}

/// The record of case `name` (`<protocol>/<case>` or just `<case>`) among `records`.
pub(crate) fn record<'a>(records: &'a [(String, TraceRecord)], name: &str) -> &'a TraceRecord {
    records
        .iter()
        .find(|(n, _)| n == name || n.rsplit('/').next() == Some(name))
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

/// Feeds garbage, wrong types, huge numbers, invalid UTF-8, and cut or corrupted fixtures
/// through every path of `protocol`; nothing may panic.
pub(crate) fn check_hostile(protocol: Protocol) {
    let mut bodies: Vec<Vec<u8>> = [
        &b""[..],
        b"garbage",
        b"\xff\xfe\x00{\"model\":\"\xc3\x28\"}",
        b"null",
        b"[]",
        b"42",
        b"{}",
        b"[DONE]",
        b"{\"model\":7,\"input\":{},\"prompt\":false,\"messages\":1,\"instructions\":[1]}",
        b"{\"input\":[{\"type\":\"message\",\"role\":7,\"content\":[{\"type\":\"input_image\",\"image_url\":{\"x\":1}}]},{\"type\":\"function_call\",\"arguments\":{}},null,1,[]]}",
        b"{\"choices\":[{\"index\":99999999999999999999999,\"text\":1}]}",
        b"{\"choices\":[{\"index\":4294967295,\"text\":\"x\"},{\"index\":0,\"text\":null}]}",
        b"{\"type\":\"response.output_text.delta\",\"output_index\":18446744073709551615,\"delta\":\"x\"}",
        b"{\"type\":\"response.output_text.delta\",\"output_index\":-1,\"delta\":[]}",
        b"{\"type\":\"response.output_item.added\",\"output_index\":3,\"item\":[1,2]}",
        b"{\"type\":\"response.completed\",\"response\":{\"output\":[1,{\"type\":\"message\",\"content\":7}],\"usage\":{\"input_tokens\":-5}}}",
        b"{\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":500,\"message\":null}}}",
        b"{\"type\":\"error\",\"code\":[],\"message\":{}}",
        b"{\"data\":[{\"embedding\":[1,2]},7],\"usage\":{\"prompt_tokens\":\"x\"}}",
        b"{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}",
        b"{\"object\":\"error\",\"message\":7,\"type\":null}",
        b"{\"usage\":{\"prompt_tokens\":1e400}}",
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    bodies.push(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes());
    bodies.push(format!("{{\"input\":{}}}", "[".repeat(5000)).into_bytes());
    for case in cases(protocol.name()) {
        for body in [&case.request, &case.response] {
            let step = (body.len() / 40).max(1);
            for cut in (0..body.len()).step_by(step) {
                bodies.push(body.get(..cut).unwrap_or_default().to_vec());
                let mut flipped = body.clone();
                if let Some(b) = flipped.get_mut(cut) {
                    *b ^= 0x80;
                }
                bodies.push(flipped);
            }
        }
    }
    let framings = [
        (200, "application/json"),
        (500, "application/json"),
        (200, "text/event-stream"),
        (200, "application/x-ndjson"),
    ];
    for body in &bodies {
        let mut sse = b"event: response.output_text.delta\ndata: ".to_vec();
        sse.extend_from_slice(body);
        sse.extend_from_slice(b"\n\n");
        for response in [body, &sse] {
            for (status, ct) in framings {
                for end in [true, false] {
                    let start = RequestStart {
                        path: "/v1/x".into(),
                        provider: "openai".into(),
                        ..RequestStart::default()
                    };
                    let mut c = Capture::new(start, protocol, 1 << 20);
                    c.request_chunk(Some(body), true);
                    c.response_headers(Some(status), Some(ct), None);
                    let half = response.len() / 2;
                    c.response_chunk(response.get(..half).unwrap_or_default(), 1);
                    c.response_chunk(response.get(half..).unwrap_or_default(), 2);
                    if end {
                        c.response_end();
                    }
                    let _ = c.finish(3);
                }
            }
        }
    }
}
