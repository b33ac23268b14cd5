//! The circuit breakers of fallback targets in the host's shared data (one record per target,
//! compare-and-swap): whether a request may try a target now, and what an answer does to it.
//! The state machine itself is [`crate::breaker`].

use aigw_shared::host::{Host, LogLevel};

use crate::breaker::{Admit, Breaker};
use crate::config::Config;
use crate::models::Route;
use crate::prepare::Plan;

/// Breakers opened.
pub const BREAKER_OPENED: &str = "aigw.ai_proxy.breaker_opened";

/// The shared-data key of a target's breaker.
pub(super) fn breaker_key(config: &Config, route: &Route) -> String {
    let provider = config
        .providers
        .get(route.provider)
        .map_or("", |p| p.name.as_str());
    format!("aigw.ai_proxy.breaker.{provider}.{}", route.model)
}

pub(super) fn unix(now_ns: u64) -> i64 {
    i64::try_from(now_ns / 1_000_000_000).unwrap_or(0)
}

/// Whether `route` may be tried now: its breaker is closed, or this request claims its probe.
pub(super) fn admitted(config: &Config, host: &dyn Host, route: &Route, now_ns: u64) -> bool {
    let key = breaker_key(config, route);
    let Ok((bytes, cas)) = host.shared_data(&key) else {
        return true;
    };
    let Some(bytes) = bytes else { return true };
    match Breaker::parse(&bytes).admit(unix(now_ns), &config.breaker) {
        Admit::Pass => true,
        Admit::Skip => false,
        // Another worker may claim it at the same time: only the write that wins probes.
        Admit::Probe(next) => host
            .set_shared_data(&key, &next.encode(), Some(cas.unwrap_or(0)))
            .is_ok(),
    }
}

/// Record an answer of the target `plan` went to in its breaker (`ok`: a success).
pub(super) fn record(
    config: &Config,
    state: &crate::state::State,
    host: &dyn Host,
    plan: &Plan,
    ok: bool,
) {
    let Some(provider) = config.provider(&plan.provider) else {
        return;
    };
    let key = format!(
        "aigw.ai_proxy.breaker.{}.{}",
        provider.name, plan.backend_model
    );
    let now = unix(host.now_nanos().unwrap_or(0));
    let policy = &config.breaker;
    let opened = aigw_shared::kv::update(host, &key, |current| {
        let old = current.map(Breaker::parse).unwrap_or_default();
        if ok {
            if old == Breaker::default() && policy.error_rate.is_none() {
                // Nothing to write: keep the common success free of a write.
                return (current.map(<[u8]>::to_vec).unwrap_or_default(), false);
            }
            return (old.succeeded(now, policy).encode(), false);
        }
        let (next, opened) = old.failed(now, policy);
        (next.encode(), opened)
    });
    if opened.unwrap_or(false) {
        state.metrics.count(host, BREAKER_OPENED, 1);
        host.log(
            LogLevel::Warn,
            &format!(
                "ai-proxy: circuit breaker of {} model {} opened for {} s",
                provider.name, plan.backend_model, policy.cool_off_seconds
            ),
        );
    }
}
