//! Higress `_rules_` parsing and route matching.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::rc::Rc;

use aigw_shared::config::{from_value, ConfigError};
use aigw_shared::rules::{RouteInfo, RuleSet};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Cfg {
    #[serde(default)]
    name: String,
    #[serde(default)]
    limit: u32,
    #[serde(default)]
    prepend: Vec<Msg>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Msg {
    role: Role,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Role {
    System,
    User,
}

fn build(v: &Value) -> Result<Cfg, ConfigError> {
    let cfg: Cfg = from_value(v)?;
    if cfg.limit > 1000 {
        return Err(ConfigError::invalid("limit", "must be at most 1000"));
    }
    Ok(cfg)
}

fn parse(json: &str) -> Result<RuleSet<Cfg>, ConfigError> {
    RuleSet::parse(json.as_bytes(), build)
}

fn route(route_name: Option<&str>, host: Option<&str>, service: Option<&str>) -> RouteInfo {
    RouteInfo {
        route_name: route_name.map(Into::into),
        host: host.map(Into::into),
        service: service.map(Into::into),
    }
}

const DOC: &str = r#"{
  "name": "global", "limit": 10, "_plugin_id_": "p1",
  "_rules_": [
    {"_match_route_": ["chat-route"], "limit": 20},
    {"_match_domain_": ["*.example.com", "exact.test"], "name": "domain"},
    {"_match_service_": ["llm.dns:443", "plain_cluster"], "name": "service"},
    {"_match_route_prefix_": ["ai-"], "name": "prefix"}
  ]
}"#;

#[test]
fn empty_config_gives_a_global_only_rule_set() {
    let set = parse("").unwrap();
    assert!(set.is_global_only());
    assert!(!set.has_explicit_global());
    assert_eq!(set.global().limit, 0);
}

#[test]
fn rules_inherit_global_keys_and_override_them() {
    let set = parse(DOC).unwrap();
    assert_eq!(set.rule_count(), 4);
    let chat = set.select(&route(Some("chat-route"), None, None));
    assert_eq!((chat.name.as_str(), chat.limit), ("global", 20));
    let dom = set.select(&route(None, Some("API.example.com:8443"), None));
    assert_eq!((dom.name.as_str(), dom.limit), ("domain", 10));
}

#[test]
fn first_matching_rule_wins_else_the_global_config() {
    let set = parse(DOC).unwrap();
    let both = set.select(&route(Some("chat-route"), Some("a.example.com"), None));
    assert_eq!(both.limit, 20);
    assert_eq!(
        set.select(&route(Some("ai-chat"), None, None)).name,
        "prefix"
    );
    assert_eq!(
        set.select(&route(None, Some("exact.test"), None)).name,
        "domain"
    );
    assert_eq!(
        set.select(&route(None, Some("example.com"), None)).name,
        "global"
    );
    assert_eq!(
        set.select(&route(None, None, Some("outbound|443||llm.dns")))
            .name,
        "service"
    );
    assert_eq!(
        set.select(&route(None, None, Some("outbound|80||llm.dns")))
            .name,
        "global"
    );
    assert_eq!(
        set.select(&route(None, None, Some("plain_cluster"))).name,
        "service"
    );
    assert_eq!(set.select(&RouteInfo::default()).name, "global");
    assert!(set.select_rule(&RouteInfo::default()).is_none());
    assert!(Rc::ptr_eq(set.select(&RouteInfo::default()), set.global()));
}

#[test]
fn rules_that_combine_matcher_kinds_require_all_of_them() {
    let set =
        parse(r#"{"_rules_":[{"_match_route_":["r"],"_match_domain_":["h"],"name":"both"}]}"#)
            .unwrap();
    assert_eq!(set.select(&route(Some("r"), Some("h"), None)).name, "both");
    assert_eq!(set.select(&route(Some("r"), Some("x"), None)).name, "");
    assert!(!set.has_explicit_global());
}

#[test]
fn rule_errors_name_the_rule_and_the_field() {
    let err = parse(r#"{"_rules_":[{"_match_route_":["a"]},{"_match_route_":["b"]},{"_match_route_":["c"],"prepend":[{"role":"bot"}]}]}"#)
        .unwrap_err();
    assert_eq!(err.path(), "_rules_[2].prepend[0].role");
    assert!(err.to_string().contains("unknown variant `bot`"), "{err}");
    let err = parse(r#"{"_rules_":[{"_match_route_":["a"],"limit":5000}]}"#).unwrap_err();
    assert_eq!(err.to_string(), "_rules_[0].limit: must be at most 1000");
}

#[test]
fn malformed_rules_are_rejected_with_clear_paths() {
    let cases = [
        (r#"{"_rules_":{}}"#, "_rules_"),
        (r#"{"_rules_":[1]}"#, "_rules_[0]"),
        (r#"{"_rules_":[{"limit":1}]}"#, "_rules_[0]"),
        (r#"{"_rules_":[{"_match_route_":[""]}]}"#, "_rules_[0]"),
        (
            r#"{"_rules_":[{"_match_route_":"r"}]}"#,
            "_rules_[0]._match_route_",
        ),
        (
            r#"{"_rules_":[{"_match_domain_":["a",3]}]}"#,
            "_rules_[0]._match_domain_[1]",
        ),
        (
            r#"{"_rules_":[{"_match_route_prefix_":["a"],"_match_consumer_":["c"]}]}"#,
            "_rules_[0]._match_consumer_",
        ),
        (
            r#"{"_rules_":[{"_match_route_":["a"],"unknown":1}]}"#,
            "_rules_[0].unknown",
        ),
        (r#"{"limit":"x","_rules_":[]}"#, "limit"),
        (r#"[1,2]"#, ""),
        (r#"{"#, ""),
    ];
    for (doc, path) in cases {
        let err = parse(doc).unwrap_err();
        assert_eq!(err.path(), path, "{doc}: {err}");
    }
}
