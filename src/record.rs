//! The provider-neutral trace record: what one LLM exchange through the gateway was.
//!
//! Protocol normalizers fill it; sink encoders read it. Times are Unix nanoseconds as the host
//! clock gave them (milliseconds resolution on Kong). Counts that a provider did not report are
//! `None`, never 0. No host calls.

use crate::context::Context;
use crate::pricing::Cost;

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// A tool (function) call requested by the model.
    ToolCall {
        /// Call id given by the provider.
        id: String,
        /// Function name.
        name: String,
        /// Arguments as the model produced them (usually JSON text).
        arguments: String,
    },
    /// Reasoning ("thinking") text the model produced or was given back.
    Reasoning(String),
    /// A reference to media by URL.
    Uri {
        /// `image`, `audio` or `video`.
        modality: &'static str,
        /// The URL (data URLs are replaced by a placeholder before they get here).
        uri: String,
    },
    /// Any other part, kept as its JSON text.
    Other {
        /// The part's `type`.
        kind: String,
        /// The part's JSON.
        json: String,
    },
}

/// A chat message, input or output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool`, …
    pub role: String,
    /// Content parts in order.
    pub parts: Vec<Part>,
    /// Participant name, when given.
    pub name: Option<String>,
    /// For `tool` messages: the call this message answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A `system` message of `parts`; `None` when there are none, since an empty system prompt
    /// is no message.
    pub fn system(parts: Vec<Part>) -> Option<Message> {
        (!parts.is_empty()).then(|| Message {
            role: "system".into(),
            parts,
            ..Message::default()
        })
    }

    /// All text parts joined, for backends that take plain content.
    pub fn text(&self) -> Option<String> {
        let mut texts = self.parts.iter().filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        });
        let first = texts.next()?;
        Some(texts.fold(first.to_string(), |mut acc, t| {
            acc.push_str(t);
            acc
        }))
    }
}

/// One output choice.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Choice {
    /// Choice index.
    pub index: u32,
    /// The generated message.
    pub message: Message,
    /// Provider finish reason (`stop`, `length`, `tool_calls`, …).
    pub finish_reason: Option<String>,
}

/// Token usage as the provider reported it, in OpenAI semantics: `input` includes cached tokens,
/// `output` includes reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens, cached included.
    pub input: Option<u64>,
    /// Completion tokens, reasoning included.
    pub output: Option<u64>,
    /// Total tokens.
    pub total: Option<u64>,
    /// Prompt tokens served from the provider's cache (included in `input`).
    pub cached_input: Option<u64>,
    /// Prompt tokens written to the provider's cache (included in `input`; Anthropic).
    pub cache_creation: Option<u64>,
    /// Completion tokens spent on reasoning.
    pub reasoning: Option<u64>,
}

impl Usage {
    /// Whether the provider reported anything at all.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// Total, computed from input and output when the provider left it out.
    pub fn total(&self) -> Option<u64> {
        self.total.or(match (self.input, self.output) {
            (Some(i), Some(o)) => Some(i.saturating_add(o)),
            _ => None,
        })
    }
}

/// Request parameters that matter for a trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `max_completion_tokens`.
    pub max_completion_tokens: Option<u64>,
    /// `frequency_penalty`.
    pub frequency_penalty: Option<f64>,
    /// `presence_penalty`.
    pub presence_penalty: Option<f64>,
    /// `seed`.
    pub seed: Option<i64>,
    /// `n` (choices requested).
    pub n: Option<u64>,
    /// `stream`.
    pub stream: bool,
    /// `stop` sequences.
    pub stop: Vec<String>,
}

/// What went wrong, when something did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// Short machine-friendly kind: the HTTP status as text, `incomplete`, a provider error type.
    pub kind: String,
    /// Human-readable message (the provider's error message when it gave one).
    pub message: String,
}

/// One traced exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceRecord {
    /// W3C trace id.
    pub trace_id: [u8; 16],
    /// W3C span id of the LLM call.
    pub span_id: [u8; 8],
    /// Random bits for ids that need more entropy than the W3C ids (Opik UUIDv7 tails).
    pub entropy: [u8; 16],
    /// Request start, Unix ns.
    pub start_ns: u64,
    /// Response end (or when the exchange was given up), Unix ns.
    pub end_ns: u64,
    /// First content or tool-call token seen, Unix ns.
    pub first_token_ns: Option<u64>,
    /// GenAI operation (`chat`, `text_completion`, `embeddings`, `generate_content`).
    pub operation: &'static str,
    /// Name of the API called, used as the trace name (`chat.completions`, `messages`, …).
    pub api: &'static str,
    /// Provider name as configured for the route (`openai`).
    pub provider: String,
    /// Request path (query included).
    pub path: String,
    /// Host the client addressed (`:authority`).
    pub server_address: Option<String>,
    /// Model asked for.
    pub request_model: Option<String>,
    /// Parameters asked for.
    pub params: Params,
    /// Input messages in order.
    pub messages: Vec<Message>,
    /// Tool definitions as sent (JSON text of the `tools` array).
    pub tools_json: Option<String>,
    /// Model that answered.
    pub response_model: Option<String>,
    /// Provider response id.
    pub response_id: Option<String>,
    /// Provider system fingerprint.
    pub system_fingerprint: Option<String>,
    /// Output choices.
    pub choices: Vec<Choice>,
    /// Embeddings: how many inputs were embedded (the vectors are never kept).
    pub embedding_count: Option<u64>,
    /// Token usage.
    pub usage: Usage,
    /// Upstream HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Error, when the exchange failed or never completed.
    pub error: Option<ErrorInfo>,
    /// The exchange ended before the response did (client abort).
    pub incomplete: bool,
    /// Part of a body was not kept (over `max_body_bytes`).
    pub truncated: bool,
    /// A body could not be read or parsed; says which and why.
    pub unparsed: Vec<String>,
    /// The response was streamed (SSE).
    pub streamed: bool,
    /// Who made the exchange, in which conversation and project, with which tags and
    /// metadata, under which caller's trace.
    pub context: Context,
    /// Estimated cost, when the model is in the price table and usage is known.
    pub cost: Option<Cost>,
    /// The price-table entry the model resolved to, when it did.
    pub priced_as: Option<String>,
}

impl TraceRecord {
    /// Time to first token in milliseconds.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_token_ns
            .map(|t| t.saturating_sub(self.start_ns) as f64 / 1e6)
    }

    /// Mean time per output token after the first, in milliseconds:
    /// (end − first token) / (output tokens − 1). Needs a first-token time and two or more
    /// output tokens.
    pub fn time_per_output_token_ms(&self) -> Option<f64> {
        let first = self.first_token_ns?;
        let output = self.usage.output.filter(|&n| n > 1)?;
        let ms = self.end_ns.saturating_sub(first) as f64 / 1e6;
        Some(ms / (output - 1) as f64)
    }

    /// Output tokens per second over the whole exchange.
    pub fn output_tokens_per_second(&self) -> Option<f64> {
        let output = self.usage.output?;
        let secs = self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        (secs > 0.0).then(|| output as f64 / secs)
    }

    /// Finish reasons of all choices, in choice order.
    pub fn finish_reasons(&self) -> Vec<&str> {
        self.choices
            .iter()
            .filter_map(|c| c.finish_reason.as_deref())
            .collect()
    }

    /// Rough size of the record in bytes, used to bound queues before encoding.
    pub fn estimated_bytes(&self) -> usize {
        fn message_bytes(m: &Message) -> usize {
            m.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) | Part::Reasoning(t) => t.len() + 16,
                    Part::ToolCall {
                        id,
                        name,
                        arguments,
                    } => id.len() + name.len() + arguments.len() + 48,
                    Part::Uri { uri, .. } => uri.len() + 32,
                    Part::Other { kind, json } => kind.len() + json.len() + 16,
                })
                .sum::<usize>()
                + m.role.len()
                + 32
        }
        512 + self.path.len()
            + self.messages.iter().map(message_bytes).sum::<usize>()
            + self
                .choices
                .iter()
                .map(|c| message_bytes(&c.message))
                .sum::<usize>()
            + self.tools_json.as_ref().map_or(0, String::len)
            + self
                .error
                .as_ref()
                .map_or(0, |e| e.message.len() + e.kind.len())
    }
}

#[cfg(test)]
mod tests {
    use super::Usage;

    #[test]
    fn total_is_given_or_the_saturating_sum() {
        let usage = |input, output, total| Usage {
            input,
            output,
            total,
            ..Usage::default()
        };
        assert_eq!(usage(Some(3), Some(4), None).total(), Some(7));
        assert_eq!(usage(Some(3), Some(4), Some(9)).total(), Some(9));
        assert_eq!(usage(Some(u64::MAX), Some(4), None).total(), Some(u64::MAX));
        assert_eq!(usage(Some(3), None, None).total(), None);
    }
}
