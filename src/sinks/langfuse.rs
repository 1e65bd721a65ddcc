//! Langfuse sink over OTLP/HTTP JSON: `POST {endpoint}/api/public/otel/v1/traces` with
//! `Authorization: Basic base64(public_key:secret_key)` and `x-langfuse-ingestion-version: 4`.
//! Spans are the GenAI ones of [`super::otlp`] plus the `langfuse.*` attributes.

use super::otlp::{encode_otlp, Flavor};
use super::{api_path, OutboundRequest, Sink};
use crate::config::{Endpoint, LangfuseConfig};
use crate::record::TraceRecord;
use base64::Engine as _;
use std::rc::Rc;

/// The Langfuse sink.
#[derive(Debug)]
pub struct LangfuseSink {
    config: LangfuseConfig,
    headers: Vec<(String, String)>,
}

impl LangfuseSink {
    /// A sink for `config`; the Basic credentials are encoded once, here.
    pub fn new(config: LangfuseConfig) -> Self {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", config.public_key, config.secret_key));
        let headers = vec![
            ("content-type".into(), "application/json".to_string()),
            ("authorization".into(), format!("Basic {credentials}")),
            ("x-langfuse-ingestion-version".into(), "4".to_string()),
        ];
        LangfuseSink { config, headers }
    }
}

impl Sink for LangfuseSink {
    fn name(&self) -> &'static str {
        "langfuse"
    }

    fn endpoint(&self) -> &Endpoint {
        &self.config.endpoint
    }

    fn encode(&self, records: &[Rc<TraceRecord>]) -> Vec<OutboundRequest> {
        let flavor = Flavor {
            langfuse: true,
            content: true,
            resource: &[],
        };
        vec![OutboundRequest {
            path: api_path(&self.config.endpoint, "/api/public/otel/v1/traces"),
            headers: self.headers.clone(),
            body: encode_otlp(records, &flavor),
        }]
    }
}
