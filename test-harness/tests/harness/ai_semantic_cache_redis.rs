//! The Higress build of `ai_semantic_cache.wasm` with its exact tier in Redis (`redis` set), the
//! Redis calls served by a real `redis-server`: an answer stored by one gateway is a hit on
//! another (they share no data but Redis), with its expiry set from `ttlSeconds`; Redis gone, the
//! cache fails open (a miss, counted).

use std::path::PathBuf;

use aigw_harness::{
    headers, CalloutOutcome, CalloutRequest, Chain, Env, MetricValue, Plugin, PluginSpec, Profile,
    Request, UpstreamRequest, UpstreamResponse,
};
use serde_json::json;

use crate::common::redis::RedisServer;

const CONFIG: &str = r#"{"ttlSeconds": 120,
    "redis": {"cluster": "outbound|6379||redis.default.svc.cluster.local", "timeoutMs": 500}}"#;

fn higress_wasm() -> PathBuf {
    crate::common::higress_wasm("ai_semantic_cache")
}

fn gateway(redis: &RedisServer) -> (Env, Chain) {
    let env = Env::new();
    redis.serve(&env);
    let spec = PluginSpec::new(higress_wasm())
        .config(CONFIG)
        .profile(Profile::Higress);
    let chain = Chain::new(&env)
        .with(spec)
        .unwrap_or_else(|e| panic!("{e}"));
    (env, chain)
}

fn ask(text: &str) -> Request {
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]});
    Request::post_json("/v1/chat/completions", body.to_string())
}

fn model(calls: &mut u32) -> impl FnMut(&UpstreamRequest) -> UpstreamResponse + '_ {
    move |_| {
        *calls += 1;
        let answer = json!({"id": "c1", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": "Paris."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}});
        UpstreamResponse::json(200, answer.to_string())
    }
}

fn counter(env: &Env, name: &str) -> u64 {
    match env.metric(name) {
        Some(MetricValue::Counter(v)) => v,
        _ => 0,
    }
}

#[test]
fn an_answer_stored_by_one_gateway_is_a_hit_on_another() {
    let redis = RedisServer::start();
    let (_env_a, mut a) = gateway(&redis);
    let (env_b, mut b) = gateway(&redis);
    let mut calls = 0;
    let first = a
        .run(
            &ask("What is the capital of France?"),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-aigw-cache").as_deref(), Some("miss"));
    let hit = b
        .run(
            &ask("What is the capital of France?"),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1, "the second gateway answered from Redis");
    assert_eq!(hit.header("x-aigw-cache").as_deref(), Some("hit"));
    assert_eq!(hit.header("x-aigw-cache-tier").as_deref(), Some("exact"));
    let v: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Paris.");
    assert_eq!(
        counter(&env_b, "aigw.semantic_cache.outcome.hit_exact.requests"),
        1
    );
    // One record, expiring with the TTL.
    let keys = redis.command(&["KEYS", "aigw-cache:*"]).unwrap();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let aigw_shared::resp::Value::Bulk(Some(key)) = &keys[0] else {
        panic!("{keys:?}")
    };
    let ttl = redis
        .command(&["PTTL", std::str::from_utf8(key).unwrap()])
        .unwrap()
        .as_int()
        .unwrap();
    assert!(ttl > 100_000 && ttl <= 120_000, "PTTL {ttl}");
    // Another question is not a hit.
    let other = b
        .run(&ask("And of Spain?"), &mut model(&mut calls))
        .unwrap();
    assert_eq!(other.header("x-aigw-cache").as_deref(), Some("miss"));
    assert_eq!(calls, 2);
}

#[test]
fn with_redis_gone_the_cache_fails_open() {
    let redis = RedisServer::start();
    let (env, mut gw) = gateway(&redis);
    drop(redis);
    let mut calls = 0;
    for _ in 0..2 {
        let out = gw
            .run(
                &ask("What is the capital of France?"),
                &mut model(&mut calls),
            )
            .unwrap();
        assert_eq!(out.status, 200);
        assert_eq!(out.header("x-aigw-cache").as_deref(), Some("miss"));
    }
    assert_eq!(calls, 2, "no cache without Redis, and no error either");
    assert!(counter(&env, "aigw.semantic_cache.reason.redis.errors") >= 2);
}

/// The exact tier in Redis and a semantic tier whose embedding service the test answers.
const TWO_TIERS: &str = r#"{"ttlSeconds": 120,
    "redis": {"cluster": "outbound|6379||redis.default.svc.cluster.local"},
    "semantic": {"threshold": 0.9,
        "embedding": {"cluster": "embedder", "authority": "embedder.test", "model": "m"},
        "vectorStore": {"kind": "chroma", "cluster": "chroma", "authority": "chroma.test"}}}"#;

#[test]
fn a_callout_started_from_a_redis_answer_answers_its_own_stream() {
    // Real Redis answers while other streams run: here both streams send their lookup before
    // either is answered. Each answer (a miss) then starts that stream's embedding call, which
    // must come back to that stream, not to the one the VM ran last.
    let redis = RedisServer::start();
    let env = Env::new();
    redis.serve(&env);
    env.hold_redis(true);
    env.on_callout(|_: &CalloutRequest| CalloutOutcome::ok(500, "application/json", "{}"));
    let spec = PluginSpec::new(higress_wasm())
        .config(TWO_TIERS)
        .profile(Profile::Higress);
    let mut p = Plugin::load(&env, spec).unwrap_or_else(|e| panic!("{e}"));
    let vm = p.worker(0);
    let mut streams = Vec::new();
    for question in ["What is the capital of France?", "And of Spain?"] {
        let id = vm.create_stream().unwrap();
        let body = json!({"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": question}]})
        .to_string();
        let h = headers(&[
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gw"),
            ("content-type", "application/json"),
        ]);
        vm.request_headers(id, h, false).unwrap();
        let step = vm.request_body(id, body.as_bytes(), true).unwrap();
        assert!(step.headers().is_none(), "held for the Redis lookup");
        streams.push(id);
    }
    assert!(
        env.callouts().is_empty(),
        "nothing before the lookups are answered"
    );
    vm.release_redis().unwrap();
    assert_eq!(env.redis_calls().len(), 2);
    assert_eq!(env.callouts().len(), 2, "one embedding call per stream");
    for id in streams {
        let step = vm.poll(id).unwrap();
        assert!(
            step.headers().is_some(),
            "stream {id:?} went on to the model after its embedding call failed"
        );
    }
}
