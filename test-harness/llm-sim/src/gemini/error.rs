//! Google's error shape (`{"error":{"code","message","status"}}`, 2-space indented, as the
//! Gemini API and Vertex AI send it), and the messages of their credential failures.

use serde::Serialize;

use crate::plan::Plan;

/// Content type of Google's JSON answers.
pub const JSON_UTF8: &str = "application/json; charset=UTF-8";

/// 403 without any API key.
pub const NO_KEY: &str = "Method doesn't allow unregistered callers (callers without established \
identity). Please use API Key or other form of API consumer identity to call this API.";
/// 400 with a wrong API key.
pub const BAD_KEY: &str = "API key not valid. Please pass a valid API key.";
/// 401 (Vertex) without a Bearer token.
pub const NO_TOKEN: &str =
    "Request is missing required authentication credential. Expected OAuth 2 \
access token, login cookie or other valid authentication credential. See \
https://developers.google.com/identity/sign-in/web/devconsole-project.";
/// 401 (Vertex) with a wrong Bearer token.
pub const BAD_TOKEN: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
access token, login cookie or other valid authentication credential. See \
https://developers.google.com/identity/sign-in/web/devconsole-project.";

#[derive(Serialize)]
struct Envelope<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: u16,
    message: &'a str,
    status: &'a str,
}

/// The `google.rpc.Code` name and usual message for an HTTP status.
pub fn defaults_for(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => ("UNAUTHENTICATED", BAD_TOKEN),
        403 => ("PERMISSION_DENIED", "The caller does not have permission"),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        409 => ("ABORTED", "The operation was aborted."),
        429 => ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        499 => ("CANCELLED", "The operation was cancelled."),
        500 => ("INTERNAL", "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
        503 => ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        504 => ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
        s if s >= 500 => ("INTERNAL", "An internal error has occurred."),
        _ => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    }
}

/// An error of any status in Google's shape; without a message, the usual one for the status.
pub fn shaped(status: u16, message: Option<&str>) -> Plan {
    let (name, default_message) = defaults_for(status);
    let body = Envelope {
        error: Detail {
            code: status,
            message: message.unwrap_or(default_message),
            status: name,
        },
    };
    Plan::full(
        status,
        JSON_UTF8,
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
        0,
    )
}

/// A 400 `INVALID_ARGUMENT` with a message.
pub fn invalid(message: &str) -> Plan {
    shaped(400, Some(message))
}
