//! Validation of the payloads the filter exports, against the published specs kept in
//! `shared/specs/` beside the repository.
//!
//! Three payload kinds are checked:
//!
//! * Opik `POST /v1/private/traces/batch` and `/v1/private/spans/batch` bodies, against
//!   `TraceBatch_Write` / `SpanBatch_Write` of `opik-openapi.yaml` (OpenAPI 3.1, read as JSON
//!   Schema 2020-12 with format assertions on), with the workarounds of `backends.md` §7, plus the
//!   rules the schema cannot express (UUIDv7 ids, UTC `Z` timestamps, int32 usage, …).
//! * OTLP/HTTP JSON trace exports (`ExportTraceServiceRequest`), against the OTLP/JSON encoding
//!   rules, the OpenTelemetry GenAI semantic conventions (attribute registry types and the message
//!   JSON Schemas) and what Langfuse expects of its `langfuse.*` attributes.
//!
//! Every check returns a list of [`Violation`]s; an empty list means the payload is valid. The
//! module does no I/O after [`Specs::load`], so one [`Specs`] can be shared by tests and by the
//! local collector (it is cheap to clone).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use jsonschema::Validator;
use serde_json::{json, Map, Value};

/// Environment variable naming the specs directory; it overrides every other lookup.
pub const SPECS_ENV: &str = "LLM_TRACER_SPECS";

/// File whose presence marks a directory as the specs directory.
const MARKER_FILE: &str = "opik-openapi.yaml";
const OPIK_SPEC: &str = "opik-openapi.yaml";
const SEMCONV_DIR: &str = "otel-semconv-gen-ai";
const INPUT_MESSAGES_SCHEMA: &str = "gen-ai-input-messages.json";
const OUTPUT_MESSAGES_SCHEMA: &str = "gen-ai-output-messages.json";
const SYSTEM_INSTRUCTIONS_SCHEMA: &str = "gen-ai-system-instructions.json";
const TOOL_DEFINITIONS_SCHEMA: &str = "gen-ai-tool-definitions.json";
const REGISTRY: &str = "registry.yaml";
const REGISTRY_DEPRECATED: &str = "registry-deprecated.yaml";

/// One rule a payload breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer (RFC 6901) to the offending value in the validated document; empty for the
    /// document itself.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Violation {
    /// Builds a violation at `path` (a JSON Pointer) with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(root): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why the specs could not be found or loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecsError {
    /// No directory holding the specs was found.
    NotFound {
        /// Every directory that was tried, in order.
        searched: Vec<PathBuf>,
    },
    /// A spec file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error kind.
        kind: io::ErrorKind,
    },
    /// A spec file is not valid YAML or JSON.
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A spec file lacks a part this module needs.
    Missing {
        /// The file.
        path: PathBuf,
        /// JSON Pointer to the missing part.
        pointer: String,
    },
    /// A schema taken from a spec file does not compile.
    Compile {
        /// Which schema.
        schema: String,
        /// The compiler's message.
        message: String,
    },
}

impl fmt::Display for SpecsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { searched } => {
                write!(f, "specs directory not found (set {SPECS_ENV}); searched: ")?;
                for (i, dir) in searched.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", dir.display())?;
                }
                Ok(())
            }
            Self::Read { path, kind } => write!(f, "cannot read {}: {kind}", path.display()),
            Self::Parse { path, message } => {
                write!(f, "cannot parse {}: {message}", path.display())
            }
            Self::Missing { path, pointer } => {
                write!(f, "{} has nothing at {pointer}", path.display())
            }
            Self::Compile { schema, message } => {
                write!(f, "schema {schema} does not compile: {message}")
            }
        }
    }
}

impl std::error::Error for SpecsError {}

/// Which GenAI message-content JSON Schema to apply (OTel semconv `docs/gen-ai/*.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentSchema {
    /// `gen-ai-input-messages.json`, for `gen_ai.input.messages`.
    InputMessages,
    /// `gen-ai-output-messages.json`, for `gen_ai.output.messages`.
    OutputMessages,
    /// `gen-ai-system-instructions.json`, for `gen_ai.system_instructions`.
    SystemInstructions,
    /// `gen-ai-tool-definitions.json`, for `gen_ai.tool.definitions`.
    ToolDefinitions,
}

impl ContentSchema {
    /// The span attribute whose value this schema describes.
    pub fn attribute(self) -> &'static str {
        match self {
            Self::InputMessages => "gen_ai.input.messages",
            Self::OutputMessages => "gen_ai.output.messages",
            Self::SystemInstructions => "gen_ai.system_instructions",
            Self::ToolDefinitions => "gen_ai.tool.definitions",
        }
    }

    fn from_attribute(key: &str) -> Option<Self> {
        [
            Self::InputMessages,
            Self::OutputMessages,
            Self::SystemInstructions,
            Self::ToolDefinitions,
        ]
        .into_iter()
        .find(|schema| schema.attribute() == key)
    }
}

/// The value type the semconv attribute registry gives an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrType {
    String,
    Int,
    Double,
    Bool,
    StringArray,
    IntArray,
    DoubleArray,
    BoolArray,
    /// `any`: structured; checked elsewhere or not at all.
    Any,
}

impl AttrType {
    fn from_registry(ty: &Value) -> Self {
        match ty {
            Value::String(s) => match s.as_str() {
                "string" => Self::String,
                "int" => Self::Int,
                "double" => Self::Double,
                "boolean" => Self::Bool,
                "string[]" => Self::StringArray,
                "int[]" => Self::IntArray,
                "double[]" => Self::DoubleArray,
                "boolean[]" => Self::BoolArray,
                _ => Self::Any,
            },
            // An enum: `{members: [{value: …}]}`; the members' values give the type.
            Value::Object(obj) => {
                let members = obj.get("members").and_then(Value::as_array);
                let all = |pred: fn(&Value) -> bool| {
                    members.is_some_and(|m| {
                        !m.is_empty() && m.iter().all(|m| m.get("value").is_some_and(pred))
                    })
                };
                if all(Value::is_string) {
                    Self::String
                } else if all(|v| v.is_i64() || v.is_u64()) {
                    Self::Int
                } else if all(Value::is_number) {
                    Self::Double
                } else {
                    Self::Any
                }
            }
            _ => Self::Any,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::String => "a stringValue",
            Self::Int => "an intValue",
            Self::Double => "a doubleValue",
            Self::Bool => "a boolValue",
            Self::StringArray => "an arrayValue of stringValue",
            Self::IntArray => "an arrayValue of intValue",
            Self::DoubleArray => "an arrayValue of doubleValue",
            Self::BoolArray => "an arrayValue of boolValue",
            Self::Any => "any value",
        }
    }

    fn matches(self, any: &Value) -> bool {
        let elems = |key: &str| -> bool {
            array_values(any).is_some_and(|vals| vals.iter().all(|v| v.get(key).is_some()))
        };
        match self {
            Self::String => any.get("stringValue").is_some(),
            Self::Int => any.get("intValue").is_some(),
            Self::Double => any.get("doubleValue").is_some(),
            Self::Bool => any.get("boolValue").is_some(),
            Self::StringArray => elems("stringValue"),
            Self::IntArray => elems("intValue"),
            Self::DoubleArray => elems("doubleValue"),
            Self::BoolArray => elems("boolValue"),
            Self::Any => true,
        }
    }
}

/// The published specs, loaded and compiled once.
///
/// Cloning is cheap (shared), and the value is `Send + Sync`.
#[derive(Clone)]
pub struct Specs {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    opik_trace_batch: Validator,
    opik_span_batch: Validator,
    input_messages: Validator,
    output_messages: Validator,
    system_instructions: Validator,
    tool_definitions: Validator,
    attribute_types: HashMap<String, AttrType>,
}

impl fmt::Debug for Specs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Specs")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Specs {
    /// Finds the specs directory and loads it; see [`Specs::locate_dir`].
    ///
    /// # Errors
    ///
    /// [`SpecsError::NotFound`] when no directory is found, else any error of [`Specs::load`].
    pub fn locate() -> Result<Self, SpecsError> {
        Self::load(Self::locate_dir()?)
    }

    /// Like [`Specs::locate`], but loads only once per process and hands out clones.
    ///
    /// # Errors
    ///
    /// As [`Specs::locate`]; a failure is remembered and returned again.
    pub fn shared() -> Result<Self, SpecsError> {
        static SHARED: OnceLock<Result<Specs, SpecsError>> = OnceLock::new();
        SHARED.get_or_init(Self::locate).clone()
    }

    /// Finds the directory holding the specs.
    ///
    /// In order: the directory named by `LLM_TRACER_SPECS` (when set, it is the only candidate);
    /// else `shared/specs` under any ancestor of this crate's manifest directory (the repository
    /// is checked out as `<X>/main`, the specs are at `<X>/shared/specs`); else `shared/specs`
    /// under any ancestor of the current directory. A candidate counts when it holds
    /// `opik-openapi.yaml`.
    ///
    /// # Errors
    ///
    /// [`SpecsError::NotFound`] listing every directory tried.
    pub fn locate_dir() -> Result<PathBuf, SpecsError> {
        let is_specs = |dir: &Path| dir.join(MARKER_FILE).is_file();
        if let Some(dir) = std::env::var_os(SPECS_ENV).filter(|v| !v.is_empty()) {
            let dir = PathBuf::from(dir);
            return if is_specs(&dir) {
                Ok(dir)
            } else {
                Err(SpecsError::NotFound {
                    searched: vec![dir],
                })
            };
        }
        let mut roots: Vec<PathBuf> = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            roots.push(PathBuf::from(dir));
        }
        if let Ok(dir) = std::env::current_dir() {
            roots.push(dir);
        }
        let mut searched = Vec::new();
        for root in &roots {
            for ancestor in root.ancestors() {
                let candidate = ancestor.join("shared").join("specs");
                if searched.contains(&candidate) {
                    continue;
                }
                if is_specs(&candidate) {
                    return Ok(candidate);
                }
                searched.push(candidate);
            }
        }
        Err(SpecsError::NotFound { searched })
    }

    /// Loads and compiles the specs found in `dir`.
    ///
    /// # Errors
    ///
    /// A [`SpecsError`] naming the file that cannot be read, parsed or compiled.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, SpecsError> {
        let dir = dir.as_ref().to_path_buf();

        let opik_path = dir.join(OPIK_SPEC);
        let opik: Value = parse_yaml(&opik_path)?;
        let mut schemas = opik
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| SpecsError::Missing {
                path: opik_path.clone(),
                pointer: "/components/schemas".to_owned(),
            })?;
        patch_opik_schemas(&mut schemas, &opik_path)?;
        let schemas = Value::Object(schemas);
        let opik_root = |name: &str| -> Result<Validator, SpecsError> {
            if schemas.get(name).is_none() {
                return Err(SpecsError::Missing {
                    path: opik_path.clone(),
                    pointer: format!("/components/schemas/{name}"),
                });
            }
            let root = json!({
                "components": {"schemas": schemas},
                "$ref": format!("#/components/schemas/{name}"),
            });
            compile(name, &root)
        };
        let opik_trace_batch = opik_root("TraceBatch_Write")?;
        let opik_span_batch = opik_root("SpanBatch_Write")?;

        let semconv = dir.join(SEMCONV_DIR);
        let content = |file: &str| -> Result<Validator, SpecsError> {
            let schema = parse_json(&semconv.join(file))?;
            compile(file, &schema)
        };
        let input_messages = content(INPUT_MESSAGES_SCHEMA)?;
        let output_messages = content(OUTPUT_MESSAGES_SCHEMA)?;
        let system_instructions = content(SYSTEM_INSTRUCTIONS_SCHEMA)?;
        let tool_definitions = content(TOOL_DEFINITIONS_SCHEMA)?;

        let mut attribute_types = HashMap::new();
        for file in [REGISTRY_DEPRECATED, REGISTRY] {
            let registry = parse_yaml(&semconv.join(file))?;
            collect_attribute_types(&registry, &mut attribute_types);
        }
        // General attributes the GenAI spans reference, from the OTel registry (not in `specs/`).
        for (key, ty) in [
            ("server.address", AttrType::String),
            ("server.port", AttrType::Int),
            ("error.type", AttrType::String),
        ] {
            attribute_types.entry(key.to_owned()).or_insert(ty);
        }

        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                opik_trace_batch,
                opik_span_batch,
                input_messages,
                output_messages,
                system_instructions,
                tool_definitions,
                attribute_types,
            }),
        })
    }

    /// The directory the specs were loaded from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Validates an Opik `POST /v1/private/traces/batch` body (`TraceBatch_Write`).
    ///
    /// Beyond the schema: every trace has an `id` that is a lowercase UUID version 7 (RFC 9562
    /// variant); `start_time`, `end_time` and `last_updated_at` are ISO-8601 UTC with `Z` inside
    /// Opik's range, and `end_time ≥ start_time`; `error_info` texts are not blank; `ttft` ≥ 0.
    pub fn opik_trace_batch(&self, body: &Value) -> Vec<Violation> {
        let mut out = schema_violations(&self.inner.opik_trace_batch, body, "");
        opik_items(body, "traces", OpikItem::Trace, &mut out);
        out
    }

    /// Validates an Opik `POST /v1/private/spans/batch` body (`SpanBatch_Write`, with `trace_id`
    /// required as the backend requires it).
    ///
    /// Beyond the schema, as [`Specs::opik_trace_batch`], plus: `trace_id` and `parent_span_id`
    /// are UUIDv7; every `usage` value is a JSON integer within int32; `total_estimated_cost` is
    /// sent only when > 0 (`backends.md` §7 item 2 and §8 item 4).
    pub fn opik_span_batch(&self, body: &Value) -> Vec<Violation> {
        let mut out = schema_violations(&self.inner.opik_span_batch, body, "");
        opik_items(body, "spans", OpikItem::Span, &mut out);
        out
    }

    /// Validates a GenAI message-content value (already parsed from its JSON string) against one
    /// of the semconv JSON Schemas.
    pub fn gen_ai_content(&self, schema: ContentSchema, value: &Value) -> Vec<Violation> {
        schema_violations(self.content_validator(schema), value, "")
    }

    fn content_validator(&self, schema: ContentSchema) -> &Validator {
        match schema {
            ContentSchema::InputMessages => &self.inner.input_messages,
            ContentSchema::OutputMessages => &self.inner.output_messages,
            ContentSchema::SystemInstructions => &self.inner.system_instructions,
            ContentSchema::ToolDefinitions => &self.inner.tool_definitions,
        }
    }

    /// Validates an OTLP/HTTP JSON trace export (`ExportTraceServiceRequest`) as the filter sends
    /// it to Langfuse.
    ///
    /// OTLP/JSON: `resourceSpans`, `scopeSpans`, `spans`, `attributes` are arrays; `traceId` is
    /// 32 and `spanId`/`parentSpanId` 16 lowercase hex digits, not all zero; `kind` and
    /// `status.code` are integers in range; times and every `intValue` are decimal strings, with
    /// `endTimeUnixNano ≥ startTimeUnixNano`; each AnyValue has exactly one known key; attribute
    /// keys are unique.
    ///
    /// GenAI semconv: `gen_ai.operation.name` and `gen_ai.provider.name` are present; every
    /// attribute of the registry has its registry type (so `gen_ai.usage.*` are intValue and
    /// `gen_ai.response.finish_reasons` an array of strings); message attributes are JSON strings
    /// valid against their schema; an inference span has kind CLIENT; an ERROR status comes with
    /// `error.type`.
    ///
    /// Langfuse: `langfuse.observation.usage_details` / `cost_details` are JSON-object strings
    /// with non-negative integer / number values; `langfuse.observation.completion_start_time` is
    /// an ISO-8601 UTC string within the span; `langfuse.trace.tags` is an array of strings;
    /// `langfuse.observation.type` and `.level` take known values.
    pub fn otlp_traces(&self, body: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let Some(root) = body.as_object() else {
            out.push(Violation::new("", "an OTLP export must be a JSON object"));
            return out;
        };
        let Some(resource_spans) = expect_array(root, "resourceSpans", "", true, &mut out) else {
            return out;
        };
        for (r, rs) in resource_spans.iter().enumerate() {
            let rs_path = format!("/resourceSpans/{r}");
            let Some(rs) = expect_object(rs, &rs_path, &mut out) else {
                continue;
            };
            if let Some(resource) = rs.get("resource") {
                let path = format!("{rs_path}/resource");
                if let Some(resource) = expect_object(resource, &path, &mut out) {
                    check_key_values(resource, &path, &mut out);
                }
            }
            let Some(scope_spans) = expect_array(rs, "scopeSpans", &rs_path, true, &mut out) else {
                continue;
            };
            for (s, ss) in scope_spans.iter().enumerate() {
                let ss_path = format!("{rs_path}/scopeSpans/{s}");
                let Some(ss) = expect_object(ss, &ss_path, &mut out) else {
                    continue;
                };
                if let Some(scope) = ss.get("scope") {
                    let path = format!("{ss_path}/scope");
                    if let Some(scope) = expect_object(scope, &path, &mut out) {
                        for key in ["name", "version"] {
                            expect_string_field(scope, key, &path, false, &mut out);
                        }
                        check_key_values(scope, &path, &mut out);
                    }
                }
                let Some(spans) = expect_array(ss, "spans", &ss_path, true, &mut out) else {
                    continue;
                };
                for (i, span) in spans.iter().enumerate() {
                    self.otlp_span(span, &format!("{ss_path}/spans/{i}"), &mut out);
                }
            }
        }
        out
    }

    fn otlp_span(&self, span: &Value, path: &str, out: &mut Vec<Violation>) {
        let Some(span) = expect_object(span, path, out) else {
            return;
        };
        check_hex_id(span, "traceId", 32, path, true, out);
        check_hex_id(span, "spanId", 16, path, true, out);
        // proto3 JSON writes an unset `bytes` as "" or omits it: both mean "no parent".
        if span.get("parentSpanId").and_then(Value::as_str) != Some("") {
            check_hex_id(span, "parentSpanId", 16, path, false, out);
        }
        expect_string_field(span, "name", path, true, out);
        expect_string_field(span, "traceState", path, false, out);
        let kind = span.get("kind");
        if let Some(kind) = kind {
            if kind.as_u64().is_none_or(|k| k > 5) {
                out.push(Violation::new(
                    format!("{path}/kind"),
                    "kind must be an integer SpanKind 0..=5 (OTLP/JSON encodes enums as integers)",
                ));
            }
        }
        if let Some(flags) = span.get("flags") {
            if flags.as_u64().is_none_or(|f| f > u64::from(u32::MAX)) {
                out.push(Violation::new(
                    format!("{path}/flags"),
                    "flags must be a fixed32 integer",
                ));
            }
        }
        let start = check_nanos(span, "startTimeUnixNano", path, out);
        let end = check_nanos(span, "endTimeUnixNano", path, out);
        if let (Some(start), Some(end)) = (start, end) {
            if end < start {
                out.push(Violation::new(
                    format!("{path}/endTimeUnixNano"),
                    format!("endTimeUnixNano {end} is before startTimeUnixNano {start}"),
                ));
            }
        }
        let status_code = match span.get("status") {
            None => None,
            Some(status) => {
                let status_path = format!("{path}/status");
                expect_object(status, &status_path, out).and_then(|status| {
                    expect_string_field(status, "message", &status_path, false, out);
                    let code = status.get("code")?;
                    let code = code.as_u64().filter(|c| *c <= 2);
                    if code.is_none() {
                        out.push(Violation::new(
                            format!("{status_path}/code"),
                            "status.code must be an integer 0 (UNSET), 1 (OK) or 2 (ERROR)",
                        ));
                    }
                    code
                })
            }
        };
        if let Some(events) = expect_array(span, "events", path, false, out) {
            for (e, event) in events.iter().enumerate() {
                let event_path = format!("{path}/events/{e}");
                if let Some(event) = expect_object(event, &event_path, out) {
                    check_nanos(event, "timeUnixNano", &event_path, out);
                    expect_string_field(event, "name", &event_path, true, out);
                    check_key_values(event, &event_path, out);
                }
            }
        }
        if let Some(links) = expect_array(span, "links", path, false, out) {
            for (l, link) in links.iter().enumerate() {
                let link_path = format!("{path}/links/{l}");
                if let Some(link) = expect_object(link, &link_path, out) {
                    check_hex_id(link, "traceId", 32, &link_path, true, out);
                    check_hex_id(link, "spanId", 16, &link_path, true, out);
                    check_key_values(link, &link_path, out);
                }
            }
        }
        let attrs = check_key_values(span, path, out);
        let times = start.zip(end);
        self.gen_ai_span(&attrs, path, kind, status_code, times, out);
    }

    fn gen_ai_span(
        &self,
        attrs: &HashMap<&str, (usize, &Value)>,
        path: &str,
        kind: Option<&Value>,
        status_code: Option<u64>,
        times: Option<(u64, u64)>,
        out: &mut Vec<Violation>,
    ) {
        let attr_path = |index: usize| format!("{path}/attributes/{index}/value");
        for required in ["gen_ai.operation.name", "gen_ai.provider.name"] {
            let present = attrs
                .get(required)
                .and_then(|(_, v)| v.get("stringValue"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !present {
                out.push(Violation::new(
                    format!("{path}/attributes"),
                    format!("required attribute {required} is missing or not a non-empty string"),
                ));
            }
        }

        let mut keys: Vec<_> = attrs.iter().collect();
        keys.sort_by_key(|(_, (index, _))| *index);
        for (key, (index, value)) in keys {
            let (key, index) = (*key, *index);
            let vpath = attr_path(index);
            if let Some(ty) = self.inner.attribute_types.get(key) {
                if !ty.matches(value) {
                    out.push(Violation::new(
                        &vpath,
                        format!("{key} must be {} (semconv registry)", ty.describe()),
                    ));
                }
            }
            if key.starts_with("gen_ai.usage.") && key != "gen_ai.usage.cost" {
                // `gen_ai.usage.cost` is Langfuse's, a double; every semconv usage key counts tokens.
                let tokens = value.get("intValue").and_then(int_value);
                if tokens.is_none_or(|t| t < 0) {
                    out.push(Violation::new(
                        &vpath,
                        format!("{key} must be an intValue holding a non-negative token count"),
                    ));
                }
            }
            if let Some(schema) = ContentSchema::from_attribute(key) {
                self.content_attribute(schema, value, &vpath, out);
            }
            match key {
                "langfuse.observation.usage_details" => {
                    json_map_attribute(
                        key,
                        value,
                        &vpath,
                        out,
                        |v| v.is_u64(),
                        "a non-negative integer",
                    );
                }
                "langfuse.observation.cost_details" => {
                    json_map_attribute(
                        key,
                        value,
                        &vpath,
                        out,
                        |v| v.as_f64().is_some_and(|c| c >= 0.0 && c.is_finite()),
                        "a non-negative number",
                    );
                }
                "langfuse.observation.model.parameters" => {
                    json_map_attribute(key, value, &vpath, out, |_| true, "any value");
                }
                "langfuse.observation.completion_start_time" => {
                    completion_start(value, &vpath, times, out);
                }
                "langfuse.trace.tags" if !AttrType::StringArray.matches(value) => {
                    out.push(Violation::new(
                        &vpath,
                        "langfuse.trace.tags must be an arrayValue of stringValue",
                    ));
                }
                "langfuse.observation.type" => {
                    one_of_strings(key, value, &vpath, LANGFUSE_OBSERVATION_TYPES, out);
                }
                "langfuse.observation.level" => {
                    one_of_strings(key, value, &vpath, LANGFUSE_LEVELS, out);
                }
                _ => {}
            }
        }

        let operation = attrs
            .get("gen_ai.operation.name")
            .and_then(|(_, v)| v.get("stringValue"))
            .and_then(Value::as_str);
        if operation.is_some_and(|op| INFERENCE_OPERATIONS.contains(&op))
            && kind.and_then(Value::as_u64) != Some(SPAN_KIND_CLIENT)
        {
            out.push(Violation::new(
                format!("{path}/kind"),
                "a GenAI inference span must have kind 3 (CLIENT)",
            ));
        }
        if status_code == Some(STATUS_ERROR) && !attrs.contains_key("error.type") {
            out.push(Violation::new(
                format!("{path}/attributes"),
                "a span with status ERROR must carry error.type",
            ));
        }
    }

    fn content_attribute(
        &self,
        schema: ContentSchema,
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let key = schema.attribute();
        let Some(text) = value.get("stringValue").and_then(Value::as_str) else {
            out.push(Violation::new(
                path,
                format!("{key} must be a stringValue holding JSON"),
            ));
            return;
        };
        let path = format!("{path}/stringValue");
        match serde_json::from_str::<Value>(text) {
            Err(err) => out.push(Violation::new(
                path,
                format!("{key} is not valid JSON: {err}"),
            )),
            Ok(content) => {
                for v in self.gen_ai_content(schema, &content) {
                    out.push(Violation::new(
                        &path,
                        format!("{key} at {}: {}", display_pointer(&v.path), v.message),
                    ));
                }
            }
        }
    }
}

const SPAN_KIND_CLIENT: u64 = 3;
const STATUS_ERROR: u64 = 2;
/// Operations whose spans the semconv defines with `span_kind: client` (`spans.yaml`).
const INFERENCE_OPERATIONS: &[&str] =
    &["chat", "generate_content", "text_completion", "embeddings"];
/// `langfuse.observation.type` values Langfuse maps (`ObservationTypeMapper.ts`).
const LANGFUSE_OBSERVATION_TYPES: &[&str] = &[
    "generation",
    "span",
    "event",
    "agent",
    "tool",
    "chain",
    "retriever",
    "evaluator",
    "embedding",
    "guardrail",
];
/// Langfuse `ObservationLevel` (`langfuse-fern-commons.yml`).
const LANGFUSE_LEVELS: &[&str] = &["DEBUG", "DEFAULT", "WARNING", "ERROR"];

fn display_pointer(pointer: &str) -> &str {
    if pointer.is_empty() {
        "/"
    } else {
        pointer
    }
}

fn read(path: &Path) -> Result<String, SpecsError> {
    std::fs::read_to_string(path).map_err(|err| SpecsError::Read {
        path: path.to_path_buf(),
        kind: err.kind(),
    })
}

/// Parses YAML (1.2 plain scalars: `- =` is the string "=", see `backends.md` §7 item 1).
fn parse_yaml(path: &Path) -> Result<Value, SpecsError> {
    serde_norway::from_str(&read(path)?).map_err(|err| SpecsError::Parse {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn parse_json(path: &Path) -> Result<Value, SpecsError> {
    serde_json::from_str(&read(path)?).map_err(|err| SpecsError::Parse {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// Compiles `schema` as JSON Schema 2020-12 with format assertions (unknown formats such as
/// `int32`, `double` or `binary` are ignored).
///
/// `gen-ai-tool-definitions.json` refers to the draft-07 meta-schema by its URL; the registry of
/// bundled meta-schemas serves it, so nothing is fetched over the network.
fn compile(name: &str, schema: &Value) -> Result<Validator, SpecsError> {
    jsonschema::draft202012::options()
        .with_registry(&referencing::SPECIFICATIONS)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        .build(schema)
        .map_err(|err| SpecsError::Compile {
            schema: name.to_owned(),
            message: err.to_string(),
        })
}

/// Applies the `backends.md` §7 workarounds to Opik's `components.schemas`.
fn patch_opik_schemas(schemas: &mut Map<String, Value>, path: &Path) -> Result<(), SpecsError> {
    for schema in schemas.values_mut() {
        strip_boolean_exclusive_bounds(schema);
    }
    // §7 item 3: `type: object` + `anyOf[object, array, string]` admits only objects under a
    // strict validator; the filter must send objects, so say exactly that.
    schemas.insert("JsonListString_Write".to_owned(), json!({"type": "object"}));
    // §7 item 5: the backend's Write view has `@NotNull trace_id`.
    let required = schemas
        .get_mut("Span_Write")
        .and_then(|span| span.get_mut("required"))
        .and_then(Value::as_array_mut)
        .ok_or_else(|| SpecsError::Missing {
            path: path.to_path_buf(),
            pointer: "/components/schemas/Span_Write/required".to_owned(),
        })?;
    if !required.iter().any(|r| r == "trace_id") {
        required.push(Value::from("trace_id"));
    }
    Ok(())
}

/// §7 item 2: OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` inside the 3.1 document.
/// `false` is dropped; `true` becomes the 2020-12 numeric form taken from `minimum`/`maximum`.
fn strip_boolean_exclusive_bounds(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            for (exclusive, bound) in [
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ] {
                match obj.get(exclusive) {
                    Some(Value::Bool(false)) => {
                        obj.remove(exclusive);
                    }
                    Some(Value::Bool(true)) => {
                        if let Some(limit) = obj.remove(bound) {
                            obj.insert(exclusive.to_owned(), limit);
                        } else {
                            obj.remove(exclusive);
                        }
                    }
                    _ => {}
                }
            }
            obj.values_mut().for_each(strip_boolean_exclusive_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_boolean_exclusive_bounds),
        _ => {}
    }
}

fn collect_attribute_types(registry: &Value, types: &mut HashMap<String, AttrType>) {
    let groups = registry.get("groups").and_then(Value::as_array);
    for group in groups.into_iter().flatten() {
        let attrs = group.get("attributes").and_then(Value::as_array);
        for attr in attrs.into_iter().flatten() {
            if let (Some(id), Some(ty)) = (attr.get("id").and_then(Value::as_str), attr.get("type"))
            {
                types.insert(id.to_owned(), AttrType::from_registry(ty));
            }
        }
    }
}

fn schema_violations(validator: &Validator, instance: &Value, base: &str) -> Vec<Violation> {
    validator
        .iter_errors(instance)
        .map(|err| Violation::new(format!("{base}{}", err.instance_path()), err.to_string()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpikItem {
    Trace,
    Span,
}

/// Earliest and latest instants Opik stores (`backends.md` §2.3).
const OPIK_MIN: UtcTimestamp = UtcTimestamp::at(1970, 1, 1, 0, 0, 0, 0);
const OPIK_MAX_EXCLUSIVE: UtcTimestamp = UtcTimestamp::at(2262, 4, 11, 23, 47, 16, 0);

fn opik_items(body: &Value, key: &str, kind: OpikItem, out: &mut Vec<Violation>) {
    let Some(items) = body.get(key).and_then(Value::as_array) else {
        return; // the schema reports it
    };
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            continue;
        };
        let path = format!("/{key}/{i}");
        let noun = match kind {
            OpikItem::Trace => "trace",
            OpikItem::Span => "span",
        };
        match item.get("id") {
            None => out.push(Violation::new(
                &path,
                format!("the filter must send the {noun} id (a UUIDv7) itself"),
            )),
            Some(id) => check_uuid_v7(id, &format!("{path}/id"), out),
        }
        if kind == OpikItem::Span {
            for key in ["trace_id", "parent_span_id"] {
                if let Some(id) = item.get(key) {
                    check_uuid_v7(id, &format!("{path}/{key}"), out);
                }
            }
        }
        let mut times = HashMap::new();
        for key in ["start_time", "end_time", "last_updated_at"] {
            let Some(value) = item.get(key) else {
                continue;
            };
            let vpath = format!("{path}/{key}");
            let Some(text) = value.as_str() else {
                continue; // the schema reports it
            };
            match UtcTimestamp::parse(text) {
                None => out.push(Violation::new(
                    vpath,
                    format!("{text:?} is not an ISO-8601 UTC timestamp ending in Z"),
                )),
                Some(ts) if ts < OPIK_MIN || ts >= OPIK_MAX_EXCLUSIVE => out.push(Violation::new(
                    vpath,
                    format!("{text} is outside Opik's range [1970-01-01, 2262-04-11T23:47:16Z)"),
                )),
                Some(ts) => {
                    times.insert(key, ts);
                }
            }
        }
        if let (Some(start), Some(end)) = (times.get("start_time"), times.get("end_time")) {
            if end < start {
                out.push(Violation::new(
                    format!("{path}/end_time"),
                    "end_time is before start_time",
                ));
            }
        }
        if let Some(info) = item.get("error_info").and_then(Value::as_object) {
            for key in ["exception_type", "traceback"] {
                if info
                    .get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.trim().is_empty())
                {
                    out.push(Violation::new(
                        format!("{path}/error_info/{key}"),
                        format!("error_info.{key} must not be blank"),
                    ));
                }
            }
        }
        if let Some(ttft) = item.get("ttft").and_then(Value::as_f64) {
            if ttft < 0.0 {
                out.push(Violation::new(
                    format!("{path}/ttft"),
                    "ttft (milliseconds) must be >= 0",
                ));
            }
        }
        if let Some(usage) = item.get("usage").and_then(Value::as_object) {
            for (key, value) in usage {
                let in_range = value.as_i64().is_some_and(|n| i32::try_from(n).is_ok());
                if !in_range {
                    out.push(Violation::new(
                        format!("{path}/usage/{}", escape_pointer(key)),
                        format!("usage.{key} = {value} is not a JSON integer within int32"),
                    ));
                }
            }
        }
        if let Some(cost) = item.get("total_estimated_cost").and_then(Value::as_f64) {
            if cost <= 0.0 {
                out.push(Violation::new(
                    format!("{path}/total_estimated_cost"),
                    format!(
                        "total_estimated_cost {cost} must be omitted unless > 0 \
                         (a strict validator reads `exclusiveMinimum: false` as exclusive)"
                    ),
                ));
            }
        }
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Whether `id` is a lowercase, hyphenated UUID of version 7 with the RFC 9562 variant.
pub fn is_uuid_v7(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
        && bytes[14] == b'7'
        && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
}

fn check_uuid_v7(id: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(text) = id.as_str() else {
        return; // the schema reports a non-string
    };
    if !is_uuid_v7(text) {
        let why = if text.len() == 36 && text.as_bytes().get(14) != Some(&b'7') {
            "its version nibble is not 7"
        } else {
            "it is not a lowercase hyphenated UUID with version 7 and the RFC variant"
        };
        out.push(Violation::new(
            path,
            format!("{text:?} is not a UUIDv7: {why}"),
        ));
    }
}

/// An instant parsed from an ISO-8601 / RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS[.f]Z`.
///
/// Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTimestamp {
    /// Calendar year.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl UtcTimestamp {
    const fn at(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        nanos: u32,
    ) -> Self {
        Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        }
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS` with an optional fraction of 1 to 9 digits and a final `Z`.
    /// Offsets other than `Z`, a lowercase `t`/`z`, and out-of-range fields are refused.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 20 || b[b.len() - 1] != b'Z' {
            return None;
        }
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(range)?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(part.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
        };
        let sep_ok =
            b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
        if !sep_ok {
            return None;
        }
        let year = u16::try_from(digits(0..4)?).ok()?;
        let month = u8::try_from(digits(5..7)?).ok()?;
        let day = u8::try_from(digits(8..10)?).ok()?;
        let hour = u8::try_from(digits(11..13)?).ok()?;
        let minute = u8::try_from(digits(14..16)?).ok()?;
        let second = u8::try_from(digits(17..19)?).ok()?;
        let nanos = match b.len() - 20 {
            0 => 0,
            n if b[19] == b'.' && (2..=10).contains(&n) => {
                let frac_digits = n - 1;
                let frac = digits(20..20 + frac_digits)?;
                frac * 10u32.pow(u32::try_from(9 - frac_digits).ok()?)
            }
            _ => return None,
        };
        let valid = (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour <= 23
            && minute <= 59
            && second <= 59;
        valid.then_some(Self::at(year, month, day, hour, minute, second, nanos))
    }

    /// Nanoseconds since the Unix epoch (negative before 1970).
    pub fn unix_nanos(&self) -> i128 {
        let days = days_from_civil(i64::from(self.year), self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        i128::from(secs) * 1_000_000_000 + i128::from(self.nanos)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---- OTLP/JSON helpers -------------------------------------------------------------------------

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_object<'a>(
    value: &'a Value,
    path: &str,
    out: &mut Vec<Violation>,
) -> Option<&'a Map<String, Value>> {
    let obj = value.as_object();
    if obj.is_none() {
        out.push(Violation::new(
            path,
            format!("expected an object, found {}", type_name(value)),
        ));
    }
    obj
}

fn expect_array<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
    required: bool,
    out: &mut Vec<Violation>,
) -> Option<&'a Vec<Value>> {
    match obj.get(key) {
        None if required => {
            out.push(Violation::new(path, format!("{key} is missing")));
            None
        }
        None => None,
        Some(Value::Array(items)) => Some(items),
        Some(other) => {
            out.push(Violation::new(
                format!("{path}/{key}"),
                format!("{key} must be an array, found {}", type_name(other)),
            ));
            None
        }
    }
}

fn expect_string_field(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    required: bool,
    out: &mut Vec<Violation>,
) {
    match obj.get(key) {
        None if required => out.push(Violation::new(path, format!("{key} is missing"))),
        None | Some(Value::String(_)) => {}
        Some(other) => out.push(Violation::new(
            format!("{path}/{key}"),
            format!("{key} must be a string, found {}", type_name(other)),
        )),
    }
}

fn check_hex_id(
    obj: &Map<String, Value>,
    key: &str,
    len: usize,
    path: &str,
    required: bool,
    out: &mut Vec<Violation>,
) {
    let Some(value) = obj.get(key) else {
        if required {
            out.push(Violation::new(path, format!("{key} is missing")));
        }
        return;
    };
    let vpath = format!("{path}/{key}");
    let Some(text) = value.as_str() else {
        out.push(Violation::new(
            vpath,
            format!("{key} must be a hex string, found {}", type_name(value)),
        ));
        return;
    };
    let lower_hex = text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if text.len() != len || !lower_hex {
        out.push(Violation::new(
            vpath,
            format!("{key} {text:?} must be {len} lowercase hex digits"),
        ));
    } else if text.bytes().all(|b| b == b'0') {
        out.push(Violation::new(vpath, format!("{key} must not be all zero")));
    }
}

/// Reads an int64 written the OTLP/JSON way: a decimal string.
fn int_value(value: &Value) -> Option<i64> {
    let text = value.as_str()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn check_nanos(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
    out: &mut Vec<Violation>,
) -> Option<u64> {
    let Some(value) = obj.get(key) else {
        out.push(Violation::new(path, format!("{key} is missing")));
        return None;
    };
    let nanos = value
        .as_str()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok());
    match nanos {
        None => out.push(Violation::new(
            format!("{path}/{key}"),
            format!("{key} must be a decimal string of a fixed64 (found {value})"),
        )),
        Some(0) => out.push(Violation::new(
            format!("{path}/{key}"),
            format!("{key} must not be 0"),
        )),
        Some(_) => {}
    }
    nanos.filter(|n| *n > 0)
}

/// Checks `obj.attributes` as a list of KeyValue and returns the attributes by key.
fn check_key_values<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    out: &mut Vec<Violation>,
) -> HashMap<&'a str, (usize, &'a Value)> {
    let mut by_key = HashMap::new();
    if let Some(attrs) = expect_array(obj, "attributes", path, false, out) {
        check_kv_list(attrs, &format!("{path}/attributes"), out, &mut by_key);
    }
    by_key
}

fn check_kv_list<'a>(
    items: &'a [Value],
    path: &str,
    out: &mut Vec<Violation>,
    by_key: &mut HashMap<&'a str, (usize, &'a Value)>,
) {
    for (i, kv) in items.iter().enumerate() {
        let kv_path = format!("{path}/{i}");
        let Some(kv) = expect_object(kv, &kv_path, out) else {
            continue;
        };
        let key = match kv.get("key") {
            Some(Value::String(key)) if !key.is_empty() => Some(key.as_str()),
            _ => {
                out.push(Violation::new(&kv_path, "key must be a non-empty string"));
                None
            }
        };
        match kv.get("value") {
            None => out.push(Violation::new(&kv_path, "value is missing")),
            Some(value) => check_any_value(value, &format!("{kv_path}/value"), out),
        }
        if let (Some(key), Some(value)) = (key, kv.get("value")) {
            if by_key.insert(key, (i, value)).is_some() {
                out.push(Violation::new(
                    &kv_path,
                    format!("duplicate attribute key {key:?}"),
                ));
            }
        }
    }
}

const ANY_VALUE_KEYS: &[&str] = &[
    "stringValue",
    "boolValue",
    "intValue",
    "doubleValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
];

fn check_any_value(value: &Value, path: &str, out: &mut Vec<Violation>) {
    let Some(obj) = expect_object(value, path, out) else {
        return;
    };
    if let Some(unknown) = obj.keys().find(|k| !ANY_VALUE_KEYS.contains(&k.as_str())) {
        out.push(Violation::new(
            path,
            format!("unknown AnyValue key {unknown:?}"),
        ));
        return;
    }
    if obj.len() != 1 {
        out.push(Violation::new(
            path,
            format!(
                "an AnyValue must have exactly one value key, found {}",
                obj.len()
            ),
        ));
        return;
    }
    let Some((key, inner)) = obj.iter().next() else {
        return;
    };
    let inner_path = format!("{path}/{key}");
    let ok = match key.as_str() {
        "stringValue" => inner.is_string(),
        "boolValue" => inner.is_boolean(),
        "intValue" => int_value(inner).is_some(),
        // proto3 JSON also spells the non-finite doubles as strings.
        "doubleValue" => {
            inner.is_number() || matches!(inner.as_str(), Some("NaN" | "Infinity" | "-Infinity"))
        }
        "bytesValue" => inner
            .as_str()
            .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok()),
        "arrayValue" => {
            if let Some(arr) = expect_object(inner, &inner_path, out) {
                if let Some(values) = expect_array(arr, "values", &inner_path, false, out) {
                    for (i, v) in values.iter().enumerate() {
                        check_any_value(v, &format!("{inner_path}/values/{i}"), out);
                    }
                }
            }
            true
        }
        "kvlistValue" => {
            if let Some(list) = expect_object(inner, &inner_path, out) {
                if let Some(values) = expect_array(list, "values", &inner_path, false, out) {
                    let mut seen = HashMap::new();
                    check_kv_list(values, &format!("{inner_path}/values"), out, &mut seen);
                }
            }
            true
        }
        _ => true,
    };
    if !ok {
        let expected = match key.as_str() {
            "intValue" => "a decimal string (OTLP/JSON encodes int64 as a string)",
            "bytesValue" => "a base64 string",
            "doubleValue" => "a number",
            "boolValue" => "a boolean",
            _ => "a string",
        };
        out.push(Violation::new(
            inner_path,
            format!("{key} must be {expected}, found {inner}"),
        ));
    }
}

fn array_values(any: &Value) -> Option<&Vec<Value>> {
    let arr = any.get("arrayValue")?;
    match arr.get("values") {
        Some(values) => values.as_array(),
        // `{"arrayValue": {}}` is the empty array in proto3 JSON.
        None => arr.as_object().map(|_| {
            static EMPTY: Vec<Value> = Vec::new();
            &EMPTY
        }),
    }
}

fn json_map_attribute(
    key: &str,
    value: &Value,
    path: &str,
    out: &mut Vec<Violation>,
    valid: impl Fn(&Value) -> bool,
    expected: &str,
) {
    let Some(text) = value.get("stringValue").and_then(Value::as_str) else {
        out.push(Violation::new(
            path,
            format!("{key} must be a stringValue holding a JSON object"),
        ));
        return;
    };
    let path = format!("{path}/stringValue");
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => {
            for (name, v) in &map {
                if !valid(v) {
                    out.push(Violation::new(
                        &path,
                        format!("{key}.{name} = {v} must be {expected}"),
                    ));
                }
            }
        }
        Ok(other) => out.push(Violation::new(
            path,
            format!("{key} must hold a JSON object, found {}", type_name(&other)),
        )),
        Err(err) => out.push(Violation::new(
            path,
            format!("{key} is not valid JSON: {err}"),
        )),
    }
}

/// Allowance for a completion start written at millisecond precision against nanosecond span times.
const COMPLETION_START_SLACK_NANOS: i128 = 1_000_000;

fn completion_start(
    value: &Value,
    path: &str,
    times: Option<(u64, u64)>,
    out: &mut Vec<Violation>,
) {
    let key = "langfuse.observation.completion_start_time";
    let Some(text) = value.get("stringValue").and_then(Value::as_str) else {
        out.push(Violation::new(path, format!("{key} must be a stringValue")));
        return;
    };
    let Some(ts) = UtcTimestamp::parse(text) else {
        out.push(Violation::new(
            format!("{path}/stringValue"),
            format!("{key} {text:?} is not an ISO-8601 UTC timestamp ending in Z"),
        ));
        return;
    };
    if let Some((start, end)) = times {
        let at = ts.unix_nanos();
        let inside = at + COMPLETION_START_SLACK_NANOS >= i128::from(start)
            && at - COMPLETION_START_SLACK_NANOS <= i128::from(end);
        if !inside {
            out.push(Violation::new(
                format!("{path}/stringValue"),
                format!("{key} {text} is outside the span's start and end"),
            ));
        }
    }
}

fn one_of_strings(
    key: &str,
    value: &Value,
    path: &str,
    allowed: &[&str],
    out: &mut Vec<Violation>,
) {
    let text = value.get("stringValue").and_then(Value::as_str);
    if !text.is_some_and(|t| allowed.contains(&t)) {
        out.push(Violation::new(
            path,
            format!("{key} must be a stringValue, one of {}", allowed.join(", ")),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Specs {
        Specs::shared().expect("specs directory (set LLM_TRACER_SPECS)")
    }

    fn trace_batch() -> Value {
        json!({
          "traces": [
            {
              "id": "019fbd32-0600-7123-8567-89abcdef0123",
              "project_name": "llm-gateway",
              "name": "chat.completions",
              "start_time": "2026-08-01T12:00:00.000Z",
              "end_time": "2026-08-01T12:00:01.250Z",
              "input": {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]},
              "output": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]},
              "metadata": {"gateway": "kong", "route": "openai-chat", "request_id": "7f1c2b9e-1a2b-4c3d-9e8f-001122334455", "http.status_code": 200},
              "tags": ["llm-gateway", "openai"],
              "thread_id": "conv-42"
            }
          ]
        })
    }

    fn span_batch() -> Value {
        json!({
          "spans": [
            {
              "id": "019fbd32-0605-7edc-ba98-765432100123",
              "trace_id": "019fbd32-0600-7123-8567-89abcdef0123",
              "project_name": "llm-gateway",
              "name": "chat gpt-4o-mini",
              "type": "llm",
              "start_time": "2026-08-01T12:00:00.005Z",
              "end_time": "2026-08-01T12:00:01.245Z",
              "input": {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]},
              "output": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}]},
              "metadata": {"created_from": "llm-gateway", "request_model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 256,
                           "stream": false, "response_id": "chatcmpl-AbC123", "finish_reasons": ["stop"]},
              "model": "gpt-4o-mini-2024-07-18",
              "provider": "openai",
              "tags": ["llm-gateway"],
              "usage": {"prompt_tokens": 21, "completion_tokens": 3, "total_tokens": 24},
              "total_estimated_cost": 0.00000495,
              "ttft": 180.5
            }
          ]
        })
    }

    fn otlp_export() -> Value {
        json!({
          "resourceSpans": [{
            "resource": {"attributes": [
              {"key": "service.name", "value": {"stringValue": "kong-ai-gateway"}},
              {"key": "service.version", "value": {"stringValue": "1.4.2"}},
              {"key": "deployment.environment.name", "value": {"stringValue": "production"}}
            ]},
            "scopeSpans": [{
              "scope": {"name": "llm-gateway-filter", "version": "0.1.0"},
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
                  {"key": "gen_ai.system", "value": {"stringValue": "openai"}},
                  {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                  {"key": "gen_ai.response.model", "value": {"stringValue": "gpt-4o-mini-2024-07-18"}},
                  {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
                  {"key": "gen_ai.request.max_tokens", "value": {"intValue": "256"}},
                  {"key": "gen_ai.response.id", "value": {"stringValue": "chatcmpl-AbC123"}},
                  {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
                  {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "21"}},
                  {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "3"}},
                  {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-42"}},
                  {"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"You are terse.\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Say hi\"}]}]"}},
                  {"key": "gen_ai.output.messages", "value": {"stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Hi!\"}],\"finish_reason\":\"stop\"}]"}},
                  {"key": "server.address", "value": {"stringValue": "api.openai.com"}},
                  {"key": "server.port", "value": {"intValue": "443"}},
                  {"key": "langfuse.observation.type", "value": {"stringValue": "generation"}},
                  {"key": "langfuse.trace.name", "value": {"stringValue": "chat.completions"}},
                  {"key": "user.id", "value": {"stringValue": "user-123"}},
                  {"key": "session.id", "value": {"stringValue": "conv-42"}},
                  {"key": "langfuse.trace.tags", "value": {"arrayValue": {"values": [{"stringValue": "llm-gateway"}]}}},
                  {"key": "langfuse.observation.completion_start_time", "value": {"stringValue": "2026-08-01T12:00:00.185Z"}},
                  {"key": "langfuse.observation.usage_details", "value": {"stringValue": "{\"input\":21,\"output\":3,\"total\":24}"}},
                  {"key": "langfuse.observation.cost_details", "value": {"stringValue": "{\"input\":0.00000315,\"output\":0.0000018,\"total\":0.00000495}"}}
                ],
                "status": {"code": 1}
              }]
            }]
          }]
        })
    }

    const SPAN: &str = "/resourceSpans/0/scopeSpans/0/spans/0";

    fn set_attr(body: &mut Value, key: &str, value: Value) {
        let attrs = body
            .pointer_mut(&format!("{SPAN}/attributes"))
            .and_then(Value::as_array_mut)
            .expect("attributes");
        match attrs.iter_mut().find(|kv| kv["key"] == key) {
            Some(kv) => kv["value"] = value,
            None => attrs.push(json!({"key": key, "value": value})),
        }
    }

    fn assert_valid(violations: &[Violation]) {
        assert!(
            violations.is_empty(),
            "unexpected violations: {violations:#?}"
        );
    }

    fn assert_violation(violations: &[Violation], path: &str, needle: &str) {
        assert!(
            violations
                .iter()
                .any(|v| v.path == path && v.message.contains(needle)),
            "expected a violation at {path} containing {needle:?}, got {violations:#?}"
        );
    }

    #[test]
    fn documented_opik_examples_validate() {
        let specs = specs();
        assert_valid(&specs.opik_trace_batch(&trace_batch()));
        assert_valid(&specs.opik_span_batch(&span_batch()));
    }

    #[test]
    fn smallest_opik_bodies_validate() {
        let specs = specs();
        assert_valid(&specs.opik_trace_batch(&json!({"traces": [
            {"id": "019fbd32-0600-7123-8567-89abcdef0123", "start_time": "2026-08-01T12:00:00Z"}
        ]})));
        assert_valid(&specs.opik_span_batch(&json!({"spans": [{
            "id": "019fbd32-0605-7edc-ba98-765432100123",
            "trace_id": "019fbd32-0600-7123-8567-89abcdef0123",
            "start_time": "2026-08-01T12:00:00.005123Z"
        }]})));
    }

    #[test]
    fn opik_error_info_validates_and_blank_traceback_does_not() {
        let specs = specs();
        let mut body = span_batch();
        body["spans"][0]["error_info"] = json!({
            "exception_type": "UpstreamHTTPError",
            "message": "HTTP 500 from api.openai.com",
            "traceback": "POST /v1/chat/completions -> 500"
        });
        assert_valid(&specs.opik_span_batch(&body));
        body["spans"][0]["error_info"]["traceback"] = json!(" ");
        assert_violation(
            &specs.opik_span_batch(&body),
            "/spans/0/error_info/traceback",
            "blank",
        );
        body["spans"][0]["error_info"]["traceback"] = json!("");
        assert!(!specs.opik_span_batch(&body).is_empty());
    }

    #[test]
    fn opik_known_bad_cases_are_rejected() {
        let specs = specs();
        type Mutation = fn(&mut Value);
        let cases: &[(&str, Mutation, &str, &str)] = &[
            (
                "zero cost",
                |b| b["spans"][0]["total_estimated_cost"] = json!(0),
                "/spans/0/total_estimated_cost",
                "> 0",
            ),
            (
                "negative cost",
                |b| b["spans"][0]["total_estimated_cost"] = json!(-1.0),
                "/spans/0/total_estimated_cost",
                "minimum",
            ),
            (
                "type LLM",
                |b| b["spans"][0]["type"] = json!("LLM"),
                "/spans/0/type",
                "",
            ),
            (
                "fractional usage",
                |b| b["spans"][0]["usage"]["prompt_tokens"] = json!(1.5),
                "/spans/0/usage/prompt_tokens",
                "int32",
            ),
            (
                "usage beyond int32",
                |b| b["spans"][0]["usage"]["prompt_tokens"] = json!(3_000_000_000_u64),
                "/spans/0/usage/prompt_tokens",
                "int32",
            ),
            (
                "v4 id",
                |b| b["spans"][0]["id"] = json!("3c9a2f0e-6c1b-4a8e-9d57-2b1f0c7e8a11"),
                "/spans/0/id",
                "version nibble",
            ),
            (
                "v4 trace_id",
                |b| b["spans"][0]["trace_id"] = json!("3c9a2f0e-6c1b-4a8e-9d57-2b1f0c7e8a11"),
                "/spans/0/trace_id",
                "UUIDv7",
            ),
            (
                "bad variant",
                |b| b["spans"][0]["id"] = json!("019fbd32-0605-7edc-ca98-765432100123"),
                "/spans/0/id",
                "UUIDv7",
            ),
            (
                "missing trace_id",
                |b| {
                    b["spans"][0].as_object_mut().map(|s| s.remove("trace_id"));
                },
                "/spans/0",
                "trace_id",
            ),
            (
                "missing id",
                |b| {
                    b["spans"][0].as_object_mut().map(|s| s.remove("id"));
                },
                "/spans/0",
                "id",
            ),
            (
                "offset timestamp",
                |b| b["spans"][0]["start_time"] = json!("2026-08-01T14:00:00.005+02:00"),
                "/spans/0/start_time",
                "ending in Z",
            ),
            (
                "not a date",
                |b| b["spans"][0]["end_time"] = json!("yesterday"),
                "/spans/0/end_time",
                "",
            ),
            (
                "end before start",
                |b| b["spans"][0]["end_time"] = json!("2026-08-01T11:00:00Z"),
                "/spans/0/end_time",
                "before",
            ),
            (
                "array input",
                |b| b["spans"][0]["input"] = json!([{"role": "user"}]),
                "/spans/0/input",
                "",
            ),
            ("empty batch", |b| b["spans"] = json!([]), "/spans", ""),
            (
                "negative ttft",
                |b| b["spans"][0]["ttft"] = json!(-3),
                "/spans/0/ttft",
                ">= 0",
            ),
        ];
        for (name, mutate, path, needle) in cases {
            let mut body = span_batch();
            mutate(&mut body);
            let violations = specs.opik_span_batch(&body);
            assert!(
                violations
                    .iter()
                    .any(|v| v.path == *path && v.message.contains(needle)),
                "{name}: expected a violation at {path} containing {needle:?}, got {violations:#?}"
            );
        }
    }

    #[test]
    fn opik_trace_rules() {
        let specs = specs();
        let mut body = trace_batch();
        body["traces"][0]["id"] = json!("019FBD32-0600-7123-8567-89ABCDEF0123");
        assert_violation(&specs.opik_trace_batch(&body), "/traces/0/id", "UUIDv7");
        let mut body = trace_batch();
        body["traces"][0]["project_name"] = json!("  ");
        assert!(!specs.opik_trace_batch(&body).is_empty());
        let mut body = trace_batch();
        body["traces"][0]["tags"] = json!(["a", "a"]);
        assert!(!specs.opik_trace_batch(&body).is_empty());
        let mut body = trace_batch();
        body["traces"][0]["source"] = json!("gateway");
        assert!(!specs.opik_trace_batch(&body).is_empty());
        // A span body is not a trace batch.
        assert!(!specs.opik_trace_batch(&span_batch()).is_empty());
    }

    #[test]
    fn documented_otlp_example_validates() {
        assert_valid(&specs().otlp_traces(&otlp_export()));
    }

    #[test]
    fn otlp_known_bad_cases_are_rejected() {
        let specs = specs();
        type Mutation = fn(&mut Value);
        let attrs = format!("{SPAN}/attributes");
        let cases: Vec<(&str, Mutation, String, &str)> = vec![
            (
                "uppercase trace id",
                |b| {
                    b[R][0][S][0]["spans"][0]["traceId"] = json!("4BF92F3577B34DA6A3CE929D0E0E4736")
                },
                format!("{SPAN}/traceId"),
                "lowercase hex",
            ),
            (
                "short span id",
                |b| b[R][0][S][0]["spans"][0]["spanId"] = json!("00f067aa"),
                format!("{SPAN}/spanId"),
                "16 lowercase hex",
            ),
            (
                "zero trace id",
                |b| {
                    b[R][0][S][0]["spans"][0]["traceId"] = json!("00000000000000000000000000000000")
                },
                format!("{SPAN}/traceId"),
                "all zero",
            ),
            (
                "numeric intValue",
                |b| set_attr(b, "gen_ai.usage.input_tokens", json!({"intValue": 21})),
                format!("{SPAN}/attributes/9/value/intValue"),
                "decimal string",
            ),
            (
                "usage as double",
                |b| set_attr(b, "gen_ai.usage.output_tokens", json!({"doubleValue": 3.0})),
                format!("{SPAN}/attributes/10/value"),
                "intValue",
            ),
            (
                "flat message without parts",
                |b| {
                    set_attr(
                        b,
                        "gen_ai.input.messages",
                        json!({"stringValue": "[{\"role\":\"user\",\"content\":\"hi\"}]"}),
                    )
                },
                format!("{SPAN}/attributes/12/value/stringValue"),
                "gen_ai.input.messages",
            ),
            (
                "messages not JSON",
                |b| set_attr(b, "gen_ai.output.messages", json!({"stringValue": "Hi!"})),
                format!("{SPAN}/attributes/13/value/stringValue"),
                "not valid JSON",
            ),
            (
                "kind as string",
                |b| b[R][0][S][0]["spans"][0]["kind"] = json!("SPAN_KIND_CLIENT"),
                format!("{SPAN}/kind"),
                "integer",
            ),
            (
                "server kind",
                |b| b[R][0][S][0]["spans"][0]["kind"] = json!(2),
                format!("{SPAN}/kind"),
                "CLIENT",
            ),
            (
                "numeric start time",
                |b| {
                    b[R][0][S][0]["spans"][0]["startTimeUnixNano"] =
                        json!(1_785_585_600_005_000_000_u64)
                },
                format!("{SPAN}/startTimeUnixNano"),
                "decimal string",
            ),
            (
                "end before start",
                |b| b[R][0][S][0]["spans"][0]["endTimeUnixNano"] = json!("1785585600000000000"),
                format!("{SPAN}/endTimeUnixNano"),
                "before",
            ),
            (
                "status code out of range",
                |b| b[R][0][S][0]["spans"][0]["status"]["code"] = json!(3),
                format!("{SPAN}/status/code"),
                "",
            ),
            (
                "error without error.type",
                |b| b[R][0][S][0]["spans"][0]["status"] = json!({"code": 2, "message": "HTTP 500"}),
                attrs.clone(),
                "error.type",
            ),
            (
                "two value keys",
                |b| set_attr(b, "user.id", json!({"stringValue": "u", "intValue": "1"})),
                format!("{SPAN}/attributes/18/value"),
                "exactly one",
            ),
            (
                "unknown value key",
                |b| set_attr(b, "user.id", json!({"string_value": "u"})),
                format!("{SPAN}/attributes/18/value"),
                "unknown",
            ),
            (
                "missing provider",
                |b| {
                    let a = b
                        .pointer_mut(&format!("{SPAN}/attributes"))
                        .and_then(Value::as_array_mut);
                    if let Some(a) = a {
                        a.retain(|kv| kv["key"] != "gen_ai.provider.name");
                    }
                },
                attrs.clone(),
                "gen_ai.provider.name",
            ),
            (
                "missing operation",
                |b| {
                    let a = b
                        .pointer_mut(&format!("{SPAN}/attributes"))
                        .and_then(Value::as_array_mut);
                    if let Some(a) = a {
                        a.retain(|kv| kv["key"] != "gen_ai.operation.name");
                    }
                },
                attrs.clone(),
                "gen_ai.operation.name",
            ),
            (
                "finish reasons as string",
                |b| {
                    set_attr(
                        b,
                        "gen_ai.response.finish_reasons",
                        json!({"stringValue": "stop"}),
                    )
                },
                format!("{SPAN}/attributes/8/value"),
                "arrayValue",
            ),
            (
                "temperature as string",
                |b| {
                    set_attr(
                        b,
                        "gen_ai.request.temperature",
                        json!({"stringValue": "0.2"}),
                    )
                },
                format!("{SPAN}/attributes/5/value"),
                "doubleValue",
            ),
            (
                "usage details negative",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.usage_details",
                        json!({"stringValue": "{\"input\":-1}"}),
                    )
                },
                format!("{SPAN}/attributes/22/value/stringValue"),
                "non-negative integer",
            ),
            (
                "usage details fractional",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.usage_details",
                        json!({"stringValue": "{\"input\":1.5}"}),
                    )
                },
                format!("{SPAN}/attributes/22/value/stringValue"),
                "non-negative integer",
            ),
            (
                "usage details as array",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.usage_details",
                        json!({"stringValue": "[21]"}),
                    )
                },
                format!("{SPAN}/attributes/22/value/stringValue"),
                "JSON object",
            ),
            (
                "cost details negative",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.cost_details",
                        json!({"stringValue": "{\"total\":-0.1}"}),
                    )
                },
                format!("{SPAN}/attributes/23/value/stringValue"),
                "non-negative number",
            ),
            (
                "completion start not ISO",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.completion_start_time",
                        json!({"stringValue": "1785585600185"}),
                    )
                },
                format!("{SPAN}/attributes/21/value/stringValue"),
                "ISO-8601",
            ),
            (
                "completion start after end",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.completion_start_time",
                        json!({"stringValue": "2026-08-01T12:00:05Z"}),
                    )
                },
                format!("{SPAN}/attributes/21/value/stringValue"),
                "outside",
            ),
            (
                "tags as string",
                |b| {
                    set_attr(
                        b,
                        "langfuse.trace.tags",
                        json!({"stringValue": "llm-gateway"}),
                    )
                },
                format!("{SPAN}/attributes/20/value"),
                "arrayValue",
            ),
            (
                "unknown observation type",
                |b| {
                    set_attr(
                        b,
                        "langfuse.observation.type",
                        json!({"stringValue": "llm"}),
                    )
                },
                format!("{SPAN}/attributes/16/value"),
                "one of",
            ),
            (
                "duplicate key",
                |b| {
                    let a = b
                        .pointer_mut(&format!("{SPAN}/attributes"))
                        .and_then(Value::as_array_mut);
                    if let Some(a) = a {
                        a.push(json!({"key": "user.id", "value": {"stringValue": "x"}}));
                    }
                },
                format!("{SPAN}/attributes/24"),
                "duplicate",
            ),
            (
                "spans not an array",
                |b| b[R][0][S][0]["spans"] = json!({}),
                "/resourceSpans/0/scopeSpans/0/spans".to_owned(),
                "array",
            ),
        ];
        for (name, mutate, path, needle) in cases {
            let mut body = otlp_export();
            mutate(&mut body);
            let violations = specs.otlp_traces(&body);
            assert!(
                violations
                    .iter()
                    .any(|v| v.path == path && v.message.contains(needle)),
                "{name}: expected a violation at {path} containing {needle:?}, got {violations:#?}"
            );
        }
    }

    const R: &str = "resourceSpans";
    const S: &str = "scopeSpans";

    #[test]
    fn otlp_optional_content_attributes_validate() {
        let specs = specs();
        let mut body = otlp_export();
        set_attr(
            &mut body,
            "gen_ai.system_instructions",
            json!({"stringValue": "[{\"type\":\"text\",\"content\":\"You are terse.\"}]"}),
        );
        set_attr(
            &mut body,
            "gen_ai.tool.definitions",
            json!({"stringValue": "[{\"type\":\"function\",\"name\":\"get_weather\",\"description\":\"Weather\",\"parameters\":{\"type\":\"object\"}}]"}),
        );
        set_attr(
            &mut body,
            "gen_ai.output.messages",
            json!({"stringValue": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"call_1\",\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}],\"finish_reason\":\"tool_call\"}]"}),
        );
        set_attr(
            &mut body,
            "gen_ai.request.stream",
            json!({"boolValue": true}),
        );
        set_attr(
            &mut body,
            "gen_ai.usage.cache_read.input_tokens",
            json!({"intValue": "0"}),
        );
        set_attr(&mut body, "error.type", json!({"stringValue": "500"}));
        body[R][0][S][0]["spans"][0]["status"] = json!({"code": 2, "message": "HTTP 500"});
        body[R][0][S][0]["spans"][0]["parentSpanId"] = json!("");
        assert_valid(&specs.otlp_traces(&body));

        set_attr(
            &mut body,
            "gen_ai.system_instructions",
            json!({"stringValue": "\"You are terse.\""}),
        );
        assert!(!specs.otlp_traces(&body).is_empty());

        // A tool definition needs a name.
        let mut body = otlp_export();
        set_attr(
            &mut body,
            "gen_ai.tool.definitions",
            json!({"stringValue": "[{\"type\":\"function\",\"parameters\":{\"type\":\"object\"}}]"}),
        );
        assert!(!specs.otlp_traces(&body).is_empty());
    }

    #[test]
    fn otlp_canonical_example_fails_only_on_ids_and_semconv() {
        let specs = specs();
        let text = std::fs::read_to_string(specs.dir().join("otlp/example-trace.json"))
            .expect("example-trace.json");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        let violations = specs.otlp_traces(&body);
        let paths: Vec<_> = violations.iter().map(|v| v.path.as_str()).collect();
        for path in [
            format!("{SPAN}/traceId"),
            format!("{SPAN}/spanId"),
            format!("{SPAN}/parentSpanId"),
            format!("{SPAN}/attributes"),
        ] {
            assert!(
                paths.contains(&path.as_str()),
                "{path} not in {violations:#?}"
            );
        }
        assert_eq!(violations.len(), 5, "{violations:#?}");
    }

    #[test]
    fn content_schemas_directly() {
        let specs = specs();
        assert_valid(&specs.gen_ai_content(
            ContentSchema::InputMessages,
            &json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
        ));
        assert!(!specs
            .gen_ai_content(
                ContentSchema::InputMessages,
                &json!([{"role": "user", "content": "hi"}])
            )
            .is_empty());
        assert!(
            !specs
                .gen_ai_content(
                    ContentSchema::OutputMessages,
                    &json!([{"role": "assistant", "parts": [{"type": "text", "content": "hi"}]}])
                )
                .is_empty(),
            "finish_reason is required on output messages"
        );
    }

    #[test]
    fn uuid_v7() {
        assert!(is_uuid_v7("019fbd32-0600-7123-8567-89abcdef0123"));
        assert!(is_uuid_v7("019fbd32-0600-7123-b567-89abcdef0123"));
        assert!(!is_uuid_v7("019fbd32-0600-4123-8567-89abcdef0123"));
        assert!(!is_uuid_v7("019fbd32-0600-7123-c567-89abcdef0123"));
        assert!(!is_uuid_v7("019FBD32-0600-7123-8567-89ABCDEF0123"));
        assert!(!is_uuid_v7("019fbd3206007123856789abcdef0123"));
        assert!(!is_uuid_v7("019fbd32-0600-7123-8567-89abcdef012"));
        assert!(!is_uuid_v7(""));
    }

    #[test]
    fn timestamps() {
        let ts = UtcTimestamp::parse("2026-08-01T12:00:00.005Z").expect("valid");
        assert_eq!(ts.unix_nanos(), 1_785_585_600_005_000_000);
        assert_eq!(
            UtcTimestamp::parse("1970-01-01T00:00:00Z").map(|t| t.unix_nanos()),
            Some(0)
        );
        assert_eq!(
            UtcTimestamp::parse("2024-02-29T23:59:59.123456789Z").map(|t| t.nanos),
            Some(123_456_789)
        );
        assert!(
            UtcTimestamp::parse("2026-08-01T12:00:00.5Z")
                > UtcTimestamp::parse("2026-08-01T12:00:00Z")
        );
        for bad in [
            "2026-08-01T12:00:00",
            "2026-08-01T12:00:00+00:00",
            "2026-08-01 12:00:00Z",
            "2026-08-01t12:00:00z",
            "2026-02-29T12:00:00Z",
            "2026-13-01T12:00:00Z",
            "2026-08-01T24:00:00Z",
            "2026-08-01T12:00:00.Z",
            "2026-08-01T12:00:00.1234567890Z",
            "2026-8-01T12:00:00Z",
            "",
        ] {
            assert_eq!(UtcTimestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn locate_dir_honours_env_and_fails_with_searched_list() {
        // The env override is process-wide; only read it here, never set it.
        let dir = Specs::locate_dir().expect("specs found");
        assert!(dir.join("opik-openapi.yaml").is_file());
        let err = Specs::load("/nonexistent/specs").expect_err("must fail");
        assert!(matches!(err, SpecsError::Read { .. }), "{err}");
        let shown = SpecsError::NotFound {
            searched: vec![PathBuf::from("/a"), PathBuf::from("/b")],
        }
        .to_string();
        assert!(
            shown.contains("/a, /b") && shown.contains(SPECS_ENV),
            "{shown}"
        );
    }

    #[test]
    fn violation_display() {
        assert_eq!(Violation::new("/a/0", "bad").to_string(), "/a/0: bad");
        assert_eq!(Violation::new("", "bad").to_string(), "(root): bad");
    }
}
