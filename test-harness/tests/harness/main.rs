//! Every harness test in one binary: one link of wasmtime instead of one per file, and one
//! compiled-module cache for all of them. Each module is one topic; see the crate README.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

mod abi_basics;
mod ai_content_moderation;
mod ai_load_balancer;
mod ai_prompt_decorator;
mod ai_proxy;
mod ai_proxy_auto;
mod ai_proxy_bedrock;
mod ai_proxy_cases;
mod ai_proxy_fallback;
mod ai_proxy_keys;
mod ai_proxy_vertex;
mod ai_semantic_cache;
mod ai_semantic_cache_redis;
mod ai_token_ratelimit;
mod ai_token_ratelimit_redis;
mod ai_usage_stats;
mod chain;
mod example_plugin;
mod failures;
mod higress_build;
mod higress_configs;
mod hostile_input;
mod phases;
mod profiles;
mod trailers;
mod watchdog;
mod workers;
