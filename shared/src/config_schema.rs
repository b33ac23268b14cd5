//! JSON Schemas of the plugins' configurations, generated from their serde types (native builds only).
//!
//! Each plugin derives [`schemars::JsonSchema`] on its raw config types next to `Deserialize`, so
//! the schema follows the same names, defaults and `deny_unknown_fields` the loader enforces. A
//! native test per plugin compares the generated schema with the committed
//! `plugins/<name>/config.schema.json` ([`check_committed`]); `make schemas` rewrites the files.
//! The e2e suite validates every example config in the repository against them.

use std::path::Path;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

/// Set to any value to make [`check_committed`] write the schema instead of comparing it.
pub const WRITE_ENV: &str = "AIGW_WRITE_SCHEMAS";

/// The Higress matcher keys a `_rules_` element may carry besides the plugin's own fields.
pub const RULE_MATCH_KEYS: [&str; 4] = [
    "_match_route_",
    "_match_domain_",
    "_match_service_",
    "_match_route_prefix_",
];

/// The JSON Schema (draft 2020-12) of plugin `name`'s configuration type `T`, with the two keys
/// every plugin accepts on top: `_rules_` (Higress per-route rules) and `_plugin_id_`.
pub fn plugin_schema<T: JsonSchema>(name: &str) -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Some(object) = value.as_object_mut() {
        object.insert("title".into(), json!(format!("{name} configuration")));
        let properties = object
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(properties) = properties.as_object_mut() {
            properties.insert("_rules_".into(), rules_schema());
            properties.insert(
                "_plugin_id_".into(),
                json!({"type": "string", "description": "A log id Higress may add."}),
            );
        }
    }
    value
}

/// `_rules_`: an array of objects, each with at least one matcher; the rest of a rule is the
/// plugin's own configuration merged over the top level, and is checked as such after merging.
fn rules_schema() -> Value {
    let string_list = json!({"type": "array", "items": {"type": "string"}, "minItems": 1});
    let mut matchers = Map::new();
    for key in RULE_MATCH_KEYS {
        matchers.insert(key.into(), string_list.clone());
    }
    let any_of: Vec<Value> = RULE_MATCH_KEYS
        .iter()
        .map(|key| json!({"required": [key]}))
        .collect();
    json!({
        "description": "Higress per-route rules (from matchRules): matchers plus configuration keys that \
                        override the top level for the matched routes, domains or services. A rule's \
                        keys merged over the top level must satisfy this schema.",
        "type": "array",
        "items": {"type": "object", "properties": matchers, "anyOf": any_of}
    })
}

/// The file text of a schema: pretty JSON with a final newline.
pub fn render(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Compare `schema` with the committed file at `path` (or write it when [`WRITE_ENV`] is set).
/// The error says how to refresh the file.
pub fn check_committed(path: &Path, schema: &Value) -> Result<(), String> {
    let text = render(schema);
    if std::env::var_os(WRITE_ENV).is_some() {
        return std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()));
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if committed == text {
        Ok(())
    } else {
        Err(format!(
            "{} is not the schema of the config types: run `make schemas` and commit it",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A tiny config type.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Example {
        /// How many.
        max_items: u32,
        #[serde(default)]
        note: Option<String>,
    }

    #[test]
    fn the_schema_follows_serde_names_and_refuses_unknown_fields() {
        let schema = plugin_schema::<Example>("example");
        assert_eq!(schema["title"], "example configuration");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema["properties"]["maxItems"].is_object());
        assert_eq!(schema["properties"]["maxItems"]["description"], "How many.");
        assert_eq!(schema["required"], json!(["maxItems"]));
    }

    #[test]
    fn every_schema_accepts_higress_rules_and_a_plugin_id() {
        let schema = plugin_schema::<Example>("example");
        let rules = &schema["properties"]["_rules_"];
        assert_eq!(rules["type"], "array");
        assert!(rules["items"]["properties"]["_match_route_"].is_object());
        assert_eq!(schema["properties"]["_plugin_id_"]["type"], "string");
    }

    #[test]
    fn a_stale_file_is_reported_with_the_command_that_refreshes_it() {
        let dir = std::env::temp_dir().join(format!("aigw-schema-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("config.schema.json");
        let schema = plugin_schema::<Example>("example");
        let _ = std::fs::write(&path, "{}\n");
        if std::env::var_os(WRITE_ENV).is_none() {
            let err = check_committed(&path, &schema).unwrap_err();
            assert!(err.contains("make schemas"), "{err}");
        }
        let _ = std::fs::write(&path, render(&schema));
        assert_eq!(check_committed(&path, &schema), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
