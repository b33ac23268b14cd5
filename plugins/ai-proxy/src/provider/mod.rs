//! Providers: where a request goes (cluster, authority, path) and how it authenticates.
//!
//! Each provider type is a [`Vendor`] in its own module with its own typed `options`; the one
//! `match` in [`vendor`] picks it. Adding a provider type: a module, a `mod` line and a match arm.

mod anthropic;
pub mod auth;
mod azure;
pub mod bedrock;
pub mod gemini;
mod openai;
pub mod presets;
pub mod vertex;

use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::error::ClientError;
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::translate::Schema;
use auth::TokenCache;

/// One API call as the provider sees it.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall<'a> {
    /// Which API.
    pub api: Api,
    /// The OpenAI path after `/v1`, query included (`/chat/completions`, `/audio/speech?x=1`).
    pub suffix: &'a str,
    /// The backend model (after mapping); empty when the body names none.
    pub model: &'a str,
    /// Whether the response is streamed.
    pub stream: bool,
}

/// The request as it will leave for the provider; [`Vendor::authorize`] adds the credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamCall {
    /// `:authority` (`None`: keep the client's).
    pub authority: Option<String>,
    /// `:path`.
    pub path: String,
    /// Headers to set (lower-case names).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// A provider type.
pub trait Vendor {
    /// The wire protocol of its chat API.
    fn schema(&self) -> Schema;
    /// The wire protocol of its chat API for the backend model `model` (a provider may speak
    /// different protocols per model, as Bedrock's Converse and InvokeModel do).
    fn schema_for(&self, _model: &str) -> Schema {
        self.schema()
    }
    /// The authority used when the config gives none.
    fn default_authority(&self) -> Option<&str>;
    /// The base path used when the config gives none (prefix of every upstream path).
    fn default_base_path(&self) -> &str;
    /// The upstream path for `call` under `base`, or a client error when the provider has no
    /// such API.
    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError>;
    /// Whether the provider serves the OpenAI Responses API itself (the request then passes as
    /// it is, `model` mapped); otherwise it is translated to chat through the hub.
    fn native_responses(&self) -> bool {
        false
    }
    /// The body's `model` of a native Responses API request for the backend model `model`
    /// (Azure: the deployment name).
    fn responses_model<'a>(&'a self, model: &'a str) -> &'a str {
        model
    }
    /// Put the credential (when there is one) and any fixed headers on the call.
    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError>;
    /// Sign the finished call (final body, path and authority) at `now_unix` (seconds since the
    /// epoch; 0 when the host has no clock). Runs after [`Vendor::authorize`]; most providers do
    /// not sign, Bedrock adds SigV4 headers here.
    fn sign(&self, _call: &mut UpstreamCall, _now_unix: i64) -> Result<(), ClientError> {
        Ok(())
    }
    /// A credential the provider must fetch over HTTP at `now_unix` before (or while) calling
    /// upstream, given the worker's `cache`; `None` when nothing is to be fetched (most
    /// providers). `force`: fetch even when one is under way (a request cannot go on without
    /// it). Vertex service accounts fetch OAuth tokens here.
    fn token_fetch(
        &self,
        _cache: &mut TokenCache,
        _now_unix: i64,
        _force: bool,
    ) -> Result<Option<TokenNeed>, ClientError> {
        Ok(None)
    }
    /// The token endpoint's answer (`status` 0: the callout got none) received at `now_unix`.
    fn on_token(
        &self,
        _cache: &mut TokenCache,
        _status: u16,
        _body: &[u8],
        _now_unix: i64,
    ) -> Result<(), ClientError> {
        Ok(())
    }
    /// Whether this provider fetches tokens at all (the worker then refreshes them on its tick).
    fn fetches_tokens(&self) -> bool {
        false
    }
    /// Secrets in the type's options (besides `apiKeys`) that must never reach a client or a
    /// log: redacted from upstream error bodies like the keys.
    fn secrets(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// A token callout the filter must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenNeed {
    /// Authority, path and form body.
    pub fetch: auth::TokenFetch,
    /// The cluster the callout goes to.
    pub cluster: String,
    /// Whether the request must wait for it (no usable token yet) or it only refreshes a token
    /// that is still usable.
    pub wait: bool,
}

/// A validated provider.
pub struct Provider {
    /// Name used by model rules.
    pub name: String,
    /// Type name as configured.
    pub kind: String,
    /// Envoy cluster (or Higress `outbound|port||fqdn`).
    pub cluster: String,
    /// `:authority` to send.
    pub authority: Option<String>,
    /// Path prefix.
    pub base_path: String,
    keys: Vec<String>,
    /// The keys' hashes (their names in shared data, logs and metrics).
    key_hashes: Vec<u64>,
    /// How the pool picks a key.
    pub selection: crate::keys::Selection,
    /// When a key sits out.
    pub key_health: crate::keys::KeyHealth,
    /// The shared-data key of this provider's key ejections (made once).
    pub ejections_key: String,
    /// The type's behaviour.
    pub vendor: Box<dyn Vendor>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("cluster", &self.cluster)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Provider {
    /// Key number `index` of the pool.
    pub fn key(&self, index: usize) -> Option<&str> {
        self.keys.get(index).map(String::as_str)
    }

    /// The pool's key hashes, in config order.
    pub fn key_hashes(&self) -> &[u64] {
        &self.key_hashes
    }

    /// Whether the provider has a key pool.
    pub fn has_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether the provider fetches its credential over HTTP (and has no static key).
    pub fn fetches_tokens(&self) -> bool {
        self.keys.is_empty() && self.vendor.fetches_tokens()
    }

    /// Whether `value` is one of this provider's secrets (its keys and the secrets of its
    /// options, e.g. Bedrock's AWS secret key and session token), to keep them out of logs and
    /// responses.
    pub fn is_secret(&self, value: &str) -> bool {
        self.keys.iter().any(|k| k == value) || self.vendor.secrets().contains(&value)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawProvider {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    base_path: Option<String>,
    #[serde(default)]
    api_keys: Vec<String>,
    #[serde(default)]
    api_keys_from_env: Vec<String>,
    #[serde(default)]
    key_selection: crate::keys::Selection,
    #[serde(default)]
    key_health: crate::keys::KeyHealth,
    #[serde(default)]
    options: Map<String, Value>,
}

/// Builds a vendor from its type name and options.
type BuildVendor = fn(&str, &Value) -> Result<Box<dyn Vendor>, ConfigError>;

/// The provider types with their own module, in the order the docs list them; every
/// OpenAI-compatible preset of [`presets::PRESETS`] (`openai` among them) is a type too.
const VENDORS: &[(&str, BuildVendor)] = &[
    ("openai", |k, o| Ok(Box::new(openai::OpenAi::build(k, o)?))),
    ("azure-openai", |_, o| Ok(Box::new(azure::Azure::build(o)?))),
    ("anthropic", |_, o| {
        Ok(Box::new(anthropic::Anthropic::build(o)?))
    }),
    ("bedrock", |_, o| Ok(Box::new(bedrock::Bedrock::build(o)?))),
    ("gemini", |_, o| Ok(Box::new(gemini::Gemini::build(o)?))),
    ("vertex", |_, o| Ok(Box::new(vertex::Vertex::build(o)?))),
];

/// Every provider type name, each once: the types with their own module, then the presets.
pub fn type_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = VENDORS.iter().map(|(n, _)| *n).collect();
    for p in presets::PRESETS {
        if !names.contains(&p.name) {
            names.push(p.name);
        }
    }
    names
}

/// Build the vendor for a type name from its options.
fn vendor(kind: &str, options: &Value) -> Result<Box<dyn Vendor>, ConfigError> {
    if let Some((_, build)) = VENDORS.iter().find(|(n, _)| *n == kind) {
        return build(kind, options);
    }
    if presets::find(kind).is_some() {
        return Ok(Box::new(openai::OpenAi::build(kind, options)?));
    }
    Err(ConfigError::invalid(
        "type",
        format!(
            "unknown provider type {kind:?}; known: {}",
            type_names().join(", ")
        ),
    ))
}

/// Validate one provider object (errors are relative to it).
pub fn build(value: &Value) -> Result<Provider, ConfigError> {
    build_with_env(value, &|name| std::env::var(name).ok())
}

/// [`build`] with `env` answering for the VM's environment variables (`apiKeysFromEnv`).
pub(crate) fn build_with_env(
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Provider, ConfigError> {
    let mut raw: RawProvider = from_value(value)?;
    if raw.name.is_empty() {
        return Err(ConfigError::invalid("name", "must not be empty"));
    }
    if raw.api_keys.iter().any(String::is_empty) {
        return Err(ConfigError::invalid("apiKeys", "keys must not be empty"));
    }
    for (i, var) in raw.api_keys_from_env.iter().enumerate() {
        let key = env(var).map(|k| k.trim().to_owned()).unwrap_or_default();
        if key.is_empty() {
            return Err(ConfigError::invalid(
                format!("apiKeysFromEnv[{i}]"),
                format!(
                    "environment variable {var:?} is not set or empty in the plugin's VM \
                     (Envoy: list it in vm_config.environment_variables.host_env_keys)"
                ),
            ));
        }
        header_safe(&format!("apiKeysFromEnv[{i}]"), &key)?;
        raw.api_keys.push(key);
    }
    for (i, k) in raw.api_keys.iter().enumerate() {
        header_safe(&format!("apiKeys[{i}]"), k)?;
    }
    header_safe("cluster", raw.cluster.as_deref().unwrap_or_default())?;
    header_safe("authority", raw.authority.as_deref().unwrap_or_default())?;
    header_safe("basePath", raw.base_path.as_deref().unwrap_or_default())?;
    let vendor = vendor(&raw.kind, &Value::Object(raw.options)).map_err(|e| match e.path() {
        "type" => e,
        _ => e.prefixed("options"),
    })?;
    let base_path = raw
        .base_path
        .unwrap_or_else(|| vendor.default_base_path().to_owned());
    if !base_path.is_empty() && !base_path.starts_with('/') {
        return Err(ConfigError::invalid("basePath", "must start with /"));
    }
    Ok(Provider {
        cluster: raw.cluster.unwrap_or_else(|| raw.name.clone()),
        authority: raw
            .authority
            .or_else(|| vendor.default_authority().map(str::to_owned)),
        base_path: base_path.trim_end_matches('/').to_owned(),
        ejections_key: crate::keys::shared_key(&raw.name),
        name: raw.name,
        kind: raw.kind,
        key_hashes: raw
            .api_keys
            .iter()
            .map(|k| crate::keys::key_hash(k))
            .collect(),
        keys: raw.api_keys,
        selection: raw.key_selection,
        key_health: raw.key_health,
        vendor,
    })
}

/// Parse typed options, rejecting unknown fields with their path.
pub(crate) fn options<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, ConfigError> {
    from_value(v)
}

/// Refuse a config string that becomes a header value (or part of `:path`) when it holds a
/// control character (CR, LF, NUL, …; a key read from a file often ends with a newline). The
/// error names the field, never the value.
pub(crate) fn header_safe(path: &str, value: &str) -> Result<(), ConfigError> {
    if value.chars().any(char::is_control) {
        Err(ConfigError::invalid(
            path,
            "must not contain control characters (CR, LF, NUL, …); a value read from a file may \
             end with a newline",
        ))
    } else {
        Ok(())
    }
}

/// `Authorization: Bearer <key>` when there is a key.
pub(crate) fn bearer(call: &mut UpstreamCall, key: Option<&str>) {
    if let Some(k) = key {
        call.headers
            .push(("authorization".into(), format!("Bearer {k}")));
    }
}

/// `model` as one upstream path segment: a 400 when it is empty, longer than
/// [`MAX_MODEL_LEN`](crate::prepare::MAX_MODEL_LEN), holds `..` or a control character;
/// otherwise percent-encoded (every byte but `A-Za-z0-9-._~`), so `/`, `?`, `#` and `%` cannot
/// leave the segment (a Bedrock ARN keeps its `:` and `/` encoded).
pub(crate) fn path_segment(model: &str) -> Result<String, ClientError> {
    if model.is_empty() {
        return Err(ClientError::invalid_request("`model` is required").with_param("model"));
    }
    crate::prepare::check_model(model)?;
    if model.contains("..") {
        return Err(
            ClientError::invalid_request("`model` must not contain `..`").with_param("model"),
        );
    }
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn the_unknown_type_error_lists_every_type_once() {
        let err = match build(&serde_json::json!({"name": "x", "type": "nope"})) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted"),
        };
        let names = type_names();
        for n in &names {
            assert_eq!(
                err.matches(&format!(" {n},")).count()
                    + usize::from(err.ends_with(&format!(" {n}"))),
                1,
                "{n} in {err}"
            );
        }
        for n in [
            "openai",
            "azure-openai",
            "anthropic",
            "bedrock",
            "gemini",
            "vertex",
            "vllm",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn every_listed_type_is_one_the_builder_knows() {
        for n in type_names() {
            // Options may be missing (bedrock needs a region): the error must not be "unknown".
            if let Err(e) = build(&serde_json::json!({"name": "x", "type": n})) {
                assert!(!e.to_string().contains("unknown provider type"), "{n}: {e}");
            }
        }
    }

    #[test]
    fn keys_from_the_environment_join_the_pool_and_a_missing_one_is_refused_by_path() {
        let env = |name: &str| match name {
            "OPENAI_KEY_A" => Some("sk-env-a\n".to_owned()),
            "EMPTY" => Some(" ".to_owned()),
            _ => None,
        };
        let cfg = serde_json::json!({"name": "oai", "type": "openai",
            "apiKeys": ["sk-inline"], "apiKeysFromEnv": ["OPENAI_KEY_A"]});
        let p = build_with_env(&cfg, &env).unwrap();
        assert_eq!(
            p.keys,
            ["sk-inline", "sk-env-a"],
            "trimmed, after the inline keys"
        );
        assert_eq!(p.key_hashes.len(), 2);
        for missing in ["NOT_SET", "EMPTY"] {
            let cfg = serde_json::json!({"name": "oai", "type": "openai",
                "apiKeysFromEnv": ["OPENAI_KEY_A", missing]});
            let err = build_with_env(&cfg, &env).unwrap_err().to_string();
            assert!(err.contains("apiKeysFromEnv[1]"), "{err}");
            assert!(
                err.contains(missing) && err.contains("host_env_keys"),
                "{err}"
            );
            assert!(!err.contains("sk-env-a"), "no key in the message: {err}");
        }
    }
}
