//! OpenAI Embeddings.
//! (Being written.)

use super::ProtocolError;
use crate::record::TraceRecord;

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
