//! The `rls` backend's half of the filter: ask the RateLimitService before forwarding (the
//! stream waits), and turn its answer into an admission, a 429 or the failure mode.

use std::rc::Rc;

use aigw_shared::host::{Action, HostError};
use aigw_shared::plugin::{Ctx, GrpcRequest, Reply};

use super::{Filter, Phase};
use crate::bucket::Short;
use crate::limiter::{Gauge, Plan, Status};
use crate::rls;

impl Filter {
    /// `rls` backend: ask the rate-limit service; the stream waits for [`Self::on_rls_answer`].
    pub(super) fn ask_rls(&mut self, cx: &mut Ctx<'_, ()>, plans: &[Plan]) -> Action {
        let config = Rc::clone(&self.config);
        let Some(settings) = config.rls.as_ref() else {
            return self.backend_failed(cx, Some(&HostError::Unsupported));
        };
        let mut descriptors = Vec::new();
        let mut asked = Vec::new();
        for plan in plans {
            let Some(rule) = config.rules.get(plan.rule) else {
                continue;
            };
            let Some(set) = rule.sets.get(plan.set) else {
                continue;
            };
            for (limit, milli) in set.limits.iter().zip(&plan.amounts) {
                let mut entries = vec![
                    ("rule", rule.name.as_str()),
                    ("measure", rls::measure_name(limit.measure)),
                ];
                for (name, &k) in rule.key_names.iter().zip(&rule.keys) {
                    if let Some(v) = self.facts.get(k).and_then(|v| v.as_deref()) {
                        entries.push((name.as_str(), v));
                    }
                }
                let hits = u64::try_from(*milli).unwrap_or(0).div_ceil(1000);
                descriptors.push(rls::Descriptor {
                    entries,
                    limit,
                    hits,
                });
                asked.push((plan.rule, limit.measure.is_token_family()));
            }
        }
        let message = rls::encode_request(&settings.domain, &descriptors);
        let request = GrpcRequest {
            upstream: &settings.cluster,
            service: rls::SERVICE,
            method: rls::METHOD,
            metadata: Vec::new(),
            message: &message,
            timeout: settings.timeout,
        };
        match cx.grpc_call(&request, ()) {
            Ok(_) => {
                self.asked = asked;
                self.phase = Phase::Asking;
                Action::Pause
            }
            Err(e) => self.backend_failed(cx, Some(&e)),
        }
    }

    /// The rate-limit service answered (or the call failed).
    pub(super) fn on_rls_answer(&mut self, cx: &mut Ctx<'_, ()>, reply: &Reply) -> Action {
        let answer = match reply {
            Reply::Grpc { status: 0, message } => rls::decode_response(message).filter(|a| a.known),
            _ => None,
        };
        let Some(answer) = answer else {
            let e = match reply {
                Reply::Grpc { status, .. } => HostError::Status(*status),
                _ => HostError::BadArgument("not a gRPC answer"),
            };
            return self.backend_failed(cx, Some(&e));
        };
        let mut status = Status::default();
        let mut refusing: Option<(usize, u64)> = None;
        for (s, (rule, tokens)) in answer.statuses.iter().zip(&self.asked) {
            let gauge = Gauge {
                limit: s.limit.unwrap_or(0),
                remaining: s.remaining,
                reset_ns: s.reset_ns,
            };
            status.note(*tokens, gauge);
            if s.over && refusing.is_none_or(|(_, w)| s.reset_ns > w) {
                refusing = Some((*rule, s.reset_ns));
            }
        }
        if answer.over {
            let (rule, wait) = refusing
                .or_else(|| self.asked.first().map(|(r, _)| (*r, 0)))
                .unwrap_or((0, 0));
            return self.refuse(cx, rule, Short::Wait(wait.max(1)), &status);
        }
        // Nothing to settle: RLS cannot give hits back.
        self.admitted(cx, Vec::new(), status)
    }
}
