//! libFuzzer entry point of the `sse` target; the harness is `llm_tracer_fuzz::sse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_tracer_fuzz::sse(data));
