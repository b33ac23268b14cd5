//! API-key pools: which key a request uses, and which keys sit out a cooldown.
//!
//! A provider with several `apiKeys` picks one per request by its `keySelection`: `roundRobin`
//! (per worker, the default), `random`, or `consumer` (the same client key always gets the same
//! pool key while that key is healthy: stateful APIs such as files or assistants keep working).
//! A key whose request was answered with a status of `keyHealth.ejectOn` (401, 403 and 429 by
//! default) is taken out for the upstream's `Retry-After` or `keyHealth.cooldownSeconds`. The
//! ejections live in the host's shared data, one record per provider, so every Envoy worker skips
//! the key; a key is named there, in the log and in metrics only by a hash, never by its value.
//! When every key of a pool is out, the one that comes back first is used.

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How a pool picks a key.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Selection {
    /// Each key in turn (per worker).
    #[default]
    RoundRobin,
    /// Any key at random.
    Random,
    /// The same key for the same client key (hashed), among the healthy ones.
    Consumer,
}

/// When a key sits out.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyHealth {
    /// Upstream statuses that take the key out (empty: never).
    #[serde(default = "default_eject_on")]
    pub eject_on: Vec<u16>,
    /// How long a key sits out when the answer has no `Retry-After`.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: u64,
    /// The longest cooldown a `Retry-After` may ask for.
    #[serde(default = "default_max_cooldown")]
    pub max_cooldown_seconds: u64,
}

fn default_eject_on() -> Vec<u16> {
    vec![401, 403, 429]
}

fn default_cooldown() -> u64 {
    60
}

fn default_max_cooldown() -> u64 {
    3600
}

impl Default for KeyHealth {
    fn default() -> Self {
        Self {
            eject_on: default_eject_on(),
            cooldown_seconds: default_cooldown(),
            max_cooldown_seconds: default_max_cooldown(),
        }
    }
}

impl KeyHealth {
    /// How long a key answered with `status` sits out (`retry_after`: the header's value), or
    /// `None` when that status keeps it in.
    pub fn cooldown(&self, status: u16, retry_after: Option<&str>, now_unix: i64) -> Option<u64> {
        if !self.eject_on.contains(&status) {
            return None;
        }
        let asked = retry_after.and_then(|v| retry_after_seconds(v, now_unix));
        Some(
            asked
                .unwrap_or(self.cooldown_seconds)
                .min(self.max_cooldown_seconds),
        )
    }
}

/// A key's name outside the config: the first 8 bytes of its SHA-256.
pub fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    for (slot, byte) in first.iter_mut().zip(digest.iter()) {
        *slot = *byte;
    }
    u64::from_be_bytes(first)
}

/// The shared-data key of `provider`'s ejections.
pub fn shared_key(provider: &str) -> String {
    format!("aigw.ai_proxy.ejected_keys.{provider}")
}

/// The keys of one pool that sit out, by hash, with the Unix second each comes back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ejections(Vec<(u64, i64)>);

impl Ejections {
    /// Read the shared record (`hash until` per line, hex hash); bad lines are skipped.
    pub fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let entries = text
            .lines()
            .filter_map(|line| {
                let (hash, until) = line.split_once(' ')?;
                Some((
                    u64::from_str_radix(hash, 16).ok()?,
                    until.trim().parse().ok()?,
                ))
            })
            .collect();
        Self(entries)
    }

    /// The shared record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for (hash, until) in &self.0 {
            out.push_str(&format!("{hash:016x} {until}\n"));
        }
        out.into_bytes()
    }

    /// When the key hashed `hash` comes back, if it sits out at `now_unix`.
    pub fn until(&self, hash: u64, now_unix: i64) -> Option<i64> {
        self.0
            .iter()
            .find(|(h, until)| *h == hash && *until > now_unix)
            .map(|(_, until)| *until)
    }

    /// Take the key hashed `hash` out until `until` (entries already over are dropped).
    pub fn eject(&mut self, hash: u64, until: i64, now_unix: i64) {
        self.0.retain(|(h, u)| *h != hash && *u > now_unix);
        self.0.push((hash, until));
    }

    /// No key sits out.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a pick needs besides the pool.
#[derive(Debug, Clone, Copy)]
pub struct Pick {
    /// The worker's turn counter (round robin).
    pub turn: usize,
    /// A random number (random selection).
    pub random: u64,
    /// The client key's hash (consumer selection; `None`: no client key, round robin instead).
    pub consumer: Option<u64>,
}

/// The index of the key to use among `hashes` (the pool's key hashes, in config order), skipping
/// those out at `now_unix`; when all are out, the one that comes back first. `None` for an empty
/// pool.
pub fn pick(
    hashes: &[u64],
    selection: Selection,
    ejections: &Ejections,
    now_unix: i64,
    how: Pick,
) -> Option<usize> {
    if hashes.is_empty() {
        return None;
    }
    let slot = |n: usize| match (selection, how.consumer) {
        (Selection::Consumer, Some(c)) => usize::try_from(c % n as u64).unwrap_or(0),
        (Selection::Random, _) => usize::try_from(how.random % n as u64).unwrap_or(0),
        _ => how.turn % n,
    };
    if ejections.is_empty() {
        return Some(slot(hashes.len()));
    }
    let healthy: Vec<usize> = (0..hashes.len())
        .filter(|&i| {
            hashes
                .get(i)
                .is_some_and(|h| ejections.until(*h, now_unix).is_none())
        })
        .collect();
    if healthy.is_empty() {
        return (0..hashes.len()).min_by_key(|&i| {
            hashes
                .get(i)
                .and_then(|h| ejections.until(*h, now_unix))
                .unwrap_or(i64::MIN)
        });
    }
    healthy.get(slot(healthy.len())).copied()
}

/// A `Retry-After` value in seconds from `now_unix`: delta-seconds or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). `None` when it is neither.
pub fn retry_after_seconds(value: &str, now_unix: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(n) = value.parse::<u64>() {
        return Some(n);
    }
    let at = http_date(value)?;
    Some(u64::try_from(at.saturating_sub(now_unix)).unwrap_or(0))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn http_date(value: &str) -> Option<i64> {
    let mut parts = value.split_whitespace();
    let _weekday = parts.next()?;
    let day: i64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(str::parse::<i64>);
    let (h, m, s) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn pool() -> Vec<u64> {
        ["k0", "k1", "k2"].iter().map(|k| key_hash(k)).collect()
    }

    fn by_turn(turn: usize) -> Pick {
        Pick {
            turn,
            random: 0,
            consumer: None,
        }
    }

    #[test]
    fn round_robin_skips_keys_that_sit_out_and_takes_them_back_after() {
        let hashes = pool();
        let mut out = Ejections::default();
        out.eject(hashes[1], NOW + 60, NOW);
        let picked: Vec<_> = (0..4)
            .map(|t| pick(&hashes, Selection::RoundRobin, &out, NOW, by_turn(t)))
            .collect();
        assert_eq!(picked, [Some(0), Some(2), Some(0), Some(2)]);
        let later: Vec<_> = (0..3)
            .map(|t| pick(&hashes, Selection::RoundRobin, &out, NOW + 60, by_turn(t)))
            .collect();
        assert_eq!(later, [Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn when_every_key_sits_out_the_first_back_is_used() {
        let hashes = pool();
        let mut out = Ejections::default();
        out.eject(hashes[0], NOW + 300, NOW);
        out.eject(hashes[1], NOW + 30, NOW);
        out.eject(hashes[2], NOW + 90, NOW);
        assert_eq!(
            pick(&hashes, Selection::RoundRobin, &out, NOW, by_turn(0)),
            Some(1)
        );
    }

    #[test]
    fn a_consumer_keeps_its_key_and_random_spreads() {
        let hashes = pool();
        let none = Ejections::default();
        let c = Pick {
            turn: 0,
            random: 0,
            consumer: Some(key_hash("client-a")),
        };
        let first = pick(&hashes, Selection::Consumer, &none, NOW, c);
        for turn in 1..10 {
            let again = pick(&hashes, Selection::Consumer, &none, NOW, Pick { turn, ..c });
            assert_eq!(again, first);
        }
        let mut seen = [false; 3];
        for random in 0..30u64 {
            let how = Pick {
                turn: 0,
                random: random.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                consumer: None,
            };
            if let Some(i) = pick(&hashes, Selection::Random, &none, NOW, how) {
                seen[i] = true;
            }
        }
        assert_eq!(seen, [true; 3]);
        assert_eq!(
            pick(&[], Selection::RoundRobin, &none, NOW, by_turn(0)),
            None
        );
    }

    #[test]
    fn the_shared_record_round_trips_and_forgets_what_is_over() {
        let mut out = Ejections::default();
        out.eject(7, NOW + 10, NOW);
        out.eject(9, NOW + 20, NOW);
        let back = Ejections::parse(&out.encode());
        assert_eq!(back, out);
        let mut later = back;
        later.eject(11, NOW + 100, NOW + 15);
        assert_eq!(later.until(7, NOW + 15), None, "over: dropped");
        assert_eq!(later.until(9, NOW + 15), Some(NOW + 20));
        assert_eq!(
            Ejections::parse(b"zz 1\n0000000000000007 x\n"),
            Ejections::default()
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date_and_bounded() {
        let health = KeyHealth::default();
        assert_eq!(health.cooldown(429, Some("17"), NOW), Some(17));
        assert_eq!(health.cooldown(429, None, NOW), Some(60));
        assert_eq!(health.cooldown(429, Some("999999"), NOW), Some(3600));
        assert_eq!(health.cooldown(500, Some("5"), NOW), None);
        assert_eq!(health.cooldown(401, Some("soon"), NOW), Some(60));
        // 2023-11-14T22:13:20Z is NOW; 90 s later:
        assert_eq!(
            retry_after_seconds("Tue, 14 Nov 2023 22:14:50 GMT", NOW),
            Some(90)
        );
        assert_eq!(
            retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", NOW),
            Some(0)
        );
        assert_eq!(
            retry_after_seconds("Tue, 14 Foo 2023 22:00:00 GMT", NOW),
            None
        );
    }
}
