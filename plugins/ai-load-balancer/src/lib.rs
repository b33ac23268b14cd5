//! ai-load-balancer: picks the model-server endpoint for each request inside the gateway, from
//! prefix-cache affinity, load reports the servers send in their response headers (ORCA
//! `endpoint-load-metrics`), requests in flight, sessions, LoRA adapters and hardware weights.
//!
//! The last filter before the router: it writes the chosen `ip:port` into a request header that an
//! Envoy `ORIGINAL_DST` cluster (`use_http_header`) or the `override_host` load-balancing policy
//! reads. What the workers learn is shared through proxy-wasm shared data.
//!
//! Modules: [`config`], [`orca`] (load reports), [`prefix`] (chained block hashes), [`store`]
//! (shared records and tables), [`fleet`] (the worker's cached view of the endpoint records and
//! its batched writes), [`upstream_hosts`] (Higress's health and scraped metrics of the routed
//! cluster), [`picker`] (filters, scorers, the pick) and [`filter`].

pub mod config;
pub mod filter;
pub mod fleet;
pub mod orca;
pub mod picker;
pub mod prefix;
pub mod store;
pub mod upstream_hosts;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aigw_shared::config::ConfigError;
use aigw_shared::host::{Capabilities, Host, MetricKind};
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{Ctx, FilterEnv, Plugin, PluginConfig};

pub use config::Config;
pub use filter::Filter;
pub use fleet::Fleet;

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
    /// Prompt blocks of routed requests the chosen endpoint held.
    MatchedBlocks,
    /// Prompt blocks of routed requests (hashed ones).
    PromptBlocks,
}

/// Names of the fixed metrics (Envoy shows them as `wasmcustom.<name>`).
pub const METRIC_NAMES: [&str; 8] = [
    "aigw.ai_load_balancer.decision.prefix.requests_total",
    "aigw.ai_load_balancer.decision.session.requests_total",
    "aigw.ai_load_balancer.decision.load.requests_total",
    "aigw.ai_load_balancer.outcome.shed.requests_total",
    "aigw.ai_load_balancer.outcome.unrouted.requests_total",
    "aigw.ai_load_balancer.outcome.unhashed.requests_total",
    "aigw.ai_load_balancer.prefix.matched_blocks_total",
    "aigw.ai_load_balancer.prefix.prompt_blocks_total",
];

/// The counters added to on the tick rather than per request.
const BATCHED: [Metric; 5] = [
    Metric::PrefixPick,
    Metric::SessionPick,
    Metric::LoadPick,
    Metric::MatchedBlocks,
    Metric::PromptBlocks,
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

/// What one worker keeps: metric ids, decision counts not yet added to their counters, the
/// tie-breaking random state and its view of the endpoints ([`Fleet`]).
#[derive(Debug, Default)]
pub struct State {
    ids: [Cell<Option<u32>>; 8],
    /// Per [`BATCHED`] metric (indexed as `ids`), what was counted since the last flush.
    pending: [Cell<u64>; 8],
    rng: Cell<u64>,
    /// When the counters were last flushed.
    counted_at: Cell<u64>,
    /// The endpoints as this worker sees them.
    pub fleet: Fleet,
    /// Ids of the per-endpoint metrics (named from the configuration).
    pub endpoint_metrics: Metrics,
    /// Each pool's last list of upstream hosts from Higress.
    pub host_views: upstream_hosts::HostViews,
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

    /// Add one to a fixed counter now.
    pub fn count(&self, host: &dyn Host, metric: Metric) {
        if let Some(id) = self.id(host, metric, MetricKind::Counter) {
            let _ = host.increment_metric(id, 1);
        }
    }

    /// Count a routing decision and the prompt blocks the pick held (added to their counters on
    /// the next tick: no host call here).
    pub fn count_decision(&self, reason: picker::Reason, matched: usize, prompt: usize) {
        for (m, n) in [
            (Metric::from(reason), 1),
            (Metric::MatchedBlocks, matched as u64),
            (Metric::PromptBlocks, prompt as u64),
        ] {
            if let Some(c) = self.pending.get(m as usize) {
                c.set(c.get().saturating_add(n));
            }
        }
    }

    /// Add what was counted since the last flush to the counters, and publish what the worker
    /// has not yet (the tick).
    pub fn flush(&self, host: &dyn Host, now: u64) {
        self.fleet.on_tick(host, now);
        // Counters at most every `fleet::TICK` (the tick itself may be as short as
        // `fleet::MIN_TICK`).
        let every = u64::try_from(fleet::TICK.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.counted_at.get()) < every {
            return;
        }
        self.counted_at.set(now);
        self.fleet.flush_picks(host);
        for m in BATCHED {
            let n = self.pending.get(m as usize).map_or(0, |c| c.replace(0));
            if n > 0 {
                if let Some(id) = self.id(host, m, MetricKind::Counter) {
                    let _ = host.increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
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

    fn new_state(config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State {
            fleet: Fleet::new(config.all()),
            ..State::default()
        }
    }

    fn new_filter(config: Rc<Config>, state: Rc<State>, env: &FilterEnv) -> Filter {
        Filter::new(config, state, env.capabilities)
    }

    fn tick_period(config: &PluginConfig<Self>) -> Option<Duration> {
        fleet::tick_period(config.all())
    }

    fn on_tick(config: &PluginConfig<Self>, state: &State, cx: &mut Ctx<'_, ()>) {
        let _ = config;
        if let Some(now) = cx.now_nanos() {
            state.flush(cx.host, now);
        }
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
