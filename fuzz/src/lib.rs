//! Fuzz harnesses for llm-tracer: everything the filter reads from the network or from its
//! configuration, driven by arbitrary bytes. Each harness is a plain function of the input, so
//! the libFuzzer targets (`fuzz_targets/`, nightly) and the seed replayer (`seeds replay`,
//! stable) run the same code.
//!
//! Besides "no panic, no unbounded allocation" (libFuzzer reports both), the harnesses check
//! properties that hold for every input:
//! * `sse`: the events do not depend on where the stream was cut;
//! * `decode`: output stays under the limit, and a body that decodes whole decodes to the same
//!   bytes when cut into chunks;
//! * `protocols`, `capture`: whatever was parsed, both sinks encode the record as valid JSON;
//! * `protocols`: a body's top-level members written back make the same JSON value, and the
//!   request edits give JSON;
//! * `config`: a configuration that parses drives the exporter without a panic, and every
//!   export body it dispatches is JSON.

#![deny(missing_docs)]

pub mod input;
pub mod seeds;

use input::{chunks, Input};
use llm_tracer::capture::{Capture, RequestStart};
use llm_tracer::config::Config;
use llm_tracer::decode::BodyDecoder;
use llm_tracer::export::{Dispatch, DispatchError, Exporter};
use llm_tracer::json::Members;
use llm_tracer::protocols::{self, anthropic_messages, openai_chat, Protocol, StreamFold};
use llm_tracer::record::TraceRecord;
use llm_tracer::rewrite::{self, RequestEdits};
use llm_tracer::sinks::langfuse::LangfuseSink;
use llm_tracer::sinks::opik::OpikSink;
use llm_tracer::sinks::Sink;
use llm_tracer::sse::{Event, SseDecoder};
use serde::de::IgnoredAny;
use serde_json::Value;
use std::rc::Rc;

/// A harness: runs one input, panics when a property fails.
pub type Harness = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/<name>.rs` binary) and its harness.
pub const TARGETS: [(&str, Harness); 5] = [
    ("sse", sse),
    ("protocols", protocols),
    ("config", config),
    ("decode", decode),
    ("capture", capture),
];

/// Output budgets the `protocols` target gives stream folds (selected by the first byte).
pub const BUDGETS: [usize; 6] = [1 << 20, 0, 1, 16, 256, 4096];

/// `Content-Encoding` values the `decode` target tries (selected by the first byte).
pub const DECODE_ENCODINGS: [&str; 8] = [
    "gzip",
    "deflate",
    "br",
    "x-gzip",
    "GZIP",
    "identity, br",
    " Deflate ",
    "gzip, identity",
];

/// `Content-Type` values of the `capture` target; `None` is an absent header.
pub const CONTENT_TYPES: [Option<&str>; 12] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/json; charset=UTF-8"),
    Some("text/event-stream"),
    Some("text/event-stream; charset=utf-8"),
    Some("application/x-ndjson"),
    Some("application/jsonl"),
    Some("application/octet-stream"),
    Some("text/plain; charset=utf-8"),
    Some("  TEXT/Event-Stream"),
    Some(""),
    None,
];

/// `Content-Encoding` values of the `capture` target; `None` is an absent header.
pub const CONTENT_ENCODINGS: [Option<&str>; 10] = [
    None,
    Some("identity"),
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("zstd"),
    Some("gzip, br"),
    Some("x-gzip"),
    Some("BR"),
    Some(""),
];

/// Body caps of the `capture` target (`max_body_bytes`; 1 KiB is the configurable minimum).
pub const MAX_BODIES: [usize; 4] = [1 << 20, 1024, 4096, 65536];

/// `capture` flag: the request body never ends (the client went away mid-upload).
pub const FLAG_REQUEST_CUT: u8 = 1;
/// `capture` flag: the host could not hand over the request body (Kong spooled it to disk).
pub const FLAG_UNREADABLE: u8 = 1 << 1;
/// `capture` flag: the response ends normally (else the stream is cut).
pub const FLAG_RESPONSE_ENDS: u8 = 1 << 2;
/// `capture` flag: response headers arrive before the last request chunk.
pub const FLAG_EARLY_RESPONSE: u8 = 1 << 3;
/// `capture` flag: no response at all.
pub const FLAG_NO_RESPONSE: u8 = 1 << 6;
/// `capture`: the body cap is `MAX_BODIES[(flags >> MAX_BODY_SHIFT) % 4]`.
pub const MAX_BODY_SHIFT: u8 = 4;

/// The filter configuration the harnesses encode records with (both sinks configured).
pub const SINK_CONFIG: &str = r#"{
  "opik": {"endpoint": "https://www.comet.com/opik/api", "api_key": "k", "workspace": "w",
           "project_name": "fuzz"},
  "langfuse": {"endpoint": "http://langfuse:3000", "public_key": "pk-lf-1", "secret_key": "sk-lf-1"}
}"#;

/// The SSE / NDJSON decoder: the input is `flags` (bit 0: NDJSON), `max_line` (u16), chunk
/// sizes, then the stream.
///
/// # Panics
/// When the events depend on how the stream was cut, an NDJSON event is not one bounded line,
/// or a chunk the decoder calls a lone data line is not the one event it then dispatches.
pub fn sse(data: &[u8]) {
    let mut input = Input::new(data);
    let ndjson = input.byte() & 1 == 1;
    let max_line = usize::from(input.u16()).max(1);
    let sizes = input.sizes();
    let stream = input.rest();
    let decoder = || {
        if ndjson {
            SseDecoder::ndjson(max_line)
        } else {
            SseDecoder::new(max_line)
        }
    };
    let whole = run_sse(decoder(), &[stream]);
    let cut = run_sse(decoder(), &chunks(stream, sizes));
    assert_eq!(whole, cut, "the events depend on where the stream was cut");
    if ndjson {
        for event in &whole.0 {
            assert!(event.data.len() <= max_line, "an NDJSON line over max_line");
            assert!(!event.data.contains(&b'\n') && !event.data.contains(&b'\r'));
        }
    }
}

fn run_sse(mut decoder: SseDecoder, chunks: &[&[u8]]) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    for chunk in chunks {
        // A lone data line free of line breaks is exactly the one event push dispatches.
        let lone = decoder
            .lone_data_line(chunk)
            .filter(|d| !d.contains(&b'\n') && !d.contains(&b'\r'))
            .map(<[u8]>::to_vec);
        let (before, oversized) = (events.len(), decoder.oversized_lines());
        decoder.push(chunk, &mut |e| events.push(e.clone()));
        if let Some(data) = lone {
            assert_eq!(events.len(), before + 1, "a lone data line is one event");
            assert_eq!((&events[before].data, events[before].event.as_str()), (&data, ""));
            assert_eq!(decoder.oversized_lines(), oversized);
        }
    }
    decoder.finish(&mut |e| events.push(e.clone()));
    (events, decoder.oversized_lines())
}

/// Every protocol's parsers: the first byte selects the protocol (modulo 9) and the stream
/// fold's budget (`BUDGETS[(byte / 9) % 6]`); the rest is handed to `parse_request`,
/// `parse_response`, `parse_error`, `sniff` and the stream fold (whole, then framed as SSE or
/// NDJSON events). For Chat Completions and Anthropic Messages, the fold's fast readers are
/// checked against its full parser.
///
/// # Panics
/// When the resulting record does not encode to JSON, or a fold's fast readers and its full
/// parser disagree.
pub fn protocols(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let count = protocols::ALL.len();
    let protocol = protocols::ALL[usize::from(selector) % count];
    let budget = BUDGETS[usize::from(selector) / count % BUDGETS.len()];
    let _ = Protocol::sniff(body);
    let mut record = TraceRecord::default();
    let _ = protocol.parse_request(body, &mut record);
    let _ = protocol.parse_response(body, &mut record);
    record.error = protocol.parse_error(body);
    if let Some(mut fold) = protocol.stream(budget) {
        fold.push(&Event {
            event: String::new(),
            data: body.to_vec(),
        });
        let framing = match protocol {
            Protocol::OllamaChat | Protocol::OllamaGenerate => SseDecoder::ndjson(1 << 20),
            _ => SseDecoder::new(1 << 20),
        };
        protocols::fold_body(fold, framing, body, &mut record);
    }
    match protocol {
        Protocol::OpenAiChat => {
            assert!(openai_chat::skim_agrees(body.trim_ascii()));
            fast_readers_agree(
                body,
                &|| Box::new(openai_chat::ChatStream::new(budget)),
                Box::new(openai_chat::ChatStream::with_full_parser(budget)),
            );
        }
        Protocol::AnthropicMessages => fast_readers_agree(
            body,
            &|| Box::new(anthropic_messages::MessagesStream::new(budget)),
            Box::new(anthropic_messages::MessagesStream::with_full_parser(budget)),
        ),
        _ => {}
    }
    body_members(body);
    export(record);
}

/// The request body's top-level members, as the context and the request edits read them:
/// written back, they make the same JSON value; the edits never panic.
fn body_members(body: &[u8]) {
    if let Some(members) = Members::parse(body) {
        let again = members.encode(&[], &[]);
        // Numbers out of `f64` range are refused by `Value` only; compare where it reads.
        if let Ok(original) = serde_json::from_slice::<Value>(body) {
            assert!(original.is_object(), "members of a body that is no object");
            let encoded = serde_json::from_slice::<Value>(&again).ok();
            assert_eq!(Some(original), encoded, "written back, the members change");
        }
    }
    let edits = RequestEdits {
        strip_metadata: true,
        include_usage: true,
    };
    if let Some(edited) = rewrite::edit_request(body, edits).body {
        assert!(serde_json::from_slice::<IgnoredAny>(&edited).is_ok());
    }
}

/// A fold's fast readers (skimming and the repeated-event template) give what its full parser
/// gives for the whole stream.
fn fast_readers_agree(
    body: &[u8],
    fast: &dyn Fn() -> Box<dyn StreamFold>,
    full: Box<dyn StreamFold>,
) {
    let fold = |fold: Box<dyn StreamFold>| {
        let mut record = TraceRecord::default();
        protocols::fold_body(fold, SseDecoder::new(1 << 20), body, &mut record);
        record
    };
    let expected = fold(full);
    assert_eq!(fold(fast()), expected);
    // One chunk per event, as most upstreams send them: a chunk of one `data` line may reach
    // the fold without the event framing, which must change nothing.
    let mut chunked = fast();
    let mut framing = SseDecoder::new(1 << 20);
    let mut rest = body;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(rest.len(), |at| at + 2);
        let (chunk, after) = rest.split_at(end);
        protocols::push_chunk(&mut framing, chunked.as_mut(), chunk, &mut |_| {});
        rest = after;
    }
    framing.finish(&mut |e| {
        chunked.push(e);
    });
    let mut record = TraceRecord::default();
    chunked.finish(&mut record);
    assert_eq!(record, expected);
}

/// The configuration parser; a configuration that parses is then used: routes are matched
/// and an exporter built from it queues, dispatches and retries one record.
///
/// # Panics
/// When a dispatched export body is not JSON.
pub fn config(data: &[u8]) {
    let config = match Config::parse(data) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    const PROBES: [(&str, &str); 4] = [
        ("/v1/chat/completions", "api.openai.com"),
        ("/internal/llm?x=1#f", "gw.example.com:8443"),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "[::1]:80",
        ),
        ("", ""),
    ];
    for (path, authority) in PROBES {
        let _ = config.traced(path, authority);
    }
    let mut exporter = Exporter::new(&config);
    let mut host = Recorder::default();
    exporter.push(TraceRecord::default());
    exporter.tick(1, &mut host);
    if let Some(token) = host.last {
        exporter.on_reply(token, Some(503), Some(2), b"busy", 2, &mut host);
        exporter.tick(u64::MAX / 2, &mut host);
    }
    let _ = exporter.stats().count();
}

/// A `Dispatch` that accepts every callout after checking its body is JSON.
#[derive(Default)]
struct Recorder {
    last: Option<u32>,
    next: u32,
}

impl Dispatch for Recorder {
    fn dispatch(
        &mut self,
        _upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        _timeout_ms: u32,
    ) -> Result<u32, DispatchError> {
        assert!(headers.iter().any(|(k, _)| *k == ":path"));
        assert_json(body);
        self.next = self.next.wrapping_add(1);
        self.last = Some(self.next);
        Ok(self.next)
    }
}

/// The response body decoders: the first byte selects the encoding (`DECODE_ENCODINGS`, low 7
/// bits) and the limit's scale (bit 7 set: the u16 that follows is the limit; clear: it is
/// counted in 64-byte units), then chunk sizes, then the compressed body.
///
/// # Panics
/// When output passes the limit, the decoder's count disagrees with its output, or a body that
/// decodes whole decodes differently when cut into chunks.
pub fn decode(data: &[u8]) {
    let mut input = Input::new(data);
    let selector = input.byte();
    let scale = if selector & 0x80 != 0 { 1 } else { 64 };
    let limit = usize::from(input.u16()) * scale;
    let sizes = input.sizes();
    let body = input.rest();
    let encoding = DECODE_ENCODINGS[usize::from(selector & 0x7f) % DECODE_ENCODINGS.len()];
    let (Some(mut whole), Some(mut cut)) = (
        BodyDecoder::for_encoding(encoding),
        BodyDecoder::for_encoding(encoding),
    ) else {
        return;
    };
    let (whole_out, whole_ok) = run_decoder(&mut whole, &[body], limit);
    let (cut_out, cut_ok) = run_decoder(&mut cut, &chunks(body, sizes), limit);
    for (decoder, out) in [(&whole, &whole_out), (&cut, &cut_out)] {
        assert!(out.len() <= limit, "decoded past the limit");
        assert_eq!(decoder.decoded_len(), out.len());
        if decoder.capped() {
            assert_eq!(out.len(), limit, "capped before the limit");
        }
    }
    if whole_ok {
        assert!(cut_ok, "decodes whole but fails when cut");
        assert_eq!(
            whole_out, cut_out,
            "output depends on where the body was cut"
        );
    }
}

/// Runs a decoder over chunks; returns the output and whether no error was reported.
fn run_decoder(decoder: &mut BodyDecoder, chunks: &[&[u8]], limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut ok = true;
    for chunk in chunks {
        ok &= decoder.push(chunk, &mut out, limit).is_ok();
    }
    ok &= decoder.finish().is_ok();
    (out, ok)
}

/// A whole exchange through [`Capture`]: protocol selector (`% 10`, 9 = sniff from the body),
/// status (u16, 0 = none), content type and encoding selectors, flags (`FLAG_*`, body cap in
/// bits 4–5), request and response chunk sizes, path, authority, request length (u16), the
/// request body, then the response body.
///
/// # Panics
/// When a record of an unfinished response is not marked incomplete, or the record does not
/// encode to JSON.
pub fn capture(data: &[u8]) {
    let mut input = Input::new(data);
    let selector = input.byte();
    let status = input.u16();
    let content_type = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()];
    let encoding = CONTENT_ENCODINGS[usize::from(input.byte()) % CONTENT_ENCODINGS.len()];
    let flags = input.byte();
    let max_body = MAX_BODIES[usize::from(flags >> MAX_BODY_SHIFT) % MAX_BODIES.len()];
    let request_sizes = input.sizes();
    let response_sizes = input.sizes();
    let path = input.text();
    let authority = input.text();
    let request_len = usize::from(input.u16());
    let request = input.take(request_len);
    let response = input.rest();

    let start = RequestStart {
        path,
        authority: Some(authority).filter(|a| !a.is_empty()),
        now_ns: 1_000_000_000,
        ..RequestStart::default()
    };
    let mut capture = match protocols::ALL.get(usize::from(selector) % (protocols::ALL.len() + 1)) {
        Some(&protocol) => Capture::new(start, protocol, max_body),
        None => Capture::sniffing(start, max_body),
    };
    let respond = flags & FLAG_NO_RESPONSE == 0;
    let early = respond && flags & FLAG_EARLY_RESPONSE != 0;
    let headers = |capture: &mut Capture| {
        capture.response_headers(Some(status).filter(|s| *s != 0), content_type, encoding);
    };

    if flags & FLAG_UNREADABLE != 0 {
        capture.request_chunk(None, false);
    }
    // An empty body still comes as one (empty) chunk, which may carry the end of the request.
    let request_chunks = match chunks(request, request_sizes) {
        cut if cut.is_empty() => vec![request],
        cut => cut,
    };
    let last = request_chunks.len().saturating_sub(1);
    let request_ends = flags & FLAG_REQUEST_CUT == 0;
    for (i, chunk) in request_chunks.iter().enumerate() {
        if early && i == last {
            headers(&mut capture);
        }
        // Owned, as the glue hands chunks over: the first is kept as it is when it fits.
        capture.request_chunk_owned(Some(chunk.to_vec()), request_ends && i == last);
    }
    let mut now = 1_000_000_000;
    if respond {
        if !early {
            headers(&mut capture);
        }
        for chunk in chunks(response, response_sizes) {
            now += 1_000_000;
            capture.response_chunk(chunk, now);
        }
    }
    let response_ends = respond && flags & FLAG_RESPONSE_ENDS != 0;
    if response_ends {
        capture.response_end();
    }
    assert_eq!(capture.response_ended(), response_ends);
    let record = capture.finish(now + 1);
    if !response_ends {
        assert!(
            record.incomplete && record.error.is_some(),
            "an unfinished exchange"
        );
    }
    assert!(record.end_ns >= record.start_ns);
    export(record);
}

/// Encodes `record` with both sinks; every request body must be JSON.
fn export(record: TraceRecord) {
    let _ = record.estimated_bytes();
    let records = [Rc::new(record)];
    SINKS.with(|(opik, langfuse)| {
        for sink in [opik as &dyn Sink, langfuse] {
            for request in sink.encode(&records) {
                assert_json(&request.body);
            }
        }
    });
}

thread_local! {
    static SINKS: (OpikSink, LangfuseSink) = sinks();
}

fn sinks() -> (OpikSink, LangfuseSink) {
    let config = Config::parse(SINK_CONFIG.as_bytes()).expect("the harness configuration parses");
    match (config.opik, config.langfuse) {
        (Some(opik), Some(langfuse)) => (OpikSink::new(opik), LangfuseSink::new(langfuse)),
        _ => unreachable!("SINK_CONFIG configures both sinks"),
    }
}

fn assert_json(body: &[u8]) {
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(body) {
        panic!("an export body is not JSON ({e})");
    }
}
