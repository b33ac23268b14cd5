//! Configuration: `RawConfig` as written by the user, validated into an immutable [`Config`].
//!
//! Everything that can be prepared once is prepared here: prices become integer pico-dollars per
//! token, provider names safe label values, the consumer key map hashes.

use std::collections::{BTreeMap, HashMap};

use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::consumer::{ConsumerConfig, ConsumerIdentifier};
use aigw_shared::genai::label_value;
use serde::Deserialize;
use serde_json::Value;

use crate::price::{PriceTable, Rates};

/// Request bytes kept to read the model (and estimate input tokens), unless configured.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;
/// JSON response bytes kept to read usage, unless configured.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Distinct model labels per worker, unless configured.
pub const DEFAULT_MAX_MODELS: usize = 64;
/// Distinct consumer labels per worker, unless configured.
pub const DEFAULT_MAX_CONSUMERS: usize = 256;
/// Captured prompt / answer bytes, unless configured.
pub const DEFAULT_MAX_CAPTURE_BYTES: usize = 4096;
/// The filter-state key of the audit record, unless configured.
pub const DEFAULT_FILTER_STATE: &str = "aigw_usage_stats";

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    consumer: ConsumerConfig,
    #[serde(default)]
    providers: BTreeMap<String, String>,
    #[serde(default)]
    prices: BTreeMap<String, RawPrice>,
    #[serde(default = "default_max_request")]
    max_request_body_bytes: usize,
    #[serde(default = "default_max_response")]
    max_response_body_bytes: usize,
    #[serde(default = "default_max_models")]
    max_model_labels: usize,
    #[serde(default = "default_max_consumers")]
    max_consumer_labels: usize,
    #[serde(default)]
    audit: RawAudit,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPrice {
    input: f64,
    #[serde(default)]
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write_input: Option<f64>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAudit {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "one")]
    sample_rate: f64,
    #[serde(default = "yes")]
    log: bool,
    #[serde(default = "default_filter_state")]
    filter_state: Option<String>,
    #[serde(default)]
    capture_prompt: bool,
    #[serde(default)]
    capture_answer: bool,
    #[serde(default = "default_max_capture")]
    max_capture_bytes: usize,
    #[serde(default = "yes")]
    redact_pii: bool,
}

impl Default for RawAudit {
    fn default() -> Self {
        Self {
            enabled: true,
            sample_rate: 1.0,
            log: true,
            filter_state: default_filter_state(),
            capture_prompt: false,
            capture_answer: false,
            max_capture_bytes: DEFAULT_MAX_CAPTURE_BYTES,
            redact_pii: true,
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_filter_state() -> Option<String> {
    Some(DEFAULT_FILTER_STATE.to_owned())
}
fn default_max_request() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_max_response() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}
fn default_max_models() -> usize {
    DEFAULT_MAX_MODELS
}
fn default_max_consumers() -> usize {
    DEFAULT_MAX_CONSUMERS
}
fn default_max_capture() -> usize {
    DEFAULT_MAX_CAPTURE_BYTES
}

/// The audit record settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// Records are made at all.
    pub enabled: bool,
    /// The share of requests that get one, in [0, 1].
    pub sample_rate: f64,
    /// Write it as an info log line.
    pub log: bool,
    /// Store it in this filter-state key (Envoy: `wasm.<key>`); `None`: not stored.
    pub filter_state: Option<String>,
    /// Put the last user message in the record.
    pub capture_prompt: bool,
    /// Put the answer text in the record.
    pub capture_answer: bool,
    /// Cut captured texts to this many bytes.
    pub max_capture_bytes: usize,
    /// Redact e-mail addresses, API keys and card numbers in captured texts.
    pub redact_pii: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Who is calling.
    pub consumer: ConsumerIdentifier,
    /// Envoy cluster -> provider label (safe value).
    pub providers: HashMap<String, String>,
    /// Prices per model.
    pub prices: PriceTable,
    /// Request bytes kept to read the model.
    pub max_request_body_bytes: usize,
    /// JSON response bytes kept to read usage.
    pub max_response_body_bytes: usize,
    /// Distinct model labels per worker.
    pub max_model_labels: usize,
    /// Distinct consumer labels per worker.
    pub max_consumer_labels: usize,
    /// Audit records.
    pub audit: Audit,
}

/// The largest price accepted, USD per million tokens.
const MAX_PRICE: f64 = 1_000_000.0;

fn rate(path: String, usd_per_million: f64) -> Result<u64, ConfigError> {
    if !usd_per_million.is_finite() || !(0.0..=MAX_PRICE).contains(&usd_per_million) {
        return Err(ConfigError::invalid(
            path,
            "must be a price in USD per million tokens between 0 and 1000000",
        ));
    }
    // USD per 10^6 tokens = 10^12 pUSD per 10^6 tokens = 10^6 pUSD per token.
    let pico = (usd_per_million * 1_000_000.0).round();
    Ok(pico as u64)
}

fn filter_state_key(key: &str) -> Result<String, ConfigError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ConfigError::invalid(
            "audit.filterState",
            "must be 1 to 64 letters, digits, `_` or `-` (no dots), or null",
        ));
    }
    Ok(key.to_owned())
}

impl Config {
    /// Validate one configuration object.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        let consumer = raw.consumer.compile().map_err(|e| e.prefixed("consumer"))?;
        let mut providers = HashMap::with_capacity(raw.providers.len());
        for (cluster, name) in &raw.providers {
            if name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("providers.{cluster}"),
                    "provider name must not be empty",
                ));
            }
            providers.insert(cluster.clone(), label_value(name.trim()));
        }
        let mut prices = PriceTable::default();
        for (model, p) in &raw.prices {
            let path = |f: &str| format!("prices.{model}.{f}");
            let pattern = model.strip_suffix('*').unwrap_or(model);
            if pattern.contains('*') || (pattern.is_empty() && !model.ends_with('*')) {
                return Err(ConfigError::invalid(
                    format!("prices.{model}"),
                    "must be a model name, or a prefix ending in a single `*`",
                ));
            }
            let input = rate(path("input"), p.input)?;
            let rates = Rates {
                input,
                output: rate(path("output"), p.output)?,
                cached_input: match p.cached_input {
                    Some(c) => rate(path("cachedInput"), c)?,
                    None => input,
                },
                cache_write_input: match p.cache_write_input {
                    Some(c) => rate(path("cacheWriteInput"), c)?,
                    None => input,
                },
            };
            prices.insert(model, rates);
        }
        for (path, v) in [
            ("maxRequestBodyBytes", raw.max_request_body_bytes),
            ("maxResponseBodyBytes", raw.max_response_body_bytes),
            ("maxModelLabels", raw.max_model_labels),
            ("maxConsumerLabels", raw.max_consumer_labels),
            ("audit.maxCaptureBytes", raw.audit.max_capture_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(path, "must be greater than 0"));
            }
        }
        if raw.max_model_labels > 10_000 || raw.max_consumer_labels > 10_000 {
            let path = if raw.max_model_labels > 10_000 {
                "maxModelLabels"
            } else {
                "maxConsumerLabels"
            };
            return Err(ConfigError::invalid(path, "must be at most 10000"));
        }
        let a = raw.audit;
        if !a.sample_rate.is_finite() || !(0.0..=1.0).contains(&a.sample_rate) {
            return Err(ConfigError::invalid(
                "audit.sampleRate",
                "must be a number between 0 and 1",
            ));
        }
        let filter_state = a
            .filter_state
            .as_deref()
            .map(filter_state_key)
            .transpose()?;
        Ok(Self {
            consumer,
            providers,
            prices,
            max_request_body_bytes: raw.max_request_body_bytes,
            max_response_body_bytes: raw.max_response_body_bytes,
            max_model_labels: raw.max_model_labels,
            max_consumer_labels: raw.max_consumer_labels,
            audit: Audit {
                enabled: a.enabled,
                sample_rate: a.sample_rate,
                log: a.log,
                filter_state,
                capture_prompt: a.capture_prompt,
                capture_answer: a.capture_answer,
                max_capture_bytes: a.max_capture_bytes,
                redact_pii: a.redact_pii,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn an_empty_config_has_the_documented_defaults() {
        let c = parse("{}").unwrap();
        assert_eq!(c.max_request_body_bytes, 1 << 20);
        assert_eq!(c.max_response_body_bytes, 4 << 20);
        assert_eq!(c.max_model_labels, 64);
        assert_eq!(c.max_consumer_labels, 256);
        assert!(c.consumer.is_empty());
        assert_eq!(
            c.audit,
            Audit {
                enabled: true,
                sample_rate: 1.0,
                log: true,
                filter_state: Some("aigw_usage_stats".into()),
                capture_prompt: false,
                capture_answer: false,
                max_capture_bytes: 4096,
                redact_pii: true,
            }
        );
    }

    #[test]
    fn prices_become_pico_dollars_per_token_and_cached_input_defaults_to_input() {
        let c = parse(r#"{"prices": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}}"#).unwrap();
        let r = c.prices.lookup("gpt-4o-mini").unwrap();
        assert_eq!(
            (r.input, r.output, r.cached_input),
            (150_000, 600_000, 150_000)
        );
    }

    #[test]
    fn providers_map_clusters_to_safe_labels() {
        let c = parse(r#"{"providers": {"openai-eu": "Open AI.eu"}}"#).unwrap();
        assert_eq!(c.providers["openai-eu"], "Open_AI_eu");
    }

    #[test]
    fn a_null_filter_state_disables_it() {
        let c = parse(r#"{"audit": {"filterState": null}}"#).unwrap();
        assert_eq!(c.audit.filter_state, None);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::RawConfig>("ai-usage-stats");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
