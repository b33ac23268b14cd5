//! Configuration: `RawConfig` as written (camelCase, unknown fields rejected) -> validated [`Config`].

use aigw_shared::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;

use crate::breaker::BreakerPolicy;
use crate::failover::FallbackPolicy;
use crate::models::{self, ModelRule, Pattern, Route, Target};
use crate::policy::{Policy, Price};
use crate::provider::{self, Provider};
use crate::translate::UnsupportedPolicy;
use std::collections::HashMap;

/// The largest request body read, unless configured (10 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;
/// The request header the Envoy route reads with `cluster_header`.
pub const DEFAULT_UPSTREAM_HEADER: &str = "x-aigw-upstream";

/// What happens to the client's own credential.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialPolicy {
    /// Remove it; the provider's key from `apiKeys` is sent.
    #[default]
    Strip,
    /// Send the client's key to the provider (in the provider's header form); `apiKeys` is used
    /// only when the client sent none.
    PassThrough,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(with = "Vec<crate::provider::RawProvider>")
    )]
    providers: Vec<Value>,
    #[serde(default)]
    models: Vec<RawRule>,
    #[serde(default)]
    default_provider: Option<String>,
    #[serde(default)]
    unsupported_fields: UnsupportedPolicy,
    #[serde(default)]
    client_credential: CredentialPolicy,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default = "default_header")]
    upstream_header: String,
    #[serde(default)]
    fallback: FallbackPolicy,
    #[serde(default)]
    circuit_breaker: BreakerPolicy,
    #[serde(default)]
    prices: HashMap<String, Price>,
    #[serde(default)]
    auto_models: HashMap<String, crate::auto::RawAuto>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(rename = "match")]
    pattern: String,
    provider: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    fallbacks: Vec<RawTarget>,
    #[serde(default)]
    policy: Policy,
    #[serde(default = "default_weight")]
    weight: u32,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTarget {
    provider: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_header() -> String {
    DEFAULT_UPSTREAM_HEADER.into()
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Providers in config order.
    pub providers: Vec<Provider>,
    /// Model rules.
    pub rules: Vec<ModelRule>,
    /// Provider for models no rule matches.
    pub default_provider: Option<usize>,
    /// Reject or drop fields a backend cannot express.
    pub unsupported: UnsupportedPolicy,
    /// The client's credential.
    pub client_credential: CredentialPolicy,
    /// Request bodies above this get 413.
    pub max_body_bytes: usize,
    /// Header carrying the chosen cluster.
    pub upstream_header: String,
    /// Model names listed by `GET /v1/models`.
    pub listed_models: Vec<(String, String)>,
    /// Some rule has fallback targets (else no request pays for them).
    pub has_fallbacks: bool,
    /// Retry and fallback.
    pub fallback: FallbackPolicy,
    /// The circuit breaker of every fallback target.
    pub breaker: BreakerPolicy,
    /// Prices per million tokens by backend model (or `provider/model`), for `leastCost`.
    pub prices: HashMap<String, Price>,
    /// Model aliases chosen by content (`autoModels`), sorted by name.
    pub auto: Vec<(String, crate::auto::AutoModel)>,
}

impl Config {
    /// Validate a config object.
    pub fn build(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        let mut providers: Vec<Provider> = Vec::with_capacity(raw.providers.len());
        for (i, p) in raw.providers.iter().enumerate() {
            let built = provider::build(p).map_err(|e| e.prefixed(&format!("providers[{i}]")))?;
            if providers.iter().any(|q| q.name == built.name) {
                return Err(ConfigError::invalid(
                    format!("providers[{i}].name"),
                    format!("duplicate provider name {:?}", built.name),
                ));
            }
            providers.push(built);
        }
        let index = |name: &str, path: String| {
            providers
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| ConfigError::invalid(path, format!("no provider named {name:?}")))
        };
        let mut rules = Vec::with_capacity(raw.models.len());
        let mut listed_models = Vec::new();
        for (i, r) in raw.models.iter().enumerate() {
            let pattern = Pattern::parse(&r.pattern, &format!("models[{i}].match"))?;
            let provider = index(&r.provider, format!("models[{i}].provider"))?;
            if let Pattern::Exact(name) = &pattern {
                listed_models.push((name.clone(), r.provider.clone()));
            }
            let mut fallbacks = Vec::with_capacity(r.fallbacks.len());
            for (j, t) in r.fallbacks.iter().enumerate() {
                fallbacks.push(Target {
                    provider: index(&t.provider, format!("models[{i}].fallbacks[{j}].provider"))?,
                    model: t.target.clone(),
                    weight: t.weight,
                });
            }
            rules.push(ModelRule {
                pattern,
                provider,
                target: r.target.clone(),
                fallbacks,
                policy: r.policy,
                weight: r.weight,
            });
        }
        let default_provider = match &raw.default_provider {
            Some(name) => Some(index(name, "defaultProvider".into())?),
            None if providers.len() == 1 && rules.is_empty() => Some(0),
            None => None,
        };
        if raw.max_body_bytes == 0 {
            return Err(ConfigError::invalid("maxBodyBytes", "must be positive"));
        }
        let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if raw.upstream_header.is_empty()
            || raw.upstream_header != raw.upstream_header.to_ascii_lowercase()
            || !raw.upstream_header.bytes().all(token_char)
        {
            return Err(ConfigError::invalid(
                "upstreamHeader",
                "must be a lower-case header name",
            ));
        }
        check_fallback(&raw.fallback, &raw.circuit_breaker)?;
        let auto = crate::auto::build(raw.auto_models)?;
        for (name, a) in &auto {
            if let Some(m) = a
                .models()
                .find(|m| models::resolve(&rules, default_provider, m).is_none())
            {
                return Err(ConfigError::invalid(
                    format!("autoModels.{name}"),
                    format!("no provider serves the model {m:?}"),
                ));
            }
            listed_models.push((name.clone(), "gateway".to_owned()));
        }
        Ok(Self {
            has_fallbacks: rules.iter().any(|r| !r.fallbacks.is_empty()),
            fallback: raw.fallback,
            breaker: raw.circuit_breaker,
            prices: raw.prices,
            auto,
            providers,
            rules,
            default_provider,
            unsupported: raw.unsupported_fields,
            client_credential: raw.client_credential,
            max_body_bytes: raw.max_body_bytes,
            upstream_header: raw.upstream_header,
            listed_models,
        })
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The provider and backend model for a client model.
    pub fn route(&self, model: &str) -> Option<Route> {
        models::resolve(&self.rules, self.default_provider, model)
    }

    /// The content-routed alias `model` stands for, if it is one.
    pub fn auto_model(&self, model: &str) -> Option<&crate::auto::AutoModel> {
        self.auto.iter().find(|(n, _)| n == model).map(|(_, a)| a)
    }

    /// The policy and the weights of `route`'s rule's targets (its own first).
    pub fn policy(&self, route: &Route) -> (Policy, Vec<u32>) {
        match route.rule.and_then(|i| self.rules.get(i)) {
            Some(rule) => (
                rule.policy,
                std::iter::once(rule.weight)
                    .chain(rule.fallbacks.iter().map(|t| t.weight))
                    .collect(),
            ),
            None => (Policy::Priority, Vec::new()),
        }
    }

    /// The price of a target (`provider/model` first, then the model alone).
    pub fn price(&self, route: &Route) -> Option<Price> {
        let provider = self
            .providers
            .get(route.provider)
            .map_or("", |p| p.name.as_str());
        self.prices
            .get(&format!("{provider}/{}", route.model))
            .or_else(|| self.prices.get(&route.model))
            .copied()
    }

    /// The fallback targets after `route` (its rule's `fallbacks`), each with its backend model:
    /// the target's, else the client's `model`.
    pub fn fallbacks(&self, route: &Route, model: &str) -> std::collections::VecDeque<Route> {
        let Some(rule) = route.rule.and_then(|i| self.rules.get(i)) else {
            return std::collections::VecDeque::new();
        };
        rule.fallbacks
            .iter()
            .map(|t| Route {
                provider: t.provider,
                model: t.model.clone().unwrap_or_else(|| model.to_owned()),
                rule: route.rule,
            })
            .collect()
    }

    /// `text` with every configured secret in it replaced by `[redacted]` (an upstream error
    /// message may quote the key it was sent): API keys and the secrets in providers' options.
    pub fn redact(&self, text: &str) -> String {
        self.redact_also(text, None)
    }

    /// [`Config::redact`], and `extra` too (the client's own key when it was passed through).
    /// Secrets are found as whole runs of key characters (letters, digits, `-_.~+/=`), with a
    /// trailing `.` also tried without it.
    pub fn redact_also(&self, text: &str, extra: Option<&str>) -> String {
        let is_key_char = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
        };
        let secret = |t: &str| {
            !t.is_empty() && (extra == Some(t) || self.providers.iter().any(|p| p.is_secret(t)))
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while !rest.is_empty() {
            let start = rest.find(is_key_char).unwrap_or(rest.len());
            out.push_str(rest.get(..start).unwrap_or_default());
            rest = rest.get(start..).unwrap_or_default();
            let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
            let token = rest.get(..end).unwrap_or_default();
            let trimmed = token.trim_end_matches('.');
            if secret(token) {
                out.push_str("[redacted]");
            } else if secret(trimmed) {
                out.push_str("[redacted]");
                out.push_str(token.get(trimmed.len()..).unwrap_or_default());
            } else {
                out.push_str(token);
            }
            rest = rest.get(end..).unwrap_or_default();
        }
        out
    }

    /// The `GET /v1/models` body.
    pub fn models_body(&self) -> Vec<u8> {
        self.models_answer(None, ModelsShape::OpenAi)
            .unwrap_or_else(|| b"{\"object\":\"list\",\"data\":[]}".to_vec())
    }

    /// `GET /v1/models` (`id`: `None`) or `GET /v1/models/{id}` answered from the configured
    /// models in the client's shape; `None` when `id` is not one of them.
    pub fn models_answer(&self, id: Option<&str>, shape: ModelsShape) -> Option<Vec<u8>> {
        let entry = |(id, owner): &(String, String)| match shape {
            ModelsShape::OpenAi => {
                serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
            }
            // The Anthropic SDK parses `created_at` as a date: the config has none, so the epoch.
            ModelsShape::Anthropic => serde_json::json!({"type": "model", "id": id,
                "display_name": id, "created_at": "1970-01-01T00:00:00Z"}),
        };
        let body = match id {
            Some(id) => entry(self.listed_models.iter().find(|(m, _)| m == id)?),
            None => {
                let data: Vec<Value> = self.listed_models.iter().map(entry).collect();
                match shape {
                    ModelsShape::OpenAi => serde_json::json!({"object": "list", "data": data}),
                    ModelsShape::Anthropic => serde_json::json!({
                        "data": data,
                        "has_more": false,
                        "first_id": self.listed_models.first().map(|(m, _)| m),
                        "last_id": self.listed_models.last().map(|(m, _)| m),
                    }),
                }
            }
        };
        serde_json::to_vec(&body).ok()
    }
}

/// Refuse a fallback policy or breaker that cannot work.
fn check_fallback(f: &FallbackPolicy, b: &BreakerPolicy) -> Result<(), ConfigError> {
    if f.max_attempts == 0 {
        return Err(ConfigError::invalid(
            "fallback.maxAttempts",
            "must be at least 1",
        ));
    }
    if f.timeout_ms == 0 || f.attempt_timeout_ms == Some(0) {
        return Err(ConfigError::invalid(
            "fallback.timeoutMs",
            "timeouts must be positive",
        ));
    }
    if let Some(bad) = f.on_status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(ConfigError::invalid(
            "fallback.onStatus",
            format!("{bad} is not an HTTP status"),
        ));
    }
    if let Some(r) = &f.response {
        if !(200..=599).contains(&r.status) {
            return Err(ConfigError::invalid(
                "fallback.response.status",
                "must be an HTTP status (200-599)",
            ));
        }
    }
    if b.error_rate.is_some_and(|r| !(r > 0.0 && r <= 1.0)) {
        return Err(ConfigError::invalid(
            "circuitBreaker.errorRate",
            "must be above 0 and at most 1",
        ));
    }
    if b.cool_off_seconds == 0 || b.window_seconds == 0 {
        return Err(ConfigError::invalid(
            "circuitBreaker.coolOffSeconds",
            "durations must be positive",
        ));
    }
    Ok(())
}

/// The shape of a model list: OpenAI's (`object: list`) or Anthropic's (`has_more`, `type: model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelsShape {
    /// OpenAI `GET /v1/models`.
    OpenAi,
    /// Anthropic `GET /v1/models` (the Anthropic SDK's `client.models.list()`).
    Anthropic,
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::RawConfig>("ai-proxy");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
