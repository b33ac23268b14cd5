//! Configuration: [`RawConfig`] as written (camelCase JSON, unknown fields refused with their
//! path), validated and compiled into [`Config`] once: rules compiled, the PII actions as a
//! table, reply texts rendered.

use std::collections::BTreeMap;

use aigw_shared::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;

use crate::detect::{Kind, Kinds};
use crate::rules::{RawDenyList, RawInjection, RawRegexRule, Rules};
use crate::service::{RawService, Service};

/// The largest request body read, unless configured (10 MiB, as the other plugins).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;
/// The largest JSON answer read to restore values or check output rules (10 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 10 << 20;
/// Characters of a streamed answer held back for output rules, unless configured.
pub const DEFAULT_HOLD_BACK_CHARS: usize = 64;

/// What happens to a detected PII value.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum PiiAction {
    /// Refuse the request.
    Block,
    /// Replace it with a numbered placeholder (`[EMAIL_1]`), put back in the answer.
    Mask,
    /// Replace it with a salted hash (`[EMAIL:5f2c…]`): stable across requests, never put back.
    Hash,
    /// Count it, let it pass.
    Log,
    /// Do not look for it.
    #[default]
    Off,
}

/// How a blocked request is answered.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum BlockMode {
    /// An error in the caller's protocol (status `onBlock.status`).
    #[default]
    Error,
    /// A 200 answer in which the assistant refuses (streamed when the request asked for a stream).
    Refusal,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    deny_words: Vec<RawDenyList>,
    #[serde(default)]
    regex_rules: Vec<RawRegexRule>,
    #[serde(default)]
    injection: Option<RawInjection>,
    #[serde(default)]
    pii: BTreeMap<String, PiiAction>,
    #[serde(default)]
    hash_salt: String,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    on_block: RawOnBlock,
    #[serde(default)]
    output: RawOutput,
    #[serde(default = "yes")]
    restore: bool,
    #[serde(default = "default_max_response")]
    max_response_body_bytes: usize,
    #[serde(default)]
    services: Vec<RawService>,
}

fn yes() -> bool {
    true
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_max_response() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

fn default_hold_back() -> usize {
    DEFAULT_HOLD_BACK_CHARS
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLimits {
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default)]
    max_input_chars: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_input_chars: 0,
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOnBlock {
    #[serde(default)]
    mode: BlockMode,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default = "yes")]
    name_rule: bool,
}

impl Default for RawOnBlock {
    fn default() -> Self {
        Self {
            mode: BlockMode::Error,
            status: None,
            message: None,
            name_rule: true,
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawOutput {
    #[serde(default)]
    deny_words: Vec<RawDenyList>,
    #[serde(default)]
    regex_rules: Vec<RawRegexRule>,
    #[serde(default = "default_hold_back")]
    hold_back_chars: usize,
    #[serde(default)]
    safe_message: Option<String>,
    /// PII in answers, per detector: `block` (cut the answer with the safe message), `mask`
    /// (replace the value by its label, e.g. `[EMAIL]`), `hash`, `log` or `off`.
    #[serde(default)]
    pii: BTreeMap<String, PiiAction>,
}

impl Default for RawOutput {
    fn default() -> Self {
        Self {
            deny_words: Vec::new(),
            regex_rules: Vec::new(),
            hold_back_chars: DEFAULT_HOLD_BACK_CHARS,
            safe_message: None,
            pii: BTreeMap::new(),
        }
    }
}

/// The PII detectors of one direction and the action per kind (`Off` when not configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct PiiPolicy {
    /// Which detectors run.
    pub kinds: Kinds,
    /// The action per kind, in `Kind::ALL` order.
    pub actions: [PiiAction; Kind::ALL.len()],
}

impl PiiPolicy {
    /// Read a `{detector: action}` map found at `path`.
    fn build(raw: &BTreeMap<String, PiiAction>, path: &str) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for (name, action) in raw {
            let Some(kind) = Kind::ALL.iter().find(|k| k.name() == name) else {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                return Err(ConfigError::invalid(
                    format!("{path}.{name}"),
                    format!("unknown detector; known: {}", known.join(", ")),
                ));
            };
            if let Some(slot) = out.actions.get_mut(*kind as usize) {
                *slot = *action;
            }
            if *action != PiiAction::Off {
                out.kinds.insert(*kind);
            }
        }
        Ok(out)
    }

    /// The action for `kind`.
    pub fn action(&self, kind: Kind) -> PiiAction {
        self.actions
            .get(kind as usize)
            .copied()
            .unwrap_or(PiiAction::Off)
    }
}

/// The default text of a refusal and of a cut answer.
pub const DEFAULT_MESSAGE: &str = "This content was blocked by the gateway's content policy.";

/// How blocked requests are answered.
#[derive(Debug, Clone)]
pub struct OnBlock {
    /// Error or refusal.
    pub mode: BlockMode,
    /// HTTP status of an error answer (400 unless configured).
    pub status: u16,
    /// The message (error message, or the assistant's refusal text).
    pub message: String,
    /// Add ` (rule: <name>)` to the message.
    pub name_rule: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Local rules for request texts.
    pub input: Rules,
    /// Local rules for answer texts.
    pub output: Rules,
    /// PII detectors for answer texts.
    pub output_pii: PiiPolicy,
    /// Which PII detectors run.
    pub kinds: Kinds,
    /// The action per PII kind (`Off` when not configured).
    pub pii: [PiiAction; Kind::ALL.len()],
    /// The salt of the `hash` action.
    pub salt: Vec<u8>,
    /// Request bodies larger than this are refused (413).
    pub max_body_bytes: usize,
    /// Message text larger than this (in characters, all texts together) is refused; 0 = no limit.
    pub max_input_chars: usize,
    /// How a blocked request is answered.
    pub on_block: OnBlock,
    /// Put masked values back in the answer.
    pub restore: bool,
    /// Characters of a streamed answer held back for output rules.
    pub hold_back_chars: usize,
    /// The text that ends an answer cut by an output rule.
    pub safe_message: String,
    /// JSON answers larger than this are passed on unread (not restored, not checked).
    pub max_response_body_bytes: usize,
    /// External moderation services asked after the local rules passed.
    pub services: Vec<Service>,
}

impl Config {
    /// Validate and compile one configuration object.
    pub fn build(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        let input = Rules::build("", raw.deny_words, raw.regex_rules, raw.injection)?;
        let output = Rules::build(
            "output",
            raw.output.deny_words,
            raw.output.regex_rules,
            None,
        )?;
        let PiiPolicy {
            kinds,
            actions: pii,
        } = PiiPolicy::build(&raw.pii, "pii")?;
        let output_pii = PiiPolicy::build(&raw.output.pii, "output.pii")?;
        if raw.limits.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "limits.maxBodyBytes",
                "must be greater than 0",
            ));
        }
        if raw.max_response_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "maxResponseBodyBytes",
                "must be greater than 0",
            ));
        }
        if raw.output.hold_back_chars > 65_536 {
            return Err(ConfigError::invalid(
                "output.holdBackChars",
                "must be at most 65536",
            ));
        }
        let status = raw.on_block.status.unwrap_or(400);
        if !(400..=599).contains(&status) {
            return Err(ConfigError::invalid(
                "onBlock.status",
                "must be an error status (400-599)",
            ));
        }
        let message = raw
            .on_block
            .message
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
        let safe_message = raw
            .output
            .safe_message
            .unwrap_or_else(|| DEFAULT_MESSAGE.to_owned());
        let salt = raw.hash_salt.into_bytes();
        let mut services = Vec::with_capacity(raw.services.len());
        for (i, s) in raw.services.into_iter().enumerate() {
            let service = Service::build(s, &format!("services[{i}]"))?;
            if services.iter().any(|x: &Service| x.rule == service.rule) {
                return Err(ConfigError::invalid(
                    format!("services[{i}].name"),
                    "is used by another service",
                ));
            }
            services.push(service);
        }
        Ok(Self {
            input,
            output,
            output_pii,
            kinds,
            pii,
            salt,
            max_body_bytes: raw.limits.max_body_bytes,
            max_input_chars: raw.limits.max_input_chars,
            on_block: OnBlock {
                mode: raw.on_block.mode,
                status,
                message,
                name_rule: raw.on_block.name_rule,
            },
            restore: raw.restore,
            hold_back_chars: raw.output.hold_back_chars,
            safe_message,
            max_response_body_bytes: raw.max_response_body_bytes,
            services,
        })
    }

    /// The action for `kind`.
    pub fn action(&self, kind: Kind) -> PiiAction {
        self.pii
            .get(kind as usize)
            .copied()
            .unwrap_or(PiiAction::Off)
    }

    /// Whether a request needs its body read at all.
    pub fn checks_requests(&self) -> bool {
        !self.input.is_empty()
            || !self.kinds.is_empty()
            || self.max_input_chars > 0
            || self.services.iter().any(|s| s.requests)
    }

    /// Whether an answer may be cut by output rules.
    pub fn checks_answers(&self) -> bool {
        !self.output.is_empty() || !self.output_pii.kinds.is_empty()
    }

    /// Whether an external service is asked about JSON answers.
    pub fn asks_about_answers(&self) -> bool {
        self.services.iter().any(|s| s.answers)
    }

    /// Whether any PII kind is masked (so answers may need restoring).
    pub fn masks(&self) -> bool {
        self.restore && Kind::ALL.iter().any(|k| self.action(*k) == PiiAction::Mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        Config::build(&v).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_config_checks_nothing() {
        let c = Config::build(&json!({})).unwrap();
        assert!(!c.checks_requests() && !c.checks_answers() && !c.masks());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.on_block.status, 400);
        assert_eq!(c.hold_back_chars, DEFAULT_HOLD_BACK_CHARS);
    }

    #[test]
    fn pii_actions_are_read_per_kind() {
        let c =
            Config::build(&json!({"pii": {"email": "mask", "creditCard": "block", "jwt": "off"}}))
                .unwrap();
        assert_eq!(c.action(Kind::Email), PiiAction::Mask);
        assert_eq!(c.action(Kind::CreditCard), PiiAction::Block);
        assert_eq!(c.action(Kind::Jwt), PiiAction::Off);
        assert!(c.kinds.has(Kind::Email) && !c.kinds.has(Kind::Jwt));
        assert!(c.masks() && c.checks_requests());
    }

    #[test]
    fn errors_name_the_offending_field() {
        assert!(err(json!({"pii": {"emial": "mask"}})).starts_with("pii.emial"));
        assert!(err(json!({"pii": {"email": "erase"}})).contains("pii.email"));
        assert!(err(json!({"denyWord": []})).contains("denyWord"));
        assert!(err(json!({"limits": {"maxBodyBytes": 0}})).starts_with("limits.maxBodyBytes"));
        assert!(err(json!({"onBlock": {"status": 200}})).starts_with("onBlock.status"));
        assert!(err(json!({"onBlock": {"mode": "drop"}})).contains("onBlock.mode"));
        assert!(
            err(json!({"output": {"holdBackChars": 100000}})).starts_with("output.holdBackChars")
        );
        assert!(
            err(json!({"output": {"regexRules": [{"name": "x", "pattern": "["}]}}))
                .starts_with("output.regexRules[0].pattern")
        );
        let unknown = err(json!({"injection": {"enabld": true}}));
        assert!(
            unknown.contains("injection") && unknown.contains("enabld"),
            "{unknown}"
        );
        assert!(
            Config::build(&json!({})).unwrap().on_block.name_rule,
            "the rule is named by default"
        );
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::RawConfig>("ai-content-moderation");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
