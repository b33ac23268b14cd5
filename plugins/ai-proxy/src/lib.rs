//! ai-proxy: one OpenAI-compatible (and Anthropic-compatible) front door to many LLM providers.
//!
//! OpenAI Chat Completions is the hub ([`hub`]): cross-protocol traffic is translated client ->
//! hub -> backend and back ([`translate`]); same-protocol traffic only has `model`, path and
//! credentials rewritten. [`provider`] knows where each provider lives and how it authenticates,
//! [`models`] routes a model to a provider, [`prepare`] builds the upstream call and [`filter`]
//! drives one request. The proxy-wasm entry point is the one `export_plugin!` line below.

pub mod config;
pub mod filter;
mod filter_response;
pub mod hub;
pub mod models;
pub mod prepare;
pub mod provider;
pub mod stats;
pub mod translate;

use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::Capabilities;
use aigw_shared::plugin::{FilterEnv, Plugin};

/// The plugin.
pub struct Proxy;

impl Plugin for Proxy {
    const NAME: &'static str = "ai-proxy";
    type Config = config::Config;
    type Filter = filter::Filter;

    fn build_config(value: &serde_json::Value) -> Result<Self::Config, ConfigError> {
        config::Config::build(value)
    }

    fn new_filter(config: Rc<Self::Config>, env: &FilterEnv) -> Self::Filter {
        filter::Filter::new(config, *env)
    }

    fn host_limitations(_config: &Self::Config, caps: Capabilities) -> Vec<String> {
        if caps.body_write {
            Vec::new()
        } else {
            vec!["this host cannot rewrite bodies: ai-proxy cannot route or translate here".into()]
        }
    }
}

aigw_shared::export_plugin!(Proxy);
