//! `llm-tracer-host replay`: the real binary replays the example HAR of `examples/traffic/`
//! through the real filter and prints one JSON line per entry.
//!
//! Needs the built filter (`cargo build --release --target wasm32-wasip1 -p llm-tracer`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_llm-tracer-host");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn example_har() -> PathBuf {
    repo("examples/traffic/chat-completions.har")
}

fn example_config() -> PathBuf {
    repo("examples/traffic/replay-config.json")
}

fn replay(personality: &str, extra: &[&str], har: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("replay")
        .arg("--config")
        .arg(example_config())
        .args(["--personality", personality])
        .args(extra)
        .arg(har);
    cmd.output().expect("the binary runs")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// A temporary file that is removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("llm-tracer-replay-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn example_har_replays_unchanged_with_exports_to_both_sinks() {
    for personality in ["kong", "envoy"] {
        for chunk in [&[][..], &["--chunk", "5"], &["--chunk", "random"]] {
            let out = replay(personality, chunk, &example_har());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{personality} {chunk:?}: {stderr}");
            let entries = lines(&out);
            assert_eq!(entries.len(), 2, "{personality}");
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(e["entry"], i);
                assert_eq!(e["method"], "POST");
                assert_eq!(e["url"], "https://api.openai.com/v1/chat/completions");
                assert_eq!(e["status"], 200);
                assert_eq!(e["client_bytes_identical"], true, "{personality} {chunk:?}");
                assert_eq!(e["upstream_bytes_identical"], true);
                assert_eq!(e["trap"], Value::Null);
                let callouts = e["callouts"].as_array().expect("callouts");
                let mut seen: Vec<(String, String, i64)> = callouts
                    .iter()
                    .map(|c| {
                        (
                            c["sink"].as_str().unwrap_or_default().to_string(),
                            c["path"].as_str().unwrap_or_default().to_string(),
                            c["status"].as_i64().unwrap_or(0),
                        )
                    })
                    .collect();
                seen.sort();
                assert_eq!(
                    seen,
                    vec![
                        ("langfuse".into(), "/api/public/otel/v1/traces".into(), 200),
                        (
                            "opik".into(),
                            "/opik/api/v1/private/spans/batch".into(),
                            204
                        ),
                        (
                            "opik".into(),
                            "/opik/api/v1/private/traces/batch".into(),
                            204
                        ),
                    ],
                    "{personality}"
                );
                for c in callouts {
                    assert_eq!(c["method"], "POST");
                    assert_eq!(c["headers"]["authorization"], "***");
                    assert!(c["body"].is_object(), "bodies are parsed JSON");
                    if c["sink"] == "opik" {
                        assert_eq!(c["headers"]["comet-workspace"], "***");
                    }
                }
            }
            let text = String::from_utf8_lossy(&out.stdout);
            for secret in ["REPLACE-WITH-OPIK-API-KEY", "my-workspace", "sk-lf-REPLACE"] {
                assert!(!text.contains(secret), "{secret} printed");
            }

            let spans = |e: &Value| -> Value {
                e["callouts"]
                    .as_array()
                    .and_then(|cs| {
                        cs.iter().find(|c| {
                            c["path"]
                                .as_str()
                                .is_some_and(|p| p.ends_with("spans/batch"))
                        })
                    })
                    .map(|c| c["body"]["spans"][0].clone())
                    .unwrap_or(Value::Null)
            };
            let tool = spans(&entries[0]);
            assert_eq!(
                tool["output"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
                "get_current_weather"
            );
            assert_eq!(tool["usage"]["total_tokens"], 113);
            assert_eq!(tool["project_name"], "har-replay");
            assert_eq!(tool["start_time"], "2024-11-27T13:20:00.000000Z");
            let streamed = spans(&entries[1]);
            assert_eq!(
                streamed["output"]["choices"][0]["message"]["content"],
                "It's currently 18°C and partly cloudy in Paris."
            );
            assert_eq!(streamed["usage"]["prompt_tokens"], 131);
            assert_eq!(streamed["metadata"]["stream"], true);
            assert_eq!(streamed["metadata"]["session_id"], "trip-planning-7");
        }
    }
}

#[test]
fn replay_is_reproducible() {
    let a = replay("kong", &["--chunk", "random"], &example_har());
    let b = replay("kong", &["--chunk", "random"], &example_har());
    assert!(a.status.success() && b.status.success());
    assert_eq!(a.stdout, b.stdout, "same HAR, same output");
}

#[test]
fn tolerant_har_parsing() {
    // Minimal fields, a base64 response body, HTTP/2 pseudo-headers and no response at all.
    let har = TempFile::new(
        "minimal.har",
        r#"{"log":{"entries":[
          {"request":{"method":"POST","url":"http://llm.local:8080/v1/chat/completions?api-version=1",
            "headers":[{"name":":authority","value":"llm.local"},{"name":"content-type","value":"application/json"}],
            "postData":{"text":"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"}},
           "response":{"status":200,"headers":[{"name":"content-type","value":"application/json"}],
            "content":{"encoding":"base64","text":"eyJpZCI6ImMiLCJvYmplY3QiOiJjaGF0LmNvbXBsZXRpb24iLCJtb2RlbCI6Im0iLCJjaG9pY2VzIjpbXX0="}}},
          {"request":{"url":"http://llm.local/v1/models"}}
        ]}}"#,
    );
    let out = replay("envoy", &[], &har.0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = lines(&out);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["client_bytes_identical"], true);
    assert_eq!(entries[0]["callouts"].as_array().map(Vec::len), Some(3));
    assert_eq!(entries[1]["method"], Value::String(String::new()));
    assert_eq!(entries[1]["callouts"].as_array().map(Vec::len), Some(0));
}

#[test]
fn a_trap_makes_the_replay_fail() {
    let wat = TempFile::new(
        "trap.wat",
        r#"(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) unreachable))"#,
    );
    for personality in ["kong", "envoy"] {
        let out = Command::new(BIN)
            .env("LLM_TRACER_WASM", &wat.0)
            .arg("replay")
            .arg("--config")
            .arg(example_config())
            .args(["--personality", personality])
            .arg(example_har())
            .output()
            .expect("the binary runs");
        assert_eq!(out.status.code(), Some(1), "{personality}");
        let entries = lines(&out);
        assert!(
            entries[0]["trap"]
                .as_str()
                .is_some_and(|t| t.contains("proxy_on_response_body")),
            "{personality}: {}",
            entries[0]
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN)
        .args(["replay", "--personality", "kong"])
        .arg(example_har())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));

    let out = Command::new(BIN)
        .args(["replay", "--personality", "nginx"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(BIN).arg("help").output().expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("USAGE"));
}
