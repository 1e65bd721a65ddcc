//! libFuzzer entry point of the `protocols` target; the harness is `llm_tracer_fuzz::protocols`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_tracer_fuzz::protocols(data));
