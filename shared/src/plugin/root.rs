//! [`RootDriver`]: one per VM (worker). Holds the validated config and the plugin's state, runs
//! the tick and root-level callouts, and makes a [`FilterDriver`] per request.

use std::rc::Rc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::host::Host;

use super::{Calls, Ctx, FilterDriver, FilterEnv, Plugin, PluginConfig, Reply, Wants};

/// The root of plugin `P` on one VM.
pub struct RootDriver<P: Plugin> {
    config: Rc<PluginConfig<P>>,
    state: Rc<P::State>,
    env: FilterEnv,
    calls: Calls<P::RootCall>,
}

impl<P: Plugin> RootDriver<P> {
    /// Validate the raw configuration and make the worker's state.
    pub fn configure(raw: &[u8], env: FilterEnv) -> Result<Self, ConfigError> {
        let config = PluginConfig::<P>::parse(raw)?;
        let state = P::new_state(&config, &env);
        Ok(Self {
            config: Rc::new(config),
            state: Rc::new(state),
            env,
            calls: Calls::default(),
        })
    }

    /// Lines to log at WARN about what the plugin will not do on this host.
    pub fn limitations(&self) -> Vec<String> {
        P::host_limitations(self.config.global(), self.env.capabilities)
    }

    /// How often the tick should fire, when the plugin ticks and the host has ticks.
    pub fn tick_period(&self) -> Option<Duration> {
        if !self.env.capabilities.ticks {
            return None;
        }
        P::tick_period(&self.config).filter(|d| !d.is_zero())
    }

    /// The worker's state (for tests).
    pub fn state(&self) -> &Rc<P::State> {
        &self.state
    }

    /// The validated config.
    pub fn config(&self) -> &Rc<PluginConfig<P>> {
        &self.config
    }

    /// The driver for a new request.
    pub fn new_stream(&self) -> FilterDriver<P> {
        FilterDriver::new(Rc::clone(&self.config), Rc::clone(&self.state), self.env)
    }

    /// The configuration was accepted: [`Plugin::on_start`].
    pub fn start(&mut self, host: &dyn Host) {
        let mut wants = Wants::default();
        let mut cx = Ctx::new(host, &mut self.calls, &mut wants, None, P::NAME);
        P::on_start(&self.config, &self.state, &mut cx);
    }

    /// The timer fired.
    pub fn on_tick(&mut self, host: &dyn Host) {
        let mut wants = Wants::default();
        let mut cx = Ctx::new(host, &mut self.calls, &mut wants, None, P::NAME);
        P::on_tick(&self.config, &self.state, &mut cx);
    }

    /// Whether `token` is one of the root's callouts.
    pub fn owns(&self, token: u32) -> bool {
        self.calls.contains(token)
    }

    /// A root-level callout answered.
    pub fn on_reply(&mut self, host: &dyn Host, token: u32, reply: Reply) {
        let call = self.calls.take(token);
        let mut wants = Wants::default();
        let mut cx = Ctx::new(host, &mut self.calls, &mut wants, None, P::NAME);
        match call {
            Some((call, _)) => P::on_root_reply(&self.config, &self.state, &mut cx, call, reply),
            // Not the root's own: a call of a stream that ended before its answer came.
            None => P::on_orphan_reply(&self.config, &self.state, &mut cx, token, reply),
        }
    }
}
