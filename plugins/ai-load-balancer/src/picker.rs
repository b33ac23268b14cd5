//! The pick, over a snapshot of every endpoint (pure: no host, deterministic for a given random
//! draw): filter (healthy, then not saturated), score each candidate as Σ weight × scorer value
//! with every scorer in [0, 1], order by score with ties broken by the draw, and return the
//! winner plus the ordered fallback list.

use crate::config::{Config, SaturationPolicy};
use crate::orca::LoadReport;

/// What the gateway knows about one endpoint for this request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EndpointView {
    /// Not in a cool-off after a failure.
    pub healthy: bool,
    /// The latest load report, when fresh (stale and missing reports are empty).
    pub load: LoadReport,
    /// Requests this gateway has in flight to it (all workers).
    pub in_flight: u32,
    /// Leading prompt blocks it is believed to hold.
    pub prefix_blocks: usize,
    /// The request's session is bound to it.
    pub session: bool,
}

/// Why an endpoint won (for the debug log and the decision metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It held the longest prompt prefix that mattered.
    Prefix,
    /// The request's session is bound to it.
    Session,
    /// Load, in-flight or hardware decided.
    Load,
}

/// The outcome of a pick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send to `order[0]`; retries go down the list.
    Route {
        /// Endpoint indexes, best first.
        order: Vec<usize>,
        /// The winner's score.
        score: f64,
        /// What decided.
        reason: Reason,
    },
    /// Every healthy endpoint is saturated and the policy sheds: answer 429.
    Shed,
}

/// One scored candidate.
#[derive(Debug, Clone, Copy)]
struct Scored {
    index: usize,
    score: f64,
    tie: u64,
    saturated: bool,
    over_bound: bool,
}

/// Pick for a request with `total_blocks` hashed prompt blocks and model-matching LoRA flags
/// `lora` (one per endpoint; all false when no adapter matches). `draw` breaks ties (one random
/// value per request).
pub fn pick(
    config: &Config,
    views: &[EndpointView],
    total_blocks: usize,
    lora: &[bool],
    draw: u64,
) -> Decision {
    if views.is_empty() {
        return Decision::Shed;
    }
    // Every endpoint in a cool-off: the cool-off is a hint, not a verdict; try them all.
    let any_healthy = views.iter().any(|v| v.healthy);
    let usable = |v: &EndpointView| v.healthy || !any_healthy;
    let bound = LoadBound::new(config, views, usable);
    let base = PrefixBase {
        total: total_blocks,
        common: views
            .iter()
            .filter(|v| usable(v))
            .map(|v| v.prefix_blocks.min(total_blocks))
            .min()
            .unwrap_or(0),
    };
    let mut scored: Vec<Scored> = views
        .iter()
        .enumerate()
        .filter(|(_, v)| usable(v))
        .map(|(i, v)| Scored {
            index: i,
            score: score(config, i, v, base, lora.get(i).copied().unwrap_or(false)),
            tie: tie_key(draw, i),
            saturated: saturated(config, v),
            over_bound: bound.exceeded(config, i, v),
        })
        .collect();
    if scored.iter().all(|s| s.saturated) && config.saturation.policy == SaturationPolicy::Shed {
        return Decision::Shed;
    }
    // Unsaturated first, then within their load bound, then by score (high first), then by the draw.
    scored.sort_by(|a, b| {
        a.saturated
            .cmp(&b.saturated)
            .then(a.over_bound.cmp(&b.over_bound))
            .then(b.score.total_cmp(&a.score))
            .then(a.tie.cmp(&b.tie))
    });
    let Some(first) = scored.first() else {
        return Decision::Shed;
    };
    let winner = views.get(first.index).copied().unwrap_or_default();
    let reason = if winner.session && config.weights.session > 0.0 {
        Reason::Session
    } else if winner.prefix_blocks > base.common && config.weights.prefix > 0.0 {
        Reason::Prefix
    } else {
        Reason::Load
    };
    Decision::Route {
        score: first.score,
        order: scored.iter().map(|s| s.index).collect(),
        reason,
    }
}

/// Bounded loads (consistent hashing with bounded loads, as Envoy's ring hash
/// `hash_balance_factor`): an endpoint already holding more than `factor` × its weighted share of
/// the requests in flight (this one included) goes after those that do not, so affinity cannot
/// pile every request onto one endpoint (a cold start, one popular prefix).
#[derive(Debug, Clone, Copy)]
struct LoadBound {
    /// Requests in flight on the usable endpoints, plus this one.
    total: f64,
    /// Sum of the usable endpoints' weights.
    weights: f64,
}

impl LoadBound {
    fn new(
        config: &Config,
        views: &[EndpointView],
        usable: impl Fn(&EndpointView) -> bool,
    ) -> Self {
        let mut total = 1.0;
        let mut weights = 0.0;
        for (i, v) in views.iter().enumerate().filter(|(_, v)| usable(v)) {
            total += f64::from(v.in_flight);
            weights += config.endpoints.get(i).map_or(1.0, |e| e.weight);
        }
        Self { total, weights }
    }

    fn exceeded(&self, config: &Config, i: usize, v: &EndpointView) -> bool {
        let factor = config.bounded_load;
        if factor <= 0.0 || self.weights <= 0.0 {
            return false;
        }
        let weight = config.endpoints.get(i).map_or(1.0, |e| e.weight);
        let cap = (factor * self.total * weight / self.weights)
            .ceil()
            .max(1.0);
        f64::from(v.in_flight) >= cap
    }
}

/// Saturated: a fresh report with the queue or the KV cache at or over its threshold.
pub fn saturated(config: &Config, v: &EndpointView) -> bool {
    let s = &config.saturation;
    v.load.waiting.is_some_and(|w| w >= s.queue_threshold)
        || v.load.kv_cache.is_some_and(|k| k >= s.kv_cache_threshold)
}

/// The request's prompt blocks and how many of them every candidate holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixBase {
    /// Hashed prompt blocks.
    pub total: usize,
    /// Leading blocks every usable candidate holds (a system prompt cached everywhere).
    pub common: usize,
}

/// Σ weight × scorer value for endpoint `i`.
///
/// The prefix value is the share of the prefill the endpoint saves beyond what every candidate
/// saves: `(matched − common) / (total − common)`. A system prompt cached on every endpoint then
/// decides nothing, and a conversation's own history counts in full, whatever the system
/// prompt's length (GIE's `matched / total` lets a long shared prompt drown it).
pub fn score(config: &Config, i: usize, v: &EndpointView, base: PrefixBase, lora: bool) -> f64 {
    let w = &config.weights;
    let matched = v.prefix_blocks.min(base.total);
    let prefix = if base.total > base.common {
        matched.saturating_sub(base.common) as f64 / (base.total - base.common) as f64
    } else {
        0.0
    };
    // Missing reports read as an idle endpoint: a new pod gets traffic and then reports. The
    // queue scorer falls linearly to 0 at twice the saturation threshold: a short queue only
    // breaks ties, a long one is the saturation filter's business.
    let queue_span = 2.0 * f64::from(config.saturation.queue_threshold.max(1));
    let queue = (1.0 - f64::from(v.load.waiting.unwrap_or(0)) / queue_span).max(0.0);
    let kv = 1.0 - v.load.kv_cache.unwrap_or(0.0);
    let in_flight = 1.0 / (1.0 + f64::from(v.in_flight));
    let hardware = match config.endpoints.get(i) {
        Some(e) if config.max_weight > 0.0 => e.weight / config.max_weight,
        _ => 0.0,
    };
    w.prefix * prefix
        + w.queue * queue
        + w.kv_cache * kv
        + w.in_flight * in_flight
        + w.session * f64::from(u8::from(v.session))
        + w.lora * f64::from(u8::from(lora))
        + w.hardware * hardware
}

fn tie_key(draw: u64, i: usize) -> u64 {
    crate::prefix::mix(draw ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
#[path = "picker_tests.rs"]
mod tests;
