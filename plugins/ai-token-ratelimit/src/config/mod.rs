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

/// Output tokens reserved for a request that names no output cap, unless configured.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 1024;
/// Request bodies read to estimate the prompt, unless configured (larger ones get a 413).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 10 << 20;
/// JSON answer bytes buffered to read usage, unless configured.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The largest limit, burst or default accepted.
const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

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
}

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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOverride {
    #[serde(rename = "match")]
    matches: OneOrMany,
    limits: Vec<RawLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

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

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum TokenKind {
    Input,
    Output,
    Total,
}

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Backend {
    /// Proxy-wasm shared data with compare-and-swap: every worker of this Envoy shares it.
    #[default]
    Local,
    /// Envoy's RateLimitService over gRPC (`rls` settings).
    Rls,
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
    /// Some limit counts tokens or cost, or some key is the model: the body must be read.
    pub needs_body: bool,
}

fn check_amount(path: &str, v: u64, zero_ok: bool) -> Result<u64, ConfigError> {
    if (v == 0 && !zero_ok) || v > MAX_AMOUNT {
        let low = if zero_ok { 0 } else { 1 };
        return Err(ConfigError::invalid(
            path,
            format!("must be between {low} and {MAX_AMOUNT}"),
        ));
    }
    Ok(v)
}

fn limit_set(raw: &[RawLimit], path: &str) -> Result<LimitSet, ConfigError> {
    let mut set = LimitSet::default();
    for (i, l) in raw.iter().enumerate() {
        let at = |f: &str| format!("{path}[{i}].{f}");
        let (measure, limit, field) = match (l.tokens, l.cost, l.requests) {
            (Some(t), None, None) => {
                let m = match l.kind.unwrap_or(TokenKind::Total) {
                    TokenKind::Input => Measure::Input,
                    TokenKind::Output => Measure::Output,
                    TokenKind::Total => Measure::Total,
                };
                (m, t, "tokens")
            }
            (None, Some(c), None) => (Measure::Cost, c, "cost"),
            (None, None, Some(r)) => (Measure::Requests, r, "requests"),
            _ => {
                return Err(ConfigError::invalid(
                    format!("{path}[{i}]"),
                    "needs exactly one of tokens, cost or requests",
                ))
            }
        };
        if l.kind.is_some() && l.tokens.is_none() {
            return Err(ConfigError::invalid(at("type"), "only goes with tokens"));
        }
        let limit = check_amount(&at(field), limit, false)?;
        let burst = check_amount(&at("burst"), l.burst, true)?;
        set.specs.push(Spec::new(limit, burst, l.per.duration()));
        set.limits.push(Limit {
            measure,
            limit,
            capacity: limit.saturating_add(burst),
            per: l.per,
        });
    }
    Ok(set)
}

fn rule_name(name: &str, path: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ConfigError::invalid(
            path,
            "must be 1 to 64 letters, digits, `_` or `-`",
        ));
    }
    Ok(name.to_owned())
}

fn weight(path: String, v: f64) -> Result<u64, ConfigError> {
    if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
        return Err(ConfigError::invalid(
            path,
            "must be a number between 0 and 1000000",
        ));
    }
    Ok((v * 1000.0).round() as u64)
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
            (Backend::Local, Some(_)) => {
                return Err(ConfigError::invalid("rls", "only goes with backend rls"))
            }
            (Backend::Local, None) => None,
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
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn an_empty_config_limits_nothing_with_the_documented_defaults() {
        let c = parse("{}").unwrap();
        assert!(c.rules.is_empty() && !c.needs_body && !c.shadow);
        assert_eq!(c.default_output_tokens, 1024);
        assert_eq!(c.max_output_reservation, None);
        assert_eq!(c.max_request_body_bytes, 10 << 20);
        assert_eq!(c.failure_mode, FailureMode::Open);
        assert!(c.response_headers);
        assert_eq!(c.backend, Backend::Local);
    }

    #[test]
    fn rules_share_key_sources_and_compile_overrides_in_order() {
        let c = parse(
            r#"{"rules": [
                {"name": "a", "keys": ["consumer", "model"],
                 "limits": [{"tokens": 1000, "per": "minute", "burst": 100}],
                 "overrides": [{"match": ["vip", "*"], "limits": []},
                               {"match": ["regex:team-.*", "gpt-4o"], "limits": [{"requests": 5, "per": "second"}]}]},
                {"name": "b", "keys": ["model"], "limits": [{"cost": 50, "per": "day"}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(c.sources, vec![Source::Consumer, Source::Model]);
        assert_eq!(c.rules[1].keys, vec![1]);
        assert!(c.needs_body);
        let a = &c.rules[0];
        assert_eq!(a.select(&["vip", "x"]), 1);
        assert_eq!(a.select(&["team-q", "gpt-4o"]), 2);
        assert_eq!(a.select(&["team-q", "gpt-5"]), 0);
        assert_eq!(a.sets[0].limits[0].capacity, 1100);
        assert_eq!(a.sets[2].limits[0].measure, Measure::Requests);
        assert_eq!(a.prefix, "aigw-trl:a:");
    }

    #[test]
    fn request_limits_alone_need_no_body() {
        let c = parse(
            r#"{"rules": [{"name": "r", "keys": ["header:x-team"], "limits": [{"requests": 5, "per": "second"}]}]}"#,
        )
        .unwrap();
        assert!(!c.needs_body);
    }

    #[test]
    fn the_output_reservation_is_the_request_cap_else_the_default_and_never_over_the_maximum() {
        let c = parse(r#"{"defaultOutputTokens": 256, "maxOutputReservation": 1000}"#).unwrap();
        assert_eq!(c.output_reservation(None), 256);
        assert_eq!(c.output_reservation(Some(50)), 50);
        assert_eq!(c.output_reservation(Some(5000)), 1000);
    }

    #[test]
    fn bad_configs_are_refused_with_the_field_path() {
        let cases = [
            (r#"{"rulez": []}"#, "rulez"),
            (
                r#"{"rules": [{"name": "a b", "limits": [{"tokens": 1, "per": "minute"}]}]}"#,
                "rules[0].name",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"tokens": 0, "per": "minute"}]}]}"#,
                "rules[0].limits[0].tokens",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"tokens": 1, "cost": 1, "per": "minute"}]}]}"#,
                "rules[0].limits[0]",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"requests": 1, "type": "input", "per": "minute"}]}]}"#,
                "rules[0].limits[0].type",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"tokens": 1, "per": "week"}]}]}"#,
                "rules[0].limits[0].per",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"tokens": 1, "per": "minute", "extra": 1}]}]}"#,
                "rules[0].limits[0].extra",
            ),
            (
                r#"{"rules": [{"name": "a", "keys": ["nope"], "limits": [{"tokens": 1, "per": "minute"}]}]}"#,
                "rules[0].keys[0]",
            ),
            (
                r#"{"rules": [{"name": "a", "keys": ["consumer"]}]}"#,
                "rules[0].limits",
            ),
            (
                r#"{"rules": [{"name": "a", "keys": ["consumer", "model"], "limits": [{"tokens": 1, "per": "minute"}], "overrides": [{"match": "x", "limits": []}]}]}"#,
                "rules[0].overrides[0].match",
            ),
            (
                r#"{"rules": [{"name": "a", "keys": ["consumer"], "limits": [{"tokens": 1, "per": "minute"}], "overrides": [{"match": "regex:(", "limits": []}]}]}"#,
                "rules[0].overrides[0].match",
            ),
            (
                r#"{"rules": [{"name": "a", "keys": ["consumer", "clientIp"], "limits": [{"tokens": 1, "per": "minute"}], "overrides": [{"match": ["cidr:10.0.0.0/8", "*"], "limits": []}]}]}"#,
                "rules[0].overrides[0].match[0]",
            ),
            (
                r#"{"rules": [{"name": "a", "limits": [{"tokens": 1, "per": "minute"}]}, {"name": "a", "limits": [{"tokens": 1, "per": "minute"}]}]}"#,
                "rules[1].name",
            ),
            (r#"{"weights": {"m": {"input": -1}}}"#, "weights.m.input"),
            (r#"{"weights": {"a*b": {}}}"#, "weights.a*b"),
            (r#"{"failureMode": "maybe"}"#, "failureMode"),
            (r#"{"backend": "redis"}"#, "backend"),
            (r#"{"backend": "rls"}"#, "rls"),
            (r#"{"rls": {"cluster": "x"}}"#, "rls"),
            (
                r#"{"backend": "rls", "rls": {"cluster": "x", "timeoutMs": 0}}"#,
                "rls.timeoutMs",
            ),
            (
                r#"{"backend": "rls", "rls": {"cluster": "x", "port": 1}}"#,
                "rls.port",
            ),
            (r#"{"maxRequestBodyBytes": 0}"#, "maxRequestBodyBytes"),
            (
                r#"{"consumer": {"keys": {"abc": "x"}}}"#,
                "consumer.keys.abc",
            ),
        ];
        for (json, path) in cases {
            let err = parse(json).unwrap_err();
            assert_eq!(err.path(), path, "{json}: {err}");
        }
    }
}
