//! Native guest CPU of the routing decisions per request: the `auto` alias' rules over a ~1 KB
//! chat request (reading the request's facts and matching seven rules; one rule with a real
//! regular expression), next to `prepare` of the same request for a plain model (the work every
//! routed request does anyway).
//!
//! `cargo run --release -p ai-proxy --example routing_cost`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Instant;

use ai_proxy::config::Config;
use ai_proxy::prepare::{prepare, Incoming};
use ai_proxy::state::State;
use aigw_shared::llm::Api;

const ROUNDS: u32 = 20_000;

fn config() -> Config {
    Config::build(&serde_json::json!({
        "providers": [{"name": "oai", "type": "openai", "apiKeys": ["sk-o"]}],
        "models": [{"match": "*", "provider": "oai"}],
        "autoModels": {"auto": {"rules": [
            {"when": {"hasImages": true}, "model": "vision"},
            {"when": {"hasCode": true}, "model": "coder"},
            {"when": {"hasTools": true}, "model": "tools"},
            {"when": {"minPromptTokens": 2000}, "model": "long"},
            {"when": {"keywords": ["prove", "derive"]}, "model": "reasoner"},
            {"when": {"regex": "(?i)step by step"}, "model": "reasoner"},
            {"when": {"minTurns": 6}, "model": "chatty"}
        ], "default": "small"}}
    }))
    .unwrap()
}

fn body(model: &str) -> Vec<u8> {
    let text =
        "Please summarise the following notes about the quarterly planning meeting. ".repeat(12);
    serde_json::to_vec(&serde_json::json!({"model": model, "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": text}]}))
    .unwrap()
}

fn per_request(label: &str, mut f: impl FnMut()) {
    for _ in 0..1000 {
        f();
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    let ns = start.elapsed().as_nanos() / u128::from(ROUNDS);
    println!("{label}: {:.2} µs per request", ns as f64 / 1000.0);
}

fn main() {
    let config = config();
    let state = State::default();
    let inc = Incoming {
        api: Api::ChatCompletions,
        suffix: "/chat/completions".into(),
        json: true,
        client_key: None,
        now_ns: 0,
    };
    let plain = body("gpt-4o-mini");
    let auto = body("auto");
    println!("request body: {} bytes", plain.len());
    let (_, router) = &config.auto[0];
    per_request("auto rules alone (facts + 7 rules)", || {
        black_box(
            router
                .choose(Api::ChatCompletions, black_box(&auto))
                .unwrap(),
        );
    });
    let facts_only = Config::build(&serde_json::json!({
        "providers": [{"name": "oai", "type": "openai"}],
        "models": [{"match": "*", "provider": "oai"}],
        "autoModels": {"auto": {"rules": [{"when": {"hasCode": true}, "model": "coder"}],
            "default": "small"}}
    }))
    .unwrap();
    let (_, light) = &facts_only.auto[0];
    per_request("auto, one hasCode rule", || {
        black_box(
            light
                .choose(Api::ChatCompletions, black_box(&auto))
                .unwrap(),
        );
    });
    let with_regex = Config::build(&serde_json::json!({
        "providers": [{"name": "oai", "type": "openai"}],
        "models": [{"match": "*", "provider": "oai"}],
        "autoModels": {"auto": {"rules": [{"when": {"regex": "(?i)step\\s+by\\s+step"}, "model": "r"}],
            "default": "small"}}
    }))
    .unwrap();
    let (_, regex) = &with_regex.auto[0];
    per_request(
        "auto, one regex rule (regex-lite, not a plain literal)",
        || {
            black_box(
                regex
                    .choose(Api::ChatCompletions, black_box(&auto))
                    .unwrap(),
            );
        },
    );
    let facts = ai_proxy::auto::read_facts(Api::ChatCompletions, &auto, true).unwrap();
    per_request("auto, the 7 rules over facts already read", || {
        black_box(router.choose_for(black_box(&facts)));
    });
    per_request("prepare, plain model", || {
        black_box(
            prepare(&config, &state, &inc, black_box(&plain), &|_| {
                Default::default()
            })
            .unwrap(),
        );
    });
    per_request("prepare, auto model", || {
        black_box(
            prepare(&config, &state, &inc, black_box(&auto), &|_| {
                Default::default()
            })
            .unwrap(),
        );
    });
}
