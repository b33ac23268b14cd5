//! ai-usage-stats: an observer that accounts every LLM request (tokens, timings, errors, cost)
//! as Envoy metrics named by `aigw_shared::genai`, labelled by provider, model, route and
//! consumer, and writes a JSON audit record per request (log line and filter state).
//!
//! It never pauses a request or a response: request body chunks are copied into a bounded
//! buffer as they pass (the model is read at the end of the request), response chunks are fed
//! to a [`ResponseObserver`](aigw_shared::llm::ResponseObserver) as they pass, and everything is
//! recorded when the response ends (or, if it never does, when the stream is logged).

pub mod config;
pub mod filter;
pub mod price;
pub mod record;
pub mod redact;
pub mod stats;

use std::cell::Cell;
use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::genai::BoundedLabels;
use aigw_shared::host::Capabilities;
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{FilterEnv, Plugin, PluginConfig};

pub use config::Config;
pub use filter::Filter;

use stats::SeriesCache;

/// What one worker keeps: metric ids and series, the bounded label sets, the audit sampler.
#[derive(Debug)]
pub struct State {
    metrics: Metrics,
    series: SeriesCache,
    models: BoundedLabels,
    consumers: BoundedLabels,
    /// The sampler's running sum: a record is made each time it reaches 1.
    sampled: Cell<f64>,
}

impl State {
    /// State for a worker whose global config is `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            metrics: Metrics::new(),
            series: SeriesCache::default(),
            models: BoundedLabels::new(config.max_model_labels),
            consumers: BoundedLabels::new(config.max_consumer_labels),
            sampled: Cell::new(0.0),
        }
    }

    /// Whether this request gets an audit record: exactly `rate` of the requests, spread evenly
    /// (a running sum, no randomness: the same on every host and in tests).
    pub fn sample(&self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let sum = self.sampled.get() + rate;
        if sum >= 1.0 {
            self.sampled.set(sum - 1.0);
            true
        } else {
            self.sampled.set(sum);
            false
        }
    }

    /// The series made so far on this worker.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

/// The plugin.
#[derive(Debug)]
pub struct UsageStats;

impl Plugin for UsageStats {
    const NAME: &'static str = "ai-usage-stats";
    type Config = Config;
    type State = State;
    type RootCall = ();
    type Filter = Filter;

    fn build_config(value: &serde_json::Value) -> Result<Config, ConfigError> {
        Config::from_json(value)
    }

    fn new_state(config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::new(config.global())
    }

    fn new_filter(config: Rc<Config>, state: Rc<State>, env: &FilterEnv) -> Filter {
        Filter::new(config, state, env.capabilities)
    }

    fn host_limitations(_config: &Config, caps: Capabilities) -> Vec<String> {
        let mut out = Vec::new();
        if !caps.clock {
            out.push(
                "ai-usage-stats: this host has no clock: durations, time to first token and \
                 time per output token are not recorded"
                    .to_owned(),
            );
        }
        out
    }
}

aigw_shared::export_plugin!(UsageStats);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_takes_exactly_the_configured_share_spread_evenly() {
        let c = Config::from_json(&serde_json::json!({})).unwrap();
        let s = State::new(&c);
        let picks: Vec<bool> = (0..8).map(|_| s.sample(0.25)).collect();
        assert_eq!(
            picks,
            [false, false, false, true, false, false, false, true]
        );
        assert!((0..5).all(|_| s.sample(1.0)));
        assert!((0..5).all(|_| !s.sample(0.0)));
    }
}
