//! The demo (`llm-tracer-host demo`) runs to success under both personalities, quickly.
//!
//! Needs the built filter (`cargo build --release --target wasm32-wasip1 -p llm-tracer`).

use std::time::{Duration, Instant};

use llm_tracer_host::demo::{self, DemoOptions};
use llm_tracer_host::Personality;

#[test]
fn demo_traces_every_request_at_both_backends() {
    for personality in [Personality::Kong, Personality::Envoy] {
        let started = Instant::now();
        let mut out = Vec::new();
        let report = demo::run(DemoOptions { personality }, &mut out).expect("demo runs");
        let text = String::from_utf8_lossy(&out);
        assert!(report.success, "{personality}:\n{text}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{personality}: took {:?}",
            started.elapsed()
        );
        assert!(
            report.validation_unavailable.is_none(),
            "specs are in the repo"
        );

        let statuses: Vec<Option<u16>> = report.rows.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses[..6],
            [
                Some(200),
                Some(200),
                Some(200),
                Some(200),
                Some(200),
                Some(500)
            ]
        );
        // One more row per API family, replayed from the repository's fixtures: all succeed.
        assert_eq!(statuses.len(), 18);
        assert!(
            statuses[6..].iter().all(|s| *s == Some(200)),
            "{statuses:?}"
        );
        for row in &report.rows {
            assert!(row.opik && row.langfuse, "{personality}: {row:?}");
            assert_eq!(row.valid, Some(true), "{row:?}");
        }
        let by_kind = |kind: &str| {
            report
                .rows
                .iter()
                .find(|r| r.kind == kind)
                .unwrap_or_else(|| panic!("row {kind}"))
        };
        let streamed = by_kind("chat, streamed");
        assert!(streamed.ttft_ms.is_some() && streamed.output_tokens.is_some());
        assert_eq!(streamed.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert!(by_kind("chat").ttft_ms.is_none());
        assert!(by_kind("tool call, streamed").input_tokens.is_some());
        assert!(by_kind("stream, no usage").output_tokens.is_none());
        assert!(by_kind("anthropic, streamed").ttft_ms.is_some());
        assert!(by_kind("embeddings").input_tokens.is_some());
        assert!(by_kind("chat stream, brotli").output_tokens.is_some());

        assert!(text.contains("OK: every request was traced"), "{text}");
        assert!(text.contains("project \"demo\""), "{text}");
        assert!(text.contains(match personality {
            Personality::Kong => "pw:llm_tracer:<name>",
            Personality::Envoy => "wasmcustom.<name>",
        }));
    }
}
