//! The plugin contract: a [`Plugin`] builds its config once, then makes one [`HttpFilter`] per request.
//!
//! [`FilterDriver`] is the host-independent glue between the host's callbacks and a plugin: it picks
//! the per-route config (Higress `_rules_`) when the request headers arrive, creates the filter, and
//! forwards every later callback to it. The proxy-wasm adapter and the mock host both drive plugins
//! through it, so the native tests exercise exactly the code that runs in Envoy.

use std::rc::Rc;

use crate::config::ConfigError;
use crate::host::{Action, CallResponse, Capabilities, Host};
use crate::rules::{RouteInfo, RuleSet};

/// A plugin: a name, a validated config, and a filter per request.
pub trait Plugin: 'static {
    /// The plugin's name as it appears in logs, metrics and the Envoy `root_id`.
    const NAME: &'static str;
    /// The validated, compiled configuration (regexes, templates… built once).
    type Config: 'static;
    /// The per-request state machine.
    type Filter: HttpFilter;

    /// Validate one configuration object (the global config, or one `_rules_` entry merged over it).
    fn build_config(value: &serde_json::Value) -> Result<Self::Config, ConfigError>;

    /// Make the filter for one request, with the config chosen for its route.
    fn new_filter(config: Rc<Self::Config>, env: &FilterEnv) -> Self::Filter;

    /// Called once after configuration with the host's capabilities, so a plugin can say in the
    /// log what it will not do on this host. Returns lines to log at WARN.
    fn host_limitations(_config: &Self::Config, _caps: Capabilities) -> Vec<String> {
        Vec::new()
    }
}

/// Facts about the running host handed to each new filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterEnv {
    /// What the host supports.
    pub capabilities: Capabilities,
}

/// The per-request callbacks. Every method has a pass-through default.
pub trait HttpFilter {
    /// Request headers arrived. `end_of_stream` is true when there is no body.
    fn on_request_headers(&mut self, _host: &dyn Host, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// A request body chunk arrived; `body_size` is what the host holds now (all of it when the
    /// filter returned [`Action::Pause`] before).
    fn on_request_body(
        &mut self,
        _host: &dyn Host,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// Response headers arrived.
    fn on_response_headers(&mut self, _host: &dyn Host, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// A response body chunk arrived.
    fn on_response_body(
        &mut self,
        _host: &dyn Host,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// An HTTP callout this filter started has finished (or failed: `response.status` is `None`).
    fn on_http_call_response(&mut self, _host: &dyn Host, _token: u32, _response: CallResponse) {}
    /// The stream is complete; last chance to record metrics and audit lines.
    fn on_log(&mut self, _host: &dyn Host) {}
}

/// The configuration of one plugin instance: the global config plus per-route rules.
pub struct PluginConfig<P: Plugin> {
    rules: RuleSet<P::Config>,
}

impl<P: Plugin> PluginConfig<P> {
    /// Parse and validate the raw configuration bytes (JSON; empty means `{}`).
    pub fn parse(raw: &[u8]) -> Result<Self, ConfigError> {
        let rules = RuleSet::parse(raw, P::build_config)?;
        Ok(Self { rules })
    }

    /// The config for a request's route.
    pub fn select(&self, route: &RouteInfo) -> &Rc<P::Config> {
        self.rules.select(route)
    }

    /// True when there are no `_rules_`, so no route lookup is needed per request.
    pub fn is_global_only(&self) -> bool {
        self.rules.is_global_only()
    }

    /// The global config.
    pub fn global(&self) -> &Rc<P::Config> {
        self.rules.global()
    }
}

/// Drives one request through a plugin: chooses the config, creates the filter, forwards callbacks.
pub struct FilterDriver<P: Plugin> {
    config: Rc<PluginConfig<P>>,
    env: FilterEnv,
    filter: Option<P::Filter>,
}

impl<P: Plugin> FilterDriver<P> {
    /// A driver for a new request.
    pub fn new(config: Rc<PluginConfig<P>>, env: FilterEnv) -> Self {
        Self {
            config,
            env,
            filter: None,
        }
    }

    /// Request headers: pick the route's config and create the filter.
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let chosen = if self.config.is_global_only() {
            Rc::clone(self.config.global())
        } else {
            Rc::clone(self.config.select(&route_info(host)))
        };
        let filter = self.filter.insert(P::new_filter(chosen, &self.env));
        filter.on_request_headers(host, end_of_stream)
    }

    /// Request body chunk.
    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        match self.filter.as_mut() {
            Some(f) => f.on_request_body(host, body_size, end_of_stream),
            None => Action::Continue,
        }
    }

    /// Response headers.
    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        match self.filter.as_mut() {
            Some(f) => f.on_response_headers(host, end_of_stream),
            None => Action::Continue,
        }
    }

    /// Response body chunk.
    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        match self.filter.as_mut() {
            Some(f) => f.on_response_body(host, body_size, end_of_stream),
            None => Action::Continue,
        }
    }

    /// A callout finished.
    pub fn on_http_call_response(&mut self, host: &dyn Host, token: u32, response: CallResponse) {
        if let Some(f) = self.filter.as_mut() {
            f.on_http_call_response(host, token, response);
        }
    }

    /// The stream is complete.
    pub fn on_log(&mut self, host: &dyn Host) {
        if let Some(f) = self.filter.as_mut() {
            f.on_log(host);
        }
    }
}

/// What the rule matcher needs to know about the request's route.
fn route_info(host: &dyn Host) -> RouteInfo {
    let authority = host
        .request_header(":authority")
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok());
    RouteInfo {
        route_name: host.property_str(&["route_name"]),
        host: authority,
        service: host.property_str(&["cluster_name"]),
    }
}
