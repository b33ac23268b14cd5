//! Anthropic's error shape: `{"type":"error","error":{"type","message"},"request_id"}` with a
//! `request-id` header and `x-should-retry` (true for 408, 409, 429 and 5xx, as the SDKs read it).

use serde::Serialize;

use crate::plan::{Plan, JSON};
use crate::reply::fnv1a;

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Detail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// Anthropic's error type and usual message for an HTTP status.
pub fn defaults_for(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "Invalid request (simulated)."),
        401 => ("authentication_error", "invalid x-api-key"),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not found"),
        413 => ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429 => (
            "rate_limit_error",
            "This request would exceed the rate limit for your organization (simulated). Please try again later.",
        ),
        500 => ("api_error", "Internal server error"),
        529 => ("overloaded_error", "Overloaded"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request (simulated)."),
    }
}

/// An error of any status in Anthropic's shape; without a message, the usual one for the status.
pub fn shaped(status: u16, message: Option<&str>) -> Plan {
    let (kind, default_message) = defaults_for(status);
    with_type(status, kind, message.unwrap_or(default_message))
}

/// An error with an explicit error type.
pub fn with_type(status: u16, kind: &str, message: &str) -> Plan {
    let request_id = format!(
        "req_sim{:016x}",
        fnv1a(format!("{status}{kind}{message}").as_bytes())
    );
    let body = Envelope {
        kind: "error",
        error: Detail { kind, message },
        request_id: &request_id,
    };
    let retry = matches!(status, 408 | 409 | 429) || status >= 500;
    Plan::full(
        status,
        JSON,
        serde_json::to_vec(&body).unwrap_or_default(),
        0,
    )
    .with_header("request-id", request_id)
    .with_header("x-should-retry", if retry { "true" } else { "false" })
}

/// A 400 `invalid_request_error`.
pub fn invalid(message: &str) -> Plan {
    with_type(400, "invalid_request_error", message)
}
