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

mod raw;
use raw::{RawConfig, RawEndpoint, RawScorers};

/// Request bodies read for prefix hashing, unless configured (larger ones pass unhashed).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 << 20;
/// The most endpoints one pool may hold (prefix-table entries name endpoints in one byte).
pub const MAX_ENDPOINTS: usize = 64;

/// What happens when every healthy endpoint is saturated.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
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
    /// Queue depth (`num_requests_waiting`): 1 − waiting / (2 × saturation queue threshold), at least 0.
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
    /// How long a worker serves endpoint records from its cache before reading them again (and
    /// how long it may hold its own changes before publishing them).
    pub refresh: Duration,
    /// A response header carrying KV-cache usage (0–1, or a percentage over 1).
    pub kv_cache_header: Option<String>,
    /// A response header carrying the number of waiting requests.
    pub queue_header: Option<String>,
    /// A response header carrying the number of running requests.
    pub running_header: Option<String>,
    /// How often a worker reads Higress's list of the routed cluster's hosts (zero: never).
    pub upstream_hosts: Duration,
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
    /// Bounded-load factor: an endpoint holding more than this × its weighted share of the
    /// requests in flight goes after the others (0: no bound).
    pub bounded_load: f64,
    /// Act only when this request header has one of these values.
    pub only_when: Option<(String, Vec<String>)>,
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
        check_range("load.refreshMs", raw.load.refresh_ms, 0, 1_000)?;
        check_range(
            "load.upstreamHostsMs",
            raw.load.upstream_hosts_ms,
            0,
            60_000,
        )?;
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
            crate::store::MAX_COOL_OFF_MS,
        )?;
        check_range(
            "maxRequestBodyBytes",
            raw.max_request_body_bytes as u64,
            1,
            1 << 30,
        )?;
        if !(raw.bounded_load == 0.0 || (1.0..=100.0).contains(&raw.bounded_load)) {
            return Err(ConfigError::invalid(
                "boundedLoad",
                "must be 0 (no bound) or between 1 and 100",
            ));
        }
        let only_when = match raw.matches {
            None => None,
            Some(m) => {
                check_header("match.header", &m.header)?;
                if m.values.is_empty() {
                    return Err(ConfigError::invalid("match.values", "must not be empty"));
                }
                Some((m.header.to_ascii_lowercase(), m.values))
            }
        };
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
                refresh: Duration::from_millis(raw.load.refresh_ms),
                kv_cache_header: raw.load.kv_cache_header.map(|h| h.to_ascii_lowercase()),
                queue_header: raw.load.queue_header.map(|h| h.to_ascii_lowercase()),
                running_header: raw.load.running_header.map(|h| h.to_ascii_lowercase()),
                upstream_hosts: Duration::from_millis(raw.load.upstream_hosts_ms),
            },
            cool_off: Duration::from_millis(raw.unhealthy_cool_off_ms),
            max_request_body_bytes: raw.max_request_body_bytes,
            response_header: raw.response_header,
            bounded_load: raw.bounded_load,
            only_when,
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

    /// Whether a request with this value of the `match` header (`None`: absent) is this pool's.
    pub fn applies(&self, value: Option<&[u8]>) -> bool {
        match &self.only_when {
            None => true,
            Some((_, values)) => value.is_some_and(|v| values.iter().any(|x| x.as_bytes() == v)),
        }
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
mod tests;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::raw::RawConfig>("ai-load-balancer");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
