//! [`Gateway`]: one mock worker of a plugin that keeps its state across requests, with a virtual
//! clock, ticks at the plugin's period, and scripted answers to HTTP and gRPC callouts made by
//! the root or by a request.

use std::time::Duration;

use crate::host::Capabilities;
use crate::plugin::{Plugin, Reply, RootDriver};

use super::run::Answerer;
use super::{root, Callout, Exchange, MockHost, Outcome, SharedStore};

/// A scripted callout answer: the callout and what to reply (`None`: never answered).
pub type Answer = Box<Answerer>;

/// One worker of plugin `P`.
pub struct Gateway<P: Plugin> {
    root: RootDriver<P>,
    root_host: MockHost,
    answer: Answer,
    answered: usize,
    since_tick: Duration,
}

impl<P: Plugin> std::fmt::Debug for Gateway<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("plugin", &P::NAME)
            .finish_non_exhaustive()
    }
}

impl<P: Plugin> Gateway<P> {
    /// A worker of `P` configured with `config_json` (panics on bad config: tests only). Callouts
    /// stay unanswered until [`Gateway::answer`] says how to answer them.
    pub fn new(config_json: &str, caps: Capabilities) -> Self {
        Self {
            root: root::<P>(config_json, caps),
            root_host: MockHost::new(caps),
            answer: Box::new(|_| None),
            answered: 0,
            since_tick: Duration::ZERO,
        }
    }

    /// Answer callouts (the root's, and requests' that bring no answerer of their own) with `f`.
    pub fn answer(mut self, f: impl FnMut(&Callout) -> Option<Reply> + 'static) -> Self {
        self.answer = Box::new(f);
        self
    }

    /// The worker's state.
    pub fn state(&self) -> &P::State {
        self.root.state()
    }

    /// The host the root runs on (its callouts, logs, metrics and the clock).
    pub fn root_host(&self) -> &MockHost {
        &self.root_host
    }

    /// The virtual clock, in nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        self.root_host.state.borrow().now_nanos
    }

    /// Run one tick now and answer the root callouts it starts.
    pub fn tick(&mut self) {
        self.root.on_tick(&self.root_host);
        self.answer_root_calls();
    }

    /// Move the clock on by `by`, firing a tick for every full tick period passed. Returns the
    /// number of ticks.
    pub fn advance(&mut self, by: Duration) -> u32 {
        let period = self.root.tick_period();
        let mut left = by;
        let mut ticks = 0;
        while let Some(p) = period {
            let until_tick = p.saturating_sub(self.since_tick);
            if until_tick > left {
                break;
            }
            left -= until_tick;
            self.move_clock(until_tick);
            self.since_tick = Duration::ZERO;
            self.tick();
            ticks += 1;
        }
        self.since_tick += left;
        self.move_clock(left);
        ticks
    }

    fn move_clock(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let mut st = self.root_host.state.borrow_mut();
        st.now_nanos = st.now_nanos.saturating_add(nanos);
    }

    fn answer_root_calls(&mut self) {
        loop {
            let call = self
                .root_host
                .state
                .borrow()
                .callouts
                .get(self.answered)
                .cloned();
            let Some(call) = call else { break };
            self.answered += 1;
            if let Some(reply) = (self.answer)(&call) {
                self.root.on_reply(&self.root_host, call.token, reply);
            }
        }
    }

    /// Push one request through this worker (sharing its state, shared data and clock).
    /// Deliver the answer to call `token` to the root, as Higress does for a Redis call whose
    /// stream has ended ([`Plugin::on_orphan_reply`]); then answer what the root sent.
    pub fn reply_to_root(&mut self, token: u32, reply: Reply) {
        self.root.on_reply(&self.root_host, token, reply);
        self.answer_root_calls();
    }

    pub fn run(&mut self, exchange: Exchange) -> Outcome {
        let host = MockHost::new(exchange.caps());
        host.state.borrow_mut().now_nanos = self.now_nanos();
        let host = MockHost {
            shared: SharedStore::clone(&self.root_host.shared),
            ..host
        };
        let drv = self.root.new_stream();
        exchange.run_on(drv, host, self.answer.as_mut())
    }
}
