//! Config parsing: defaults, compiled rules, and refusals naming their path.

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
        (r#"{"backend": "memcached"}"#, "backend"),
        (r#"{"backend": "redis"}"#, "redis"),
        (r#"{"redis": {"cluster": "r"}}"#, "redis"),
        (
            r#"{"backend": "redis", "redis": {"cluster": " "}}"#,
            "redis.cluster",
        ),
        (
            r#"{"backend": "redis", "redis": {"cluster": "r?db=1"}}"#,
            "redis.cluster",
        ),
        (
            r#"{"backend": "redis", "redis": {"cluster": "r", "timeoutMs": 0}}"#,
            "redis.timeoutMs",
        ),
        (
            r#"{"backend": "redis", "redis": {"cluster": "r", "db": 1}}"#,
            "redis.db",
        ),
        (
            r#"{"backend": "redis", "redis": {"cluster": "r"}, "rls": {"cluster": "x"}}"#,
            "rls",
        ),
        (
            r#"{"backend": "redis", "redis": {"cluster": "r"}, "quota": {"adminKeys": ["0123456789abcdef0123"]}}"#,
            "quota",
        ),
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
        (r#"{"quota": {"adminKeys": []}}"#, "quota.adminKeys"),
        (r#"{"quota": {"adminKeys": ["abc"]}}"#, "quota.adminKeys[0]"),
        (
            r#"{"quota": {"key": "nope", "adminKeys": []}}"#,
            "quota.key",
        ),
        (
            r#"{"quota": {"adminPath": "quota", "adminKeys": []}}"#,
            "quota.adminPath",
        ),
        (r#"{"quota": {"adminKeys": [], "extra": 1}}"#, "quota.extra"),
        (
            r#"{"quota": {"measure": "requests", "adminKeys": []}}"#,
            "quota.measure",
        ),
        (
            r#"{"backend": "rls", "rls": {"cluster": "x"}, "quota": {"adminKeys": []}}"#,
            "quota",
        ),
        (
            r#"{"backend": "rls", "rls": {"cluster": "x"}, "rules": [{"name": "a", "chargeAfterResponse": true, "limits": [{"tokens": 1, "per": "minute"}]}]}"#,
            "rules[0].chargeAfterResponse",
        ),
        (
            r#"{"rules": [{"name": "quota", "limits": [{"tokens": 1, "per": "minute"}]}], "quota": {"adminKeys": []}}"#,
            "quota",
        ),
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

#[test]
fn a_quota_is_a_last_rule_that_starts_empty_and_never_refills() {
    let key = "a".repeat(64);
    let c = parse(&format!(
        r#"{{"quota": {{"key": "header:x-team", "measure": "cost", "adminPath": "/admin/q", "adminKeys": ["{key}"]}}}}"#
    ))
    .unwrap();
    let q = c.rules.last().unwrap();
    assert!(q.quota && q.name == "quota" && q.prefix == "aigw-trq:");
    assert_eq!(q.sets[0].limits[0].measure, Measure::Cost);
    assert_eq!(c.sources, vec![Source::Header("x-team".into())]);
    assert_eq!(c.quota_admin.as_ref().unwrap().path, "/admin/q");
    assert!(c.needs_body);
}
