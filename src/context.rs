//! Who made an exchange, in which conversation and project, and under which caller's trace:
//! the trace context, gathered from request headers, the request body, per-API-key and per-route
//! defaults and the configuration. No host calls.
//!
//! Precedence, highest first: request body > headers > API-key defaults > route defaults >
//! configuration defaults. Scalars take the first source that has them; tags are the union of
//! all sources (in that order, without repeats); metadata keys take the value of the first
//! source that has the key. A session id is only ever one a caller gave: none is invented.

use crate::config::{ConfigError, Obj};
use crate::json::Members;
use crate::memo::LastKey;
use crate::sha256;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most tags kept per exchange.
pub const MAX_TAGS: usize = 50;
/// Longest tag, or scalar context value, kept (bytes; longer ones are cut on a char boundary).
pub const MAX_VALUE_BYTES: usize = 256;
/// Most metadata entries taken from one request body.
pub const MAX_BODY_METADATA: usize = 64;

/// A context field that headers can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// End user.
    User,
    /// Session, conversation or thread.
    Session,
    /// Chat (Open WebUI style chat id).
    ChatId,
    /// Message id within a chat.
    MessageId,
    /// Organization of the caller.
    OrganizationId,
    /// Project id of the caller.
    ProjectId,
    /// Opik project the trace is filed under.
    ProjectName,
    /// Name of the trace.
    TraceName,
    /// Release (version) of the calling application.
    Release,
    /// Tags: a JSON array of strings or a comma-separated list.
    Tags,
}

impl Field {
    /// Every field, in configuration order.
    pub const ALL: [Field; 10] = [
        Field::User,
        Field::Session,
        Field::ChatId,
        Field::MessageId,
        Field::OrganizationId,
        Field::ProjectId,
        Field::ProjectName,
        Field::TraceName,
        Field::Release,
        Field::Tags,
    ];

    /// The field's configuration key (`context.headers.<key>`).
    pub fn key(self) -> &'static str {
        match self {
            Field::User => "user",
            Field::Session => "session",
            Field::ChatId => "chat_id",
            Field::MessageId => "message_id",
            Field::OrganizationId => "organization_id",
            Field::ProjectId => "project_id",
            Field::ProjectName => "project_name",
            Field::TraceName => "trace_name",
            Field::Release => "release",
            Field::Tags => "tags",
        }
    }

    /// Headers read for the field when the configuration names none. Underscore names come with
    /// their dash forms, since nginx drops headers with underscores unless told otherwise.
    pub fn default_headers(self) -> &'static [&'static str] {
        match self {
            Field::User => &["x-user-id", "langfuse_user_id", "langfuse-user-id"],
            Field::Session => &[
                "x-session-id",
                "opik_thread_id",
                "opik-thread-id",
                "langfuse_session_id",
                "langfuse-session-id",
            ],
            Field::ChatId => &["x-chat-id"],
            Field::MessageId => &["x-message-id"],
            Field::OrganizationId => &["x-organization-id"],
            Field::ProjectId => &["x-project-id"],
            Field::ProjectName => &["opik_project_name", "opik-project-name"],
            Field::TraceName => &["langfuse_trace_name", "langfuse-trace-name"],
            Field::Release => &["langfuse_release", "langfuse-release"],
            Field::Tags => &["opik_tags", "opik-tags", "langfuse_tags", "langfuse-tags"],
        }
    }
}

/// Headers that carry credentials: never recorded, whatever the configuration says.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
];

/// Headers whose value identifies the caller's API key, in the order they are tried.
pub const API_KEY_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Hex digits of the key fingerprint recorded in metadata (`api_key.fingerprint`).
pub const FINGERPRINT_HEX: usize = 12;

/// Values given by default: configuration-wide, per route or per API key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    /// End user.
    pub user: Option<String>,
    /// Opik project.
    pub project_name: Option<String>,
    /// Trace name.
    pub trace_name: Option<String>,
    /// Application release.
    pub release: Option<String>,
    /// Deployment environment (`production`, `staging`).
    pub environment: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Metadata entries.
    pub metadata: BTreeMap<String, Value>,
}

const DEFAULTS_KEYS: &[&str] = &[
    "user",
    "project_name",
    "trace_name",
    "release",
    "environment",
    "tags",
    "metadata",
];

impl Defaults {
    /// Parses a defaults object (`context.defaults`, `routes[i].context`, an API-key entry).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending key.
    pub fn parse(value: &Value, path: &str) -> Result<Defaults, ConfigError> {
        let obj = Obj::new(value, path)?;
        obj.only(DEFAULTS_KEYS)?;
        let tags = match obj.get("tags") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut tags = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().map(str::trim) {
                        Some(t) if !t.is_empty() => push_tag(&mut tags, t),
                        _ => {
                            return Err(ConfigError::WrongType {
                                path: format!("{}[{i}]", obj.path("tags")),
                                expected: "a non-empty string",
                            })
                        }
                    }
                }
                tags
            }
            Some(_) => {
                return Err(ConfigError::WrongType {
                    path: obj.path("tags"),
                    expected: "an array of strings",
                })
            }
        };
        let metadata = match obj.get("metadata") {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Some(_) => {
                return Err(ConfigError::WrongType {
                    path: obj.path("metadata"),
                    expected: "an object",
                })
            }
        };
        Ok(Defaults {
            user: obj.non_blank("user")?,
            project_name: obj.non_blank("project_name")?,
            trace_name: obj.non_blank("trace_name")?,
            release: obj.non_blank("release")?,
            environment: obj.non_blank("environment")?,
            tags,
            metadata,
        })
    }
}

/// How the context of an exchange is gathered (`context` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextConfig {
    /// Headers read per field, first present wins.
    pub headers: Vec<(Field, Vec<String>)>,
    /// Headers copied into metadata as `header.<name>` (never credentials).
    pub metadata_headers: Vec<String>,
    /// Configuration-wide defaults.
    pub defaults: Defaults,
    /// Defaults per API key, keyed by a lowercase hex prefix of the key's SHA-256.
    pub api_keys: Vec<(String, Defaults)>,
    /// Read `user` and `metadata` from request bodies.
    pub from_body: bool,
    /// Join the caller's W3C trace (`traceparent`, `tracestate`).
    pub traceparent: bool,
    /// Record the gateway's route and service (Kong) or route and cluster (Envoy) as metadata.
    pub gateway_metadata: bool,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            headers: Field::ALL
                .iter()
                .map(|f| {
                    let names = f.default_headers().iter().map(|h| h.to_string()).collect();
                    (*f, names)
                })
                .collect(),
            metadata_headers: Vec::new(),
            defaults: Defaults::default(),
            api_keys: Vec::new(),
            from_body: true,
            traceparent: true,
            gateway_metadata: true,
        }
    }
}

impl ContextConfig {
    /// Parses the `context` object; `None` gives the defaults.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the offending key. API-key prefixes are not echoed beyond
    /// their position.
    pub fn parse(value: Option<&Value>) -> Result<ContextConfig, ConfigError> {
        let mut config = ContextConfig::default();
        let Some(value) = value else {
            return Ok(config);
        };
        let obj = Obj::new(value, "context")?;
        obj.only(&[
            "headers",
            "metadata_headers",
            "defaults",
            "api_keys",
            "from_body",
            "traceparent",
            "gateway_metadata",
        ])?;
        if let Some(headers) = obj.get("headers") {
            let h = Obj::new(headers, "context.headers")?;
            let keys: Vec<&str> = Field::ALL.iter().map(|f| f.key()).collect();
            h.only(&keys)?;
            for (field, names) in &mut config.headers {
                if let Some(list) = h.header_names(field.key())? {
                    *names = list;
                }
            }
        }
        if let Some(list) = obj.header_names("metadata_headers")? {
            if let Some(at) = list.iter().position(|h| is_credential(h, &[])) {
                return Err(ConfigError::Invalid {
                    path: format!("context.metadata_headers[{at}]"),
                    reason: "credential headers are never recorded",
                });
            }
            config.metadata_headers = list;
        }
        if let Some(d) = obj.get("defaults") {
            config.defaults = Defaults::parse(d, "context.defaults")?;
        }
        if let Some(keys) = obj.get("api_keys") {
            config.api_keys = parse_api_keys(keys)?;
        }
        config.from_body = obj.boolean("from_body", true)?;
        config.traceparent = obj.boolean("traceparent", true)?;
        config.gateway_metadata = obj.boolean("gateway_metadata", true)?;
        Ok(config)
    }

    /// The defaults configured for a fingerprint (lowercase hex SHA-256 of the key): the entry
    /// with the longest matching prefix.
    pub fn key_defaults(&self, fingerprint: &str) -> Option<&Defaults> {
        self.api_keys
            .iter()
            .filter(|(prefix, _)| fingerprint.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, d)| d)
    }
}

fn parse_api_keys(value: &Value) -> Result<Vec<(String, Defaults)>, ConfigError> {
    let obj = Obj::new(value, "context.api_keys")?;
    let mut entries = Vec::new();
    for (i, (prefix, defaults)) in obj.entries().enumerate() {
        let valid = (8..=64).contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            // The position, not the text: a key pasted here by mistake must not reach a log.
            return Err(ConfigError::Invalid {
                path: format!("context.api_keys (entry {i})"),
                reason: "keys must be 8 to 64 lowercase hex digits of the API key's SHA-256, never the key itself",
            });
        }
        let path = format!("context.api_keys.{prefix}");
        entries.push((prefix.clone(), Defaults::parse(defaults, &path)?));
    }
    Ok(entries)
}

/// Whether a header carries credentials (built-in list or configured extras). `name` is
/// lowercase.
pub fn is_credential(name: &str, extra: &[String]) -> bool {
    CREDENTIAL_HEADERS.contains(&name) || extra.iter().any(|e| e == name)
}

/// The caller's position in a W3C trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parent {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The caller's span id: the exchange's span becomes its child.
    pub span_id: [u8; 8],
    /// The caller's sampled flag.
    pub sampled: bool,
    /// `tracestate`, passed on verbatim (bounded).
    pub tracestate: Option<String>,
}

/// An existing Opik trace and span to attach the exchange to
/// (`metadata.opik.current_span_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpikParent {
    /// Opik trace id (UUID).
    pub trace_id: String,
    /// Opik span id (UUID) that becomes the exchange span's parent.
    pub span_id: Option<String>,
    /// Project of that trace, when given.
    pub project_name: Option<String>,
}

/// The context of one exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Context {
    /// End user.
    pub user: Option<String>,
    /// Session / conversation / thread.
    pub session: Option<String>,
    /// Chat id.
    pub chat_id: Option<String>,
    /// Message id.
    pub message_id: Option<String>,
    /// Organization id.
    pub organization_id: Option<String>,
    /// Project id.
    pub project_id: Option<String>,
    /// Opik project name (overrides the sink's).
    pub project_name: Option<String>,
    /// Trace name (overrides the API name).
    pub trace_name: Option<String>,
    /// Application release.
    pub release: Option<String>,
    /// Deployment environment.
    pub environment: Option<String>,
    /// Tags, in precedence order, without repeats.
    pub tags: Vec<String>,
    /// Metadata entries.
    pub metadata: BTreeMap<String, Value>,
    /// The caller's W3C trace, when it sent `traceparent`.
    pub parent: Option<Parent>,
    /// An Opik trace to join, when the body named one.
    pub opik_parent: Option<OpikParent>,
}

impl Context {
    fn slot(&mut self, field: Field) -> Option<&mut Option<String>> {
        Some(match field {
            Field::User => &mut self.user,
            Field::Session => &mut self.session,
            Field::ChatId => &mut self.chat_id,
            Field::MessageId => &mut self.message_id,
            Field::OrganizationId => &mut self.organization_id,
            Field::ProjectId => &mut self.project_id,
            Field::ProjectName => &mut self.project_name,
            Field::TraceName => &mut self.trace_name,
            Field::Release => &mut self.release,
            Field::Tags => return None,
        })
    }

    /// Sets `field` from a higher-precedence source: a non-blank value replaces what a lower
    /// source gave. Tags are added in front of the lower sources' tags.
    pub fn set(&mut self, field: Field, raw: &str) {
        if field == Field::Tags {
            let mut tags = parse_tags(raw);
            for t in std::mem::take(&mut self.tags) {
                push_tag(&mut tags, &t);
            }
            self.tags = tags;
            return;
        }
        let value = raw.trim();
        if value.is_empty() {
            return;
        }
        if let Some(slot) = self.slot(field) {
            *slot = Some(cut(value));
        }
    }

    /// Sets `field` only when no source gave it yet (for lower-precedence sources applied
    /// after higher ones).
    fn fill(&mut self, field: Field, value: Option<&str>) {
        if let (Some(slot), Some(v)) = (self.slot(field), value) {
            if slot.is_none() && !v.trim().is_empty() {
                *slot = Some(cut(v.trim()));
            }
        }
    }

    /// Applies lower-precedence defaults: fills what is still unset, appends tags, adds
    /// metadata keys not yet present.
    pub fn fill_defaults(&mut self, d: &Defaults) {
        self.fill(Field::User, d.user.as_deref());
        self.fill(Field::ProjectName, d.project_name.as_deref());
        self.fill(Field::TraceName, d.trace_name.as_deref());
        self.fill(Field::Release, d.release.as_deref());
        if self.environment.is_none() {
            self.environment.clone_from(&d.environment);
        }
        for t in &d.tags {
            push_tag(&mut self.tags, t);
        }
        for (k, v) in &d.metadata {
            self.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Reads the configured headers (highest precedence first within each field's list).
    /// `header` returns a request header's value by lowercase name.
    pub fn from_headers(config: &ContextConfig, header: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut ctx = Context::default();
        for (field, names) in &config.headers {
            if let Some(value) = names.iter().find_map(|n| non_blank(header(n))) {
                ctx.set(*field, &value);
            }
        }
        for name in &config.metadata_headers {
            if let Some(value) = non_blank(header(name)) {
                ctx.metadata
                    .insert(format!("header.{name}"), Value::String(cut(&value)));
            }
        }
        if config.traceparent {
            ctx.parent = header("traceparent")
                .and_then(|tp| parse_traceparent(&tp, header("tracestate").as_deref()));
        }
        ctx
    }

    /// Applies the request body's `user` and `metadata` over what headers and defaults gave
    /// (the body has the highest precedence). A body that is not a JSON object is ignored.
    pub fn apply_body(&mut self, body: &[u8]) {
        if let Some(members) = Members::parse(body) {
            self.apply_members(members.get("user"), members.get("metadata"));
        }
    }

    /// [`Context::apply_body`] for a body already read: the JSON text of its top-level `user`
    /// and `metadata` members (the first of each name), `None` for a member it does not have.
    pub fn apply_members(&mut self, user: Option<&str>, metadata: Option<&str>) {
        let member =
            |raw: Option<&str>| raw.and_then(|raw| serde_json::from_str::<Value>(raw).ok());
        let mut from_body = Context::default();
        if let Some(Value::Object(meta)) = member(metadata) {
            from_body.read_metadata(&meta);
        }
        if let Some(Value::String(user)) = member(user) {
            from_body.fill(Field::User, Some(&user));
        }
        self.overlay(from_body);
    }

    /// Puts `higher`'s values over this context's.
    fn overlay(&mut self, mut higher: Context) {
        for field in Field::ALL {
            let value = higher.slot(field).and_then(Option::take);
            if let (Some(slot), Some(v)) = (self.slot(field), value) {
                *slot = Some(v);
            }
        }
        if higher.environment.is_some() {
            self.environment = higher.environment;
        }
        let mut tags = higher.tags;
        for t in std::mem::take(&mut self.tags) {
            push_tag(&mut tags, &t);
        }
        self.tags = tags;
        self.metadata.extend(higher.metadata);
        if higher.opik_parent.is_some() {
            self.opik_parent = higher.opik_parent;
        }
    }

    /// `metadata.opik.*` and `metadata.langfuse.*` first, then the generic `metadata.*` keys;
    /// other scalar keys become metadata entries.
    fn read_metadata(&mut self, meta: &Map<String, Value>) {
        if let Some(Value::Object(opik)) = meta.get("opik") {
            self.fill(Field::ProjectName, str_of(opik.get("project_name")));
            self.fill(Field::Session, str_of(opik.get("thread_id")));
            add_tags(&mut self.tags, opik.get("tags"));
            self.opik_parent = opik.get("current_span_data").and_then(opik_parent);
        }
        if let Some(Value::Object(lf)) = meta.get("langfuse") {
            self.fill(Field::TraceName, str_of(lf.get("trace_name")));
            self.fill(Field::Session, str_of(lf.get("session_id")));
            self.fill(Field::User, str_of(lf.get("user_id")));
            self.fill(Field::Release, str_of(lf.get("release")));
            add_tags(&mut self.tags, lf.get("tags"));
            if let Some(Value::Object(extra)) = lf.get("metadata") {
                self.add_metadata(extra);
            }
        }
        for (key, field) in GENERIC_KEYS {
            self.fill(*field, str_of(meta.get(*key)));
        }
        add_tags(&mut self.tags, meta.get("tags"));
        self.add_metadata(meta);
    }

    /// Scalar entries of `map` that are not context keys become metadata.
    fn add_metadata(&mut self, map: &Map<String, Value>) {
        let taken = self.metadata.len();
        let scalars = map
            .iter()
            .filter(|(k, _)| !is_context_key(k))
            .filter(|(_, v)| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)))
            .take(MAX_BODY_METADATA.saturating_sub(taken));
        for (k, v) in scalars {
            let v = match v {
                Value::String(s) => Value::String(cut(s)),
                other => other.clone(),
            };
            self.metadata.entry(cut(k)).or_insert(v);
        }
    }
}

/// Generic `metadata.<key>` names and the fields they set.
const GENERIC_KEYS: &[(&str, Field)] = &[
    ("user_id", Field::User),
    ("trace_user_id", Field::User),
    ("session_id", Field::Session),
    ("thread_id", Field::Session),
    ("chat_id", Field::ChatId),
    ("message_id", Field::MessageId),
    ("organization_id", Field::OrganizationId),
    ("project_id", Field::ProjectId),
    ("project_name", Field::ProjectName),
    ("trace_name", Field::TraceName),
    ("release", Field::Release),
];

/// Keys of a request's `metadata` object that only carry tracing context: the ones
/// `strip_request_metadata` removes before the body goes upstream. `user_id` is not among
/// them: Anthropic reads it.
pub const TRACING_METADATA_KEYS: &[&str] = &[
    "opik",
    "langfuse",
    "trace_user_id",
    "session_id",
    "thread_id",
    "chat_id",
    "message_id",
    "organization_id",
    "project_id",
    "project_name",
    "trace_name",
    "release",
    "tags",
];

fn is_context_key(key: &str) -> bool {
    key == "user_id" || TRACING_METADATA_KEYS.contains(&key) || key == "metadata"
}

fn str_of(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

fn add_tags(tags: &mut Vec<String>, value: Option<&Value>) {
    match value {
        Some(Value::Array(items)) => {
            for t in items.iter().filter_map(Value::as_str) {
                push_tag(tags, t);
            }
        }
        Some(Value::String(list)) => {
            for t in parse_tags(list) {
                push_tag(tags, &t);
            }
        }
        _ => {}
    }
}

fn opik_parent(value: &Value) -> Option<OpikParent> {
    let obj = value.as_object()?;
    let trace_id = str_of(obj.get("trace_id")).filter(|t| is_uuid(t))?;
    Some(OpikParent {
        trace_id: trace_id.to_ascii_lowercase(),
        span_id: str_of(obj.get("id"))
            .filter(|s| is_uuid(s))
            .map(str::to_ascii_lowercase),
        project_name: str_of(obj.get("project_name"))
            .filter(|p| !p.trim().is_empty())
            .map(cut),
    })
}

/// Whether `s` is a UUID in its 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Tags from a header or body value: a JSON array of strings, or a comma-separated list.
pub fn parse_tags(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    let mut tags = Vec::new();
    if raw.starts_with('[') {
        if let Ok(items) = serde_json::from_slice::<Vec<Value>>(raw.as_bytes()) {
            for t in items.iter().filter_map(Value::as_str) {
                push_tag(&mut tags, t);
            }
            return tags;
        }
    }
    for t in raw.split(',') {
        push_tag(&mut tags, t);
    }
    tags
}

fn push_tag(tags: &mut Vec<String>, tag: &str) {
    let tag = tag.trim();
    if !tag.is_empty() && tags.len() < MAX_TAGS && !tags.iter().any(|t| t == tag) {
        tags.push(cut(tag));
    }
}

fn non_blank(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

/// `value` cut to [`MAX_VALUE_BYTES`] on a char boundary.
fn cut(value: &str) -> String {
    if value.len() <= MAX_VALUE_BYTES {
        return value.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_string()
}

/// Parses a W3C `traceparent` (version 00, or a later version read as 00 as the spec asks).
/// All-zero ids and malformed values give `None`.
pub fn parse_traceparent(value: &str, tracestate: Option<&str>) -> Option<Parent> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let version_ok = version.len() == 2 && version != "ff" && is_lower_hex(version);
    if !version_ok || (version == "00" && parts.next().is_some()) {
        return None;
    }
    let trace_id: [u8; 16] = unhex(trace)?;
    let span_id: [u8; 8] = unhex(span)?;
    let [flags]: [u8; 1] = unhex(flags)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let tracestate = tracestate
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .map(str::to_string);
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
        tracestate,
    })
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 || !is_lower_hex(s) {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *byte = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The API key a request presents, from the first of [`API_KEY_HEADERS`] that is set;
/// `Bearer ` and `Basic ` schemes are dropped.
pub fn presented_key(header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    API_KEY_HEADERS.iter().find_map(|name| {
        let value = header(name)?;
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let key = if ["bearer", "basic"]
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
        {
            rest.trim()
        } else {
            value
        };
        (!key.is_empty()).then(|| key.to_string())
    })
}

/// Lowercase hex SHA-256 of an API key.
pub fn fingerprint(key: &str) -> String {
    sha256::hex_digest(key.as_bytes())
}

/// The fingerprint of the last API key seen: callers mostly present the same key again, and
/// then its SHA-256 is not computed again. It holds that one key (up to 4 KiB) in memory and
/// never shows it (its `Debug` prints nothing of it).
#[derive(Debug)]
pub struct KeyPrints {
    last: LastKey<String>,
}

impl Default for KeyPrints {
    fn default() -> Self {
        KeyPrints {
            last: LastKey::new(4096),
        }
    }
}

impl KeyPrints {
    /// [`fingerprint`] of `key`, computed only when `key` is not the last one asked for.
    pub fn fingerprint(&mut self, key: &str) -> String {
        self.last.get(key, fingerprint).clone()
    }
}

/// Resolves an exchange's context from headers and defaults (the body comes later, through
/// [`Context::apply_body`]): headers, then the caller's API-key defaults, then the route's,
/// then the configuration's.
pub fn resolve(
    config: &ContextConfig,
    route: Option<&Defaults>,
    header: &dyn Fn(&str) -> Option<String>,
) -> Context {
    resolve_with(config, route, header, &mut KeyPrints::default())
}

/// [`resolve`], with the API-key fingerprints kept in `prints` from one exchange to the next.
pub fn resolve_with(
    config: &ContextConfig,
    route: Option<&Defaults>,
    header: &dyn Fn(&str) -> Option<String>,
    prints: &mut KeyPrints,
) -> Context {
    let mut ctx = Context::from_headers(config, header);
    if let Some(key) = presented_key(header) {
        let print = prints.fingerprint(&key);
        if let Some(d) = config.key_defaults(&print) {
            ctx.fill_defaults(d);
        }
        ctx.metadata.insert(
            "api_key.fingerprint".into(),
            Value::String(print.get(..FINGERPRINT_HEX).unwrap_or(&print).to_string()),
        );
    }
    if let Some(d) = route {
        ctx.fill_defaults(d);
    }
    ctx.fill_defaults(&config.defaults);
    ctx
}

#[cfg(test)]
mod tests;
