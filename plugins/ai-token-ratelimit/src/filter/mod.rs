//! One request: key values read from the headers, the body read whole (headers held) to estimate
//! the reservation, the reservation taken or refused, then the response observed as it passes
//! (never held) and the reservation settled when it ends, or when the stream is logged.
//!
//! Host calls on an admitted request: one `headers()` each way, properties only for the keys
//! that need them (`clientIp`, `route`), the clock twice, one read and one compare-and-swap write
//! per record at admission and again at settlement, one body read per response chunk, up to six
//! response header writes and a few counters.

use std::rc::Rc;

use aigw_shared::consumer::key_hash_hex;
use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Capabilities, HostError, LogLevel, MapKind};
use aigw_shared::llm::{Api, RequestView, ResponseFormat, ResponseObserver};
use aigw_shared::plugin::{Ctx, HttpFilter, Next, Plugin, Reply, WholeBody};

use crate::bucket::Short;
use crate::config::{Backend, Config, FailureMode};
use crate::headers::{duration_text, pairs, retry_after};
use crate::keys::{first_forwarded, query_param, strip_port, Source};
use crate::limiter::{record_for, reserve, settle, Held, Plan, Status, Verdict};
use crate::measure::{amount, Measure, Tokens, Weights};
use crate::{Metric, State, TokenRateLimit};

mod admin;
mod redis;
mod rls;

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not limited (not an LLM API, no rule applies, shadow-refused, backend failed open).
    Passed,
    /// Waiting for the whole request body.
    Reading,
    /// Waiting for the rate-limit service's answer (`rls` backend).
    Asking,
    /// Reading a quota admin write.
    AdminPost,
    /// The reservation is held; no response yet.
    Admitted,
    /// The response is passing.
    Responding,
    /// Answered locally, or settled.
    Done,
}

/// The per-request state machine.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    phase: Phase,
    api: Api,
    /// One value per [`Config::sources`] entry (`None`: absent from this request).
    facts: Vec<Option<String>>,
    reserved: Tokens,
    weights: Weights,
    held: Vec<Held>,
    status: Status,
    http_status: u16,
    observer: Option<ResponseObserver>,
    caps: Capabilities,
    /// `rls` backend: the (rule, token family) of each descriptor sent.
    asked: Vec<(usize, bool)>,
    /// `redis` backend: the plans the reservation script was asked for, and its call's token.
    pending: Vec<Plan>,
    pending_token: Option<u32>,
}

fn text(v: Option<&[u8]>) -> Option<&str> {
    v.and_then(|v| std::str::from_utf8(v).ok())
}

fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, caps: Capabilities) -> Self {
        Self {
            config,
            state,
            phase: Phase::Passed,
            api: Api::Other,
            facts: Vec::new(),
            reserved: Tokens::default(),
            weights: Weights::default(),
            held: Vec::new(),
            status: Status::default(),
            http_status: 0,
            observer: None,
            caps,
            asked: Vec::new(),
            pending: Vec::new(),
            pending_token: None,
        }
    }

    /// The values of every key source the headers can give (the model comes with the body).
    fn read_facts(&mut self, cx: &Ctx<'_, ()>, headers: &[(String, Vec<u8>)], path: &str) {
        let get = |name: &str| header(headers, name);
        let config = Rc::clone(&self.config);
        self.facts = config
            .sources
            .iter()
            .map(|source| match source {
                Source::Consumer => config.consumer.identify(get).map(|c| c.name),
                Source::ApiKey => config
                    .consumer
                    .presented_key(get)
                    .map(|k| key_hash_hex(&String::from_utf8_lossy(k))),
                Source::Header(name) => get(name).map(|v| String::from_utf8_lossy(v).into_owned()),
                Source::Query(name) => query_param(path, name).map(str::to_owned),
                Source::ClientIp => cx
                    .property_str(&["source", "address"])
                    .map(|a| strip_port(&a).to_owned()),
                Source::ClientIpFrom(name) => {
                    text(get(name)).and_then(first_forwarded).map(str::to_owned)
                }
                Source::Route => cx
                    .property_str(&["xds", "route_name"])
                    .or_else(|| cx.property_str(&["route_name"])),
                Source::Model => None,
            })
            .collect();
    }

    /// Some rule may apply: all of its keys are known, or only wait for the model.
    fn some_rule_may_apply(&self) -> bool {
        self.config.rules.iter().any(|r| {
            r.keys.iter().all(|&k| {
                self.facts.get(k).is_some_and(Option::is_some)
                    || self.config.sources.get(k) == Some(&Source::Model)
            })
        })
    }

    /// What each applicable rule takes from which record.
    fn plans(&self) -> Vec<Plan> {
        let mut plans = Vec::new();
        for (r, rule) in self.config.rules.iter().enumerate() {
            let values: Option<Vec<&str>> = rule
                .keys
                .iter()
                .map(|&k| self.facts.get(k).and_then(|v| v.as_deref()))
                .collect();
            let Some(values) = values else { continue };
            let set = rule.select(&values);
            let Some(limits) = rule.sets.get(set).map(|s| &s.limits) else {
                continue;
            };
            if limits.is_empty() {
                continue;
            }
            let amounts = limits
                .iter()
                .map(|l| {
                    if rule.charge_after_response && l.measure != Measure::Requests {
                        0
                    } else {
                        amount(l.measure, &self.reserved, &self.weights)
                    }
                })
                .collect();
            let (key, owner) = if self.config.backend == Backend::Redis {
                (crate::redis::record_key(rule, set, &values), 0)
            } else {
                record_for(rule, set, &values)
            };
            plans.push(Plan {
                rule: r,
                set,
                key,
                owner,
                amounts,
            });
        }
        plans
    }

    /// Take the reservation; answer the request when it is refused.
    fn admit(&mut self, cx: &mut Ctx<'_, ()>) -> Action {
        let plans = self.plans();
        if plans.is_empty() {
            self.phase = Phase::Passed;
            return Action::Continue;
        }
        match self.config.backend {
            Backend::Rls => return self.ask_rls(cx, &plans),
            Backend::Redis => return self.ask_redis(cx, plans),
            Backend::Local => {}
        }
        let verdict = match cx.now_nanos() {
            Some(now) => reserve(cx.host, &self.config, now, plans),
            None => Err(HostError::Unsupported),
        };
        match verdict {
            Ok(Verdict::Admitted { held, status }) => self.admitted(cx, held, status),
            Ok(Verdict::Refused {
                rule,
                short,
                status,
            }) => self.refuse(cx, rule, short, &status),
            Err(e) => self.backend_failed(cx, Some(&e)),
        }
    }

    /// The reservation is held (`held`: what to settle; empty for `rls`): on to the model.
    fn admitted(&mut self, cx: &mut Ctx<'_, ()>, held: Vec<Held>, status: Status) -> Action {
        self.held = held;
        self.status = status;
        self.phase = Phase::Admitted;
        self.state.count(cx.host, Metric::Allowed, 1);
        let tokens = self.reserved.input.saturating_add(self.reserved.output);
        self.state.count(cx.host, Metric::ReservedTokens, tokens);
        Action::Continue
    }

    fn refuse(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        rule: usize,
        short: Short,
        status: &Status,
    ) -> Action {
        let Some(rule) = self.config.rules.get(rule) else {
            self.phase = Phase::Passed;
            return Action::Continue;
        };
        let asked = self.reserved.input.saturating_add(self.reserved.output);
        let message = match short {
            _ if rule.quota => format!(
                "quota used up: this request reserves about {asked} tokens, more than is left \
                 (ask an administrator for more)"
            ),
            Short::Wait(ns) => format!(
                "rate limit `{}` reached: this request reserves about {asked} tokens; try \
                 again in {}",
                rule.name,
                duration_text(ns)
            ),
            Short::Never => format!(
                "request too large for rate limit `{}`: it reserves about {asked} tokens (prompt \
                 estimate + max output tokens), more than the limit allows at once; lower \
                 max_tokens",
                rule.name
            ),
        };
        if self.config.shadow {
            cx.log(
                LogLevel::Info,
                &format!(
                    "{}: shadow mode, forwarded: {message}",
                    TokenRateLimit::NAME
                ),
            );
            self.state.count(cx.host, Metric::ShadowRefused, 1);
            self.state.count_rule(cx.host, &rule.refused_metric);
            self.phase = Phase::Passed;
            return Action::Continue;
        }
        self.state.count(cx.host, Metric::Refused, 1);
        self.state.count_rule(cx.host, &rule.refused_metric);
        let code = if rule.quota {
            "insufficient_quota"
        } else {
            "rate_limit_exceeded"
        };
        let error = ClientError::new(ErrorKind::RateLimited, message).with_code(code);
        let rendered = error.render(self.protocol());
        let mut owned = pairs(status);
        match short {
            Short::Wait(ns) if !rule.quota => owned.push(("retry-after", retry_after(ns))),
            _ => {}
        }
        let mut list: Vec<(&str, &[u8])> = vec![("content-type", rendered.content_type.as_bytes())];
        list.extend(owned.iter().map(|(k, v)| (*k, v.as_bytes())));
        if let Err(e) = cx.send_local_response(rendered.status, &list, &rendered.body) {
            cx.log(
                LogLevel::Error,
                &format!("{}: cannot send the 429: {e}", TokenRateLimit::NAME),
            );
        }
        self.phase = Phase::Done;
        Action::Pause
    }

    /// The counters failed (`error`), or this host has none (`None`): the failure mode decides.
    fn backend_failed(&mut self, cx: &mut Ctx<'_, ()>, error: Option<&HostError>) -> Action {
        self.state.count(cx.host, Metric::BackendError, 1);
        if let Some(e) = error {
            cx.log(
                LogLevel::Warn,
                &format!("{}: counters unavailable: {e}", TokenRateLimit::NAME),
            );
        }
        match self.config.failure_mode {
            FailureMode::Open => {
                self.phase = Phase::Passed;
                Action::Continue
            }
            FailureMode::Closed => {
                let error = ClientError::new(
                    ErrorKind::Overloaded,
                    "the rate limiter cannot count requests now",
                );
                aigw_shared::reply::send_error(
                    cx.host,
                    TokenRateLimit::NAME,
                    self.protocol(),
                    &error,
                );
                self.phase = Phase::Done;
                Action::Pause
            }
        }
    }

    /// The body was read: estimate, then admit or refuse.
    fn on_body(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        let view = match RequestView::parse(self.api, body) {
            Ok(v) => v,
            Err(e) => {
                let error = e.to_client_error();
                aigw_shared::reply::send_error(
                    cx.host,
                    TokenRateLimit::NAME,
                    self.protocol(),
                    &error,
                );
                self.phase = Phase::Done;
                return Action::Pause;
            }
        };
        let model = view.model_str();
        for (slot, source) in self.facts.iter_mut().zip(&self.config.sources) {
            if *source == Source::Model && !model.is_empty() {
                *slot = Some(model.to_owned());
            }
        }
        self.weights = self.config.weights.lookup(model);
        let output = if self.api.is_generation() {
            self.config.output_reservation(view.max_tokens)
        } else {
            0
        };
        self.reserved = Tokens {
            input: view.estimate_input_tokens().tokens,
            cached: 0,
            output,
        };
        self.admit(cx)
    }

    /// The response ended (`completed`) or the stream is logged before that: settle.
    fn finish(&mut self, cx: &mut Ctx<'_, ()>, completed: bool) {
        if !matches!(self.phase, Phase::Admitted | Phase::Responding) {
            return;
        }
        // The client went away after the request was forwarded, before any answer or once a
        // successful one had started (its headers, maybe an empty first event): the provider has
        // the prompt (and bills it), so at least the prompt estimate is charged; charging
        // nothing would let a client that disconnects early send large prompts for free.
        let ok_started = self.phase == Phase::Responding && (200..300).contains(&self.http_status);
        let forwarded_unanswered = !completed && (self.phase == Phase::Admitted || ok_started);
        self.phase = Phase::Done;
        let mut actual = Tokens::default();
        if forwarded_unanswered {
            actual.input = self.reserved.input;
            self.state.count(cx.host, Metric::UsageEstimated, 1);
        }
        if let Some(mut obs) = self.observer.take() {
            let summary = obs.finish(0, |_| {});
            let produced = summary.output_estimate.estimate().tokens;
            let ok = (200..300).contains(&self.http_status);
            if let Some(u) = summary.usage {
                actual = Tokens {
                    input: u.input_tokens,
                    cached: u.cached_input_tokens.unwrap_or(0),
                    output: if summary.completed {
                        u.output_tokens
                    } else {
                        u.output_tokens.max(produced)
                    },
                };
            } else if summary.deltas > 0 || (ok && completed && summary.completed) {
                // No usage in the answer: the prompt estimate and the produced text's.
                actual = Tokens {
                    input: self.reserved.input,
                    cached: 0,
                    output: produced,
                };
                self.state.count(cx.host, Metric::UsageEstimated, 1);
            } else if ok && summary.parse_error.is_some() {
                // A JSON answer too large to read (`maxResponseBodyBytes`): its usage is unknown,
                // so it is charged what was reserved for it, not nothing.
                actual = self.reserved;
                self.state.count(cx.host, Metric::UsageEstimated, 1);
            }
        }
        let charged = actual.input.saturating_add(actual.output);
        self.state.count(cx.host, Metric::ChargedTokens, charged);
        let Some(now) = cx.now_nanos() else { return };
        let config = Rc::clone(&self.config);
        let weights = self.weights;
        let held = std::mem::take(&mut self.held);
        let used = |h: &Held, i: usize| {
            config
                .rules
                .get(h.rule)
                .and_then(|r| r.sets.get(h.set))
                .and_then(|s| s.limits.get(i))
                .map_or(0, |l| amount(l.measure, &actual, &weights))
        };
        let result = if config.backend == Backend::Redis {
            self.settle_redis(cx, &held, used)
        } else {
            settle(cx.host, &config, now, &held, used)
        };
        if let Err(e) = result {
            self.state.count(cx.host, Metric::BackendError, 1);
            cx.log(
                LogLevel::Warn,
                &format!("{}: reservation not settled: {e}", TokenRateLimit::NAME),
            );
        }
    }
}

impl HttpFilter for Filter {
    type Call = ();

    fn protocol(&self) -> ClientProtocol {
        self.api.protocol()
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        if self.config.rules.is_empty() {
            return Action::Continue;
        }
        let Ok(headers) = cx.headers(MapKind::RequestHeaders) else {
            return Action::Continue;
        };
        let path = text(header(&headers, ":path")).unwrap_or("");
        if let Some(admin) = &self.config.quota_admin {
            if path.split(['?', '#']).next() == Some(admin.path.as_str()) {
                return self.admin_headers(cx, &headers, path, end_of_stream);
            }
        }
        let method = text(header(&headers, ":method")).unwrap_or("");
        let api = Api::from_path(method, path);
        if !(api.is_generation() || api == Api::Embeddings) {
            return Action::Continue;
        }
        self.api = api;
        let available = match self.config.backend {
            Backend::Local => self.caps.shared_data && self.caps.clock,
            Backend::Rls => self.caps.grpc,
            Backend::Redis => self.caps.redis,
        };
        if !available {
            // APISIX: nothing to count with (said once at configure time); decided here,
            // before any body is asked for.
            return self.backend_failed(cx, None);
        }
        self.read_facts(cx, &headers, path);
        if !self.some_rule_may_apply() {
            return Action::Continue;
        }
        if !self.config.needs_body {
            return self.admit(cx);
        }
        if end_of_stream {
            return self.on_body(cx, &[]);
        }
        self.phase = Phase::Reading;
        let declared = text(header(&headers, "content-length")).and_then(|v| v.trim().parse().ok());
        cx.read_whole_request(
            WholeBody::up_to(self.config.max_request_body_bytes)
                .holding_headers()
                .declared_length(declared),
        );
        Action::Continue
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        if self.phase == Phase::AdminPost {
            return self.admin_body(cx, body);
        }
        if self.phase != Phase::Reading {
            return Action::Continue;
        }
        self.on_body(cx, body)
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_, ()>, _call: (), reply: Reply) -> Next {
        if self.phase != Phase::Asking {
            // The only other call: a Redis settlement, sent after the answer (nothing waits).
            if self.config.backend == Backend::Redis {
                self.on_redis_settled(cx, &reply);
            }
            return Next::Hold;
        }
        let action = match self.config.backend {
            Backend::Redis => self.on_redis_answer(cx, &reply),
            _ => self.on_rls_answer(cx, &reply),
        };
        match action {
            Action::Continue => Next::Resume,
            Action::Pause => Next::Hold,
        }
    }

    fn on_call_cancelled(&mut self, _call: ()) {
        if self.phase == Phase::Asking && self.config.backend == Backend::Redis {
            self.orphan_reservation();
        }
    }

    fn on_error_reply(&mut self, _cx: &mut Ctx<'_, ()>, _error: &ClientError) {
        // The driver answered (oversized body): nothing was reserved yet.
        if matches!(self.phase, Phase::Reading | Phase::AdminPost) {
            self.phase = Phase::Done;
        }
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        if self.phase != Phase::Admitted {
            return Action::Continue;
        }
        let headers = cx.headers(MapKind::ResponseHeaders).unwrap_or_default();
        self.http_status = text(header(&headers, ":status"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if self.config.response_headers {
            for (name, value) in pairs(&self.status) {
                let r = cx.set_header(MapKind::ResponseHeaders, name, value.as_bytes());
                cx.check(r, "add an x-ratelimit header");
            }
        }
        if !self.config.needs_body || self.held.is_empty() {
            // Only request counts, or the `rls` backend: nothing to reconcile, so the answer is
            // not read.
            self.phase = Phase::Done;
            return Action::Continue;
        }
        let format = ResponseFormat::from_content_type(header(&headers, "content-type"));
        // Usage (or the estimate of what was produced) is all that is needed: after the first
        // token only the events that may carry usage, an error or the end are parsed.
        self.observer = Some(
            ResponseObserver::new(self.api, format)
                .with_max_json_bytes(self.config.max_response_body_bytes)
                .light_after_first_token(),
        );
        self.phase = Phase::Responding;
        if end_of_stream {
            self.finish(cx, true);
        }
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.phase != Phase::Responding {
            return Action::Continue;
        }
        if body_size > 0 {
            if let (Ok(Some(chunk)), Some(obs)) = (
                cx.body(BufferKind::ResponseBody, 0, body_size),
                self.observer.as_mut(),
            ) {
                obs.feed_quiet(&chunk, 0);
            }
        }
        if end_of_stream {
            self.finish(cx, true);
        }
        Action::Continue
    }

    fn on_response_trailers(&mut self, cx: &mut Ctx<'_, ()>) -> Action {
        self.finish(cx, true);
        Action::Continue
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, ()>) {
        self.finish(cx, false);
    }
}
