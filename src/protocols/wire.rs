//! Wire shapes several APIs share: OpenAI's `stop` (a string or a list), OpenAI's usage object
//! (also spoken by OpenAI-compatible servers), and a lenient reader for fields that servers
//! fill with values of varying types. No host calls.

use crate::record::Usage;
use serde::de::{Deserializer, IgnoredAny};
use serde::Deserialize;

/// `stop`: one sequence or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

/// The stop sequences of an optional `stop` field, as a list.
pub(crate) fn stop_list(stop: Option<Stop>) -> Vec<String> {
    match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    }
}

/// Deserializes an optional value, taking a value of the wrong type as absent.
pub(crate) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Maybe<T> {
        Value(T),
        Other(IgnoredAny),
    }
    Ok(match Maybe::<T>::deserialize(d)? {
        Maybe::Value(v) => Some(v),
        Maybe::Other(_) => None,
    })
}

/// OpenAI's `usage` object (chat, completions, embeddings).
#[derive(Deserialize)]
pub(crate) struct OpenAiUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Usage {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            total: u.total_tokens,
            cached_input: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            cache_creation: None,
            reasoning: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        }
    }
}
