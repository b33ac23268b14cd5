//! One worker's view of the endpoints: the shared endpoint records ([`crate::store`]) as last
//! read, plus what this worker knows better than the store — its own requests in flight (exact),
//! the blocks it routed and the load reports it learned since it last published them.
//!
//! **Reads** of an endpoint record happen at most once per `load.refreshMs` per worker (the
//! snapshot of a request is otherwise served from this cache). **Writes** are batched: a worker
//! publishes its changes to an endpoint (its in-flight count, routed blocks, newest report) in
//! the request that refreshed the record (one write, with the version just read) and on its tick
//! (every `refreshMs`, 5 ms at least: [`tick_period`]); an end is written at once when the store would
//! otherwise count the worker's requests there too high ([`Fleet::finished`]); a cool-off at once.
//!
//! So another worker's changes reach this one within `refreshMs` of being published, which a busy
//! worker does within `refreshMs` and an idle one within its tick; this worker's own changes
//! count at once in its own picks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use aigw_shared::host::{Host, MetricKind};
use aigw_shared::kv;

use crate::config::Config;
use crate::orca::LoadReport;
use crate::store::{
    self, EndpointRecord, Health, Publish, WorkerCount, WORKER_ID_KEY, WORKER_TTL_NS,
};

/// The tick period when no config asks for a shorter one: how often a worker publishes what it
/// has not yet and adds its counts to the counters, at the most.
pub const TICK: Duration = Duration::from_millis(100);

/// The shortest tick: a worker busier than this publishes with its requests' reads anyway.
pub const MIN_TICK: Duration = Duration::from_millis(5);

/// The tick: every `load.refreshMs` (the shortest of the pools'), between [`MIN_TICK`] and
/// [`TICK`].
pub fn tick_period<'a>(configs: impl IntoIterator<Item = &'a Rc<Config>>) -> Option<Duration> {
    configs
        .into_iter()
        .filter(|c| c.is_active())
        .map(|c| {
            if c.load.refresh.is_zero() {
                TICK
            } else {
                c.load.refresh.clamp(MIN_TICK, TICK)
            }
        })
        .min()
}

// [`Fleet::refresh`] answers with one bit per endpoint of a pool.
const _: () = assert!(crate::config::MAX_ENDPOINTS <= 64);

/// What this worker knows about one endpoint (one per distinct address over every pool).
#[derive(Debug, Default)]
struct Known {
    key: String,
    picks_metric: String,
    picks_id: Option<u32>,
    /// Picks not yet added to the pick counter.
    picks_pending: u64,
    /// The shared record as last read or written.
    rec: EndpointRecord,
    /// The version to write `rec` back with, when it was read (not written) at `read_at`.
    cas: Option<u32>,
    read_at: Option<u64>,
    /// This worker's requests in flight to it.
    in_flight: u32,
    /// What this worker's entry in the shared record says, and since when.
    published_in_flight: u32,
    published_at: u64,
    /// Blocks routed to it since the last publish.
    seq_pending: u64,
    /// The newest report learned since the last publish, with its arrival time.
    report: Option<(LoadReport, u64)>,
}

impl Known {
    fn dirty(&self, now: u64) -> bool {
        self.seq_pending > 0
            || self.report.is_some()
            || self.in_flight != self.published_in_flight
            || (self.in_flight > 0 && now.saturating_sub(self.published_at) >= WORKER_TTL_NS / 4)
    }
}

/// What a request sees of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Seen {
    /// Not in a cool-off.
    pub healthy: bool,
    /// The freshest report (this worker's or the store's), empty when stale or missing.
    pub load: LoadReport,
    /// Requests in flight from every live worker (this one's exact).
    pub in_flight: u32,
    /// The endpoint's prefix sequence counter.
    pub seq: u64,
}

/// A config and the view's index of each of its endpoints.
type Route = (Rc<Config>, Rc<[usize]>);

/// The worker's view of every endpoint of every pool it serves.
#[derive(Debug, Default)]
pub struct Fleet {
    me: Cell<u32>,
    known: RefCell<Vec<Known>>,
    routes: RefCell<Vec<Route>>,
}

impl Fleet {
    /// A view of the endpoints of `configs` (the global config and every `_rules_` entry).
    pub fn new<'a>(configs: impl IntoIterator<Item = &'a Rc<Config>>) -> Self {
        let fleet = Fleet::default();
        for c in configs {
            let _ = fleet.slots(c);
        }
        fleet
    }

    /// The view's index of each of `config`'s endpoints (made once per config).
    pub fn slots(&self, config: &Rc<Config>) -> Rc<[usize]> {
        if let Some((_, s)) = self
            .routes
            .borrow()
            .iter()
            .find(|(c, _)| Rc::ptr_eq(c, config))
        {
            return Rc::clone(s);
        }
        let mut known = self.known.borrow_mut();
        let mut slots = Vec::with_capacity(config.endpoints.len());
        for (key, e) in config.keys.endpoint.iter().zip(&config.endpoints) {
            let i = match known.iter().position(|k| &k.key == key) {
                Some(i) => i,
                None => {
                    known.push(Known {
                        key: key.clone(),
                        picks_metric: e.picks_metric.clone(),
                        ..Known::default()
                    });
                    known.len() - 1
                }
            };
            slots.push(i);
        }
        let slots: Rc<[usize]> = slots.into();
        self.routes
            .borrow_mut()
            .push((Rc::clone(config), Rc::clone(&slots)));
        slots
    }

    /// Read the records of `slots` not read within `every_ns`; bit `i` of the answer is set
    /// when `slots[i]` was read now (a pool has at most 64 endpoints: one bit each).
    pub fn refresh(&self, host: &dyn Host, now: u64, slots: &[usize], every_ns: u64) -> u64 {
        let mut known = self.known.borrow_mut();
        let mut read = 0u64;
        for (i, &s) in slots.iter().enumerate().take(64) {
            let Some(k) = known.get_mut(s) else { continue };
            if k.read_at
                .is_some_and(|at| now.saturating_sub(at) < every_ns && at <= now)
            {
                continue;
            }
            if let Ok((rec, cas)) = store::read_endpoint(host, &k.key) {
                k.rec = rec;
                // The version to write with (for an absent record, one that makes another
                // worker's creation since this read a conflict).
                k.cas = Some(kv::write_cas(cas));
                k.read_at = Some(now);
                read |= 1 << i;
            }
        }
        read
    }

    /// What a request sees of endpoint `slot` at `now`.
    pub fn seen(&self, slot: usize, now: u64, max_age_ns: u64) -> Seen {
        let known = self.known.borrow();
        let Some(k) = known.get(slot) else {
            return Seen {
                healthy: true,
                ..Seen::default()
            };
        };
        let shared = k.rec.fresh_load(now, max_age_ns);
        let load = match k.report {
            Some((r, at))
                if (at >= k.rec.load_at || !store::believable(k.rec.load_at, now))
                    && now.saturating_sub(at) <= max_age_ns =>
            {
                r
            }
            _ => shared,
        };
        Seen {
            healthy: now >= k.rec.down_until || !store::believable_deadline(k.rec.down_until, now),
            load,
            in_flight: k
                .in_flight
                .saturating_add(k.rec.in_flight_of_others(self.me.get(), now)),
            seq: k.rec.seq.wrapping_add(k.seq_pending),
        }
    }

    /// A request was sent to `slot`, which had to load `new_blocks` prompt blocks.
    pub fn picked(&self, slot: usize, new_blocks: u64) {
        if let Some(k) = self.known.borrow_mut().get_mut(slot) {
            k.in_flight = k.in_flight.saturating_add(1);
            k.seq_pending = k.seq_pending.wrapping_add(new_blocks);
            k.picks_pending += 1;
        }
    }

    /// A request sent to `slot` ended; its answer came at `answered` (0: none). The store is
    /// written now when it would otherwise count this worker's requests there too high: by one or
    /// more while the store counts fewer than 8 of them, by more than an eighth of them beyond. A
    /// finished request still counted holds its own pod against the conversation's next turn
    /// (picked by another worker a millisecond later), so small counts are kept exact; a busy
    /// endpoint's count is batched. A request whose pick was never published needs no write (the
    /// store never counted it). The write carries the reports learned meanwhile. No clock read:
    /// it is dated `answered` (or the worker's last read or write).
    pub fn finished(&self, host: &dyn Host, slot: usize, answered: u64) {
        let when = {
            let mut known = self.known.borrow_mut();
            let Some(k) = known.get_mut(slot) else { return };
            k.in_flight = k.in_flight.saturating_sub(1);
            let slack = k.published_in_flight / 8;
            if k.in_flight.saturating_add(slack) >= k.published_in_flight {
                return;
            }
            answered.max(k.read_at.unwrap_or(0)).max(k.published_at)
        };
        self.publish(host, when, slot, Health::Same, false);
    }

    /// `slot` reported `report` at `at`.
    pub fn learned(&self, slot: usize, report: LoadReport, at: u64) {
        if let Some(k) = self.known.borrow_mut().get_mut(slot) {
            if k.report.is_none_or(|(_, t)| at >= t) {
                k.report = Some((report, at));
            }
        }
    }

    /// Publish what this worker has not yet for the slots read in this callback (`read`, as
    /// [`Fleet::refresh`] returned it): one write each, with the version just read.
    pub fn publish_read(&self, host: &dyn Host, now: u64, slots: &[usize], read: u64) {
        for (i, &s) in slots.iter().enumerate().take(64) {
            if read & (1 << i) != 0 {
                self.publish(host, now, s, Health::Same, false);
            }
        }
    }

    /// Write `slot`'s pending changes and `health` to the store (at once, whatever the cache
    /// period), unless there is nothing to write and `force` is false.
    pub fn publish(&self, host: &dyn Host, now: u64, slot: usize, health: Health, force: bool) {
        let Some(me) = self.me(host) else { return };
        let mut known = self.known.borrow_mut();
        let Some(k) = known.get_mut(slot) else { return };
        if !force && health == Health::Same && !k.dirty(now) {
            return;
        }
        let p = Publish {
            worker: me,
            in_flight: k.in_flight,
            seq_delta: k.seq_pending,
            report: k.report,
            health,
        };
        // The version is good only for the record read in this callback.
        let known_rec = match (k.read_at, k.cas) {
            (Some(at), Some(cas)) if at == now => Some((&k.rec, cas)),
            _ => None,
        };
        if let Ok(rec) = store::publish_endpoint(host, &k.key, known_rec, &p, now) {
            k.rec = rec;
            k.cas = None;
            k.seq_pending = 0;
            k.report = None;
            k.published_in_flight = k.in_flight;
            k.published_at = now;
        }
    }

    /// The tick: publish every endpoint with pending changes (or whose in-flight entry needs
    /// rewriting before it expires).
    pub fn on_tick(&self, host: &dyn Host, now: u64) {
        let n = self.known.borrow().len();
        for slot in 0..n {
            self.publish(host, now, slot, Health::Same, false);
        }
    }

    /// Add the picks counted since the last flush to the endpoints' pick counters.
    pub fn flush_picks(&self, host: &dyn Host) {
        let mut known = self.known.borrow_mut();
        for k in known.iter_mut().filter(|k| k.picks_pending > 0) {
            if k.picks_id.is_none() {
                k.picks_id = host
                    .define_metric(MetricKind::Counter, &k.picks_metric)
                    .ok();
            }
            if let Some(id) = k.picks_id {
                let delta = i64::try_from(k.picks_pending).unwrap_or(i64::MAX);
                let _ = host.increment_metric(id, delta);
            }
            k.picks_pending = 0;
        }
    }

    /// This worker's id, taken from a shared counter on first use.
    fn me(&self, host: &dyn Host) -> Option<u32> {
        if self.me.get() == 0 {
            let id = kv::add_counter(host, WORKER_ID_KEY, 1).ok()?;
            self.me.set((id as u32).max(1));
        }
        Some(self.me.get())
    }

    /// This worker's entry in `slot`'s shared record, as last read or written (tests).
    pub fn own_entry(&self, slot: usize) -> Option<WorkerCount> {
        let me = self.me.get();
        let known = self.known.borrow();
        known
            .get(slot)?
            .rec
            .workers
            .iter()
            .find(|w| w.id == me)
            .copied()
    }
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
