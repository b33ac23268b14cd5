//! Checks of single values and limit lists, each naming the JSON path it refuses.

use aigw_shared::config::ConfigError;

use super::{Limit, LimitSet, RawLimit, TokenKind, MAX_AMOUNT};
use crate::bucket::Spec;
use crate::measure::Measure;

pub(super) fn check_amount(path: &str, v: u64, zero_ok: bool) -> Result<u64, ConfigError> {
    if (v == 0 && !zero_ok) || v > MAX_AMOUNT {
        let low = if zero_ok { 0 } else { 1 };
        return Err(ConfigError::invalid(
            path,
            format!("must be between {low} and {MAX_AMOUNT}"),
        ));
    }
    Ok(v)
}

pub(super) fn limit_set(raw: &[RawLimit], path: &str) -> Result<LimitSet, ConfigError> {
    let mut set = LimitSet::default();
    for (i, l) in raw.iter().enumerate() {
        let at = |f: &str| format!("{path}[{i}].{f}");
        let (measure, limit, field) = match (l.tokens, l.cost, l.requests) {
            (Some(t), None, None) => {
                let m = match l.kind.unwrap_or(TokenKind::Total) {
                    TokenKind::Input => Measure::Input,
                    TokenKind::Output => Measure::Output,
                    TokenKind::Total => Measure::Total,
                };
                (m, t, "tokens")
            }
            (None, Some(c), None) => (Measure::Cost, c, "cost"),
            (None, None, Some(r)) => (Measure::Requests, r, "requests"),
            _ => {
                return Err(ConfigError::invalid(
                    format!("{path}[{i}]"),
                    "needs exactly one of tokens, cost or requests",
                ))
            }
        };
        if l.kind.is_some() && l.tokens.is_none() {
            return Err(ConfigError::invalid(at("type"), "only goes with tokens"));
        }
        let limit = check_amount(&at(field), limit, false)?;
        let burst = check_amount(&at("burst"), l.burst, true)?;
        set.specs.push(Spec::new(limit, burst, l.per.duration()));
        set.limits.push(Limit {
            measure,
            limit,
            capacity: limit.saturating_add(burst),
            per: l.per,
        });
    }
    Ok(set)
}

pub(super) fn rule_name(name: &str, path: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ConfigError::invalid(
            path,
            "must be 1 to 64 letters, digits, `_` or `-`",
        ));
    }
    Ok(name.to_owned())
}

pub(super) fn weight(path: String, v: f64) -> Result<u64, ConfigError> {
    if !v.is_finite() || !(0.0..=1_000_000.0).contains(&v) {
        return Err(ConfigError::invalid(
            path,
            "must be a number between 0 and 1000000",
        ));
    }
    Ok((v * 1000.0).round() as u64)
}
