//! ai-proxy: one OpenAI-compatible (and Anthropic-compatible) front door to many LLM providers.
//!
//! OpenAI Chat Completions is the hub ([`hub`]): cross-protocol traffic is translated client ->
//! hub -> backend and back ([`translate`]); same-protocol traffic only has `model`, path and
//! credentials rewritten. [`provider`] knows where each provider lives and how it authenticates,
//! [`models`] routes a model to a provider, [`prepare`] builds the upstream call and [`filter`]
//! drives one request. The proxy-wasm entry point is the one `export_plugin!` line below.

pub mod auto;
pub mod breaker;
pub mod config;
pub mod failover;
pub mod filter;
pub mod hub;
pub mod keys;
pub mod models;
pub mod policy;
pub mod prepare;
pub mod provider;
pub mod state;
pub mod stats;
pub mod token_count;
pub mod translate;

use std::rc::Rc;
use std::time::Duration;

use aigw_shared::config::ConfigError;
use aigw_shared::host::{Capabilities, LogLevel};
use aigw_shared::plugin::{Ctx, FilterEnv, Plugin, PluginConfig, Reply};

use filter::token::{refusal_line, token_request, unix_now};
use state::State;

/// The plugin.
pub struct Proxy;

impl Plugin for Proxy {
    const NAME: &'static str = "ai-proxy";
    type Config = config::Config;
    type State = State;
    /// A root-level token refresh: the index into `State::token_providers`.
    type RootCall = usize;
    type Filter = filter::Filter;

    fn build_config(value: &serde_json::Value) -> Result<Self::Config, ConfigError> {
        config::Config::build(value)
    }

    fn new_state(config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::new(config.all())
    }

    fn new_filter(config: Rc<Self::Config>, state: Rc<State>, env: &FilterEnv) -> Self::Filter {
        filter::Filter::new(config, state, *env)
    }

    /// Workers with token-fetching providers look at their tokens every few seconds.
    fn tick_period(config: &PluginConfig<Self>) -> Option<Duration> {
        let fetches = config
            .all()
            .any(|c| c.providers.iter().any(provider::Provider::fetches_tokens));
        fetches.then_some(state::TOKEN_TICK)
    }

    /// Refresh tokens that are missing or near expiry, from the root (no request involved).
    fn on_tick(_config: &PluginConfig<Self>, state: &State, cx: &mut Ctx<'_, usize>) {
        let now = unix_now(cx.host);
        for (i, tp) in state.token_providers.iter().enumerate() {
            let Some(p) = tp.provider() else { continue };
            let fetched = state.with_tokens(&p.name, |c| p.vendor.token_fetch(c, now, false));
            let need = match fetched {
                Ok(Some(need)) => need,
                Ok(None) => continue,
                Err(e) => {
                    cx.log(LogLevel::Warn, &refusal_line(p, &e));
                    continue;
                }
            };
            let (upstream, request) = token_request(&need);
            if let Err(e) = cx.http_call(&upstream, &request, i) {
                state.with_tokens(&p.name, |c| c.fail(now));
                cx.log(
                    LogLevel::Warn,
                    &format!(
                        "ai-proxy: provider {}: cannot call the token endpoint via cluster {}: {e}",
                        p.name, need.cluster
                    ),
                );
            }
        }
    }

    fn on_root_reply(
        _config: &PluginConfig<Self>,
        state: &State,
        cx: &mut Ctx<'_, usize>,
        call: usize,
        reply: Reply,
    ) {
        let Some(p) = state.token_providers.get(call).and_then(|tp| tp.provider()) else {
            return;
        };
        let now = unix_now(cx.host);
        let (status, body) = match reply.http() {
            Some(r) => (r.status.unwrap_or(0), r.body.as_slice()),
            None => (0, &[][..]),
        };
        let taken = state.with_tokens(&p.name, |c| p.vendor.on_token(c, status, body, now));
        if let Err(e) = taken {
            cx.log(LogLevel::Warn, &refusal_line(p, &e));
        }
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
