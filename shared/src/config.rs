//! Plugin configuration parsing: JSON in, typed config out, with errors that name the JSON path.
//!
//! Every plugin parses its raw config with [`parse_json`] (or [`from_value`] when it already holds a
//! [`serde_json::Value`], as the `_rules_` handling in [`crate::rules`] does). A type or syntax error
//! comes back as [`ConfigError::Json`] whose path points at the offending field, e.g.
//! `prepend[1].role: unknown variant "robot", expected one of ...`. Checks that serde cannot express
//! (non-empty lists, ranges, cross-field rules) are reported with [`ConfigError::invalid`].
//!
//! Empty (or all-whitespace) config bytes are treated as `{}`: Envoy passes an empty configuration
//! when none is given, and every plugin must then start with its defaults.

use serde::de::DeserializeOwned;

/// Why a configuration was rejected. The `Display` form is `path: message` (or just `message` when
/// the problem is the document as a whole); it is what plugins log when they refuse to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The JSON is malformed or does not fit the expected types.
    #[error("{}", join_path(path, message))]
    Json {
        /// Where in the document, in `a.b[2].c` form; empty for the root.
        path: String,
        /// What serde said, including line and column for syntax errors.
        message: String,
    },
    /// The JSON fits the types but a plugin's validation rule rejected a value.
    #[error("{}", join_path(path, message))]
    Invalid {
        /// Where in the document, in `a.b[2].c` form; empty for the root.
        path: String,
        /// What is wrong and, ideally, what would be accepted.
        message: String,
    },
}

fn join_path(path: &str, message: &str) -> String {
    if path.is_empty() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

impl ConfigError {
    /// A validation error at `path`, e.g. `ConfigError::invalid("templates.x.messages", "must not be empty")`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The JSON path the error points at (empty for the document root).
    pub fn path(&self) -> &str {
        match self {
            Self::Json { path, .. } | Self::Invalid { path, .. } => path,
        }
    }

    /// The message without the path.
    pub fn message(&self) -> &str {
        match self {
            Self::Json { message, .. } | Self::Invalid { message, .. } => message,
        }
    }

    /// The same error with `prefix` put in front of its path, e.g. `_rules_[2]` turns
    /// `prepend[0].role` into `_rules_[2].prepend[0].role`.
    #[must_use]
    pub fn prefixed(self, prefix: &str) -> Self {
        let join = |path: String| -> String {
            if path.is_empty() {
                prefix.to_owned()
            } else if prefix.is_empty() {
                path
            } else if path.starts_with('[') {
                format!("{prefix}{path}")
            } else {
                format!("{prefix}.{path}")
            }
        };
        match self {
            Self::Json { path, message } => Self::Json {
                path: join(path),
                message,
            },
            Self::Invalid { path, message } => Self::Invalid {
                path: join(path),
                message,
            },
        }
    }
}

/// Parse config bytes into `T`, naming the JSON path of any error. Empty or whitespace-only bytes
/// parse as `{}`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| ConfigError::Json {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(value)
}

/// Convert an already-parsed JSON value into `T`, naming the JSON path of any error.
pub fn from_value<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// Parse config bytes into a JSON object (empty bytes give an empty object). Anything that is not
/// a JSON object is an error.
pub fn parse_object(
    bytes: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let value: serde_json::Value = parse_json(bytes)?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(ConfigError::invalid(
            "",
            format!(
                "the configuration must be a JSON object, not {}",
                kind_of(&other)
            ),
        )),
    }
}

/// A short English name of a JSON value's type, for error messages.
pub fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn path_error<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> ConfigError {
    let path = err.path().to_string();
    let path = if path == "." || path == "?" {
        String::new()
    } else {
        path
    };
    ConfigError::Json {
        path,
        message: without_values(&err.inner().to_string()),
    }
}

/// A serde message without the configured values it quotes: a value of the wrong type (an API key
/// given as a string where a list is expected) must never reach a log line. `string "…"` becomes
/// `a string`; an unknown enum variant longer than 32 characters is not shown.
fn without_values(message: &str) -> String {
    const STRING: &str = "string \"";
    const VARIANT: &str = "unknown variant `";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let s = rest.find(STRING);
        let v = rest.find(VARIANT);
        let (at, is_string) = match (s, v) {
            (Some(s), Some(v)) if v < s => (v, false),
            (Some(s), _) => (s, true),
            (None, Some(v)) => (v, false),
            (None, None) => break,
        };
        out.push_str(rest.get(..at).unwrap_or_default());
        if is_string {
            // Debug-quoted: runs to the first `"` not escaped by a backslash.
            let body = rest.get(at + STRING.len()..).unwrap_or_default();
            let mut end = body.len();
            let mut escaped = false;
            for (i, c) in body.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            out.push_str("a string");
            rest = body.get(end + 1..).unwrap_or_default();
        } else {
            let body = rest.get(at + VARIANT.len()..).unwrap_or_default();
            let end = body.find('`').unwrap_or(body.len());
            let value = body.get(..end).unwrap_or_default();
            if value.chars().count() > 32 {
                out.push_str("unknown variant (not shown)");
            } else {
                out.push_str(VARIANT);
                out.push_str(value);
                out.push('`');
            }
            rest = body.get(end + 1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Raw {
        #[serde(default)]
        prepend: Vec<Msg>,
        #[serde(default)]
        max_body_bytes: Option<u64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Msg {
        role: Role,
        content: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        System,
        User,
    }

    #[test]
    fn a_value_of_the_wrong_type_is_not_quoted() {
        #[derive(Debug, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            #[allow(dead_code)]
            api_keys: Vec<String>,
            #[allow(dead_code)]
            #[serde(default)]
            role: Option<Role>,
        }
        let err = parse_json::<Keys>(br#"{"apiKeys": "sk-live-\"quoted\"-SECRET"}"#).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(
            shown.starts_with("apiKeys: invalid type: a string"),
            "{shown}"
        );
        let err = parse_json::<Keys>(
            br#"{"apiKeys": [], "role": "sk-live-0123456789012345678901234567890-SECRET"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let err = parse_json::<Keys>(br#"{"apiKeys": [], "role": "robot"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `robot`"), "{err}");
    }

    #[test]
    fn empty_bytes_parse_as_an_empty_object() {
        let raw: Raw = parse_json(b"").unwrap();
        assert_eq!(
            raw,
            Raw {
                prepend: vec![],
                max_body_bytes: None
            }
        );
        let raw: Raw = parse_json(b" \n\t ").unwrap();
        assert!(raw.prepend.is_empty());
    }

    #[test]
    fn type_errors_name_the_json_path() {
        let err = parse_json::<Raw>(
            br#"{"prepend":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.path(), "prepend[1].role");
        let shown = err.to_string();
        assert!(
            shown.starts_with("prepend[1].role: unknown variant `robot`"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_their_parent_path() {
        let err =
            parse_json::<Raw>(br#"{"prepend":[{"role":"user","content":"a","x":1}]}"#).unwrap_err();
        assert_eq!(err.path(), "prepend[0].x");
        assert!(err.message().contains("unknown field `x`"));
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_json::<Raw>(b"{\"prepend\": [}").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_rejected() {
        let err = parse_json::<Raw>(b"{} {}").unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn validation_errors_render_as_path_and_message() {
        let err = ConfigError::invalid("templates.x.messages", "must not be empty");
        assert_eq!(err.to_string(), "templates.x.messages: must not be empty");
        assert_eq!(ConfigError::invalid("", "bad").to_string(), "bad");
    }

    #[test]
    fn prefixing_joins_paths_with_dots_and_brackets() {
        let e = ConfigError::invalid("prepend[0].role", "m").prefixed("_rules_[2]");
        assert_eq!(e.path(), "_rules_[2].prepend[0].role");
        let e = ConfigError::invalid("", "m").prefixed("_rules_[2]");
        assert_eq!(e.path(), "_rules_[2]");
        let e = ConfigError::invalid("[3]", "m").prefixed("list");
        assert_eq!(e.path(), "list[3]");
    }

    #[test]
    fn values_convert_with_path_errors() {
        let v = serde_json::json!({"maxBodyBytes": "many"});
        let err = from_value::<Raw>(&v).unwrap_err();
        assert_eq!(err.path(), "maxBodyBytes");
    }

    #[test]
    fn non_object_configs_are_rejected_by_parse_object() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"").unwrap().is_empty());
    }
}
