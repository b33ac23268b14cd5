//! ai-token-ratelimit: token, cost and request limits that hold under concurrency.
//!
//! Before a request is forwarded it **reserves** its estimate (estimated prompt tokens plus the
//! output it may produce: its own `max_tokens`, else a configured default) in a token bucket per
//! rule and key value, and is refused (429 in the caller's protocol) when that does not fit.
//! After the response (JSON or stream, usage from the
//! [`ResponseObserver`](aigw_shared::llm::ResponseObserver), estimated when absent) the
//! reservation is **reconciled** with the real usage; a request that failed or was cancelled
//! before producing anything gives its reservation back. The buckets live in proxy-wasm shared
//! data with compare-and-swap, so every worker of an Envoy shares them.
//!
//! Modules: [`bucket`] (the arithmetic), [`measure`] (what is counted), [`keys`] (key sources and
//! patterns), [`config`], [`limiter`] (reserve and settle over shared data), [`headers`], and
//! [`filter`] (the per-request state machine).

pub mod bucket;
pub mod config;
pub mod filter;
pub mod headers;
pub mod keys;
pub mod limiter;
pub mod measure;
pub mod orphans;
pub mod quota;
pub mod redis;
pub mod rls;

use std::cell::Cell;
use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::{Capabilities, Host, MetricKind};
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{Ctx, FilterEnv, Plugin, PluginConfig, Reply};

pub use config::Config;
pub use filter::Filter;

/// The fixed metrics, in [`METRIC_NAMES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Requests admitted (a reservation was taken).
    Allowed,
    /// Requests refused with a 429.
    Refused,
    /// Requests shadow mode would have refused (forwarded anyway).
    ShadowRefused,
    /// Requests the counters could not decide (failure mode applied).
    BackendError,
    /// Tokens reserved before forwarding.
    ReservedTokens,
    /// Tokens charged after the response (real usage, or the estimate).
    ChargedTokens,
    /// Requests whose charge was estimated (the answer carried no usage).
    UsageEstimated,
}

/// Names of the fixed metrics (Envoy shows them as `wasmcustom.<name>`).
pub const METRIC_NAMES: [&str; 7] = [
    "aigw.ai_token_ratelimit.outcome.allowed.requests_total",
    "aigw.ai_token_ratelimit.outcome.refused.requests_total",
    "aigw.ai_token_ratelimit.outcome.shadow_refused.requests_total",
    "aigw.ai_token_ratelimit.outcome.backend_error.requests_total",
    "aigw.ai_token_ratelimit.kind.reserved.tokens_total",
    "aigw.ai_token_ratelimit.kind.charged.tokens_total",
    "aigw.ai_token_ratelimit.usage_estimated_total",
];

/// What one worker keeps: metric ids, defined on first use and then reused.
#[derive(Debug, Default)]
pub struct State {
    ids: [Cell<Option<u32>>; 7],
    /// Per-rule metrics (names made at configure time).
    rules: Metrics,
    /// `redis` backend: reservations of streams that ended before the script answered.
    pub orphans: orphans::Orphans,
}

impl State {
    /// Add `delta` to a fixed counter.
    pub fn count(&self, host: &dyn Host, metric: Metric, delta: u64) {
        if delta == 0 {
            return;
        }
        let i = metric as usize;
        let (Some(slot), Some(name)) = (self.ids.get(i), METRIC_NAMES.get(i)) else {
            return;
        };
        let id = match slot.get() {
            Some(id) => id,
            None => match host.define_metric(MetricKind::Counter, name) {
                Ok(id) => {
                    slot.set(Some(id));
                    id
                }
                Err(_) => return,
            },
        };
        let _ = host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
    }

    /// Add one to a rule's refusal counter.
    pub fn count_rule(&self, host: &dyn Host, name: &str) {
        self.rules.count(host, name, 1);
    }
}

/// The plugin.
#[derive(Debug)]
pub struct TokenRateLimit;

impl Plugin for TokenRateLimit {
    const NAME: &'static str = "ai-token-ratelimit";
    type Config = Config;
    type State = State;
    type RootCall = ();
    type Filter = Filter;

    fn build_config(value: &serde_json::Value) -> Result<Config, ConfigError> {
        Config::from_json(value)
    }

    fn new_state(_config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::default()
    }

    fn new_filter(config: Rc<Config>, state: Rc<State>, env: &FilterEnv) -> Filter {
        Filter::new(config, state, env.capabilities)
    }

    fn on_start(config: &PluginConfig<Self>, _state: &State, cx: &mut Ctx<'_, ()>) {
        // One connection per distinct Redis (rules may differ per route).
        aigw_shared::redis::connect(
            cx.host,
            Self::NAME,
            config.all().filter_map(|c| c.redis.as_ref()),
        );
    }

    fn on_orphan_reply(
        _config: &PluginConfig<Self>,
        state: &State,
        cx: &mut Ctx<'_, ()>,
        token: u32,
        reply: Reply,
    ) {
        state.orphans.answered(cx, token, &reply);
    }

    fn host_limitations(config: &Config, caps: Capabilities) -> Vec<String> {
        let available = match config.backend {
            config::Backend::Local => caps.shared_data && caps.clock,
            config::Backend::Rls => caps.grpc,
            config::Backend::Redis => caps.redis,
        };
        if config.rules.is_empty() || available {
            return Vec::new();
        }
        let what = match config.failure_mode {
            config::FailureMode::Open => "every request is forwarded unlimited",
            config::FailureMode::Closed => "every limited request is answered 503",
        };
        vec![format!(
            "ai-token-ratelimit: this host has no shared data or no clock (local backend), no \
             gRPC (rls backend) or no Redis calls (redis backend: the Higress build), so nothing \
             can be counted: {what} (failureMode)"
        )]
    }
}

aigw_shared::export_plugin!(TokenRateLimit);
