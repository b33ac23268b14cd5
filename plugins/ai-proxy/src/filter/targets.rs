//! A request's targets in the order of its rule's `policy` (see [`crate::policy`]), with the
//! shared-data reads the measured policies need, and the latency samples `leastLatency` learns
//! from (one EWMA record per target, updated with compare-and-swap by every worker).

use std::collections::VecDeque;

use aigw_shared::host::Host;

use crate::breaker::Breaker;
use crate::config::Config;
use crate::models::Route;
use crate::policy::{by_score, draw, to_front, Latency, Policy};
use crate::state::State;

/// The shared-data key of a target's latency record.
pub(super) fn latency_key(config: &Config, route: &Route) -> String {
    let provider = config
        .providers
        .get(route.provider)
        .map_or("", |p| p.name.as_str());
    format!("aigw.ai_proxy.latency.{provider}.{}", route.model)
}

fn stored(host: &dyn Host, key: &str) -> Option<Vec<u8>> {
    host.shared_data(key).ok().and_then(|(v, _)| v)
}

/// Order `targets` (the rule's own first, then its fallbacks, as configured) by `policy`.
pub(super) fn order(
    config: &Config,
    state: &State,
    host: &dyn Host,
    targets: &mut VecDeque<Route>,
    stream: bool,
    now_unix: i64,
) -> Policy {
    let Some(first) = targets.front() else {
        return Policy::Priority;
    };
    let (policy, weights) = config.policy(first);
    let items = targets.make_contiguous();
    match policy {
        Policy::Priority => {}
        Policy::Weighted => {
            if let Some(i) = draw(&weights, state.random(now_unix)) {
                to_front(items, i);
            }
        }
        Policy::LeastCost => by_score(items, |r| {
            config.price(r).map_or(f64::INFINITY, |p| p.total())
        }),
        Policy::LeastLatency => {
            let scores: Vec<(Route, f64)> = items
                .iter()
                .map(|r| {
                    let l = stored(host, &latency_key(config, r))
                        .map(|b| Latency::parse(&b))
                        .unwrap_or_default();
                    (r.clone(), l.score(stream))
                })
                .collect();
            by_score(items, |r| {
                scores.iter().find(|(s, _)| s == r).map_or(0.0, |(_, v)| *v)
            });
        }
        Policy::ErrorRate => {
            let scores: Vec<(Route, f64)> = items
                .iter()
                .map(|r| {
                    let b = stored(host, &super::breakers::breaker_key(config, r))
                        .map(|b| Breaker::parse(&b))
                        .unwrap_or_default();
                    let rate = if b.window_requests > 0 {
                        f64::from(b.window_errors) / f64::from(b.window_requests)
                    } else {
                        0.0
                    };
                    (r.clone(), f64::from(b.failures) + rate)
                })
                .collect();
            by_score(items, |r| {
                scores.iter().find(|(s, _)| s == r).map_or(0.0, |(_, v)| *v)
            });
        }
    }
    policy
}

/// Add a latency sample of `route` (milliseconds: the whole answer, the first token).
pub(super) fn sample(config: &Config, host: &dyn Host, route: &Route, total_ms: f64, ttft_ms: f64) {
    let key = latency_key(config, route);
    let updated = aigw_shared::kv::update(host, &key, |current| {
        let old = current.map(Latency::parse).unwrap_or_default();
        (old.add(total_ms, ttft_ms).encode(), ())
    });
    if let Err(e) = updated {
        host.log(
            aigw_shared::host::LogLevel::Debug,
            &format!("ai-proxy: latency sample not recorded: {e}"),
        );
    }
}
