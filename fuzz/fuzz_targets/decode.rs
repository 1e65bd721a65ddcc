//! libFuzzer entry point of the `decode` target; the harness is `llm_tracer_fuzz::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_tracer_fuzz::decode(data));
