//! Filter configuration: one JSON object, as Kong passes a filter `config` (an object encoded
//! by cjson, or a string passed verbatim) and Envoy passes `configuration`.
//!
//! Parsing is strict: an unknown key or a value of the wrong type is an error that names the
//! key path (`opik.timeout_ms`), so an operator sees exactly what to fix. No host calls.

use crate::context::{ContextConfig, Defaults};
use crate::pricing::{self, PriceTable};
use crate::protocols::Protocol;
use crate::redact::Redactor;
use serde_json::{Map, Value};
use std::fmt;

/// Where a sink's callouts go: the URL the backend is reached at and the host-specific
/// upstream the gateway dispatches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` from the URL, sent as `:authority`.
    pub authority: String,
    /// Path prefix from the URL without a trailing slash (`/api`, or empty).
    pub base_path: String,
    /// What `dispatch_http_call` targets: an Envoy cluster name or Kong's `host:port`.
    pub upstream: String,
    /// Callout timeout in milliseconds.
    pub timeout_ms: u32,
}

/// Opik REST sink settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpikConfig {
    /// Where the Opik API lives (`http://opik:5173/api`, `https://www.comet.com/opik/api`).
    pub endpoint: Endpoint,
    /// Project traces are filed under; omitted means Opik's "Default Project".
    pub project_name: Option<String>,
    /// Opik Cloud / Comet API key, sent raw in `authorization`.
    pub api_key: Option<String>,
    /// Comet workspace, sent as `Comet-Workspace`.
    pub workspace: Option<String>,
}

/// Langfuse OTLP sink settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LangfuseConfig {
    /// Langfuse base URL (`https://cloud.langfuse.com`, `http://langfuse:3000`).
    pub endpoint: Endpoint,
    /// Project public key (`pk-lf-…`).
    pub public_key: String,
    /// Project secret key (`sk-lf-…`).
    pub secret_key: String,
}

/// What of an exchange is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMode {
    /// Everything: messages, output, tools, usage, timing, context.
    Full,
    /// No input or output content: model, usage, cost, timing, status and context only.
    Metadata,
    /// Not traced at all.
    Off,
}

impl CaptureMode {
    fn parse(obj: &Obj<'_>, key: &str) -> Result<Option<CaptureMode>, ConfigError> {
        Ok(match obj.string(key)?.as_deref() {
            None => None,
            Some("full") => Some(CaptureMode::Full),
            Some("metadata") => Some(CaptureMode::Metadata),
            Some("off") => Some(CaptureMode::Off),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    path: obj.path(key),
                    reason: "must be full, metadata or off",
                })
            }
        })
    }
}

/// Head sampling: which traced exchanges are exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Share of exchanges exported, 0 to 1, decided on the trace id so that every exchange of
    /// a distributed trace gets the same decision.
    pub rate: f64,
    /// Export failed exchanges whatever the rate.
    pub keep_errors: bool,
}

impl Sampling {
    /// Whether an exchange of `trace_id` is in the sample: the trace id's first 8 bytes, read
    /// as a fraction of 2^64, fall below the rate.
    pub fn samples(&self, trace_id: &[u8; 16]) -> bool {
        if self.rate >= 1.0 {
            return true;
        }
        let mut head = [0u8; 8];
        head.copy_from_slice(&trace_id[..8]);
        (u64::from_be_bytes(head) as f64) < self.rate * 18_446_744_073_709_551_616.0
    }
}

/// Log levels a configuration may set (`log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (the default).
    Info,
    /// Problems the filter worked around.
    Warn,
    /// Failures: dropped records, rejected exports, bad configuration.
    Error,
}

/// Generic OTLP/HTTP sink settings (any OpenTelemetry collector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`); `/v1/traces` is
    /// appended unless the URL ends with it.
    pub endpoint: Endpoint,
    /// Headers sent with every export (API keys of hosted backends: never logged).
    pub headers: Vec<(String, String)>,
    /// Resource attributes besides `service.name` (which they may override).
    pub resource_attributes: Vec<(String, String)>,
    /// Send input and output messages (off by default, as the semantic conventions advise).
    pub capture_content: bool,
}

/// Which requests are traced, and as what.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Name, used as the `route` metric label (`default` when unnamed).
    pub name: Option<String>,
    /// The request path (query excluded) must start with this.
    pub path_prefix: Option<String>,
    /// The request path (query excluded) must end with this.
    pub path_suffix: Option<String>,
    /// The request host (`:authority` without port) must equal this, or end with it when it
    /// starts with a dot (`.openai.azure.com`).
    pub host: Option<String>,
    /// The API spoken on the route; detected from the path when absent.
    pub protocol: Option<Protocol>,
    /// Provider name reported for matching traffic; detected from host and path when absent.
    pub provider: Option<String>,
    /// Context defaults for the route (between API-key and configuration defaults).
    pub context: Option<Defaults>,
    /// Capture mode for the route, overriding the configuration's.
    pub capture: Option<CaptureMode>,
    /// `inject_stream_usage` for the route, overriding the configuration's.
    pub inject_stream_usage: Option<bool>,
    /// `strip_request_metadata` for the route, overriding the configuration's.
    pub strip_request_metadata: Option<bool>,
}

impl Route {
    /// Whether a request (path with or without a query string, `:authority`) matches.
    pub fn matches(&self, path: &str, authority: &str) -> bool {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let host = host_of(authority);
        let host_ok = match self.host.as_deref() {
            None => true,
            Some(h) => match h.strip_prefix('.') {
                Some(domain) => host.ends_with(h) || host == domain,
                None => host == h,
            },
        };
        host_ok
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self
                .path_suffix
                .as_deref()
                .is_none_or(|s| path.ends_with(s))
    }
}

/// The host part of an `:authority` (`host`, `host:port`, `[v6]:port`), lowercased.
pub fn host_of(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.split(':').next().unwrap_or(authority),
    };
    host.to_ascii_lowercase()
}

/// What a traced request is: its protocol (unknown until the body's shape tells, for routes
/// whose path says nothing) and, when a route names one, its provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traced<'a> {
    /// The API spoken, when the route or the path tells.
    pub protocol: Option<Protocol>,
    /// Provider given by the route, if any.
    pub provider: Option<&'a str>,
    /// The matching route, when routes are configured.
    pub route: Option<&'a Route>,
}

/// Export retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts per batch, the first included.
    pub max_attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub initial_backoff_ms: u64,
    /// Upper bound of the delay.
    pub max_backoff_ms: u64,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Traced routes, first match wins; empty means every path whose API is recognised.
    pub routes: Vec<Route>,
    /// Bytes of each body kept for the trace.
    pub max_body_bytes: usize,
    /// Ask upstreams for uncompressed responses on traced requests.
    pub force_identity_encoding: bool,
    /// How often the root context flushes the queue.
    pub flush_interval_ms: u64,
    /// Records per export request.
    pub batch_max_records: usize,
    /// Encoded bytes per export request (a single larger record is still sent alone).
    pub batch_max_bytes: usize,
    /// Records waiting per sink before the oldest are dropped.
    pub queue_max_records: usize,
    /// Estimated bytes waiting per sink before the oldest are dropped.
    pub queue_max_bytes: usize,
    /// Retry policy for failed exports.
    pub retry: RetryConfig,
    /// Define and update proxy-wasm metrics (Kong ≤ 3.7 traps on them: set false there).
    pub metrics: bool,
    /// How each exchange's context (user, session, tags, …) is gathered.
    pub context: ContextConfig,
    /// What is recorded, unless a route says otherwise.
    pub capture: CaptureMode,
    /// Request header by which a caller opts out (`request`, `response`, `all`); removed
    /// before the request goes upstream.
    pub omit_header: String,
    /// Headers never recorded besides the built-in credential headers.
    pub credential_headers: Vec<String>,
    /// Head sampling.
    pub sampling: Sampling,
    /// Bytes kept per captured string (message part, tool arguments, …).
    pub max_field_bytes: usize,
    /// Estimated bytes per record; larger records lose their largest fields first.
    pub max_record_bytes: usize,
    /// Ask for usage in streamed OpenAI chat responses and hide the extra chunk from the client.
    pub inject_stream_usage: bool,
    /// Remove tracing-only `metadata` keys from request bodies before they go upstream.
    pub strip_request_metadata: bool,
    /// The filter's log level, when configured.
    pub log_level: Option<LogLevel>,
    /// Distinct model names per metric before further ones are counted as `other`.
    pub metrics_max_models: usize,
    /// Model prices: the built-in table with `pricing` entries over it.
    pub pricing: PriceTable,
    /// Redaction rules applied to every captured string.
    pub redact: Redactor,
    /// Opik sink, when configured.
    pub opik: Option<OpikConfig>,
    /// Langfuse sink, when configured.
    pub langfuse: Option<LangfuseConfig>,
    /// Generic OTLP sink, when configured.
    pub otlp: Option<OtlpConfig>,
}

/// A configuration problem, naming the key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The bytes are not JSON (or not UTF-8).
    NotJson {
        /// Byte-free description from the JSON parser (line and column).
        detail: String,
    },
    /// A key the filter does not know.
    UnknownKey {
        /// Path of the key.
        path: String,
    },
    /// A value of the wrong JSON type.
    WrongType {
        /// Path of the key.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A value of the right type that is not acceptable.
    Invalid {
        /// Path of the key.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// A key that must be present is missing.
    Missing {
        /// Path of the key.
        path: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotJson { detail } => {
                write!(f, "configuration is not valid JSON: {detail}")
            }
            ConfigError::UnknownKey { path } => write!(f, "unknown configuration key `{path}`"),
            ConfigError::WrongType { path, expected } => {
                write!(f, "configuration key `{path}` must be {expected}")
            }
            ConfigError::Invalid { path, reason } => {
                write!(f, "configuration key `{path}` is invalid: {reason}")
            }
            ConfigError::Missing { path } => write!(f, "configuration key `{path}` is required"),
        }
    }
}

impl std::error::Error for ConfigError {}

const ROOT_KEYS: &[&str] = &[
    "routes",
    "context",
    "capture",
    "omit_header",
    "credential_headers",
    "sampling",
    "max_field_bytes",
    "max_record_bytes",
    "inject_stream_usage",
    "strip_request_metadata",
    "log_level",
    "metrics_max_models",
    "pricing",
    "redact",
    "max_body_bytes",
    "force_identity_encoding",
    "flush_interval_ms",
    "batch_max_records",
    "batch_max_bytes",
    "queue_max_records",
    "queue_max_bytes",
    "retry",
    "metrics",
    "opik",
    "langfuse",
    "otlp",
];

impl Config {
    /// Parses configuration bytes. Empty input gives the defaults (which trace nothing out:
    /// no sink is configured). A JSON string holding a JSON object is accepted too, since Kong
    /// passes string configs verbatim.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first offending key.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotJson {
            detail: "not UTF-8".into(),
        })?;
        if text.trim().is_empty() {
            return Config::from_value(&Value::Object(Map::new()));
        }
        let value: Value =
            serde_json::from_slice(text.as_bytes()).map_err(|e| ConfigError::NotJson {
                detail: format!("line {} column {}", e.line(), e.column()),
            })?;
        match value {
            Value::String(inner) => Config::parse(inner.as_bytes()),
            Value::Object(map) => Config::from_value(&Value::Object(legacy::translate(map)?)),
            other => Config::from_value(&other),
        }
    }

    fn from_value(value: &Value) -> Result<Config, ConfigError> {
        let config = Config::from_object(value)?;
        let recorded = &config.context.metadata_headers;
        if let Some(at) = recorded
            .iter()
            .position(|h| config.credential_headers.contains(h))
        {
            return Err(ConfigError::Invalid {
                path: format!("context.metadata_headers[{at}]"),
                reason: "names a header listed in credential_headers",
            });
        }
        Ok(config)
    }

    fn from_object(value: &Value) -> Result<Config, ConfigError> {
        let obj = Obj::new(value, "")?;
        obj.only(ROOT_KEYS)?;
        let retry = match obj.get("retry") {
            Some(v) => {
                let r = Obj::new(v, "retry")?;
                r.only(&["max_attempts", "initial_backoff_ms", "max_backoff_ms"])?;
                RetryConfig {
                    max_attempts: r.uint("max_attempts", 5, 1, 100)? as u32,
                    initial_backoff_ms: r.uint("initial_backoff_ms", 1000, 1, 3_600_000)?,
                    max_backoff_ms: r.uint("max_backoff_ms", 30_000, 1, 3_600_000)?,
                }
            }
            None => RetryConfig {
                max_attempts: 5,
                initial_backoff_ms: 1000,
                max_backoff_ms: 30_000,
            },
        };
        Ok(Config {
            routes: parse_routes(obj.get("routes"))?,
            max_body_bytes: obj.uint("max_body_bytes", 1 << 20, 1024, 64 << 20)? as usize,
            force_identity_encoding: obj.boolean("force_identity_encoding", true)?,
            flush_interval_ms: obj.uint("flush_interval_ms", 1000, 10, 600_000)?,
            batch_max_records: obj.uint("batch_max_records", 100, 1, 1000)? as usize,
            batch_max_bytes: obj.uint("batch_max_bytes", 1 << 20, 1024, 4_000_000)? as usize,
            queue_max_records: obj.uint("queue_max_records", 1000, 1, 1_000_000)? as usize,
            queue_max_bytes: obj.uint("queue_max_bytes", 16 << 20, 1024, 1 << 30)? as usize,
            retry,
            metrics: obj.boolean("metrics", true)?,
            context: ContextConfig::parse(obj.get("context"))?,
            capture: CaptureMode::parse(&obj, "capture")?.unwrap_or(CaptureMode::Full),
            omit_header: obj.header_name("omit_header", "x-llm-tracer-omit")?,
            credential_headers: obj.header_names("credential_headers")?.unwrap_or_default(),
            sampling: parse_sampling(obj.get("sampling"))?,
            max_field_bytes: obj.uint("max_field_bytes", 32 << 10, 256, 16 << 20)? as usize,
            max_record_bytes: obj.uint("max_record_bytes", 3_000_000, 16 << 10, 3_500_000)?
                as usize,
            inject_stream_usage: obj.boolean("inject_stream_usage", false)?,
            strip_request_metadata: obj.boolean("strip_request_metadata", false)?,
            log_level: parse_log_level(&obj)?,
            metrics_max_models: obj.uint("metrics_max_models", 20, 1, 500)? as usize,
            pricing: PriceTable::new(
                obj.get("pricing")
                    .map(pricing::parse_overrides)
                    .transpose()?
                    .unwrap_or_default(),
            ),
            redact: Redactor::from_config(obj.get("redact"))?,
            opik: obj.get("opik").map(parse_opik).transpose()?,
            langfuse: obj.get("langfuse").map(parse_langfuse).transpose()?,
            otlp: obj.get("otlp").map(parse_otlp).transpose()?,
        })
    }

    /// Whether any sink is configured (without one the filter stays out of the way).
    pub fn has_sink(&self) -> bool {
        self.opik.is_some() || self.langfuse.is_some() || self.otlp.is_some()
    }

    /// Whether and how a request is traced. Without routes, every path of a recognised API is
    /// traced. With routes, the first match decides: its protocol, else the one its path
    /// reveals, else (`protocol: None`) the one the request body's shape will reveal.
    pub fn traced(&self, path: &str, authority: &str) -> Option<Traced<'_>> {
        if self.routes.is_empty() {
            return Protocol::detect(path).map(|protocol| Traced {
                protocol: Some(protocol),
                provider: None,
                route: None,
            });
        }
        let route = self.routes.iter().find(|r| r.matches(path, authority))?;
        Some(Traced {
            protocol: route.protocol.or_else(|| Protocol::detect(path)),
            provider: route.provider.as_deref(),
            route: Some(route),
        })
    }

    /// The capture mode for a request on `route`.
    pub fn capture_for(&self, route: Option<&Route>) -> CaptureMode {
        route.and_then(|r| r.capture).unwrap_or(self.capture)
    }

    /// Whether streamed usage is injected on `route`.
    pub fn inject_stream_usage_for(&self, route: Option<&Route>) -> bool {
        route
            .and_then(|r| r.inject_stream_usage)
            .unwrap_or(self.inject_stream_usage)
    }

    /// Whether tracing metadata is stripped from request bodies on `route`.
    pub fn strip_request_metadata_for(&self, route: Option<&Route>) -> bool {
        route
            .and_then(|r| r.strip_request_metadata)
            .unwrap_or(self.strip_request_metadata)
    }
}

fn parse_routes(value: Option<&Value>) -> Result<Vec<Route>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value.as_array().ok_or(ConfigError::WrongType {
        path: "routes".into(),
        expected: "an array of route objects",
    })?;
    let mut routes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("routes[{i}]");
        let r = Obj::new(item, &path)?;
        r.only(&[
            "name",
            "path_prefix",
            "path_suffix",
            "host",
            "protocol",
            "provider",
            "context",
            "capture",
            "inject_stream_usage",
            "strip_request_metadata",
        ])?;
        let protocol = match r.string("protocol")? {
            None => None,
            Some(name) => Some(Protocol::from_name(&name).ok_or(ConfigError::Invalid {
                path: r.path("protocol"),
                reason: "unknown protocol (see the README for the list)",
            })?),
        };
        let optional_bool = |key: &str| match r.get(key) {
            None => Ok(None),
            Some(_) => r.boolean(key, false).map(Some),
        };
        let route = Route {
            name: r.non_blank("name")?,
            context: r
                .get("context")
                .map(|v| Defaults::parse(v, &r.path("context")))
                .transpose()?,
            capture: CaptureMode::parse(&r, "capture")?,
            inject_stream_usage: optional_bool("inject_stream_usage")?,
            strip_request_metadata: optional_bool("strip_request_metadata")?,
            path_prefix: r.string("path_prefix")?,
            path_suffix: r.string("path_suffix")?,
            host: r.string("host")?.map(|h| h.to_ascii_lowercase()),
            protocol,
            provider: r.non_blank("provider")?,
        };
        if route.path_prefix.is_none() && route.path_suffix.is_none() && route.host.is_none() {
            return Err(ConfigError::Invalid {
                path,
                reason: "a route needs path_prefix, path_suffix or host",
            });
        }
        routes.push(route);
    }
    Ok(routes)
}

fn parse_sampling(value: Option<&Value>) -> Result<Sampling, ConfigError> {
    let mut sampling = Sampling {
        rate: 1.0,
        keep_errors: true,
    };
    let Some(value) = value else {
        return Ok(sampling);
    };
    let obj = Obj::new(value, "sampling")?;
    obj.only(&["rate", "keep_errors"])?;
    if let Some(rate) = obj.get("rate") {
        sampling.rate =
            rate.as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or(ConfigError::Invalid {
                    path: "sampling.rate".into(),
                    reason: "must be a number from 0 to 1",
                })?;
    }
    sampling.keep_errors = obj.boolean("keep_errors", true)?;
    Ok(sampling)
}

fn parse_log_level(obj: &Obj<'_>) -> Result<Option<LogLevel>, ConfigError> {
    Ok(match obj.string("log_level")?.as_deref() {
        None => None,
        Some("trace") => Some(LogLevel::Trace),
        Some("debug") => Some(LogLevel::Debug),
        Some("info") | Some("notice") => Some(LogLevel::Info),
        Some("warn") | Some("warning") => Some(LogLevel::Warn),
        Some("error") | Some("err") | Some("crit") | Some("critical") => Some(LogLevel::Error),
        Some(_) => {
            return Err(ConfigError::Invalid {
                path: "log_level".into(),
                reason: "must be trace, debug, info, warn or error",
            })
        }
    })
}

fn parse_endpoint(obj: &Obj<'_>) -> Result<Endpoint, ConfigError> {
    let url = obj
        .string("endpoint")?
        .ok_or_else(|| ConfigError::Missing {
            path: obj.path("endpoint"),
        })?;
    let invalid = |reason| ConfigError::Invalid {
        path: obj.path("endpoint"),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or(invalid("must be an absolute http:// or https:// URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(invalid("scheme must be http or https"));
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("needs a host and must not carry credentials"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("must not have a query or fragment"));
    }
    let upstream = match obj.string("upstream")? {
        Some(u) if !u.is_empty() => u,
        Some(_) => {
            return Err(ConfigError::Invalid {
                path: obj.path("upstream"),
                reason: "must not be empty",
            })
        }
        None => default_upstream(&scheme, authority),
    };
    Ok(Endpoint {
        scheme,
        authority: authority.to_string(),
        base_path: path.trim_end_matches('/').to_string(),
        upstream,
        timeout_ms: obj.uint("timeout_ms", 5000, 1, 600_000)? as u32,
    })
}

/// Kong dispatches to `host:port`; when no upstream is given, derive it from the URL.
fn default_upstream(scheme: &str, authority: &str) -> String {
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_string()
    } else if scheme == "https" {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    }
}

fn parse_opik(value: &Value) -> Result<OpikConfig, ConfigError> {
    let obj = Obj::new(value, "opik")?;
    obj.only(&[
        "endpoint",
        "upstream",
        "timeout_ms",
        "project_name",
        "api_key",
        "workspace",
    ])?;
    let config = OpikConfig {
        endpoint: parse_endpoint(&obj)?,
        project_name: obj.non_blank("project_name")?,
        api_key: obj.non_blank("api_key")?,
        workspace: obj.non_blank("workspace")?,
    };
    if config.api_key.is_some() && config.workspace.is_none() {
        return Err(ConfigError::Missing {
            path: "opik.workspace".into(),
        });
    }
    Ok(config)
}

fn parse_langfuse(value: &Value) -> Result<LangfuseConfig, ConfigError> {
    let obj = Obj::new(value, "langfuse")?;
    obj.only(&[
        "endpoint",
        "upstream",
        "timeout_ms",
        "public_key",
        "secret_key",
    ])?;
    let required = |key: &str| {
        obj.non_blank(key)?.ok_or_else(|| ConfigError::Missing {
            path: obj.path(key),
        })
    };
    Ok(LangfuseConfig {
        endpoint: parse_endpoint(&obj)?,
        public_key: required("public_key")?,
        secret_key: required("secret_key")?,
    })
}

fn parse_otlp(value: &Value) -> Result<OtlpConfig, ConfigError> {
    let obj = Obj::new(value, "otlp")?;
    obj.only(&[
        "endpoint",
        "upstream",
        "timeout_ms",
        "headers",
        "resource_attributes",
        "capture_content",
    ])?;
    let headers = string_map(&obj, "headers")?;
    if let Some((name, _)) = headers.iter().find(|(k, _)| !is_header_name(k)) {
        return Err(ConfigError::Invalid {
            path: format!("otlp.headers.{name}"),
            reason: "must be an HTTP header name",
        });
    }
    Ok(OtlpConfig {
        endpoint: parse_endpoint(&obj)?,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        resource_attributes: string_map(&obj, "resource_attributes")?,
        capture_content: obj.boolean("capture_content", false)?,
    })
}

/// An object of strings, in document order; values are never echoed in errors.
fn string_map(obj: &Obj<'_>, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(value) = obj.get(key) else {
        return Ok(Vec::new());
    };
    let map = Obj::new(value, "").map_err(|_| ConfigError::WrongType {
        path: obj.path(key),
        expected: "an object of strings",
    })?;
    map.entries()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(ConfigError::WrongType {
                path: format!("{}.{k}", obj.path(key)),
                expected: "a string",
            }),
        })
        .collect()
}

/// A JSON object being read, with its path for error messages.
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
}

impl<'a> Obj<'a> {
    pub(crate) fn new(value: &'a Value, prefix: &'a str) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(Obj { map, prefix }),
            _ => Err(ConfigError::WrongType {
                path: if prefix.is_empty() {
                    "(root)".into()
                } else {
                    prefix.into()
                },
                expected: "an object",
            }),
        }
    }

    pub(crate) fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    pub(crate) fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(ConfigError::UnknownKey { path: self.path(k) }),
            None => Ok(()),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn uint(
        &self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let n = v.as_u64().ok_or(ConfigError::WrongType {
            path: self.path(key),
            expected: "a non-negative integer",
        })?;
        if n < min || n > max {
            return Err(ConfigError::Invalid {
                path: self.path(key),
                reason: "out of range (see the README for bounds)",
            });
        }
        Ok(n)
    }

    pub(crate) fn boolean(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or(ConfigError::WrongType {
                path: self.path(key),
                expected: "true or false",
            }),
        }
    }

    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ConfigError::WrongType {
                path: self.path(key),
                expected: "a string",
            }),
        }
    }

    pub(crate) fn non_blank(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.string(key)? {
            Some(s) if s.trim().is_empty() => Err(ConfigError::Invalid {
                path: self.path(key),
                reason: "must not be blank",
            }),
            other => Ok(other),
        }
    }

    /// The object's entries in document order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter()
    }

    /// An array of HTTP header names, lowercased; `None` when absent.
    pub(crate) fn header_names(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let items = value.as_array().ok_or(ConfigError::WrongType {
            path: self.path(key),
            expected: "an array of header names",
        })?;
        let mut names = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let name = item.as_str().unwrap_or("");
            if !is_header_name(name) {
                return Err(ConfigError::Invalid {
                    path: format!("{}[{i}]", self.path(key)),
                    reason: "must be an HTTP header name",
                });
            }
            names.push(name.to_ascii_lowercase());
        }
        Ok(Some(names))
    }

    pub(crate) fn header_name(&self, key: &str, default: &str) -> Result<String, ConfigError> {
        let name = self.string(key)?.unwrap_or_else(|| default.to_string());
        if !is_header_name(&name) {
            return Err(ConfigError::Invalid {
                path: self.path(key),
                reason: "must be an HTTP header name",
            });
        }
        Ok(name.to_ascii_lowercase())
    }
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_!#$%&'*+.^`|~".contains(&b))
}

mod legacy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_from_empty_input() {
        let c = Config::parse(b"").expect("empty config is valid");
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.flush_interval_ms, 1000);
        assert!(c.force_identity_encoding);
        assert!(!c.has_sink());
        let chat = Some(Traced {
            protocol: Some(Protocol::OpenAiChat),
            provider: None,
            route: None,
        });
        assert_eq!(c.traced("/v1/chat/completions", "api.openai.com"), chat);
        assert_eq!(
            c.traced(
                "/openai/deployments/gpt4/chat/completions?api-version=2024-10-21",
                "x"
            ),
            chat
        );
        assert_eq!(
            c.traced("/v1/embeddings", "x").and_then(|t| t.protocol),
            Some(Protocol::OpenAiEmbeddings)
        );
        assert_eq!(c.traced("/v1/models", "api.openai.com"), None);
    }

    #[test]
    fn full_config_and_string_form() {
        let json = r#"{"opik":{"endpoint":"https://www.comet.com/opik/api","api_key":"k","workspace":"w","project_name":"p"},
            "langfuse":{"endpoint":"http://127.0.0.1:3000/","upstream":"langfuse","public_key":"pk","secret_key":"sk"},
            "routes":[{"path_prefix":"/llm/","provider":"groq"},{"host":".openai.azure.com"},
                      {"path_prefix":"/custom","protocol":"anthropic_messages"}],"retry":{"max_attempts":3}}"#;
        let c = Config::parse(json.as_bytes()).expect("valid");
        let opik = c.opik.as_ref().expect("opik");
        assert_eq!(opik.endpoint.authority, "www.comet.com");
        assert_eq!(opik.endpoint.base_path, "/opik/api");
        assert_eq!(opik.endpoint.upstream, "www.comet.com:443");
        let lf = c.langfuse.as_ref().expect("langfuse");
        assert_eq!(lf.endpoint.base_path, "");
        assert_eq!(lf.endpoint.upstream, "langfuse");
        assert_eq!(c.retry.max_attempts, 3);
        let groq = c.traced("/llm/v1/chat/completions", "gw").expect("traced");
        assert_eq!(
            (groq.protocol, groq.provider),
            (Some(Protocol::OpenAiChat), Some("groq"))
        );
        let sniffed = c.traced("/llm/x", "gw").expect("route matches");
        assert_eq!(sniffed.protocol, None, "left to the body's shape");
        assert_eq!(c.traced("/v1/chat/completions", "api.openai.com"), None);
        let azure = c.traced(
            "/openai/deployments/d/embeddings",
            "me.openai.azure.com:443",
        );
        assert_eq!(
            azure.and_then(|t| t.protocol),
            Some(Protocol::OpenAiEmbeddings)
        );
        let custom = c.traced("/custom/anything", "gw").and_then(|t| t.protocol);
        assert_eq!(custom, Some(Protocol::AnthropicMessages));
        let quoted = serde_json::to_string(json).expect("encode");
        let from_string = Config::parse(quoted.as_bytes()).expect("string form");
        assert_eq!(format!("{from_string:?}"), format!("{c:?}"));
    }

    #[test]
    fn errors_name_the_key_path() {
        let cases: &[(&str, &str)] = &[
            (r#"{"flush_ms":1}"#, "unknown configuration key `flush_ms`"),
            (
                r#"{"opik":{"endpoint":"http://x","timeout_ms":"5"}}"#,
                "`opik.timeout_ms` must be a non-negative integer",
            ),
            (
                r#"{"opik":{"endpoint":"ftp://x"}}"#,
                "`opik.endpoint` is invalid",
            ),
            (r#"{"opik":{}}"#, "`opik.endpoint` is required"),
            (
                r#"{"opik":{"endpoint":"http://x","api_key":"k"}}"#,
                "`opik.workspace` is required",
            ),
            (
                r#"{"langfuse":{"endpoint":"http://x","public_key":"pk"}}"#,
                "`langfuse.secret_key` is required",
            ),
            (r#"{"routes":[{}]}"#, "`routes[0]` is invalid"),
            (
                r#"{"routes":[{"host":"x","protocol":"soap"}]}"#,
                "`routes[0].protocol` is invalid",
            ),
            (
                r#"{"routes":[{"path_suffix":"/x","extra":1}]}"#,
                "unknown configuration key `routes[0].extra`",
            ),
            (r#"{"max_body_bytes":1}"#, "`max_body_bytes` is invalid"),
            (r#"[1]"#, "`(root)` must be an object"),
            (r#"{"#, "not valid JSON"),
            (
                r#"{"omit_header":"bad header"}"#,
                "`omit_header` is invalid",
            ),
            (r#"{"capture":"some"}"#, "`capture` is invalid"),
            (
                r#"{"routes":[{"host":"x","capture":"none"}]}"#,
                "`routes[0].capture` is invalid",
            ),
            (r#"{"sampling":{"rate":1.5}}"#, "`sampling.rate` is invalid"),
            (
                r#"{"routes":[{"host":"x","inject_stream_usage":"yes"}]}"#,
                "`routes[0].inject_stream_usage` must be true or false",
            ),
        ];
        for (input, expected) in cases {
            let err = Config::parse(input.as_bytes())
                .expect_err(input)
                .to_string();
            assert!(err.contains(expected), "{input}: got {err}");
        }
    }

    #[test]
    fn secrets_never_appear_in_errors() {
        let err = Config::parse(
            br#"{"langfuse":{"endpoint":"http://x","public_key":"pk-SECRET","secret_key":7}}"#,
        )
        .expect_err("wrong type");
        assert!(!err.to_string().contains("SECRET"));
    }

    #[test]
    fn cjson_escaped_slashes_are_accepted() {
        let c =
            Config::parse(br#"{"opik":{"endpoint":"http:\/\/opik:5173\/api"}}"#).expect("valid");
        assert_eq!(c.opik.expect("opik").endpoint.base_path, "/api");
    }
}
