//! Reservations whose client left while the Redis script was on its way (`redis` backend,
//! Higress). The stream is gone when the answer comes, so Higress's answer reaches the root
//! ([`aigw_shared::plugin::Plugin::on_orphan_reply`]); if the script took the reservation, the
//! root gives all of it back (nothing was forwarded). Without this the tokens stayed taken until
//! the buckets refilled.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use aigw_shared::host::LogLevel;
use aigw_shared::plugin::{Ctx, Plugin, Reply};

use crate::config::Config;
use crate::limiter::{Held, Plan};
use crate::redis::{decode_reserve, settle_command, Answer};
use crate::TokenRateLimit;

/// Orphans a worker remembers at most (each an answer still on its way; Higress answers every
/// call, at the latest when its timeout fires).
pub const MAX_ORPHANS: usize = 1024;

/// A reservation asked for: its rule set's configuration and its plans.
type Asked = (Rc<Config>, Vec<Plan>);

/// The reservations of streams that ended while their script was on its way, by call token.
#[derive(Debug, Default)]
pub struct Orphans {
    waiting: RefCell<HashMap<u32, Asked>>,
}

impl Orphans {
    /// Remember the reservation `plans` asked for by call `token`; false when too many wait.
    pub fn adopt(&self, token: u32, config: Rc<Config>, plans: Vec<Plan>) -> bool {
        let Ok(mut waiting) = self.waiting.try_borrow_mut() else {
            return false;
        };
        if waiting.len() >= MAX_ORPHANS {
            return false;
        }
        waiting.insert(token, (config, plans));
        true
    }

    /// How many answers are awaited.
    pub fn len(&self) -> usize {
        self.waiting.borrow().len()
    }

    /// True when none is awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Call `token` answered with `reply`: if it was an orphan's reservation and the script
    /// took it, send the script that gives every unit back (not waited for). Returns whether
    /// something was given back.
    pub fn answered(&self, cx: &mut Ctx<'_, ()>, token: u32, reply: &Reply) -> bool {
        let Some((config, plans)) = self
            .waiting
            .try_borrow_mut()
            .ok()
            .and_then(|mut w| w.remove(&token))
        else {
            return false;
        };
        let Reply::Redis(bytes) = reply else {
            return false;
        };
        // Refused, failed or unreadable: the script took nothing.
        let Ok(Answer::Admitted(_)) = decode_reserve(&config, &plans, bytes) else {
            return false;
        };
        let held = held_of(plans);
        let (Some(settings), Some(command)) = (
            config.redis.as_ref(),
            settle_command(&config, &held, |_, _| 0),
        ) else {
            return false;
        };
        match aigw_shared::redis::send(cx, settings, &command, (), true) {
            Ok(_) => true,
            Err(e) => {
                cx.log(
                    LogLevel::Warn,
                    &format!(
                        "{}: a reservation whose client left could not be given back: {e}",
                        TokenRateLimit::NAME
                    ),
                );
                false
            }
        }
    }
}

/// The reservations the script took for `plans` (every amount held, none settled yet).
pub fn held_of(plans: Vec<Plan>) -> Vec<Held> {
    plans
        .into_iter()
        .map(|p| Held {
            rule: p.rule,
            set: p.set,
            key: p.key,
            owner: 0,
            reserved: p.amounts,
        })
        .collect()
}
