//! Every recorded exchange under `tests/fixtures/<protocol>/<case>/` runs through the real
//! `llm_tracer.wasm`, as Kong and as Envoy, with the response cut at random places; what reaches
//! the local Opik/Langfuse collector must validate against the published specs and carry what
//! the fixture's `case.json` expects.
//!
//! `case.json`: `path`, `authority`, `status`, `content_type`, optional `content_encoding` and
//! `response_file`, and `expect`, whose keys are checked when present (`null` = must be absent).

use llm_tracer_host::collector::{Collector, CollectorOptions};
use llm_tracer_host::{Chunking, Exchange, Host, HostOptions, Personality, WasmModule};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn module() -> &'static WasmModule {
    static MODULE: OnceLock<WasmModule> = OnceLock::new();
    MODULE.get_or_init(|| WasmModule::default_build().expect("llm_tracer.wasm (run `make test`)"))
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs = Vec::new();
    for family in std::fs::read_dir(&root).expect("fixtures").flatten() {
        for case in std::fs::read_dir(family.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if case.path().join("case.json").is_file() {
                dirs.push(case.path());
            }
        }
    }
    dirs.sort();
    dirs
}

fn read(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

fn response_file(dir: &Path, case: &Value) -> String {
    if let Some(f) = case["response_file"].as_str() {
        return f.to_string();
    }
    ["response.json", "response.sse", "response.ndjson"]
        .into_iter()
        .find(|f| dir.join(f).is_file())
        .unwrap_or_else(|| panic!("{}: no response file", dir.display()))
        .to_string()
}

/// The OTLP span attribute `key`'s value (`Null` when absent).
fn attr(span: &Value, key: &str) -> Value {
    span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
        .map(|kv| kv["value"].clone())
        .unwrap_or(Value::Null)
}

fn int_attr(span: &Value, key: &str) -> Value {
    match attr(span, key)["intValue"].as_str() {
        Some(s) => s.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

fn str_attr(span: &Value, key: &str) -> Value {
    attr(span, key)["stringValue"].clone()
}

fn json_attr(span: &Value, key: &str) -> Value {
    str_attr(span, key)
        .as_str()
        .map(|s| serde_json::from_str(s).expect("JSON attribute"))
        .unwrap_or(Value::Null)
}

/// Concatenated parts of `kind` (`text`, `reasoning`) of output message 0.
fn output_parts(span: &Value, kind: &str) -> Option<String> {
    let out = json_attr(span, "gen_ai.output.messages");
    let parts = out[0]["parts"].as_array()?;
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| p["type"] == kind)
        .filter_map(|p| p["content"].as_str())
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

fn tool_call_names(span: &Value) -> Value {
    let out = json_attr(span, "gen_ai.output.messages");
    let names: Vec<Value> = out[0]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["type"] == "tool_call")
        .map(|p| p["name"].clone())
        .collect();
    Value::Array(names)
}

/// What the exported span says for an `expect` key.
fn observed(key: &str, opik_span: &Value, otlp: &Value) -> Value {
    match key {
        "provider" => str_attr(otlp, "gen_ai.provider.name"),
        "operation" => str_attr(otlp, "gen_ai.operation.name"),
        "request_model" => str_attr(otlp, "gen_ai.request.model"),
        "response_model" => str_attr(otlp, "gen_ai.response.model"),
        "output_text" => output_parts(otlp, "text").map_or(Value::Null, Value::from),
        "reasoning_text_prefix" => output_parts(otlp, "reasoning").map_or(Value::Null, Value::from),
        "tool_calls" => tool_call_names(otlp),
        "input_tokens" => int_attr(otlp, "gen_ai.usage.input_tokens"),
        "output_tokens" => int_attr(otlp, "gen_ai.usage.output_tokens"),
        "cached_input_tokens" => int_attr(otlp, "gen_ai.usage.cache_read.input_tokens"),
        "cache_creation_tokens" => int_attr(otlp, "gen_ai.usage.cache_creation.input_tokens"),
        "reasoning_tokens" => int_attr(otlp, "gen_ai.usage.reasoning.output_tokens"),
        "total_tokens" => opik_span["usage"]["total_tokens"].clone(),
        "finish_reason" => attr(otlp, "gen_ai.response.finish_reasons")["arrayValue"]["values"][0]
            ["stringValue"]
            .clone(),
        "error_kind" => str_attr(otlp, "error.type"),
        "embedding_count" => int_attr(otlp, "llm_tracer.embedding.count"),
        "first_message_role" => json_attr(otlp, "gen_ai.input.messages")[0]["role"].clone(),
        "message_count" => json_attr(otlp, "gen_ai.input.messages")
            .as_array()
            .map_or(Value::Null, |a| Value::from(a.len())),
        "streamed" => attr(otlp, "gen_ai.request.stream")["boolValue"].clone(),
        other => panic!("unknown expect key {other}"),
    }
}

fn matches(key: &str, expected: &Value, got: &Value) -> bool {
    match (key, expected) {
        ("reasoning_text_prefix", Value::String(prefix)) => {
            got.as_str().is_some_and(|g| g.starts_with(prefix.as_str()))
        }
        _ => expected == got,
    }
}

fn run_case(dir: &Path, p: Personality, seed: u64) -> Vec<String> {
    let case: Value = serde_json::from_slice(&read(dir, "case.json")).expect("case.json");
    let collector = Collector::start(CollectorOptions {
        langfuse_keys: Some(("pk-lf-p".into(), "sk-lf-p".into())),
        ..CollectorOptions::validating().expect("specs")
    });
    let addr = collector.addr();
    let upstream = |name: &str| match p {
        Personality::Kong => addr.to_string(),
        Personality::Envoy => name.to_string(),
    };
    let config = format!(
        r#"{{"opik":{{"endpoint":"http://{addr}/api","upstream":"{}"}},
            "langfuse":{{"endpoint":"http://{addr}","upstream":"{}","public_key":"pk-lf-p","secret_key":"sk-lf-p"}}}}"#,
        upstream("opik"),
        upstream("langfuse")
    );
    let mut opts = HostOptions::new(p, config)
        .with_cluster("opik", addr)
        .with_cluster("langfuse", addr);
    opts.client_body_buffer_size = Some(1 << 20);
    let mut host = Host::new(module(), opts).expect("host");

    let path = case["path"].as_str().expect("path");
    let mut ex = Exchange::new("POST", path)
        .request_header("content-type", "application/json")
        .request_body(read(dir, "request.json"), Chunking::Random { seed });
    if let Some(authority) = case["authority"].as_str() {
        for (k, v) in &mut ex.request_headers {
            if k == ":authority" {
                *v = authority.to_string();
            }
        }
    }
    let status = case["status"].as_u64().unwrap_or(200) as u16;
    let content_type = case["content_type"].as_str().unwrap_or("application/json");
    let mut headers = vec![("content-type", content_type)];
    if let Some(enc) = case["content_encoding"].as_str() {
        headers.push(("content-encoding", enc));
    }
    let ex = ex.response(status, &headers).response_body(
        read(dir, &response_file(dir, &case)),
        Chunking::Random { seed: seed + 1 },
    );
    let out = host.exchange(&ex);
    let label = format!("{} as {p:?}", dir.display());
    let mut problems = Vec::new();
    if out.trap.is_some() || out.paused_response || out.client_body != ex.response_body {
        problems.push(format!("{label}: traffic altered (trap {:?})", out.trap));
    }
    host.settle(20);
    for r in collector.received() {
        if !r.violations.is_empty() || !r.accepted() {
            problems.push(format!(
                "{label}: {} answered {}: {:?}",
                r.path, r.status_answered, r.violations
            ));
        }
    }
    let (spans, otlp) = (collector.opik_spans(), collector.otlp_spans());
    if spans.len() != 1 || otlp.len() != 1 {
        problems.push(format!(
            "{label}: {} Opik spans, {} OTLP spans",
            spans.len(),
            otlp.len()
        ));
        return problems;
    }
    for (key, expected) in case["expect"].as_object().into_iter().flatten() {
        let got = observed(key, &spans[0], &otlp[0]);
        if !matches(key, expected, &got) {
            problems.push(format!("{label}: {key}: expected {expected}, got {got}"));
        }
    }
    problems
}

#[test]
fn every_fixture_through_the_real_filter_in_both_gateways() {
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 6, "fixtures with case.json: {}", dirs.len());
    let mut problems = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        for p in [Personality::Kong, Personality::Envoy] {
            problems.extend(run_case(dir, p, i as u64 * 7 + 3));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_protocol_family_has_fixtures() {
    let dirs = fixture_dirs();
    for family in [
        "openai_chat",
        "openai_completions",
        "openai_embeddings",
        "openai_responses",
        "anthropic_messages",
        "gemini",
        "ollama_chat",
        "ollama_generate",
        "vllm_generate",
    ] {
        let n = dirs
            .iter()
            .filter(|d| {
                d.parent()
                    .and_then(|p| p.file_name())
                    .is_some_and(|f| f == family)
            })
            .count();
        assert!(n >= 1, "no fixture with case.json for {family}");
    }
}
