//! Replays recorded traffic (HAR 1.2) through the filter: every entry becomes an [`Exchange`]
//! run by one [`Host`], the exports it causes are sent to a local [`Collector`], and a JSON line
//! per entry reports what the client and the upstream got and which callouts the filter made.
//!
//! Only the fields the replay needs are read (`log.entries[].request.{method, url, headers,
//! postData.text}` and `response.{status, headers, content.{text, encoding}}`); everything else,
//! and every missing optional field, is tolerated.
//!
//! The configuration's sinks are redirected to the local collector, so no export leaves the
//! machine: each sink's `endpoint` keeps its path but gets the collector's address (and `http`),
//! its `upstream` becomes `127.0.0.1:<port>` on Kong or a cluster mapped to the collector on
//! Envoy.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::ClockMode;
use crate::collector::{
    Collector, CollectorOptions, LANGFUSE_OTLP_PATH, OPIK_SPANS_PATH, OPIK_TRACES_PATH,
};
use crate::exchange::{Chunking, Exchange};
use crate::options::HostOptions;
use crate::personality::Personality;
use crate::state::{Callout, CalloutResult};
use crate::validate::UtcTimestamp;
use crate::{Host, WasmModule};

/// Header values never printed: replaced by `***`.
pub const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "comet-workspace",
    "api-key",
    "x-api-key",
    "cookie",
];

/// Ticks [`Host::settle`] may run after each entry.
const SETTLE_TICKS: usize = 200;

/// A HAR document (only what the replay reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Har {
    /// The `log` object.
    pub log: HarLog,
}

/// `log`: the recorded entries.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HarLog {
    /// One entry per request/response pair, in order.
    pub entries: Vec<HarEntry>,
}

/// One request/response pair.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HarEntry {
    /// When the request started (ISO 8601), if recorded.
    pub started_date_time: Option<String>,
    /// The request.
    pub request: HarRequest,
    /// The response.
    pub response: HarResponse,
}

/// A recorded request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HarRequest {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers in recorded order.
    pub headers: Vec<HarHeader>,
    /// The body, if any.
    pub post_data: Option<HarPostData>,
}

/// A header (`name`, `value`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HarHeader {
    /// Name as recorded.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `postData`: the request body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HarPostData {
    /// MIME type.
    pub mime_type: Option<String>,
    /// Body text.
    pub text: Option<String>,
    /// `base64` when `text` is base64 (not in HAR 1.2 for `postData`, but some tools write it).
    pub encoding: Option<String>,
}

/// A recorded response.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HarResponse {
    /// Status code; 0 (or negative) when no response was received.
    pub status: i64,
    /// Headers in recorded order.
    pub headers: Vec<HarHeader>,
    /// The body.
    pub content: HarContent,
}

/// `response.content`: the (decoded) body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HarContent {
    /// MIME type.
    pub mime_type: Option<String>,
    /// Body text, as decoded by the recording tool (no content-encoding).
    pub text: Option<String>,
    /// `base64` when `text` is base64.
    pub encoding: Option<String>,
}

/// Parses a HAR document (a leading UTF-8 BOM is skipped).
///
/// # Errors
/// When the bytes are not JSON of the HAR shape.
pub fn parse(bytes: &[u8]) -> anyhow::Result<Har> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).context("not a HAR document")
}

fn decode_text(text: Option<&str>, encoding: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let text = text.unwrap_or_default();
    match encoding {
        Some(e) if e.eq_ignore_ascii_case("base64") => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .context("body text is not valid base64"),
        _ => Ok(text.as_bytes().to_vec()),
    }
}

impl HarEntry {
    /// `startedDateTime` in Unix milliseconds, when it is a UTC timestamp (`…Z`).
    pub fn started_unix_ms(&self) -> Option<u64> {
        let ts = UtcTimestamp::parse(self.started_date_time.as_deref()?)?;
        u64::try_from(ts.unix_nanos() / 1_000_000).ok()
    }

    /// The request body bytes.
    ///
    /// # Errors
    /// When a base64 body does not decode.
    pub fn request_body(&self) -> anyhow::Result<Vec<u8>> {
        let post = self.request.post_data.as_ref();
        decode_text(
            post.and_then(|p| p.text.as_deref()),
            post.and_then(|p| p.encoding.as_deref()),
        )
    }

    /// The response body bytes.
    ///
    /// # Errors
    /// When a base64 body does not decode.
    pub fn response_body(&self) -> anyhow::Result<Vec<u8>> {
        let c = &self.response.content;
        decode_text(c.text.as_deref(), c.encoding.as_deref())
    }

    /// The exchange to run: pseudo-headers from the URL (`:path` with its query, `:authority`
    /// from its host), the recorded headers without pseudo-headers, `Host` and framing headers
    /// (the bodies are replayed decoded, so `content-encoding` is dropped and `content-length`
    /// is recomputed), and the response body cut as `response_chunking` says. An entry without
    /// a response (status ≤ 0) is replayed as an upstream that breaks before any byte.
    ///
    /// # Errors
    /// When the URL is not absolute or a body does not decode.
    pub fn to_exchange(&self, response_chunking: Chunking) -> anyhow::Result<Exchange> {
        let url = split_url(&self.request.url)
            .ok_or_else(|| anyhow!("URL is not absolute: {:?}", self.request.url))?;
        let method = if self.request.method.is_empty() {
            "GET"
        } else {
            &self.request.method
        };
        let mut ex = Exchange::new(method, &url.path);
        ex.request_headers = vec![
            (":method".into(), method.to_string()),
            (":path".into(), url.path.clone()),
            (":authority".into(), url.authority.clone()),
            (":scheme".into(), url.scheme.clone()),
        ];
        let skip = |name: &str| {
            name.starts_with(':')
                || ["host", "content-length", "transfer-encoding", "connection"]
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h))
        };
        for h in self.request.headers.iter().filter(|h| !skip(&h.name)) {
            ex = ex.request_header(&h.name, &h.value);
        }
        let body = self.request_body()?;
        if !body.is_empty() || self.request.post_data.is_some() {
            ex = ex.request_body(body, Chunking::Whole);
        }

        let status = self.response.status;
        if status <= 0 {
            ex.response_headers = vec![(":status".into(), "502".into())];
            ex.abort_after_response_bytes = Some(0);
            return Ok(ex);
        }
        let status = u16::try_from(status).unwrap_or(u16::MAX);
        let body = self.response_body()?;
        let had_length = self
            .response
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("content-length"));
        let length = body.len().to_string();
        let mut headers: Vec<(&str, &str)> = self
            .response
            .headers
            .iter()
            .filter(|h| {
                !skip(&h.name)
                    && !h.name.eq_ignore_ascii_case("content-encoding")
                    && !h.name.eq_ignore_ascii_case("set-cookie")
            })
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        if had_length {
            headers.push(("content-length", &length));
        }
        Ok(ex
            .response(status, &headers)
            .response_body(body, response_chunking))
    }
}

/// The parts of an absolute URL the replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitUrl {
    /// `http` or `https` (lowercased).
    pub scheme: String,
    /// `host[:port]`, without user info.
    pub authority: String,
    /// Path and query, `/` when empty; the fragment is dropped.
    pub path: String,
}

/// Splits `scheme://authority/path?query#fragment`; `None` without a scheme or a host.
pub fn split_url(url: &str) -> Option<SplitUrl> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if scheme.is_empty() || authority.is_empty() {
        return None;
    }
    let tail = tail.split('#').next().unwrap_or_default();
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Some(SplitUrl {
        scheme: scheme.to_ascii_lowercase(),
        authority: authority.to_string(),
        path,
    })
}

/// How response bodies are cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkMode {
    /// One chunk.
    #[default]
    Whole,
    /// Chunks of this many bytes.
    Fixed(usize),
    /// Random sizes (1–64 bytes), seeded by the entry index.
    Random,
}

impl ChunkMode {
    /// Parses `random` or a positive byte count.
    ///
    /// # Errors
    /// For anything else.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text.eq_ignore_ascii_case("random") {
            return Ok(ChunkMode::Random);
        }
        match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(ChunkMode::Fixed(n)),
            _ => bail!("--chunk takes a positive byte count or `random`, not {text:?}"),
        }
    }

    /// The chunking of entry `index`.
    pub fn for_entry(self, index: usize) -> Chunking {
        match self {
            ChunkMode::Whole => Chunking::Whole,
            ChunkMode::Fixed(n) => Chunking::Fixed(n),
            ChunkMode::Random => Chunking::Random { seed: index as u64 },
        }
    }
}

/// The configured sinks, by their configuration key.
const SINK_KEYS: [&str; 2] = ["opik", "langfuse"];

/// Rewrites a filter configuration so every configured sink exports to `collector`: the
/// endpoint's scheme and authority become `http://<collector>` (its path is kept), and the
/// upstream becomes `<collector>` on Kong or a cluster name on Envoy (the configured one, else
/// the sink's key). Returns the new configuration and the Envoy clusters to map to `collector`.
///
/// A configuration given as a JSON string holding an object (Kong passes string configs
/// verbatim) is unwrapped first.
///
/// # Errors
/// When the configuration is not a JSON object, or a sink's `endpoint` is not an absolute URL.
pub fn redirect_sinks(
    config: &[u8],
    personality: Personality,
    collector: SocketAddr,
) -> anyhow::Result<(Vec<u8>, Vec<String>)> {
    let mut value: Value = serde_json::from_slice(config).context("configuration is not JSON")?;
    if let Value::String(inner) = &value {
        value = serde_json::from_str(inner).context("string configuration is not JSON")?;
    }
    let Value::Object(root) = &mut value else {
        bail!("configuration must be a JSON object");
    };
    let mut clusters = Vec::new();
    for key in SINK_KEYS {
        let Some(Value::Object(sink)) = root.get_mut(key) else {
            continue;
        };
        if let Some(endpoint) = sink.get("endpoint").and_then(Value::as_str) {
            let url = split_url(endpoint)
                .ok_or_else(|| anyhow!("{key}.endpoint is not an absolute URL: {endpoint:?}"))?;
            let path = url.path.trim_end_matches('/');
            sink.insert(
                "endpoint".into(),
                Value::String(format!("http://{collector}{path}")),
            );
        }
        let upstream = match personality {
            Personality::Kong => collector.to_string(),
            Personality::Envoy => {
                let name = sink
                    .get("upstream")
                    .and_then(Value::as_str)
                    .filter(|u| !u.is_empty())
                    .unwrap_or(key)
                    .to_string();
                clusters.push(name.clone());
                name
            }
        };
        sink.insert("upstream".into(), Value::String(upstream));
    }
    let bytes = serde_json::to_vec(&value).context("encoding the configuration")?;
    Ok((bytes, clusters))
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The filter configuration (JSON).
    pub config: Vec<u8>,
    /// The gateway to emulate.
    pub personality: Personality,
    /// How response bodies are cut.
    pub chunk: ChunkMode,
    /// The HAR file.
    pub har: PathBuf,
}

/// One callout, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct CalloutReport {
    /// `opik`, `langfuse` or `unknown`, from the request path.
    pub sink: &'static str,
    /// `:method`.
    pub method: String,
    /// `:path`.
    pub path: String,
    /// The other headers, secrets masked; repeated names are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body: parsed JSON, else the text.
    pub body: Value,
    /// The status the collector answered; `None` when no response came.
    pub status: Option<u16>,
}

/// One entry's result, printed as a JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// Index in `log.entries`.
    pub entry: usize,
    /// Recorded method.
    pub method: String,
    /// Recorded URL.
    pub url: String,
    /// Status the client got (0 when none).
    pub status: u16,
    /// The client got exactly the recorded response body.
    pub client_bytes_identical: bool,
    /// The upstream got exactly the recorded request body.
    pub upstream_bytes_identical: bool,
    /// A trap during the entry (its callbacks, or the ticks and callouts after it).
    pub trap: Option<String>,
    /// The callouts the filter made for the entry, in order.
    pub callouts: Vec<CalloutReport>,
}

impl EntryReport {
    /// True when the traffic passed unchanged and nothing trapped.
    pub fn ok(&self) -> bool {
        self.client_bytes_identical && self.upstream_bytes_identical && self.trap.is_none()
    }
}

/// Which backend a callout went to, from its path.
pub fn sink_of(callout: &Callout) -> &'static str {
    let path = callout.header(":path").unwrap_or_default();
    let route = path.split('?').next().unwrap_or_default();
    if route.ends_with(OPIK_TRACES_PATH) || route.ends_with(OPIK_SPANS_PATH) {
        "opik"
    } else if route.ends_with(LANGFUSE_OTLP_PATH) {
        "langfuse"
    } else {
        "unknown"
    }
}

/// A callout as printed: secrets masked, body parsed.
pub fn callout_report(callout: &Callout) -> CalloutReport {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in callout.headers.iter().filter(|(k, _)| !k.starts_with(':')) {
        let key = name.to_ascii_lowercase();
        let shown = if SECRET_HEADERS.contains(&key.as_str()) {
            "***"
        } else {
            value.as_str()
        };
        headers
            .entry(key)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(shown);
            })
            .or_insert_with(|| shown.to_string());
    }
    let body = serde_json::from_slice(&callout.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&callout.body).into_owned()));
    let status = match &callout.result {
        CalloutResult::Response { status, .. } => Some(*status),
        _ => None,
    };
    CalloutReport {
        sink: sink_of(callout),
        method: callout.header(":method").unwrap_or_default().to_string(),
        path: callout.header(":path").unwrap_or_default().to_string(),
        headers,
        body,
        status,
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default)]
pub struct ReplaySummary {
    /// Every entry's report, in order.
    pub entries: Vec<EntryReport>,
    /// Why the payloads were not validated, if they were not.
    pub validation_unavailable: Option<String>,
}

impl ReplaySummary {
    /// Entries whose traffic changed or that trapped.
    pub fn failures(&self) -> usize {
        self.entries.iter().filter(|e| !e.ok()).count()
    }
}

/// Replays `opts.har` through `module`, writing one JSON line per entry to `out`.
///
/// One [`Host`] runs every entry in order on a manual clock, so the output is reproducible: the
/// clock starts at the first entry's `startedDateTime` and moves to each later entry's start
/// (and by a tick period per tick while settling). After each entry it settles: ticks run until the entry's exports were delivered to a local,
/// validating (when the specs are found) [`Collector`].
///
/// # Errors
/// When the HAR or the configuration cannot be read or parsed, an entry cannot be turned into
/// an exchange, the filter cannot start, or `out` fails.
pub fn replay(
    module: &WasmModule,
    opts: &ReplayOptions,
    out: &mut dyn Write,
) -> anyhow::Result<ReplaySummary> {
    let bytes =
        std::fs::read(&opts.har).with_context(|| format!("cannot read {}", opts.har.display()))?;
    let har = parse(&bytes).with_context(|| format!("{}", opts.har.display()))?;

    let (collector_options, validation_unavailable) = match CollectorOptions::validating() {
        Ok(o) => (o, None),
        Err(e) => (CollectorOptions::default(), Some(e.to_string())),
    };
    let collector =
        Collector::try_start(collector_options).context("cannot start the local collector")?;
    let (config, clusters) = redirect_sinks(&opts.config, opts.personality, collector.addr())?;
    let mut host_options = HostOptions::new(opts.personality, config);
    if let Some(start_unix_ms) = har.log.entries.iter().find_map(HarEntry::started_unix_ms) {
        host_options.clock = ClockMode::Manual { start_unix_ms };
    }
    for name in &clusters {
        host_options = host_options.with_cluster(name, collector.addr());
    }
    let mut host = Host::new(module, host_options).context("the filter does not start")?;

    let mut summary = ReplaySummary {
        entries: Vec::new(),
        validation_unavailable,
    };
    for (index, entry) in har.log.entries.iter().enumerate() {
        let report = replay_entry(&mut host, index, entry, opts.chunk)
            .with_context(|| format!("entry {index}"))?;
        let line = serde_json::to_string(&report).context("encoding a report")?;
        writeln!(out, "{line}")?;
        summary.entries.push(report);
    }
    out.flush()?;
    collector.stop();
    Ok(summary)
}

fn replay_entry(
    host: &mut Host,
    index: usize,
    entry: &HarEntry,
    chunk: ChunkMode,
) -> anyhow::Result<EntryReport> {
    let exchange = entry.to_exchange(chunk.for_entry(index))?;
    if let Some(started) = entry.started_unix_ms() {
        let now = host.now_ms();
        if started > now {
            host.advance_ms(started - now);
        }
    }
    let callouts_before = host.callouts().len();
    let traps_before = host.trap_records().len();
    let outcome = host.exchange(&exchange);
    host.settle(SETTLE_TICKS);

    // Every trap since the entry began, as `<callback>: <message>`.
    let traps: Vec<String> = host
        .trap_records()
        .get(traps_before..)
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let trap = if traps.is_empty() {
        outcome.trap.clone()
    } else {
        Some(traps.join("; "))
    };
    let callouts = host
        .callouts()
        .get(callouts_before..)
        .unwrap_or_default()
        .iter()
        .map(callout_report)
        .collect();
    Ok(EntryReport {
        entry: index,
        method: entry.request.method.clone(),
        url: entry.request.url.clone(),
        status: outcome.client_status,
        client_bytes_identical: outcome.client_body == exchange.response_body,
        upstream_bytes_identical: outcome.upstream_body == exchange.request_body,
        trap,
        callouts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        let u = split_url("https://user:pw@api.openai.com:8443/v1/chat/completions?x=1#f")
            .expect("absolute");
        assert_eq!(u.scheme, "https");
        assert_eq!(u.authority, "api.openai.com:8443");
        assert_eq!(u.path, "/v1/chat/completions?x=1");
        assert_eq!(split_url("http://h?q").map(|u| u.path), Some("/?q".into()));
        assert_eq!(split_url("http://h").map(|u| u.path), Some("/".into()));
        assert!(split_url("/relative").is_none());
        assert!(split_url("http:///x").is_none());
    }

    #[test]
    fn missing_fields_are_tolerated() {
        let har = parse(br#"{"log":{"entries":[{"request":{"url":"http://h/p"}}]}}"#)
            .expect("minimal HAR");
        let entry = &har.log.entries[0];
        let ex = entry.to_exchange(Chunking::Whole).expect("exchange");
        assert_eq!(ex.request_headers[0], (":method".into(), "GET".into()));
        assert_eq!(ex.abort_after_response_bytes, Some(0));
        assert!(parse(b"{}").expect("empty").log.entries.is_empty());
        assert!(parse(b"[1]").is_err());
    }

    #[test]
    fn bodies_decode_and_framing_is_recomputed() {
        let har = parse(
            br#"{"log":{"entries":[{"request":{"method":"POST","url":"http://h/v1",
              "headers":[{"name":":authority","value":"h"},{"name":"Content-Length","value":"99"},
                         {"name":"x-a","value":"1"}],
              "postData":{"mimeType":"application/json","text":"{}"}},
              "response":{"status":200,"headers":[{"name":"Content-Encoding","value":"gzip"},
                {"name":"content-length","value":"7"},{"name":"content-type","value":"text/plain"}],
                "content":{"text":"aGVsbG8=","encoding":"base64"}}}]}}"#,
        )
        .expect("HAR");
        let ex = har.log.entries[0]
            .to_exchange(Chunking::Fixed(2))
            .expect("exchange");
        assert_eq!(ex.request_body, b"{}");
        let names: Vec<&str> = ex.request_headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                ":method",
                ":path",
                ":authority",
                ":scheme",
                "x-a",
                "content-length"
            ]
        );
        assert_eq!(ex.response_body, b"hello");
        assert_eq!(
            ex.response_headers,
            vec![
                (":status".to_string(), "200".to_string()),
                ("content-type".to_string(), "text/plain".to_string()),
                ("content-length".to_string(), "5".to_string()),
            ]
        );
    }

    #[test]
    fn sinks_are_redirected() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let config = br#"{"opik":{"endpoint":"https://www.comet.com/opik/api","api_key":"k","workspace":"w"},
            "langfuse":{"endpoint":"https://cloud.langfuse.com/","upstream":"lf","public_key":"p","secret_key":"s"}}"#;
        let (kong, clusters) = redirect_sinks(config, Personality::Kong, addr).expect("kong");
        let kong: Value = serde_json::from_slice(&kong).expect("json");
        assert_eq!(kong["opik"]["endpoint"], "http://127.0.0.1:9/opik/api");
        assert_eq!(kong["opik"]["upstream"], "127.0.0.1:9");
        assert_eq!(kong["langfuse"]["endpoint"], "http://127.0.0.1:9");
        assert!(clusters.is_empty());
        let quoted = serde_json::to_vec(&String::from_utf8_lossy(config)).expect("string");
        let (envoy, clusters) = redirect_sinks(&quoted, Personality::Envoy, addr).expect("envoy");
        let envoy: Value = serde_json::from_slice(&envoy).expect("json");
        assert_eq!(envoy["opik"]["upstream"], "opik");
        assert_eq!(envoy["langfuse"]["upstream"], "lf");
        assert_eq!(clusters, ["opik", "lf"]);
        assert!(redirect_sinks(b"[]", Personality::Kong, addr).is_err());
    }

    #[test]
    fn secrets_are_masked() {
        let callout = Callout {
            token: 1,
            context_id: 1,
            upstream: "x".into(),
            headers: vec![
                (":method".into(), "POST".into()),
                (":path".into(), "/api/v1/private/traces/batch".into()),
                ("Authorization".into(), "secret".into()),
                ("comet-workspace".into(), "ws".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: b"not json".to_vec(),
            timeout_ms: 1,
            phase: crate::state::Phase::Tick,
            result: CalloutResult::Pending,
            delivered: false,
        };
        let r = callout_report(&callout);
        assert_eq!(r.sink, "opik");
        assert_eq!(r.headers["authorization"], "***");
        assert_eq!(r.headers["comet-workspace"], "***");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.body, Value::String("not json".into()));
        assert_eq!(r.status, None);
    }

    #[test]
    fn chunk_modes() {
        assert_eq!(ChunkMode::parse("random").ok(), Some(ChunkMode::Random));
        assert_eq!(ChunkMode::parse("16").ok(), Some(ChunkMode::Fixed(16)));
        assert!(ChunkMode::parse("0").is_err());
        assert_eq!(ChunkMode::Random.for_entry(3), Chunking::Random { seed: 3 });
    }
}
