//! LLM API protocols the filter understands. Each protocol module turns request and response
//! bytes into the provider-neutral [`crate::record::TraceRecord`]; none calls the host.

pub mod openai_chat;

use std::fmt;

/// A body that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not JSON of the expected shape; carries the parser's position, never body bytes.
    Json {
        /// Line of the first problem.
        line: usize,
        /// Column of the first problem.
        column: usize,
    },
}

impl ProtocolError {
    pub(crate) fn json(e: serde_json::Error) -> Self {
        ProtocolError::Json {
            line: e.line(),
            column: e.column(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Json { line, column } => {
                write!(f, "unexpected JSON at line {line} column {column}")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
