//! OpenAI legacy Completions (`POST …/completions`): request, JSON response, streamed
//! `text_completion` chunks and mid-stream error events, folded into a [`TraceRecord`].
//!
//! Follows OpenAI's API reference for "Create completion" (request `prompt`: a string, an
//! array of strings, an array of token ids or an array of token-id arrays) and the completion
//! object (`choices[].text`, `finish_reason`, `usage`); streamed responses are the same object
//! in pieces (`object: "text_completion"`, text deltas in `choices[].text`), an optional usage
//! chunk with empty `choices` (`stream_options.include_usage`) and `data: [DONE]`. Azure OpenAI,
//! vLLM and other OpenAI-compatible servers speak the same shapes.
//!
//! Each prompt becomes one `user` message; each choice an `assistant` message. Bodies are
//! deserialized into typed structs that ignore unknown keys (`logprobs` is skipped unread);
//! nothing here calls the host.

use super::openai_embeddings::TextInputs;
use super::wire::{stop_list, Flat, OpenAiUsage, Stop};
use super::{item_slot, set_once, sort_by_index, Budget, ChunkEffect, ProtocolError, StreamFold};
use crate::objects;
use crate::record::{Choice, ErrorInfo, Message, Params, Part, TraceRecord, Usage};
use crate::sse::Event;
use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: Option<TextInputs>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    n: Option<u64>,
    stream: Option<bool>,
    stop: Option<Stop>,
}

/// Fills the request side of `record` from a completion request body: model, parameters and
/// one `user` message per prompt (token prompts described as `[N tokens]`).
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a completion request.
pub fn parse_request(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let req: CompletionRequest = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.request_model = req.model;
    record.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_tokens,
        max_completion_tokens: None,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        seed: req.seed,
        n: req.n,
        stream: req.stream.unwrap_or(false),
        stop: stop_list(req.stop),
    };
    record.messages = req
        .prompt
        .map(|TextInputs(prompts)| prompts)
        .unwrap_or_default()
        .into_iter()
        .map(|p| Message {
            role: "user".into(),
            parts: vec![Part::Text(p.into_text())],
            ..Message::default()
        })
        .collect();
    Ok(())
}

#[derive(Deserialize)]
struct CompletionResponse {
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    choices: Option<Vec<OutChoice>>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct OutChoice {
    #[serde(default)]
    index: u32,
    text: Option<String>,
    finish_reason: Option<String>,
}

/// An `assistant` message holding `text` (no part when it is empty).
fn assistant(text: String) -> Message {
    Message {
        role: "assistant".into(),
        parts: if text.is_empty() {
            Vec::new()
        } else {
            vec![Part::Text(text)]
        },
        ..Message::default()
    }
}

/// Fills the response side of `record` from a non-streamed completion.
///
/// # Errors
/// [`ProtocolError::Json`] when the body is not a completion.
pub fn parse_response(body: &[u8], record: &mut TraceRecord) -> Result<(), ProtocolError> {
    let resp: CompletionResponse = objects::from_slice(body).map_err(ProtocolError::json)?;
    record.response_id = resp.id.filter(|s| !s.is_empty());
    record.response_model = resp.model.filter(|s| !s.is_empty());
    record.system_fingerprint = resp.system_fingerprint.filter(|s| !s.is_empty());
    record.usage = resp.usage.map(Usage::from).unwrap_or_default();
    let mut choices: Vec<Choice> = resp
        .choices
        .unwrap_or_default()
        .into_iter()
        .map(|c| Choice {
            index: c.index,
            message: assistant(c.text.unwrap_or_default()),
            finish_reason: c.finish_reason,
        })
        .collect();
    sort_by_index(&mut choices, |c| c.index.into());
    record.choices = choices;
    Ok(())
}

#[derive(Deserialize)]
struct Chunk {
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    choices: Option<Vec<ChunkChoice>>,
    usage: Option<OpenAiUsage>,
    error: Option<IgnoredAny>,
    object: Option<String>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    text: Option<String>,
    finish_reason: Option<String>,
}

/// A choice being assembled from text deltas.
#[derive(Debug, Default)]
struct ChoiceAcc {
    index: u32,
    text: String,
    finish_reason: Option<String>,
}

/// Folds streamed `text_completion` chunks into the final choice(s), keeping at most `budget`
/// bytes of generated text across all choices.
#[derive(Debug)]
pub struct CompletionStream {
    choices: Vec<ChoiceAcc>,
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    usage: Usage,
    error: Option<ErrorInfo>,
    budget: Budget,
    malformed: usize,
}

impl CompletionStream {
    /// A fold that keeps at most `budget` bytes of generated text.
    pub fn new(budget: usize) -> Self {
        CompletionStream {
            choices: Vec::new(),
            id: None,
            model: None,
            system_fingerprint: None,
            usage: Usage::default(),
            error: None,
            budget: Budget::new(budget),
            malformed: 0,
        }
    }

    fn push_data(&mut self, data: &[u8]) -> ChunkEffect {
        let trimmed = data.trim_ascii();
        if trimmed == b"[DONE]" {
            return ChunkEffect::Done;
        }
        if trimmed.is_empty() {
            return ChunkEffect::Quiet;
        }
        let Ok(chunk) = objects::from_slice::<Chunk>(trimmed) else {
            self.malformed += 1;
            return ChunkEffect::Quiet;
        };
        if chunk.error.is_some() {
            if let Some(err) = super::openai_chat::parse_error(trimmed) {
                self.error = Some(err);
            }
        } else if chunk.object.as_deref() == Some("error") {
            // vLLM's mid-stream error: `{"object":"error","message","type","code"}`.
            let mut flat = objects::from_slice::<Flat>(trimmed).unwrap_or_default();
            let (kind, message) = (flat.take_str("type"), flat.take_str("message"));
            self.error = Some(ErrorInfo {
                kind: kind
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "error".into()),
                message: message.unwrap_or_default(),
            });
        }
        set_once(&mut self.id, chunk.id);
        set_once(&mut self.model, chunk.model);
        set_once(&mut self.system_fingerprint, chunk.system_fingerprint);
        if let Some(u) = chunk.usage {
            self.usage = u.into();
        }
        let mut effect = ChunkEffect::Quiet;
        for c in chunk.choices.unwrap_or_default() {
            if self.apply_choice(c) {
                effect = ChunkEffect::Output;
            }
        }
        effect
    }

    /// Applies one choice delta; true when it carried text.
    fn apply_choice(&mut self, c: ChunkChoice) -> bool {
        let Self {
            choices, budget, ..
        } = self;
        let make = || ChoiceAcc {
            index: c.index,
            ..ChoiceAcc::default()
        };
        let Some(acc) = item_slot(choices, budget, |a| a.index == c.index, make)
            .and_then(|at| choices.get_mut(at))
        else {
            return false;
        };
        if c.finish_reason.is_some() {
            acc.finish_reason = c.finish_reason;
        }
        match c.text.filter(|t| !t.is_empty()) {
            Some(text) => {
                budget.append(&mut acc.text, &text);
                true
            }
            None => false,
        }
    }

    fn finish_into(self, record: &mut TraceRecord) {
        record.response_id = self.id;
        record.response_model = self.model;
        record.system_fingerprint = self.system_fingerprint;
        record.usage = self.usage;
        record.truncated |= self.budget.truncated;
        if self.malformed > 0 {
            record.unparsed.push(format!(
                "response: {} malformed stream events",
                self.malformed
            ));
        }
        if let Some(err) = self.error {
            record.error = Some(err);
        }
        let mut choices = self.choices;
        sort_by_index(&mut choices, |c| c.index.into());
        record.choices = choices
            .into_iter()
            .map(|c| Choice {
                index: c.index,
                message: assistant(c.text),
                finish_reason: c.finish_reason,
            })
            .collect();
    }
}

impl StreamFold for CompletionStream {
    fn push(&mut self, event: &Event) -> ChunkEffect {
        self.push_data(&event.data)
    }

    fn finish(self: Box<Self>, record: &mut TraceRecord) {
        self.finish_into(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::harness::{self, check_cases, check_family, check_hostile};
    use crate::protocols::Protocol;
    use crate::sse::SseDecoder;

    fn record(name: &str, records: &[(String, TraceRecord)]) -> TraceRecord {
        harness::record(records, name).clone()
    }

    #[test]
    fn fixtures() {
        let records = check_family("openai_completions", 6);

        let basic = record("basic", &records);
        assert_eq!(basic.params.max_tokens, Some(32));
        assert_eq!(basic.params.temperature, Some(0.0));
        assert_eq!(basic.params.stop, vec!["\n".to_string()]);
        assert_eq!(basic.params.seed, Some(42));
        assert_eq!(
            basic.response_id.as_deref(),
            Some("cmpl-AzT8fGqVb9wR1nXy2LkPq7sD3hJ0e")
        );
        assert_eq!(
            basic.messages[0].parts,
            vec![Part::Text("Say this is a test".into())]
        );

        let batch = record("batch_prompts", &records);
        assert_eq!(batch.params.n, Some(2));
        let texts: Vec<Option<String>> = batch.messages.iter().map(Message::text).collect();
        assert_eq!(
            texts,
            vec![
                Some("The capital of France is".to_string()),
                Some("Good morning, and".to_string())
            ]
        );
        let indexes: Vec<u32> = batch.choices.iter().map(|c| c.index).collect();
        assert_eq!(indexes, vec![0, 1, 2, 3]);
        assert_eq!(
            batch.choices[3].message.text().as_deref(),
            Some(" in the morning.")
        );
        assert_eq!(
            batch.finish_reasons(),
            vec!["stop", "length", "length", "stop"]
        );

        let tokens = record("token_prompts", &records);
        let texts: Vec<Option<String>> = tokens.messages.iter().map(Message::text).collect();
        assert_eq!(
            texts,
            vec![
                Some("[5 tokens]".to_string()),
                Some("[3 tokens]".to_string())
            ]
        );

        let stream = record("stream", &records);
        assert!(stream.params.stream);
        assert_eq!(stream.choices.len(), 1);
        assert_eq!(stream.choices[0].message.role, "assistant");
    }

    #[test]
    fn openai_chat_case_files() {
        // The chat cases whose case.json this module's author wrote; the compressed chat
        // fixtures (`gzip_json`, `br_stream`) are checked at every split point by the capture
        // tests.
        let mine = [
            "basic",
            "error_400",
            "stream_no_usage",
            "stream_text",
            "stream_tools",
            "tool_result",
            "azure_stream",
        ];
        let cases: Vec<harness::Case> = harness::cases("openai_chat")
            .into_iter()
            .filter(|c| mine.contains(&c.short_name()))
            .collect();
        let records = check_cases(&cases);
        assert_eq!(records.len(), mine.len());
        let azure = harness::record(&records, "azure_stream");
        assert_eq!(
            azure.response_id.as_deref(),
            Some("chatcmpl-AbqZ3xEPiS7yVQ5nfXq0Ll8kT4GmH")
        );
        assert_eq!(azure.system_fingerprint.as_deref(), Some("fp_65792305e4"));
        assert_eq!(
            azure.server_address.as_deref(),
            Some("contoso-eastus2.openai.azure.com")
        );
        assert_eq!(azure.params.max_tokens, Some(80));
    }

    #[test]
    fn output_budget_is_shared_and_cut_on_char_boundaries() {
        let mut fold = CompletionStream::new(5);
        for data in [
            r#"{"choices":[{"index":0,"text":"héllo"}]}"#,
            r#"{"choices":[{"index":1,"text":"world"}]}"#,
            "[DONE]",
        ] {
            fold.push(&Event {
                event: String::new(),
                data: data.as_bytes().to_vec(),
            });
        }
        let mut r = TraceRecord::default();
        Box::new(fold).finish(&mut r);
        assert!(r.truncated);
        assert_eq!(r.choices[0].message.text().as_deref(), Some("héll"));
        assert_eq!(r.choices[1].message.parts, vec![]);
    }

    #[test]
    fn malformed_events_are_counted_not_fatal() {
        let body = b"data: {\"choices\":[{\"index\":0,\"text\":\"a\"}]}\n\ndata: {oops\n\ndata: {\"choices\":\"x\"}\n\ndata: {\"choices\":[{\"index\":0,\"text\":\"b\"}]}\n\ndata: [DONE]\n\n";
        let mut decoder = SseDecoder::new(1 << 16);
        let mut fold: Box<dyn StreamFold> = Box::new(CompletionStream::new(1 << 16));
        let mut effects = Vec::new();
        decoder.push(body, &mut |e| effects.push(fold.push(e)));
        decoder.finish(&mut |e| effects.push(fold.push(e)));
        assert_eq!(
            effects,
            vec![
                ChunkEffect::Output,
                ChunkEffect::Quiet,
                ChunkEffect::Quiet,
                ChunkEffect::Output,
                ChunkEffect::Done
            ]
        );
        let mut r = TraceRecord::default();
        fold.finish(&mut r);
        assert_eq!(r.choices[0].message.text().as_deref(), Some("ab"));
        assert_eq!(
            r.unparsed,
            vec!["response: 2 malformed stream events".to_string()]
        );
    }

    #[test]
    fn error_chunks_in_both_shapes() {
        for (data, kind, message) in [
            (
                r#"{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}"#,
                "server_error",
                "overloaded",
            ),
            (
                r#"{"object":"error","message":"max_tokens too large","type":"BadRequestError","param":null,"code":400}"#,
                "BadRequestError",
                "max_tokens too large",
            ),
            (r#"{"object":"error","message":7}"#, "error", ""),
        ] {
            let mut fold = CompletionStream::new(100);
            fold.push(&Event {
                event: String::new(),
                data: data.as_bytes().to_vec(),
            });
            let mut r = TraceRecord::default();
            Box::new(fold).finish(&mut r);
            assert_eq!(
                r.error,
                Some(ErrorInfo {
                    kind: kind.into(),
                    message: message.into()
                }),
                "{data}"
            );
        }
    }

    #[test]
    fn prompt_shapes() {
        let cases: [(&str, Vec<&str>); 5] = [
            (r#""once upon""#, vec!["once upon"]),
            (r#"["a","b"]"#, vec!["a", "b"]),
            ("[50256, 50256]", vec!["[2 tokens]"]),
            ("[[1],[2,3]]", vec!["[1 tokens]", "[2 tokens]"]),
            (r#"[]"#, vec![]),
        ];
        for (prompt, expected) in cases {
            let body = format!(r#"{{"model":"m","prompt":{prompt},"stop":"END"}}"#);
            let mut r = TraceRecord::default();
            parse_request(body.as_bytes(), &mut r).unwrap_or_else(|e| panic!("{prompt}: {e}"));
            let texts: Vec<String> = r.messages.iter().filter_map(Message::text).collect();
            assert_eq!(texts, expected, "{prompt}");
            assert!(r.messages.iter().all(|m| m.role == "user"));
            assert_eq!(r.params.stop, vec!["END".to_string()]);
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        check_hostile(Protocol::OpenAiCompletions);
    }
}
