//! The plugin contract: a service object with per-worker state, a filter per request with phase
//! hooks that pass through by default, callouts as values, and whole-body reads done by the driver.
//!
//! - [`Plugin`]: validates its config once ([`Plugin::build_config`], per `_rules_` entry too),
//!   makes one [`Plugin::State`] per VM (worker) that every request of that worker shares (metric
//!   handles, key cursors, token caches, local windows), may tick ([`Plugin::tick_period`],
//!   [`Plugin::on_tick`]) and make root-level callouts whose answers reach the state
//!   ([`Plugin::on_root_reply`]), and makes one [`HttpFilter`] per request.
//! - [`HttpFilter`]: per-request hooks. Each gets a [`Ctx`]: the host, plus the means to start
//!   callouts ([`Ctx::http_call`], [`Ctx::grpc_call`]) and to ask for a whole body
//!   ([`Ctx::read_whole_request`], [`Ctx::read_whole_response`]).
//! - [`FilterDriver`] / [`RootDriver`]: the host-independent glue. The proxy-wasm adapter and the
//!   mock host both drive plugins through them, so native tests run exactly the code that runs in
//!   Envoy. The driver pauses for whole bodies, checks `content-length`, answers 413 in the
//!   caller's protocol, treats trailers as the end of a body, resumes a stream when its callouts
//!   say so, and cancels a stream's pending callouts when it ends.
//!
//! The config is immutable; anything that changes at run time lives in the state.

pub mod budget;
mod calls;
mod driver;
mod root;
pub mod watchdog;

use std::rc::Rc;
use std::time::Duration;

pub use calls::{Calls, Next, Reply};
pub use driver::FilterDriver;
pub use root::RootDriver;

use crate::callout::{CalloutRequest, Upstream};
use crate::config::ConfigError;
use crate::error::{ClientError, ClientProtocol};
use crate::host::{Action, Capabilities, Direction, Host, HostError, LogLevel};
use crate::rules::{RouteInfo, RuleSet};

/// A plugin: a name, a validated config, per-worker state and a filter per request.
pub trait Plugin: Sized + 'static {
    /// The plugin's name as it appears in logs, metrics and the Envoy `root_id`.
    const NAME: &'static str;
    /// The validated, compiled configuration (regexes, templates… built once). Immutable.
    type Config: 'static;
    /// What one VM (worker) keeps across requests; every filter of that worker shares it.
    type State: 'static;
    /// What a root-level callout is for (use `()` when the plugin makes none).
    type RootCall: 'static;
    /// The per-request state machine.
    type Filter: HttpFilter;

    /// Validate one configuration object (the global config, or one `_rules_` entry merged over it).
    fn build_config(value: &serde_json::Value) -> Result<Self::Config, ConfigError>;

    /// Make the worker's state once, after the configuration was accepted.
    fn new_state(config: &PluginConfig<Self>, env: &FilterEnv) -> Self::State;

    /// Make the filter for one request, with the config chosen for its route.
    fn new_filter(
        config: Rc<Self::Config>,
        state: Rc<Self::State>,
        env: &FilterEnv,
    ) -> Self::Filter;

    /// Called once after configuration with the host's capabilities, so a plugin can say in the
    /// log what it will not do on this host. Returns lines to log at WARN.
    fn host_limitations(_config: &Self::Config, _caps: Capabilities) -> Vec<String> {
        Vec::new()
    }

    /// How often [`Plugin::on_tick`] runs; `None` (the default) means never.
    fn tick_period(_config: &PluginConfig<Self>) -> Option<Duration> {
        None
    }

    /// Once per VM, at the root, right after the configuration was accepted: connect to what the
    /// streams will use (Higress: `cx.redis_init`). Failures are the plugin's to log.
    fn on_start(
        _config: &PluginConfig<Self>,
        _state: &Self::State,
        _cx: &mut Ctx<'_, Self::RootCall>,
    ) {
    }

    /// The timer fired (on the root context: no request headers or bodies here).
    fn on_tick(
        _config: &PluginConfig<Self>,
        _state: &Self::State,
        _cx: &mut Ctx<'_, Self::RootCall>,
    ) {
    }

    /// A root-level callout answered.
    fn on_root_reply(
        _config: &PluginConfig<Self>,
        _state: &Self::State,
        _cx: &mut Ctx<'_, Self::RootCall>,
        _call: Self::RootCall,
        _reply: Reply,
    ) {
    }

    /// The answer to call `token` of a stream that has ended (Higress hands Redis answers to
    /// the root; one whose stream is gone comes here). A plugin that must undo what the call
    /// did, had it succeeded, remembers the token when the call is cancelled
    /// ([`HttpFilter::on_call_cancelled`]) and acts here.
    fn on_orphan_reply(
        _config: &PluginConfig<Self>,
        _state: &Self::State,
        _cx: &mut Ctx<'_, Self::RootCall>,
        _token: u32,
        _reply: Reply,
    ) {
    }
}

/// Facts about the running host handed to the state and to each new filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterEnv {
    /// What the host supports.
    pub capabilities: Capabilities,
}

/// What a request or response body is read for in whole-body mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeBody {
    /// Bodies above this many bytes are not read.
    pub max_bytes: usize,
    /// What happens to a body over the limit.
    pub oversize: Oversize,
    /// Keep the headers until the body was handled (to rewrite them from what the body says).
    pub hold_headers: bool,
    /// The body may change length: the driver drops `content-length` once it has checked it
    /// (Envoy then re-frames the body).
    pub rewrites: bool,
    /// The filter already read the headers: `Some(declared content-length)` spares the driver
    /// its own read (`Some(None)`: no length was declared).
    pub declared: Option<Option<usize>>,
}

impl WholeBody {
    /// Read bodies up to `max_bytes`; larger ones are refused (413 for requests, 502 for
    /// responses, in the caller's protocol); headers go on at once.
    pub fn up_to(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            oversize: Oversize::Reject,
            hold_headers: false,
            rewrites: false,
            declared: None,
        }
    }

    /// The `content-length` the filter found in the headers it already read (`None`: none), so
    /// the driver need not read it again.
    pub fn declared_length(mut self, length: Option<usize>) -> Self {
        self.declared = Some(length);
        self
    }

    /// The filter may rewrite the body to another length.
    pub fn rewriting(mut self) -> Self {
        self.rewrites = true;
        self
    }

    /// Let a body over the limit pass unread instead of refusing it.
    pub fn pass_oversize(mut self) -> Self {
        self.oversize = Oversize::PassThrough;
        self
    }

    /// Hold the headers until the whole body was handled.
    pub fn holding_headers(mut self) -> Self {
        self.hold_headers = true;
        self
    }
}

/// What happens to a body over the whole-body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Answer the client with an error in its protocol.
    Reject,
    /// Let it through unread.
    PassThrough,
}

/// Whole-body wishes a filter made during the current callback.
#[derive(Debug, Default)]
pub(crate) struct Wants {
    pub(crate) request: Option<WholeBody>,
    pub(crate) response: Option<WholeBody>,
}

/// What a hook may use: the host, callouts, and whole-body reads.
///
/// Dereferences to the host, so `cx.request_header(..)` works; `cx.host` is the `&dyn Host` for
/// helpers that take one.
pub struct Ctx<'a, C> {
    /// The host.
    pub host: &'a dyn Host,
    calls: &'a mut Calls<C>,
    wants: &'a mut Wants,
    direction: Option<Direction>,
    plugin: &'static str,
}

impl<'a, C> std::ops::Deref for Ctx<'a, C> {
    type Target = dyn Host + 'a;
    fn deref(&self) -> &Self::Target {
        self.host
    }
}

impl<'a, C> Ctx<'a, C> {
    pub(crate) fn new(
        host: &'a dyn Host,
        calls: &'a mut Calls<C>,
        wants: &'a mut Wants,
        direction: Option<Direction>,
        plugin: &'static str,
    ) -> Self {
        Self {
            host,
            calls,
            wants,
            direction,
            plugin,
        }
    }

    /// Start an HTTP callout for `call`. The stream keeps the direction of the current hook
    /// paused until the answer reaches [`HttpFilter::on_reply`] (return [`Action::Pause`] from
    /// the hook); at the root there is no stream.
    pub fn http_call(
        &mut self,
        upstream: &Upstream,
        request: &CalloutRequest<'_>,
        call: C,
    ) -> Result<u32, HostError> {
        let token = request.send(self.host, upstream)?;
        self.calls.insert(token, self.direction, call);
        Ok(token)
    }

    /// Start an HTTP callout the stream does not wait for (a background refresh).
    pub fn http_call_detached(
        &mut self,
        upstream: &Upstream,
        request: &CalloutRequest<'_>,
        call: C,
    ) -> Result<u32, HostError> {
        let token = request.send(self.host, upstream)?;
        self.calls.insert(token, None, call);
        Ok(token)
    }

    /// Start a gRPC call (Envoy: `upstream` is a cluster name) for `call`; like [`Ctx::http_call`].
    pub fn grpc_call(&mut self, grpc: &GrpcRequest<'_>, call: C) -> Result<u32, HostError> {
        if !self.host.capabilities().grpc {
            return Err(HostError::Unsupported);
        }
        let token = self.host.grpc_call(
            grpc.upstream,
            grpc.service,
            grpc.method,
            &grpc.metadata,
            grpc.message,
            grpc.timeout,
        )?;
        self.calls.insert(token, self.direction, call);
        Ok(token)
    }

    /// Send a Redis command (Higress) for `call`; like [`Ctx::http_call`].
    pub fn redis_call(&mut self, cluster: &str, query: &[u8], call: C) -> Result<u32, HostError> {
        self.send_redis(cluster, query, call, self.direction)
    }

    /// Send a Redis command the stream does not wait for (a write after the answer).
    pub fn redis_call_detached(
        &mut self,
        cluster: &str,
        query: &[u8],
        call: C,
    ) -> Result<u32, HostError> {
        self.send_redis(cluster, query, call, None)
    }

    fn send_redis(
        &mut self,
        cluster: &str,
        query: &[u8],
        call: C,
        holds: Option<Direction>,
    ) -> Result<u32, HostError> {
        if !self.host.capabilities().redis {
            return Err(HostError::Unsupported);
        }
        let token = self.host.redis_call(cluster, query)?;
        self.calls.insert(token, holds, call);
        Ok(token)
    }

    /// Number of this stream's (or the root's) callouts still pending.
    pub fn pending_calls(&self) -> usize {
        self.calls.len()
    }

    /// From `on_request_headers`: deliver the request body whole to
    /// [`HttpFilter::on_request_whole`] (the driver buffers it and enforces the limit).
    pub fn read_whole_request(&mut self, body: WholeBody) {
        self.wants.request = Some(body);
    }

    /// From `on_response_headers`: deliver the response body whole to
    /// [`HttpFilter::on_response_whole`].
    pub fn read_whole_response(&mut self, body: WholeBody) {
        self.wants.response = Some(body);
    }

    /// Log a failed header or body mutation at WARN (never drop one silently); `what` names it.
    pub fn check(&self, result: Result<(), HostError>, what: &str) -> bool {
        match result {
            Ok(()) => true,
            Err(e) => {
                self.host
                    .log(LogLevel::Warn, &format!("{}: {what}: {e}", self.plugin));
                false
            }
        }
    }
}

/// A gRPC call to make.
#[derive(Debug, Clone)]
pub struct GrpcRequest<'a> {
    /// Envoy cluster name.
    pub upstream: &'a str,
    /// Fully qualified service, e.g. `envoy.service.ratelimit.v3.RateLimitService`.
    pub service: &'a str,
    /// Method name, e.g. `ShouldRateLimit`.
    pub method: &'a str,
    /// Initial metadata.
    pub metadata: Vec<(&'a str, &'a [u8])>,
    /// The serialised request message.
    pub message: &'a [u8],
    /// Timeout.
    pub timeout: Duration,
}

/// The per-request hooks. Every method has a pass-through default.
pub trait HttpFilter: 'static {
    /// What a callout of this filter is for.
    type Call: 'static;

    /// The caller's protocol, for errors the driver answers (413, failed callouts).
    fn protocol(&self) -> ClientProtocol {
        ClientProtocol::OpenAi
    }

    /// Request headers arrived. `end_of_stream` is true when there is no body.
    fn on_request_headers(
        &mut self,
        _cx: &mut Ctx<'_, Self::Call>,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// A request body chunk arrived (not called in whole-body mode); `body_size` is what the
    /// host holds now (all of it when the filter returned [`Action::Pause`] before).
    fn on_request_body(
        &mut self,
        _cx: &mut Ctx<'_, Self::Call>,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// Request trailers arrived (not called in whole-body mode, where they end the body).
    fn on_request_trailers(&mut self, _cx: &mut Ctx<'_, Self::Call>) -> Action {
        Action::Continue
    }
    /// The complete request body, in whole-body mode. Replace it with
    /// `cx.replace_body(BufferKind::RequestBody, body.len(), new)`.
    fn on_request_whole(&mut self, _cx: &mut Ctx<'_, Self::Call>, _body: &[u8]) -> Action {
        Action::Continue
    }
    /// Response headers arrived.
    fn on_response_headers(
        &mut self,
        _cx: &mut Ctx<'_, Self::Call>,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// A response body chunk arrived (not called in whole-body mode).
    fn on_response_body(
        &mut self,
        _cx: &mut Ctx<'_, Self::Call>,
        _body_size: usize,
        _end_of_stream: bool,
    ) -> Action {
        Action::Continue
    }
    /// Response trailers arrived (not called in whole-body mode).
    fn on_response_trailers(&mut self, _cx: &mut Ctx<'_, Self::Call>) -> Action {
        Action::Continue
    }
    /// The complete response body, in whole-body mode.
    fn on_response_whole(&mut self, _cx: &mut Ctx<'_, Self::Call>, _body: &[u8]) -> Action {
        Action::Continue
    }
    /// A whole body went over its limit; the driver then acts on the [`Oversize`] policy.
    fn on_body_too_large(&mut self, _cx: &mut Ctx<'_, Self::Call>, _direction: Direction) {}
    /// The driver answered the client with `error` (oversize, a failed callout).
    fn on_error_reply(&mut self, _cx: &mut Ctx<'_, Self::Call>, _error: &ClientError) {}
    /// A callout of this filter answered; say what happens next.
    fn on_reply(
        &mut self,
        _cx: &mut Ctx<'_, Self::Call>,
        _call: Self::Call,
        _reply: Reply,
    ) -> Next {
        Next::Resume
    }
    /// The stream ended while this callout was pending (the host cancels it).
    fn on_call_cancelled(&mut self, _call: Self::Call) {}
    /// The stream is complete; last chance to record metrics and audit lines.
    fn on_log(&mut self, _cx: &mut Ctx<'_, Self::Call>) {}
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

    /// Every config: the global one, then each `_rules_` entry's.
    pub fn all(&self) -> impl Iterator<Item = &Rc<P::Config>> {
        self.rules.all()
    }
}

/// What the rule matcher needs to know about the request's route.
pub(crate) fn route_info(host: &dyn Host) -> RouteInfo {
    let authority = host
        .request_header(":authority")
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok());
    // Higress names them `route_name` and `cluster_name` (its own properties, what its
    // controller's `_match_route_` / `_match_service_` refer to); Envoy has `xds.route_name` and
    // `xds.cluster_name` only. The Higress build is the one that can override the upstream host.
    let higress = host.capabilities().override_host;
    let cluster: &[&str] = if higress {
        &["cluster_name"]
    } else {
        &["xds", "cluster_name"]
    };
    RouteInfo {
        route_name: route_name(host),
        host: authority,
        service: host.property_str(cluster),
    }
}

/// The request's route name: Higress's `route_name` property in the Higress build, Envoy's
/// `xds.route_name` elsewhere (one host call; for plugins that key or label by route).
pub fn route_name(host: &dyn Host) -> Option<String> {
    if host.capabilities().override_host {
        host.property_str(&["route_name"])
    } else {
        host.property_str(&["xds", "route_name"])
    }
}
