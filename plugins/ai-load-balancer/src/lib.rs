//! ai-load-balancer: picks the model-server endpoint for each request inside the gateway, from
//! prefix-cache affinity, load reports the servers send in their response headers (ORCA
//! `endpoint-load-metrics`), requests in flight, sessions, LoRA adapters and hardware weights.
//!
//! The last filter before the router: it writes the chosen `ip:port` into a request header that an
//! Envoy `ORIGINAL_DST` cluster (`use_http_header`) or the `override_host` load-balancing policy
//! reads. What the workers learn is shared through proxy-wasm shared data.
//!
//! Modules: [`config`], [`orca`] (load reports), [`prefix`] (chained block hashes), [`store`]
//! (shared records and tables), [`picker`] (filters, scorers, the pick) and [`filter`].

pub mod config;
pub mod filter;
pub mod orca;
pub mod picker;
pub mod prefix;
pub mod store;

use std::cell::Cell;
use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::{Capabilities, Host, MetricKind};
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{FilterEnv, Plugin, PluginConfig};

pub use config::Config;
pub use filter::Filter;

/// The fixed metrics, in [`METRIC_NAMES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Routed to the endpoint holding the longest prefix.
    PrefixPick,
    /// Routed to the endpoint the session is bound to.
    SessionPick,
    /// Routed by load, in-flight and hardware alone.
    LoadPick,
    /// Answered 429: every healthy endpoint saturated.
    Shed,
    /// Passed without a pick (the header could not be written).
    Unrouted,
    /// Routed without prefix hashing: the body was over `maxRequestBodyBytes`.
    Unhashed,
    /// Histogram: share of the prompt's blocks the chosen endpoint held, in percent.
    PrefixMatchPercent,
}

/// Names of the fixed metrics (Envoy shows them as `wasmcustom.<name>`).
pub const METRIC_NAMES: [&str; 7] = [
    "aigw.ai_load_balancer.decision.prefix.requests_total",
    "aigw.ai_load_balancer.decision.session.requests_total",
    "aigw.ai_load_balancer.decision.load.requests_total",
    "aigw.ai_load_balancer.outcome.shed.requests_total",
    "aigw.ai_load_balancer.outcome.unrouted.requests_total",
    "aigw.ai_load_balancer.outcome.unhashed.requests_total",
    "aigw.ai_load_balancer.prefix_match_percent",
];

impl From<picker::Reason> for Metric {
    fn from(r: picker::Reason) -> Self {
        match r {
            picker::Reason::Prefix => Self::PrefixPick,
            picker::Reason::Session => Self::SessionPick,
            picker::Reason::Load => Self::LoadPick,
        }
    }
}

/// What one worker keeps: metric ids and the tie-breaking random state.
#[derive(Debug, Default)]
pub struct State {
    ids: [Cell<Option<u32>>; 7],
    endpoints: Metrics,
    rng: Cell<u64>,
}

impl State {
    fn id(&self, host: &dyn Host, metric: Metric, kind: MetricKind) -> Option<u32> {
        let i = metric as usize;
        let (slot, name) = (self.ids.get(i)?, METRIC_NAMES.get(i)?);
        if let Some(id) = slot.get() {
            return Some(id);
        }
        let id = host.define_metric(kind, name).ok()?;
        slot.set(Some(id));
        Some(id)
    }

    /// Add one to a fixed counter.
    pub fn count(&self, host: &dyn Host, metric: Metric) {
        if let Some(id) = self.id(host, metric, MetricKind::Counter) {
            let _ = host.increment_metric(id, 1);
        }
    }

    /// Record a histogram sample.
    pub fn observe(&self, host: &dyn Host, metric: Metric, value: u64) {
        if let Some(id) = self.id(host, metric, MetricKind::Histogram) {
            let _ = host.record_metric(id, value);
        }
    }

    /// Add one to a per-endpoint counter (its name made at configure time).
    pub fn count_endpoint(&self, host: &dyn Host, name: &str) {
        self.endpoints.count(host, name, 1);
    }

    /// The next tie-breaking draw (xorshift, seeded from the clock on first use).
    pub fn draw(&self, now: u64) -> u64 {
        let mut x = self.rng.get();
        if x == 0 {
            x = prefix::mix(now | 1);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
}

/// The plugin.
#[derive(Debug)]
pub struct LoadBalancer;

impl Plugin for LoadBalancer {
    const NAME: &'static str = "ai-load-balancer";
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

    fn host_limitations(config: &Config, caps: Capabilities) -> Vec<String> {
        if !config.is_active() || caps.shared_data {
            return Vec::new();
        }
        vec![
            "ai-load-balancer: this host has no shared data (and no endpoint override): \
              requests pass unrouted, to the route's own upstream"
                .to_owned(),
        ]
    }
}

aigw_shared::export_plugin!(LoadBalancer);
