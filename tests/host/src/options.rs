//! [`HostOptions`]: which gateway to emulate and how it is configured.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::clock::ClockMode;
use crate::personality::Personality;
use crate::state::LogLevel;

/// Kong's default `client_body_buffer_size` (hosts.md §3.8 "Request body buffer").
pub const KONG_CLIENT_BODY_BUFFER_SIZE: usize = 8 * 1024;
/// Envoy's default `per_connection_buffer_limit_bytes` (hosts.md §5.6).
pub const ENVOY_BUFFER_LIMIT: usize = 1024 * 1024;
/// ngx_wasm_module's default `wasm_response_body_buffers` (4 × 4096, hosts.md §4.8).
pub const KONG_RESPONSE_BODY_BUFFERS: usize = 4 * 4096;

/// How the emulated gateway is set up.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Which gateway's rules apply.
    pub personality: Personality,
    /// Filter name: Kong's filter name (file stem of the `.wasm`) and Envoy's `PluginConfig.name`.
    /// Read by the guest as the `plugin_name` property; part of Kong metric names.
    pub plugin_name: String,
    /// Bytes returned as the plugin configuration in `on_configure`.
    pub plugin_config: Vec<u8>,
    /// Bytes returned as the VM configuration in `on_vm_start` (Kong: always empty, §3.2).
    pub vm_config: Vec<u8>,
    /// Envoy `root_id` (the `plugin_root_id` property on Envoy).
    pub root_id: String,
    /// Envoy `vm_id` (the `plugin_vm_id` property; shared-queue resolution).
    pub vm_id: String,
    /// Envoy clusters the filter may dispatch to: cluster name → address.
    pub envoy_clusters: BTreeMap<String, SocketAddr>,
    /// Kong name resolution for dispatch upstreams that are host names, not IP literals
    /// (`localhost` resolves to 127.0.0.1 without an entry). Unknown names fail the call
    /// asynchronously with `:dispatch_status: resolver failure` (hosts.md §4.4).
    pub kong_hosts: BTreeMap<String, IpAddr>,
    /// Envoy `fail_open`: after a trap the filter is skipped instead of failing every request
    /// with 503 (hosts.md §5.1). Kong has no such knob (§4.11) and ignores it.
    pub fail_open: bool,
    /// Wall clock source.
    pub clock: ClockMode,
    /// Seed of WASI `random_get`.
    pub seed: u64,
    /// Kong `client_body_buffer_size`: a request body larger than this is "buffered to file"
    /// and `get_http_request_body` returns None (hosts.md §4.8). `None` means no limit.
    pub client_body_buffer_size: Option<usize>,
    /// Envoy buffer limit for bodies the filter pauses on (hosts.md §5.6): a request over it
    /// gets 413, a response over it is reset.
    pub envoy_buffer_limit: usize,
    /// Kong `wasm_response_body_buffers` total size (hosts.md §4.8).
    pub kong_response_body_buffers: usize,
    /// Upper bound for a callout's timeout (Kong's `0` means 60 s, Envoy's `0` means none).
    pub callout_timeout_cap: Duration,
    /// Level returned by `proxy_get_log_level` (Envoy; the call traps on Kong).
    pub log_level: LogLevel,
    /// Kong version emulated, `major.minor[.patch]`: metrics trap before 3.8 and use the
    /// `pw.<filter>.` prefix in 3.8, `pw:<filter>:` from 3.9 (hosts.md §3.1, §4.7).
    pub kong_version: String,
    /// Extra properties by dotted path (e.g. `kong.route_id`, `xds.node`), raw bytes as the
    /// guest will read them. They take precedence over built-in properties.
    pub properties: BTreeMap<String, Vec<u8>>,
    /// WASI environment variables.
    pub env: Vec<(String, String)>,
    /// Kong `shm_kv` zones; `*` is the un-namespaced zone. Without a matching zone,
    /// `get/set_shared_data` trap (hosts.md §4.6).
    pub kong_shm_kv_zones: Vec<String>,
    /// Kong `shm_queue` zones: name → capacity in bytes. `register_shared_queue` traps for
    /// other names; a full queue traps on enqueue (hosts.md §4.6).
    pub kong_shm_queues: BTreeMap<String, usize>,
    /// Server host name (`ngx.hostname`, Kong's `request.host`).
    pub hostname: String,
    /// Client address (`source.address`).
    pub downstream_addr: SocketAddr,
    /// Upstream address of proxied requests (`upstream.address`).
    pub upstream_addr: SocketAddr,
    /// Route name (`xds.route_name`, `kong.route_name`).
    pub route_name: String,
    /// Upstream cluster or service name (`xds.cluster_name`, `kong.service_name`).
    pub cluster_name: String,
}

impl HostOptions {
    /// Defaults for `personality` with `plugin_config` as the filter configuration: plugin
    /// `llm_tracer`, a manual clock at 2024-01-01, seed 42, Kong 3.9.1 limits and Envoy's
    /// 1 MiB buffer limit, no clusters.
    pub fn new(personality: Personality, plugin_config: impl Into<Vec<u8>>) -> Self {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        HostOptions {
            personality,
            plugin_name: "llm_tracer".to_string(),
            plugin_config: plugin_config.into(),
            vm_config: Vec::new(),
            root_id: "llm_tracer".to_string(),
            vm_id: "llm_tracer".to_string(),
            envoy_clusters: BTreeMap::new(),
            kong_hosts: BTreeMap::new(),
            fail_open: false,
            clock: ClockMode::default(),
            seed: 42,
            client_body_buffer_size: Some(KONG_CLIENT_BODY_BUFFER_SIZE),
            envoy_buffer_limit: ENVOY_BUFFER_LIMIT,
            kong_response_body_buffers: KONG_RESPONSE_BODY_BUFFERS,
            callout_timeout_cap: Duration::from_secs(60),
            log_level: LogLevel::Info,
            kong_version: "3.9.1".to_string(),
            properties: BTreeMap::new(),
            env: Vec::new(),
            kong_shm_kv_zones: Vec::new(),
            kong_shm_queues: BTreeMap::new(),
            hostname: "llm-tracer-host".to_string(),
            downstream_addr: SocketAddr::new(loopback, 50_000),
            upstream_addr: SocketAddr::new(loopback, 8_080),
            route_name: "llm_route".to_string(),
            cluster_name: "llm_upstream".to_string(),
        }
    }

    /// Adds an Envoy cluster (builder style).
    pub fn with_cluster(mut self, name: &str, addr: SocketAddr) -> Self {
        self.envoy_clusters.insert(name.to_string(), addr);
        self
    }

    /// Kong version as `(major, minor)`; unparsable versions count as the newest (3.9).
    pub(crate) fn kong_version_pair(&self) -> (u32, u32) {
        let mut parts = self.kong_version.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor),
            _ => (3, 9),
        }
    }
}
