//! Every filter configuration shipped in `kong/` and `examples/` parses with the filter's own
//! parser and validates against `kong/llm_tracer.meta.json`; configurations the parser rejects
//! are rejected by the schema too, so Kong's Admin API and the filter agree.

use llm_tracer::config::Config;
use serde_json::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).expect(path);
    serde_norway::from_str(&text).expect(path)
}

fn schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(root().join("kong/llm_tracer.meta.json")).expect("meta.json");
    let meta: Value = serde_json::from_str(&text).expect("meta.json is JSON");
    jsonschema::draft4::new(&meta["config_schema"]).expect("config_schema is draft 4")
}

/// Every `config` value under `filters` or `plugins` of a Kong declarative file.
fn kong_configs(doc: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for service in doc["services"].as_array().into_iter().flatten() {
        for route in service["routes"].as_array().into_iter().flatten() {
            for chain in route["filter_chains"].as_array().into_iter().flatten() {
                for filter in chain["filters"].as_array().into_iter().flatten() {
                    out.push(filter["config"].clone());
                }
            }
            for plugin in route["plugins"].as_array().into_iter().flatten() {
                out.push(plugin["config"].clone());
            }
        }
    }
    out
}

#[test]
fn kong_examples_parse_and_validate() {
    let schema = schema();
    for file in [
        "kong/kong.yml",
        "kong/kong-3.9-plugin.yml",
        "kong/kong-3.4-string-config.yml",
    ] {
        let configs = kong_configs(&yaml(file));
        assert!(!configs.is_empty(), "{file} has a filter config");
        for config in configs {
            let object = match &config {
                // Kong passes string configs verbatim; the filter parses them as JSON.
                Value::String(s) => serde_json::from_str(s).expect("string config is JSON"),
                other => other.clone(),
            };
            let errors: Vec<String> = schema.iter_errors(&object).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
            // Kong's cjson encoding of an object is what reaches on_configure.
            let bytes = serde_json::to_vec(&config).expect("encode");
            let parsed = Config::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(parsed.has_sink(), "{file}");
        }
    }
}

#[test]
fn envoy_example_parses() {
    let doc = yaml("examples/envoy/envoy.yaml");
    let filters = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"];
    let wasm = filters
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "envoy.filters.http.wasm"))
        .expect("wasm filter");
    let value = wasm["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .expect("StringValue configuration");
    let config = Config::parse(value.as_bytes()).expect("valid");
    assert_eq!(config.opik.expect("opik").endpoint.upstream, "opik");
    assert_eq!(wasm["typed_config"]["config"]["fail_open"], true);
}

#[test]
fn every_option_is_accepted_by_schema_and_parser() {
    let schema = schema();
    let corpus = [
        r#"{"context": {"headers": {"user": ["X-Consumer-Username"], "session": ["x-conversation"], "tags": ["x-tags"]},
            "metadata_headers": ["x-team"], "from_body": false, "traceparent": true, "gateway_metadata": false,
            "defaults": {"user": "svc", "project_name": "p", "trace_name": "t", "release": "1.0", "environment": "prod",
                         "tags": ["gw"], "metadata": {"region": "eu", "shard": 3}},
            "api_keys": {"0123456789abcdef": {"project_name": "team-a", "tags": ["a"]}}},
          "capture": "metadata", "omit_header": "x-no-trace", "credential_headers": ["x-internal-token"],
          "sampling": {"rate": 0.25, "keep_errors": true}, "max_field_bytes": 4096, "max_record_bytes": 1000000,
          "inject_stream_usage": true, "strip_request_metadata": true, "log_level": "warn", "metrics_max_models": 50,
          "pricing": {"house-model": {"input": 0.5, "output": 1.5, "cached_input": 0.05}},
          "redact": {"builtin": ["email", "card_number"], "literals": ["Project Falcon"], "patterns": ["EMP-[0-9]{6}"],
                     "replacement": "[{kind}]"},
          "routes": [{"name": "chat", "path_prefix": "/v1/", "capture": "full", "inject_stream_usage": false,
                      "strip_request_metadata": false, "context": {"tags": ["public"]}}],
          "opik": {"endpoint": "http://opik:5173/api"}}"#,
        r#"{"http_endpoint": "https://www.comet.com/opik/", "opik_api_key": "k", "opik_workspace": "w",
            "timeout": 10000, "keepalive": 60000, "ai_proxy_name": "proxy"}"#,
        r#"{"langfuse_enabled": true, "langfuse_endpoint": "https://cloud.langfuse.com/api/traces",
            "langfuse_public_key": "pk-lf-1", "langfuse_secret_key": "sk-lf-1", "langfuse_timeout": 5000,
            "environment": "staging", "log_level": "debug", "enabled": true}"#,
        r#"{"langfuse_enabled": false, "langfuse_public_key": "pk", "http_endpoint": "http://opik:5173/api"}"#,
        r#"{"otlp": {"endpoint": "http://otel-collector:4318", "upstream": "otel", "timeout_ms": 3000,
            "headers": {"x-honeycomb-team": "k"}, "resource_attributes": {"deployment.environment.name": "prod"},
            "capture_content": true}}"#,
    ];
    for text in corpus {
        let value: Value = serde_json::from_str(text).expect("corpus is JSON");
        let errors: Vec<String> = schema.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "schema rejected {text}: {errors:?}");
        let config = Config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(config.has_sink(), "{text}");
    }
}

#[test]
fn invalid_configs_are_rejected_by_schema_and_parser() {
    let schema = schema();
    let corpus = [
        r#"{"flush_ms": 1000}"#,
        r#"{"opik": {}}"#,
        r#"{"opik": {"endpoint": "ftp://x"}}"#,
        r#"{"opik": {"endpoint": "http://x", "api_key": "k"}}"#,
        r#"{"opik": {"endpoint": "http://x", "timeout_ms": "5"}}"#,
        r#"{"langfuse": {"endpoint": "http://x", "public_key": "pk"}}"#,
        r#"{"langfuse": {"endpoint": "http://x", "public_key": " ", "secret_key": "s"}}"#,
        r#"{"routes": [{}]}"#,
        r#"{"routes": [{"path_suffix": "/x", "protocol": "y"}]}"#,
        r#"{"routes": [{"path_suffix": "/x", "color": "y"}]}"#,
        r#"{"routes": [{"host": "x", "provider": " "}]}"#,
        r#"{"max_body_bytes": 10}"#,
        r#"{"batch_max_records": 1001}"#,
        r#"{"retry": {"max_attempts": 0}}"#,
        r#"{"metrics": "yes"}"#,
        r#"{"omit_header": "x user"}"#,
        r#"{"user_header": "x-user"}"#,
        r#"{"capture": "everything"}"#,
        r#"{"routes": [{"host": "x", "capture": "none"}]}"#,
        r#"{"routes": [{"host": "x", "name": " "}]}"#,
        r#"{"routes": [{"host": "x", "context": {"tags": "a"}}]}"#,
        r#"{"context": {"headers": {"users": ["x"]}}}"#,
        r#"{"context": {"headers": {"user": ["x y"]}}}"#,
        r#"{"context": {"metadata_headers": ["authorization"]}}"#,
        r#"{"context": {"metadata_headers": ["X-Api-Key"]}}"#,
        r#"{"context": {"api_keys": {"sk-not-a-hash": {}}}}"#,
        r#"{"context": {"api_keys": {"0123456789abcdef": {"colour": "red"}}}}"#,
        r#"{"context": {"defaults": {"metadata": []}}}"#,
        r#"{"sampling": {"rate": 2}}"#,
        r#"{"sampling": {"keep": true}}"#,
        r#"{"max_field_bytes": 10}"#,
        r#"{"max_record_bytes": 4000000}"#,
        r#"{"inject_stream_usage": "yes"}"#,
        r#"{"log_level": "loud"}"#,
        r#"{"log_level": "DEBUG"}"#,
        r#"{"metrics_max_models": 0}"#,
        r#"{"pricing": {"m": {"input": 1}}}"#,
        r#"{"pricing": {"m": {"input": -1, "output": 1}}}"#,
        r#"{"pricing": {"m": {"input": 1, "output": 1, "per": "token"}}}"#,
        r#"{"redact": {"builtin": ["ssn"]}}"#,
        r#"{"redact": {"literals": [" "]}}"#,
        r#"{"redact": {"mode": "strict"}}"#,
        r#"{"http_endpoint": "http://a/", "opik": {"endpoint": "http://b/api"}}"#,
        r#"{"http_endpoint": "ftp://a/"}"#,
        r#"{"opik_api_key": "k"}"#,
        r#"{"timeout": "10s"}"#,
        r#"{"langfuse_enabled": "yes"}"#,
        r#"{"langfuse_public_key": "pk"}"#,
        r#"{"langfuse_enabled": true}"#,
        r#"{"langfuse_public_key": "pk", "langfuse_secret_key": "sk", "langfuse": {"endpoint": "http://x", "public_key": "p", "secret_key": "s"}}"#,
        r#"{"enabled": "no"}"#,
        r#"{"otlp": {}}"#,
        r#"{"otlp": {"endpoint": "http://x", "headers": {"bad header": "v"}}}"#,
        r#"{"otlp": {"endpoint": "http://x", "headers": {"x-k": 1}}}"#,
        r#"{"otlp": {"endpoint": "http://x", "resource_attributes": {"k": true}}}"#,
        r#"{"otlp": {"endpoint": "http://x", "capture_content": "yes"}}"#,
    ];
    for text in corpus {
        let value: Value = serde_json::from_str(text).expect("corpus is JSON");
        assert!(!schema.is_valid(&value), "schema accepted {text}");
        assert!(
            Config::parse(text.as_bytes()).is_err(),
            "parser accepted {text}"
        );
    }
}
