//! Reservations against the `local` backend: each (rule, limit set, key value) is one
//! shared-data record holding one bucket per limit, updated with compare-and-swap
//! ([`aigw_shared::kv::update`]) so every worker VM of the Envoy sees the same levels.
//!
//! A request takes its reservation from each record it falls under, in rule order. If one
//! refuses, what was taken from the earlier ones is given back: another request may briefly see
//! less room than there is (a refusal that a single atomic step would have avoided), never more.
//! After the response [`settle`] gives back (or takes) the difference to the real usage.
//!
//! Proxy-wasm cannot delete shared data, and key values often come from the client (a header,
//! an API key, an IPv6 address): so a rule keeps its counters in a table of `maxKeys` slots.
//! A value's home slot is a hash of it; the record carries the owner's 8-byte tag before the
//! buckets. A value takes its home slot (or one of the next [`PROBES`]) when the slot is free,
//! its own, or idle (every bucket full, no write for [`IDLE_AFTER_NS`]: forgetting it loses
//! nothing, and a request in flight keeps its slot); when all are busy with
//! other live values it shares the home slot (both then count against one set of buckets, the
//! safe side of a limit). Settling touches a record only while the tag it took from is there.

use aigw_shared::consumer::key_hash_hex;
use aigw_shared::host::{Host, HostError};
use aigw_shared::kv;
use sha2::Digest;

use crate::bucket::{decode, encode, take_all, Bucket, Short, Spec};
use crate::config::{Config, Limit, Rule};

/// Key values joined longer than this are replaced by their SHA-256 in the counter key.
const MAX_PLAIN_KEY: usize = 128;

/// Slots looked at for a value: its home slot and the ones after it.
pub const PROBES: u32 = 4;

/// Bytes of the owner tag in front of a slot record's buckets.
const TAG_BYTES: usize = 8;

/// The record (and its owner tag, 0 for an untagged record) of `values` under `rule`'s limit
/// set `set`: a slot of the rule's table, or one record per value when the rule is unbounded.
pub fn record_for<S: AsRef<str>>(rule: &Rule, set: usize, values: &[S]) -> (String, u64) {
    if rule.max_keys == 0 || rule.quota {
        return (counter_key(rule, set, values), 0);
    }
    let mut hasher = sha2::Sha256::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            hasher.update([0x1f]);
        }
        hasher.update(v.as_ref().as_bytes());
    }
    let digest = hasher.finalize();
    let mut tag = [0u8; TAG_BYTES];
    for (t, d) in tag.iter_mut().zip(digest.iter()) {
        *t = *d;
    }
    // 0 marks an untagged record.
    let owner = u64::from_le_bytes(tag).max(1);
    let home = u32::try_from(owner % u64::from(rule.max_keys)).unwrap_or(0);
    (slot_key(rule, set, home), owner)
}

/// The record of slot `slot` of `rule`'s table for limit set `set`.
fn slot_key(rule: &Rule, set: usize, slot: u32) -> String {
    format!("{}{set}:#{slot}", rule.prefix)
}

/// The slot number of a slot record key.
fn slot_of(key: &str) -> Option<u32> {
    key.rsplit_once(":#").and_then(|(_, n)| n.parse().ok())
}

/// Split a tagged record into its owner (0 when absent) and its bucket bytes.
fn untag(current: Option<&[u8]>) -> (u64, Option<&[u8]>) {
    match current.and_then(|c| c.split_first_chunk::<TAG_BYTES>()) {
        Some((tag, rest)) => (u64::from_le_bytes(*tag), Some(rest)),
        None => (0, None),
    }
}

fn tagged(owner: u64, buckets: &[Bucket]) -> Vec<u8> {
    let mut out = owner.to_le_bytes().to_vec();
    out.extend_from_slice(&encode(buckets));
    out
}

/// How long a slot must have gone without a write before its owner can be forgotten: a
/// request still in flight (a long stream) keeps its slot though its reservation has refilled,
/// so its settlement (the usage beyond the reservation) is not dropped.
pub const IDLE_AFTER_NS: u64 = 15 * 60 * 1_000_000_000;

/// Every bucket is full at `now` (after its refill) and the record was not written for
/// [`IDLE_AFTER_NS`]: the record's owner has nothing to lose if it is forgotten.
fn idle(buckets: &[Bucket], specs: &[Spec], now: u64) -> bool {
    let written = buckets.iter().map(|b| b.last_ns).max().unwrap_or(0);
    if now.saturating_sub(written) < IDLE_AFTER_NS {
        return false;
    }
    buckets.iter().zip(specs).all(|(b, s)| {
        let mut b = *b;
        b.refill(s, now);
        b.level >= s.capacity
    })
}

/// The counter key of `values` under `rule`'s limit set `set`.
pub fn counter_key<S: AsRef<str>>(rule: &Rule, set: usize, values: &[S]) -> String {
    let mut joined = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            joined.push('\u{1f}');
        }
        joined.push_str(v.as_ref());
    }
    if joined.len() > MAX_PLAIN_KEY {
        joined = key_hash_hex(&joined);
    }
    format!("{}{set}:{joined}", rule.prefix)
}

/// Amounts a request wants from one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The rule.
    pub rule: usize,
    /// Its limit set for this request's key values.
    pub set: usize,
    /// The record (for a slot table: the home slot).
    pub key: String,
    /// The value's owner tag in a slot table; 0 when the rule keeps one record per value.
    pub owner: u64,
    /// Milli-units per limit of the set.
    pub amounts: Vec<i64>,
}

/// Numbers for one family of `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauge {
    /// The bucket's capacity (limit + burst), in units.
    pub limit: u64,
    /// Units left.
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset_ns: u64,
}

/// The most constraining limit of each family among those a request touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Tokens and cost.
    pub tokens: Option<Gauge>,
    /// Requests.
    pub requests: Option<Gauge>,
}

impl Status {
    fn fold(&mut self, limit: &Limit, bucket: &Bucket, spec: &Spec) {
        let g = Gauge {
            limit: limit.capacity,
            remaining: bucket.remaining(),
            reset_ns: bucket.reset_ns(spec),
        };
        let slot = if limit.measure.is_token_family() {
            &mut self.tokens
        } else {
            &mut self.requests
        };
        *slot = Some(tighter(*slot, g));
    }

    /// Count `g` in the tokens family (`tokens`) or the requests family.
    pub fn note(&mut self, tokens: bool, g: Gauge) {
        let slot = if tokens {
            &mut self.tokens
        } else {
            &mut self.requests
        };
        *slot = Some(tighter(*slot, g));
    }

    fn merge(&mut self, other: Status) {
        if let Some(g) = other.tokens {
            self.tokens = Some(tighter(self.tokens, g));
        }
        if let Some(g) = other.requests {
            self.requests = Some(tighter(self.requests, g));
        }
    }
}

fn tighter(a: Option<Gauge>, b: Gauge) -> Gauge {
    match a {
        Some(a)
            if (a.remaining, std::cmp::Reverse(a.reset_ns))
                <= (b.remaining, std::cmp::Reverse(b.reset_ns)) =>
        {
            a
        }
        _ => b,
    }
}

/// What a request holds in one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The rule.
    pub rule: usize,
    /// Its limit set.
    pub set: usize,
    /// The record.
    pub key: String,
    /// The owner tag the record had when the reservation was taken (0: untagged).
    pub owner: u64,
    /// Milli-units taken per limit.
    pub reserved: Vec<i64>,
}

impl Held {
    /// What goes back to each limit (negative: what is taken) when `actual(self, limit)` was
    /// really used; `None` when every reservation was exact.
    pub fn deltas(&self, actual: impl Fn(&Held, usize) -> i64) -> Option<Vec<i64>> {
        let deltas: Vec<i64> = self
            .reserved
            .iter()
            .enumerate()
            .map(|(i, r)| r.saturating_sub(actual(self, i)))
            .collect();
        deltas.iter().any(|d| *d != 0).then_some(deltas)
    }
}

/// The outcome of [`reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Everything was taken.
    Admitted {
        /// What to settle later.
        held: Vec<Held>,
        /// For the response headers.
        status: Status,
    },
    /// A record refused; nothing is held.
    Refused {
        /// The rule that refused.
        rule: usize,
        /// How long until it would fit, or never.
        short: Short,
        /// For the refusal's headers.
        status: Status,
    },
}

/// The buckets of a record: a quota without a record is empty, any other limit full.
fn load(current: Option<&[u8]>, rule: &Rule, specs: &[Spec], now: u64) -> Vec<Bucket> {
    if rule.quota {
        vec![crate::quota::load(current, now)]
    } else {
        decode(current, specs, now)
    }
}

/// Take every plan's amounts at `now`, all or nothing.
pub fn reserve(
    host: &dyn Host,
    config: &Config,
    now: u64,
    plans: Vec<Plan>,
) -> Result<Verdict, HostError> {
    let mut held: Vec<Held> = Vec::with_capacity(plans.len());
    let mut status = Status::default();
    for plan in plans {
        let Some(rule) = config.rules.get(plan.rule) else {
            continue;
        };
        let Some(set) = rule.sets.get(plan.set) else {
            continue;
        };
        let take = |buckets: &mut Vec<Bucket>| {
            let taken = take_all(buckets, &set.specs, now, &plan.amounts);
            let mut st = Status::default();
            if !rule.quota {
                for ((limit, b), spec) in set.limits.iter().zip(buckets.iter()).zip(&set.specs) {
                    st.fold(limit, b, spec);
                }
            }
            taken.map(|()| st).map_err(|(_, s)| (s, st))
        };
        let (result, key, owner) =
            if rule.quota && matches!(host.shared_data(&plan.key), Ok((None, _))) {
                // A value never given a quota (maybe one a client made up): refused from an empty
                // bucket without writing a record, so such values do not grow shared data.
                let mut buckets = load(None, rule, &set.specs, now);
                (Ok(take(&mut buckets)), plan.key, 0)
            } else if plan.owner == 0 {
                let result = kv::update(host, &plan.key, |current| {
                    let mut buckets = load(current, rule, &set.specs, now);
                    let r = take(&mut buckets);
                    (encode(&buckets), r)
                });
                (result, plan.key, 0)
            } else {
                take_slot(host, rule, plan.set, &set.specs, now, &plan, take)
            };
        match result {
            Ok(Ok(st)) => {
                status.merge(st);
                held.push(Held {
                    rule: plan.rule,
                    set: plan.set,
                    key,
                    owner,
                    reserved: plan.amounts,
                });
            }
            Ok(Err((short, st))) => {
                status.merge(st);
                // Best effort: a failed give-back only leaves the earlier records fuller
                // than they should be until the refill catches up.
                let _ = settle(host, config, now, &held, |_, _| 0);
                return Ok(Verdict::Refused {
                    rule: plan.rule,
                    short,
                    status,
                });
            }
            Err(e) => {
                let _ = settle(host, config, now, &held, |_, _| 0);
                return Err(e);
            }
        }
    }
    Ok(Verdict::Admitted { held, status })
}

/// What a take from one record gives: the status, or why it does not fit.
type Taken = Result<Status, (Short, Status)>;

/// Take from the first slot of the value's probe sequence that is free, its own or idle; else
/// from its home slot, shared with the value that holds it. Returns the result, the record and
/// the owner tag it had.
fn take_slot(
    host: &dyn Host,
    rule: &Rule,
    set: usize,
    specs: &[Spec],
    now: u64,
    plan: &Plan,
    mut take: impl FnMut(&mut Vec<Bucket>) -> Taken,
) -> (Result<Taken, HostError>, String, u64) {
    let table = rule.max_keys.max(1);
    let home = slot_of(&plan.key).unwrap_or(0);
    let probes = PROBES.min(table);
    let slot = |probe: u32| slot_key(rule, set, (home + probe) % table);
    let is_own = |probe: u32| {
        host.shared_data(&slot(probe))
            .ok()
            .and_then(|(bytes, _)| bytes)
            .is_some_and(|b| untag(Some(&b)).0 == plan.owner)
    };
    // Set once the later probes were searched for the value's own slot.
    let mut looked_ahead = false;
    let mut probe = 0;
    while probe < probes {
        let key = slot(probe);
        let mut vacant = false;
        let result = kv::update(host, &key, |current| {
            let (owner, rest) = untag(current);
            let mut buckets = decode(rest, specs, now);
            if owner != plan.owner {
                let free = owner == 0 || idle(&buckets, specs, now);
                // Free or idle but written before: the value's own slot may be further on
                // (taken while this one was busy), and must be used first: starting over on
                // fresh buckets here while it holds the value's usage would be a bypass. A slot
                // never written is before no slot of the value's.
                if !free || (current.is_some() && !looked_ahead) {
                    vacant = free;
                    // Unchanged (no write).
                    return (current.unwrap_or_default().to_vec(), None);
                }
                buckets = decode(None, specs, now);
            }
            let r = take(&mut buckets);
            (tagged(plan.owner, &buckets), Some(r))
        });
        match result {
            Ok(Some(r)) => return (Ok(r), key, plan.owner),
            Ok(None) if vacant && !looked_ahead => {
                looked_ahead = true;
                if let Some(own) = (probe + 1..probes).find(|q| is_own(*q)) {
                    probe = own;
                }
                // Else this probe again, to be taken now.
            }
            Ok(None) => probe += 1,
            Err(e) => return (Err(e), key, plan.owner),
        }
    }
    // Every slot is busy: share the home slot, whose owner stays.
    let mut shared_owner = 0;
    let result = kv::update(host, &plan.key, |current| {
        let (owner, rest) = untag(current);
        shared_owner = if owner == 0 { plan.owner } else { owner };
        let mut buckets = decode(rest, specs, now);
        let r = take(&mut buckets);
        (tagged(shared_owner, &buckets), r)
    });
    (result, plan.key.clone(), shared_owner)
}

/// Settle what a request holds: `actual(held, limit index)` is what it really used of each
/// limit (milli-units); the difference to the reservation is given back (or taken) at `now`.
pub fn settle(
    host: &dyn Host,
    config: &Config,
    now: u64,
    held: &[Held],
    actual: impl Fn(&Held, usize) -> i64,
) -> Result<(), HostError> {
    let mut first_error = None;
    for h in held {
        let Some(rule) = config.rules.get(h.rule) else {
            continue;
        };
        let Some(set) = rule.sets.get(h.set) else {
            continue;
        };
        let Some(deltas) = h.deltas(&actual) else {
            continue;
        };
        let result = kv::update(host, &h.key, |current| {
            if h.owner == 0 {
                let mut buckets = load(current, rule, &set.specs, now);
                for ((b, spec), d) in buckets.iter_mut().zip(&set.specs).zip(&deltas) {
                    b.add(spec, now, *d);
                }
                return (encode(&buckets), ());
            }
            let (owner, rest) = untag(current);
            if owner != h.owner {
                // The slot went to another value meanwhile (it was idle): not ours to change.
                return (current.unwrap_or_default().to_vec(), ());
            }
            let mut buckets = decode(rest, &set.specs, now);
            for ((b, spec), d) in buckets.iter_mut().zip(&set.specs).zip(&deltas) {
                b.add(spec, now, *d);
            }
            (tagged(owner, &buckets), ())
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket::MILLI;
    use aigw_shared::mock::MockHost;

    const NOW: u64 = 1_700_000_000_000_000_000;

    fn config(json: &str) -> Config {
        Config::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    fn plan(c: &Config, rule: usize, value: &str, amounts: &[i64]) -> Plan {
        let (key, owner) = record_for(&c.rules[rule], 0, &[value]);
        Plan {
            rule,
            set: 0,
            key,
            owner,
            amounts: amounts.to_vec(),
        }
    }

    fn level(host: &MockHost, c: &Config, key: &str) -> Vec<i64> {
        let bytes = host.shared.borrow().get(key).map(|v| v.0.clone());
        let specs = &c.rules[0].sets[0].specs;
        let rest = if slot_of(key).is_some() {
            untag(bytes.as_deref()).1
        } else {
            bytes.as_deref()
        };
        decode(rest, specs, NOW).iter().map(|b| b.level).collect()
    }

    const TWO_LIMITS: &str = r#"{"rules": [{"name": "r", "keys": ["consumer"],
        "limits": [{"tokens": 100, "per": "minute"}, {"requests": 3, "per": "minute"}]}]}"#;

    #[test]
    fn counter_keys_join_values_and_hash_long_ones() {
        let c = config(TWO_LIMITS);
        let r = &c.rules[0];
        assert_eq!(counter_key(r, 0, &["a", "b"]), "aigw-trl:r:0:a\u{1f}b");
        let long = "x".repeat(200);
        let key = counter_key(r, 2, &[long.as_str()]);
        assert_eq!(key.len(), "aigw-trl:r:2:".len() + 64);
    }

    #[test]
    fn a_reservation_is_taken_and_reported_then_settled_to_the_real_usage() {
        let c = config(TWO_LIMITS);
        let host = MockHost::default();
        let p = plan(&c, 0, "team", &[60 * MILLI, MILLI]);
        let key = p.key.clone();
        let Verdict::Admitted { held, status } = reserve(&host, &c, NOW, vec![p]).unwrap() else {
            panic!("refused")
        };
        assert_eq!(
            status.tokens,
            Some(Gauge {
                limit: 100,
                remaining: 40,
                reset_ns: 36_000_000_000
            })
        );
        assert_eq!(status.requests.unwrap().remaining, 2);
        // Used 25 of the 60 reserved: 35 come back; the request stays counted.
        settle(&host, &c, NOW, &held, |_, i| [25 * MILLI, MILLI][i]).unwrap();
        assert_eq!(level(&host, &c, &key), vec![75 * MILLI, 2 * MILLI]);
    }

    #[test]
    fn a_refusal_says_how_long_to_wait_and_takes_nothing() {
        let c = config(TWO_LIMITS);
        let host = MockHost::default();
        let p = || plan(&c, 0, "team", &[60 * MILLI, MILLI]);
        assert!(matches!(
            reserve(&host, &c, NOW, vec![p()]).unwrap(),
            Verdict::Admitted { .. }
        ));
        let v = reserve(&host, &c, NOW, vec![p()]).unwrap();
        // 20 tokens short at 100 per minute: 12 s.
        assert_eq!(
            v,
            Verdict::Refused {
                rule: 0,
                short: Short::Wait(12_000_000_000),
                status: Status {
                    tokens: Some(Gauge {
                        limit: 100,
                        remaining: 40,
                        reset_ns: 36_000_000_000
                    }),
                    requests: Some(Gauge {
                        limit: 3,
                        remaining: 2,
                        reset_ns: 20_000_000_000
                    }),
                },
            }
        );
        assert_eq!(level(&host, &c, &p().key), vec![40 * MILLI, 2 * MILLI]);
    }

    #[test]
    fn a_later_rule_refusing_gives_back_what_earlier_rules_took() {
        let c = config(
            r#"{"rules": [
                {"name": "wide", "limits": [{"tokens": 1000, "per": "minute"}]},
                {"name": "narrow", "keys": ["consumer"], "limits": [{"tokens": 10, "per": "minute"}]}]}"#,
        );
        let host = MockHost::default();
        let (key, owner) = record_for(&c.rules[0], 0, &[] as &[&str]);
        let wide = Plan {
            rule: 0,
            set: 0,
            key,
            owner,
            amounts: vec![50 * MILLI],
        };
        let narrow = plan(&c, 1, "t", &[50 * MILLI]);
        let v = reserve(&host, &c, NOW, vec![wide.clone(), narrow]).unwrap();
        assert!(matches!(
            v,
            Verdict::Refused {
                rule: 1,
                short: Short::Never,
                ..
            }
        ));
        assert_eq!(level(&host, &c, &wide.key), vec![1000 * MILLI]);
    }

    fn slots(max_keys: u32) -> Config {
        slots_per(max_keys, "minute")
    }

    fn slots_per(max_keys: u32, per: &str) -> Config {
        config(&format!(
            r#"{{"rules": [{{"name": "r", "keys": ["header:x-k"], "maxKeys": {max_keys},
                "limits": [{{"tokens": 100, "per": "{per}"}}]}}]}}"#
        ))
    }

    fn admitted(v: &Verdict) -> &[Held] {
        match v {
            Verdict::Admitted { held, .. } => held,
            Verdict::Refused { .. } => panic!("refused: {v:?}"),
        }
    }

    #[test]
    fn client_chosen_key_values_never_grow_the_store_past_the_slot_table() {
        let c = slots(16);
        let host = MockHost::default();
        for i in 0..1000 {
            let v = reserve(
                &host,
                &c,
                NOW,
                vec![plan(&c, 0, &format!("v{i}"), &[MILLI])],
            );
            admitted(&v.unwrap());
        }
        let records = host.shared.borrow().len();
        assert!(records <= 16, "{records} records");
        let unbounded = slots(0);
        let host = MockHost::default();
        for i in 0..100 {
            let p = plan(&unbounded, 0, &format!("v{i}"), &[MILLI]);
            admitted(&reserve(&host, &unbounded, NOW, vec![p]).unwrap());
        }
        assert_eq!(
            host.shared.borrow().len(),
            100,
            "maxKeys 0: one record per value"
        );
    }

    #[test]
    fn a_value_whose_slots_are_busy_shares_its_home_slot_on_the_safe_side() {
        let c = slots(1);
        let host = MockHost::default();
        let a = reserve(&host, &c, NOW, vec![plan(&c, 0, "a", &[10 * MILLI])]).unwrap();
        let b = reserve(&host, &c, NOW, vec![plan(&c, 0, "b", &[20 * MILLI])]).unwrap();
        let (a, b) = (admitted(&a)[0].clone(), admitted(&b)[0].clone());
        assert_eq!(a.key, b.key);
        assert_eq!(
            b.owner, a.owner,
            "b counts against a's buckets, a keeps the slot"
        );
        assert_eq!(level(&host, &c, &a.key), vec![70 * MILLI]);
        // b used 5: 15 come back to the shared buckets.
        settle(&host, &c, NOW, &[b], |_, _| 5 * MILLI).unwrap();
        assert_eq!(level(&host, &c, &a.key), vec![85 * MILLI]);
    }

    #[test]
    fn an_idle_slot_goes_to_a_new_value_and_the_old_holder_no_longer_touches_it() {
        let c = slots(1);
        let host = MockHost::default();
        let a = reserve(&host, &c, NOW, vec![plan(&c, 0, "a", &[10 * MILLI])]).unwrap();
        let a = admitted(&a)[0].clone();
        // Later a's bucket is full again and nothing was written for a while: idle, so c takes
        // the slot with fresh buckets.
        let later = NOW + IDLE_AFTER_NS;
        let v = reserve(&host, &c, later, vec![plan(&c, 0, "c", &[30 * MILLI])]).unwrap();
        let taken = admitted(&v)[0].clone();
        assert_eq!(taken.key, a.key);
        assert_ne!(taken.owner, a.owner);
        // a's late settlement (it used nothing: 10 to give back) must not fill c's bucket.
        settle(&host, &c, later, &[a], |_, _| 0).unwrap();
        let bytes = host.shared.borrow()[&taken.key].0.clone();
        let (owner, rest) = untag(Some(&bytes));
        assert_eq!(owner, taken.owner);
        let specs = &c.rules[0].sets[0].specs;
        assert_eq!(decode(rest, specs, later)[0].level, 70 * MILLI);
    }

    #[test]
    fn a_slot_whose_request_is_still_in_flight_is_not_taken_over_and_its_settlement_counts() {
        let c = slots(1);
        let host = MockHost::default();
        let a = reserve(&host, &c, NOW, vec![plan(&c, 0, "a", &[10 * MILLI])]).unwrap();
        let a = admitted(&a)[0].clone();
        // A minute later a's reservation has refilled, but its stream still runs: c shares.
        let later = NOW + 60_000_000_000;
        let v = reserve(&host, &c, later, vec![plan(&c, 0, "c", &[30 * MILLI])]).unwrap();
        assert_eq!(admitted(&v)[0].owner, a.owner, "c shares a's slot");
        // a's stream used 50, 40 more than reserved: they are taken, not dropped.
        settle(&host, &c, later, std::slice::from_ref(&a), |_, _| {
            50 * MILLI
        })
        .unwrap();
        assert_eq!(level(&host, &c, &a.key), vec![30 * MILLI]);
    }

    #[test]
    fn a_value_keeps_its_own_slot_when_an_earlier_one_falls_idle() {
        let c = slots_per(2, "day");
        let host = MockHost::default();
        let home = |v: &str| record_for(&c.rules[0], 0, &[v]).0;
        let b = (0..)
            .map(|i| format!("b{i}"))
            .find(|b| home(b) == home("a"))
            .unwrap();
        // a holds the home slot (10 used), b the next one (all 100 used).
        let a = reserve(&host, &c, NOW, vec![plan(&c, 0, "a", &[10 * MILLI])]).unwrap();
        let held_b = reserve(&host, &c, NOW, vec![plan(&c, 0, &b, &[100 * MILLI])]).unwrap();
        assert_ne!(admitted(&a)[0].key, admitted(&held_b)[0].key);
        // 2.4 h later a's bucket is full again (idle), b's has refilled 10 of 100.
        let later = NOW + 8_640_000_000_000;
        let v = reserve(&host, &c, later, vec![plan(&c, 0, &b, &[50 * MILLI])]).unwrap();
        assert!(
            matches!(v, Verdict::Refused { .. }),
            "b must not start over on a's idle slot: {v:?}"
        );
        let v = reserve(&host, &c, later, vec![plan(&c, 0, &b, &[10 * MILLI])]).unwrap();
        assert_eq!(admitted(&v)[0].key, admitted(&held_b)[0].key);
    }

    #[test]
    fn values_never_given_a_quota_are_refused_without_a_record_each() {
        let admin = key_hash_hex("admin");
        let c = config(&format!(
            r#"{{"quota": {{"key": "header:x-k", "adminKeys": ["{admin}"]}}}}"#
        ));
        let q = c.rules.iter().position(|r| r.quota).unwrap();
        let host = MockHost::default();
        for i in 0..100 {
            let p = plan(&c, q, &format!("v{i}"), &[MILLI]);
            let v = reserve(&host, &c, NOW, vec![p]).unwrap();
            assert!(matches!(v, Verdict::Refused { .. }), "{v:?}");
        }
        assert_eq!(
            host.shared.borrow().len(),
            0,
            "made-up values leave nothing"
        );
        // A value the admin gave a quota is counted as before.
        let p = plan(&c, q, "paid", &[MILLI]);
        crate::quota::apply(&host, &p.key, Some(&crate::quota::Write::Set(10)), NOW).unwrap();
        admitted(&reserve(&host, &c, NOW, vec![p]).unwrap());
    }

    #[test]
    fn two_workers_sharing_the_store_never_admit_more_than_the_capacity() {
        let c = config(TWO_LIMITS);
        let a = MockHost::default();
        let b = MockHost {
            shared: a.shared.clone(),
            ..MockHost::default()
        };
        let mut admitted = 0;
        for i in 0..10 {
            let host = if i % 2 == 0 { &a } else { &b };
            let p = plan(&c, 0, "team", &[30 * MILLI, MILLI]);
            if let Verdict::Admitted { .. } = reserve(host, &c, NOW, vec![p]).unwrap() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 3, "100 tokens hold three reservations of 30");
    }

    #[test]
    fn without_shared_data_the_error_reaches_the_caller() {
        let c = config(TWO_LIMITS);
        let host = MockHost::new(aigw_shared::host::Capabilities::APISIX);
        let p = plan(&c, 0, "t", &[MILLI, MILLI]);
        assert_eq!(
            reserve(&host, &c, NOW, vec![p]),
            Err(HostError::Unsupported)
        );
    }
}
