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
        r#"{"user_header": "x user"}"#,
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
