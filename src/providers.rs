//! Provider names: which provider served an exchange, judged from the request host, path and
//! protocol, and how each backend spells it. The record carries the OpenTelemetry GenAI name
//! (`gen_ai.provider.name` values of semantic conventions v1.41, e.g. `gcp.vertex_ai`); Opik
//! takes its own vocabulary (`google_vertexai`), on which its cost lookup depends. No host calls.

use crate::config::host_of;
use crate::protocols::Protocol;

/// Hosts of well-known OpenAI-compatible and native APIs, by domain suffix.
const HOSTS: &[(&str, &str)] = &[
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    (".models.ai.azure.com", "azure.ai.inference"),
    ("api.anthropic.com", "anthropic"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
    ("aiplatform.googleapis.com", "gcp.vertex_ai"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.deepseek.com", "deepseek"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("openrouter.ai", "openrouter"),
    ("api.x.ai", "x_ai"),
    ("api.perplexity.ai", "perplexity"),
    ("api.fireworks.ai", "fireworks"),
    ("api.cohere.com", "cohere"),
    (".amazonaws.com", "aws.bedrock"),
];

/// The provider of a request: the host when it is a known API, else what the path and the
/// protocol say (Azure deployment paths, Vertex AI resource paths, Ollama, vLLM), else OpenAI
/// for OpenAI-shaped APIs.
pub fn detect(authority: &str, path: &str, protocol: Protocol) -> &'static str {
    let host = host_of(authority);
    let known = HOSTS
        .iter()
        .find(|(suffix, _)| match suffix.strip_prefix('.') {
            Some(domain) => host.ends_with(suffix) || host == domain,
            None => host == *suffix || host.ends_with(&format!(".{suffix}")),
        });
    if let Some((_, name)) = known {
        return name;
    }
    let path = path.split('?').next().unwrap_or(path);
    match protocol {
        Protocol::AnthropicMessages if path.contains("/publishers/anthropic/") => "gcp.vertex_ai",
        Protocol::AnthropicMessages => "anthropic",
        Protocol::Gemini if path.contains("/projects/") && path.contains("/locations/") => {
            "gcp.vertex_ai"
        }
        Protocol::Gemini => "gcp.gemini",
        Protocol::OllamaChat | Protocol::OllamaGenerate => "ollama",
        Protocol::VllmGenerate => "vllm",
        _ if path.contains("/openai/deployments/") => "azure.ai.openai",
        _ => "openai",
    }
}

/// The provider as Opik names it (`Span_Write.provider`; cost lookup knows `openai`,
/// `anthropic`, `google_ai`, `google_vertexai`, `bedrock`, `groq`).
pub fn opik_name(provider: &str) -> &str {
    match provider {
        "gcp.gemini" => "google_ai",
        "gcp.vertex_ai" => "google_vertexai",
        "aws.bedrock" => "bedrock",
        "azure.ai.openai" => "azure_openai",
        "azure.ai.inference" => "azure_ai",
        "mistral_ai" => "mistral",
        "x_ai" => "xai",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        let cases = [
            (
                "api.openai.com",
                "/v1/chat/completions",
                Protocol::OpenAiChat,
                "openai",
            ),
            (
                "myres.openai.azure.com",
                "/openai/deployments/d/chat/completions",
                Protocol::OpenAiChat,
                "azure.ai.openai",
            ),
            (
                "gateway.local",
                "/openai/deployments/d/chat/completions",
                Protocol::OpenAiChat,
                "azure.ai.openai",
            ),
            (
                "api.groq.com:443",
                "/openai/v1/chat/completions",
                Protocol::OpenAiChat,
                "groq",
            ),
            (
                "openrouter.ai",
                "/api/v1/chat/completions",
                Protocol::OpenAiChat,
                "openrouter",
            ),
            (
                "vllm.internal:8000",
                "/v1/chat/completions",
                Protocol::OpenAiChat,
                "openai",
            ),
            (
                "gw",
                "/v1/messages",
                Protocol::AnthropicMessages,
                "anthropic",
            ),
            (
                "gw",
                "/v1beta/models/g:generateContent",
                Protocol::Gemini,
                "gcp.gemini",
            ),
            (
                "us-central1-aiplatform.googleapis.com",
                "/v1/projects/p/locations/l/publishers/google/models/g:generateContent",
                Protocol::Gemini,
                "gcp.vertex_ai",
            ),
            (
                "gw",
                "/v1/projects/p/locations/l/publishers/google/models/g:generateContent",
                Protocol::Gemini,
                "gcp.vertex_ai",
            ),
            (
                "localhost:11434",
                "/api/chat",
                Protocol::OllamaChat,
                "ollama",
            ),
            ("gw", "/generate", Protocol::VllmGenerate, "vllm"),
            (
                "notopenai.com",
                "/v1/chat/completions",
                Protocol::OpenAiChat,
                "openai",
            ),
        ];
        for (authority, path, protocol, expected) in cases {
            assert_eq!(
                detect(authority, path, protocol),
                expected,
                "{authority}{path}"
            );
        }
    }

    #[test]
    fn opik_vocabulary() {
        assert_eq!(opik_name("gcp.vertex_ai"), "google_vertexai");
        assert_eq!(opik_name("gcp.gemini"), "google_ai");
        assert_eq!(opik_name("openai"), "openai");
        assert_eq!(opik_name("groq"), "groq");
    }
}
