//! Every `WasmPlugin` in `higress-configs/`, handed to its plugin's Higress build the way the
//! Higress controller does (`defaultConfig` as the top-level JSON, each `matchRules` entry as an
//! element of `_rules_` with `_match_route_` / `_match_domain_` / `_match_service_`), under the
//! `higress` profile: each loads and configures. A key the plugin does not know, put in a rule,
//! is refused with the rule's path, so a rule is validated, not skipped.

use std::path::{Path, PathBuf};

use aigw_harness::{Env, Plugin, PluginSpec, Profile};
use serde_json::{json, Map, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Higress build of a plugin (`make build` puts it in `<wasm dir>/higress/`).
fn higress_build(plugin: &str) -> PathBuf {
    crate::common::higress_wasm(&plugin.replace('-', "_"))
}

/// The JSON Higress hands the plugin for one `WasmPlugin` spec.
fn higress_json(spec: &Value) -> Value {
    let mut top = match spec.get("defaultConfig") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let mut rules = Vec::new();
    for rule in spec["matchRules"].as_array().into_iter().flatten() {
        let mut r = match rule.get("config") {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        for (from, to) in [
            ("ingress", "_match_route_"),
            ("domain", "_match_domain_"),
            ("service", "_match_service_"),
        ] {
            if let Some(v) = rule.get(from) {
                r.insert(to.to_owned(), v.clone());
            }
        }
        rules.push(Value::Object(r));
    }
    if !rules.is_empty() {
        top.insert("_rules_".to_owned(), Value::Array(rules));
    }
    Value::Object(top)
}

/// `(file, plugin name, spec)` of every WasmPlugin document in higress-configs/.
fn wasm_plugins() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("higress-configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde_yaml::with::singleton_map_recursive::deserialize(doc)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            if v["kind"] == "WasmPlugin" {
                let name = v["metadata"]["name"].as_str().unwrap().to_owned();
                out.push((file.clone(), name, v["spec"].clone()));
            }
        }
    }
    out
}

fn load(plugin: &str, config: &Value) -> Result<Plugin, String> {
    let spec = PluginSpec::new(higress_build(plugin))
        .config(config.to_string())
        .profile(Profile::Higress);
    Plugin::load(&Env::new(), spec).map_err(|e| e.to_string())
}

#[test]
fn every_higress_wasm_plugin_configures_its_plugin_as_higress_hands_it_over() {
    let plugins = wasm_plugins();
    let names: Vec<&str> = plugins.iter().map(|(_, n, _)| n.as_str()).collect();
    for expected in ["ai-proxy", "ai-prompt-decorator", "ai-usage-stats"] {
        assert!(
            names.contains(&expected),
            "no WasmPlugin for {expected}: {names:?}"
        );
    }
    for (file, name, spec) in &plugins {
        let config = higress_json(spec);
        if let Err(e) = load(name, &config) {
            panic!("{file}: {name} refused its Higress config: {e}\n{config:#}");
        }
    }
}

#[test]
fn a_rule_with_a_key_its_plugin_does_not_know_is_refused_with_the_rules_path() {
    for (file, name, spec) in wasm_plugins() {
        let mut config = higress_json(&spec);
        let rule = json!({"_match_route_": ["default/x"], "noSuchOption": true});
        match config.get_mut("_rules_") {
            Some(Value::Array(rules)) => rules.push(rule),
            _ => {
                config["_rules_"] = json!([rule]);
            }
        }
        let err = match load(&name, &config) {
            Ok(_) => panic!("{file}: {name} accepted an unknown key in a rule"),
            Err(e) => e,
        };
        assert!(
            err.contains("_rules_") && err.contains("noSuchOption"),
            "{file}: {err}"
        );
    }
}
