//! The `x-ratelimit-*` headers (OpenAI's names) and `Retry-After`, on refusals and on admitted
//! responses.
//!
//! `x-ratelimit-limit-tokens` is the bucket's capacity (limit + burst), `-remaining-tokens` what
//! was left after this request's reservation, `-reset-tokens` the time until the bucket is full
//! again, written like OpenAI's (`120ms`, `7.5s`, `6m0s`, `1h0m0s`). The `-requests` family is the
//! same for request limits. Each family shows the most constraining limit the request touched.

use crate::limiter::{Gauge, Status};

/// Header names, tokens family then requests family: limit, remaining, reset.
pub const TOKEN_HEADERS: [&str; 3] = [
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
];
/// The requests family.
pub const REQUEST_HEADERS: [&str; 3] = [
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
];

/// `ns` as OpenAI writes durations: `0s`, `120ms`, `7.5s`, `6m0s`, `1h2m3s`.
pub fn duration_text(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let hours = ms / 3_600_000;
    let minutes = ms % 3_600_000 / 60_000;
    let sec_ms = ms % 60_000;
    let secs = if sec_ms.is_multiple_of(1000) {
        (sec_ms / 1000).to_string()
    } else {
        let text = format!("{}.{:03}", sec_ms / 1000, sec_ms % 1000);
        text.trim_end_matches('0').to_owned()
    };
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `Retry-After` in whole seconds (rounded up, at least 1).
pub fn retry_after(ns: u64) -> String {
    ns.div_ceil(1_000_000_000).max(1).to_string()
}

/// The header pairs for `status`, tokens family first.
pub fn pairs(status: &Status) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(6);
    let mut family = |names: [&'static str; 3], g: Option<Gauge>| {
        if let Some(g) = g {
            let [limit, remaining, reset] = names;
            out.push((limit, g.limit.to_string()));
            out.push((remaining, g.remaining.to_string()));
            out.push((reset, duration_text(g.reset_ns)));
        }
    };
    family(TOKEN_HEADERS, status.tokens);
    family(REQUEST_HEADERS, status.requests);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_like_openai_writes_them() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(1), "1ms");
        assert_eq!(duration_text(120_000_000), "120ms");
        assert_eq!(duration_text(7_500_000_000), "7.5s");
        assert_eq!(duration_text(7_250_000_000), "7.25s");
        assert_eq!(duration_text(360_000_000_000), "6m0s");
        assert_eq!(duration_text(3_723_000_000_000), "1h2m3s");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(0), "1");
        assert_eq!(retry_after(1_000_000_000), "1");
        assert_eq!(retry_after(1_000_000_001), "2");
    }

    #[test]
    fn each_family_present_gives_three_headers() {
        let s = Status {
            tokens: Some(Gauge {
                limit: 1000,
                remaining: 10,
                reset_ns: 59_400_000_000,
            }),
            requests: None,
        };
        assert_eq!(
            pairs(&s),
            vec![
                ("x-ratelimit-limit-tokens", "1000".to_owned()),
                ("x-ratelimit-remaining-tokens", "10".to_owned()),
                ("x-ratelimit-reset-tokens", "59.4s".to_owned()),
            ]
        );
        assert!(pairs(&Status::default()).is_empty());
    }
}
