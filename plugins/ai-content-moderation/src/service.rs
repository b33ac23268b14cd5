//! External moderation services, asked by HTTP callout after the local rules passed: OpenAI
//! `/v1/moderations`, Azure AI Content Safety `text:analyze` (per-category severity thresholds),
//! and a generic HTTP guard (a request template and the JSON pointer of its verdict).
//!
//! The text sent is every checked message text of the request, after masking (a service never
//! sees a masked value), joined by blank lines. A service that does not answer in time, answers
//! an error status or something unreadable is a failure, handled by its `onError`: `block`
//! (fail-closed, the default) or `allow` (fail-open).

use std::collections::BTreeMap;
use std::time::Duration;

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::config::ConfigError;
use aigw_shared::host::CallResponse;
use serde::Deserialize;
use serde_json::{json, Value};

/// Which API a service speaks.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ServiceKind {
    /// OpenAI `POST /v1/moderations`.
    OpenaiModeration,
    /// Azure AI Content Safety `POST /contentsafety/text:analyze`.
    AzureContentSafety,
    /// Any HTTP guard: a request template and the pointer of the verdict.
    Http,
}

/// What a failed call does.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// Refuse the request (fail-closed).
    #[default]
    Block,
    /// Let it pass (fail-open).
    Allow,
}

/// A service as configured.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawService {
    name: String,
    kind: ServiceKind,
    cluster: String,
    authority: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    thresholds: BTreeMap<String, u32>,
    #[serde(default)]
    body_template: Option<String>,
    #[serde(default)]
    verdict_pointer: Option<String>,
    #[serde(default)]
    block_value: Option<Value>,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default)]
    on_error: OnError,
    /// Ask it about JSON answers too (the answer waits for the verdict; a flagged one is
    /// replaced by `output.safeMessage`). Streams are not sent.
    #[serde(default)]
    answers: bool,
    /// Ask it about requests (`false`: answers only).
    #[serde(default = "default_requests")]
    requests: bool,
}

fn default_requests() -> bool {
    true
}

fn default_timeout() -> u64 {
    2000
}

/// Azure severity (0, 2, 4, 6) at which a category blocks unless configured.
pub const DEFAULT_AZURE_THRESHOLD: u32 = 4;

/// A validated service.
#[derive(Debug)]
pub struct Service {
    /// `service:<name>`.
    pub rule: String,
    /// Metric: requests it refused.
    pub blocked_metric: String,
    /// Metric: calls that failed.
    pub error_metric: String,
    /// What it speaks.
    pub kind: ServiceKind,
    upstream: Upstream,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    model: Option<String>,
    categories: Vec<String>,
    thresholds: BTreeMap<String, u32>,
    template: Option<(String, String)>,
    pointer: String,
    block_value: Value,
    /// How long a call may take.
    pub timeout: Duration,
    /// What a failed call does.
    pub on_error: OnError,
    /// Asked about JSON answers too.
    pub answers: bool,
    /// Asked about requests.
    pub requests: bool,
    /// Metric: answers it had replaced.
    pub cut_metric: String,
}

/// What a service said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The text may pass.
    Allow,
    /// The text is refused (the category that decided, when known).
    Block(Option<String>),
    /// No usable answer (why).
    Failed(String),
}

impl Service {
    /// Validate `raw`, the service at `path`.
    pub fn build(raw: RawService, path: &str) -> Result<Self, ConfigError> {
        let ok_name = !raw.name.is_empty()
            && raw.name.len() <= 64
            && raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok_name {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                "must be 1-64 characters of letters, digits, `-` and `_`",
            ));
        }
        if raw.cluster.is_empty() || raw.authority.is_empty() {
            return Err(ConfigError::invalid(
                format!("{path}.cluster"),
                "cluster and authority must not be empty",
            ));
        }
        if raw.timeout_ms == 0 || raw.timeout_ms > 60_000 {
            return Err(ConfigError::invalid(
                format!("{path}.timeoutMs"),
                "must be 1-60000",
            ));
        }
        let default_path = match raw.kind {
            ServiceKind::OpenaiModeration => Some("/v1/moderations"),
            ServiceKind::AzureContentSafety => {
                Some("/contentsafety/text:analyze?api-version=2024-09-01")
            }
            ServiceKind::Http => None,
        };
        let Some(req_path) = raw.path.clone().or(default_path.map(str::to_owned)) else {
            return Err(ConfigError::invalid(
                format!("{path}.path"),
                "is required for kind `http`",
            ));
        };
        if !raw.requests && !raw.answers {
            return Err(ConfigError::invalid(
                format!("{path}.requests"),
                "the service is asked about nothing: set `requests` or `answers`",
            ));
        }
        // `:authority` and `:path` of every callout: a space or control character would have
        // every callout refused by the host (or split its header block) instead of the config.
        let visible = |v: &str| v.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80);
        if !visible(&raw.authority) || raw.authority.contains('/') {
            return Err(ConfigError::invalid(
                format!("{path}.authority"),
                "must be a host name (and port), without spaces, control characters or `/`",
            ));
        }
        if !req_path.starts_with('/') || !visible(&req_path) {
            return Err(ConfigError::invalid(
                format!("{path}.path"),
                "must start with `/` and have no spaces or control characters",
            ));
        }
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(key) = &raw.api_key {
            check_header_value(key, || format!("{path}.apiKey"))?;
            match raw.kind {
                ServiceKind::OpenaiModeration => {
                    headers.push(("authorization".into(), format!("Bearer {key}").into_bytes()))
                }
                ServiceKind::AzureContentSafety => {
                    headers.push(("ocp-apim-subscription-key".into(), key.clone().into_bytes()))
                }
                ServiceKind::Http => {
                    return Err(ConfigError::invalid(
                        format!("{path}.apiKey"),
                        "kind `http` sends its credentials in `headers`",
                    ))
                }
            }
        }
        for (k, v) in &raw.headers {
            let name = k.to_ascii_lowercase();
            if name.starts_with(':') || name == "content-type" || name.is_empty() {
                return Err(ConfigError::invalid(
                    format!("{path}.headers.{k}"),
                    "pseudo-headers and content-type are set by the plugin",
                ));
            }
            let field = || format!("{path}.headers.{k}");
            if !name.bytes().all(is_token_char) {
                return Err(ConfigError::invalid(field(), "is not a valid header name"));
            }
            check_header_value(v, field)?;
            headers.push((name, v.clone().into_bytes()));
        }
        let mut template = None;
        let mut pointer = String::new();
        if raw.kind == ServiceKind::Http {
            let t = raw
                .body_template
                .as_deref()
                .unwrap_or("{\"text\": ${text}}");
            let Some((before, after)) = t.split_once("${text}") else {
                return Err(ConfigError::invalid(
                    format!("{path}.bodyTemplate"),
                    "must contain ${text} (replaced by the text as a JSON string)",
                ));
            };
            template = Some((before.to_owned(), after.to_owned()));
            pointer = raw
                .verdict_pointer
                .clone()
                .unwrap_or_else(|| "/flagged".into());
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(ConfigError::invalid(
                    format!("{path}.verdictPointer"),
                    "must be a JSON pointer such as /result/flagged",
                ));
            }
        } else if raw.body_template.is_some() || raw.verdict_pointer.is_some() {
            return Err(ConfigError::invalid(
                format!("{path}.bodyTemplate"),
                "only for kind `http`",
            ));
        }
        if !raw.thresholds.is_empty() && raw.kind != ServiceKind::AzureContentSafety {
            return Err(ConfigError::invalid(
                format!("{path}.thresholds"),
                "only for kind `azureContentSafety`",
            ));
        }
        let label = aigw_shared::metrics::label(&format!("service_{}", raw.name));
        Ok(Self {
            rule: format!("service:{}", raw.name),
            blocked_metric: crate::metric::reason(&label, crate::metric::BLOCKED),
            error_metric: crate::metric::reason(&label, crate::metric::SERVICE_ERRORS),
            kind: raw.kind,
            upstream: Upstream::envoy(&raw.cluster, &raw.authority),
            path: req_path,
            headers,
            model: raw.model,
            categories: raw.categories,
            thresholds: raw.thresholds,
            template,
            pointer,
            block_value: raw.block_value.unwrap_or(Value::Bool(true)),
            timeout: Duration::from_millis(raw.timeout_ms),
            on_error: raw.on_error,
            answers: raw.answers,
            requests: raw.requests,
            cut_metric: crate::metric::reason(&label, crate::metric::CUT),
        })
    }

    /// Where calls go.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The request body asking about `text`.
    pub fn body(&self, text: &str) -> Vec<u8> {
        match self.kind {
            ServiceKind::OpenaiModeration => {
                let mut v = serde_json::Map::new();
                v.insert("input".into(), json!(text));
                if let Some(m) = &self.model {
                    v.insert("model".into(), json!(m));
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
            ServiceKind::AzureContentSafety => {
                let mut v = serde_json::Map::new();
                v.insert("text".into(), json!(text));
                v.insert("outputType".into(), json!("FourSeverityLevels"));
                if !self.thresholds.is_empty() {
                    let names: Vec<&String> = self.thresholds.keys().collect();
                    v.insert("categories".into(), json!(names));
                }
                serde_json::to_vec(&v).unwrap_or_default()
            }
            ServiceKind::Http => {
                let (before, after) = self
                    .template
                    .as_ref()
                    .map(|(b, a)| (b.as_str(), a.as_str()))
                    .unwrap_or(("", ""));
                let mut out = Vec::with_capacity(before.len() + text.len() + after.len() + 2);
                out.extend_from_slice(before.as_bytes());
                out.extend_from_slice(&serde_json::to_vec(text).unwrap_or_default());
                out.extend_from_slice(after.as_bytes());
                out
            }
        }
    }

    /// The callout for `body`.
    pub fn request<'a>(&'a self, body: &'a [u8]) -> CalloutRequest<'a> {
        let mut req = CalloutRequest::post_json(&self.path, body, self.timeout);
        req.headers
            .extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        req
    }

    /// Read the service's answer.
    pub fn verdict(&self, resp: &CallResponse) -> Verdict {
        let status = match resp.status {
            None => return Verdict::Failed("no response (timeout or connection failure)".into()),
            Some(s) => s,
        };
        if !(200..300).contains(&status) {
            return Verdict::Failed(format!("HTTP {status}"));
        }
        let Ok(v) = serde_json::from_slice::<Value>(&resp.body) else {
            return Verdict::Failed("the answer is not JSON".into());
        };
        match self.kind {
            ServiceKind::OpenaiModeration => self.openai(&v),
            ServiceKind::AzureContentSafety => self.azure(&v),
            ServiceKind::Http => match v.pointer(&self.pointer) {
                Some(x) if *x == self.block_value => Verdict::Block(None),
                Some(_) => Verdict::Allow,
                None => Verdict::Failed(format!("no `{}` in the answer", self.pointer)),
            },
        }
    }

    fn openai(&self, v: &Value) -> Verdict {
        let Some(results) = v.get("results").and_then(Value::as_array) else {
            return Verdict::Failed("no `results` in the answer".into());
        };
        for r in results {
            let categories = r.get("categories").and_then(Value::as_object);
            if self.categories.is_empty() {
                if r.get("flagged").and_then(Value::as_bool) == Some(true) {
                    let first = categories
                        .and_then(|c| c.iter().find(|(_, f)| f.as_bool() == Some(true)))
                        .map(|(k, _)| k.clone());
                    return Verdict::Block(first);
                }
            } else if let Some(c) = categories {
                for name in &self.categories {
                    if c.get(name).and_then(Value::as_bool) == Some(true) {
                        return Verdict::Block(Some(name.clone()));
                    }
                }
            }
        }
        Verdict::Allow
    }

    fn azure(&self, v: &Value) -> Verdict {
        let Some(list) = v.get("categoriesAnalysis").and_then(Value::as_array) else {
            return Verdict::Failed("no `categoriesAnalysis` in the answer".into());
        };
        for c in list {
            let (Some(name), Some(severity)) = (
                c.get("category").and_then(Value::as_str),
                c.get("severity").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let threshold = if self.thresholds.is_empty() {
                Some(DEFAULT_AZURE_THRESHOLD)
            } else {
                self.thresholds.get(name).copied()
            };
            if threshold.is_some_and(|t| severity >= u64::from(t)) {
                return Verdict::Block(Some(name.to_owned()));
            }
        }
        let blocklist = v
            .get("blocklistsMatch")
            .and_then(Value::as_array)
            .is_some_and(|m| !m.is_empty());
        if blocklist {
            return Verdict::Block(Some("blocklist".into()));
        }
        Verdict::Allow
    }
}

/// A header value from the configuration: no CR, LF or NUL (they would end or split the header
/// line of every callout, or be refused by the host on each request instead of once at load).
fn check_header_value(value: &str, field: impl Fn() -> String) -> Result<(), ConfigError> {
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(ConfigError::invalid(
            field(),
            "must not contain CR, LF or NUL characters",
        ));
    }
    Ok(())
}

/// RFC 9110 `tchar`: the characters of a header name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
