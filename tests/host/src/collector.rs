//! A local trace collector that speaks both export targets of the filter and checks what it gets.
//!
//! * Opik REST batches: `POST …/v1/private/traces/batch` and `…/v1/private/spans/batch` under any
//!   prefix (`/api` as behind Opik's frontend, none as on the backend directly, `/opik/api` as on
//!   Cloud); success is `204 No Content` (`backends.md` §2.2).
//! * Langfuse OTLP/HTTP JSON: `POST …/api/public/otel/v1/traces`; success is `200` with `{}`
//!   (§3.3).
//!
//! It answers like the real backends where `backends.md` documents them: 401 for a wrong key,
//! 403 for a missing or foreign Opik workspace, 400 for unreadable JSON, 400 for an Opik id that
//! is not UUIDv7 and 422 for other Opik schema violations, 400 for any invalid OTLP export. A
//! script of statuses (500, 429, …) can be answered first, to exercise retries. Every request is
//! recorded with the status answered and, when a [`Specs`] is given, its [`Violation`]s.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::{self, Request, ResponseWriter, ServerHandle};
use crate::validate::{Specs, SpecsError, Violation};

/// Path suffix of Opik's trace batch endpoint.
pub const OPIK_TRACES_PATH: &str = "/v1/private/traces/batch";
/// Path suffix of Opik's span batch endpoint.
pub const OPIK_SPANS_PATH: &str = "/v1/private/spans/batch";
/// Path suffix of Langfuse's OTLP trace endpoint.
pub const LANGFUSE_OTLP_PATH: &str = "/api/public/otel/v1/traces";
/// Where a generic OTLP/HTTP collector takes traces.
pub const GENERIC_OTLP_PATH: &str = "/v1/traces";
/// The Langfuse header selecting the direct (v4) write path.
pub const INGESTION_VERSION_HEADER: &str = "x-langfuse-ingestion-version";

/// Which backend a request was addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sink {
    /// Opik's REST batch API.
    Opik,
    /// Langfuse's OTLP endpoint.
    Langfuse,
    /// A generic OTLP/HTTP collector (`…/v1/traces`, no authentication).
    Otlp,
    /// A path no backend serves (answered 404).
    Unknown,
}

/// What the collector expects and how it misbehaves.
#[derive(Debug, Clone, Default)]
pub struct CollectorOptions {
    /// Opik API key expected verbatim in `authorization` (no `Bearer `); `None` accepts any.
    pub opik_api_key: Option<String>,
    /// Opik workspace expected in `Comet-Workspace` (or `?workspace_name=`); `None` accepts any.
    pub opik_workspace: Option<String>,
    /// Langfuse `(public key, secret key)` expected as `Authorization: Basic base64(pk:sk)`;
    /// `None` accepts any.
    pub langfuse_keys: Option<(String, String)>,
    /// Accept Langfuse exports without `x-langfuse-ingestion-version: 4` (the real server does,
    /// taking its slow path). By default its absence is answered 400 and recorded as a violation,
    /// since the filter must always send it.
    pub lenient_ingestion_version: bool,
    /// Statuses answered, in order, to the first backend requests (before any check), e.g.
    /// `[500]` or `[429]`; afterwards requests are handled normally.
    pub script: Vec<u16>,
    /// A pause before every answer.
    pub delay: Option<Duration>,
    /// When set, bodies are validated and invalid ones rejected (Opik 400/422, Langfuse 400).
    pub validate: Option<Specs>,
}

impl CollectorOptions {
    /// Options that validate every body against the specs found by [`Specs::shared`].
    ///
    /// # Errors
    ///
    /// When the specs cannot be found or loaded.
    pub fn validating() -> Result<Self, SpecsError> {
        Ok(Self {
            validate: Some(Specs::shared()?),
            ..Self::default()
        })
    }
}

/// One request the collector received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The backend addressed.
    pub sink: Sink,
    /// Request method.
    pub method: String,
    /// Request target, query included.
    pub path: String,
    /// Header fields in wire order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Value::Null` when it is not JSON.
    pub body: Value,
    /// The status the collector answered.
    pub status_answered: u16,
    /// What is wrong with the body (empty when valid or when not validating), plus header
    /// problems the collector found.
    pub violations: Vec<Violation>,
}

impl Received {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the collector answered with a 2xx status.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status_answered)
    }

    fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

struct State {
    options: CollectorOptions,
    script: Mutex<VecDeque<u16>>,
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler thread must not hide the record from the test.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running collector on `127.0.0.1`. Dropping it stops the server.
pub struct Collector {
    server: ServerHandle,
    state: Arc<State>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// Starts a collector on an ephemeral port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (see [`Collector::try_start`]).
    pub fn start(options: CollectorOptions) -> Self {
        Self::try_start(options).expect("binding 127.0.0.1:0 for the collector")
    }

    /// Starts a collector on an ephemeral port of `127.0.0.1`.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub fn try_start(options: CollectorOptions) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let state = Arc::new(State {
            script: Mutex::new(options.script.iter().copied().collect()),
            options,
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let shared = Arc::clone(&state);
        let server = http::serve(listener, move |req, w| handle(&shared, req, w));
        Ok(Self { server, state })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Opik base URL as configured for a self-hosted frontend: `http://127.0.0.1:<port>/api`.
    pub fn opik_base_url(&self) -> String {
        format!("http://{}/api", self.server.addr)
    }

    /// Langfuse base URL: `http://127.0.0.1:<port>`.
    pub fn langfuse_base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Appends statuses to answer before handling requests normally (see
    /// [`CollectorOptions::script`]).
    pub fn push_script(&self, statuses: &[u16]) {
        lock(&self.state.script).extend(statuses.iter().copied());
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        lock(&self.state.received).clear();
    }

    /// The `traces[]` items of every accepted Opik trace batch, in arrival order.
    pub fn opik_traces(&self) -> Vec<Value> {
        self.accepted_items(Sink::Opik, OPIK_TRACES_PATH, "traces")
    }

    /// The `spans[]` items of every accepted Opik span batch, in arrival order.
    pub fn opik_spans(&self) -> Vec<Value> {
        self.accepted_items(Sink::Opik, OPIK_SPANS_PATH, "spans")
    }

    /// The spans of every accepted OTLP export, flattened over resource and scope, in order.
    pub fn otlp_spans(&self) -> Vec<Value> {
        let received = lock(&self.state.received);
        received
            .iter()
            .filter(|r| r.sink == Sink::Langfuse && r.accepted())
            .flat_map(|r| otlp_spans_of(&r.body))
            .collect()
    }

    /// The spans of every accepted export to the generic OTLP path, flattened, in order.
    pub fn generic_otlp_spans(&self) -> Vec<Value> {
        let received = lock(&self.state.received);
        received
            .iter()
            .filter(|r| r.sink == Sink::Otlp && r.accepted())
            .flat_map(|r| otlp_spans_of(&r.body))
            .collect()
    }

    fn accepted_items(&self, sink: Sink, route: &str, key: &str) -> Vec<Value> {
        let received = lock(&self.state.received);
        received
            .iter()
            .filter(|r| r.sink == sink && r.accepted() && r.route().ends_with(route))
            .filter_map(|r| r.body.get(key).and_then(Value::as_array))
            .flatten()
            .cloned()
            .collect()
    }

    /// Waits until `predicate` holds for the requests received so far, or `timeout` passes.
    /// Returns whether it holds.
    pub fn wait_for(&self, predicate: impl Fn(&[Received]) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut received = lock(&self.state.received);
        loop {
            if predicate(&received) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            received = self
                .state
                .arrived
                .wait_timeout(received, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops the server (also done on drop).
    pub fn stop(&self) {
        self.server.stop();
    }
}

/// The spans of an OTLP export body, flattened over `resourceSpans` and `scopeSpans`.
pub fn otlp_spans_of(body: &Value) -> Vec<Value> {
    let items = |v: &Value, key: &str| v.get(key).and_then(Value::as_array).cloned();
    items(body, "resourceSpans")
        .unwrap_or_default()
        .iter()
        .flat_map(|rs| items(rs, "scopeSpans").unwrap_or_default())
        .flat_map(|ss| items(&ss, "spans").unwrap_or_default())
        .collect()
}

/// How the collector answers one request.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Answer {
    fn new(status: u16, body: Option<Value>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body,
        }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    OpikTraces,
    OpikSpans,
    Otlp,
    GenericOtlp,
    Unknown,
}

fn route_of(path: &str) -> Route {
    let route = path.split('?').next().unwrap_or_default();
    if route.ends_with(OPIK_TRACES_PATH) {
        Route::OpikTraces
    } else if route.ends_with(OPIK_SPANS_PATH) {
        Route::OpikSpans
    } else if route.ends_with(LANGFUSE_OTLP_PATH) {
        Route::Otlp
    } else if route.ends_with(GENERIC_OTLP_PATH) {
        Route::GenericOtlp
    } else {
        Route::Unknown
    }
}

fn handle(state: &State, req: Request, w: &mut ResponseWriter) {
    let route = route_of(&req.path);
    let sink = match route {
        Route::OpikTraces | Route::OpikSpans => Sink::Opik,
        Route::Otlp => Sink::Langfuse,
        Route::GenericOtlp => Sink::Otlp,
        Route::Unknown => Sink::Unknown,
    };
    let body = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let mut violations = Vec::new();
    let answer = answer(state, route, &req, &body, &mut violations);

    if let Some(delay) = state.options.delay {
        thread::sleep(delay);
    }
    // Record before answering, so a client that saw the answer also sees the record.
    {
        let mut received = lock(&state.received);
        received.push(Received {
            sink,
            method: req.method,
            path: req.path,
            headers: req.headers,
            body,
            status_answered: answer.status,
            violations,
        });
        state.arrived.notify_all();
    }
    let mut headers: Vec<(&str, &str)> = answer
        .headers
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    // The client may be gone; nothing to do about it in a test server.
    let _ = match answer.body {
        Some(body) => {
            headers.push(("content-type", "application/json"));
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            w.full(answer.status, &headers, &bytes)
        }
        None => w.full(answer.status, &headers, b""),
    };
}

fn errors_body(messages: impl IntoIterator<Item = String>) -> Option<Value> {
    Some(json!({ "errors": messages.into_iter().collect::<Vec<_>>() }))
}

fn answer(
    state: &State,
    route: Route,
    req: &Request,
    body: &Value,
    violations: &mut Vec<Violation>,
) -> Answer {
    if route == Route::Unknown {
        return Answer::new(404, Some(json!({"message": "Not Found"})));
    }
    if req.method != "POST" {
        return Answer::new(405, Some(json!({"message": "Method Not Allowed"})));
    }
    let opik = matches!(route, Route::OpikTraces | Route::OpikSpans);
    let specs = state.options.validate.as_ref();
    // Validation runs whatever the answer, so scripted failures still show what was sent.
    if let Some(specs) = specs {
        if !body.is_null() {
            violations.extend(match route {
                Route::OpikTraces => specs.opik_trace_batch(body),
                Route::OpikSpans => specs.opik_span_batch(body),
                _ => specs.otlp_traces(body),
            });
        }
    }

    let scripted = lock(&state.script).pop_front();
    if let Some(status) = scripted {
        let answer = Answer::new(
            status,
            Some(json!({"message": format!("scripted {status}")})),
        );
        return match (status, opik) {
            (429, true) => answer.with_header("RateLimit-Reset", "1"),
            (429, false) => answer.with_header("Retry-After", "1"),
            _ => answer,
        };
    }

    let denied = match route {
        Route::OpikTraces | Route::OpikSpans => check_opik_auth(&state.options, req),
        Route::Otlp => check_langfuse_auth(&state.options, req, violations),
        _ => None,
    };
    if let Some(denied) = denied {
        return denied;
    }

    if req
        .header("content-encoding")
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
    {
        violations.push(Violation::new(
            "",
            "the collector does not decode Content-Encoding; send identity bodies",
        ));
        return Answer::new(
            415,
            Some(json!({"message": "Unsupported content encoding"})),
        );
    }
    let content_type = req
        .header("content-type")
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/json") {
        let message = format!(
            "content-type must be application/json, got {}",
            content_type.as_deref().unwrap_or("none")
        );
        violations.push(Violation::new("", message));
        return if opik {
            Answer::new(
                415,
                Some(json!({"code": 415, "message": "HTTP 415 Unsupported Media Type"})),
            )
        } else {
            Answer::new(400, Some(json!({"message": "Invalid content type"})))
        };
    }

    if body.is_null() {
        violations.push(Violation::new("", "the body is not JSON"));
        return if opik {
            Answer::new(
                400,
                Some(json!({"code": 400, "message": "Unable to process JSON"})),
            )
        } else {
            Answer::new(400, Some(json!({"message": "Invalid request body"})))
        };
    }

    if !violations.is_empty() {
        let messages = violations.iter().map(Violation::to_string);
        if !opik {
            return Answer::new(400, errors_body(messages));
        }
        // Opik rejects a non-v7 id with 400 before bean validation; the rest is 422.
        let bad_id = violations.iter().any(|v| v.message.contains("UUIDv7"));
        return Answer::new(if bad_id { 400 } else { 422 }, errors_body(messages));
    }
    if opik {
        Answer::new(204, None)
    } else {
        Answer::new(200, Some(json!({})))
    }
}

fn check_opik_auth(options: &CollectorOptions, req: &Request) -> Option<Answer> {
    if let Some(key) = &options.opik_api_key {
        if req.header("authorization") != Some(key.as_str()) {
            return Some(Answer::new(
                401,
                errors_body(["API key is missing or invalid".to_owned()]),
            ));
        }
    }
    if let Some(workspace) = &options.opik_workspace {
        let from_query = req
            .path
            .split_once('?')
            .map(|(_, query)| query)
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("workspace_name="));
        let given = req.header("comet-workspace").or(from_query);
        match given {
            None => {
                return Some(Answer::new(
                    403,
                    errors_body(["Workspace name should be provided".to_owned()]),
                ))
            }
            Some(given) if given != workspace => {
                return Some(Answer::new(
                    403,
                    errors_body(["User has no access to the workspace".to_owned()]),
                ))
            }
            Some(_) => {}
        }
    }
    None
}

fn check_langfuse_auth(
    options: &CollectorOptions,
    req: &Request,
    violations: &mut Vec<Violation>,
) -> Option<Answer> {
    if let Some((public, secret)) = &options.langfuse_keys {
        let decoded = req
            .header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, b64)| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            });
        let expected = format!("{public}:{secret}");
        if decoded.as_deref() != Some(expected.as_bytes()) {
            return Some(Answer::new(
                401,
                Some(json!({"error": "UnauthorizedError", "message": "Invalid credentials"})),
            ));
        }
    }
    match req.header(INGESTION_VERSION_HEADER).map(str::trim) {
        Some("4") => None,
        None if options.lenient_ingestion_version => None,
        Some(other)
            if options.lenient_ingestion_version && other.parse::<u8>().is_ok_and(|v| v <= 4) =>
        {
            None
        }
        given => {
            violations.push(Violation::new(
                "",
                format!(
                    "header {INGESTION_VERSION_HEADER} must be 4, got {}",
                    given.unwrap_or("none")
                ),
            ));
            Some(Answer::new(
                400,
                Some(json!({"message": format!("{INGESTION_VERSION_HEADER} must be 4")})),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);
    const TRACE_ID: &str = "019fbd32-0600-7123-8567-89abcdef0123";
    const SPAN_ID: &str = "019fbd32-0605-7edc-ba98-765432100123";

    fn specs() -> Specs {
        Specs::shared().expect("specs directory (set LLM_TRACER_SPECS)")
    }

    fn trace_batch() -> Value {
        json!({"traces": [{
            "id": TRACE_ID,
            "project_name": "llm-gateway",
            "name": "chat.completions",
            "start_time": "2026-08-01T12:00:00.000Z",
            "end_time": "2026-08-01T12:00:01.250Z",
            "input": {"messages": [{"role": "user", "content": "Say hi"}]},
            "output": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]},
            "tags": ["llm-gateway"]
        }]})
    }

    fn span_batch() -> Value {
        json!({"spans": [{
            "id": SPAN_ID,
            "trace_id": TRACE_ID,
            "project_name": "llm-gateway",
            "name": "chat gpt-4o-mini",
            "type": "llm",
            "start_time": "2026-08-01T12:00:00.005Z",
            "end_time": "2026-08-01T12:00:01.245Z",
            "model": "gpt-4o-mini-2024-07-18",
            "provider": "openai",
            "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24}
        }]})
    }

    fn otlp_export() -> Value {
        json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "kong"}}]},
            "scopeSpans": [{
                "scope": {"name": "llm-tracer", "version": "0.1.0"},
                "spans": [{
                    "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                    "spanId": "00f067aa0ba902b7",
                    "name": "chat gpt-4o-mini",
                    "kind": 3,
                    "startTimeUnixNano": "1785585600005000000",
                    "endTimeUnixNano": "1785585601245000000",
                    "attributes": [
                        {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                        {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "21"}}
                    ],
                    "status": {"code": 1}
                }]
            }]
        }]})
    }

    fn post(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> http::Response {
        let mut req = Request::new("POST", path);
        req.headers
            .push(("content-type".into(), "application/json".into()));
        for (k, v) in headers {
            req.headers.push(((*k).into(), (*v).into()));
        }
        req.body = serde_json::to_vec(body).expect("JSON");
        http::send(addr, &req, TIMEOUT).expect("collector answers")
    }

    fn basic(pk: &str, sk: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{pk}:{sk}"))
        )
    }

    const LF_VERSION: (&str, &str) = (INGESTION_VERSION_HEADER, "4");

    #[test]
    fn opik_accepts_valid_batches_and_records_them() {
        let collector = Collector::start(CollectorOptions {
            opik_api_key: Some("key-1".into()),
            opik_workspace: Some("ws".into()),
            validate: Some(specs()),
            ..CollectorOptions::default()
        });
        let auth = [("authorization", "key-1"), ("Comet-Workspace", "ws")];
        let resp = post(
            collector.addr(),
            "/api/v1/private/traces/batch",
            &auth,
            &trace_batch(),
        );
        assert_eq!(resp.status, 204);
        assert!(resp.body.is_empty());
        // Backend-direct path, without the `/api` prefix.
        let resp = post(
            collector.addr(),
            "/v1/private/spans/batch",
            &auth,
            &span_batch(),
        );
        assert_eq!(resp.status, 204);

        let received = collector.received();
        assert_eq!(received.len(), 2);
        assert!(received
            .iter()
            .all(|r| r.sink == Sink::Opik && r.violations.is_empty()));
        assert_eq!(received[0].header("comet-workspace"), Some("ws"));
        assert_eq!(
            collector.opik_traces(),
            trace_batch()["traces"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        );
        assert_eq!(collector.opik_spans().len(), 1);
        assert_eq!(collector.opik_spans()[0]["id"], SPAN_ID);
        assert!(collector.otlp_spans().is_empty());
    }

    #[test]
    fn opik_rejects_invalid_batches_like_the_backend() {
        let collector = Collector::start(CollectorOptions {
            validate: Some(specs()),
            ..CollectorOptions::default()
        });
        let addr = collector.addr();
        let mut bad_type = span_batch();
        bad_type["spans"][0]["type"] = json!("LLM");
        let resp = post(addr, "/api/v1/private/spans/batch", &[], &bad_type);
        assert_eq!(resp.status, 422);
        let answer: Value = serde_json::from_slice(&resp.body).expect("JSON");
        assert!(answer["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("/spans/0/type")));

        let mut v4 = trace_batch();
        v4["traces"][0]["id"] = json!("3c9a2f0e-6c1b-4a8e-9d57-2b1f0c7e8a11");
        assert_eq!(
            post(addr, "/api/v1/private/traces/batch", &[], &v4).status,
            400
        );

        let mut req = Request::new("POST", "/api/v1/private/traces/batch");
        req.headers
            .push(("content-type".into(), "application/json".into()));
        req.body = b"{\"traces\": [".to_vec();
        assert_eq!(http::send(addr, &req, TIMEOUT).expect("answer").status, 400);

        let received = collector.received();
        assert_eq!(received.len(), 3);
        assert!(received
            .iter()
            .all(|r| !r.accepted() && !r.violations.is_empty()));
        assert_eq!(received[0].violations[0].path, "/spans/0/type");
        assert_eq!(received[2].body, Value::Null);
        assert!(collector.opik_spans().is_empty() && collector.opik_traces().is_empty());
    }

    #[test]
    fn opik_auth() {
        let collector = Collector::start(CollectorOptions {
            opik_api_key: Some("key-1".into()),
            opik_workspace: Some("ws".into()),
            ..CollectorOptions::default()
        });
        let addr = collector.addr();
        let path = "/api/v1/private/traces/batch";
        for (headers, status) in [
            (vec![], 401),
            (
                vec![("authorization", "Bearer key-1"), ("Comet-Workspace", "ws")],
                401,
            ),
            (vec![("authorization", "key-1")], 403),
            (
                vec![("authorization", "key-1"), ("Comet-Workspace", "other")],
                403,
            ),
            (
                vec![("authorization", "key-1"), ("Comet-Workspace", "ws")],
                204,
            ),
        ] {
            assert_eq!(
                post(addr, path, &headers, &trace_batch()).status,
                status,
                "{headers:?}"
            );
        }
        let with_query = format!("{path}?workspace_name=ws");
        assert_eq!(
            post(
                addr,
                &with_query,
                &[("authorization", "key-1")],
                &trace_batch()
            )
            .status,
            204
        );
        // Without validation any JSON is accepted.
        assert_eq!(
            post(
                addr,
                path,
                &[("authorization", "key-1"), ("Comet-Workspace", "ws")],
                &json!({})
            )
            .status,
            204
        );
    }

    #[test]
    fn langfuse_accepts_valid_exports() {
        let collector = Collector::start(CollectorOptions {
            langfuse_keys: Some(("pk-lf-1".into(), "sk-lf-1".into())),
            validate: Some(specs()),
            ..CollectorOptions::default()
        });
        let auth = basic("pk-lf-1", "sk-lf-1");
        let headers = [("Authorization", auth.as_str()), LF_VERSION];
        let resp = post(
            collector.addr(),
            LANGFUSE_OTLP_PATH,
            &headers,
            &otlp_export(),
        );
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"{}");
        let spans = collector.otlp_spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0]["spanId"], "00f067aa0ba902b7");
        let received = collector.received();
        assert_eq!(received[0].sink, Sink::Langfuse);
        assert!(received[0].violations.is_empty());
    }

    #[test]
    fn langfuse_rejects_bad_exports_and_auth() {
        let collector = Collector::start(CollectorOptions {
            langfuse_keys: Some(("pk".into(), "sk".into())),
            validate: Some(specs()),
            ..CollectorOptions::default()
        });
        let addr = collector.addr();
        let auth = basic("pk", "sk");
        let good = [("Authorization", auth.as_str()), LF_VERSION];

        let mut upper = otlp_export();
        upper["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] =
            json!("4BF92F3577B34DA6A3CE929D0E0E4736");
        assert_eq!(post(addr, LANGFUSE_OTLP_PATH, &good, &upper).status, 400);

        let wrong = basic("pk", "nope");
        assert_eq!(
            post(
                addr,
                LANGFUSE_OTLP_PATH,
                &[("Authorization", wrong.as_str()), LF_VERSION],
                &otlp_export()
            )
            .status,
            401
        );
        assert_eq!(
            post(addr, LANGFUSE_OTLP_PATH, &[LF_VERSION], &otlp_export()).status,
            401
        );
        assert_eq!(
            post(
                addr,
                LANGFUSE_OTLP_PATH,
                &[("Authorization", auth.as_str())],
                &otlp_export()
            )
            .status,
            400,
            "the ingestion-version header is required"
        );
        let mut req = Request::new("POST", LANGFUSE_OTLP_PATH);
        req.headers = vec![
            ("content-type".into(), "application/x-protobuf".into()),
            ("authorization".into(), auth.clone()),
            (INGESTION_VERSION_HEADER.into(), "4".into()),
        ];
        req.body = vec![0x0a, 0x00];
        assert_eq!(http::send(addr, &req, TIMEOUT).expect("answer").status, 400);

        let received = collector.received();
        assert_eq!(received.len(), 5);
        assert!(received[0]
            .violations
            .iter()
            .any(|v| v.path.ends_with("/traceId")));
        assert!(received[3]
            .violations
            .iter()
            .any(|v| v.message.contains(INGESTION_VERSION_HEADER)));
        assert!(collector.otlp_spans().is_empty());
    }

    #[test]
    fn lenient_ingestion_version() {
        let collector = Collector::start(CollectorOptions {
            lenient_ingestion_version: true,
            ..CollectorOptions::default()
        });
        assert_eq!(
            post(collector.addr(), LANGFUSE_OTLP_PATH, &[], &otlp_export()).status,
            200
        );
        let bad = [(INGESTION_VERSION_HEADER, "5")];
        assert_eq!(
            post(collector.addr(), LANGFUSE_OTLP_PATH, &bad, &otlp_export()).status,
            400
        );
    }

    #[test]
    fn scripted_failures_come_first() {
        let collector = Collector::start(CollectorOptions {
            script: vec![500, 429],
            validate: Some(specs()),
            ..CollectorOptions::default()
        });
        let addr = collector.addr();
        let path = "/api/v1/private/spans/batch";
        assert_eq!(post(addr, path, &[], &span_batch()).status, 500);
        let resp = post(addr, path, &[], &span_batch());
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("ratelimit-reset"), Some("1"));
        assert_eq!(post(addr, path, &[], &span_batch()).status, 204);
        collector.push_script(&[429]);
        let resp = post(addr, LANGFUSE_OTLP_PATH, &[LF_VERSION], &otlp_export());
        assert_eq!(resp.status, 429);
        assert_eq!(resp.header("retry-after"), Some("1"));

        let statuses: Vec<u16> = collector
            .received()
            .iter()
            .map(|r| r.status_answered)
            .collect();
        assert_eq!(statuses, [500, 429, 204, 429]);
        // Only the accepted batch counts.
        assert_eq!(collector.opik_spans().len(), 1);
        assert!(collector.received().iter().all(|r| r.violations.is_empty()));
    }

    #[test]
    fn unknown_paths_and_methods() {
        let collector = Collector::start(CollectorOptions::default());
        let resp = post(collector.addr(), "/v2/logs", &[], &otlp_export());
        assert_eq!(resp.status, 404);
        let req = Request::new("GET", "/api/v1/private/traces/batch");
        assert_eq!(
            http::send(collector.addr(), &req, TIMEOUT)
                .expect("answer")
                .status,
            405
        );
        let received = collector.received();
        assert_eq!(received[0].sink, Sink::Unknown);
        assert_eq!(received[1].sink, Sink::Opik);
        assert_eq!(received[1].method, "GET");
        collector.clear();
        assert!(collector.received().is_empty());
    }

    #[test]
    fn wait_for_sees_late_requests() {
        let collector = Collector::start(CollectorOptions {
            delay: Some(Duration::from_millis(20)),
            ..CollectorOptions::default()
        });
        let addr = collector.addr();
        assert!(!collector.wait_for(|r| !r.is_empty(), Duration::from_millis(30)));
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            post(addr, "/api/v1/private/traces/batch", &[], &trace_batch()).status
        });
        assert!(collector.wait_for(|r| r.iter().any(|r| r.sink == Sink::Opik), TIMEOUT));
        assert_eq!(sender.join().expect("sender"), 204);
        assert_eq!(collector.opik_traces().len(), 1);
    }

    #[test]
    fn flattens_otlp_spans() {
        let mut body = otlp_export();
        let span = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0].clone();
        body["resourceSpans"][0]["scopeSpans"]
            .as_array_mut()
            .expect("scopeSpans")
            .push(json!({"spans": [span.clone(), span]}));
        assert_eq!(otlp_spans_of(&body).len(), 3);
        assert!(otlp_spans_of(&json!({})).is_empty());
    }
}
