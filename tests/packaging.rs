//! Packaging checks: the deployment files in `kong/` and `examples/` are what the gateways and
//! tools expect, and every filter configuration they embed is one the filter accepts.
//!
//! - Envoy configurations validate against Envoy's v3 API types (`tests/envoy_validate.py`,
//!   with the `envoy-data-plane` package), their Wasm filters run on v8 with `fail_open`, their
//!   `configuration` parses with [`Config::parse`] and names clusters that exist.
//! - The Grafana dashboard is well-formed Grafana JSON whose PromQL only uses metrics and
//!   labels of [`CATALOG`]; so do the Prometheus alert rules.
//! - Istio, Envoy Gateway, Kong Admin API and docker compose files parse, embed accepted
//!   configurations and reference files, clusters and services that exist.
//! - Envoy `stats_tags` and Kong `label_patterns` equal [`LABEL_PATTERNS`].

use llm_tracer::config::Config;
use llm_tracer::metrics::{Kind, Metric, CATALOG, LABEL_PATTERNS};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const INSTALL_HINT: &str = "install the validator's packages with: \
                            python3 -m pip install -r tests/requirements.txt";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a YAML file, merge keys (`<<`) applied, as JSON values.
fn yaml_documents(path: &str) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = serde_norway::Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            serde_json::to_value(value).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(path: &str) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{path} holds one YAML document");
    documents.remove(0)
}

/// A filter configuration as the gateway hands it over: an object, or Kong's JSON string.
fn parse_config(origin: &str, config: &Value) -> Config {
    let bytes = serde_json::to_vec(config).expect("encode");
    let parsed = Config::parse(&bytes).unwrap_or_else(|e| panic!("{origin}: {e}"));
    assert!(parsed.has_sink(), "{origin}: configures no sink");
    parsed
}

/// The `upstream` of every configured sink.
fn upstreams(config: &Config) -> Vec<String> {
    let opik = config.opik.iter().map(|o| o.endpoint.upstream.clone());
    let langfuse = config.langfuse.iter().map(|l| l.endpoint.upstream.clone());
    opik.chain(langfuse).collect()
}

/// The contract's label patterns as `(label, regex)` pairs.
fn contract_patterns() -> Vec<(String, String)> {
    LABEL_PATTERNS
        .iter()
        .map(|(label, regex)| (label.to_string(), regex.to_string()))
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every YAML file under `examples/` except the recorded traffic, relative to the root.
fn example_yaml_files() -> Vec<String> {
    let mut files = Vec::new();
    files_under(&root().join("examples"), &mut files);
    let mut out: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix(root()).ok())
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .filter(|p| !p.starts_with("examples/traffic/"))
        .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Envoy: validation against the API types

/// What `tests/envoy_validate.py` reports, run once for every test of this file.
fn envoy_report() -> &'static Value {
    static REPORT: OnceLock<Value> = OnceLock::new();
    REPORT.get_or_init(run_envoy_validator)
}

fn run_envoy_validator() -> Value {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .current_dir(root())
        .arg("tests/envoy_validate.py")
        .args(example_yaml_files())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{python}` ({e}); {INSTALL_HINT}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(2) {
        panic!("{stderr}{INSTALL_HINT}");
    }
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("envoy_validate.py output is not JSON ({e}): {stderr}"));
    assert!(
        output.status.success(),
        "Envoy configurations fail validation: {:#}",
        report["errors"]
    );
    report
}

fn validated_documents() -> &'static [Value] {
    envoy_report()["documents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn envoy_configurations_validate_against_envoy_api_types() {
    let report = envoy_report();
    assert!(
        report["registered_types"].as_u64().unwrap_or(0) > 0,
        "typed_config messages were resolved through the type registry"
    );
    let validated: BTreeSet<&str> = validated_documents()
        .iter()
        .filter_map(|d| d["file"].as_str())
        .collect();
    for expected in [
        "examples/envoy/envoy.yaml",
        "examples/envoy-gateway/llm-tracer.yaml",
    ] {
        assert!(validated.contains(expected), "{expected} was validated");
    }
}

#[test]
fn envoy_wasm_filters_are_fail_open_v8_with_accepted_configurations() {
    let mut filters = 0;
    for document in validated_documents() {
        let file = document["file"].as_str().unwrap_or("?");
        let clusters = strings(&document["clusters"]);
        for wasm in document["wasm"].as_array().into_iter().flatten() {
            filters += 1;
            assert_eq!(wasm["runtime"], "envoy.wasm.runtime.v8", "{file}");
            assert_eq!(wasm["fail_open"], true, "{file}");
            let text = wasm["configuration"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: configuration is a StringValue"));
            let config = Config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(config.has_sink(), "{file}");
            for upstream in upstreams(&config) {
                assert!(
                    clusters.contains(&upstream),
                    "{file}: upstream `{upstream}` is not a cluster ({clusters:?})"
                );
            }
        }
    }
    assert!(filters > 0, "a Wasm filter was checked");
}

#[test]
fn envoy_llm_routes_have_no_request_timeout() {
    let example = validated_documents()
        .iter()
        .find(|d| d["file"] == "examples/envoy/envoy.yaml")
        .expect("envoy.yaml validated");
    let llm: Vec<&Value> = example["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["cluster"] == "openai")
        .collect();
    assert!(!llm.is_empty(), "a route to the LLM upstream");
    for route in llm {
        assert_eq!(route["timeout"], "0s", "streams are not cut: {route}");
    }
}

#[test]
fn envoy_tls_clusters_set_sni_and_verify_certificates() {
    let doc = yaml("examples/envoy/envoy.yaml");
    let clusters = doc["static_resources"]["clusters"]
        .as_array()
        .expect("clusters");
    let mut tls = 0;
    for cluster in clusters {
        let socket = &cluster["transport_socket"];
        if socket.is_null() {
            continue;
        }
        tls += 1;
        let context = &socket["typed_config"];
        let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["address"]["socket_address"];
        assert_eq!(context["sni"], address["address"], "{}", cluster["name"]);
        assert_eq!(address["port_value"], 443, "{}", cluster["name"]);
        assert!(
            context["common_tls_context"]["validation_context"]["trusted_ca"]["filename"]
                .is_string(),
            "{} verifies the server certificate",
            cluster["name"]
        );
    }
    assert!(tls >= 2, "the LLM upstream and a backend use TLS");
}

// ---------------------------------------------------------------------------------------------
// Label extraction rules

fn stats_tags(bootstrap: &Value) -> Vec<(String, String)> {
    bootstrap["stats_config"]["stats_tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let field = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            (field("tag_name"), field("regex"))
        })
        .collect()
}

#[test]
fn envoy_stats_tags_equal_the_label_patterns() {
    assert_eq!(
        stats_tags(&yaml("examples/envoy/envoy.yaml")),
        contract_patterns()
    );
    let eg = yaml_documents("examples/envoy-gateway/llm-tracer.yaml");
    let proxy = eg
        .iter()
        .find(|d| d["kind"] == "EnvoyProxy")
        .expect("EnvoyProxy");
    let fragment = proxy["spec"]["bootstrap"]["value"].as_str().expect("value");
    let bootstrap: Value = serde_norway::from_str(fragment).expect("bootstrap fragment");
    assert_eq!(stats_tags(&bootstrap), contract_patterns());
}

#[test]
fn kong_label_patterns_equal_the_label_patterns() {
    let meta: Value = serde_json::from_str(&read("kong/llm_tracer.meta.json")).expect("JSON");
    let patterns: Vec<(String, String)> = meta["metrics"]["label_patterns"]
        .as_array()
        .unwrap_or_else(|| panic!("meta.json has metrics.label_patterns"))
        .iter()
        .map(|p| {
            let field = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            (field("label"), field("pattern"))
        })
        .collect();
    assert_eq!(patterns, contract_patterns());
}

// ---------------------------------------------------------------------------------------------
// PromQL over the catalog

/// Names a PromQL expression refers to, with the gateway prefixes removed: the dashboard's
/// `${prefix}`, the rules' optional `(pw_llm_tracer_)?` and Kong's literal `pw_llm_tracer_`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let plain = expr
        .replace("${prefix}", "")
        .replace("(pw_llm_tracer_)?", "");
    plain
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .map(|word| word.strip_prefix("pw_llm_tracer_").unwrap_or(word))
        .filter(|word| word.starts_with("llm_tracer_"))
        .map(str::to_owned)
        .collect()
}

/// The catalog entry behind a name PromQL may use: the name itself, or a histogram's
/// `_bucket`, `_sum` or `_count` series.
fn catalog_metric(name: &str) -> Option<(&'static Metric, bool)> {
    if let Some(metric) = CATALOG.iter().find(|m| m.name == name) {
        return Some((metric, false));
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let metric = CATALOG
            .iter()
            .find(|m| m.name == base && m.kind == Kind::Histogram)?;
        Some((metric, *suffix == "_bucket"))
    })
}

/// The expression without `${name}` references, whose braces are not selectors.
fn without_braced_variables(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        match rest.find('}') {
            Some(end) => rest = &rest[end + 1..],
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// Label names inside `{…}` selectors and `by (…)` / `without (…)` clauses.
fn used_labels(expr: &str) -> BTreeSet<String> {
    let expr = without_braced_variables(expr);
    let mut labels = BTreeSet::new();
    for selector in expr.split('{').skip(1) {
        let body = selector.split('}').next().unwrap_or_default();
        for matcher in body.split(',') {
            let name: String = matcher
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "__name__" {
                labels.insert(name);
            }
        }
    }
    for keyword in ["by", "without"] {
        for part in expr.split(&format!("{keyword} (")).skip(1) {
            let body = part.split(')').next().unwrap_or_default();
            labels.extend(
                body.split(',')
                    .map(|l| l.trim().to_owned())
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    labels
}

/// Every metric an expression uses is in the catalog, and every label it uses belongs to
/// one of them (`le` to a histogram's buckets).
fn check_expr(origin: &str, expr: &str) -> BTreeSet<&'static str> {
    let names = metric_names(expr);
    assert!(
        !names.is_empty(),
        "{origin}: no llm_tracer metric in `{expr}`"
    );
    let mut known: BTreeSet<&str> = BTreeSet::new();
    let mut metrics = BTreeSet::new();
    for name in &names {
        let (metric, buckets) = catalog_metric(name)
            .unwrap_or_else(|| panic!("{origin}: `{name}` is not a metric the filter defines"));
        known.extend(metric.labels.iter().copied());
        if buckets {
            known.insert("le");
        }
        metrics.insert(metric.name);
    }
    for label in used_labels(expr) {
        assert!(
            known.contains(label.as_str()),
            "{origin}: label `{label}` is not a label of {names:?}"
        );
    }
    metrics
}

/// `$name` and `${name}` references in a string.
fn variables(text: &str) -> BTreeSet<String> {
    text.split('$')
        .skip(1)
        .map(|rest| {
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn promql_helpers_find_metrics_labels_and_variables() {
    let expr = r#"histogram_quantile(0.95, sum by (le, model) (rate({__name__=~"${prefix}llm_tracer_latency_ms_bucket", model=~"$model"}[$__rate_interval])))"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from(["llm_tracer_latency_ms_bucket".to_owned()])
    );
    assert_eq!(
        used_labels(expr),
        BTreeSet::from(["le".to_owned(), "model".to_owned()])
    );
    assert_eq!(
        variables(expr),
        BTreeSet::from([
            "prefix".to_owned(),
            "model".to_owned(),
            "__rate_interval".to_owned()
        ])
    );
    let kong = "rate(pw_llm_tracer_llm_tracer_errors_total[5m])";
    assert_eq!(
        metric_names(kong),
        BTreeSet::from(["llm_tracer_errors_total".to_owned()])
    );
    assert!(catalog_metric("llm_tracer_latency_ms_count").is_some());
    assert!(catalog_metric("llm_tracer_requests_total_bucket").is_none());
    assert!(catalog_metric("llm_tracer_request_total").is_none());
}

// ---------------------------------------------------------------------------------------------
// Grafana

const DASHBOARD: &str = "examples/grafana/llm-tracer-dashboard.json";

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).expect("dashboard is JSON")
}

fn template_variables(dashboard: &Value) -> BTreeMap<String, Value> {
    dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().expect("variable name").to_owned(),
                v.clone(),
            )
        })
        .collect()
}

/// A panel's grid rectangle: x, y, w, h.
fn grid(panel: &Value) -> [u64; 4] {
    let pos = &panel["gridPos"];
    let field = |k: &str| {
        pos[k]
            .as_u64()
            .unwrap_or_else(|| panel_fail(panel, &format!("gridPos.{k} is not an integer")))
    };
    let rect = [field("x"), field("y"), field("w"), field("h")];
    let [x, _, w, h] = rect;
    if w == 0 || h == 0 || x + w > 24 {
        panel_fail(panel, "gridPos outside Grafana's 24-column grid");
    }
    rect
}

fn panel_fail(panel: &Value, why: &str) -> ! {
    panic!("panel {} ({}): {why}", panel["id"], panel["title"])
}

fn overlaps(a: [u64; 4], b: [u64; 4]) -> bool {
    a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]
}

#[test]
fn grafana_dashboard_is_well_formed() {
    let dashboard = dashboard();
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    assert!(dashboard["schemaVersion"].is_u64());
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    let mut rects: Vec<[u64; 4]> = Vec::new();
    for panel in panels {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panel_fail(panel, "no id"));
        assert!(ids.insert(id), "panel id {id} is unique");
        assert!(panel["type"].is_string() && panel["title"].is_string());
        let rect = grid(panel);
        if let Some(other) = rects.iter().find(|r| overlaps(**r, rect)) {
            panel_fail(panel, &format!("overlaps the panel at {other:?}"));
        }
        rects.push(rect);
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {id} has targets");
        let ref_ids: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        assert_eq!(ref_ids.len(), targets.len(), "panel {id}: refIds unique");
    }
}

#[test]
fn grafana_dashboard_queries_only_catalog_metrics() {
    let dashboard = dashboard();
    let defined = template_variables(&dashboard);
    let mut seen = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let origin = format!("panel {}", panel["title"]);
            seen.extend(check_expr(&origin, expr));
            for var in variables(expr) {
                assert!(
                    var.starts_with("__") || defined.contains_key(&var),
                    "{origin}: `${var}` is not a dashboard variable"
                );
            }
        }
    }
    for var in ["provider", "model", "route", "sink"] {
        let definition = defined[var]["definition"].as_str().expect("definition");
        check_expr(&format!("variable {var}"), definition);
    }
    let wanted = [
        "llm_tracer_requests_total",
        "llm_tracer_errors_total",
        "llm_tracer_input_tokens_total",
        "llm_tracer_output_tokens_total",
        "llm_tracer_cached_input_tokens_total",
        "llm_tracer_reasoning_tokens_total",
        "llm_tracer_cost_microusd_total",
        "llm_tracer_latency_ms",
        "llm_tracer_ttft_ms",
        "llm_tracer_export_sent_records_total",
        "llm_tracer_export_retries_total",
        "llm_tracer_export_dropped_records_total",
        "llm_tracer_export_queue_records",
    ];
    for name in wanted {
        assert!(seen.contains(name), "the dashboard shows {name}");
    }
}

/// The name a gateway exports for a catalog name.
fn exported_names(name: &str) -> [String; 2] {
    // Envoy strips its `wasmcustom.` namespace; Kong 3.9 prefixes `pw:<filter>:` and
    // turns `:` into `_`.
    [name.to_owned(), format!("pw_llm_tracer_{name}")]
}

/// Whether the dashboard's `__name__=~"<prefix><name>"` matcher selects `exported`. The
/// prefix options are literal text, optionally anchored with `^` (Prometheus anchors the
/// whole regex anyway).
fn prefix_selects(prefix: &str, name: &str, exported: &str) -> bool {
    let literal = prefix.strip_prefix('^').unwrap_or(prefix);
    let plain = literal
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain && format!("{literal}{name}") == exported
}

#[test]
fn grafana_prefix_variable_covers_envoy_and_kong_names() {
    let defined = template_variables(&dashboard());
    let prefix = &defined["prefix"];
    assert_eq!(prefix["type"], "custom");
    // Grafana rebuilds custom options from `query` ("text : value, …").
    let values: Vec<String> = prefix["query"]
        .as_str()
        .expect("query")
        .split(',')
        .map(|option| {
            option
                .rsplit(" : ")
                .next()
                .unwrap_or(option)
                .trim()
                .to_owned()
        })
        .collect();
    let name = "llm_tracer_requests_total";
    for exported in exported_names(name) {
        let selecting: Vec<&String> = values
            .iter()
            .filter(|v| prefix_selects(v, name, &exported))
            .collect();
        assert_eq!(selecting.len(), 1, "one prefix option selects {exported}");
    }
    let current = prefix["current"]["value"].as_str().expect("current value");
    assert!(values.iter().any(|v| v == current), "current is an option");
}

#[test]
fn prefix_matching_is_literal() {
    assert!(prefix_selects("^", "a_total", "a_total"));
    assert!(prefix_selects("pw_x_", "a_total", "pw_x_a_total"));
    assert!(!prefix_selects("^", "a_total", "pw_x_a_total"));
    assert!(!prefix_selects(".*", "a_total", "pw_x_a_total"));
}

// ---------------------------------------------------------------------------------------------
// Prometheus alert rules

#[test]
fn alert_rules_use_catalog_metrics_on_both_gateways() {
    let rules = yaml("examples/grafana/alerts.yml");
    let groups = rules["groups"].as_array().expect("groups");
    let mut alerts = BTreeSet::new();
    let mut covered = BTreeSet::new();
    for group in groups {
        assert!(group["name"].is_string());
        for rule in group["rules"].as_array().expect("rules") {
            let alert = rule["alert"].as_str().expect("alert name");
            assert!(alerts.insert(alert.to_owned()), "{alert} is unique");
            let expr = rule["expr"].as_str().expect("expr");
            covered.extend(check_expr(alert, expr));
            // One rule set for both gateways: every name may carry Kong's prefix.
            let with_prefix = expr.matches("(pw_llm_tracer_)?llm_tracer_").count();
            let names = expr.matches("llm_tracer_").count() - with_prefix;
            assert_eq!(with_prefix, names, "{alert}: every metric takes both names");
            assert!(rule["labels"]["severity"].is_string(), "{alert}: severity");
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{alert}: summary"
            );
            let wait = rule["for"].as_str().unwrap_or_default();
            assert!(
                wait.ends_with('m') && wait.trim_end_matches('m').parse::<u32>().is_ok(),
                "{alert}: `for` is a duration in minutes"
            );
        }
    }
    for name in [
        "llm_tracer_export_dropped_records_total",
        "llm_tracer_errors_total",
        "llm_tracer_export_queue_records",
        "llm_tracer_latency_ms",
    ] {
        assert!(covered.contains(name), "an alert watches {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Istio and Envoy Gateway

#[test]
fn istio_wasm_plugin_config_parses_and_names_service_entry_clusters() {
    let plugin = yaml("examples/istio/wasm-plugin.yaml");
    assert_eq!(plugin["kind"], "WasmPlugin");
    let spec = &plugin["spec"];
    assert!(spec["url"]
        .as_str()
        .is_some_and(|u| u.starts_with("oci://")));
    assert_eq!(spec["failStrategy"], "FAIL_OPEN");
    let config = parse_config("WasmPlugin.pluginConfig", &spec["pluginConfig"]);

    let mut clusters = BTreeSet::new();
    for entry in yaml_documents("examples/istio/egress.yaml") {
        if entry["kind"] != "ServiceEntry" {
            continue;
        }
        for host in strings(&entry["spec"]["hosts"]) {
            for port in entry["spec"]["ports"].as_array().into_iter().flatten() {
                clusters.insert(format!("outbound|{}||{host}", port["number"]));
            }
        }
    }
    for upstream in upstreams(&config) {
        assert!(
            clusters.contains(&upstream),
            "`{upstream}` is the cluster of a ServiceEntry ({clusters:?})"
        );
    }
}

#[test]
fn istio_egress_originates_tls_for_every_service_entry() {
    let documents = yaml_documents("examples/istio/egress.yaml");
    for entry in documents.iter().filter(|d| d["kind"] == "ServiceEntry") {
        for host in strings(&entry["spec"]["hosts"]) {
            let rule = documents
                .iter()
                .find(|d| d["kind"] == "DestinationRule" && d["spec"]["host"] == host.as_str())
                .unwrap_or_else(|| panic!("a DestinationRule for {host}"));
            let tls = &rule["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"];
            assert_eq!(tls["mode"], "SIMPLE", "{host}");
            assert_eq!(tls["sni"], host.as_str());
        }
    }
}

#[test]
fn envoy_gateway_policy_config_parses_and_names_bootstrap_clusters() {
    let file = "examples/envoy-gateway/llm-tracer.yaml";
    let documents = yaml_documents(file);
    let policy = documents
        .iter()
        .find(|d| d["kind"] == "EnvoyExtensionPolicy")
        .expect("EnvoyExtensionPolicy");
    let clusters: Vec<String> = validated_documents()
        .iter()
        .filter(|d| d["file"] == file)
        .flat_map(|d| strings(&d["clusters"]))
        .collect();
    let extensions = policy["spec"]["wasm"].as_array().expect("spec.wasm");
    assert!(!extensions.is_empty());
    for wasm in extensions {
        assert_eq!(wasm["code"]["type"], "Image");
        assert!(wasm["code"]["image"]["url"].is_string());
        assert_eq!(wasm["failOpen"], true);
        let config = parse_config("EnvoyExtensionPolicy.spec.wasm.config", &wasm["config"]);
        for upstream in upstreams(&config) {
            assert!(
                clusters.contains(&upstream),
                "`{upstream}` is a cluster of the EnvoyProxy bootstrap ({clusters:?})"
            );
        }
    }
    // The policy targets the route that carries LLM traffic, which has no request timeout.
    let target = policy["spec"]["targetRefs"][0]["name"]
        .as_str()
        .expect("target");
    let route = documents
        .iter()
        .find(|d| d["kind"] == "HTTPRoute" && d["metadata"]["name"] == target)
        .expect("targeted HTTPRoute");
    for rule in route["spec"]["rules"].as_array().expect("rules") {
        assert_eq!(rule["timeouts"]["request"], "0s");
    }
}

#[test]
fn oci_image_is_one_layer_with_plugin_wasm() {
    let dockerfile = read("examples/oci/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(instructions.first(), Some(&"FROM scratch"));
    let copies: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .collect();
    assert_eq!(copies.len(), 1, "exactly one layer");
    let destination = copies[0].split_whitespace().last().unwrap_or_default();
    assert!(
        destination.trim_start_matches("./").trim_start_matches('/') == "plugin.wasm",
        "the module lands at the image root as plugin.wasm: {destination}"
    );
    assert_eq!(instructions.len(), 2, "nothing but FROM and COPY");
}

// ---------------------------------------------------------------------------------------------
// Kong

fn kong_schema() -> jsonschema::Validator {
    let meta: Value = serde_json::from_str(&read("kong/llm_tracer.meta.json")).expect("JSON");
    jsonschema::draft4::new(&meta["config_schema"]).expect("config_schema is draft 4")
}

/// Every llm_tracer configuration of a Kong declarative file, with the route carrying it.
fn kong_filter_configs(doc: &Value) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for service in doc["services"].as_array().into_iter().flatten() {
        for route in service["routes"].as_array().into_iter().flatten() {
            let chains = route["filter_chains"].as_array().into_iter().flatten();
            let filters = chains.flat_map(|c| c["filters"].as_array().into_iter().flatten());
            let plugins = route["plugins"].as_array().into_iter().flatten();
            for entry in filters.chain(plugins) {
                if entry["name"] == "llm_tracer" {
                    out.push((route.clone(), entry["config"].clone()));
                }
            }
        }
    }
    out
}

/// Validates a Kong filter configuration the way Kong 3.5+ and the filter do.
fn check_kong_config(origin: &str, schema: &jsonschema::Validator, config: &Value) -> Config {
    if let Value::Object(_) = config {
        let errors: Vec<String> = schema.iter_errors(config).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{origin}: {errors:?}");
    }
    parse_config(origin, config)
}

#[test]
fn kong_compose_declarative_configs_validate() {
    let schema = kong_schema();
    for file in [
        "kong/compose/kong-langfuse.yml",
        "kong/compose/kong-opik.yml",
    ] {
        let doc = yaml(file);
        assert_eq!(doc["_format_version"], "3.0", "{file}");
        let configs = kong_filter_configs(&doc);
        assert!(!configs.is_empty(), "{file} attaches llm_tracer");
        for (route, config) in configs {
            check_kong_config(file, &schema, &config);
            assert_eq!(route["response_buffering"], false, "{file}: SSE unbuffered");
        }
        let globals = doc["plugins"].as_array().expect("global plugins");
        assert!(
            globals.iter().any(|p| p["name"] == "prometheus"),
            "{file}: the Prometheus plugin exports the filter's metrics"
        );
    }
}

/// The bodies of the quoted heredocs (`<<'JSON'` … `JSON`) of a shell script.
fn json_heredocs(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in script.lines() {
        match current.as_mut() {
            Some(body) if line.trim() == "JSON" => {
                out.push(body.join("\n"));
                current = None;
            }
            Some(body) => body.push(line),
            None if line.contains("<<'JSON'") => current = Some(Vec::new()),
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated heredoc");
    out
}

#[test]
fn kong_admin_api_bodies_carry_accepted_configs() {
    let schema = kong_schema();
    let script = read("kong/admin-api.sh");
    let bodies = json_heredocs(&script);
    assert!(
        bodies.len() >= 3,
        "chain, string chain, service and plugin bodies"
    );
    let mut configs = 0;
    for (index, body) in bodies.iter().enumerate() {
        let origin = format!("kong/admin-api.sh body {index}");
        let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{origin}: {e}"));
        let filters = value["filters"].as_array();
        let found: Vec<Value> = match filters {
            Some(filters) => filters
                .iter()
                .filter(|f| f["name"] == "llm_tracer")
                .map(|f| f["config"].clone())
                .collect(),
            // A bare configuration, the `config` of the /plugins body.
            None => vec![value.clone()],
        };
        for config in found {
            configs += 1;
            check_kong_config(&origin, &schema, &config);
        }
    }
    assert_eq!(configs, bodies.len(), "every body holds one configuration");
}

#[test]
fn heredoc_extraction_finds_quoted_json_only() {
    let script = "a <<'JSON'\n{\"x\": 1}\nJSON\nb <<JSON\n{}\nJSON\n";
    assert_eq!(json_heredocs(script), vec!["{\"x\": 1}".to_owned()]);
}

// ---------------------------------------------------------------------------------------------
// docker compose

struct Mount {
    source: String,
    target: String,
}

/// Bind mounts (`./src:/dst[:mode]`) of a compose service.
fn bind_mounts(service: &Value) -> Vec<Mount> {
    strings(&service["volumes"])
        .iter()
        .filter(|v| v.starts_with('.') || v.starts_with('/'))
        .map(|v| {
            let mut parts = v.split(':');
            let source = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            Mount { source, target }
        })
        .collect()
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string());
            (k.clone(), text)
        })
        .collect()
}

const COMPOSE_FILES: [&str; 3] = [
    "kong/docker-compose.langfuse.yml",
    "kong/docker-compose.opik.yml",
    "examples/envoy/docker-compose.yml",
];

#[test]
fn compose_files_reference_existing_files_volumes_and_networks() {
    for file in COMPOSE_FILES {
        let doc = yaml(file);
        let dir = root()
            .join(file)
            .parent()
            .map(Path::to_path_buf)
            .expect("dir");
        let services = doc["services"].as_object().expect("services");
        assert!(!services.is_empty());
        let volumes = doc["volumes"].as_object().cloned().unwrap_or_default();
        let networks = doc["networks"].as_object().cloned().unwrap_or_default();
        for (name, service) in services {
            assert!(service["image"].is_string(), "{file}: {name} has an image");
            for mount in bind_mounts(service) {
                // The filter is a build output (`make wasm`), not a repository file.
                if mount.source.contains("/dist/") {
                    assert!(mount.source.ends_with("llm_tracer.wasm"), "{file}: {name}");
                    continue;
                }
                let path = dir.join(&mount.source);
                assert!(
                    path.exists(),
                    "{file}: {name} mounts missing {}",
                    mount.source
                );
            }
            for volume in strings(&service["volumes"]) {
                let source = volume.split(':').next().unwrap_or_default();
                if !(source.starts_with('.') || source.starts_with('/')) {
                    assert!(volumes.contains_key(source), "{file}: volume {source}");
                }
            }
            for network in strings(&service["networks"]) {
                assert!(
                    network == "default" || networks.contains_key(&network),
                    "{file}: network {network}"
                );
            }
        }
    }
}

/// The Kong service's declarative configuration: the mount whose target is
/// `KONG_DECLARATIVE_CONFIG`, read from the repository.
fn kong_declarative(file: &str, kong: &Value) -> Value {
    let env = environment(kong);
    let target = &env["KONG_DECLARATIVE_CONFIG"];
    let mount = bind_mounts(kong)
        .into_iter()
        .find(|m| &m.target == target)
        .unwrap_or_else(|| panic!("{file}: {target} is mounted"));
    let dir = Path::new(file).parent().expect("dir");
    yaml(&dir.join(&mount.source).to_string_lossy())
}

#[test]
fn kong_compose_services_load_the_filter_and_reach_its_backends() {
    let schema = kong_schema();
    for file in [
        "kong/docker-compose.langfuse.yml",
        "kong/docker-compose.opik.yml",
    ] {
        let doc = yaml(file);
        let services = doc["services"].as_object().expect("services");
        let kong = &services["kong"];
        assert!(kong["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("kong:3.9")));
        let env = environment(kong);
        assert_eq!(env["KONG_WASM"], "on", "{file}");
        assert!(
            env.contains_key("KONG_NGINX_WASM_RESOLVER"),
            "{file}: resolver"
        );
        let filters = &env["KONG_WASM_FILTERS_PATH"];
        let targets: Vec<String> = bind_mounts(kong).into_iter().map(|m| m.target).collect();
        for name in ["llm_tracer.wasm", "llm_tracer.meta.json"] {
            let wanted = format!("{filters}/{name}");
            assert!(targets.contains(&wanted), "{file}: {wanted} is mounted");
        }
        let external = doc["networks"]
            .as_object()
            .into_iter()
            .flatten()
            .any(|(_, n)| n["external"] == true);
        for (_, config) in kong_filter_configs(&kong_declarative(file, kong)) {
            let parsed = check_kong_config(file, &schema, &config);
            for upstream in upstreams(&parsed) {
                let host = upstream.split(':').next().unwrap_or_default();
                assert!(
                    services.contains_key(host) || external,
                    "{file}: `{host}` is a service of the compose file or its external network"
                );
            }
            if let (Some(langfuse), Some(web)) = (&parsed.langfuse, services.get("langfuse-web")) {
                let init = environment(web);
                assert_eq!(
                    init["LANGFUSE_INIT_PROJECT_PUBLIC_KEY"],
                    langfuse.public_key
                );
                assert_eq!(
                    init["LANGFUSE_INIT_PROJECT_SECRET_KEY"],
                    langfuse.secret_key
                );
            }
        }
    }
}

#[test]
fn envoy_compose_mounts_what_envoy_yaml_loads() {
    let doc = yaml("examples/envoy/docker-compose.yml");
    let envoy = &doc["services"]["envoy"];
    let mounts = bind_mounts(envoy);
    let config = mounts
        .iter()
        .find(|m| m.source == "./envoy.yaml")
        .expect("envoy.yaml mounted");
    assert!(strings(&envoy["command"]).contains(&config.target));
    let bootstrap = yaml("examples/envoy/envoy.yaml");
    let listeners = bootstrap["static_resources"]["listeners"]
        .as_array()
        .expect("listeners");
    let code = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]
        ["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"];
    let wasm = code.as_str().expect("local filename");
    assert!(
        mounts
            .iter()
            .any(|m| m.target == wasm && m.source.ends_with("llm_tracer.wasm")),
        "{wasm} is mounted"
    );
    let prometheus = yaml("examples/envoy/prometheus.yml");
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/stats/prometheus");
    let metrics_listener = listeners
        .iter()
        .find(|l| l["name"] == "metrics")
        .expect("metrics listener");
    let port = metrics_listener["address"]["socket_address"]["port_value"].clone();
    assert_eq!(
        job["static_configs"][0]["targets"],
        json!([format!("envoy:{port}")])
    );
}
