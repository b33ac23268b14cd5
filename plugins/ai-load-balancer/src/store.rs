//! What every worker shares, in proxy-wasm shared data (compare-and-swap where two workers may
//! race): per endpoint its latest load report, requests in flight, cool-off deadline and prefix
//! sequence counter; a bounded table of routed prefix-block hashes; a bounded session table.
//! Keys are made once at configure time ([`Keys`]); records are small fixed-size byte strings.

use std::cell::RefCell;

use aigw_shared::host::{Host, HostError};
use aigw_shared::kv;

use crate::config::Config;
use crate::orca::LoadReport;
use crate::prefix::mix;

/// Endpoint references a prefix-table entry keeps (the most recent ones win).
pub const ENTRY_ENDPOINTS: usize = 4;
/// Block hashes one prefix-table slot holds (a fifth evicts the least recently written).
pub const SLOT_WAYS: usize = 4;

/// The shared-data keys of one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Per endpoint: load report.
    pub load: Vec<String>,
    /// Per endpoint: in-flight counter.
    pub in_flight: Vec<String>,
    /// Per endpoint: unhealthy-until (ns).
    pub health: Vec<String>,
    /// Per endpoint: blocks routed so far (the prefix table's clock).
    pub seq: Vec<String>,
    /// Prefix-table slot key prefix (the slot number follows).
    pub prefix_slot: String,
    /// Session-table slot key prefix.
    pub session_slot: String,
}

impl Keys {
    /// The keys of `config`'s pool. Load, health and in-flight are keyed by address, so two pools
    /// (or `_rules_`) naming one server share what is known about it.
    pub fn new(config: &Config) -> Self {
        let per = |what: &str| -> Vec<String> {
            config
                .endpoints
                .iter()
                .map(|e| format!("aigw.lb.ep.{}.{what}", e.address))
                .collect()
        };
        let pool = &config.pool;
        Self {
            load: per("load"),
            in_flight: per("inflight"),
            health: per("down_until"),
            seq: config
                .endpoints
                .iter()
                .map(|e| format!("aigw.lb.{pool}.seq.{}", e.address))
                .collect(),
            prefix_slot: format!("aigw.lb.{pool}.px."),
            session_slot: format!("aigw.lb.{pool}.ss."),
        }
    }
}

/// A reusable key buffer: the prefix, then a slot number written in place.
#[derive(Debug, Default)]
pub struct SlotKey(String);

impl SlotKey {
    /// `prefix` followed by `slot`.
    pub fn at(&mut self, prefix: &str, slot: u64) -> &str {
        use std::fmt::Write;
        self.0.clear();
        self.0.push_str(prefix);
        let _ = write!(self.0, "{slot}");
        &self.0
    }
}

// === load reports ===

/// Store `report` for the endpoint, stamped `now` (fields the report lacks stay unknown).
pub fn put_load(host: &dyn Host, key: &str, report: &LoadReport, now: u64) {
    let mut rec = [0u8; 19];
    let mut flags = 0u8;
    if let Some(kv) = report.kv_cache {
        flags |= 1;
        let permille = (kv * 1000.0).round().clamp(0.0, 1000.0) as u16;
        put(&mut rec, 1, &permille.to_le_bytes());
    }
    if let Some(w) = report.waiting {
        flags |= 2;
        put(&mut rec, 3, &w.to_le_bytes());
    }
    if let Some(r) = report.running {
        flags |= 4;
        put(&mut rec, 7, &r.to_le_bytes());
    }
    put(&mut rec, 11, &now.to_le_bytes());
    if let Some(b) = rec.first_mut() {
        *b = flags;
    }
    // Last writer wins: a newer report replaces an older one, no compare-and-swap needed.
    let _ = host.set_shared_data(key, &rec, None);
}

/// The endpoint's report if it is younger than `max_age_ns` (else empty: read as idle).
pub fn get_load(host: &dyn Host, key: &str, now: u64, max_age_ns: u64) -> LoadReport {
    let Ok((Some(rec), _)) = host.shared_data(key) else {
        return LoadReport::default();
    };
    let (Some(&flags), Some(at)) = (rec.first(), u64_at(&rec, 11)) else {
        return LoadReport::default();
    };
    if now.saturating_sub(at) > max_age_ns {
        return LoadReport::default();
    }
    LoadReport {
        kv_cache: (flags & 1 != 0)
            .then(|| rec.get(1..3))
            .flatten()
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| f64::from(u16::from_le_bytes(b)) / 1000.0),
        waiting: (flags & 2 != 0).then(|| u32_at(&rec, 3)).flatten(),
        running: (flags & 4 != 0).then(|| u32_at(&rec, 7)).flatten(),
    }
}

// === in flight and health ===

/// Requests in flight (never below 0 when read).
pub fn in_flight(host: &dyn Host, key: &str) -> u32 {
    let n = kv::read_counter(host, key).unwrap_or(0);
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Add `delta` to the in-flight counter.
pub fn add_in_flight(host: &dyn Host, key: &str, delta: i64) -> Result<i64, HostError> {
    kv::add_counter(host, key, delta)
}

/// True when the endpoint is not in a cool-off at `now`.
pub fn healthy(host: &dyn Host, key: &str, now: u64) -> bool {
    match host.shared_data(key) {
        Ok((Some(rec), _)) => u64_at(&rec, 0).is_none_or(|until| now >= until),
        _ => true,
    }
}

/// Skip the endpoint until `until` (ns).
pub fn mark_down(host: &dyn Host, key: &str, until: u64) {
    let _ = host.set_shared_data(key, &until.to_le_bytes(), None);
}

/// End a cool-off early (the endpoint answered).
pub fn mark_up(host: &dyn Host, key: &str) {
    if let Ok((Some(rec), _)) = host.shared_data(key) {
        if u64_at(&rec, 0).is_some_and(|u| u != 0) {
            let _ = host.set_shared_data(key, &0u64.to_le_bytes(), None);
        }
    }
}

// === the prefix table ===

/// One entry of the prefix table: a block hash and the endpoints it was routed to, each with the
/// endpoint's block sequence number at the time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The block hash.
    pub hash: u64,
    /// `(endpoint index, sequence)` pairs, at most [`ENTRY_ENDPOINTS`].
    pub routed: Vec<(u8, u32)>,
}

impl Entry {
    /// Read one entry at `*at`, moving `*at` past it.
    fn read(rec: &[u8], at: &mut usize) -> Option<Entry> {
        let hash = u64_at(rec, *at)?;
        let n = usize::from(*rec.get(*at + 8)?);
        *at += 9;
        let mut routed = Vec::with_capacity(n.min(ENTRY_ENDPOINTS));
        for _ in 0..n {
            let e = (*rec.get(*at)?, u32_at(rec, *at + 1)?);
            if routed.len() < ENTRY_ENDPOINTS {
                routed.push(e);
            }
            *at += 5;
        }
        Some(Entry { hash, routed })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.push(u8::try_from(self.routed.len()).unwrap_or(0));
        for (e, s) in &self.routed {
            out.push(*e);
            out.extend_from_slice(&s.to_le_bytes());
        }
    }

    /// The sequence stamped for endpoint `e`, if any.
    pub fn seq_of(&self, e: u8) -> Option<u32> {
        self.routed.iter().find(|(x, _)| *x == e).map(|(_, s)| *s)
    }
}

/// One slot: up to [`SLOT_WAYS`] entries, least recently written first. Several ways per slot
/// keep two prompts whose blocks share a slot from evicting each other (a lookup walk stops at
/// the first missing block, so one lost block would cut a whole prefix short).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket(pub Vec<Entry>);

impl Bucket {
    fn decode(rec: &[u8]) -> Bucket {
        let n = rec.first().map_or(0, |&n| usize::from(n));
        let mut at = 1;
        let mut entries = Vec::with_capacity(n.min(SLOT_WAYS));
        for _ in 0..n.min(SLOT_WAYS) {
            match Entry::read(rec, &mut at) {
                Some(e) => entries.push(e),
                None => break,
            }
        }
        Bucket(entries)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.0.len() * 29);
        out.push(u8::try_from(self.0.len()).unwrap_or(0));
        for e in &self.0 {
            e.write(&mut out);
        }
        out
    }

    fn take(&mut self, hash: u64) -> Option<Entry> {
        let i = self.0.iter().position(|e| e.hash == hash)?;
        Some(self.0.remove(i))
    }
}

/// The prefix table of one pool, as one request sees it.
pub struct PrefixTable<'a> {
    host: &'a dyn Host,
    keys: &'a Keys,
    slots: u64,
    capacity: u32,
    key: SlotKey,
}

/// What a lookup found: blocks matched per endpoint, and the entries read (for the record step).
#[derive(Debug, Default)]
pub struct Lookup {
    /// Leading blocks each endpoint is believed to hold.
    pub matched: Vec<usize>,
    /// Each endpoint's sequence counter when read (0: not needed, not read).
    pub seqs: Vec<u32>,
    /// Per endpoint, its stamp on the last block it holds (`None` when it holds none).
    pub boundary: Vec<Option<u32>>,
}

impl<'a> PrefixTable<'a> {
    /// The table of `config`'s pool.
    pub fn new(host: &'a dyn Host, config: &Config, keys: &'a Keys) -> Self {
        Self {
            host,
            keys,
            slots: u64::from(config.prefix.table_slots.max(1)),
            capacity: config.prefix.capacity_blocks,
            key: SlotKey::default(),
        }
    }

    fn slot(&self, hash: u64) -> u64 {
        mix(hash) % self.slots
    }

    fn alive(&self, seq_now: u32, stamped: u32) -> bool {
        seq_now.wrapping_sub(stamped) < self.capacity
    }

    /// Each endpoint's run of consecutive live blocks from block 0, found by binary search:
    /// hashes are chained, so holding block `i` means having been sent the whole prefix up to
    /// it (the blocks before were stamped with it, or later). A search reads O(log n) slots, not
    /// one per matched block: a 16 KB prompt costs about 8 reads, not 256.
    pub fn lookup(&mut self, hashes: &[u64]) -> Lookup {
        // Endpoints' sequence counters, read only for endpoints a probed entry names.
        let n = self.keys.seq.len();
        let seqs: RefCell<Vec<Option<u32>>> = RefCell::new(vec![None; n]);
        let seq_of = |t: &Self, ep: usize| -> Option<u32> {
            if let Some(v) = seqs.borrow().get(ep).copied().flatten() {
                return Some(v);
            }
            let key = t.keys.seq.get(ep)?;
            let v = (kv::read_counter(t.host, key).unwrap_or(0) & i64::from(u32::MAX)) as u32;
            if let Some(slot) = seqs.borrow_mut().get_mut(ep) {
                *slot = Some(v);
            }
            Some(v)
        };
        let mut probes: Vec<Option<Option<Entry>>> = vec![None; hashes.len()];
        // The longest prefix any endpoint holds bounds every endpoint's search.
        let any = self.search(hashes, &mut probes, hashes.len(), |e, t| {
            e.routed
                .iter()
                .any(|&(ep, s)| seq_of(t, usize::from(ep)).is_some_and(|now| t.alive(now, s)))
        });
        let mut matched = Vec::with_capacity(n);
        let mut boundary = Vec::with_capacity(n);
        for ep in 0..n {
            let Ok(id) = u8::try_from(ep) else {
                matched.push(0);
                boundary.push(None);
                continue;
            };
            let held = self.search(hashes, &mut probes, any, |e, t| {
                e.seq_of(id)
                    .is_some_and(|s| seq_of(t, ep).is_some_and(|now| t.alive(now, s)))
            });
            let stamp = held
                .checked_sub(1)
                .and_then(|i| probes.get(i).cloned().flatten().flatten())
                .and_then(|e| e.seq_of(id));
            matched.push(held);
            boundary.push(stamp);
        }
        let seqs = seqs
            .into_inner()
            .into_iter()
            .map(|v| v.unwrap_or(0))
            .collect();
        Lookup {
            matched,
            seqs,
            boundary,
        }
    }

    /// The largest `m` ≤ `limit` such that block `m − 1` satisfies `holds` (0 when block 0 does
    /// not); slots read once per lookup (`probes`).
    fn search(
        &mut self,
        hashes: &[u64],
        probes: &mut [Option<Option<Entry>>],
        limit: usize,
        holds: impl Fn(&Entry, &Self) -> bool,
    ) -> usize {
        let (mut lo, mut hi) = (0, limit.min(hashes.len()));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let held = match self.probe(hashes, probes, mid - 1) {
                Some(e) => holds(&e, self),
                None => false,
            };
            if held {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }

    /// The entry of block `i` (read once).
    fn probe(
        &mut self,
        hashes: &[u64],
        probes: &mut [Option<Option<Entry>>],
        i: usize,
    ) -> Option<Entry> {
        if let Some(Some(seen)) = probes.get(i) {
            return seen.clone();
        }
        let h = *hashes.get(i)?;
        let key = self.key.at(&self.keys.prefix_slot, self.slot(h));
        let entry = match self.host.shared_data(key) {
            Ok((Some(rec), _)) => Bucket::decode(&rec).take(h),
            _ => None,
        };
        if let Some(slot) = probes.get_mut(i) {
            *slot = Some(entry.clone());
        }
        entry
    }

    /// Record that the request's blocks went to endpoint `e`: its sequence moves on by the
    /// blocks it did not hold (what the server had to load), and every block not stamped
    /// recently for `e` is (re)stamped — a hot prefix costs no writes.
    pub fn record(&mut self, e: usize, hashes: &[u64], found: &Lookup) {
        let (Some(seq_key), Ok(ep)) = (self.keys.seq.get(e), u8::try_from(e)) else {
            return;
        };
        let held = found.matched.get(e).copied().unwrap_or(0);
        let new_blocks = hashes.len().saturating_sub(held) as i64;
        // Nothing new: the counter stays, and it was read by the lookup (no second read).
        let known = found.seqs.get(e).copied().filter(|_| held > 0);
        let now = match known {
            Some(v) if new_blocks == 0 => v,
            _ => match kv::add_counter(self.host, seq_key, new_blocks) {
                Ok(v) => (v & i64::from(u32::MAX)) as u32,
                Err(_) => return,
            },
        };
        let refresh = (self.capacity / 4).max(1);
        // The held prefix was stamped no earlier than its last block: fresh there, fresh all along.
        let fresh = found
            .boundary
            .get(e)
            .copied()
            .flatten()
            .is_some_and(|s| now.wrapping_sub(s) < refresh);
        let skip = if fresh { held } else { 0 };
        for &h in hashes.iter().skip(skip) {
            let slot = self.slot(h);
            let key = self.key.at(&self.keys.prefix_slot, slot).to_owned();
            let _ = kv::update(self.host, &key, |cur| {
                let mut bucket = cur.map(Bucket::decode).unwrap_or_default();
                let mut entry = bucket.take(h).unwrap_or(Entry {
                    hash: h,
                    routed: Vec::new(),
                });
                entry.routed.retain(|(x, _)| *x != ep);
                if entry.routed.len() >= ENTRY_ENDPOINTS {
                    entry.routed.remove(0);
                }
                entry.routed.push((ep, now));
                if bucket.0.len() >= SLOT_WAYS {
                    bucket.0.remove(0);
                }
                bucket.0.push(entry);
                (bucket.encode(), ())
            });
        }
    }
}

// === sessions ===

/// The session table of one pool: bounded slots, a colliding session takes the slot over.
pub struct Sessions<'a> {
    host: &'a dyn Host,
    prefix: &'a str,
    slots: u64,
    ttl_ns: u64,
    key: SlotKey,
}

impl<'a> Sessions<'a> {
    /// The session table of `config`'s pool.
    pub fn new(host: &'a dyn Host, config: &Config, keys: &'a Keys) -> Self {
        Self {
            host,
            prefix: &keys.session_slot,
            slots: u64::from(config.session.slots.max(1)),
            ttl_ns: u64::try_from(config.session.ttl.as_nanos()).unwrap_or(u64::MAX),
            key: SlotKey::default(),
        }
    }

    /// The endpoint session `id` is bound to, and when it was last bound.
    pub fn get(&mut self, id: u64, now: u64) -> Option<(usize, u64)> {
        let key = self.key.at(self.prefix, mix(id) % self.slots);
        let Ok((Some(rec), _)) = self.host.shared_data(key) else {
            return None;
        };
        let (hash, ep, at) = (u64_at(&rec, 0)?, *rec.get(8)?, u64_at(&rec, 9)?);
        (hash == id && now.saturating_sub(at) < self.ttl_ns).then_some((usize::from(ep), at))
    }

    /// Bind session `id` to endpoint `e` at `now`.
    pub fn bind(&mut self, id: u64, e: usize, now: u64) {
        let Ok(ep) = u8::try_from(e) else { return };
        let mut rec = [0u8; 17];
        put(&mut rec, 0, &id.to_le_bytes());
        put(&mut rec, 8, &[ep]);
        put(&mut rec, 9, &now.to_le_bytes());
        let key = self.key.at(self.prefix, mix(id) % self.slots);
        let _ = self.host.set_shared_data(key, &rec, None);
    }

    /// Rebinding needed: not bound to `e`, or bound long enough ago that the TTL should move.
    pub fn needs_bind(&self, bound: Option<(usize, u64)>, e: usize, now: u64) -> bool {
        match bound {
            Some((x, at)) => x != e || now.saturating_sub(at) > self.ttl_ns / 4,
            None => true,
        }
    }
}

/// A session id's hash (the id itself is never stored).
pub fn session_hash(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

// === byte helpers ===

fn put(rec: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = rec.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn u64_at(rec: &[u8], at: usize) -> Option<u64> {
    rec.get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
}

fn u32_at(rec: &[u8], at: usize) -> Option<u32> {
    rec.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
