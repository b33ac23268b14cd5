//! Times ai-prompt-decorator requests through the built module in the harness, to compare builds
//! (e.g. release profiles). Usage:
//! `cargo run --release -p aigw-harness --example decorator_cost -- <dir-with-wasm> [<dir> ...]`.
//! Prints microseconds per request for each module, alternating between them to share the noise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Instant;

use aigw_harness::{Chain, Env, PluginSpec, Request, UpstreamRequest, UpstreamResponse};

const CONFIG: &str = r#"{"prepend":[{"role":"system","content":"You are a concise assistant."}],
  "append":[{"role":"user","content":"Answer in English."}],"injectionGuard":{"enabled":true}}"#;

fn body() -> String {
    let filler = "Tell me about the tides and the moon. ".repeat(20);
    format!(
        r#"{{"model":"gpt-4o-mini","temperature":0.2,"messages":[{{"role":"system","content":"Be kind."}},{{"role":"user","content":"{filler}"}}]}}"#
    )
}

fn main() {
    let dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    assert!(
        !dirs.is_empty(),
        "give one or more directories holding ai_prompt_decorator.wasm"
    );
    let env = Env::new();
    let mut chains: Vec<Chain> = dirs
        .iter()
        .map(|d| {
            Chain::new(&env)
                .with(PluginSpec::new(d.join("ai_prompt_decorator.wasm")).config(CONFIG))
                .unwrap()
        })
        .collect();
    let req = Request::post_json("/v1/chat/completions", body());
    let mut up = |_: &UpstreamRequest| UpstreamResponse::json(200, "{}");
    let mut totals = vec![0u128; chains.len()];
    let rounds = 20;
    let per_round = 200;
    for _ in 0..rounds {
        for (i, chain) in chains.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..per_round {
                chain.run(&req, &mut up).unwrap();
            }
            totals[i] += t.elapsed().as_nanos();
        }
    }
    for (d, total) in dirs.iter().zip(totals) {
        let us = total as f64 / f64::from(rounds * per_round) / 1000.0;
        println!("{us:8.2} µs/request  {}", d.display());
    }
}
