//! Retry and fallback through the filter: the first attempt goes out through Envoy's route; when
//! it is answered with a retried status (429, 5xx, the router's own 503 for a connect failure or
//! reset and 504 for a timeout, which pass through this filter too), its headers and body are
//! held, and the next key or target is called with an HTTP callout carrying the client's body
//! translated for that target. The answer that ends the request (a success, an error that is not
//! retried, or the last failure when the budget is spent) replaces the held one: status,
//! content type and body, translated to the caller's protocol by the same response code as a
//! routed answer. Nothing reached the client before, so streams fall back cleanly too.
//!
//! Only requests whose rule has `fallbacks` get here; the body is kept for them alone.

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::plugin::{Ctx, Next, Reply, WholeBody};

use super::breakers::{admitted, record, unix};
use super::response::{Responding, MAX_ERROR_BODY};
use super::{ejected_keys, key_health, logged, targets, Call, Filter, Phase};
use crate::failover::{Attempts, Failure, ATTEMPTS_HEADER};
use crate::policy::Policy;
use crate::prepare::{prepare_for, read_request, route_asked, Asked, Incoming, Plan, Prepared};
use crate::stats::RequestStats;

/// Fallbacks started (a callout to the next key or target).
pub const FALLBACKS: &str = "aigw.ai_proxy.fallbacks";

/// What a request with fallback targets keeps while it may need them.
pub(crate) struct Failover {
    inc: Incoming,
    /// The client's body (re-translated for each target).
    body: Vec<u8>,
    asked: Asked,
    attempts: Attempts,
    /// The client's `:authority`, for providers without their own.
    authority: Option<String>,
    /// Bytes of the response body the host holds (the answer being replaced).
    held: usize,
    /// The last failed answer.
    last: Option<Failure>,
    /// The attempt under way as a callout: its plan and when it was sent.
    pending: Option<(Plan, u64)>,
    /// The rule's policy learns latencies (`leastLatency`).
    measure: bool,
    /// When the routed answer's first body bytes came.
    first_ns: Option<u64>,
    /// The routed attempt answered well (its latency is sampled at the end).
    routed_ok: bool,
}

/// The body of a failure without an answer (a reset, a timeout, no cluster): a JSON error the
/// response code maps to the caller's shape.
fn no_answer(provider: &str) -> Vec<u8> {
    format!(
        "{{\"error\":{{\"message\":\"the provider {provider} did not answer\",\"type\":\"api_error\"}}}}"
    )
    .into_bytes()
}

fn status_of(host: &dyn Host) -> u16 {
    host.header(MapKind::ResponseHeaders, ":status")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok())
        .unwrap_or(0)
}

impl Filter {
    /// A body chunk of the answer: the first one's time is the routed target's time to first
    /// token (only measured for `leastLatency`).
    pub(super) fn first_bytes(&mut self, host: &dyn Host) {
        if let Some(fo) = self
            .failover
            .as_mut()
            .filter(|f| f.measure && f.first_ns.is_none())
        {
            fo.first_ns = host.now_nanos();
        }
    }

    /// The request ends: a routed answer of a `leastLatency` rule is one latency sample.
    pub(super) fn failover_done(&mut self, host: &dyn Host) {
        let Some(fo) = self.failover.as_ref().filter(|f| f.measure && f.routed_ok) else {
            return;
        };
        let now = host.now_nanos().unwrap_or(0);
        let start = fo.attempts.started_ns;
        let total = now.saturating_sub(start) as f64 / 1e6;
        let ttft = fo.first_ns.unwrap_or(now).saturating_sub(start) as f64 / 1e6;
        targets::sample(&self.config, host, &fo.attempts.current, total, ttft);
    }

    /// A complete JSON body under a config with fallback targets. A route with some: pick the
    /// first target whose breaker lets it through, send the request there and keep what a
    /// fallback needs. A route without: sent as usual (the body is read and routed once).
    pub(super) fn send_with_fallbacks(
        &mut self,
        host: &dyn Host,
        inc: &Incoming,
        body: &[u8],
    ) -> Action {
        let asked = match read_request(inc, body) {
            Ok(a) => a,
            Err(e) => return self.reject(host, &e),
        };
        let route = match route_asked(&self.config, inc, body, &asked) {
            Ok(r) => r,
            Err(e) => return self.reject(host, &e),
        };
        let mut left = self.config.fallbacks(&route, &asked.model);
        let ejected = |key: &str| ejected_keys(host, key);
        if left.is_empty() {
            let cfg = &self.config;
            return match prepare_for(cfg, &self.state, inc, body, &ejected, &asked, &route) {
                Ok(p) => self.send(host, p, body.len(), inc.now_ns),
                Err(e) => self.reject(host, &e),
            };
        }
        left.push_front(route.clone());
        let now_ns = inc.now_ns;
        let policy = targets::order(
            &self.config,
            &self.state,
            host,
            &mut left,
            asked.stream,
            unix(now_ns),
        );
        let chosen = left
            .iter()
            .position(|r| admitted(&self.config, host, r, now_ns))
            .unwrap_or(0);
        // Targets before the chosen one are open: they are not tried for this request.
        let current = left.drain(..=chosen).next_back().unwrap_or(route);
        let prepared = prepare_for(
            &self.config,
            &self.state,
            inc,
            body,
            &ejected,
            &asked,
            &current,
        );
        let p = match prepared {
            Ok(p) => p,
            Err(e) => return self.reject(host, &e),
        };
        let authority = host
            .header(MapKind::RequestHeaders, ":authority")
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok());
        if let Some(ms) = self
            .config
            .fallback
            .attempt_timeout_ms
            .filter(|_| !asked.stream)
        {
            logged(
                host,
                host.set_header(
                    MapKind::RequestHeaders,
                    "x-envoy-upstream-rq-timeout-ms",
                    ms.to_string().as_bytes(),
                ),
                "cannot set the attempt timeout",
            );
        }
        let stream = asked.stream;
        self.failover = Some(Box::new(Failover {
            inc: inc.clone(),
            body: body.to_vec(),
            asked,
            attempts: Attempts::new(current, left, now_ns, stream),
            authority,
            held: 0,
            last: None,
            pending: None,
            measure: policy == Policy::LeastLatency,
            first_ns: None,
            routed_ok: false,
        }));
        self.send(host, p, body.len(), now_ns)
    }

    /// The routed attempt was answered with `status` (`eos`: without a body). `Some`: the answer
    /// is held for a fallback (the driver reads its body); `None`: handle it the common way.
    pub(super) fn routed_answer(
        &mut self,
        cx: &mut Ctx<'_, Call>,
        plan: &Plan,
        eos: bool,
    ) -> Option<()> {
        let host = cx.host;
        let fo = self.failover.as_mut()?;
        let status = status_of(host);
        let policy = &self.config.fallback;
        if !policy.retries(Some(status)) {
            if (200..300).contains(&status) {
                record(&self.config, &self.state, host, plan, true);
                fo.routed_ok = true;
            }
            return None;
        }
        record(&self.config, &self.state, host, plan, false);
        fo.attempts
            .failed(key_health::ejects(&self.config, plan, status));
        let now = host.now_nanos().unwrap_or(0);
        // A bodiless answer cannot be replaced by another body (the host ended the stream).
        if eos || fo.attempts.left.is_empty() || !fo.attempts.may_retry(policy, now) {
            return None;
        }
        key_health::after_status(&self.config, &self.state, host, plan, status);
        cx.read_whole_response(WholeBody::up_to(MAX_ERROR_BODY).holding_headers());
        Some(())
    }

    /// The routed attempt's failed answer is complete (held): try the next target.
    pub(super) fn routed_failed(
        &mut self,
        cx: &mut Ctx<'_, Call>,
        plan: Plan,
        mut stats: RequestStats,
        body: &[u8],
    ) -> Action {
        let host = cx.host;
        let status = status_of(host);
        let content_type = host
            .header(MapKind::ResponseHeaders, "content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some(fo) = self.failover.as_mut() {
            fo.held = body.len();
            fo.last = Some(Failure {
                status,
                content_type,
                body: body.to_vec(),
            });
        }
        if self.next_attempt(cx) {
            stats.status(&self.state.metrics, host, status);
            stats.finish(&self.state.metrics, host);
            self.phase = Phase::FallingBack;
            return Action::Pause;
        }
        // Nothing else to try: the held answer is the client's, handled the common way (its key
        // was already taken out).
        let plan = Plan {
            pool_key: None,
            ..plan
        };
        self.install(host, plan, stats, None);
        Action::Continue
    }

    /// Start the next attempt (a callout). False when none is left, the budget is spent or no
    /// target could be called.
    fn next_attempt(&mut self, cx: &mut Ctx<'_, Call>) -> bool {
        let host = cx.host;
        let Some(fo) = self.failover.as_mut() else {
            return false;
        };
        let policy = &self.config.fallback;
        loop {
            let now = host.now_nanos().unwrap_or(0);
            let Some(timeout) = fo.attempts.time_left(policy, now) else {
                return false;
            };
            if !fo.attempts.may_retry(policy, now) {
                return false;
            }
            let Some(route) = fo.attempts.advance() else {
                return false;
            };
            if !admitted(&self.config, host, &route, now) {
                // A target its breaker keeps away costs no attempt.
                fo.attempts.made = fo.attempts.made.saturating_sub(1);
                continue;
            }
            let ejected = |key: &str| ejected_keys(host, key);
            let inc = Incoming {
                now_ns: now,
                ..fo.inc.clone()
            };
            let prepared = prepare_for(
                &self.config,
                &self.state,
                &inc,
                &fo.body,
                &ejected,
                &fo.asked,
                &route,
            );
            let p: Prepared = match prepared {
                Ok(p) => p,
                Err(e) => {
                    host.log(
                        LogLevel::Warn,
                        &format!("ai-proxy: fallback target skipped: {}", e.message),
                    );
                    fo.attempts.made = fo.attempts.made.saturating_sub(1);
                    continue;
                }
            };
            let authority = p
                .call
                .authority
                .clone()
                .or_else(|| fo.authority.clone())
                .unwrap_or_else(|| p.cluster.clone());
            let mut headers: Vec<(&str, &[u8])> = p
                .call
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_bytes()))
                .collect();
            if !p.call.headers.iter().any(|(k, _)| k == "content-type") {
                headers.push(("content-type", b"application/json"));
            }
            let request = CalloutRequest {
                method: "POST",
                path: &p.call.path,
                headers,
                body: Some(&p.call.body),
                timeout,
            };
            let upstream = Upstream::envoy(&p.cluster, &authority);
            match cx.http_call(&upstream, &request, Call::Fallback) {
                Ok(_) => {
                    self.state.metrics.count(host, FALLBACKS, 1);
                    host.log(
                        LogLevel::Info,
                        &format!(
                            "ai-proxy: attempt {} goes to provider {} model {}",
                            fo.attempts.made, p.plan.provider, p.plan.backend_model
                        ),
                    );
                    fo.pending = Some((p.plan, now));
                    return true;
                }
                Err(e) => {
                    host.log(
                        LogLevel::Warn,
                        &format!("ai-proxy: cannot call cluster {}: {e}", p.cluster),
                    );
                }
            }
        }
    }

    /// A fallback callout answered.
    pub(super) fn fallback_answer(&mut self, cx: &mut Ctx<'_, Call>, reply: &Reply) -> Next {
        let host = cx.host;
        let Some((plan, sent)) = self.failover.as_mut().and_then(|f| f.pending.take()) else {
            return Next::Hold;
        };
        let answer = reply.http();
        let status = answer.and_then(|a| a.status);
        let mut stats = self.request_stats(host, &plan, Some(sent));
        if self.config.fallback.retries(status) {
            let code = status.unwrap_or(503);
            record(&self.config, &self.state, host, &plan, false);
            let retry_after = answer
                .and_then(|a| a.header("retry-after"))
                .and_then(|v| std::str::from_utf8(v).ok());
            key_health::eject(&self.config, &self.state, host, &plan, code, retry_after);
            let rekey = key_health::ejects(&self.config, &plan, code);
            if let Some(fo) = self.failover.as_mut() {
                fo.attempts.failed(rekey);
                fo.last = Some(Failure {
                    status: code,
                    content_type: answer
                        .and_then(|a| a.header("content-type"))
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default(),
                    body: match answer {
                        Some(a) if status.is_some() => a.body.clone(),
                        _ => no_answer(&plan.provider),
                    },
                });
            }
            if self.next_attempt(cx) {
                stats.status(&self.state.metrics, host, code);
                stats.finish(&self.state.metrics, host);
                return Next::Hold;
            }
            // Every target failed: the last failure (or the configured answer) is the client's;
            // its key was already taken out.
            let plan = Plan {
                pool_key: None,
                ..plan
            };
            self.install(host, plan, stats, Some(true));
            return Next::Resume;
        }
        record(&self.config, &self.state, host, &plan, true);
        if let Some(fo) = self.failover.as_ref().filter(|f| f.measure) {
            let ms = host.now_nanos().unwrap_or(0).saturating_sub(sent) as f64 / 1e6;
            targets::sample(&self.config, host, &fo.attempts.current, ms, ms);
        }
        let last = answer.map(|a| Failure {
            status: status.unwrap_or(502),
            content_type: a
                .header("content-type")
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            body: a.body.clone(),
        });
        if let Some(fo) = self.failover.as_mut() {
            fo.last = last;
        }
        self.install(host, plan, stats, Some(false));
        Next::Resume
    }

    /// Make `fo.last` (`replace`: `Some(all_failed)`) or the held answer (`None`) the client's
    /// answer, handled by the response code for `plan`.
    fn install(&mut self, host: &dyn Host, plan: Plan, stats: RequestStats, replace: Option<bool>) {
        let resp = MapKind::ResponseHeaders;
        let Some(fo) = self.failover.as_mut() else {
            return;
        };
        let all_failed = replace != Some(false);
        if fo.attempts.made > 1 {
            logged(
                host,
                host.set_header(
                    resp,
                    ATTEMPTS_HEADER,
                    fo.attempts.made.to_string().as_bytes(),
                ),
                "cannot set the attempts header",
            );
        }
        if let (true, Some(canned)) = (all_failed, &self.config.fallback.response) {
            logged(
                host,
                host.set_header(resp, ":status", canned.status.to_string().as_bytes()),
                "cannot set the fallback status",
            );
            logged(
                host,
                host.set_header(resp, "content-type", canned.content_type.as_bytes()),
                "cannot set the fallback content-type",
            );
            logged(
                host,
                host.remove_header(resp, "content-length"),
                "cannot remove the content-length",
            );
            logged(
                host,
                host.replace_body(BufferKind::ResponseBody, fo.held, canned.body.as_bytes()),
                "cannot write the fallback response",
            );
            let mut stats = stats;
            stats.status(&self.state.metrics, host, canned.status);
            stats.finish(&self.state.metrics, host);
            self.phase = Phase::PassThrough;
            return;
        }
        let body = match (replace, fo.last.take()) {
            (Some(_), Some(last)) => {
                logged(
                    host,
                    host.set_header(resp, ":status", last.status.to_string().as_bytes()),
                    "cannot set the answer's status",
                );
                if last.content_type.is_empty() {
                    logged(
                        host,
                        host.remove_header(resp, "content-type"),
                        "cannot remove the content-type",
                    );
                } else {
                    logged(
                        host,
                        host.set_header(resp, "content-type", &last.content_type),
                        "cannot set the answer's content-type",
                    );
                }
                for h in ["content-length", "retry-after", "content-encoding"] {
                    logged(host, host.remove_header(resp, h), "cannot remove a header");
                }
                logged(
                    host,
                    host.replace_body(BufferKind::ResponseBody, fo.held, &last.body),
                    "cannot write the answer",
                );
                last.body
            }
            (_, last) => last.map(|l| l.body).unwrap_or_default(),
        };
        let (mut r, _, _) = Responding::start(
            &self.config,
            &self.state,
            host,
            self.api,
            plan,
            stats,
            false,
        );
        r.complete(&self.config, &self.state, host, &body);
        self.phase = Phase::Responding(Box::new(r));
    }
}
