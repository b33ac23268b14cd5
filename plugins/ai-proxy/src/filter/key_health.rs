//! The key pools' ejections in the host's shared data (one record per provider, so every
//! worker skips a key that one of them took out).

use aigw_shared::host::{Host, LogLevel, MapKind};

use crate::config::Config;
use crate::keys::Ejections;
use crate::prepare::Plan;
use crate::state::State;

/// How often a lost compare-and-swap is retried before the ejection is given up (logged).
const CAS_ATTEMPTS: usize = 4;

/// The ejected keys recorded under `shared_key` (a provider's
/// [`Provider::ejections_key`](crate::provider::Provider::ejections_key); none when the host has
/// no shared data or no record).
pub(crate) fn ejected_keys(host: &dyn Host, shared_key: &str) -> Ejections {
    match host.shared_data(shared_key) {
        Ok((Some(bytes), _)) => Ejections::parse(&bytes),
        _ => Ejections::default(),
    }
}

/// The upstream answered `status` to a request sent with a pool key: take the key out when the
/// provider's `keyHealth` says so (for the answer's `Retry-After`, bounded).
pub(crate) fn after_status(
    config: &Config,
    state: &State,
    host: &dyn Host,
    plan: &Plan,
    status: u16,
) {
    if !ejects(config, plan, status) {
        return;
    }
    let retry_after = host
        .header(MapKind::ResponseHeaders, "retry-after")
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok());
    eject(config, state, host, plan, status, retry_after.as_deref());
}

/// Whether an answer with `status` takes the pool key of `plan` out (its pool has another).
pub(crate) fn ejects(config: &Config, plan: &Plan, status: u16) -> bool {
    plan.pool_key.is_some()
        && config
            .provider(&plan.provider)
            .is_some_and(|p| p.key_hashes().len() > 1 && p.key_health.eject_on.contains(&status))
}

/// Take the pool key of `plan` out after an answer with `status` and `retry_after` (the
/// header's value), when the provider's `keyHealth` says so.
pub(crate) fn eject(
    config: &Config,
    state: &State,
    host: &dyn Host,
    plan: &Plan,
    status: u16,
    retry_after: Option<&str>,
) {
    let Some(hash) = plan.pool_key else { return };
    let Some(provider) = config.provider(&plan.provider) else {
        return;
    };
    if provider.key_hashes().len() < 2 || !provider.key_health.eject_on.contains(&status) {
        return;
    }
    let now = host
        .now_nanos()
        .map_or(0, |n| i64::try_from(n / 1_000_000_000).unwrap_or(0));
    let Some(seconds) = provider.key_health.cooldown(status, retry_after, now) else {
        return;
    };
    let until = now.saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
    let key = provider.ejections_key.as_str();
    for _ in 0..CAS_ATTEMPTS {
        let (mut ejections, cas) = match host.shared_data(key) {
            Ok((bytes, cas)) => (bytes.map(|b| Ejections::parse(&b)).unwrap_or_default(), cas),
            Err(_) => (Ejections::default(), None),
        };
        ejections.eject(hash, until, now);
        // A record absent at the read is created with a version that makes another worker's
        // creation meanwhile a conflict (and a retry), not a lost ejection.
        let version = Some(aigw_shared::kv::write_cas(cas));
        match host.set_shared_data(key, &ejections.encode(), version) {
            Ok(()) => {
                let name = format!(
                    "aigw.ai_proxy.provider.{}.key_ejections",
                    aigw_shared::metrics::label(&provider.name)
                );
                state.metrics.count(host, &name, 1);
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "ai-proxy: provider {} key {hash:016x} sits out for {seconds} s after a {status}",
                        provider.name
                    ),
                );
                return;
            }
            Err(aigw_shared::host::HostError::CasMismatch) => continue,
            Err(e) => {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "ai-proxy: cannot record the ejection of a {} key: {e}",
                        provider.name
                    ),
                );
                return;
            }
        }
    }
    host.log(
        LogLevel::Warn,
        &format!(
            "ai-proxy: the ejection of a {} key lost every race; not recorded",
            provider.name
        ),
    );
}
