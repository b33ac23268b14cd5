//! Config parsing: the documented defaults, and refusals that name the field's path.

use super::*;

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::from_json(&serde_json::from_str(json).unwrap())
}

#[test]
fn an_empty_config_routes_nothing_with_the_documented_defaults() {
    let c = parse("{}").unwrap();
    assert!(!c.is_active());
    assert_eq!(c.header, "x-gateway-destination-endpoint");
    assert_eq!(c.list_header, None);
    assert_eq!(c.weights.prefix, 3.0);
    assert_eq!(c.weights.queue, 2.0);
    assert_eq!(c.weights.kv_cache, 2.0);
    assert_eq!(c.weights.session, 10.0);
    assert_eq!(c.prefix.block_bytes, 64);
    assert_eq!(c.prefix.max_blocks, 256);
    assert_eq!(c.saturation.queue_threshold, 5);
    assert_eq!(c.saturation.kv_cache_threshold, 0.8);
    assert_eq!(c.saturation.policy, SaturationPolicy::Shed);
    assert_eq!(c.session.header, "x-session-id");
    assert_eq!(c.load.max_age, Duration::from_secs(2));
    assert_eq!(c.load.refresh, Duration::from_millis(1));
    assert_eq!(c.cool_off, Duration::from_secs(10));
    assert!(!c.response_header);
    assert_eq!(c.bounded_load, 1.25);
}

#[test]
fn endpoints_keep_their_order_weights_labels_and_adapters() {
    let c = parse(
        r#"{"endpoints": [
            {"address": "10.0.0.1:8000", "weight": 2, "labels": {"gpu": "H100"}, "loraAdapters": ["sql"]},
            {"address": "[::1]:8001"}
        ], "pool": "llama", "listHeader": "X-Gateway-Destination-Endpoint-List"}"#,
    )
    .unwrap();
    assert!(c.is_active() && c.has_lora);
    assert_eq!(c.max_weight, 2.0);
    assert_eq!(c.endpoints[0].labels["gpu"], "H100");
    assert_eq!(c.endpoint_index(b"[::1]:8001"), Some(1));
    assert_eq!(
        c.list_header.as_deref(),
        Some("x-gateway-destination-endpoint-list")
    );
    assert_eq!(c.keys.prefix_slot, "aigw.lb.llama.pc.");
    assert_eq!(c.keys.endpoint[0], "aigw.lb.ep.10.0.0.1:8000");
    assert_eq!(
        c.endpoints[0].picks_metric,
        "aigw.ai_load_balancer.endpoint.10_0_0_1_8000.picks_total"
    );
}

#[test]
fn bad_configs_are_refused_with_the_field_path() {
    let cases = [
        (r#"{"endpoint": []}"#, "endpoint"),
        (
            r#"{"endpoints": [{"address": "pod-1:8000"}]}"#,
            "endpoints[0].address",
        ),
        (
            r#"{"endpoints": [{"address": "10.0.0.1:1"}, {"address": "10.0.0.1:1"}]}"#,
            "endpoints[1].address",
        ),
        (
            r#"{"endpoints": [{"address": "10.0.0.1:1", "weight": 0}]}"#,
            "endpoints[0].weight",
        ),
        (
            r#"{"endpoints": [{"address": "10.0.0.1:1", "gpu": "x"}]}"#,
            "endpoints[0].gpu",
        ),
        (
            r#"{"endpoints": [{"address": "10.0.0.1:1", "loraAdapters": [""]}]}"#,
            "endpoints[0].loraAdapters[0]",
        ),
        (r#"{"scorers": {"prefix": -1}}"#, "scorers.prefix"),
        (r#"{"scorers": {"prefixx": 1}}"#, "scorers.prefixx"),
        (r#"{"prefix": {"blockBytes": 0}}"#, "prefix.blockBytes"),
        (
            r#"{"saturation": {"kvCacheThreshold": 1.5}}"#,
            "saturation.kvCacheThreshold",
        ),
        (r#"{"saturation": {"policy": "drop"}}"#, "saturation.policy"),
        (r#"{"session": {"header": "x session"}}"#, "session.header"),
        (r#"{"header": ""}"#, "header"),
        (r#"{"pool": "a.b"}"#, "pool"),
        (r#"{"load": {"maxAgeMs": 0}}"#, "load.maxAgeMs"),
        (r#"{"unhealthyCoolOffMs": 0}"#, "unhealthyCoolOffMs"),
        (r#"{"boundedLoad": 0.5}"#, "boundedLoad"),
        (
            r#"{"match": {"header": "x-aigw-upstream", "values": []}}"#,
            "match.values",
        ),
        (
            r#"{"match": {"header": "x y", "values": ["a"]}}"#,
            "match.header",
        ),
        (r#"{"match": {"header": "x", "value": "a"}}"#, "match.value"),
    ];
    for (json, path) in cases {
        let err = parse(json).expect_err(json);
        assert_eq!(err.path(), path, "{json}: {err}");
    }
    let many: Vec<String> = (0..65)
        .map(|i| format!(r#"{{"address": "10.0.0.1:{}"}}"#, i + 1))
        .collect();
    let err = parse(&format!(r#"{{"endpoints": [{}]}}"#, many.join(","))).unwrap_err();
    assert_eq!(err.path(), "endpoints");
}

#[test]
fn a_match_limits_the_pool_to_requests_with_one_of_the_header_values() {
    let c = parse(r#"{"match": {"header": "X-Aigw-Upstream", "values": ["fleet", "fleet-b"]}}"#)
        .unwrap();
    assert_eq!(c.only_when.as_ref().unwrap().0, "x-aigw-upstream");
    assert!(c.applies(Some(b"fleet-b")));
    assert!(!c.applies(Some(b"openai")));
    assert!(!c.applies(None));
    assert!(parse("{}").unwrap().applies(None));
}
