//! Token buckets in integer milli-units: the limit arithmetic, with no host in sight.
//!
//! A limit of `L` per period `P` with burst `B` is a bucket of capacity `L + B`, refilled
//! continuously at `L / P`. A request takes its reservation out before it is forwarded (all or
//! nothing) and the difference to its real usage is given back, or taken, afterwards. Giving
//! back never fills a bucket above its capacity; taking after the fact may leave it below zero
//! (a debt the refill pays off before anyone else is admitted).
//!
//! Amounts are milli-units (a token, a cost unit or a request is 1000) so weighted costs and
//! slow refills (a day's limit refills a fraction of a token per millisecond) keep their
//! fractions. Time is the host's wall clock in nanoseconds; a clock that goes back is treated
//! as standing still.
//!
//! The buckets of one limit set live in one shared-data record: 16 bytes per bucket, the level
//! (`i64`, milli-units) and the time it was last refilled (`u64`, ns), little-endian.

use std::time::Duration;

/// Milli-units per unit (token, cost unit, request).
pub const MILLI: i64 = 1000;

/// Bytes per bucket in a record.
pub const BUCKET_BYTES: usize = 16;

/// One limit's shape: capacity and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Capacity in milli-units: `(limit + burst) * 1000`.
    pub capacity: i64,
    /// Refill in milli-units per `period_ns`: `limit * 1000`.
    pub per_period: u64,
    /// The period in nanoseconds.
    pub period_ns: u64,
}

impl Spec {
    /// A limit of `limit` units per `period` with `burst` more units of capacity.
    pub fn new(limit: u64, burst: u64, period: Duration) -> Self {
        let milli = |v: u64| v.saturating_mul(MILLI as u64);
        let capacity = i64::try_from(milli(limit.saturating_add(burst))).unwrap_or(i64::MAX);
        Self {
            capacity,
            per_period: milli(limit).max(1),
            period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// Milli-units refilled in `elapsed_ns` (rounded down).
    fn refill_in(&self, elapsed_ns: u64) -> i64 {
        let milli =
            u128::from(elapsed_ns) * u128::from(self.per_period) / u128::from(self.period_ns);
        i64::try_from(milli).unwrap_or(i64::MAX)
    }

    /// Nanoseconds the refill needs for `milli` milli-units (rounded up; 0 for none).
    pub fn time_for(&self, milli: i64) -> u64 {
        let Ok(milli) = u128::try_from(milli) else {
            return 0;
        };
        let num = milli * u128::from(self.period_ns);
        let ns = num.div_ceil(u128::from(self.per_period));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// Why a bucket cannot give an amount now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Short {
    /// It will have enough after this many nanoseconds of refill.
    Wait(u64),
    /// The amount is larger than the bucket's capacity: it never fits.
    Never,
}

/// One bucket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Milli-units available now (negative: a debt).
    pub level: i64,
    /// When the level was last refilled (ns).
    pub last_ns: u64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(spec: &Spec, now: u64) -> Self {
        Self {
            level: spec.capacity,
            last_ns: now,
        }
    }

    /// Add what the refill gave since the last refill, up to the capacity.
    pub fn refill(&mut self, spec: &Spec, now: u64) {
        if self.level >= spec.capacity {
            // Full (or over a lowered capacity): nothing accrues while it stays full.
            self.level = spec.capacity;
            self.last_ns = now.max(self.last_ns);
            return;
        }
        let elapsed = now.saturating_sub(self.last_ns);
        let add = spec.refill_in(elapsed);
        if add > 0 {
            // A refill below one milli-unit keeps `last_ns`, so slow refills still accrue.
            self.level = self.level.saturating_add(add).min(spec.capacity);
            self.last_ns = now;
        }
    }

    /// Can `amount` be taken at `now` (after the refill)? The bucket is not changed.
    pub fn check(&self, spec: &Spec, amount: i64) -> Result<(), Short> {
        if amount > spec.capacity {
            return Err(Short::Never);
        }
        if self.level >= amount {
            Ok(())
        } else {
            Err(Short::Wait(
                spec.time_for(amount.saturating_sub(self.level)),
            ))
        }
    }

    /// Add `delta` (negative: take) after the refill, never above the capacity.
    pub fn add(&mut self, spec: &Spec, now: u64, delta: i64) {
        self.refill(spec, now);
        self.level = self.level.saturating_add(delta).min(spec.capacity);
    }

    /// Whole units available now (0 when in debt).
    pub fn remaining(&self) -> u64 {
        u64::try_from(self.level.max(0) / MILLI).unwrap_or(0)
    }

    /// Nanoseconds until the bucket is full again.
    pub fn reset_ns(&self, spec: &Spec) -> u64 {
        spec.time_for(spec.capacity.saturating_sub(self.level))
    }
}

/// Take `amounts[i]` from bucket `i` of a limit set, all or nothing, at `now`.
///
/// Every bucket is refilled first (so the record written back is current either way). On
/// refusal nothing is taken and the longest wait (or `Never`) is returned with the index of the
/// bucket that decided it.
pub fn take_all(
    buckets: &mut [Bucket],
    specs: &[Spec],
    now: u64,
    amounts: &[i64],
) -> Result<(), (usize, Short)> {
    let mut worst: Option<(usize, Short)> = None;
    for (i, ((b, spec), amount)) in buckets.iter_mut().zip(specs).zip(amounts).enumerate() {
        b.refill(spec, now);
        if let Err(short) = b.check(spec, *amount) {
            worst = Some(match (worst, short) {
                (Some((j, Short::Never)), _) => (j, Short::Never),
                (_, Short::Never) => (i, Short::Never),
                (Some((j, Short::Wait(w))), Short::Wait(v)) if w >= v => (j, Short::Wait(w)),
                (_, s) => (i, s),
            });
        }
    }
    if let Some(w) = worst {
        return Err(w);
    }
    for ((b, spec), amount) in buckets.iter_mut().zip(specs).zip(amounts) {
        b.add(spec, now, amount.saturating_neg());
    }
    Ok(())
}

/// The buckets stored in `bytes` for `specs`; a missing record, or one written for another
/// number of limits (the configuration changed), starts full.
pub fn decode(bytes: Option<&[u8]>, specs: &[Spec], now: u64) -> Vec<Bucket> {
    let fresh = || specs.iter().map(|s| Bucket::full(s, now)).collect();
    let Some(bytes) = bytes else {
        return fresh();
    };
    if bytes.len() != specs.len().saturating_mul(BUCKET_BYTES) {
        return fresh();
    }
    bytes
        .chunks_exact(BUCKET_BYTES)
        .zip(specs)
        .map(|(chunk, spec)| {
            let halves = chunk
                .split_at_checked(8)
                .map(|(level, last)| (<[u8; 8]>::try_from(level), <[u8; 8]>::try_from(last)));
            match halves {
                Some((Ok(l), Ok(t))) => Bucket {
                    level: i64::from_le_bytes(l),
                    last_ns: u64::from_le_bytes(t),
                },
                _ => Bucket::full(spec, now),
            }
        })
        .collect()
}

/// The record bytes of `buckets`.
pub fn encode(buckets: &[Bucket]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buckets.len() * BUCKET_BYTES);
    for b in buckets {
        out.extend_from_slice(&b.level.to_le_bytes());
        out.extend_from_slice(&b.last_ns.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * SEC;

    fn per_minute(limit: u64, burst: u64) -> Spec {
        Spec::new(limit, burst, Duration::from_secs(60))
    }

    #[test]
    fn a_new_bucket_is_full_and_gives_its_whole_capacity_then_refuses() {
        let spec = per_minute(100, 0);
        let mut b = [Bucket::full(&spec, T0)];
        assert_eq!(take_all(&mut b, &[spec], T0, &[60 * MILLI]), Ok(()));
        assert_eq!(b[0].remaining(), 40);
        assert_eq!(take_all(&mut b, &[spec], T0, &[40 * MILLI]), Ok(()));
        assert_eq!(b[0].remaining(), 0);
        // One token refills in 0.6 s.
        assert_eq!(
            take_all(&mut b, &[spec], T0, &[MILLI]),
            Err((0, Short::Wait(600_000_000)))
        );
    }

    #[test]
    fn the_refill_is_continuous_and_stops_at_the_capacity() {
        let spec = per_minute(60, 0);
        let mut b = Bucket::full(&spec, T0);
        b.add(&spec, T0, -60 * MILLI);
        b.refill(&spec, T0 + 10 * SEC);
        assert_eq!(b.level, 10 * MILLI);
        b.refill(&spec, T0 + 1000 * SEC);
        assert_eq!(b.level, 60 * MILLI);
        assert_eq!(b.reset_ns(&spec), 0);
    }

    #[test]
    fn a_full_bucket_does_not_store_refill_while_it_waits() {
        let spec = per_minute(60, 0);
        let mut b = Bucket::full(&spec, T0);
        // Full for an hour, then emptied: the hour must not count as refill later.
        b.add(&spec, T0 + 3600 * SEC, -60 * MILLI);
        b.refill(&spec, T0 + 3601 * SEC);
        assert_eq!(b.level, MILLI);
    }

    #[test]
    fn slow_refills_accrue_even_when_checked_every_millisecond() {
        // 1000 tokens a day: one milli-unit every 86.4 ms.
        let spec = Spec::new(1000, 0, Duration::from_secs(86_400));
        let mut b = Bucket::full(&spec, T0);
        b.add(&spec, T0, -1000 * MILLI);
        for ms in 1..=864 {
            b.refill(&spec, T0 + ms * 1_000_000);
        }
        assert!((9..=10).contains(&b.level), "{}", b.level);
    }

    #[test]
    fn burst_adds_capacity_but_not_rate() {
        let spec = per_minute(60, 30);
        let mut b = [Bucket::full(&spec, T0)];
        assert_eq!(take_all(&mut b, &[spec], T0, &[90 * MILLI]), Ok(()));
        b[0].refill(&spec, T0 + 30 * SEC);
        assert_eq!(b[0].remaining(), 30);
    }

    #[test]
    fn an_amount_over_the_capacity_never_fits() {
        let spec = per_minute(100, 0);
        let mut b = [Bucket::full(&spec, T0)];
        assert_eq!(
            take_all(&mut b, &[spec], T0, &[101 * MILLI]),
            Err((0, Short::Never))
        );
        assert_eq!(b[0].remaining(), 100, "nothing taken");
    }

    #[test]
    fn a_limit_set_takes_all_or_nothing_and_reports_the_longest_wait() {
        let tokens = per_minute(100, 0);
        let requests = Spec::new(2, 0, Duration::from_secs(1));
        let specs = [tokens, requests];
        let mut b = decode(None, &specs, T0);
        assert_eq!(take_all(&mut b, &specs, T0, &[10 * MILLI, MILLI]), Ok(()));
        assert_eq!(take_all(&mut b, &specs, T0, &[10 * MILLI, MILLI]), Ok(()));
        // Requests are out (0.5 s to one more); tokens have 80.
        assert_eq!(
            take_all(&mut b, &specs, T0, &[10 * MILLI, MILLI]),
            Err((1, Short::Wait(500_000_000)))
        );
        assert_eq!(b[0].remaining(), 80, "the token bucket kept its level");
        // Tokens short by 20 (12 s) and requests by 0.5 s: the wait is the longer.
        assert_eq!(
            take_all(&mut b, &specs, T0, &[100 * MILLI, MILLI]),
            Err((0, Short::Wait(12 * SEC)))
        );
    }

    #[test]
    fn giving_back_never_overfills_and_taking_after_the_fact_leaves_a_debt() {
        let spec = per_minute(100, 0);
        let mut b = Bucket::full(&spec, T0);
        b.add(&spec, T0, -50 * MILLI);
        b.add(&spec, T0, 80 * MILLI);
        assert_eq!(b.level, 100 * MILLI);
        b.add(&spec, T0, -130 * MILLI);
        assert_eq!(b.level, -30 * MILLI);
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.check(&spec, MILLI), Err(Short::Wait(18_600_000_000)));
        assert_eq!(b.reset_ns(&spec), 78 * SEC);
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let spec = per_minute(60, 0);
        let mut b = Bucket::full(&spec, T0);
        b.add(&spec, T0, -60 * MILLI);
        b.refill(&spec, T0 - 30 * SEC);
        assert_eq!(b.level, 0);
    }

    #[test]
    fn records_round_trip_and_a_record_of_another_shape_starts_full() {
        let specs = [per_minute(100, 0), per_minute(5, 0)];
        let b = vec![
            Bucket {
                level: -7,
                last_ns: 42,
            },
            Bucket {
                level: 3000,
                last_ns: 43,
            },
        ];
        let bytes = encode(&b);
        assert_eq!(bytes.len(), 32);
        assert_eq!(decode(Some(&bytes), &specs, T0), b);
        let one = decode(Some(&bytes), &specs[..1], T0);
        assert_eq!(one, vec![Bucket::full(&specs[0], T0)]);
        assert_eq!(decode(Some(b"garbage"), &specs, T0).len(), 2);
    }
}
