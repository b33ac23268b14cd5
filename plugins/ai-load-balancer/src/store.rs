//! What every worker shares, in proxy-wasm shared data, updated with compare-and-swap where two
//! workers may race:
//!
//! - **one record per endpoint** (keyed by its address, so pools naming one server share it):
//!   its cool-off deadline, its latest load report, its prefix sequence counter and, per worker
//!   VM, that worker's requests in flight with the time it last said so ([`EndpointRecord`]);
//! - a bounded **prefix table** of prompt chunks ([`PrefixTable`]);
//! - a bounded **session table** ([`Sessions`]).
//!
//! Workers read endpoint records through their own short-lived cache and publish their changes
//! in batches ([`crate::fleet`]); the prefix and session tables are read per request. Keys are
//! made once at configure time ([`Keys`]); records are small byte strings.

use aigw_shared::host::{Host, HostError};
use aigw_shared::kv;

use crate::config::Config;
use crate::orca::LoadReport;
use crate::prefix::mix;

/// Endpoint stamps a prefix-table entry keeps (the most recent ones win).
pub const ENTRY_ENDPOINTS: usize = 4;
/// Chunk entries one prefix-table slot holds (a fifth evicts the least recently written).
pub const SLOT_WAYS: usize = 4;
/// Prompt blocks per prefix-table chunk: one table entry covers this many blocks.
pub const CHUNK_BLOCKS: usize = 8;
/// Worker entries an endpoint record keeps (more workers: the least recently written goes).
pub const MAX_WORKERS: usize = 128;
/// A worker's in-flight entry older than this no longer counts (its VM is gone: a crash, a
/// reload); live workers rewrite theirs at least every quarter of it.
pub const WORKER_TTL_NS: u64 = 30_000_000_000;

/// Stamps further than this ahead of a reader's clock are not believed. Every worker reads one
/// host clock, so only a garbled record (or one of another format) is that far ahead; believed,
/// it would never go stale.
pub const FUTURE_SLACK_NS: u64 = 1_000_000_000;

/// Whether a stamp `at` is plausible at `now` (not more than [`FUTURE_SLACK_NS`] ahead).
pub fn believable(at: u64, now: u64) -> bool {
    at <= now.saturating_add(FUTURE_SLACK_NS)
}

/// The longest cool-off a configuration may ask for (`unhealthyCoolOffMs`).
pub const MAX_COOL_OFF_MS: u64 = 3_600_000;

/// Whether a cool-off deadline is plausible at `now`: no configuration sets one further ahead
/// than [`MAX_COOL_OFF_MS`] (a garbled one would keep its endpoint out for good).
pub fn believable_deadline(until: u64, now: u64) -> bool {
    until <= now.saturating_add(MAX_COOL_OFF_MS * 1_000_000 + FUTURE_SLACK_NS)
}

/// The shared-data keys of one pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Per endpoint: its record ([`EndpointRecord`]).
    pub endpoint: Vec<String>,
    /// Prefix-table slot key prefix (the slot number follows).
    pub prefix_slot: String,
    /// Session-table slot key prefix.
    pub session_slot: String,
}

/// The counter that hands out worker ids (one per VM, on its first write).
pub const WORKER_ID_KEY: &str = "aigw.lb.worker_ids";

impl Keys {
    /// The keys of `config`'s pool. Endpoint records are keyed by address, so two pools (or
    /// `_rules_`) naming one server share what is known about it.
    pub fn new(config: &Config) -> Self {
        let pool = &config.pool;
        Self {
            endpoint: config
                .endpoints
                .iter()
                .map(|e| format!("aigw.lb.ep.{}", e.address))
                .collect(),
            prefix_slot: format!("aigw.lb.{pool}.pc."),
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

// === the endpoint record ===

/// One worker's requests in flight to an endpoint, as it last published them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCount {
    /// The worker's id ([`WORKER_ID_KEY`]).
    pub id: u32,
    /// Its requests in flight.
    pub in_flight: u32,
    /// When it wrote this (ns).
    pub at: u64,
}

/// Everything shared about one endpoint, in one shared-data value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointRecord {
    /// Skipped until then (ns; 0: not in a cool-off).
    pub down_until: u64,
    /// The newest load report any worker learned (empty: none).
    pub load: LoadReport,
    /// When that report arrived (ns; 0: none).
    pub load_at: u64,
    /// Prompt blocks routed to it so far: the prefix table's clock for this endpoint.
    pub seq: u64,
    /// Per worker, its requests in flight (workers with none are left out).
    pub workers: Vec<WorkerCount>,
}

const RECORD_VERSION: u8 = 1;
const RECORD_HEAD: usize = 37;
const WORKER_BYTES: usize = 16;

impl EndpointRecord {
    /// Decode a stored record; a malformed or foreign one reads as empty.
    pub fn decode(rec: &[u8]) -> EndpointRecord {
        Self::try_decode(rec).unwrap_or_default()
    }

    fn try_decode(rec: &[u8]) -> Option<EndpointRecord> {
        if *rec.first()? != RECORD_VERSION {
            return None;
        }
        let flags = *rec.get(9)?;
        let load = LoadReport {
            kv_cache: (flags & 1 != 0)
                .then(|| u16_at(rec, 10))
                .flatten()
                .map(|p| f64::from(p) / 1000.0),
            waiting: (flags & 2 != 0).then(|| u32_at(rec, 12)).flatten(),
            running: (flags & 4 != 0).then(|| u32_at(rec, 16)).flatten(),
        };
        let n = usize::from(*rec.get(36)?).min(MAX_WORKERS);
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let at = RECORD_HEAD + i * WORKER_BYTES;
            workers.push(WorkerCount {
                id: u32_at(rec, at)?,
                in_flight: u32_at(rec, at + 4)?,
                at: u64_at(rec, at + 8)?,
            });
        }
        Some(EndpointRecord {
            down_until: u64_at(rec, 1)?,
            load,
            load_at: u64_at(rec, 20)?,
            seq: u64_at(rec, 28)?,
            workers,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let n = self.workers.len().min(MAX_WORKERS);
        let mut out = vec![0u8; RECORD_HEAD + n * WORKER_BYTES];
        put(&mut out, 0, &[RECORD_VERSION]);
        put(&mut out, 1, &self.down_until.to_le_bytes());
        let mut flags = 0u8;
        if let Some(kv) = self.load.kv_cache {
            flags |= 1;
            let permille = (kv * 1000.0).round().clamp(0.0, 1000.0) as u16;
            put(&mut out, 10, &permille.to_le_bytes());
        }
        if let Some(w) = self.load.waiting {
            flags |= 2;
            put(&mut out, 12, &w.to_le_bytes());
        }
        if let Some(r) = self.load.running {
            flags |= 4;
            put(&mut out, 16, &r.to_le_bytes());
        }
        put(&mut out, 9, &[flags]);
        put(&mut out, 20, &self.load_at.to_le_bytes());
        put(&mut out, 28, &self.seq.to_le_bytes());
        put(&mut out, 36, &[u8::try_from(n).unwrap_or(0)]);
        for (i, w) in self.workers.iter().take(n).enumerate() {
            let at = RECORD_HEAD + i * WORKER_BYTES;
            put(&mut out, at, &w.id.to_le_bytes());
            put(&mut out, at + 4, &w.in_flight.to_le_bytes());
            put(&mut out, at + 8, &w.at.to_le_bytes());
        }
        out
    }

    /// Requests in flight of every live worker but `me` (entries older than
    /// [`WORKER_TTL_NS`] are a dead VM's and count for nothing).
    pub fn in_flight_of_others(&self, me: u32, now: u64) -> u32 {
        self.workers
            .iter()
            .filter(|w| {
                w.id != me && now.saturating_sub(w.at) < WORKER_TTL_NS && believable(w.at, now)
            })
            .fold(0u32, |n, w| n.saturating_add(w.in_flight))
    }

    /// The load report if younger than `max_age_ns` at `now` (else empty: read as idle).
    pub fn fresh_load(&self, now: u64, max_age_ns: u64) -> LoadReport {
        if self.load_at == 0
            || now.saturating_sub(self.load_at) > max_age_ns
            || !believable(self.load_at, now)
        {
            LoadReport::default()
        } else {
            self.load
        }
    }
}

/// What one worker merges into an endpoint record when it publishes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Publish {
    /// The worker's id.
    pub worker: u32,
    /// Its requests in flight now (its entry is replaced; 0 removes it).
    pub in_flight: u32,
    /// Blocks routed since its last publish (added to the sequence).
    pub seq_delta: u64,
    /// The newest report it learned, with its arrival time (kept if newer than the record's).
    pub report: Option<(LoadReport, u64)>,
    /// A cool-off change.
    pub health: Health,
}

/// A change to an endpoint's cool-off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    /// Unchanged.
    #[default]
    Same,
    /// Skip it until then (ns; a later deadline already stored wins).
    DownUntil(u64),
    /// It answered: end any cool-off.
    Up,
}

impl EndpointRecord {
    /// `self` with `p` merged in at `now`; dead workers' entries are dropped on the way.
    pub fn merged(&self, p: &Publish, now: u64) -> EndpointRecord {
        let mut r = self.clone();
        r.workers.retain(|w| {
            w.id != p.worker && now.saturating_sub(w.at) < WORKER_TTL_NS && believable(w.at, now)
        });
        if p.in_flight > 0 {
            if r.workers.len() >= MAX_WORKERS {
                if let Some(oldest) = r
                    .workers
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, w)| w.at)
                    .map(|(i, _)| i)
                {
                    r.workers.remove(oldest);
                }
            }
            r.workers.push(WorkerCount {
                id: p.worker,
                in_flight: p.in_flight,
                at: now,
            });
        }
        r.seq = r.seq.wrapping_add(p.seq_delta);
        if let Some((report, at)) = p.report {
            if at >= r.load_at || !believable(r.load_at, now) {
                r.load = report;
                r.load_at = at;
            }
        }
        match p.health {
            Health::Same => {}
            Health::DownUntil(until) if believable_deadline(r.down_until, now) => {
                r.down_until = r.down_until.max(until)
            }
            Health::DownUntil(until) => r.down_until = until,
            Health::Up => r.down_until = 0,
        }
        r
    }
}

/// Read an endpoint record: the record (empty when absent) and its version for a later CAS.
pub fn read_endpoint(
    host: &dyn Host,
    key: &str,
) -> Result<(EndpointRecord, Option<u32>), HostError> {
    let (bytes, cas) = host.shared_data(key)?;
    Ok((
        bytes
            .as_deref()
            .map(EndpointRecord::decode)
            .unwrap_or_default(),
        cas,
    ))
}

/// Merge `p` into the endpoint's record. `known` is the record as last read with its version
/// (one write when nobody wrote since); otherwise, or after a conflict, read-modify-write with
/// compare-and-swap. Returns what was stored.
pub fn publish_endpoint(
    host: &dyn Host,
    key: &str,
    known: Option<(&EndpointRecord, u32)>,
    p: &Publish,
    now: u64,
) -> Result<EndpointRecord, HostError> {
    let known = known.map(|(rec, cas)| {
        let next = rec.merged(p, now);
        (next.encode(), cas, next)
    });
    update_known(host, key, known, |cur| {
        let next = cur
            .map(EndpointRecord::decode)
            .unwrap_or_default()
            .merged(p, now);
        (next.encode(), next)
    })
}

/// Write `known`'s bytes with its version (a value built on a read of this callback: one call
/// when nobody wrote since); without one, or after a conflict, [`kv::update`] with `f`.
fn update_known<T>(
    host: &dyn Host,
    key: &str,
    known: Option<(Vec<u8>, u32, T)>,
    f: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T),
) -> Result<T, HostError> {
    if let Some((bytes, cas, out)) = known {
        match host.set_shared_data(key, &bytes, Some(cas)) {
            Ok(()) => return Ok(out),
            Err(HostError::CasMismatch) => {}
            Err(e) => return Err(e),
        }
    }
    kv::update(host, key, f)
}

// === the prefix table ===

/// One endpoint's stamp on a chunk: it was sent the chunk's first `len` blocks (the last of them
/// hashing to `check`, low 32 bits) when its sequence stood at `seq`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    /// Endpoint index in the pool.
    pub ep: u8,
    /// The endpoint's sequence (low 32 bits) when stamped.
    pub seq: u32,
    /// Blocks of the chunk the request that stamped it covered (1..=CHUNK_BLOCKS).
    pub len: u8,
    /// Low 32 bits of the hash of the last of those blocks.
    pub check: u32,
}

const STAMP_BYTES: usize = 10;

/// One entry of the prefix table: a chunk (named by the chained hash of its first block, so by
/// the whole prompt up to there) and the endpoints it was routed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The hash of the chunk's first block.
    pub key: u64,
    /// At most [`ENTRY_ENDPOINTS`] stamps, least recently written first.
    pub stamps: Vec<Stamp>,
}

impl Entry {
    /// Read one entry at `*at`, moving `*at` past it.
    fn read(rec: &[u8], at: &mut usize) -> Option<Entry> {
        let key = u64_at(rec, *at)?;
        let n = usize::from(*rec.get(*at + 8)?);
        *at += 9;
        let mut stamps = Vec::with_capacity(n.min(ENTRY_ENDPOINTS));
        for _ in 0..n {
            let s = Stamp {
                ep: *rec.get(*at)?,
                seq: u32_at(rec, *at + 1)?,
                len: *rec.get(*at + 5)?,
                check: u32_at(rec, *at + 6)?,
            };
            if stamps.len() < ENTRY_ENDPOINTS {
                stamps.push(s);
            }
            *at += STAMP_BYTES;
        }
        Some(Entry { key, stamps })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key.to_le_bytes());
        out.push(u8::try_from(self.stamps.len()).unwrap_or(0));
        for s in &self.stamps {
            out.push(s.ep);
            out.extend_from_slice(&s.seq.to_le_bytes());
            out.push(s.len);
            out.extend_from_slice(&s.check.to_le_bytes());
        }
    }

    /// Endpoint `e`'s stamp, if any.
    pub fn stamp_of(&self, e: u8) -> Option<Stamp> {
        self.stamps.iter().find(|s| s.ep == e).copied()
    }
}

/// One slot: up to [`SLOT_WAYS`] entries, least recently written first. Several ways per slot
/// keep two prompts whose chunks share a slot from evicting each other.
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
        let mut out = Vec::with_capacity(1 + self.0.len() * (9 + ENTRY_ENDPOINTS * STAMP_BYTES));
        out.push(u8::try_from(self.0.len()).unwrap_or(0));
        for e in &self.0 {
            e.write(&mut out);
        }
        out
    }

    fn find(&self, key: u64) -> Option<&Entry> {
        self.0.iter().find(|e| e.key == key)
    }

    /// `self` with endpoint `stamp.ep`'s stamp on chunk `key` replaced by `stamp`; the entry
    /// becomes the most recently written of the slot.
    fn stamped(&self, key: u64, stamp: Stamp) -> Bucket {
        let mut b = self.clone();
        let mut entry = match b.0.iter().position(|e| e.key == key) {
            Some(i) => b.0.remove(i),
            None => Entry {
                key,
                stamps: Vec::new(),
            },
        };
        entry.stamps.retain(|s| s.ep != stamp.ep);
        if entry.stamps.len() >= ENTRY_ENDPOINTS {
            entry.stamps.remove(0);
        }
        entry.stamps.push(stamp);
        if b.0.len() >= SLOT_WAYS {
            b.0.remove(0);
        }
        b.0.push(entry);
        b
    }
}

/// A slot as a lookup read it: its entries and version (None: it was empty), for a write
/// without a second read.
#[derive(Debug, Clone, Default)]
struct Read {
    slot: u64,
    bucket: Bucket,
    cas: Option<u32>,
}

/// The prefix table of one pool, as one request sees it.
pub struct PrefixTable<'a> {
    host: &'a dyn Host,
    keys: &'a Keys,
    slots: u64,
    capacity: u32,
    key: SlotKey,
    /// Slots read by this request (a write reuses the read; a write forgets it).
    reads: Vec<Read>,
}

/// What a lookup found.
#[derive(Debug, Default)]
pub struct Lookup {
    /// Leading blocks each endpoint is believed to hold.
    pub matched: Vec<usize>,
    /// Per endpoint, its stamp on the last chunk it holds (`None` when it holds none).
    pub boundary: Vec<Option<Stamp>>,
}

/// The request's chunk `c`: its first block's hash (the entry key), the blocks it covers and the
/// low 32 bits of its last block's hash. `None` past the end.
fn chunk(hashes: &[u64], c: usize) -> Option<(u64, usize, u32)> {
    let start = c.checked_mul(CHUNK_BLOCKS)?;
    let key = *hashes.get(start)?;
    let len = hashes.len().saturating_sub(start).min(CHUNK_BLOCKS);
    let last = *hashes.get(start + len - 1)?;
    Some((key, len, last as u32))
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
            reads: Vec::new(),
        }
    }

    fn slot(&self, key: u64) -> u64 {
        mix(key) % self.slots
    }

    /// A stamp is alive while fewer than `capacity` blocks went to the endpoint since. A stamp
    /// ahead of `seq_now` is another worker's not yet published (or not yet read): alive.
    fn alive(&self, seq_now: u64, stamped: u32) -> bool {
        let behind = (seq_now as u32).wrapping_sub(stamped);
        behind < self.capacity || behind > u32::MAX - self.capacity
    }

    /// The bucket of `slot` (read once per request).
    fn bucket(&mut self, slot: u64) -> Option<&Read> {
        if let Some(i) = self.reads.iter().position(|r| r.slot == slot) {
            return self.reads.get(i);
        }
        let key = self.key.at(&self.keys.prefix_slot, slot);
        let (bytes, cas) = self.host.shared_data(key).ok()?;
        self.reads.push(Read {
            slot,
            bucket: bytes.as_deref().map(Bucket::decode).unwrap_or_default(),
            cas,
        });
        self.reads.last()
    }

    /// The table's entry for chunk `c` of the request.
    fn entry(&mut self, hashes: &[u64], c: usize) -> Option<Entry> {
        let (key, _, _) = chunk(hashes, c)?;
        let slot = self.slot(key);
        self.bucket(slot)?.bucket.find(key).cloned()
    }

    /// Each endpoint's run of live chunks from chunk 0, found by binary search (chunks are
    /// chained: holding chunk `c` means having been sent the whole prompt up to it), then made
    /// exact inside its last chunk by that stamp's block count and check hash. `seqs` are the
    /// endpoints' sequence counters now. Reads O(log chunks) slots: a 16 KB prompt (32 chunks)
    /// about 6, a 2 KB one 2 or 3.
    pub fn lookup(&mut self, hashes: &[u64], seqs: &[u64]) -> Lookup {
        let n = seqs.len();
        let chunks = hashes.len().div_ceil(CHUNK_BLOCKS);
        let seq = |ep: u8| seqs.get(usize::from(ep)).copied();
        // The longest run any endpoint holds bounds every endpoint's search. The last chunk
        // first: a repeated prompt is found in one read.
        let any_holds = |e: &Entry, t: &Self| {
            e.stamps
                .iter()
                .any(|s| seq(s.ep).is_some_and(|now| t.alive(now, s.seq)))
        };
        let any = match chunks.checked_sub(1) {
            None => 0,
            Some(top) => match self.entry(hashes, top) {
                Some(e) if any_holds(&e, self) => chunks,
                _ => self.search(hashes, top, any_holds),
            },
        };
        let mut matched = Vec::with_capacity(n);
        let mut boundary = Vec::with_capacity(n);
        for ep in 0..n {
            let Ok(id) = u8::try_from(ep) else {
                matched.push(0);
                boundary.push(None);
                continue;
            };
            let holds = |e: &Entry, t: &Self| {
                e.stamp_of(id)
                    .is_some_and(|s| seq(id).is_some_and(|now| t.alive(now, s.seq)))
            };
            // Most endpoints hold all of `any`, or nothing: check those two ends first.
            let held = match any.checked_sub(1) {
                None => 0,
                Some(top) => match self.entry(hashes, top) {
                    Some(e) if holds(&e, self) => any,
                    _ => match self.entry(hashes, 0) {
                        Some(e) if holds(&e, self) => self.search(hashes, top, holds),
                        _ => 0,
                    },
                },
            };
            let last = held
                .checked_sub(1)
                .and_then(|c| self.entry(hashes, c))
                .and_then(|e| e.stamp_of(id));
            matched.push(match (held.checked_sub(1), last) {
                (Some(c), Some(s)) => blocks_held(hashes, c, s),
                _ => 0,
            });
            boundary.push(last);
        }
        Lookup { matched, boundary }
    }

    /// The largest `m` ≤ `limit` such that chunk `m − 1` satisfies `holds` (0 when chunk 0 does
    /// not).
    fn search(
        &mut self,
        hashes: &[u64],
        limit: usize,
        holds: impl Fn(&Entry, &Self) -> bool,
    ) -> usize {
        let (mut lo, mut hi) = (0, limit);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let held = match self.entry(hashes, mid - 1) {
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

    /// Record that the request's chunks went to endpoint `e`, whose sequence now stands at
    /// `seq_now` (moved on by the blocks it did not hold): every chunk whose stamp for `e` would
    /// change is (re)written — the chunks it already held only when their stamp is no longer
    /// recent, so a hot prefix costs no writes, and a conversation's next turn one or two (the
    /// chunk it ended in, now longer, and the new ones). A chunk the lookup read is written with
    /// that read's version (one call), else read-modify-write.
    pub fn record(&mut self, e: usize, hashes: &[u64], found: &Lookup, seq_now: u64) {
        let Ok(ep) = u8::try_from(e) else { return };
        let seq = seq_now as u32;
        let refresh = (self.capacity / 4).max(1);
        // The held run was stamped no earlier than its last chunk: fresh there, fresh all along.
        let fresh_run = found
            .boundary
            .get(e)
            .copied()
            .flatten()
            .filter(|s| seq.wrapping_sub(s.seq) < refresh);
        let held_chunks = found
            .matched
            .get(e)
            .map_or(0, |&m| m.div_ceil(CHUNK_BLOCKS));
        let skip = if fresh_run.is_some() {
            held_chunks.saturating_sub(1)
        } else {
            0
        };
        let chunks = hashes.len().div_ceil(CHUNK_BLOCKS);
        for c in skip..chunks {
            let Some((key, len, check)) = chunk(hashes, c) else {
                break;
            };
            let stamp = Stamp {
                ep,
                seq,
                len: u8::try_from(len).unwrap_or(u8::MAX),
                check,
            };
            let slot = self.slot(key);
            let known = self.reads.iter().position(|r| r.slot == slot);
            if let Some(old) = known
                .and_then(|i| self.reads.get(i))
                .and_then(|r| r.bucket.find(key))
                .and_then(|en| en.stamp_of(ep))
            {
                let same = old.len == stamp.len && old.check == stamp.check;
                if same && seq.wrapping_sub(old.seq) < refresh {
                    continue;
                }
            }
            self.write(slot, key, stamp, known);
        }
    }

    fn write(&mut self, slot: u64, key: u64, stamp: Stamp, known: Option<usize>) {
        let name = self.key.at(&self.keys.prefix_slot, slot);
        // The read is spent either way: after a write its version is stale.
        let read = known.map(|i| self.reads.swap_remove(i));
        let known = read.map(|r| {
            let next = r.bucket.stamped(key, stamp).encode();
            (next, kv::write_cas(r.cas), ())
        });
        let _ = update_known(self.host, name, known, |cur| {
            let b = cur.map(Bucket::decode).unwrap_or_default();
            (b.stamped(key, stamp).encode(), ())
        });
    }
}

/// Blocks held when endpoint's last held chunk is `c` with stamp `s`: through the stamp's last
/// block when the request has that block too (its chained hash proves the same prompt up to
/// there), else the chunk's first block (the entry's key proves that much).
fn blocks_held(hashes: &[u64], c: usize, s: Stamp) -> usize {
    let start = c * CHUNK_BLOCKS;
    let len = usize::from(s.len);
    let same = len > 0
        && hashes
            .get(start + len - 1)
            .is_some_and(|&h| h as u32 == s.check);
    if same {
        start + len
    } else {
        start + 1
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
        (hash == id && now.saturating_sub(at) < self.ttl_ns && believable(at, now))
            .then_some((usize::from(ep), at))
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

fn u16_at(rec: &[u8], at: usize) -> Option<u16> {
    rec.get(at..at + 2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_le_bytes)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
