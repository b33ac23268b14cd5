//! Circuit breaker per fallback target (provider + backend model): the state machine, pure.
//!
//! Closed: requests go. After `failures` failed answers in a row (429, 5xx, timeout, connect
//! failure: the fallback's `onStatus`), or an error rate of `errorRate` over at least
//! `minRequests` answers in the current `windowSeconds`, it opens for `coolOffSeconds`: requests
//! skip the target. When the cool-off is over it is half-open: the first request that looks
//! claims the one probe (for another cool-off, so a probe that never answers frees the slot),
//! the others still skip. The probe's success closes it; its failure opens it again.
//!
//! The record lives in the host's shared data (one key per target, written with
//! compare-and-swap), so every worker sees one breaker; it is a short line of integers.

use serde::Deserialize;

/// When a target's breaker opens, and for how long.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BreakerPolicy {
    /// Failed answers in a row that open the breaker (0: never by count).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// The error rate (0 < rate <= 1) over the window that opens the breaker (none: count only).
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The fewest answers in the window before the rate counts.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// The error-rate window.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    /// How long an open breaker keeps requests away before one probe is let through.
    #[serde(default = "default_cool_off")]
    pub cool_off_seconds: u64,
}

fn default_failures() -> u32 {
    5
}
fn default_min_requests() -> u32 {
    10
}
fn default_window() -> u64 {
    60
}
fn default_cool_off() -> u64 {
    30
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures: default_failures(),
            error_rate: None,
            min_requests: default_min_requests(),
            window_seconds: default_window(),
            cool_off_seconds: default_cool_off(),
        }
    }
}

/// One target's breaker as stored (all times in Unix seconds; 0: unset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Failed answers in a row.
    pub failures: u32,
    /// Start of the error-rate window.
    pub window_start: i64,
    /// Answers in the window.
    pub window_requests: u32,
    /// Failed answers in the window.
    pub window_errors: u32,
    /// Open until this second (0: closed).
    pub open_until: i64,
    /// A half-open probe is out until this second.
    pub probe_until: i64,
}

/// What a request may do with a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: go.
    Pass,
    /// Half-open and this request claimed the probe: go, and store the returned record.
    Probe(Breaker),
    /// Open (or another request holds the probe): skip the target.
    Skip,
}

impl Breaker {
    /// Read a stored record (anything unreadable is a closed breaker).
    pub fn parse(bytes: &[u8]) -> Self {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let mut n = text
            .split(' ')
            .map(|t| t.trim().parse::<i64>().unwrap_or(0));
        let mut next = || n.next().unwrap_or(0);
        let small = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
        Self {
            failures: small(next()),
            window_start: next(),
            window_requests: small(next()),
            window_errors: small(next()),
            open_until: next(),
            probe_until: next(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{} {} {} {} {} {}",
            self.failures,
            self.window_start,
            self.window_requests,
            self.window_errors,
            self.open_until,
            self.probe_until
        )
        .into_bytes()
    }

    /// Whether a request at `now` may use the target.
    pub fn admit(&self, now: i64, policy: &BreakerPolicy) -> Admit {
        if self.open_until == 0 {
            return Admit::Pass;
        }
        if now < self.open_until || now < self.probe_until {
            return Admit::Skip;
        }
        let cool_off = i64::try_from(policy.cool_off_seconds).unwrap_or(i64::MAX);
        Admit::Probe(Self {
            probe_until: now.saturating_add(cool_off.max(1)),
            ..*self
        })
    }

    /// The target answered well at `now`: closed, the window counts one more answer.
    pub fn succeeded(&self, now: i64, policy: &BreakerPolicy) -> Self {
        let mut next = self.windowed(now, policy);
        next.failures = 0;
        next.open_until = 0;
        next.probe_until = 0;
        if policy.error_rate.is_some() {
            next.window_requests = next.window_requests.saturating_add(1);
        } else {
            next.window_start = 0;
        }
        next
    }

    /// The target failed at `now`. Returns the new record and whether this failure opened it.
    pub fn failed(&self, now: i64, policy: &BreakerPolicy) -> (Self, bool) {
        let mut next = self.windowed(now, policy);
        let was_open = self.open_until != 0;
        next.failures = next.failures.saturating_add(1);
        next.window_requests = next.window_requests.saturating_add(1);
        next.window_errors = next.window_errors.saturating_add(1);
        let by_count = policy.failures > 0 && next.failures >= policy.failures;
        let by_rate = policy.error_rate.is_some_and(|rate| {
            next.window_requests >= policy.min_requests.max(1)
                && f64::from(next.window_errors) >= rate * f64::from(next.window_requests)
        });
        // A failed probe (half-open) opens it again at once.
        let opens = was_open || by_count || by_rate;
        if opens {
            let cool_off = i64::try_from(policy.cool_off_seconds).unwrap_or(i64::MAX);
            next.open_until = now.saturating_add(cool_off.max(1));
            next.probe_until = 0;
        }
        (next, opens && !(was_open && now < self.open_until))
    }

    /// The record with its window restarted when it is over.
    fn windowed(&self, now: i64, policy: &BreakerPolicy) -> Self {
        let window = i64::try_from(policy.window_seconds).unwrap_or(i64::MAX);
        if policy.error_rate.is_none() || now.saturating_sub(self.window_start) >= window {
            return Self {
                window_start: if policy.error_rate.is_some() { now } else { 0 },
                window_requests: 0,
                window_errors: 0,
                ..*self
            };
        }
        *self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures: 3,
            cool_off_seconds: 30,
            ..BreakerPolicy::default()
        }
    }

    #[test]
    fn opens_after_the_configured_failures_in_a_row_and_a_success_resets_the_count() {
        let p = policy();
        let b = Breaker::default();
        let (b, opened) = b.failed(100, &p);
        assert!(!opened);
        let (b, _) = b.failed(101, &p);
        let b = b.succeeded(102, &p);
        assert_eq!(b.failures, 0);
        let (b, _) = b.failed(103, &p);
        let (b, _) = b.failed(104, &p);
        let (b, opened) = b.failed(105, &p);
        assert!(opened);
        assert_eq!(b.admit(106, &p), Admit::Skip);
        assert_eq!(b.admit(134, &p), Admit::Skip);
    }

    #[test]
    fn after_the_cool_off_one_probe_goes_and_the_others_skip() {
        let p = policy();
        let open = Breaker {
            failures: 3,
            open_until: 130,
            ..Breaker::default()
        };
        let Admit::Probe(probing) = open.admit(130, &p) else {
            panic!("the first request after the cool-off probes");
        };
        assert_eq!(probing.admit(131, &p), Admit::Skip, "one probe at a time");
        assert_eq!(
            probing.succeeded(131, &p).admit(131, &p),
            Admit::Pass,
            "a good probe closes it"
        );
        let (again, _) = probing.failed(131, &p);
        assert_eq!(again.open_until, 161, "a failed probe opens it again");
        assert_eq!(again.admit(140, &p), Admit::Skip);
        // A probe that never answered frees the slot after another cool-off.
        assert!(matches!(probing.admit(160, &p), Admit::Probe(_)));
    }

    #[test]
    fn an_error_rate_over_the_window_opens_it_once_enough_answers_were_seen() {
        let p = BreakerPolicy {
            failures: 0,
            error_rate: Some(0.5),
            min_requests: 4,
            window_seconds: 60,
            cool_off_seconds: 10,
        };
        let mut b = Breaker::default();
        b = b.succeeded(0, &p);
        let (next, opened) = b.failed(1, &p);
        assert!(!opened, "two answers are not enough");
        b = next.succeeded(2, &p);
        let (next, opened) = b.failed(3, &p);
        assert!(opened, "2 errors of 4 answers is 50 %");
        assert_eq!(next.admit(5, &p), Admit::Skip);
        // A new window forgets the old answers.
        let quiet = Breaker {
            window_start: 0,
            window_requests: 9,
            window_errors: 4,
            ..Breaker::default()
        };
        let (b, opened) = quiet.failed(70, &p);
        assert!(!opened);
        assert_eq!((b.window_requests, b.window_errors), (1, 1));
    }

    #[test]
    fn records_round_trip_and_garbage_is_a_closed_breaker() {
        let b = Breaker {
            failures: 2,
            window_start: 5,
            window_requests: 7,
            window_errors: 3,
            open_until: 99,
            probe_until: 0,
        };
        assert_eq!(Breaker::parse(&b.encode()), b);
        assert_eq!(Breaker::parse(b"\xff\xfe junk"), Breaker::default());
        assert_eq!(Breaker::default().admit(0, &policy()), Admit::Pass);
    }
}
