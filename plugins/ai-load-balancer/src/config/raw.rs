//! The configuration as written: camelCase JSON, unknown fields refused with their path, every
//! default explicit. These types also give the JSON Schema (`config.schema.json`, native builds).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SaturationPolicy;

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
/// The plugin's configuration.
pub(super) struct RawConfig {
    /// The model-server endpoints of the pool (`ip:port`); none: the plugin passes every request untouched.
    #[serde(default)]
    pub(super) endpoints: Vec<RawEndpoint>,
    /// The pool's name: the namespace of its prefix and session tables in shared data.
    #[serde(default = "default_pool")]
    pub(super) pool: String,
    /// Request header that receives the chosen `ip:port` (ORIGINAL_DST `http_header_name`).
    #[serde(default = "default_header")]
    pub(super) header: String,
    /// Request header that receives the ordered list `pick,fallback,...` (the `override_host` policy's header source); none by default.
    #[serde(default)]
    pub(super) list_header: Option<String>,
    /// Scorer weights: a score is the sum of weight × value, every value in [0, 1].
    #[serde(default)]
    pub(super) scorers: RawScorers,
    /// Prefix hashing and the prefix table.
    #[serde(default)]
    pub(super) prefix: RawPrefix,
    /// When an endpoint counts as saturated, and what happens when all are.
    #[serde(default)]
    pub(super) saturation: RawSaturation,
    /// Session affinity.
    #[serde(default)]
    pub(super) session: RawSession,
    /// Where load reports come from besides ORCA `endpoint-load-metrics`, and how long they count.
    #[serde(default)]
    pub(super) load: RawLoad,
    /// How long an endpoint that failed (502/503/504 without a load report, or an answer from another host of the list) is skipped.
    #[serde(default = "default_cool_off")]
    pub(super) unhealthy_cool_off_ms: u64,
    /// Request bodies read for prefix hashing at most; larger ones are routed by load alone.
    #[serde(default = "default_max_request")]
    pub(super) max_request_body_bytes: usize,
    /// Answer with `x-aigw-endpoint` naming the endpoint that served (shows internal addresses: off by default).
    #[serde(default)]
    pub(super) response_header: bool,
    /// Act only on requests whose header `match.header` has one of `match.values` (another
    /// filter's routing decision, such as ai-proxy's `x-aigw-upstream`); none: every request.
    #[serde(default, rename = "match")]
    pub(super) matches: Option<RawMatch>,
    /// Bounded loads: an endpoint holding more than this times its weighted share of the requests in flight goes after the others; 0 disables.
    #[serde(default = "default_bounded_load")]
    pub(super) bounded_load: f64,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawEndpoint {
    /// `ip:port` (IPv6 in brackets): what Envoy connects to.
    pub(super) address: String,
    /// Hardware weight (an H100 pod 2 against A100 pods 1): the hardware scorer and the bounded-load share.
    #[serde(default = "one")]
    pub(super) weight: f64,
    /// Free-form labels (`gpu: H100`), for documentation and logs.
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    /// LoRA adapters the endpoint serves, matched against the request's `model`.
    #[serde(default)]
    pub(super) lora_adapters: Vec<String>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawScorers {
    /// Prefix-cache affinity: the share of the prompt's blocks the endpoint holds.
    #[serde(default = "w_prefix")]
    pub(super) prefix: f64,
    /// Queue depth: 1 - waiting / (2 × saturation.queueThreshold), at least 0.
    #[serde(default = "w_two")]
    pub(super) queue: f64,
    /// KV-cache usage: 1 - usage.
    #[serde(default = "w_two")]
    pub(super) kv_cache: f64,
    /// Requests in flight from this gateway: 1 / (1 + in flight).
    #[serde(default = "one")]
    pub(super) in_flight: f64,
    /// Session affinity: 1 for the endpoint the session is bound to.
    #[serde(default = "w_session")]
    pub(super) session: f64,
    /// LoRA affinity: 1 for endpoints serving the requested adapter.
    #[serde(default = "one")]
    pub(super) lora: f64,
    /// Hardware weight relative to the heaviest endpoint.
    #[serde(default = "one")]
    pub(super) hardware: f64,
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

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawPrefix {
    /// Prompt bytes per block.
    #[serde(default = "default_block")]
    pub(super) block_bytes: usize,
    /// Blocks hashed at most (the rest of a longer prompt is not hashed).
    #[serde(default = "default_max_blocks")]
    pub(super) max_blocks: usize,
    /// Slots of the shared prefix table (each a few dozen bytes).
    #[serde(default = "default_table_slots")]
    pub(super) table_slots: u32,
    /// Blocks an endpoint is assumed to keep cached: blocks routed to it longer ago count as evicted.
    #[serde(default = "default_capacity")]
    pub(super) capacity_blocks: u32,
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

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSaturation {
    /// Waiting requests at or over which an endpoint is saturated.
    #[serde(default = "default_queue_threshold")]
    pub(super) queue_threshold: u32,
    /// KV-cache usage (0-1) at or over which an endpoint is saturated.
    #[serde(default = "default_kv_threshold")]
    pub(super) kv_cache_threshold: f64,
    /// `shed`: answer 429 when every healthy endpoint is saturated; `deprioritize`: pick among them anyway.
    #[serde(default)]
    pub(super) policy: SaturationPolicy,
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

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSession {
    /// Request header naming the session; empty: no session affinity.
    #[serde(default = "default_session_header")]
    pub(super) header: String,
    /// How long a binding lasts after its last use.
    #[serde(default = "default_session_ttl")]
    pub(super) ttl_seconds: u64,
    /// Slots of the shared session table.
    #[serde(default = "default_session_slots")]
    pub(super) slots: u32,
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

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawLoad {
    /// Reports older than this are ignored (the endpoint reads as idle).
    #[serde(default = "default_max_age")]
    pub(super) max_age_ms: u64,
    /// Each worker reads an endpoint's shared record (load, cool-off, other workers' requests in flight) at most this often, and publishes its own changes as often; 0: on every request.
    #[serde(default = "default_refresh")]
    pub(super) refresh_ms: u64,
    /// A response header carrying KV-cache usage (0-1, or a percentage).
    #[serde(default)]
    pub(super) kv_cache_header: Option<String>,
    /// A response header carrying the number of waiting requests.
    #[serde(default)]
    pub(super) queue_header: Option<String>,
    /// A response header carrying the number of running requests.
    #[serde(default)]
    pub(super) running_header: Option<String>,
    /// On Higress, each worker reads the routed cluster's hosts this often: endpoints the host holds unhealthy are skipped until the next read, and the model-server metrics it scrapes (vLLM, SGLang) fill what a fresh response report lacks, for `maxAgeMs` after the read; 0: never.
    #[serde(default = "default_upstream_hosts")]
    pub(super) upstream_hosts_ms: u64,
}

impl Default for RawLoad {
    fn default() -> Self {
        Self {
            max_age_ms: default_max_age(),
            refresh_ms: default_refresh(),
            kv_cache_header: None,
            queue_header: None,
            running_header: None,
            upstream_hosts_ms: default_upstream_hosts(),
        }
    }
}

pub(super) fn default_pool() -> String {
    "default".to_owned()
}
pub(super) fn default_header() -> String {
    "x-gateway-destination-endpoint".to_owned()
}
pub(super) fn default_cool_off() -> u64 {
    10_000
}
pub(super) fn default_max_request() -> usize {
    super::DEFAULT_MAX_REQUEST_BYTES
}
pub(super) fn one() -> f64 {
    1.0
}
pub(super) fn w_two() -> f64 {
    2.0
}
pub(super) fn w_prefix() -> f64 {
    3.0
}
pub(super) fn w_session() -> f64 {
    10.0
}
pub(super) fn default_block() -> usize {
    64
}
pub(super) fn default_max_blocks() -> usize {
    256
}
pub(super) fn default_table_slots() -> u32 {
    1 << 16
}
pub(super) fn default_capacity() -> u32 {
    32_768
}
pub(super) fn default_queue_threshold() -> u32 {
    5
}
pub(super) fn default_kv_threshold() -> f64 {
    0.8
}
pub(super) fn default_session_header() -> String {
    "x-session-id".to_owned()
}
pub(super) fn default_session_ttl() -> u64 {
    300
}
pub(super) fn default_session_slots() -> u32 {
    4096
}
pub(super) fn default_bounded_load() -> f64 {
    1.25
}
pub(super) fn default_max_age() -> u64 {
    2_000
}
pub(super) fn default_refresh() -> u64 {
    1
}
pub(super) fn default_upstream_hosts() -> u64 {
    1_000
}

/// A request condition: one header, one of several values.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawMatch {
    /// The request header (as the plugin sees it, after the filters before it).
    pub(super) header: String,
    /// Values that make the plugin act (exact).
    pub(super) values: Vec<String>,
}
