//! Ollama.
//! (Being written.)

use super::{ChunkEffect, ProtocolError, StreamFold};
use crate::record::{ErrorInfo, TraceRecord};
use crate::sse::Event;

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_chat_request(_body: &[u8], _record: &mut TraceRecord) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_generate_request(
    _body: &[u8],
    _record: &mut TraceRecord,
) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_chat_response(_body: &[u8], _record: &mut TraceRecord) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Parses a body into `record`.
///
/// # Errors
/// Not implemented yet.
pub fn parse_generate_response(
    _body: &[u8],
    _record: &mut TraceRecord,
) -> Result<(), ProtocolError> {
    Err(ProtocolError::Json { line: 0, column: 0 })
}

/// Provider error from an error body.
pub fn parse_error(_body: &[u8]) -> Option<ErrorInfo> {
    None
}

/// Stream fold.
pub struct OllamaStream;

impl OllamaStream {
    /// A fold with a byte budget.
    pub fn new(_budget: usize) -> Self {
        OllamaStream
    }
}

impl StreamFold for OllamaStream {
    fn push(&mut self, _event: &Event) -> ChunkEffect {
        ChunkEffect::Quiet
    }

    fn finish(self: Box<Self>, _record: &mut TraceRecord) {}
}
