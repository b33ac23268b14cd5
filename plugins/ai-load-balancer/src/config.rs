//! Configuration: `RawConfig` as written (camelCase, unknown fields refused with their path),
//! validated into an immutable [`Config`]: endpoints parsed, weights checked, shared-data keys and
//! header names made once at configure time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use aigw_shared::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;

use crate::store::Keys;

/// Request bodies read for prefix hashing, unless configured (larger ones pass unhashed).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 << 20;
/// The most endpoints one pool may hold (prefix-table entries name endpoints in one byte).
pub const MAX_ENDPOINTS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    #[serde(default = "default_pool")]
    pool: String,
    #[serde(default = "default_header")]
    header: String,
    #[serde(default)]
    list_header: Option<String>,
    #[serde(default)]
    scorers: RawScorers,
    #[serde(default)]
    prefix: RawPrefix,
    #[serde(default)]
    saturation: RawSaturation,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    load: RawLoad,
    #[serde(default = "default_cool_off")]
    unhealthy_cool_off_ms: u64,
    #[serde(default = "default_max_request")]
    max_request_body_bytes: usize,
    #[serde(default)]
    response_header: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEndpoint {
    address: String,
    #[serde(default = "one")]
    weight: f64,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    lora_adapters: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawScorers {
    #[serde(default = "w_prefix")]
    prefix: f64,
    #[serde(default = "w_two")]
    queue: f64,
    #[serde(default = "w_two")]
    kv_cache: f64,
    #[serde(default = "one")]
    in_flight: f64,
    #[serde(default = "w_session")]
    session: f64,
    #[serde(default = "one")]
    lora: f64,
    #[serde(default = "one")]
    hardware: f64,
}

impl Default for RawScorers {
    fn default() -> Self {
        Self {
            prefix: w_prefix(),
            queue: w_two(),
            kv_cache: w_two(),
            in_flight: one(),
            session: w_session(),
            lora: one(),
            hardware: one(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrefix {
    #[serde(default = "default_block")]
    block_bytes: usize,
    #[serde(default = "default_max_blocks")]
    max_blocks: usize,
    #[serde(default = "default_table_slots")]
    table_slots: u32,
    #[serde(default = "default_capacity")]
    capacity_blocks: u32,
}

impl Default for RawPrefix {
    fn default() -> Self {
        Self {
            block_bytes: default_block(),
            max_blocks: default_max_blocks(),
            table_slots: default_table_slots(),
            capacity_blocks: default_capacity(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSaturation {
    #[serde(default = "default_queue_threshold")]
    queue_threshold: u32,
    #[serde(default = "default_kv_threshold")]
    kv_cache_threshold: f64,
    #[serde(default)]
    policy: SaturationPolicy,
}

impl Default for RawSaturation {
    fn default() -> Self {
        Self {
            queue_threshold: default_queue_threshold(),
            kv_cache_threshold: default_kv_threshold(),
            policy: SaturationPolicy::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSession {
    #[serde(default = "default_session_header")]
    header: String,
    #[serde(default = "default_session_ttl")]
    ttl_seconds: u64,
    #[serde(default = "default_session_slots")]
    slots: u32,
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            header: default_session_header(),
            ttl_seconds: default_session_ttl(),
            slots: default_session_slots(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLoad {
    #[serde(default = "default_max_age")]
    max_age_ms: u64,
    #[serde(default)]
    kv_cache_header: Option<String>,
    #[serde(default)]
    queue_header: Option<String>,
    #[serde(default)]
    running_header: Option<String>,
}

impl Default for RawLoad {
    fn default() -> Self {
        Self {
            max_age_ms: default_max_age(),
            kv_cache_header: None,
            queue_header: None,
            running_header: None,
        }
    }
}

fn default_pool() -> String {
    "default".to_owned()
}
fn default_header() -> String {
    "x-gateway-destination-endpoint".to_owned()
}
fn default_cool_off() -> u64 {
    10_000
}
fn default_max_request() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}
fn one() -> f64 {
    1.0
}
fn w_two() -> f64 {
    2.0
}
fn w_prefix() -> f64 {
    3.0
}
fn w_session() -> f64 {
    10.0
}
fn default_block() -> usize {
    64
}
fn default_max_blocks() -> usize {
    256
}
fn default_table_slots() -> u32 {
    1 << 16
}
fn default_capacity() -> u32 {
    32_768
}
fn default_queue_threshold() -> u32 {
    5
}
fn default_kv_threshold() -> f64 {
    0.8
}
fn default_session_header() -> String {
    "x-session-id".to_owned()
}
fn default_session_ttl() -> u64 {
    300
}
fn default_session_slots() -> u32 {
    4096
}
fn default_max_age() -> u64 {
    2_000
}

/// What happens when every healthy endpoint is saturated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SaturationPolicy {
    /// Answer 429 (with `retry-after`) in the caller's protocol.
    #[default]
    Shed,
    /// Pick among the saturated endpoints anyway.
    Deprioritize,
}

/// One model-server endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `ip:port` as written in the header (IPv6 in brackets).
    pub address: String,
    /// Hardware weight (an H100 pod may take more than an A100 pod), > 0.
    pub weight: f64,
    /// Free-form labels (`gpu: H100`), reported in logs and metrics.
    pub labels: BTreeMap<String, String>,
    /// LoRA adapters this endpoint serves (matched against the request's `model`).
    pub lora_adapters: Vec<String>,
    /// Name of its pick counter.
    pub picks_metric: String,
    /// Name of its cool-off counter.
    pub down_metric: String,
}

/// Scorer weights; a score is Σ weight × scorer value, each value in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Prefix-cache affinity: matched share of the prompt's blocks.
    pub prefix: f64,
    /// Queue depth (`num_requests_waiting`): 1 / (1 + waiting).
    pub queue: f64,
    /// KV-cache usage: 1 − usage.
    pub kv_cache: f64,
    /// Requests in flight from this gateway: 1 / (1 + in flight).
    pub in_flight: f64,
    /// Session affinity: 1 for the endpoint the session is bound to.
    pub session: f64,
    /// LoRA affinity: 1 for endpoints serving the requested adapter.
    pub lora: f64,
    /// Hardware weight relative to the heaviest endpoint.
    pub hardware: f64,
}

/// Prefix hashing and the prefix table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixSettings {
    /// Bytes of prompt per block.
    pub block_bytes: usize,
    /// Blocks hashed at most (the rest of a long prompt is not hashed).
    pub max_blocks: usize,
    /// Slots of the shared prefix table.
    pub table_slots: u32,
    /// Blocks an endpoint is assumed to keep cached (older routed blocks count as evicted).
    pub capacity_blocks: u32,
}

/// Saturation filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// Waiting requests at or over which an endpoint is saturated.
    pub queue_threshold: u32,
    /// KV-cache usage at or over which an endpoint is saturated.
    pub kv_cache_threshold: f64,
    /// What happens when every healthy endpoint is saturated.
    pub policy: SaturationPolicy,
}

/// Session affinity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Request header naming the session (empty: no session affinity).
    pub header: String,
    /// How long a binding lasts after its last use.
    pub ttl: Duration,
    /// Slots of the shared session table.
    pub slots: u32,
}

/// Where load reports come from, besides ORCA `endpoint-load-metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSources {
    /// Reports older than this are ignored.
    pub max_age: Duration,
    /// A response header carrying KV-cache usage (0–1, or a percentage over 1).
    pub kv_cache_header: Option<String>,
    /// A response header carrying the number of waiting requests.
    pub queue_header: Option<String>,
    /// A response header carrying the number of running requests.
    pub running_header: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The endpoints of the pool, in configured order (empty: the plugin does nothing).
    pub endpoints: Vec<Endpoint>,
    /// Pool name: the namespace of its shared-data keys.
    pub pool: String,
    /// Request header that receives the chosen `ip:port` (ORIGINAL_DST `http_header_name`).
    pub header: String,
    /// Request header that receives the ordered list `pick,fallback,…` (`override_host`).
    pub list_header: Option<String>,
    /// Scorer weights.
    pub weights: Weights,
    /// Prefix hashing.
    pub prefix: PrefixSettings,
    /// Saturation filter.
    pub saturation: Saturation,
    /// Session affinity.
    pub session: Session,
    /// Load report sources.
    pub load: LoadSources,
    /// How long an endpoint that failed (connect failure, 502/503/504 without a load report) is skipped.
    pub cool_off: Duration,
    /// Request bodies read at most (larger ones are routed by load only).
    pub max_request_body_bytes: usize,
    /// Answer with `x-aigw-endpoint` naming the endpoint that served the request (off by default:
    /// it shows internal addresses to clients).
    pub response_header: bool,
    /// The largest endpoint weight (for the hardware scorer).
    pub max_weight: f64,
    /// Whether any endpoint serves a LoRA adapter (else the request's model is not looked up).
    pub has_lora: bool,
    /// The pool's shared-data keys, made once.
    pub keys: Keys,
}

impl Config {
    /// Parse and validate one configuration object.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        if raw.endpoints.len() > MAX_ENDPOINTS {
            return Err(ConfigError::invalid(
                "endpoints",
                format!("at most {MAX_ENDPOINTS} endpoints per pool"),
            ));
        }
        let mut endpoints = Vec::with_capacity(raw.endpoints.len());
        for (i, e) in raw.endpoints.into_iter().enumerate() {
            endpoints.push(endpoint(i, e, &endpoints)?);
        }
        check_name("pool", &raw.pool)?;
        check_header("header", &raw.header)?;
        if let Some(h) = &raw.list_header {
            check_header("listHeader", h)?;
        }
        let weights = weights(&raw.scorers)?;
        let p = &raw.prefix;
        check_range("prefix.blockBytes", p.block_bytes as u64, 1, 1 << 20)?;
        check_range("prefix.maxBlocks", p.max_blocks as u64, 1, 1 << 16)?;
        check_range("prefix.tableSlots", u64::from(p.table_slots), 1, 1 << 24)?;
        check_range(
            "prefix.capacityBlocks",
            u64::from(p.capacity_blocks),
            1,
            1 << 30,
        )?;
        let s = &raw.saturation;
        check_range(
            "saturation.queueThreshold",
            u64::from(s.queue_threshold),
            1,
            1 << 20,
        )?;
        if !(s.kv_cache_threshold > 0.0 && s.kv_cache_threshold <= 1.0) {
            return Err(ConfigError::invalid(
                "saturation.kvCacheThreshold",
                "must be over 0 and at most 1",
            ));
        }
        if !raw.session.header.is_empty() {
            check_header("session.header", &raw.session.header)?;
        }
        check_range("session.slots", u64::from(raw.session.slots), 1, 1 << 24)?;
        check_range(
            "session.ttlSeconds",
            raw.session.ttl_seconds,
            1,
            86_400 * 30,
        )?;
        check_range("load.maxAgeMs", raw.load.max_age_ms, 1, 3_600_000)?;
        for (path, h) in [
            ("load.kvCacheHeader", &raw.load.kv_cache_header),
            ("load.queueHeader", &raw.load.queue_header),
            ("load.runningHeader", &raw.load.running_header),
        ] {
            if let Some(h) = h {
                check_header(path, h)?;
            }
        }
        check_range(
            "unhealthyCoolOffMs",
            raw.unhealthy_cool_off_ms,
            1,
            3_600_000,
        )?;
        check_range(
            "maxRequestBodyBytes",
            raw.max_request_body_bytes as u64,
            1,
            1 << 30,
        )?;
        let max_weight = endpoints.iter().map(|e| e.weight).fold(0.0, f64::max);
        let has_lora = endpoints.iter().any(|e| !e.lora_adapters.is_empty());
        let mut config = Self {
            endpoints,
            pool: raw.pool,
            header: raw.header.to_ascii_lowercase(),
            list_header: raw.list_header.map(|h| h.to_ascii_lowercase()),
            weights,
            prefix: PrefixSettings {
                block_bytes: p.block_bytes,
                max_blocks: p.max_blocks,
                table_slots: p.table_slots,
                capacity_blocks: p.capacity_blocks,
            },
            saturation: Saturation {
                queue_threshold: s.queue_threshold,
                kv_cache_threshold: s.kv_cache_threshold,
                policy: s.policy,
            },
            session: Session {
                header: raw.session.header.to_ascii_lowercase(),
                ttl: Duration::from_secs(raw.session.ttl_seconds),
                slots: raw.session.slots,
            },
            load: LoadSources {
                max_age: Duration::from_millis(raw.load.max_age_ms),
                kv_cache_header: raw.load.kv_cache_header.map(|h| h.to_ascii_lowercase()),
                queue_header: raw.load.queue_header.map(|h| h.to_ascii_lowercase()),
                running_header: raw.load.running_header.map(|h| h.to_ascii_lowercase()),
            },
            cool_off: Duration::from_millis(raw.unhealthy_cool_off_ms),
            max_request_body_bytes: raw.max_request_body_bytes,
            response_header: raw.response_header,
            max_weight,
            has_lora,
            keys: Keys::default(),
        };
        config.keys = Keys::new(&config);
        Ok(config)
    }

    /// True when the plugin has endpoints to pick from (else every request passes untouched).
    pub fn is_active(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The index of the endpoint at `address`, if it is one of the pool's.
    pub fn endpoint_index(&self, address: &[u8]) -> Option<usize> {
        self.endpoints
            .iter()
            .position(|e| e.address.as_bytes() == address)
    }
}

fn endpoint(i: usize, raw: RawEndpoint, before: &[Endpoint]) -> Result<Endpoint, ConfigError> {
    let path = format!("endpoints[{i}]");
    if raw.address.parse::<SocketAddr>().is_err() {
        return Err(ConfigError::invalid(
            format!("{path}.address"),
            "must be ip:port (IPv6 in brackets): the header Envoy reads names an address, not a host name",
        ));
    }
    if before.iter().any(|e| e.address == raw.address) {
        return Err(ConfigError::invalid(
            format!("{path}.address"),
            "listed twice",
        ));
    }
    if !(raw.weight.is_finite() && raw.weight > 0.0 && raw.weight <= 1000.0) {
        return Err(ConfigError::invalid(
            format!("{path}.weight"),
            "must be over 0 and at most 1000",
        ));
    }
    for (j, a) in raw.lora_adapters.iter().enumerate() {
        if a.is_empty() {
            return Err(ConfigError::invalid(
                format!("{path}.loraAdapters[{j}]"),
                "must not be empty",
            ));
        }
    }
    let label = aigw_shared::metrics::label(&raw.address);
    Ok(Endpoint {
        address: raw.address,
        weight: raw.weight,
        labels: raw.labels,
        lora_adapters: raw.lora_adapters,
        picks_metric: format!("aigw.ai_load_balancer.endpoint.{label}.picks_total"),
        down_metric: format!("aigw.ai_load_balancer.endpoint.{label}.marked_down_total"),
    })
}

fn weights(raw: &RawScorers) -> Result<Weights, ConfigError> {
    for (name, w) in [
        ("prefix", raw.prefix),
        ("queue", raw.queue),
        ("kvCache", raw.kv_cache),
        ("inFlight", raw.in_flight),
        ("session", raw.session),
        ("lora", raw.lora),
        ("hardware", raw.hardware),
    ] {
        if !(w.is_finite() && (0.0..=1000.0).contains(&w)) {
            return Err(ConfigError::invalid(
                format!("scorers.{name}"),
                "must be between 0 and 1000",
            ));
        }
    }
    Ok(Weights {
        prefix: raw.prefix,
        queue: raw.queue,
        kv_cache: raw.kv_cache,
        in_flight: raw.in_flight,
        session: raw.session,
        lora: raw.lora,
        hardware: raw.hardware,
    })
}

fn check_range(path: &str, v: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::invalid(
            path,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

fn check_name(path: &str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            path,
            "must be 1-64 letters, digits, '-' or '_'",
        ))
    }
}

fn check_header(path: &str, v: &str) -> Result<(), ConfigError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(path, "must be a header name"))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
