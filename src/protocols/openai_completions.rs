//! OpenAI Completions.
//! (Being written.)

use super::{ChunkEffect, ProtocolError, StreamFold};
use crate::record::TraceRecord;
use crate::sse::Event;

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_request(_body: &[u8], _record: &mut TraceRecord) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_response(_body: &[u8], _record: &mut TraceRecord) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Stream fold.
pub struct CompletionStream;

impl CompletionStream {
    /// A fold with a byte budget.
    pub fn new(_budget: usize) -> Self {
        CompletionStream
    }
}

impl StreamFold for CompletionStream {
    fn push(&mut self, _event: &Event) -> ChunkEffect {
        ChunkEffect::Quiet
    }

    fn finish(self: Box<Self>, _record: &mut TraceRecord) {}
}
