//! The `redis` backend's half of the filter (Higress): one script takes the whole reservation
//! while the stream waits, and one more, not waited for, settles it after the answer.

use std::rc::Rc;

use aigw_shared::host::{Action, HostError, LogLevel};
use aigw_shared::plugin::{Ctx, Plugin, Reply};

use super::{Filter, Phase};
use crate::limiter::{Held, Plan};
use crate::orphans::held_of;
use crate::redis::{decode_reserve, reserve_command, settle_command, settled, Answer};
use crate::{Metric, TokenRateLimit};
use aigw_shared::redis::Redis;

/// Send `command` (`detached`: not waited for), connecting again once if the host refuses it.
fn send(
    cx: &mut Ctx<'_, ()>,
    settings: &Redis,
    command: &[u8],
    detached: bool,
) -> Result<u32, HostError> {
    aigw_shared::redis::send(cx, settings, command, (), detached)
}

impl Filter {
    /// `redis` backend: run the reservation script; the stream waits for [`Self::on_redis_answer`].
    pub(super) fn ask_redis(&mut self, cx: &mut Ctx<'_, ()>, plans: Vec<Plan>) -> Action {
        let config = Rc::clone(&self.config);
        let Some(settings) = config.redis.as_ref() else {
            return self.backend_failed(cx, Some(&HostError::Unsupported));
        };
        let command = reserve_command(&config, &plans);
        match send(cx, settings, &command, false) {
            Ok(token) => {
                self.pending = plans;
                self.pending_token = Some(token);
                self.phase = Phase::Asking;
                Action::Pause
            }
            Err(e) => self.backend_failed(cx, Some(&e)),
        }
    }

    /// The reservation script answered (or the call failed: an empty reply).
    pub(super) fn on_redis_answer(&mut self, cx: &mut Ctx<'_, ()>, reply: &Reply) -> Action {
        self.pending_token = None;
        let plans = std::mem::take(&mut self.pending);
        let answer = match reply {
            Reply::Redis(bytes) if bytes.is_empty() => Err("the Redis call failed".to_owned()),
            Reply::Redis(bytes) => decode_reserve(&self.config, &plans, bytes),
            _ => Err("not a Redis reply".to_owned()),
        };
        match answer {
            Ok(Answer::Admitted(status)) => self.admitted(cx, held_of(plans), status),
            Ok(Answer::Refused {
                index,
                short,
                status,
            }) => {
                let rule = plans.get(index).map_or(0, |p| p.rule);
                self.refuse(cx, rule, short, &status)
            }
            Err(e) => {
                cx.log(
                    LogLevel::Warn,
                    &format!("{}: Redis reservation: {e}", TokenRateLimit::NAME),
                );
                self.backend_failed(cx, None)
            }
        }
    }

    /// The stream ended while the reservation script was on its way: should it take the
    /// reservation, the root gives it back when the answer comes ([`crate::orphans`]).
    pub(super) fn orphan_reservation(&mut self) {
        let plans = std::mem::take(&mut self.pending);
        let Some(token) = self.pending_token.take().filter(|_| !plans.is_empty()) else {
            return;
        };
        self.state
            .orphans
            .adopt(token, Rc::clone(&self.config), plans);
    }

    /// Send the settlement script (not waited for: the answer has gone on).
    pub(super) fn settle_redis(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        held: &[Held],
        actual: impl Fn(&Held, usize) -> i64,
    ) -> Result<(), HostError> {
        let config = Rc::clone(&self.config);
        let Some(settings) = config.redis.as_ref() else {
            return Err(HostError::Unsupported);
        };
        let Some(command) = settle_command(&config, held, actual) else {
            return Ok(());
        };
        send(cx, settings, &command, true).map(|_| ())
    }

    /// A settlement's answer: only a failure is worth a word.
    pub(super) fn on_redis_settled(&self, cx: &mut Ctx<'_, ()>, reply: &Reply) {
        let result = match reply {
            Reply::Redis(bytes) if bytes.is_empty() => Err("the Redis call failed".to_owned()),
            Reply::Redis(bytes) => settled(bytes),
            _ => Err("not a Redis reply".to_owned()),
        };
        if let Err(e) = result {
            self.state.count(cx.host, Metric::BackendError, 1);
            cx.log(
                LogLevel::Warn,
                &format!(
                    "{}: reservation not settled in Redis: {e}",
                    TokenRateLimit::NAME
                ),
            );
        }
    }
}
