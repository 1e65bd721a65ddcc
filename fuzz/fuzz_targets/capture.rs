//! libFuzzer entry point of the `capture` target; the harness is `llm_tracer_fuzz::capture`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_tracer_fuzz::capture(data));
