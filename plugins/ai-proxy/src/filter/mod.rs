//! The per-request state machine.
//!
//! Request (`request.rs`): the headers are held (Pause) until the body is complete, so that
//! `:path`, `:authority`, the credential and the routing header (`x-aigw-upstream`, read by the
//! Envoy route through `cluster_header`) can be rewritten once the model is known. Response
//! (`response.rs`): same-protocol answers pass untouched, streams are translated chunk by chunk,
//! translated JSON answers hold their headers until the body is complete, and error bodies are
//! rewritten in the caller's shape.
//!
//! The body is read whole by the driver (`WholeBody`, headers held): it enforces the size limit
//! (413 in the caller's shape) and treats trailers as the end of the body. A provider that
//! fetches its credential over HTTP (Vertex service accounts) holds the complete request until
//! the token arrives when the worker has none yet; the worker refreshes tokens on its tick: see
//! [`token`].
//!
//! On a host that cannot rewrite bodies (APISIX) the filter only answers `GET /v1/models` and lets
//! every other request pass unchanged.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol};
use aigw_shared::host::{Action, Direction, Host, HostError, LogLevel};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{Ctx, FilterEnv, HttpFilter, Next, Reply};
use aigw_shared::reply::send_error;

use crate::config::Config;
use crate::prepare::{Incoming, Plan};
use crate::state::State;
pub(crate) use key_health::ejected_keys;
use response::Responding;
pub use token::TokenCall;

mod breakers;
mod failover;
mod key_health;
mod relay;
mod request;
mod response;
mod targets;
pub mod token;

pub use crate::stats::metric;

/// Log a failed header or body mutation at WARN (never drop one silently), like
/// `aigw_shared::plugin::Ctx::check` for helpers that only hold the host.
pub(crate) fn logged(host: &dyn Host, result: Result<(), HostError>, what: &str) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            host.log(LogLevel::Warn, &format!("ai-proxy: {what}: {e}"));
            false
        }
    }
}

/// What a callout of a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// An access token for the provider.
    Token(TokenCall),
    /// The next attempt of a request with fallback targets.
    Fallback,
}

/// Where the request is.
enum Phase {
    /// Not ours (or finished): everything passes.
    PassThrough,
    /// Holding the headers while the driver reads the body.
    Collecting(Incoming),
    /// The complete request (its header facts and body size) waits for a token callout.
    AwaitingToken(Incoming, usize),
    /// Sent upstream at this clock reading (ns, if the host has a clock); waiting for the
    /// response.
    Sent(Plan, Option<u64>),
    /// Handling the response.
    Responding(Box<Responding>),
    /// The routed attempt failed: its answer is held (headers, then the whole body) for a
    /// fallback; its metric series is counted once the fallback starts.
    Failing(Plan, crate::stats::RequestStats),
    /// A fallback callout is under way (the routed answer is held).
    FallingBack,
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    phase: Phase,
    protocol: ClientProtocol,
    api: Api,
    /// The host can rewrite bodies (false on APISIX: nothing is routed).
    body_write: bool,
    /// Request headers the routed request must lose, among those the client sent.
    to_remove: Vec<&'static str>,
    /// What a request with fallback targets keeps (none for every other request).
    failover: Option<Box<failover::Failover>>,
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            phase: Phase::PassThrough,
            protocol: ClientProtocol::OpenAi,
            api: Api::Other,
            body_write: env.capabilities.body_write,
            to_remove: Vec::new(),
            failover: None,
        }
    }

    fn reject(&mut self, host: &dyn Host, error: &ClientError) -> Action {
        send_error(host, "ai-proxy", self.protocol, error);
        self.state.metrics.count(host, metric::REJECTED, 1);
        self.phase = Phase::PassThrough;
        Action::Pause
    }
}

impl HttpFilter for Filter {
    type Call = Call;

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, Call>, end_of_stream: bool) -> Action {
        self.headers_in(cx, end_of_stream)
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, Call>, body: &[u8]) -> Action {
        self.body_in(cx, body)
    }

    fn on_error_reply(&mut self, cx: &mut Ctx<'_, Call>, _error: &ClientError) {
        self.state.metrics.count(cx.host, metric::REJECTED, 1);
        self.phase = Phase::PassThrough;
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, Call>, end_of_stream: bool) -> Action {
        self.response_head(cx, end_of_stream)
    }

    fn on_response_whole(&mut self, cx: &mut Ctx<'_, Call>, body: &[u8]) -> Action {
        if let Phase::Failing(..) = self.phase {
            if let Phase::Failing(plan, stats) =
                std::mem::replace(&mut self.phase, Phase::PassThrough)
            {
                return self.routed_failed(cx, plan, stats, body);
            }
        }
        match &mut self.phase {
            Phase::Responding(r) => r.whole(&self.config, &self.state, cx.host, body),
            _ => Action::Continue,
        }
    }

    fn on_body_too_large(&mut self, cx: &mut Ctx<'_, Call>, direction: Direction) {
        match (direction, &mut self.phase) {
            (Direction::Response, Phase::Responding(r)) => r.too_large(&self.state, cx.host),
            (Direction::Response, Phase::Failing(_, stats)) => {
                stats.status(&self.state.metrics, cx.host, 502);
                stats.finish(&self.state.metrics, cx.host);
            }
            _ => {}
        }
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, Call>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.failover.is_some() {
            self.first_bytes(cx.host);
        }
        match &mut self.phase {
            Phase::Responding(r) => {
                r.body(&self.config, &self.state, cx.host, body_size, end_of_stream)
            }
            _ => Action::Continue,
        }
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_, Call>, call: Call, reply: Reply) -> Next {
        match call {
            Call::Token(t) => self.token_answer(cx.host, t, &reply),
            Call::Fallback => self.fallback_answer(cx, &reply),
        }
    }

    fn on_call_cancelled(&mut self, call: Call) {
        if let Call::Token(t) = call {
            self.token_cancelled(t);
        }
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, Call>) {
        let host = cx.host;
        if self.failover.is_some() {
            self.failover_done(host);
        }
        match &mut self.phase {
            Phase::Responding(r) => r.finish(&self.state, host),
            Phase::Sent(..) => {
                // No response: the request is counted, with its duration until now.
                if let Phase::Sent(plan, sent_ns) =
                    std::mem::replace(&mut self.phase, Phase::PassThrough)
                {
                    self.request_stats(host, &plan, sent_ns)
                        .finish(&self.state.metrics, host);
                }
            }
            _ => {}
        }
    }
}
