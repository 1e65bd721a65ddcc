//! Drop-in configuration for users of the two Kong Lua plugins the filter replaces: the flat
//! keys of Opik's `opik-log` and of the Langfuse `ai-tracing` plugin are translated into the
//! filter's own `opik` and `langfuse` objects, with the meaning those plugins gave them.
//!
//! | plugin key | becomes |
//! |---|---|
//! | `http_endpoint` (`https://www.comet.com/opik/`) | `opik.endpoint` (`…/opik/api`) |
//! | `opik_api_key`, `opik_workspace` | `opik.api_key`, `opik.workspace` |
//! | `timeout` (ms) | `opik.timeout_ms` |
//! | `keepalive`, `ai_proxy_name` | accepted, no effect (callouts are not kept alive; bodies are read directly) |
//! | `langfuse_enabled` | `false` leaves the Langfuse sink out |
//! | `langfuse_endpoint` (`…/api/traces` accepted) | `langfuse.endpoint` (base URL) |
//! | `langfuse_public_key`, `langfuse_secret_key` | `langfuse.public_key`, `langfuse.secret_key` |
//! | `langfuse_timeout` (ms) | `langfuse.timeout_ms` |
//! | `environment` | `context.defaults.environment` |
//! | `log_level` | `log_level` |
//! | `enabled` | `false` turns the filter into a pass-through (no sink) |

use super::ConfigError;
use serde_json::{Map, Value};

const OPIK_KEYS: &[&str] = &[
    "http_endpoint",
    "opik_api_key",
    "opik_workspace",
    "timeout",
    "keepalive",
    "ai_proxy_name",
];

const LANGFUSE_KEYS: &[&str] = &[
    "langfuse_enabled",
    "langfuse_endpoint",
    "langfuse_public_key",
    "langfuse_secret_key",
    "langfuse_timeout",
];

/// Rewrites the flat plugin keys of `root` into the filter's own keys. A configuration
/// without them comes back unchanged.
///
/// # Errors
/// A [`ConfigError`] when flat keys are mixed with the object they translate to, or have the
/// wrong type.
pub(super) fn translate(mut root: Map<String, Value>) -> Result<Map<String, Value>, ConfigError> {
    if let Some(enabled) = root.remove("enabled") {
        if !enabled.is_boolean() {
            return Err(wrong("enabled", "true or false"));
        }
        if enabled == Value::Bool(false) {
            root.remove("opik");
            root.remove("langfuse");
            for key in OPIK_KEYS.iter().chain(LANGFUSE_KEYS) {
                root.remove(*key);
            }
        }
    }
    translate_opik(&mut root)?;
    translate_langfuse(&mut root)?;
    if let Some(env) = root.remove("environment") {
        let Value::String(env) = env else {
            return Err(wrong("environment", "a string"));
        };
        let context = root
            .entry("context")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(context) = context else {
            return Err(wrong("context", "an object"));
        };
        let defaults = context
            .entry("defaults")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(defaults) = defaults else {
            return Err(wrong("context.defaults", "an object"));
        };
        defaults.entry("environment").or_insert(Value::String(env));
    }
    Ok(root)
}

fn translate_opik(root: &mut Map<String, Value>) -> Result<(), ConfigError> {
    if !OPIK_KEYS.iter().any(|k| root.contains_key(*k)) {
        return Ok(());
    }
    if root.contains_key("opik") {
        return Err(mixed("opik"));
    }
    let mut opik = Map::new();
    let endpoint = match root.remove("http_endpoint") {
        Some(Value::String(url)) => opik_api_url(&url),
        Some(_) => return Err(wrong("http_endpoint", "a URL string")),
        None => "https://www.comet.com/opik/api".to_string(),
    };
    opik.insert("endpoint".into(), Value::String(endpoint));
    move_string(root, "opik_api_key", &mut opik, "api_key")?;
    move_string(root, "opik_workspace", &mut opik, "workspace")?;
    move_millis(root, "timeout", &mut opik)?;
    for ignored in ["keepalive", "ai_proxy_name"] {
        root.remove(ignored);
    }
    root.insert("opik".into(), Value::Object(opik));
    Ok(())
}

fn translate_langfuse(root: &mut Map<String, Value>) -> Result<(), ConfigError> {
    if !LANGFUSE_KEYS.iter().any(|k| root.contains_key(*k)) {
        return Ok(());
    }
    if root.contains_key("langfuse") {
        return Err(mixed("langfuse"));
    }
    let enabled = match root.remove("langfuse_enabled") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(wrong("langfuse_enabled", "true or false")),
    };
    let mut langfuse = Map::new();
    let endpoint = match root.remove("langfuse_endpoint") {
        Some(Value::String(url)) => langfuse_base_url(&url),
        Some(_) => return Err(wrong("langfuse_endpoint", "a URL string")),
        None => "https://cloud.langfuse.com".to_string(),
    };
    langfuse.insert("endpoint".into(), Value::String(endpoint));
    move_string(root, "langfuse_public_key", &mut langfuse, "public_key")?;
    move_string(root, "langfuse_secret_key", &mut langfuse, "secret_key")?;
    move_millis(root, "langfuse_timeout", &mut langfuse)?;
    if enabled {
        // Missing keys are reported by the `langfuse` object's own parsing.
        root.insert("langfuse".into(), Value::Object(langfuse));
    }
    Ok(())
}

/// `opik-log` posts to `<http_endpoint>api/v1/private/…`; the filter's endpoint is the API
/// root itself.
fn opik_api_url(url: &str) -> String {
    let base = url.trim().trim_end_matches('/');
    if base.ends_with("/api") {
        base.to_string()
    } else {
        format!("{base}/api")
    }
}

/// `ai-tracing`'s default endpoint names a path (`/api/traces`); the filter wants the base URL.
fn langfuse_base_url(url: &str) -> String {
    let mut base = url.trim().trim_end_matches('/');
    for suffix in [
        "/api/public/otel/v1/traces",
        "/api/public/otel",
        "/api/public/ingestion",
        "/api/traces",
    ] {
        if let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped;
            break;
        }
    }
    base.to_string()
}

fn move_string(
    root: &mut Map<String, Value>,
    from: &str,
    into: &mut Map<String, Value>,
    to: &str,
) -> Result<(), ConfigError> {
    match root.remove(from) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => {
            into.insert(to.into(), Value::String(s));
            Ok(())
        }
        Some(_) => Err(wrong(from, "a string")),
    }
}

/// The Lua plugins take timeouts as any number of milliseconds.
fn move_millis(
    root: &mut Map<String, Value>,
    from: &str,
    into: &mut Map<String, Value>,
) -> Result<(), ConfigError> {
    match root.remove(from) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) => {
            let ms = n
                .as_f64()
                .filter(|ms| ms.is_finite() && *ms >= 1.0 && *ms <= 600_000.0)
                .ok_or(ConfigError::Invalid {
                    path: from.into(),
                    reason: "must be 1 to 600000 milliseconds",
                })?;
            into.insert("timeout_ms".into(), Value::from(ms.round() as u64));
            Ok(())
        }
        Some(_) => Err(wrong(from, "a number of milliseconds")),
    }
}

fn wrong(path: &str, expected: &'static str) -> ConfigError {
    ConfigError::WrongType {
        path: path.into(),
        expected,
    }
}

fn mixed(object: &str) -> ConfigError {
    ConfigError::Invalid {
        path: object.into(),
        reason: "give either this object or the flat keys of the Lua plugin it replaces, not both",
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    #[test]
    fn opik_log_keys_mean_what_the_plugin_meant() {
        let c = Config::parse(
            br#"{"http_endpoint":"https://www.comet.com/opik/","opik_api_key":"k","opik_workspace":"ws",
                "timeout":10000,"keepalive":60000,"ai_proxy_name":"proxy"}"#,
        )
        .expect("valid");
        let opik = c.opik.expect("opik sink");
        assert_eq!(opik.endpoint.authority, "www.comet.com");
        assert_eq!(opik.endpoint.base_path, "/opik/api");
        assert_eq!(opik.endpoint.timeout_ms, 10_000);
        assert_eq!(opik.api_key.as_deref(), Some("k"));
        assert_eq!(opik.workspace.as_deref(), Some("ws"));
        let local = Config::parse(br#"{"http_endpoint":"http://opik:5173/api"}"#).expect("valid");
        assert_eq!(local.opik.expect("opik").endpoint.base_path, "/api");
    }

    #[test]
    fn ai_tracing_keys_mean_what_the_plugin_meant() {
        let c = Config::parse(
            br#"{"langfuse_enabled":true,"langfuse_endpoint":"https://cloud.langfuse.com/api/traces",
                "langfuse_public_key":"pk-lf-1","langfuse_secret_key":"sk-lf-1","langfuse_timeout":5000,
                "environment":"staging","log_level":"debug"}"#,
        )
        .expect("valid");
        let lf = c.langfuse.expect("langfuse sink");
        assert_eq!(lf.endpoint.authority, "cloud.langfuse.com");
        assert_eq!(lf.endpoint.base_path, "");
        assert_eq!(lf.endpoint.timeout_ms, 5000);
        assert_eq!(lf.public_key, "pk-lf-1");
        assert_eq!(c.context.defaults.environment.as_deref(), Some("staging"));
        assert_eq!(c.log_level, Some(crate::config::LogLevel::Debug));
        let off = Config::parse(
            br#"{"langfuse_enabled":false,"langfuse_public_key":"pk","langfuse_secret_key":"sk"}"#,
        )
        .expect("valid");
        assert!(off.langfuse.is_none());
        let disabled = Config::parse(br#"{"enabled":false,"http_endpoint":"http://opik/api"}"#)
            .expect("valid");
        assert!(!disabled.has_sink());
    }

    #[test]
    fn mixing_forms_or_bad_types_is_an_error() {
        let cases: &[&[u8]] = &[
            br#"{"http_endpoint":"http://a/","opik":{"endpoint":"http://b/api"}}"#,
            br#"{"langfuse_public_key":"pk","langfuse":{"endpoint":"http://b","public_key":"p","secret_key":"s"}}"#,
            br#"{"http_endpoint":3}"#,
            br#"{"timeout":"10s","http_endpoint":"http://a/"}"#,
            br#"{"langfuse_enabled":"yes"}"#,
            br#"{"log_level":"loud"}"#,
        ];
        for case in cases {
            let err = Config::parse(case).expect_err(&String::from_utf8_lossy(case));
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid { .. } | ConfigError::WrongType { .. }
                ),
                "{err}"
            );
        }
    }

    #[test]
    fn secrets_stay_out_of_errors() {
        let err = Config::parse(
            br#"{"langfuse_secret_key":"sk-lf-TOPSECRET","langfuse":{"endpoint":"http://x","public_key":"p","secret_key":"s"}}"#,
        )
        .expect_err("mixed");
        assert!(!err.to_string().contains("TOPSECRET"));
    }
}
