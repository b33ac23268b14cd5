//! ai-prompt-decorator: prepends and appends messages, fills named prompt templates, and wraps
//! user input against prompt injection, for OpenAI chat and Anthropic messages requests.
//!
//! The proxy-wasm entry point is the one `export_plugin!` line below; everything else is
//! host-independent and tested natively.

pub mod config;
pub mod decorate;
pub mod filter;
pub mod guard;
pub mod template;

use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::Capabilities;
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{FilterEnv, Plugin, PluginConfig};

/// The plugin.
pub struct PromptDecorator;

/// What one worker keeps across requests: the metric handles.
#[derive(Debug, Default)]
pub struct State {
    /// Metric ids by name.
    pub metrics: Metrics,
}

impl Plugin for PromptDecorator {
    const NAME: &'static str = "ai-prompt-decorator";
    type Config = config::Config;
    type State = State;
    type RootCall = ();
    type Filter = filter::Filter;

    fn build_config(value: &serde_json::Value) -> Result<Self::Config, ConfigError> {
        config::Config::build(value)
    }

    fn new_state(_config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::default()
    }

    fn new_filter(config: Rc<Self::Config>, state: Rc<State>, env: &FilterEnv) -> Self::Filter {
        filter::Filter::new(config, state, *env)
    }

    fn host_limitations(_config: &Self::Config, caps: Capabilities) -> Vec<String> {
        if caps.body_write {
            Vec::new()
        } else {
            vec![
                "this host cannot rewrite request bodies, so requests pass through undecorated"
                    .into(),
            ]
        }
    }
}

aigw_shared::export_plugin!(PromptDecorator);
