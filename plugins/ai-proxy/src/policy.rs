//! Which of a rule's targets (its own provider and its `fallbacks`) goes first: the rule's
//! `policy`, pure. The order is the attempt order; the circuit breaker then skips open targets.
//!
//! - `priority` (default): as configured.
//! - `weighted`: one target drawn by `weight` goes first, the rest keep their order.
//! - `leastCost`: cheapest first by the config's `prices` (input + output per million tokens;
//!   targets without a price last), sorted once at configure time.
//! - `leastLatency`: the lowest EWMA first — of the time to first token for streamed requests, of
//!   the whole answer otherwise — as every worker measured it (shared data); a target without a
//!   sample yet goes first, so each is measured.
//! - `errorRate`: the fewest recent failures first (the breaker's window and failures in a row).

use serde::Deserialize;

/// A rule's policy.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Policy {
    /// As configured.
    #[default]
    Priority,
    /// Drawn by weight.
    Weighted,
    /// Cheapest first.
    LeastCost,
    /// Fastest first (EWMA per target, shared by the workers).
    LeastLatency,
    /// Fewest recent failures first.
    ErrorRate,
}

impl Policy {
    /// Whether the order depends on what the workers measured (read from shared data).
    pub fn measured(self) -> bool {
        matches!(self, Self::LeastLatency | Self::ErrorRate)
    }
}

/// A price per million tokens.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Price {
    /// Input tokens.
    #[serde(default)]
    pub input: f64,
    /// Output tokens.
    #[serde(default)]
    pub output: f64,
}

impl Price {
    /// The number targets are sorted by.
    pub fn total(&self) -> f64 {
        self.input + self.output
    }
}

/// The smoothing of the latency averages (weight of the newest sample).
pub const EWMA_ALPHA: f64 = 0.3;

/// A target's measured latencies (milliseconds), as stored in shared data.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    /// EWMA of the whole answer.
    pub total_ms: f64,
    /// EWMA of the time to the first token (first body bytes).
    pub ttft_ms: f64,
    /// Samples taken.
    pub samples: u64,
}

impl Latency {
    /// Read a stored record (garbage: no samples).
    pub fn parse(bytes: &[u8]) -> Self {
        let text = std::str::from_utf8(bytes).unwrap_or_default();
        let mut parts = text.split(' ');
        let mut f = || parts.next().and_then(|t| t.trim().parse::<f64>().ok());
        match (f(), f(), f()) {
            (Some(total_ms), Some(ttft_ms), Some(samples))
                if total_ms.is_finite() && ttft_ms.is_finite() && samples >= 0.0 =>
            {
                Self {
                    total_ms,
                    ttft_ms,
                    samples: samples as u64,
                }
            }
            _ => Self::default(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        format!("{:.1} {:.1} {}", self.total_ms, self.ttft_ms, self.samples).into_bytes()
    }

    /// With one more sample.
    pub fn add(&self, total_ms: f64, ttft_ms: f64) -> Self {
        if self.samples == 0 {
            return Self {
                total_ms,
                ttft_ms,
                samples: 1,
            };
        }
        let mix = |old: f64, new: f64| old + EWMA_ALPHA * (new - old);
        Self {
            total_ms: mix(self.total_ms, total_ms),
            ttft_ms: mix(self.ttft_ms, ttft_ms),
            samples: self.samples.saturating_add(1),
        }
    }

    /// The score of a target for a request (`stream`: by time to first token).
    pub fn score(&self, stream: bool) -> f64 {
        if self.samples == 0 {
            return 0.0;
        }
        if stream {
            self.ttft_ms
        } else {
            self.total_ms
        }
    }
}

/// Put the target at `first` in front, the others keeping their order.
pub fn to_front<T>(items: &mut [T], first: usize) {
    if let Some(head) = items.get_mut(..=first) {
        head.rotate_right(1);
    }
}

/// The index drawn by `weights` from a random number (`None`: no positive weight).
pub fn draw(weights: &[u32], random: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = random % total;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

/// Sort `items` by `key`, lowest first, keeping the configured order among equals.
pub fn by_score<T>(items: &mut [T], key: impl Fn(&T) -> f64) {
    items.sort_by(|a, b| key(a).total_cmp(&key(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_draw_in_proportion() {
        let weights = [1, 3];
        let picks: Vec<usize> = (0..400u64).filter_map(|r| draw(&weights, r)).collect();
        let second = picks.iter().filter(|i| **i == 1).count();
        assert_eq!(second, 300);
        assert_eq!(draw(&[0, 0], 5), None);
    }

    #[test]
    fn to_front_keeps_the_rest_in_order() {
        let mut v = ["a", "b", "c", "d"];
        to_front(&mut v, 2);
        assert_eq!(v, ["c", "a", "b", "d"]);
        to_front(&mut v, 9);
        assert_eq!(v, ["c", "a", "b", "d"]);
    }

    #[test]
    fn latency_averages_smooth_and_unmeasured_targets_go_first() {
        let l = Latency::default().add(1000.0, 200.0);
        assert_eq!((l.total_ms, l.ttft_ms, l.samples), (1000.0, 200.0, 1));
        let l = l.add(2000.0, 200.0);
        assert!((l.total_ms - 1300.0).abs() < 1e-9);
        assert_eq!(Latency::parse(&l.encode()), l);
        assert_eq!(Latency::default().score(false), 0.0);
        assert_eq!(l.score(true), 200.0);
        assert_eq!(Latency::parse(b"NaN 1 2"), Latency::default());
    }

    #[test]
    fn sorting_by_score_is_stable() {
        let mut v = [("a", 2.0), ("b", 1.0), ("c", 2.0), ("d", 1.0)];
        by_score(&mut v, |x| x.1);
        assert_eq!(v.map(|x| x.0), ["b", "d", "a", "c"]);
    }
}
