//! The token endpoint's request and answer, and the access-token cache.
//!
//! Cache policy (all times Unix seconds from the caller's clock): a token is *usable* until
//! [`USABLE_MARGIN`] before it expires, and a new one is fetched from [`REFRESH_MARGIN`] before
//! expiry, so requests keep using the old token while the refresh is under way. One fetch at a
//! time: another starts only when none is in flight or the one in flight is older than
//! [`FETCH_TIMEOUT`]. After a failure the next attempt waits [`RETRY_AFTER_FAILURE`].

use serde_json::Value;

use super::AuthError;

/// `content-type` of the token request.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// The JWT-bearer grant type (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Refresh this long before expiry.
pub const REFRESH_MARGIN: i64 = 300;
/// Stop sending a token this long before expiry.
pub const USABLE_MARGIN: i64 = 30;
/// A fetch without an answer after this long is considered lost.
pub const FETCH_TIMEOUT: i64 = 30;
/// Wait this long after a failed fetch.
pub const RETRY_AFTER_FAILURE: i64 = 5;

/// The token request body for a signed assertion.
pub fn request_body(assertion: &str) -> String {
    format!(
        "grant_type={}&assertion={}",
        form_encode(GRANT_TYPE),
        form_encode(assertion)
    )
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `https://host[:port]/path` -> (authority, path).
pub fn split_uri(uri: &str) -> Result<(String, String), AuthError> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))
        .ok_or_else(|| AuthError::Key(format!("token_uri {uri:?} is not an http(s) URL")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(AuthError::Key(format!("token_uri {uri:?} has no host")));
    }
    Ok((authority.to_owned(), path.to_owned()))
}

/// An access token and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer token.
    pub value: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Read the token endpoint's answer (`{"access_token","expires_in","token_type"}`, or
/// `{"error","error_description"}`) received at `now`.
pub fn parse_response(status: u16, body: &[u8], now: i64) -> Result<AccessToken, AuthError> {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let text = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str);
    if !(200..300).contains(&status) {
        let what = match (text("error"), text("error_description")) {
            (Some(e), Some(d)) => format!("{e}: {d}"),
            (Some(e), None) => e.to_owned(),
            _ if status == 0 => "no answer".to_owned(),
            _ => "no error description".to_owned(),
        };
        return Err(AuthError::Token(format!("HTTP {status}: {what}")));
    }
    let value = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::Token("answer without access_token".into()))?;
    if let Some(kind) = text("token_type").filter(|t| !t.eq_ignore_ascii_case("bearer")) {
        return Err(AuthError::Token(format!(
            "token_type {kind:?} is not Bearer"
        )));
    }
    let expires_in = v
        .as_ref()
        .and_then(|v| v.get("expires_in"))
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .ok_or_else(|| AuthError::Token("answer without a positive expires_in".into()))?;
    Ok(AccessToken {
        value: value.to_owned(),
        expires_at: now.saturating_add(expires_in),
    })
}

/// The cached token and the fetch bookkeeping.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TokenCache {
    token: Option<AccessToken>,
    in_flight_since: Option<i64>,
    failed_at: Option<i64>,
}

impl TokenCache {
    /// The token, while usable at `now`.
    pub fn usable(&self, now: i64) -> Option<&str> {
        self.token
            .as_ref()
            .filter(|t| now < t.expires_at - USABLE_MARGIN)
            .map(|t| t.value.as_str())
    }

    /// Whether a fetch should start at `now`.
    pub fn should_fetch(&self, now: i64) -> bool {
        let needed = self
            .token
            .as_ref()
            .is_none_or(|t| now >= t.expires_at - REFRESH_MARGIN);
        let busy = self
            .in_flight_since
            .is_some_and(|since| now < since + FETCH_TIMEOUT);
        let backing_off = self
            .failed_at
            .is_some_and(|at| now < at + RETRY_AFTER_FAILURE);
        needed && !busy && !backing_off
    }

    /// Record that a fetch started at `now`.
    pub fn start_fetch(&mut self, now: i64) {
        self.in_flight_since = Some(now);
    }

    /// Keep a fetched token.
    pub fn store(&mut self, token: AccessToken) {
        self.token = Some(token);
        self.in_flight_since = None;
        self.failed_at = None;
    }

    /// A fetch was cancelled before it answered (its request went away): another may start now.
    pub fn cancel_fetch(&mut self) {
        self.in_flight_since = None;
    }

    /// Record a failed fetch at `now` (a still-usable old token is kept).
    pub fn fail(&mut self, now: i64) {
        self.in_flight_since = None;
        self.failed_at = Some(now);
    }
}
