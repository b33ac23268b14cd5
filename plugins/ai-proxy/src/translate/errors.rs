//! Upstream error bodies -> [`ClientError`]: the provider's message and kind, the fitting status.
//!
//! Recognised shapes: OpenAI / Azure / vLLM `{"error":{"message","type","code","param"}}` (Azure
//! content-filter errors included), Anthropic `{"type":"error","error":{"type","message"}}`, Gemini
//! `{"error":{"code":404,"message","status"}}`, AWS `{"message":...}` / `{"Message":...}`, and a
//! bare `{"error":"text"}`. Anything else (HTML from a load balancer, empty bodies) keeps the
//! status and says what came back.

#![warn(clippy::arithmetic_side_effects)]

use aigw_shared::error::{ClientError, ErrorKind};
use serde_json::Value;

/// The longest non-JSON snippet quoted in a message.
const SNIPPET: usize = 200;

/// Map an upstream error response to the client's error.
pub fn from_upstream(status: u16, body: &[u8]) -> ClientError {
    let status = if (400..=599).contains(&status) {
        status
    } else {
        502
    };
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return non_json(status, body);
    };
    from_json(status, &json).unwrap_or_else(|| non_json(status, body))
}

/// Map an error object found inside a stream (OpenAI `data: {"error":...}`, Anthropic
/// `event: error`) to the client's error; the status defaults from the error's type.
pub fn from_stream_event(json: &Value) -> ClientError {
    let kind_name = json
        .get("error")
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let status = status_for_type(kind_name).unwrap_or(500);
    from_json(status, json).unwrap_or_else(|| {
        ClientError::new(ErrorKind::BadGateway, "upstream stream reported an error")
    })
}

fn from_json(status: u16, json: &Value) -> Option<ClientError> {
    let error = json.get("error");
    let (message, kind_name, code, param) = match error {
        Some(Value::Object(e)) => (
            text(e.get("message")),
            text(e.get("type")).or_else(|| text(e.get("status"))),
            text(e.get("code")),
            text(e.get("param")),
        ),
        Some(Value::String(s)) => (Some(s.clone()), None, None, None),
        _ => (
            text(json.get("message")).or_else(|| text(json.get("Message"))),
            text(json.get("__type")),
            None,
            None,
        ),
    };
    let message = message?;
    let kind = kind_name
        .as_deref()
        .and_then(status_for_type)
        .filter(|s| *s == status)
        .map_or_else(|| ErrorKind::from_status(status), ErrorKind::from_status);
    let mut out = ClientError::new(kind, message).with_status(status);
    if let Some(c) = code {
        out = out.with_code(c);
    } else if kind_name.as_deref() == Some("content_filter") {
        out = out.with_code("content_filter");
    }
    if let Some(p) = param {
        out = out.with_param(p);
    }
    Some(out)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The status an error type name implies (OpenAI, Anthropic and Google names).
fn status_for_type(name: &str) -> Option<u16> {
    Some(match name {
        "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "authentication_error" | "UNAUTHENTICATED" => 401,
        "permission_error" | "PERMISSION_DENIED" => 403,
        "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "RESOURCE_EXHAUSTED" => 429,
        "api_error" | "server_error" | "INTERNAL" => 500,
        "overloaded_error" | "UNAVAILABLE" => 529,
        "timeout_error" | "DEADLINE_EXCEEDED" => 504,
        _ => return None,
    })
}

fn non_json(status: u16, body: &[u8]) -> ClientError {
    let snippet: String = String::from_utf8_lossy(body)
        .chars()
        .take(SNIPPET)
        .collect::<String>()
        .trim()
        .to_owned();
    let message = if snippet.is_empty() {
        format!("upstream answered {status} with an empty body")
    } else {
        format!("upstream answered {status}: {snippet}")
    };
    ClientError::new(ErrorKind::from_status(status), message).with_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_rate_limit_keeps_status_and_message() {
        let e = from_upstream(
            429,
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert_eq!((e.status, e.kind), (429, ErrorKind::RateLimited));
        assert_eq!(e.message, "slow down");
    }

    #[test]
    fn html_bodies_become_readable_errors_with_the_same_status() {
        let e = from_upstream(503, b"<html>Service Unavailable</html>\n");
        assert_eq!(e.status, 503);
        assert!(e.message.contains("Service Unavailable"), "{}", e.message);
        assert_eq!(
            from_upstream(500, b"").message,
            "upstream answered 500 with an empty body"
        );
    }

    #[test]
    fn azure_content_filter_errors_keep_their_code() {
        let e = from_upstream(
            400,
            br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400}}"#,
        );
        assert_eq!(e.code.as_deref(), Some("content_filter"));
        assert_eq!(e.param.as_deref(), Some("prompt"));
    }
}
