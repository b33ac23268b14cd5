//! The `redis` backend (Higress): the same token buckets as [`crate::bucket`], kept in Redis so
//! every gateway replica shares them, taken and settled by Lua scripts that Redis runs
//! atomically (`EVAL`).
//!
//! A request's whole reservation — every rule's record — is one script: all or nothing across
//! records, with no give-back step (the `local` backend needs one). The scripts read Redis's own
//! clock (`TIME`, microseconds), so replicas with skewed clocks still agree. A record is one
//! string, `level,last,level,last,…` (milli-units and microseconds, one pair per limit), that
//! expires when its buckets would be full again: an expired record and a full one are the same,
//! so key values chosen by clients do not pile up.
//!
//! Redis before 5 replicates a script by re-running it, and so refuses a write after `TIME`
//! ("Write commands not allowed after non deterministic commands") unless the script first
//! switches to replicating its writes (`redis.replicate_commands()`, the default and a no-op
//! since 5, still answered by 7): both scripts do.
//!
//! An expiry is capped at ten years and a wait at 2^53 µs, written as integers: Lua numbers
//! are doubles, and a huge debt printed as `4.32e+17` is a value Redis refuses.
//!
//! Replies are decoded with [`aigw_shared::resp`]; anything unexpected is an error for the
//! failure mode, never a guess.

use aigw_shared::resp::{self, Value};

use crate::bucket::{Bucket, Short, Spec};
use crate::config::{Config, Rule};
use crate::limiter::{counter_key, Held, Plan, Status};

/// What both scripts start with: Redis's clock, reading a record, the refill, and writing a
/// record back with its expiry (the `local` backend's arithmetic, [`crate::bucket`]).
macro_rules! lua_prelude {
    () => {
        r"if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
-- The {level, last} pairs of the record at key for m limits; nil when absent or of another shape.
local function load(key, m)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local vals = {}
  for v in string.gmatch(raw, '[^,]+') do vals[#vals + 1] = tonumber(v) end
  if #vals ~= 2 * m then return nil end
  return vals
end
-- Limit i of a record, refilled to now: level, last (a missing record is full).
local function refilled(vals, i, cap, per, period)
  local level, last = cap, now
  if vals then level, last = vals[2 * i - 1], vals[2 * i] end
  if level >= cap then
    level = cap
    if now > last then last = now end
  else
    local add = math.floor(math.max(now - last, 0) * per / period)
    if add > 0 then level = math.min(level + add, cap); last = now end
  end
  return level, last
end
-- Milliseconds until a bucket at level is full again.
local function full_in(level, cap, per, period)
  return math.ceil((cap - level) * period / per / 1000)
end
-- Write a record; it expires once full (at most ten years on, written as an integer).
local function store(key, parts, ttl)
  redis.call('SET', key, table.concat(parts, ','), 'PX', string.format('%d', math.min(ttl, 315360000000) + 1000))
end
"
    };
}

/// Take every record's amounts, all or nothing. KEYS: the records. ARGV, per record: the number
/// of limits `m`, then `m` times capacity, refill per period, period (µs) and amount (all
/// milli-units). Returns `{refusing record (1-based, 0: admitted), wait µs (-1: never), level
/// of every limit after the take (or after the refill when refused)}`.
pub const RESERVE_SCRIPT: &str = concat!(
    "-- aigw ai-token-ratelimit: reserve\n",
    lua_prelude!(),
    r"local a, recs = 1, {}
local refuse, wait, never = 0, 0, false
for k = 1, #KEYS do
  local m = tonumber(ARGV[a]); a = a + 1
  local vals = load(KEYS[k], m)
  local rec = {}
  for i = 1, m do
    local cap, per, period, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    a = a + 4
    local level, last = refilled(vals, i, cap, per, period)
    if amount > cap then
      if not never then refuse, never = k, true end
    elseif level < amount and not never then
      local w = math.min(math.ceil((amount - level) * period / per), 9007199254740991)
      if refuse == 0 or w > wait then refuse, wait = k, w end
    end
    rec[i] = {level, last, cap, per, period, amount}
  end
  recs[k] = rec
end
local out = {refuse, never and -1 or wait}
for k = 1, #KEYS do
  local parts, ttl = {}, 1
  for i, b in ipairs(recs[k]) do
    if refuse == 0 then b[1] = b[1] - b[6] end
    out[#out + 1] = b[1]
    parts[#parts + 1] = string.format('%.0f,%.0f', b[1], b[2])
    ttl = math.max(ttl, full_in(b[1], b[3], b[4], b[5]))
  end
  if refuse == 0 then store(KEYS[k], parts, ttl) end
end
return out
"
);

/// Give back (or take) the difference to the real usage. KEYS: the records. ARGV, per record:
/// `m`, then `m` times capacity, refill per period, period (µs) and delta (milli-units; positive
/// gives back). A record that expired meanwhile starts full. Returns the number of records.
pub const SETTLE_SCRIPT: &str = concat!(
    "-- aigw ai-token-ratelimit: settle\n",
    lua_prelude!(),
    r"local a = 1
for k = 1, #KEYS do
  local m = tonumber(ARGV[a]); a = a + 1
  local vals = load(KEYS[k], m)
  local parts, ttl = {}, 1
  for i = 1, m do
    local cap, per, period, delta = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    a = a + 4
    local level, last = refilled(vals, i, cap, per, period)
    level = math.min(level + delta, cap)
    parts[#parts + 1] = string.format('%.0f,%.0f', level, last)
    ttl = math.max(ttl, full_in(level, cap, per, period))
  end
  store(KEYS[k], parts, ttl)
end
return #KEYS
"
);

/// The Redis key of a plan's record: the counter key (no slot table: records expire).
pub fn record_key<S: AsRef<str>>(rule: &Rule, set: usize, values: &[S]) -> String {
    counter_key(rule, set, values)
}

/// The period a script counts in (µs, at least 1).
fn period_us(spec: &Spec) -> u64 {
    (spec.period_ns / 1000).max(1)
}

/// One record of a script call: its key, its limits and one value per limit.
type Block<'a, V> = (&'a str, &'a [Spec], V);

/// `EVAL script n key… argv…` where each record's ARGV block is `m`, then per limit (capacity,
/// refill, period, value). Written straight into the command's bytes.
fn eval<V: AsRef<[i64]>>(script: &str, blocks: &[Block<'_, V>]) -> Vec<u8> {
    let numbers: usize = blocks.iter().map(|(_, specs, _)| 1 + 4 * specs.len()).sum();
    let keys: usize = blocks.iter().map(|(key, ..)| key.len() + 8).sum();
    let mut c = resp::Command::with_capacity(script.len() + keys + 16 * numbers + 32);
    c.arg(b"EVAL")
        .arg(script.as_bytes())
        .uint(blocks.len() as u64);
    for (key, ..) in blocks {
        c.arg(key.as_bytes());
    }
    for (_, specs, values) in blocks {
        let values = values.as_ref();
        c.uint(specs.len() as u64);
        for (i, spec) in specs.iter().enumerate() {
            c.int(spec.capacity)
                .uint(spec.per_period)
                .uint(period_us(spec))
                .int(values.get(i).copied().unwrap_or(0));
        }
    }
    c.finish()
}

/// The reservation command for `plans` (each plan's `key` a [`record_key`]).
pub fn reserve_command(config: &Config, plans: &[Plan]) -> Vec<u8> {
    let blocks: Vec<Block<'_, &[i64]>> = plans
        .iter()
        .filter_map(|plan| {
            let set = config.rules.get(plan.rule)?.sets.get(plan.set)?;
            Some((
                plan.key.as_str(),
                set.specs.as_slice(),
                plan.amounts.as_slice(),
            ))
        })
        .collect();
    eval(RESERVE_SCRIPT, &blocks)
}

/// The settlement command: `actual(held, limit)` is what was really used; `None` when nothing
/// changes (every reservation was exact).
pub fn settle_command(
    config: &Config,
    held: &[Held],
    actual: impl Fn(&Held, usize) -> i64,
) -> Option<Vec<u8>> {
    let blocks: Vec<Block<'_, Vec<i64>>> = held
        .iter()
        .filter_map(|h| {
            let set = config.rules.get(h.rule)?.sets.get(h.set)?;
            Some((h.key.as_str(), set.specs.as_slice(), h.deltas(&actual)?))
        })
        .collect();
    (!blocks.is_empty()).then(|| eval(SETTLE_SCRIPT, &blocks))
}

/// What the reservation script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Everything was taken; the status for the response headers.
    Admitted(Status),
    /// `plans[index]`'s record refused (nothing was taken).
    Refused {
        /// The refusing plan.
        index: usize,
        /// How long until it would fit, or never.
        short: Short,
        /// For the refusal's headers.
        status: Status,
    },
}

/// Read the reservation script's reply for `plans`.
pub fn decode_reserve(config: &Config, plans: &[Plan], reply: &[u8]) -> Result<Answer, String> {
    let value = resp::decode(reply).map_err(|e| e.to_string())?;
    let items = match &value {
        Value::Error(e) => return Err(format!("Redis refused the script: {e}")),
        v => v.as_array().ok_or("the script's reply is not an array")?,
    };
    let number = |i: usize| {
        items
            .get(i)
            .and_then(Value::as_int)
            .ok_or_else(|| format!("the script's reply lacks item {i}"))
    };
    let refusing = number(0)?;
    let wait_us = number(1)?;
    let mut status = Status::default();
    let mut next = 2;
    let mut known = 0;
    for plan in plans {
        let Some(rule) = config.rules.get(plan.rule) else {
            continue;
        };
        let Some(set) = rule.sets.get(plan.set) else {
            continue;
        };
        known += 1;
        for (limit, spec) in set.limits.iter().zip(&set.specs) {
            let level = number(next)?;
            next += 1;
            let bucket = Bucket { level, last_ns: 0 };
            status.note(
                limit.measure.is_token_family(),
                crate::limiter::Gauge {
                    limit: limit.capacity,
                    remaining: bucket.remaining(),
                    reset_ns: bucket.reset_ns(spec),
                },
            );
        }
    }
    if next != items.len() {
        return Err("the script's reply has the wrong length".to_owned());
    }
    if refusing == 0 {
        return Ok(Answer::Admitted(status));
    }
    let index = usize::try_from(refusing - 1)
        .ok()
        .filter(|i| *i < known)
        .ok_or("the script named no record of this request")?;
    let short = match u64::try_from(wait_us) {
        Ok(us) => Short::Wait(us.saturating_mul(1000).max(1)),
        Err(_) => Short::Never,
    };
    Ok(Answer::Refused {
        index,
        short,
        status,
    })
}

/// Whether a settlement's reply says it was applied.
pub fn settled(reply: &[u8]) -> Result<(), String> {
    match resp::decode(reply).map_err(|e| e.to_string())? {
        Value::Int(_) => Ok(()),
        Value::Error(e) => Err(format!("Redis refused the script: {e}")),
        other => Err(format!("unexpected settlement reply {other:?}")),
    }
}
