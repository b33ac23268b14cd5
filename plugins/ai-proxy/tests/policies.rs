//! Target policies through the filter on a mock worker: which of a rule's targets (its own and
//! its fallbacks) a request is routed to under `weighted`, `leastCost`, `leastLatency` (averages
//! every worker shares) and `errorRate`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Gateway, UpstreamReply};
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn worker(edit: impl FnOnce(&mut Value)) -> Gateway<Proxy> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/fallback/config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    edit(&mut v);
    Gateway::new(&v.to_string(), Capabilities::FULL)
}

/// The cluster one request was routed to.
fn routed(gw: &mut Gateway<Proxy>) -> String {
    let out = gw
        .run(Exchange::post_json("/v1/chat/completions", CHAT).reply(UpstreamReply::json(ANSWER)));
    out.upstream_header("x-aigw-upstream").unwrap()
}

fn seed(gw: &Gateway<Proxy>, key: &str, value: &str) {
    gw.root_host()
        .shared
        .borrow_mut()
        .insert(key.to_owned(), (value.as_bytes().to_vec(), 1));
}

#[test]
fn weighted_targets_share_the_traffic_by_weight() {
    let mut gw = worker(|v| {
        v["models"][0]["policy"] = "weighted".into();
        v["models"][0]["weight"] = 0.into();
    });
    assert!(
        (0..20).all(|_| routed(&mut gw) == "claude"),
        "weight 0 never goes first"
    );
    let mut gw = worker(|v| v["models"][0]["policy"] = "weighted".into());
    let picks: Vec<String> = (0..40).map(|_| routed(&mut gw)).collect();
    assert!(
        picks.contains(&"oai".to_owned()) && picks.contains(&"claude".to_owned()),
        "{picks:?}"
    );
}

#[test]
fn least_cost_sends_the_request_to_the_cheapest_priced_target() {
    let mut gw = worker(|v| {
        v["models"][0]["policy"] = "leastCost".into();
        v["prices"] = json!({"gpt-4o": {"input": 2.5, "output": 10.0},
                              "claude/claude-haiku-4-5": {"input": 1.0, "output": 5.0}});
    });
    assert_eq!(routed(&mut gw), "claude");
    // Unpriced targets go last.
    let mut gw = worker(|v| {
        v["models"][0]["policy"] = "leastCost".into();
        v["prices"] = json!({"gpt-4o": {"input": 2.5, "output": 10.0}});
    });
    assert_eq!(routed(&mut gw), "oai");
}

#[test]
fn least_latency_prefers_the_faster_average_and_every_answer_is_a_sample() {
    let mut gw = worker(|v| v["models"][0]["policy"] = "leastLatency".into());
    // Unmeasured targets go first in their configured order; the answer is the first sample.
    assert_eq!(routed(&mut gw), "oai");
    let sample = gw.root_host().shared.borrow()["aigw.ai_proxy.latency.oai.gpt-4o"]
        .0
        .clone();
    assert!(
        String::from_utf8(sample).unwrap().ends_with(" 1"),
        "one sample"
    );
    seed(&gw, "aigw.ai_proxy.latency.oai.gpt-4o", "900.0 400.0 5");
    seed(
        &gw,
        "aigw.ai_proxy.latency.claude.claude-haiku-4-5",
        "300.0 200.0 5",
    );
    assert_eq!(routed(&mut gw), "claude");
    // Streams go by time to first token.
    seed(&gw, "aigw.ai_proxy.latency.oai.gpt-4o", "900.0 100.0 5");
    let stream = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", stream).reply(UpstreamReply::json(ANSWER)),
    );
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("oai")
    );
}

#[test]
fn error_rate_aware_routing_prefers_the_target_with_fewer_recent_failures() {
    let mut gw = worker(|v| v["models"][0]["policy"] = "errorRate".into());
    assert_eq!(routed(&mut gw), "oai");
    seed(&gw, "aigw.ai_proxy.breaker.oai.gpt-4o", "1 0 0 0 0 0");
    assert_eq!(routed(&mut gw), "claude");
}

#[test]
fn an_unknown_policy_is_refused_with_its_path() {
    let bad = json!({"providers": [{"name": "a", "type": "openai"}],
        "models": [{"match": "*", "provider": "a", "policy": "fastest"}]});
    let err = ai_proxy::config::Config::build(&bad).unwrap_err();
    assert!(err.path().starts_with("models[0]"), "{}", err.path());
}
