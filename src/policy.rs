//! What leaves the filter: the last step between a finished exchange and the export queue.
//! Sampling decides whether the record goes at all; then it is priced, its content is dropped
//! as the capture mode and the caller's opt-out ask, secrets and personal data are redacted,
//! every field is capped and the whole record is fitted under the record cap. No host calls.

use crate::config::{CaptureMode, Config};
use crate::pricing::{self, PriceMemo};
use crate::record::TraceRecord;
use crate::trim::{self, Trim};

/// What a caller asked to leave out (`x-llm-tracer-omit: request,response` or `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Omit {
    /// Leave out the input (messages, tool definitions).
    pub request: bool,
    /// Leave out the output (choices).
    pub response: bool,
    /// Do not trace the exchange at all.
    pub all: bool,
}

impl Omit {
    /// Parses the opt-out header: a comma-separated list of `request`, `response` and `all`
    /// (case-insensitive); unknown words are ignored.
    pub fn parse(value: &str) -> Omit {
        let mut omit = Omit::default();
        for word in value.split(',').map(str::trim) {
            if word.eq_ignore_ascii_case("request") || word.eq_ignore_ascii_case("input") {
                omit.request = true;
            } else if word.eq_ignore_ascii_case("response") || word.eq_ignore_ascii_case("output") {
                omit.response = true;
            } else if word.eq_ignore_ascii_case("all") {
                omit.all = true;
            }
        }
        omit
    }
}

/// Applies the configuration to a finished record (pricing is [`price`]'s). Returns false when
/// the record is not to be exported (sampled out).
pub fn finalize(
    record: &mut TraceRecord,
    config: &Config,
    capture: CaptureMode,
    omit: Omit,
) -> bool {
    if !sampled(record, config) {
        return false;
    }
    let metadata_only = capture == CaptureMode::Metadata;
    if metadata_only || omit.request {
        drop_input(record);
    }
    if metadata_only || omit.response {
        drop_output(record);
    }
    // Redaction and the per-field cap in one walk: a field far over the cap is cut before it
    // is redacted (see `Trim::redact_record`).
    Trim {
        max_field_bytes: config.max_field_bytes,
        ..Trim::default()
    }
    .redact_record(&config.redact, record);
    trim::cap_record(record, config.max_record_bytes);
    true
}

/// Head sampling on the trace id, so that all exchanges of a distributed trace share the
/// decision; failed exchanges are kept when `keep_errors`.
fn sampled(record: &TraceRecord, config: &Config) -> bool {
    config.sampling.samples(&record.trace_id)
        || (config.sampling.keep_errors && record.error.is_some())
}

/// Prices the record from the model that answered (else the one asked for); `memo` keeps the
/// last model's price from one exchange to the next.
pub fn price(record: &mut TraceRecord, config: &Config, memo: &mut PriceMemo) {
    let model = record
        .response_model
        .as_deref()
        .or(record.request_model.as_deref());
    let Some(resolved) = model.and_then(|m| config.pricing.lookup_memo(m, memo)) else {
        return;
    };
    record.cost = pricing::cost(&record.usage, &resolved.price);
    record.priced_as = Some(resolved.name.to_string());
}

fn drop_input(record: &mut TraceRecord) {
    record.messages.clear();
    record.tools_json = None;
}

fn drop_output(record: &mut TraceRecord) {
    for choice in &mut record.choices {
        choice.message.parts.clear();
    }
}

#[cfg(test)]
mod tests;
