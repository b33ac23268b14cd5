//! Retry and fallback across targets, pure: the policy (which answers are retried, the budget of
//! attempts and time, an optional canned answer when every target failed) and the plan of one
//! request (which targets are left, what the last failure was).
//!
//! The first attempt goes through the gateway's own route (the router); each later one is an HTTP
//! callout to the next target's cluster with the client's body translated for that target, and its
//! answer is translated back to the caller's protocol (`filter::failover`). Nothing reaches the
//! client before an answer is chosen, so a streaming client never sees two partial answers.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Deserialize;

use crate::models::Route;

/// Statuses retried on the next key or target by default.
pub const DEFAULT_ON_STATUS: [u16; 5] = [429, 500, 502, 503, 504];

/// The response header counting the upstream attempts of a request that took more than one
/// (read by ai-usage-stats into its record).
pub const ATTEMPTS_HEADER: &str = "x-aigw-attempts";

/// The config's `fallback` object.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FallbackPolicy {
    /// Upstream statuses that make the request go to the next key or target. A timeout (504) and
    /// a connect failure or reset (503 from the router, no answer from a callout) count as theirs.
    #[serde(default = "default_on_status")]
    pub on_status: Vec<u16>,
    /// The most attempts of one request, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The time budget of one request from its complete body: no attempt starts after it, and a
    /// fallback call may not run past it.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The longest one attempt of a request that does not stream may take (the first through
    /// Envoy's `x-envoy-upstream-rq-timeout-ms`, the others as the call's timeout); none: the
    /// budget. Streams are bounded by the budget only (Envoy's timeout covers the whole answer,
    /// which would cut long generations).
    #[serde(default)]
    pub attempt_timeout_ms: Option<u64>,
    /// What the client gets when every target failed (none: the last upstream error, in the
    /// caller's shape).
    #[serde(default)]
    pub response: Option<CannedResponse>,
}

/// A configured answer for when every target failed.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CannedResponse {
    /// Its status.
    #[serde(default = "default_canned_status")]
    pub status: u16,
    /// Its body, sent as it is.
    pub body: String,
    /// Its content type.
    #[serde(default = "default_canned_type")]
    pub content_type: String,
}

fn default_on_status() -> Vec<u16> {
    DEFAULT_ON_STATUS.to_vec()
}
fn default_max_attempts() -> u32 {
    3
}
fn default_timeout_ms() -> u64 {
    60_000
}
fn default_canned_status() -> u16 {
    503
}
fn default_canned_type() -> String {
    "application/json".into()
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        Self {
            on_status: default_on_status(),
            max_attempts: default_max_attempts(),
            timeout_ms: default_timeout_ms(),
            attempt_timeout_ms: None,
            response: None,
        }
    }
}

impl FallbackPolicy {
    /// Whether an answer with `status` (`None`: no answer at all) goes to the next target.
    pub fn retries(&self, status: Option<u16>) -> bool {
        match status {
            None => true,
            Some(s) => self.on_status.contains(&s),
        }
    }
}

/// The last failed attempt: what the client gets when nothing better comes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its status (503 for a call that got no answer).
    pub status: u16,
    /// Its content type.
    pub content_type: Vec<u8>,
    /// Its body.
    pub body: Vec<u8>,
}

/// One request's way through its targets.
#[derive(Debug)]
pub struct Attempts {
    /// Targets not tried yet, in order.
    pub left: VecDeque<Route>,
    /// The target of the attempt under way.
    pub current: Route,
    /// Attempts made so far (the one under way included).
    pub made: u32,
    /// The clock (ns) when the request body was complete.
    pub started_ns: u64,
    /// Targets already retried once with another key of their pool.
    pub key_retried: Vec<usize>,
    /// The request streams (no per-attempt timeout then).
    pub stream: bool,
}

impl Attempts {
    /// A plan starting at `current` with `left` to go.
    pub fn new(current: Route, left: VecDeque<Route>, started_ns: u64, stream: bool) -> Self {
        Self {
            left,
            current,
            made: 1,
            started_ns,
            key_retried: Vec::new(),
            stream,
        }
    }

    /// The time left of the budget at `now_ns` (`None`: spent).
    pub fn time_left(&self, policy: &FallbackPolicy, now_ns: u64) -> Option<Duration> {
        let budget = Duration::from_millis(policy.timeout_ms);
        let spent = Duration::from_nanos(now_ns.saturating_sub(self.started_ns));
        let left = budget.checked_sub(spent).filter(|d| !d.is_zero())?;
        Some(match policy.attempt_timeout_ms {
            Some(ms) if !self.stream => left.min(Duration::from_millis(ms)),
            _ => left,
        })
    }

    /// Whether another attempt may start at `now_ns`.
    pub fn may_retry(&self, policy: &FallbackPolicy, now_ns: u64) -> bool {
        self.made < policy.max_attempts && self.time_left(policy, now_ns).is_some()
    }

    /// The current target failed: when its key was taken out and its pool has another (`rekey`),
    /// it is tried once more first (the next key), else the next target is.
    pub fn failed(&mut self, rekey: bool) {
        let provider = self.current.provider;
        if rekey && !self.key_retried.contains(&provider) {
            self.key_retried.push(provider);
            self.left.push_front(self.current.clone());
        }
    }

    /// Take the next target to try (counted as an attempt).
    pub fn advance(&mut self) -> Option<Route> {
        let next = self.left.pop_front()?;
        self.current = next.clone();
        self.made = self.made.saturating_add(1);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(provider: usize) -> Route {
        Route {
            provider,
            model: format!("m{provider}"),
            rule: Some(0),
        }
    }

    #[test]
    fn the_budget_caps_attempts_and_time() {
        let policy = FallbackPolicy {
            max_attempts: 2,
            timeout_ms: 1000,
            attempt_timeout_ms: Some(300),
            ..FallbackPolicy::default()
        };
        let streamed = Attempts::new(route(0), VecDeque::new(), 0, true);
        assert_eq!(
            streamed.time_left(&policy, 100_000_000),
            Some(Duration::from_millis(900)),
            "a stream is bounded by the budget only"
        );
        let mut a = Attempts::new(route(0), VecDeque::from([route(1), route(2)]), 0, false);
        assert!(a.may_retry(&policy, 100_000_000));
        assert_eq!(
            a.time_left(&policy, 100_000_000),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            a.time_left(&policy, 900_000_000),
            Some(Duration::from_millis(100))
        );
        assert!(!a.may_retry(&policy, 1_000_000_000), "the time is spent");
        assert_eq!(a.advance(), Some(route(1)));
        assert!(!a.may_retry(&policy, 0), "two attempts made");
    }

    #[test]
    fn a_taken_out_key_retries_the_same_target_once_then_moves_on() {
        let mut a = Attempts::new(route(0), VecDeque::from([route(1)]), 0, false);
        a.failed(true);
        assert_eq!(
            a.advance(),
            Some(route(0)),
            "the same target with its next key"
        );
        a.failed(true);
        assert_eq!(a.advance(), Some(route(1)), "only once per target");
        assert_eq!(a.advance(), None);
        assert_eq!(a.made, 3);
    }

    #[test]
    fn no_answer_is_retried_like_a_listed_status() {
        let p = FallbackPolicy::default();
        assert!(p.retries(None));
        assert!(p.retries(Some(429)) && p.retries(Some(503)));
        assert!(!p.retries(Some(400)) && !p.retries(Some(200)));
    }
}
