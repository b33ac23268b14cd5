//! Configuration: `RawConfig` as written by the user, validated and compiled into [`Config`].
//!
//! Everything that can be prepared once is prepared here: templates are compiled, and the JSON
//! text of the prepended and appended messages is rendered for both protocols, so a request only
//! copies ready-made fragments.

use std::collections::BTreeMap;

use aigw_shared::config::{from_value, ConfigError};
use serde::Deserialize;
use serde_json::Value;

use crate::decorate::Fragments;
use crate::guard::Guard;
use crate::template::Text;

/// The largest request body the decorator reads, unless configured (10 MiB, as ai-proxy: long
/// contexts are common, and in a chain the smaller limit would refuse first).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 << 20;

/// A chat role a configured message may have.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instructions (Anthropic: the top-level `system` field).
    System,
    /// OpenAI's newer name for system instructions (Anthropic: `system` too).
    Developer,
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

impl Role {
    /// The role name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::Developer => "developer",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    /// Whether Anthropic carries this role in the top-level `system` field.
    pub fn is_instruction(self) -> bool {
        matches!(self, Role::System | Role::Developer)
    }
}

/// What to do with a request the decorator cannot handle.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Policy {
    /// Answer the client with an error (400 for bad JSON, 413 for a body over the limit).
    #[default]
    Reject,
    /// Forward the request untouched.
    PassThrough,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    prepend: Vec<RawMessage>,
    #[serde(default)]
    append: Vec<RawMessage>,
    #[serde(default)]
    templates: BTreeMap<String, RawTemplate>,
    #[serde(default)]
    injection_guard: RawGuard,
    #[serde(default = "default_max_body")]
    max_body_bytes: usize,
    #[serde(default)]
    on_oversize: Policy,
    #[serde(default)]
    on_invalid_body: Policy,
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    role: Role,
    content: String,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    messages: Vec<RawMessage>,
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGuard {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
}

/// A configured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its role.
    pub role: Role,
    /// Its text.
    pub content: String,
}

/// A compiled named template.
#[derive(Debug, Clone)]
pub struct Template {
    /// System text (OpenAI: a leading system message; Anthropic: the `system` field).
    pub system: Option<Text>,
    /// Messages, in order.
    pub messages: Vec<(Role, Text)>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Messages put before the request's own.
    pub prepend: Vec<Message>,
    /// Messages put after the request's own.
    pub append: Vec<Message>,
    /// Named templates.
    pub templates: BTreeMap<String, Template>,
    /// Injection-resistant wrapping of user input, when enabled.
    pub guard: Option<Guard>,
    /// Bodies larger than this are not read.
    pub max_body_bytes: usize,
    /// What to do with larger bodies.
    pub on_oversize: Policy,
    /// What to do with bodies that are not a JSON object.
    pub on_invalid_body: Policy,
    /// The JSON text of prepend/append messages, rendered once.
    pub fragments: Fragments,
}

impl Config {
    /// Validate and compile one configuration object.
    pub fn build(value: &Value) -> Result<Self, ConfigError> {
        let raw: RawConfig = from_value(value)?;
        if raw.max_body_bytes == 0 {
            return Err(ConfigError::invalid(
                "maxBodyBytes",
                "must be greater than 0",
            ));
        }
        let mut templates = BTreeMap::new();
        for (name, t) in raw.templates {
            let path = format!("templates.{name}");
            if name.is_empty() {
                return Err(ConfigError::invalid(
                    "templates",
                    "a template name must not be empty",
                ));
            }
            if t.system.is_none() && t.messages.is_empty() {
                return Err(ConfigError::invalid(
                    path,
                    "needs `system` or at least one message",
                ));
            }
            let system = match &t.system {
                Some(s) => Some(compile(s, &format!("{path}.system"))?),
                None => None,
            };
            let mut messages = Vec::with_capacity(t.messages.len());
            for (i, m) in t.messages.iter().enumerate() {
                messages.push((
                    m.role,
                    compile(&m.content, &format!("{path}.messages[{i}].content"))?,
                ));
            }
            templates.insert(name, Template { system, messages });
        }
        let guard = if raw.injection_guard.enabled {
            let g = &raw.injection_guard;
            Some(
                Guard::new(g.tag.as_deref(), g.instruction.as_deref())
                    .map_err(|m| ConfigError::invalid("injectionGuard.tag", m))?,
            )
        } else {
            None
        };
        let prepend: Vec<Message> = raw.prepend.into_iter().map(Message::from).collect();
        let append: Vec<Message> = raw.append.into_iter().map(Message::from).collect();
        let fragments = Fragments::new(&prepend, &append, guard.as_ref());
        Ok(Self {
            prepend,
            append,
            templates,
            guard,
            max_body_bytes: raw.max_body_bytes,
            on_oversize: raw.on_oversize,
            on_invalid_body: raw.on_invalid_body,
            fragments,
        })
    }

    /// True when a request without a `template` field would come out unchanged.
    pub fn is_noop_without_template(&self) -> bool {
        self.prepend.is_empty() && self.append.is_empty() && self.guard.is_none()
    }
}

impl From<RawMessage> for Message {
    fn from(m: RawMessage) -> Self {
        Self {
            role: m.role,
            content: m.content,
        }
    }
}

fn compile(source: &str, path: &str) -> Result<Text, ConfigError> {
    Text::compile(source).map_err(|e| ConfigError::invalid(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        Config::build(&v).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_config_is_valid_and_does_nothing() {
        let c = Config::build(&json!({})).unwrap();
        assert!(c.is_noop_without_template());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.on_oversize, Policy::Reject);
    }

    #[test]
    fn errors_name_the_offending_field() {
        assert!(
            err(json!({"prepend": [{"role": "sistem", "content": "x"}]}))
                .contains("prepend[0].role")
        );
        assert!(err(json!({"prepnd": []})).contains("prepnd"));
        assert!(err(json!({"maxBodyBytes": 0})).contains("maxBodyBytes"));
        assert!(err(json!({"onOversize": "drop"})).contains("onOversize"));
        let bad_template =
            err(json!({"templates": {"t": {"messages": [{"role": "user", "content": "{{x"}]}}}));
        assert!(
            bad_template.contains("templates.t.messages[0].content"),
            "{bad_template}"
        );
        assert!(err(json!({"templates": {"t": {}}})).contains("templates.t"));
        assert!(
            err(json!({"injectionGuard": {"enabled": true, "tag": "a b"}}))
                .contains("injectionGuard.tag")
        );
    }

    #[test]
    fn templates_compile_with_their_variables() {
        let c = Config::build(&json!({"templates": {"tr": {
            "system": "You translate.",
            "messages": [{"role": "user", "content": "Translate {{text}} into {{lang}}."}]
        }}}))
        .unwrap();
        let t = &c.templates["tr"];
        let vars: Vec<&str> = t.messages[0].1.variables().collect();
        assert_eq!(vars, ["text", "lang"]);
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod schema_tests {
    use std::path::Path;

    use aigw_shared::config_schema::{check_committed, plugin_schema};

    #[test]
    fn the_committed_json_schema_is_the_schema_of_the_config_types() {
        let schema = plugin_schema::<super::RawConfig>("ai-prompt-decorator");
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        assert_eq!(check_committed(&path, &schema), Ok(()));
    }
}
