//! Quotas: a total budget per key value (a consumer, by default) that never refills, read, set
//! and topped up through an admin endpoint protected by admin keys (stored as SHA-256).
//!
//! A quota is a rule of its own (named `quota`, counters `aigw-trq:0:<value>`) whose one bucket
//! has no refill and starts **empty**: a key value without a quota set is refused (429
//! `insufficient_quota`). Requests reserve from it and are reconciled like every rule; the
//! admin endpoint sets or adds to the remaining amount with compare-and-swap.
//!
//! Admin endpoint (`adminPath`, `Authorization: Bearer <admin key>` or `x-api-key`):
//! `GET <path>?key=<value>` reads, `POST <path>` with `{"key": v, "set": n}` or
//! `{"key": v, "add": n}` writes; both answer `{"key": v, "remaining": n}`.

use std::collections::HashSet;

use aigw_shared::config::ConfigError;
use aigw_shared::consumer::key_hash_hex;
use aigw_shared::host::{Host, HostError};
use aigw_shared::kv;
use serde::Deserialize;

use crate::bucket::{encode, Bucket, Spec, MILLI};
use crate::config::{Limit, LimitSet, Period, Rule};
use crate::keys::Source;
use crate::measure::Measure;

/// The quota rule's name.
pub const RULE_NAME: &str = "quota";
/// The admin path, unless configured.
pub const DEFAULT_ADMIN_PATH: &str = "/aigw/quota";
/// The largest quota, in units.
const MAX_QUOTA: i64 = 1_000_000_000_000_000;

/// What a quota counts.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum QuotaMeasure {
    /// Input tokens.
    Input,
    /// Output tokens.
    Output,
    /// Input + output tokens.
    #[default]
    Total,
    /// Weighted cost (`weights`).
    Cost,
}

/// `quota` as written.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawQuota {
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    measure: QuotaMeasure,
    #[serde(default = "default_admin_path")]
    admin_path: String,
    admin_keys: Vec<String>,
}

fn default_key() -> String {
    "consumer".to_owned()
}
fn default_admin_path() -> String {
    DEFAULT_ADMIN_PATH.to_owned()
}

/// The admin endpoint.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The path it answers (exactly, the query aside).
    pub path: String,
    /// SHA-256 (lower-case hex) of each admin key.
    keys: HashSet<String>,
}

impl Admin {
    /// Whether `key` (as presented) is an admin key.
    pub fn allows(&self, key: &[u8]) -> bool {
        self.keys
            .contains(&key_hash_hex(&String::from_utf8_lossy(key)))
    }
}

/// The spec of a quota bucket: no refill to speak of (one milli-unit per 584 years), and a
/// capacity no admin will reach.
pub fn spec() -> Spec {
    Spec {
        capacity: MAX_QUOTA.saturating_mul(MILLI),
        per_period: 1,
        period_ns: u64::MAX,
    }
}

/// Validate `raw` into the quota rule and its admin endpoint; `sources` gains the key's source.
pub fn compile(raw: &RawQuota, sources: &mut Vec<Source>) -> Result<(Rule, Admin), ConfigError> {
    let source = Source::parse(&raw.key, "quota.key")?;
    let index = match sources.iter().position(|s| *s == source) {
        Some(i) => i,
        None => {
            sources.push(source);
            sources.len() - 1
        }
    };
    let path = raw.admin_path.trim();
    if !path.starts_with('/') || path.contains(['?', '#']) || path.len() < 2 {
        return Err(ConfigError::invalid(
            "quota.adminPath",
            "must be a path like /aigw/quota (no query)",
        ));
    }
    if raw.admin_keys.is_empty() {
        return Err(ConfigError::invalid(
            "quota.adminKeys",
            "needs at least one admin key's SHA-256",
        ));
    }
    let mut keys = HashSet::new();
    for (i, k) in raw.admin_keys.iter().enumerate() {
        let ok = k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(ConfigError::invalid(
                format!("quota.adminKeys[{i}]"),
                "must be the SHA-256 of the key as 64 hex digits",
            ));
        }
        keys.insert(k.to_ascii_lowercase());
    }
    let measure = match raw.measure {
        QuotaMeasure::Input => Measure::Input,
        QuotaMeasure::Output => Measure::Output,
        QuotaMeasure::Total => Measure::Total,
        QuotaMeasure::Cost => Measure::Cost,
    };
    let limit = Limit {
        measure,
        limit: 0,
        capacity: 0,
        per: Period::Day,
    };
    let rule = Rule {
        name: RULE_NAME.to_owned(),
        prefix: "aigw-trq:".to_owned(),
        keys: vec![index],
        key_names: vec![raw.key.clone()],
        sets: vec![LimitSet {
            limits: vec![limit],
            specs: vec![spec()],
        }],
        overrides: Vec::new(),
        refused_metric: format!("aigw.ai_token_ratelimit.rule.{RULE_NAME}.refused_total"),
        charge_after_response: false,
        quota: true,
        // Quota records are written by the admin: their number is the admin's to bound.
        max_keys: 0,
    };
    let admin = Admin {
        path: path.to_owned(),
        keys,
    };
    Ok((rule, admin))
}

/// An admin write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Set the remaining amount.
    Set(i64),
    /// Add to it (negative: take away).
    Add(i64),
}

#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWrite {
    key: String,
    #[serde(default)]
    set: Option<i64>,
    #[serde(default)]
    add: Option<i64>,
}

/// Read a POST body: the key value and the write.
pub fn parse_write(body: &[u8]) -> Result<(String, Write), String> {
    let raw: RawWrite = serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
    let write = match (raw.set, raw.add) {
        (Some(n), None) => Write::Set(n),
        (None, Some(n)) => Write::Add(n),
        _ => return Err("the body needs exactly one of `set` and `add`".to_owned()),
    };
    let n = match write {
        Write::Set(n) | Write::Add(n) => n,
    };
    if n.unsigned_abs() > MAX_QUOTA.unsigned_abs() {
        return Err(format!("amounts are limited to ±{MAX_QUOTA}"));
    }
    if raw.key.is_empty() {
        return Err("`key` must not be empty".to_owned());
    }
    Ok((raw.key, write))
}

/// The bucket stored for a quota record (empty when there is none).
pub fn load(bytes: Option<&[u8]>, now: u64) -> Bucket {
    let spec = spec();
    let empty = Bucket {
        level: 0,
        last_ns: now,
    };
    match bytes {
        Some(b) => crate::bucket::decode(Some(b), &[spec], now)
            .first()
            .copied()
            .unwrap_or(empty),
        None => empty,
    }
}

/// Apply `write` (or only read, `None`) to record `key` at `now`; the remaining units.
pub fn apply(
    host: &dyn Host,
    key: &str,
    write: Option<&Write>,
    now: u64,
) -> Result<i64, HostError> {
    let Some(write) = write else {
        let (bytes, _) = host.shared_data(key)?;
        return Ok(load(bytes.as_deref(), now).level / MILLI);
    };
    kv::update(host, key, |current| {
        let mut b = load(current, now);
        let spec = spec();
        match write {
            Write::Set(n) => b.level = n.saturating_mul(MILLI).min(spec.capacity),
            Write::Add(n) => b.add(&spec, now, n.saturating_mul(MILLI)),
        }
        (encode(&[b]), b.level / MILLI)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_parse_with_exactly_one_of_set_and_add() {
        assert_eq!(
            parse_write(br#"{"key": "team", "set": 100}"#),
            Ok(("team".into(), Write::Set(100)))
        );
        assert_eq!(
            parse_write(br#"{"key": "team", "add": -5}"#),
            Ok(("team".into(), Write::Add(-5)))
        );
        for bad in [
            &br#"{"key": "t", "set": 1, "add": 1}"#[..],
            br#"{"key": "t"}"#,
            br#"{"key": "", "set": 1}"#,
            br#"{"key": "t", "set": 1, "x": 1}"#,
            b"not json",
        ] {
            assert!(
                parse_write(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_missing_quota_is_empty_and_writes_set_or_add() {
        let host = aigw_shared::mock::MockHost::default();
        assert_eq!(apply(&host, "q", None, 1), Ok(0));
        assert_eq!(apply(&host, "q", Some(&Write::Set(100)), 1), Ok(100));
        assert_eq!(apply(&host, "q", Some(&Write::Add(-30)), 2), Ok(70));
        assert_eq!(apply(&host, "q", None, 3), Ok(70));
    }

    #[test]
    fn admin_keys_are_compared_by_hash() {
        let mut sources = Vec::new();
        let raw: RawQuota = serde_json::from_value(serde_json::json!({
            "adminKeys": [key_hash_hex("s3cret").to_uppercase()]
        }))
        .unwrap();
        let (rule, admin) = compile(&raw, &mut sources).unwrap();
        assert_eq!(sources, vec![Source::Consumer]);
        assert_eq!(rule.name, "quota");
        assert_eq!(admin.path, "/aigw/quota");
        assert!(admin.allows(b"s3cret") && !admin.allows(b"s3cret "));
    }
}
