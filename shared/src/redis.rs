//! Redis connection settings for plugins that keep state in Redis on Higress (its
//! `proxy_redis_*` host calls): the `redis` config object, checked at load, and connecting once
//! per VM from [`Plugin::on_start`](crate::plugin::Plugin::on_start).

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::host::{Host, HostError, LogLevel};
use crate::plugin::Ctx;

/// The `redis` object of a plugin config, as written.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRedis {
    /// The Envoy cluster of the Redis service as Higress names it (e.g. `outbound|6379||redis.default.svc.cluster.local`, `redis.dns`).
    pub cluster: String,
    /// ACL user name (empty: none).
    #[serde(default)]
    pub username: String,
    /// Password (empty: none).
    #[serde(default)]
    pub password: String,
    /// How long a command may take, in milliseconds (1-60000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The database number.
    #[serde(default)]
    pub database: u32,
}

fn default_timeout() -> u64 {
    200
}

/// Validated Redis settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redis {
    /// The cluster name commands go to (`proxy_redis_call`): the bare name, as Higress's own SDK
    /// sends it (the database is an option of the connection, not of each call).
    pub cluster: String,
    /// The name the connection is made with (`proxy_redis_init`): `?db=N` appended for a
    /// database other than 0.
    pub init_cluster: String,
    /// ACL user name (empty: none).
    pub username: String,
    /// Password (empty: none).
    pub password: String,
    /// How long a command may take.
    pub timeout: Duration,
}

impl Redis {
    /// Check `raw`; error paths are relative to the `redis` object.
    pub fn build(raw: RawRedis) -> Result<Self, ConfigError> {
        let cluster = raw.cluster.trim();
        if cluster.is_empty() {
            return Err(ConfigError::invalid("cluster", "must not be empty"));
        }
        if cluster.contains('?') || cluster.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "cluster",
                "a cluster name without `?` options or control characters (the database is `database`)",
            ));
        }
        if !(1..=60_000).contains(&raw.timeout_ms) {
            return Err(ConfigError::invalid(
                "timeoutMs",
                "must be between 1 and 60000",
            ));
        }
        let init_cluster = if raw.database == 0 {
            cluster.to_owned()
        } else {
            format!("{cluster}?db={}", raw.database)
        };
        Ok(Self {
            cluster: cluster.to_owned(),
            init_cluster,
            username: raw.username,
            password: raw.password,
            timeout: Duration::from_millis(raw.timeout_ms),
        })
    }
}

/// Connect once to each distinct Redis in `settings` (a plugin's configs: rules may differ per
/// route), on a host with Redis calls; failures are logged (the calls then fail, and each
/// plugin's failure handling applies).
pub fn connect<'a>(host: &dyn Host, plugin: &str, settings: impl Iterator<Item = &'a Redis>) {
    if !host.capabilities().redis {
        return;
    }
    let mut done: Vec<&str> = Vec::new();
    for r in settings {
        if done.contains(&r.init_cluster.as_str()) {
            continue;
        }
        done.push(&r.init_cluster);
        if let Err(e) = host.redis_init(&r.init_cluster, &r.username, &r.password, r.timeout) {
            host.log(
                LogLevel::Error,
                &format!(
                    "{plugin}: cannot connect to Redis cluster `{}`: {e}",
                    r.init_cluster
                ),
            );
        }
    }
}

/// Send `command` to `settings`' Redis for `call` (`detached`: the stream does not wait for the
/// answer). A call the host refuses is made once more after connecting again: the connection
/// made at start fails while Higress does not know the Redis cluster yet (it learns the
/// service's cluster after the plugin's configuration), and Higress's own SDK connects again
/// before a command for the same reason.
pub fn send<C: Copy>(
    cx: &mut Ctx<'_, C>,
    settings: &Redis,
    command: &[u8],
    call: C,
    detached: bool,
) -> Result<u32, HostError> {
    let attempt = |cx: &mut Ctx<'_, C>| {
        if detached {
            cx.redis_call_detached(&settings.cluster, command, call)
        } else {
            cx.redis_call(&settings.cluster, command, call)
        }
    };
    match attempt(cx) {
        Err(HostError::Unsupported) => Err(HostError::Unsupported),
        Err(e) => {
            let connected = cx.redis_init(
                &settings.init_cluster,
                &settings.username,
                &settings.password,
                settings.timeout,
            );
            match connected {
                Ok(()) => attempt(cx),
                Err(_) => Err(e),
            }
        }
        ok => ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Capabilities;
    use crate::mock::MockHost;
    use serde_json::json;

    fn build(v: serde_json::Value) -> Result<Redis, ConfigError> {
        Redis::build(
            serde_json::from_value(v).map_err(|e| ConfigError::invalid("", e.to_string()))?,
        )
    }

    #[test]
    fn the_database_is_an_option_of_the_connection_only() {
        let r = build(json!({"cluster": " redis.dns ", "database": 3})).unwrap();
        assert_eq!(r.cluster, "redis.dns");
        assert_eq!(r.init_cluster, "redis.dns?db=3");
        assert_eq!(r.timeout, Duration::from_millis(200));
        assert_eq!(build(json!({"cluster": "r"})).unwrap().init_cluster, "r");
    }

    #[test]
    fn bad_settings_are_refused_with_their_field() {
        for (v, path) in [
            (json!({"cluster": ""}), "cluster"),
            (json!({"cluster": "r?db=1"}), "cluster"),
            (json!({"cluster": "r\tx"}), "cluster"),
            (json!({"cluster": "r", "timeoutMs": 0}), "timeoutMs"),
        ] {
            assert_eq!(build(v).unwrap_err().path(), path);
        }
    }

    #[test]
    fn each_distinct_redis_is_connected_once_and_only_on_hosts_with_redis() {
        let a = build(json!({"cluster": "a"})).unwrap();
        let b = build(json!({"cluster": "b", "database": 1})).unwrap();
        let host = MockHost::new(Capabilities::HIGRESS);
        connect(&host, "p", [&a, &b, &a].into_iter());
        assert_eq!(host.state.borrow().redis_clusters, vec!["a", "b?db=1"]);
        let envoy = MockHost::new(Capabilities::FULL);
        connect(&envoy, "p", [&a].into_iter());
        assert!(envoy.state.borrow().redis_clusters.is_empty());
    }
}
