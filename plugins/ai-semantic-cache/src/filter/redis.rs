//! The exact tier in Redis (the Higress build with `redis` set): a `GET` while the request waits,
//! a `SET … PX` after a stored answer (not waited for). Every replica of every gateway on the
//! same Redis shares it; any failure goes on without the cache (logged, counted).

use aigw_shared::plugin::{Ctx, Next, Reply};
use aigw_shared::redis::Redis;
use aigw_shared::resp::{self, Value};

use super::{Call, Filter, Phase};
use crate::entry::Entry;
use crate::metric;

/// Redis key prefix of the exact tier.
pub const PREFIX: &str = "aigw-cache:";

impl Filter {
    /// The Redis of the exact tier, on a host that can call it.
    pub(super) fn redis(&self) -> Option<&Redis> {
        self.config
            .redis
            .as_ref()
            .filter(|_| self.env.capabilities.redis)
    }

    fn redis_key(&self) -> Option<String> {
        self.lookup.as_ref().map(|l| format!("{PREFIX}{}", l.exact))
    }

    /// Send the lookup; the answer comes to [`Self::on_redis_lookup`].
    pub(super) fn ask_redis(&self, cx: &mut Ctx<'_, Call>) -> Result<(), String> {
        let (Some(redis), Some(key)) = (self.redis(), self.redis_key()) else {
            return Err("no Redis".into());
        };
        let command = resp::command(&["GET", key.as_str()]);
        aigw_shared::redis::send(cx, redis, &command, Call::ExactGet, false)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The lookup answered: a hit, or on to the semantic tier (or the model).
    pub(super) fn on_redis_lookup(&mut self, cx: &mut Ctx<'_, Call>, reply: &Reply) -> Next {
        if self.phase != Phase::Looking {
            return Next::Hold;
        }
        let hit = match reply_value(reply) {
            Ok(Value::Bulk(Some(bytes))) => {
                let key = self.lookup.as_ref().map_or("", |l| l.exact.as_str());
                Entry::from_record(&bytes, Self::now_ns(cx.host), key)
            }
            Ok(Value::Bulk(None)) => None,
            Ok(other) => {
                let why = format!("unexpected reply {other:?}");
                self.failed(cx.host, metric::ERR_REDIS, "the Redis lookup", &why);
                None
            }
            Err(why) => {
                self.failed(cx.host, metric::ERR_REDIS, "the Redis lookup", &why);
                None
            }
        };
        match self.after_exact(cx, hit) {
            aigw_shared::host::Action::Continue => Next::Resume,
            aigw_shared::host::Action::Pause => Next::Hold,
        }
    }

    /// Store `entry` until `expires_ns` (now + the TTL): true when the command went out.
    pub(super) fn store_in_redis(
        &self,
        cx: &mut Ctx<'_, Call>,
        entry: &Entry,
        expires_ns: u64,
    ) -> bool {
        let (Some(redis), Some(key), Some(lookup)) =
            (self.redis(), self.redis_key(), self.lookup.as_ref())
        else {
            return false;
        };
        let record = entry.to_record(expires_ns, &lookup.exact);
        let ttl_ms = self.config.ttl_seconds.saturating_mul(1000).to_string();
        let command = resp::command(&[
            b"SET".as_slice(),
            key.as_bytes(),
            &record,
            b"PX",
            ttl_ms.as_bytes(),
        ]);
        match aigw_shared::redis::send(cx, redis, &command, Call::ExactSet, true) {
            Ok(_) => true,
            Err(e) => {
                self.failed(
                    cx.host,
                    metric::ERR_REDIS,
                    "the Redis store",
                    &e.to_string(),
                );
                false
            }
        }
    }

    /// A store's answer: only a failure is worth a word.
    pub(super) fn on_redis_stored(&self, cx: &mut Ctx<'_, Call>, reply: &Reply) {
        match reply_value(reply) {
            Ok(Value::Simple(_)) => {}
            Ok(other) => {
                let why = format!("unexpected reply {other:?}");
                self.failed(cx.host, metric::ERR_REDIS, "the Redis store", &why);
            }
            Err(why) => self.failed(cx.host, metric::ERR_REDIS, "the Redis store", &why),
        }
    }
}

/// The decoded reply of a Redis call; an error for a failed call or an error reply.
fn reply_value(reply: &Reply) -> Result<Value, String> {
    match reply {
        Reply::Redis(bytes) if bytes.is_empty() => Err("the Redis call failed".into()),
        Reply::Redis(bytes) => match resp::decode(bytes).map_err(|e| e.to_string())? {
            Value::Error(e) => Err(format!("Redis refused: {e}")),
            v => Ok(v),
        },
        _ => Err("not a Redis reply".into()),
    }
}
