//! Behaviour knobs: server-wide defaults from the command line, overridden per request by
//! `x-sim-*` headers.

use std::time::Duration;

use hyper::HeaderMap;

/// Header: delay in milliseconds before the response head is sent.
pub const H_LATENCY: &str = "x-sim-latency-ms";
/// Header: extra delay in milliseconds before the first generated token.
pub const H_TTFT: &str = "x-sim-ttft-ms";
/// Header: generation speed; 0 means as fast as possible.
pub const H_TPS: &str = "x-sim-tokens-per-second";
/// Header: answer with this HTTP status and an error body instead of a result.
pub const H_ERROR_STATUS: &str = "x-sim-error-status";
/// Header: the exact error body to send with [`H_ERROR_STATUS`].
pub const H_ERROR_BODY: &str = "x-sim-error-body";
/// Header: with [`H_ERROR_STATUS`], send this `retry-after` value (seconds or an HTTP date).
pub const H_RETRY_AFTER: &str = "x-sim-retry-after";
/// Header: close the connection without any response.
pub const H_RESET: &str = "x-sim-reset";
/// Header: in a stream, stop after this many events without the terminator and close.
pub const H_TRUNCATE: &str = "x-sim-truncate-after";
/// Header: end a streamed answer normally (a complete HTTP body) after this many events, before
/// its terminator: a provider that stops early without breaking the connection.
pub const H_END: &str = "x-sim-end-after";
/// Header: send the response head and the first N bytes of the body, then close the connection
/// with a TCP reset: a provider (or a network) that breaks mid-body, whole answers included.
pub const H_RESET_AFTER_BYTES: &str = "x-sim-reset-after-bytes";

/// Timing defaults that apply to every request unless a header overrides them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Delay before the response head, in milliseconds.
    pub latency_ms: u64,
    /// Delay before the first token, in milliseconds.
    pub ttft_ms: u64,
    /// Tokens per second; 0 means no pacing.
    pub tokens_per_second: u64,
}

/// The knobs in force for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    /// Delay before the response head.
    pub latency: Duration,
    /// Delay before the first token.
    pub ttft: Duration,
    /// Tokens per second; 0 means no pacing.
    pub tokens_per_second: u64,
    /// Injected error status, if any.
    pub error_status: Option<u16>,
    /// Injected error body, if any.
    pub error_body: Option<String>,
    /// `retry-after` of the injected error, if any.
    pub retry_after: Option<String>,
    /// Drop the connection without answering.
    pub reset: bool,
    /// Number of stream events to send before cutting the stream.
    pub truncate_after: Option<u64>,
    /// Number of stream events to send before ending the body early (but cleanly).
    pub end_after: Option<u64>,
    /// Number of body bytes to send before resetting the connection.
    pub reset_after_bytes: Option<u64>,
}

impl Knobs {
    /// Time one token takes at the configured speed (zero when unpaced).
    pub fn per_token(&self) -> Duration {
        if self.tokens_per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(1.0 / self.tokens_per_second as f64)
        }
    }

    /// Time a whole non-streamed answer of `tokens` tokens takes after the head latency.
    pub fn generation_time(&self, tokens: u64) -> Duration {
        let per = self.per_token();
        let n = u32::try_from(tokens).unwrap_or(u32::MAX);
        self.ttft.saturating_add(per.saturating_mul(n))
    }
}

/// Reads the knobs for one request: header values win over `defaults`.
///
/// A header with a value that is not what it should be is an error naming the header.
pub fn from_headers(headers: &HeaderMap, defaults: &Defaults) -> Result<Knobs, String> {
    let latency_ms = number(headers, H_LATENCY)?.unwrap_or(defaults.latency_ms);
    let ttft_ms = number(headers, H_TTFT)?.unwrap_or(defaults.ttft_ms);
    let tokens_per_second = number(headers, H_TPS)?.unwrap_or(defaults.tokens_per_second);
    let error_status = match number(headers, H_ERROR_STATUS)? {
        None => None,
        Some(s) if (100..=599).contains(&s) => u16::try_from(s).ok(),
        Some(s) => {
            return Err(format!(
                "header {H_ERROR_STATUS}: {s} is not an HTTP status"
            ))
        }
    };
    let error_body = text(headers, H_ERROR_BODY)?;
    let reset = match text(headers, H_RESET)?.as_deref().map(str::trim) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") | Some("") => true,
        Some(other) => {
            return Err(format!(
                "header {H_RESET}: expected true/false, got {other:?}"
            ))
        }
    };
    Ok(Knobs {
        latency: Duration::from_millis(latency_ms),
        ttft: Duration::from_millis(ttft_ms),
        tokens_per_second,
        error_status,
        error_body,
        retry_after: text(headers, H_RETRY_AFTER)?,
        reset,
        truncate_after: number(headers, H_TRUNCATE)?,
        end_after: number(headers, H_END)?,
        reset_after_bytes: number(headers, H_RESET_AFTER_BYTES)?,
    })
}

fn text(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| format!("header {name}: value is not visible ASCII")),
    }
}

fn number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, String> {
    match text(headers, name)? {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("header {name}: expected a non-negative integer, got {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn headers_override_defaults_and_absent_headers_keep_them() {
        let d = Defaults {
            latency_ms: 5,
            ttft_ms: 7,
            tokens_per_second: 9,
        };
        let k = from_headers(&headers(&[(H_TTFT, "100"), (H_RETRY_AFTER, "7")]), &d).unwrap();
        assert_eq!(k.retry_after.as_deref(), Some("7"));
        assert_eq!(k.latency, Duration::from_millis(5));
        assert_eq!(k.ttft, Duration::from_millis(100));
        assert_eq!(k.tokens_per_second, 9);
        assert!(!k.reset);
    }

    #[test]
    fn bad_knob_values_are_errors_that_name_the_header() {
        let d = Defaults::default();
        let e = from_headers(&headers(&[(H_LATENCY, "soon")]), &d).unwrap_err();
        assert!(e.contains(H_LATENCY), "{e}");
        let e = from_headers(&headers(&[(H_ERROR_STATUS, "42")]), &d).unwrap_err();
        assert!(e.contains(H_ERROR_STATUS), "{e}");
    }

    #[test]
    fn generation_time_adds_ttft_and_per_token_time() {
        let k = Knobs {
            ttft: Duration::from_millis(10),
            tokens_per_second: 100,
            ..Knobs::default()
        };
        assert_eq!(k.generation_time(5), Duration::from_millis(60));
    }
}
