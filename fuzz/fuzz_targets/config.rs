//! libFuzzer entry point of the `config` target; the harness is `llm_tracer_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| llm_tracer_fuzz::config(data));
