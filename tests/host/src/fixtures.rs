//! Recorded exchanges of the repository (`tests/fixtures/<protocol>/<case>/`), loaded for the
//! mock upstream and the demo: the mock answers a request carrying [`FIXTURE_HEADER`] with the
//! fixture's recorded response, streamed event by event, whatever the provider's API.
//!
//! A fixture directory holds `request.json`, a response file (`response.json`, `response.sse`,
//! `response.ndjson`, or the one `case.json` names in `response_file`) and `case.json` with
//! `path`, `authority`, `status`, `content_type` and optional `content_encoding`.

use crate::http::ResponseWriter;
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Request header naming the fixture (`<protocol>/<case>`) the mock upstream should replay.
pub const FIXTURE_HEADER: &str = "x-mock-fixture";

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    /// `<protocol>/<case>`.
    pub id: String,
    /// Request path.
    pub path: String,
    /// Host the request was addressed to.
    pub authority: String,
    /// Response status.
    pub status: u16,
    /// Response content type.
    pub content_type: String,
    /// Response content encoding, when compressed.
    pub content_encoding: Option<String>,
    /// Request body.
    pub request: Vec<u8>,
    /// Response body as sent on the wire.
    pub response: Vec<u8>,
}

/// Why a fixture could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixtureError {
    /// The id is not `<protocol>/<case>` of plain names.
    BadId,
    /// A file is missing or unreadable.
    Read {
        /// The file.
        path: PathBuf,
    },
    /// `case.json` is not a JSON object with a `path`.
    BadCase {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixtureError::BadId => write!(f, "a fixture id is <protocol>/<case>"),
            FixtureError::Read { path } => write!(f, "cannot read {}", path.display()),
            FixtureError::BadCase { path } => write!(f, "{} lacks a path", path.display()),
        }
    }
}

impl std::error::Error for FixtureError {}

/// Where the fixtures live: `<repository>/tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

fn read(path: PathBuf) -> Result<Vec<u8>, FixtureError> {
    std::fs::read(&path).map_err(|_| FixtureError::Read { path })
}

impl Fixture {
    /// Loads fixture `id` (`<protocol>/<case>`).
    ///
    /// # Errors
    /// [`FixtureError`] for an id that is not two plain names, or missing or invalid files.
    pub fn load(id: &str) -> Result<Fixture, FixtureError> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let (family, case) = id.split_once('/').ok_or(FixtureError::BadId)?;
        if !plain(family) || !plain(case) {
            return Err(FixtureError::BadId);
        }
        let dir = fixtures_dir().join(family).join(case);
        let case_path = dir.join("case.json");
        let meta: Value = serde_json::from_slice(&read(case_path.clone())?).map_err(|_| {
            FixtureError::BadCase {
                path: case_path.clone(),
            }
        })?;
        let path = meta["path"]
            .as_str()
            .ok_or(FixtureError::BadCase { path: case_path })?
            .to_string();
        let response_file = match meta["response_file"].as_str() {
            Some(f) => f.to_string(),
            None => ["response.json", "response.sse", "response.ndjson"]
                .into_iter()
                .find(|f| dir.join(f).is_file())
                .unwrap_or("response.json")
                .to_string(),
        };
        Ok(Fixture {
            id: id.to_string(),
            path,
            authority: meta["authority"]
                .as_str()
                .unwrap_or("llm.local")
                .to_string(),
            status: meta["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200),
            content_type: meta["content_type"]
                .as_str()
                .unwrap_or("application/json")
                .to_string(),
            content_encoding: meta["content_encoding"].as_str().map(str::to_string),
            request: read(dir.join("request.json"))?,
            response: read(dir.join(response_file))?,
        })
    }

    /// The response cut where a provider would flush: after each SSE event (blank line) or
    /// NDJSON line for uncompressed streams, in one piece otherwise.
    pub fn response_chunks(&self) -> Vec<&[u8]> {
        let streamed = self.content_type.starts_with("text/event-stream")
            || self.content_type.starts_with("application/x-ndjson");
        if !streamed || self.content_encoding.is_some() {
            return vec![&self.response];
        }
        let separator: &[u8] = if self.content_type.starts_with("text/event-stream") {
            b"\n\n"
        } else {
            b"\n"
        };
        let mut chunks = Vec::new();
        let mut rest = self.response.as_slice();
        while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
            let (head, tail) = rest.split_at(at + separator.len());
            chunks.push(head);
            rest = tail;
        }
        if !rest.is_empty() {
            chunks.push(rest);
        }
        chunks
    }

    /// Sends the recorded response, pausing `delay` between stream chunks.
    pub fn serve(&self, w: &mut ResponseWriter, delay: Duration) {
        let mut headers = vec![("content-type", self.content_type.as_str())];
        if let Some(enc) = &self.content_encoding {
            headers.push(("content-encoding", enc.as_str()));
        }
        // The client may be gone; nothing to do about it in a mock.
        if w.head(self.status, &headers).is_err() {
            return;
        }
        for (i, chunk) in self.response_chunks().into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                std::thread::sleep(delay);
            }
            if w.chunk(chunk).is_err() {
                return;
            }
        }
        let _ = w.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_repository_fixture_and_cuts_streams_per_event() {
        let f = Fixture::load("openai_chat/stream_text").expect("fixture");
        assert_eq!(f.path, "/v1/chat/completions");
        assert!(
            f.content_type.starts_with("text/event-stream"),
            "{}",
            f.content_type
        );
        let chunks = f.response_chunks();
        assert_eq!(chunks.len(), 7, "six chunk events and [DONE]");
        assert_eq!(chunks.concat(), f.response);
    }

    #[test]
    fn bad_ids_are_refused() {
        for id in [
            "",
            "x",
            "../etc/passwd",
            "a/../b",
            "a/b/c",
            "openai_chat/nope",
        ] {
            assert!(Fixture::load(id).is_err(), "{id}");
        }
    }
}
