//! Configuration: [`RawConfig`] as written (camelCase JSON, unknown fields refused with their
//! path), validated once into [`Config`]: the key rules, the exact tier, the semantic tier (an
//! embedding service and a vector store, each a ready-made upstream), skip and bypass rules.

use std::collections::BTreeMap;
use std::time::Duration;

use aigw_shared::callout::Upstream;
use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::consumer::{ConsumerConfig, ConsumerIdentifier};
use serde::Deserialize;
use serde_json::Value;

use crate::key::KeyMode;
use crate::store::{StoreKind, VectorStore};

/// The largest request body read (10 MiB, as the other plugins); larger ones pass uncached.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;
/// The largest answer kept (bytes of answer text); longer answers are not stored.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 256 << 10;
/// Shared-data slots of the exact tier (memory is bounded by slots × answer size).
pub const DEFAULT_EXACT_SLOTS: u32 = 16_384;
/// Cosine similarity at or above which a semantic neighbour is a hit (measured in the README).
pub const DEFAULT_THRESHOLD: f32 = 0.88;

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    key: RawKey,
    #[serde(default = "default_ttl")]
    ttl_seconds: u64,
    #[serde(default = "yes")]
    exact: bool,
    #[serde(default = "default_slots")]
    exact_slots: u32,
    #[serde(default)]
    semantic: Option<RawSemantic>,
    #[serde(default = "default_bypass_header")]
    bypass_header: String,
    #[serde(default)]
    skip: RawSkip,
    #[serde(default = "default_max_body")]
    max_request_body_bytes: usize,
    #[serde(default = "default_max_answer")]
    max_answer_bytes: usize,
    #[serde(default = "default_chunk_chars")]
    replay_chunk_chars: usize,
    /// The exact tier in Redis instead of shared data (the Higress build): shared by every
    /// gateway replica.
    #[serde(default)]
    redis: Option<aigw_shared::redis::RawRedis>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKey {
    #[serde(default)]
    mode: KeyMode,
    #[serde(default = "yes")]
    system_prompt: bool,
    #[serde(default)]
    consumer: Option<ConsumerConfig>,
}

impl Default for RawKey {
    fn default() -> Self {
        Self {
            mode: KeyMode::default(),
            system_prompt: true,
            consumer: None,
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSkip {
    #[serde(default = "yes")]
    with_tools: bool,
    #[serde(default)]
    max_temperature: Option<f64>,
}

impl Default for RawSkip {
    fn default() -> Self {
        Self {
            with_tools: true,
            max_temperature: None,
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSemantic {
    #[serde(default = "default_threshold")]
    threshold: f32,
    embedding: RawEmbedding,
    vector_store: RawStore,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawEmbedding {
    cluster: String,
    authority: String,
    #[serde(default = "default_embed_path")]
    path: String,
    model: String,
    #[serde(default)]
    dimensions: Option<u32>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_max_input_chars")]
    max_input_chars: usize,
}

/// A vector store as written.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStore {
    /// Which database.
    pub kind: StoreKind,
    /// Envoy cluster (or Higress `outbound|port||fqdn`).
    pub cluster: String,
    /// `:authority` sent.
    pub authority: String,
    /// Collection name (created on first use).
    #[serde(default = "default_collection")]
    pub collection: String,
    /// Credential (Chroma `x-chroma-token`, Qdrant `api-key`, Milvus `Authorization: Bearer`,
    /// Elasticsearch `Authorization: ApiKey`, OpenSearch `Authorization: Basic`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Chroma tenant.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Chroma database (Milvus `dbName`).
    #[serde(default = "default_database")]
    pub database: String,
    /// Per call.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_ttl() -> u64 {
    3600
}
fn default_slots() -> u32 {
    DEFAULT_EXACT_SLOTS
}
fn default_bypass_header() -> String {
    "x-aigw-cache-bypass".into()
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_answer() -> usize {
    DEFAULT_MAX_ANSWER_BYTES
}
fn default_chunk_chars() -> usize {
    24
}
fn default_threshold() -> f32 {
    DEFAULT_THRESHOLD
}
fn default_embed_path() -> String {
    "/v1/embeddings".into()
}
fn default_timeout() -> u64 {
    1000
}
fn default_max_input_chars() -> usize {
    4000
}
fn default_collection() -> String {
    "aigw_semantic_cache".into()
}
fn default_tenant() -> String {
    "default_tenant".into()
}
fn default_database() -> String {
    "default_database".into()
}

/// The embedding service.
#[derive(Debug)]
pub struct Embedding {
    /// Where calls go.
    pub upstream: Upstream,
    /// Request path.
    pub path: String,
    /// `model` sent.
    pub model: String,
    /// `dimensions` sent, when set.
    pub dimensions: Option<u32>,
    /// Extra headers (authorization).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Per call.
    pub timeout: Duration,
    /// Key texts longer than this (in characters) are not embedded (exact tier only).
    pub max_input_chars: usize,
}

/// The semantic tier.
#[derive(Debug)]
pub struct Semantic {
    /// Cosine similarity for a hit.
    pub threshold: f32,
    /// The embedding service.
    pub embedding: Embedding,
    /// The vector store.
    pub store: VectorStore,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Off: every request passes untouched (a `_rules_` entry can turn it on for some routes or
    /// domains).
    pub enabled: bool,
    /// Which messages make the key.
    pub mode: KeyMode,
    /// Partition by the system prompt's hash.
    pub system_prompt: bool,
    /// Partition by consumer, when set.
    pub consumer: Option<ConsumerIdentifier>,
    /// Entry lifetime.
    pub ttl_seconds: u64,
    /// Local exact tier on.
    pub exact: bool,
    /// Its shared-data slots.
    pub exact_slots: u32,
    /// Semantic tier, when configured.
    pub semantic: Option<Semantic>,
    /// Lower-case header that bypasses the cache.
    pub bypass_header: String,
    /// Skip requests that offer tools.
    pub skip_with_tools: bool,
    /// Skip requests whose temperature is above this.
    pub max_temperature: Option<f64>,
    /// Largest request body read.
    pub max_request_body_bytes: usize,
    /// Largest answer text stored.
    pub max_answer_bytes: usize,
    /// Characters per replayed stream chunk (about).
    pub replay_chunk_chars: usize,
    /// Where the exact tier lives on a host with Redis calls (else in shared data).
    pub redis: Option<aigw_shared::redis::Redis>,
}

impl Config {
    /// Parse and validate one configuration object.
    pub fn build(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        if raw.ttl_seconds == 0 || raw.ttl_seconds > 365 * 86_400 {
            return Err(ConfigError::invalid("ttlSeconds", "must be 1-31536000"));
        }
        let bypass = raw.bypass_header.to_ascii_lowercase();
        if bypass.is_empty() || bypass.starts_with(':') || bypass.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "bypassHeader",
                "must be a header name (not a pseudo-header)",
            ));
        }
        if raw.exact_slots == 0 || raw.exact_slots > 1 << 20 {
            return Err(ConfigError::invalid("exactSlots", "must be 1-1048576"));
        }
        if raw.max_answer_bytes == 0 {
            return Err(ConfigError::invalid("maxAnswerBytes", "must be above 0"));
        }
        if raw.replay_chunk_chars == 0 || raw.replay_chunk_chars > 4096 {
            return Err(ConfigError::invalid("replayChunkChars", "must be 1-4096"));
        }
        if let Some(t) = raw.skip.max_temperature {
            if !t.is_finite() || t < 0.0 {
                return Err(ConfigError::invalid(
                    "skip.maxTemperature",
                    "must be a number >= 0",
                ));
            }
        }
        let consumer = match &raw.key.consumer {
            Some(c) => Some(c.compile().map_err(|e| e.prefixed("key.consumer"))?),
            None => None,
        };
        let semantic = raw.semantic.map(build_semantic).transpose()?;
        let redis = match raw.redis {
            Some(_) if !raw.exact => {
                return Err(ConfigError::invalid(
                    "redis",
                    "holds the exact tier: it needs `exact` on",
                ));
            }
            Some(r) => Some(aigw_shared::redis::Redis::build(r).map_err(|e| e.prefixed("redis"))?),
            None => None,
        };
        if raw.enabled && !raw.exact && semantic.is_none() {
            return Err(ConfigError::invalid(
                "exact",
                "with the exact tier off, `semantic` must be configured (nothing would be cached)",
            ));
        }
        Ok(Self {
            enabled: raw.enabled,
            mode: raw.key.mode,
            system_prompt: raw.key.system_prompt,
            consumer,
            ttl_seconds: raw.ttl_seconds,
            exact: raw.exact,
            exact_slots: raw.exact_slots,
            semantic,
            bypass_header: bypass,
            skip_with_tools: raw.skip.with_tools,
            max_temperature: raw.skip.max_temperature,
            max_request_body_bytes: raw.max_request_body_bytes,
            max_answer_bytes: raw.max_answer_bytes,
            replay_chunk_chars: raw.replay_chunk_chars,
            redis,
        })
    }
}

fn timeout(ms: u64, path: &str) -> Result<Duration, ConfigError> {
    if ms == 0 || ms > 60_000 {
        return Err(ConfigError::invalid(path, "must be 1-60000"));
    }
    Ok(Duration::from_millis(ms))
}

fn upstream(cluster: &str, authority: &str, path: &str) -> Result<Upstream, ConfigError> {
    if cluster.is_empty() || authority.is_empty() {
        return Err(ConfigError::invalid(
            format!("{path}.cluster"),
            "cluster and authority must not be empty",
        ));
    }
    Ok(Upstream::envoy(cluster, authority))
}

fn build_semantic(raw: RawSemantic) -> Result<Semantic, ConfigError> {
    if !(raw.threshold > 0.0 && raw.threshold <= 1.0) {
        return Err(ConfigError::invalid(
            "semantic.threshold",
            "must be above 0 and at most 1 (cosine similarity)",
        ));
    }
    let e = raw.embedding;
    if e.model.is_empty() {
        return Err(ConfigError::invalid(
            "semantic.embedding.model",
            "must not be empty",
        ));
    }
    if !e.path.starts_with('/') {
        return Err(ConfigError::invalid(
            "semantic.embedding.path",
            "must start with /",
        ));
    }
    if e.dimensions == Some(0) || e.dimensions.is_some_and(|d| d > 65_536) {
        return Err(ConfigError::invalid(
            "semantic.embedding.dimensions",
            "must be 1-65536",
        ));
    }
    if e.max_input_chars == 0 {
        return Err(ConfigError::invalid(
            "semantic.embedding.maxInputChars",
            "must be above 0",
        ));
    }
    let mut headers: Vec<(String, Vec<u8>)> = e
        .api_key
        .iter()
        .map(|k| {
            (
                "authorization".to_owned(),
                format!("Bearer {k}").into_bytes(),
            )
        })
        .collect();
    for (k, v) in &e.headers {
        let name = k.to_ascii_lowercase();
        let bad_value = v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
        if name.is_empty() || name.starts_with(':') || name == "content-type" || bad_value {
            return Err(ConfigError::invalid(
                format!("semantic.embedding.headers.{k}"),
                "pseudo-headers and content-type are set by the plugin; values are one line",
            ));
        }
        headers.push((name, v.clone().into_bytes()));
    }
    let embedding = Embedding {
        upstream: upstream(&e.cluster, &e.authority, "semantic.embedding")?,
        path: e.path,
        model: e.model,
        dimensions: e.dimensions,
        headers,
        timeout: timeout(e.timeout_ms, "semantic.embedding.timeoutMs")?,
        max_input_chars: e.max_input_chars,
    };
    let s = raw.vector_store;
    let store_upstream = upstream(&s.cluster, &s.authority, "semantic.vectorStore")?;
    let store_timeout = timeout(s.timeout_ms, "semantic.vectorStore.timeoutMs")?;
    let store = VectorStore::build(&s, store_upstream, store_timeout)
        .map_err(|e| e.prefixed("semantic.vectorStore"))?;
    Ok(Semantic {
        threshold: raw.threshold,
        embedding,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        Config::build(&v).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_config_is_an_exact_cache_with_defaults() {
        let c = Config::build(&json!({})).unwrap();
        assert!(c.exact && c.semantic.is_none());
        assert_eq!(c.mode, KeyMode::LastUserMessage);
        assert_eq!(
            (c.ttl_seconds, c.bypass_header.as_str()),
            (3600, "x-aigw-cache-bypass")
        );
        assert!(c.skip_with_tools && c.system_prompt);
    }

    #[test]
    fn a_disabled_cache_needs_no_tier() {
        let c = Config::build(&json!({"enabled": false, "exact": false})).unwrap();
        assert!(!c.enabled);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        assert!(err(json!({"key": {"mdoe": "conversation"}})).starts_with("key"));
        let e = err(
            json!({"semantic": {"embedding": {"cluster": "e", "authority": "e", "model": "m"},
            "vectorStore": {"kind": "chroma", "cluster": "c", "authority": "c", "colection": "x"}}}),
        );
        assert!(e.starts_with("semantic.vectorStore"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field() {
        assert!(err(json!({"ttlSeconds": 0})).starts_with("ttlSeconds"));
        assert!(err(json!({"exactSlots": 0})).starts_with("exactSlots"));
        assert!(err(json!({"bypassHeader": ":path"})).starts_with("bypassHeader"));
        assert!(err(json!({"skip": {"maxTemperature": -1}})).starts_with("skip.maxTemperature"));
        assert!(err(json!({"exact": false})).starts_with("exact"));
        assert!(err(json!({"redis": {"cluster": ""}})).starts_with("redis.cluster"));
        assert!(
            err(json!({"redis": {"cluster": "r", "timeoutMs": 0}})).starts_with("redis.timeoutMs")
        );
        assert!(err(json!({"redis": {"cluster": "r", "db": 1}})).starts_with("redis"));
        let no_exact = json!({"exact": false, "redis": {"cluster": "r"}, "semantic": {"threshold": 0.9,
            "embedding": {"cluster": "e", "authority": "e", "model": "m"},
            "vectorStore": {"kind": "chroma", "cluster": "c", "authority": "c"}}});
        assert!(err(no_exact).starts_with("redis"));
        let semantic = |threshold: f64, kind: &str| {
            json!({"semantic": {"threshold": threshold,
                "embedding": {"cluster": "e", "authority": "e", "model": "m"},
                "vectorStore": {"kind": kind, "cluster": "c", "authority": "c"}}})
        };
        assert!(err(semantic(1.5, "chroma")).starts_with("semantic.threshold"));
        assert!(err(semantic(0.9, "mongo")).starts_with("semantic.vectorStore.kind"));
        assert!(Config::build(&semantic(0.9, "qdrant")).is_ok());
        let azure = json!({"semantic": {
            "embedding": {"cluster": "e", "authority": "e", "model": "m", "headers": {"api-key": "k"}},
            "vectorStore": {"kind": "chroma", "cluster": "c", "authority": "c"}}});
        let c = Config::build(&azure).unwrap();
        let h = &c.semantic.unwrap().embedding.headers;
        assert_eq!(h.first().map(|(k, _)| k.as_str()), Some("api-key"));
        let mut bad = azure.clone();
        bad["semantic"]["embedding"]["headers"] = json!({":path": "/x"});
        assert!(err(bad).starts_with("semantic.embedding.headers.:path"));
        assert!(Config::build(&semantic(0.9, "milvus")).is_ok());
        assert!(Config::build(&semantic(0.9, "elasticsearch")).is_ok());
        assert!(Config::build(&semantic(0.9, "opensearch")).is_ok());
    }

    #[test]
    fn key_modes_are_spelled_in_camel_case() {
        for (mode, want) in [
            ("lastUserMessage", KeyMode::LastUserMessage),
            ("allUserMessages", KeyMode::AllUserMessages),
            ("conversation", KeyMode::Conversation),
        ] {
            let c = Config::build(&json!({"key": {"mode": mode}})).unwrap();
            assert_eq!(c.mode, want);
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::RawConfig>("ai-semantic-cache");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
