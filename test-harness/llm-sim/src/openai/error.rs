//! OpenAI's error shape: `{"error":{"message","type","param","code"}}`, with the messages and
//! codes OpenAI uses for the cases the simulator reproduces.

use serde::Serialize;

use crate::plan::{Plan, JSON_ERROR};

/// An OpenAI API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Human-readable message.
    pub message: String,
    /// The `type` field.
    pub kind: &'static str,
    /// The `param` field.
    pub param: Option<String>,
    /// The `code` field.
    pub code: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    /// A 400 `invalid_request_error`.
    pub fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code,
        }
    }

    /// The 400 OpenAI sends for a body that is not JSON.
    pub fn unparsable_body() -> Self {
        Self::invalid(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't \
             using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was \
             sent was not valid JSON.)",
            None,
            None,
        )
    }

    /// The 400 for a missing `model`.
    pub fn missing_model() -> Self {
        Self::invalid("you must provide a model parameter", None, None)
    }

    /// The 400 for a missing required parameter.
    pub fn missing(param: &str) -> Self {
        Self::invalid(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    }

    /// The 400 for a parameter of the wrong JSON type.
    pub fn wrong_type(param: &str, expected: &str) -> Self {
        Self::invalid(
            format!("Invalid type for '{param}': expected {expected}."),
            Some(param),
            Some("invalid_type"),
        )
    }

    /// The body bytes.
    pub fn body(&self) -> Vec<u8> {
        let env = Envelope {
            error: Detail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        serde_json::to_vec_pretty(&env).unwrap_or_default()
    }

    /// The error as a response plan.
    pub fn plan(&self) -> Plan {
        Plan::full(self.status, JSON_ERROR, self.body(), 0)
    }
}

/// The 404 OpenAI answers for a path it does not serve.
pub fn unknown_path(method: &str, path: &str) -> Plan {
    ApiError {
        status: 404,
        message: format!("Invalid URL ({method} {path})"),
        kind: "invalid_request_error",
        param: None,
        code: None,
    }
    .plan()
}

/// An error of any status in OpenAI's shape; without a message, OpenAI's usual one for the status.
pub fn shaped(status: u16, message: Option<&str>) -> Plan {
    let (default_message, kind, code) = defaults_for(status);
    ApiError {
        status,
        message: message.unwrap_or(default_message).to_string(),
        kind,
        param: None,
        code,
    }
    .plan()
}

fn defaults_for(status: u16) -> (&'static str, &'static str, Option<&'static str>) {
    match status {
        401 => (
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
        403 => ("You are not allowed to sample from this model", "invalid_request_error", None),
        404 => (
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            Some("model_not_found"),
        ),
        429 => (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            Some("rate_limit_exceeded"),
        ),
        500 => (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        ),
        503 => (
            "The engine is currently overloaded, please try again later.",
            "server_error",
            None,
        ),
        s if s >= 500 => ("The server had an error (simulated).", "server_error", None),
        _ => ("Simulated error.", "invalid_request_error", None),
    }
}
