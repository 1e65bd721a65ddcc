//! vLLM's native demo server (`vllm.entrypoints.api_server`): `POST /generate`, folded into a
//! [`TraceRecord`].
//!
//! Follows `vllm/entrypoints/api_server.py`: the request is `{"prompt": "…", "stream": bool}`
//! plus `SamplingParams` fields (`max_tokens`, `temperature`, `top_p`, `n`, `stop`, `seed`,
//! `presence_penalty`, `frequency_penalty`, …); the response is `{"text": ["<prompt><completion>",
//! …]}`, one string per output, each the prompt followed by the completion. There is no model,
//! response id, finish reason or usage on the wire: those stay `None`.
//!
//! Streamed responses are a series of such objects, each carrying the whole text so far,
//! delimited by a NUL byte (`\0`, older releases) or a newline (newer ones), sent without a
//! content type (or whatever the server chose, never `text/event-stream`). The filter therefore
//! usually sees them as one whole body and [`parse_response`] takes the last complete object;
//! the record is then marked streamed, but time to first token is unknown. A stream body longer
//! than `max_body_bytes` (which a long generation's repeated prefixes reach quickly) is not
//! parsed. When a route frames the response as NDJSON or SSE, [`GenerateStream`] folds the
//! frames, keeping the latest text of each output.
//!
//! The completion recorded is the text after the prompt: when an output starts with the
//! request's prompt, the prompt is removed. Error bodies are read by the OpenAI parser (the
//! server sends plain HTTP errors). Nothing here calls the host.

use super::wire::{lenient, stop_list, Flat, Stop};
use super::{Budget, ChunkEffect, ProtocolError, StreamFold};
use crate::objects;
use crate::record::{Choice, Message, Params, Part, TraceRecord};
use crate::sse::Event;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct GenerateRequest<'a> {
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient")]
    model: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    n: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    seed: Option<i64>,
    #[serde(default, deserialize_with = "lenient")]
    presence_penalty: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    frequency_penalty: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    stop: Option<Stop>,
}

/// Fills the request side of `record` from a `/generate` request body.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a JSON object of the request's shape.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: GenerateRequest<'_> = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    record.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_tokens,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        seed: req.seed,
        n: req.n,
        stream: req.stream.unwrap_or(false),
        stop: stop_list(req.stop),
        ..Params::default()
    };
    let part = req.prompt.and_then(|raw| {
        if let Ok(text) = serde_json::from_slice::<Option<String>>(raw.get().as_bytes()) {
            return text.filter(|t| !t.is_empty()).map(Part::Text);
        }
        // A prompt given as an object: only its text is taken.
        let mut object = objects::from_slice::<Flat>(raw.get().as_bytes()).unwrap_or_default();
        if let Some(prompt) = object.take_str("prompt") {
            return Some(Part::Text(prompt));
        }
        // Token ids or another prompt form: kept as sent.
        Some(Part::Other {
            kind: "prompt".into(),
            json: raw.get().to_string(),
        })
    });
    record.messages = part
        .map(|p| Message {
            role: "user".into(),
            parts: vec![p],
            ..Message::default()
        })
        .into_iter()
        .collect();
    Ok(())
}

/// One response object.
#[derive(Deserialize)]
struct Frame {
    text: Vec<String>,
}

/// Splits a body into its `\0`- or newline-delimited frames, skipping empty ones.
fn frames(body: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    body.split(|&b| b == 0 || b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|f| !f.is_empty())
}

/// Fills the response side of `record` from a whole `/generate` body: one JSON object, or a
/// stream's `\0`- or newline-delimited objects, of which the last complete one counts.
///
/// # Errors
/// [`ProtocolError::Json`] when no frame of the body is a response object.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let whole = body.trim_ascii();
    let frame = match objects::from_slice::<Frame>(whole) {
        Ok(frame) => frame,
        Err(e) => {
            // The last frame may be cut; the one before it then holds the text.
            let Some(frame) = frames(whole)
                .rev()
                .find_map(|f| objects::from_slice::<Frame>(f).ok())
            else {
                return Err(ProtocolError::json(e));
            };
            record.streamed = true;
            frame
        }
    };
    // A streamed response may hold a single frame.
    record.streamed |= record.params.stream;
    record.choices = choices(frame.text, record);
    Ok(())
}

/// The prompt the request sent, when it was text.
fn prompt_of(record: &TraceRecord) -> Option<&str> {
    match record.messages.first()?.parts.first()? {
        Part::Text(t) => Some(t.as_str()),
        _ => None,
    }
}

/// One choice per output, the prompt prefix removed.
fn choices(texts: Vec<String>, record: &TraceRecord) -> Vec<Choice> {
    let prompt = prompt_of(record).unwrap_or("");
    texts
        .into_iter()
        .zip(0u32..)
        .map(|(text, index)| {
            let completion = match text.strip_prefix(prompt) {
                Some(rest) if !prompt.is_empty() => rest.to_string(),
                _ => text,
            };
            Choice {
                index,
                message: Message {
                    role: "assistant".into(),
                    parts: if completion.is_empty() {
                        Vec::new()
                    } else {
                        vec![Part::Text(completion)]
                    },
                    ..Message::default()
                },
                finish_reason: None,
            }
        })
        .collect()
}

/// Folds `/generate` stream frames, when a route frames them as events: each frame carries the
/// whole text so far, so the latest one is kept (bounded by a byte budget).
#[derive(Debug)]
pub struct GenerateStream {
    latest: Vec<String>,
    seen: bool,
    budget: usize,
    truncated: bool,
    malformed: usize,
}

impl GenerateStream {
    /// A fold that keeps at most `budget` bytes of generated text.
    pub fn new(budget: usize) -> Self {
        GenerateStream {
            latest: Vec::new(),
            seen: false,
            budget,
            truncated: false,
            malformed: 0,
        }
    }

    fn apply(&mut self, frame: Frame) -> bool {
        self.seen = true;
        // Each frame replaces the last, so each starts from the whole budget.
        let mut budget = Budget::new(self.budget);
        let mut grew = false;
        let mut latest = Vec::new();
        for (i, text) in frame.text.iter().enumerate() {
            if !budget.open() {
                break;
            }
            let mut kept = String::new();
            budget.append(&mut kept, text);
            grew |= kept.len() > self.latest.get(i).map_or(0, String::len);
            latest.push(kept);
        }
        self.truncated |= budget.truncated;
        self.latest = latest;
        grew
    }
}

impl StreamFold for GenerateStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        let mut output = false;
        // One event may hold several NUL-delimited frames.
        for frame in frames(&event.data) {
            match objects::from_slice::<Frame>(frame) {
                Ok(f) => output |= self.apply(f),
                Err(_) => self.malformed += 1,
            }
        }
        if output {
            ChunkEffect::Output
        } else {
            ChunkEffect::Quiet
        }
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        record.truncated |= self.truncated;
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed stream frames",
                self.malformed
            ));
        }
        if self.seen {
            record.choices = choices(self.latest, record);
        }
    }
}

#[cfg(test)]
mod tests;
