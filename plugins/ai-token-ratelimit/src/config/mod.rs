//! Configuration: `RawConfig` as written (camelCase, unknown fields refused), validated into an
//! immutable [`Config`]: key sources deduplicated, patterns compiled, limits turned into bucket
//! [`Spec`]s, weights into integer milli-units, counter-key prefixes and metric names made once.

use std::collections::BTreeMap;
use std::time::Duration;

use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::consumer::{ConsumerConfig, ConsumerIdentifier};
use serde::Deserialize;
use serde_json::Value;

use crate::bucket::Spec;
use crate::keys::{Pattern, Source};
use crate::measure::{Measure, WeightTable, Weights};

mod checks;
use checks::{check_amount, limit_set, rule_name, weight};

/// Output tokens reserved for a request that names no output cap, unless configured.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 1024;
/// Request bodies read to estimate the prompt, unless configured (larger ones get a 413).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 << 20;
/// JSON answer bytes buffered to read usage, unless configured.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The largest limit, burst or default accepted.
const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    weights: BTreeMap<String, RawWeights>,
    #[serde(default = "default_output")]
    default_output_tokens: u64,
    #[serde(default)]
    max_output_reservation: Option<u64>,
    #[serde(default = "default_max_request")]
    max_request_body_bytes: usize,
    #[serde(default = "default_max_response")]
    max_response_body_bytes: usize,
    #[serde(default)]
    consumer: ConsumerConfig,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    failure_mode: FailureMode,
    #[serde(default = "yes")]
    response_headers: bool,
    #[serde(default)]
    backend: Backend,
    #[serde(default)]
    rls: Option<RawRls>,
    #[serde(default)]
    redis: Option<aigw_shared::redis::RawRedis>,
    #[serde(default)]
    quota: Option<crate::quota::RawQuota>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRls {
    cluster: String,
    #[serde(default = "default_domain")]
    domain: String,
    #[serde(default = "default_rls_timeout")]
    timeout_ms: u64,
}

fn default_domain() -> String {
    "aigw".to_owned()
}
fn default_rls_timeout() -> u64 {
    200
}

/// The `rls` backend's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rls {
    /// The Envoy cluster of the RateLimitService (HTTP/2).
    pub cluster: String,
    /// The rate-limit domain.
    pub domain: String,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    name: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    limits: Vec<RawLimit>,
    #[serde(default)]
    overrides: Vec<RawOverride>,
    #[serde(default)]
    charge_after_response: bool,
    /// The most key values the rule keeps counters for (slots in shared data); values beyond
    /// take over the slot of an idle one (its buckets full) or, when none is idle, share one.
    /// 0: no bound.
    #[serde(default = "default_max_keys")]
    max_keys: u32,
}

/// Slots per rule unless configured: about 10 MB of shared data at most for a 2-limit rule.
pub const DEFAULT_MAX_KEYS: u32 = 100_000;

fn default_max_keys() -> u32 {
    DEFAULT_MAX_KEYS
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverride {
    #[serde(rename = "match")]
    matches: OneOrMany,
    limits: Vec<RawLimit>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimit {
    #[serde(default)]
    tokens: Option<u64>,
    #[serde(default, rename = "type")]
    kind: Option<TokenKind>,
    #[serde(default)]
    cost: Option<u64>,
    #[serde(default)]
    requests: Option<u64>,
    per: Period,
    #[serde(default)]
    burst: u64,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum TokenKind {
    Input,
    Output,
    Total,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWeights {
    #[serde(default = "one")]
    input: f64,
    #[serde(default = "one")]
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
}

/// A limit's period.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Period {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Period {
    /// Its length.
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
        })
    }
}

/// What happens when the counters cannot be read or written (no shared data on this host, or
/// the compare-and-swap kept losing).
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureMode {
    /// Forward the request unlimited (counted in `backend_error` metrics).
    #[default]
    Open,
    /// Answer 503 in the caller's protocol.
    Closed,
}

/// Where the counters live.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Backend {
    /// Proxy-wasm shared data with compare-and-swap: every worker of this Envoy shares it.
    #[default]
    Local,
    /// Envoy's RateLimitService over gRPC (`rls` settings).
    Rls,
    /// Redis through Higress's `proxy_redis_*` host calls (`redis` settings; the Higress build):
    /// shared by every gateway replica.
    Redis,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_output() -> u64 {
    DEFAULT_OUTPUT_TOKENS
}
fn default_max_request() -> usize {
    DEFAULT_MAX_REQUEST_BYTES
}
fn default_max_response() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// One limit of a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// What it counts.
    pub measure: Measure,
    /// Units per period.
    pub limit: u64,
    /// Units the bucket holds (limit + burst).
    pub capacity: u64,
    /// The period.
    pub per: Period,
}

/// The limits that apply to one value of a rule's key, and their bucket specs.
#[derive(Debug, Clone, Default)]
pub struct LimitSet {
    /// The limits, in config order.
    pub limits: Vec<Limit>,
    /// One bucket spec per limit.
    pub specs: Vec<Spec>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name (part of the counter keys and metric names).
    pub name: String,
    /// `aigw-trl:<name>:`, the prefix of its counter keys.
    pub prefix: String,
    /// Indexes into [`Config::sources`], one per key.
    pub keys: Vec<usize>,
    /// The keys as written (the `rls` backend's descriptor entry names).
    pub key_names: Vec<String>,
    /// Limit sets: 0 is the default, then one per override.
    pub sets: Vec<LimitSet>,
    /// Patterns (one per key) and the set they select, first match wins.
    pub overrides: Vec<(Vec<Pattern>, usize)>,
    /// The metric counting its refusals.
    pub refused_metric: String,
    /// Reserve nothing: admit while the bucket is not in debt and charge the real usage after
    /// the response (what the peers do; for comparison, it overshoots under concurrency).
    pub charge_after_response: bool,
    /// The quota rule (`quota`): its bucket starts empty and never refills.
    pub quota: bool,
    /// Slots for key values (`maxKeys`); 0: one record per value, no bound.
    pub max_keys: u32,
}

impl Rule {
    /// The limit set for these key values (`values[i]` for key `i`).
    pub fn select<S: AsRef<str>>(&self, values: &[S]) -> usize {
        self.overrides
            .iter()
            .find(|(patterns, _)| {
                patterns
                    .iter()
                    .zip(values)
                    .all(|(p, v)| p.matches(v.as_ref()))
            })
            .map_or(0, |(_, set)| *set)
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Every distinct key source the rules use.
    pub sources: Vec<Source>,
    /// Cost weights per model.
    pub weights: WeightTable,
    /// Output tokens reserved when the request names no cap.
    pub default_output_tokens: u64,
    /// The most output tokens one request reserves, if set (a cap over what it asks for).
    pub max_output_reservation: Option<u64>,
    /// Request bodies read to estimate the prompt.
    pub max_request_body_bytes: usize,
    /// JSON answer bytes buffered to read usage.
    pub max_response_body_bytes: usize,
    /// Who is calling (for `consumer` and `apiKey` keys).
    pub consumer: ConsumerIdentifier,
    /// Count and log, never refuse.
    pub shadow: bool,
    /// When the counters fail.
    pub failure_mode: FailureMode,
    /// `x-ratelimit-*` headers on admitted responses.
    pub response_headers: bool,
    /// The counter store.
    pub backend: Backend,
    /// The `rls` backend's settings (set exactly when `backend` is `rls`).
    pub rls: Option<Rls>,
    /// The `redis` backend's settings (set exactly when `backend` is `redis`).
    pub redis: Option<aigw_shared::redis::Redis>,
    /// The quota's admin endpoint (the quota itself is the last rule).
    pub quota_admin: Option<crate::quota::Admin>,
    /// Some limit counts tokens or cost, or some key is the model: the body must be read.
    pub needs_body: bool,
}

impl Config {
    /// Validate one configuration object.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        let consumer = raw.consumer.compile().map_err(|e| e.prefixed("consumer"))?;
        let mut sources: Vec<Source> = Vec::new();
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (r, rule) in raw.rules.iter().enumerate() {
            let path = |f: &str| format!("rules[{r}].{f}");
            let name = rule_name(&rule.name, &path("name"))?;
            if rules.iter().any(|x: &Rule| x.name == name) {
                return Err(ConfigError::invalid(
                    path("name"),
                    "two rules have this name",
                ));
            }
            let mut keys = Vec::with_capacity(rule.keys.len());
            let mut key_sources = Vec::with_capacity(rule.keys.len());
            for (k, text) in rule.keys.iter().enumerate() {
                let source = Source::parse(text, &path(&format!("keys[{k}]")))?;
                let index = match sources.iter().position(|s| *s == source) {
                    Some(i) => i,
                    None => {
                        sources.push(source.clone());
                        sources.len() - 1
                    }
                };
                keys.push(index);
                key_sources.push(source);
            }
            let mut sets = vec![limit_set(&rule.limits, &path("limits"))?];
            let mut overrides = Vec::with_capacity(rule.overrides.len());
            for (o, ov) in rule.overrides.iter().enumerate() {
                let at = |f: &str| path(&format!("overrides[{o}].{f}"));
                let texts: Vec<&str> = match &ov.matches {
                    OneOrMany::One(t) => vec![t.as_str()],
                    OneOrMany::Many(ts) => ts.iter().map(String::as_str).collect(),
                };
                if key_sources.is_empty() || texts.len() != key_sources.len() {
                    return Err(ConfigError::invalid(
                        at("match"),
                        format!("needs one pattern per key ({} here)", key_sources.len()),
                    ));
                }
                let patterns = texts
                    .iter()
                    .zip(&key_sources)
                    .enumerate()
                    .map(|(i, (t, s))| {
                        let p = if texts.len() == 1 && matches!(ov.matches, OneOrMany::One(_)) {
                            at("match")
                        } else {
                            at(&format!("match[{i}]"))
                        };
                        Pattern::parse(t, s, &p)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                sets.push(limit_set(&ov.limits, &at("limits"))?);
                overrides.push((patterns, sets.len() - 1));
            }
            if sets.iter().all(|s| s.limits.is_empty()) {
                return Err(ConfigError::invalid(
                    path("limits"),
                    "a rule needs limits (here or in an override)",
                ));
            }
            rules.push(Rule {
                prefix: format!("aigw-trl:{name}:"),
                refused_metric: format!("aigw.ai_token_ratelimit.rule.{name}.refused_total"),
                charge_after_response: rule.charge_after_response,
                quota: false,
                max_keys: rule.max_keys,
                name,
                keys,
                key_names: rule.keys.clone(),
                sets,
                overrides,
            });
        }
        let mut weights = WeightTable::default();
        for (model, w) in &raw.weights {
            let at = |f: &str| format!("weights.{model}.{f}");
            let pattern = model.strip_suffix('*').unwrap_or(model);
            if pattern.contains('*') || (pattern.is_empty() && !model.ends_with('*')) {
                return Err(ConfigError::invalid(
                    format!("weights.{model}"),
                    "must be a model name, or a prefix ending in a single `*`",
                ));
            }
            let input = weight(at("input"), w.input)?;
            let weights_of = Weights {
                input,
                output: weight(at("output"), w.output)?,
                cached_input: match w.cached_input {
                    Some(c) => weight(at("cachedInput"), c)?,
                    None => input,
                },
            };
            weights.insert(model, weights_of);
        }
        check_amount("defaultOutputTokens", raw.default_output_tokens, true)?;
        if let Some(m) = raw.max_output_reservation {
            check_amount("maxOutputReservation", m, true)?;
        }
        for (path, v) in [
            ("maxRequestBodyBytes", raw.max_request_body_bytes),
            ("maxResponseBodyBytes", raw.max_response_body_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(path, "must be greater than 0"));
            }
        }
        let rls = match (raw.backend, raw.rls) {
            (Backend::Rls, Some(r)) => {
                if r.cluster.trim().is_empty() {
                    return Err(ConfigError::invalid("rls.cluster", "must not be empty"));
                }
                if r.domain.is_empty() {
                    return Err(ConfigError::invalid("rls.domain", "must not be empty"));
                }
                if !(1..=60_000).contains(&r.timeout_ms) {
                    return Err(ConfigError::invalid(
                        "rls.timeoutMs",
                        "must be between 1 and 60000",
                    ));
                }
                Some(Rls {
                    cluster: r.cluster,
                    domain: r.domain,
                    timeout: Duration::from_millis(r.timeout_ms),
                })
            }
            (Backend::Rls, None) => {
                return Err(ConfigError::invalid(
                    "rls",
                    "backend rls needs the rls settings",
                ))
            }
            (_, Some(_)) => return Err(ConfigError::invalid("rls", "only goes with backend rls")),
            (_, None) => None,
        };
        let redis = match (raw.backend, raw.redis) {
            (Backend::Redis, Some(r)) => {
                Some(aigw_shared::redis::Redis::build(r).map_err(|e| e.prefixed("redis"))?)
            }
            (Backend::Redis, None) => {
                return Err(ConfigError::invalid(
                    "redis",
                    "backend redis needs the redis settings",
                ))
            }
            (_, Some(_)) => {
                return Err(ConfigError::invalid(
                    "redis",
                    "only goes with backend redis",
                ))
            }
            (_, None) => None,
        };
        // RLS takes hits before the answer and cannot give them back or add them after.
        if raw.backend == Backend::Rls {
            if let Some(i) = rules.iter().position(|r| r.charge_after_response) {
                return Err(ConfigError::invalid(
                    format!("rules[{i}].chargeAfterResponse"),
                    "needs the local backend (RLS cannot charge after the answer)",
                ));
            }
        }
        let quota_admin = match &raw.quota {
            Some(q) => {
                if raw.backend != Backend::Local {
                    return Err(ConfigError::invalid("quota", "needs the local backend"));
                }
                if rules.iter().any(|r| r.name == crate::quota::RULE_NAME) {
                    return Err(ConfigError::invalid(
                        "quota",
                        "a rule is named `quota`: rename it to use quotas",
                    ));
                }
                let (rule, admin) =
                    crate::quota::compile(q, &mut sources).map_err(|e| e.prefixed(""))?;
                rules.push(rule);
                Some(admin)
            }
            None => None,
        };
        let needs_body = sources.contains(&Source::Model)
            || rules.iter().any(|r| {
                r.sets
                    .iter()
                    .flat_map(|s| &s.limits)
                    .any(|l| l.measure != Measure::Requests)
            });
        Ok(Self {
            rules,
            sources,
            weights,
            default_output_tokens: raw.default_output_tokens,
            max_output_reservation: raw.max_output_reservation,
            max_request_body_bytes: raw.max_request_body_bytes,
            max_response_body_bytes: raw.max_response_body_bytes,
            consumer,
            shadow: raw.shadow,
            failure_mode: raw.failure_mode,
            response_headers: raw.response_headers,
            backend: raw.backend,
            rls,
            redis,
            quota_admin,
            needs_body,
        })
    }

    /// The output tokens a request reserves: what it asks for (else the default), capped.
    pub fn output_reservation(&self, asked: Option<u64>) -> u64 {
        let want = asked.unwrap_or(self.default_output_tokens);
        self.max_output_reservation
            .map_or(want, |cap| want.min(cap))
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
        let schema = plugin_schema::<super::RawConfig>("ai-token-ratelimit");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
