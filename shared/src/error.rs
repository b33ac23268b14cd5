//! Errors as the client sees them: one [`ClientError`], rendered in the caller's own protocol.
//!
//! A request that came in on `/v1/messages` gets Anthropic's shape
//! `{"type":"error","error":{"type":"invalid_request_error","message":"..."}}`; everything else gets
//! OpenAI's `{"error":{"message":"...","type":"...","param":null,"code":null}}`. SDKs dispatch on the
//! HTTP status, so the status is always chosen first; the `type` strings follow each provider's
//! documented names (see [`ErrorKind::openai_type`] and [`ErrorKind::anthropic_type`]).

use serde::Serialize;

/// Which API family the client speaks (decides the error shape and the stream framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClientProtocol {
    /// OpenAI-compatible APIs (`/v1/chat/completions`, `/v1/embeddings`, ...). The default.
    #[default]
    OpenAi,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
}

impl ClientProtocol {
    /// The protocol a request path implies: `.../v1/messages` (and its sub-paths such as
    /// `/v1/messages/count_tokens`) is Anthropic, everything else OpenAI. The query is ignored.
    pub fn from_path(path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/v1/messages") || path.contains("/v1/messages/") {
            Self::Anthropic
        } else {
            Self::OpenAi
        }
    }
}

/// What went wrong, independent of protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid (400).
    InvalidRequest,
    /// Missing or wrong credentials (401).
    Authentication,
    /// Credentials are fine but not allowed to do this (403).
    PermissionDenied,
    /// The model or resource does not exist (404).
    NotFound,
    /// The request body is too large (413).
    RequestTooLarge,
    /// A rate limit or quota was hit (429).
    RateLimited,
    /// An internal error of the gateway or the upstream (500).
    Internal,
    /// The upstream answered with something unusable (502).
    BadGateway,
    /// The upstream is overloaded or unavailable (503; Anthropic itself uses 529).
    Overloaded,
    /// The upstream did not answer in time (504).
    Timeout,
}

impl ErrorKind {
    /// The HTTP status used when the caller does not pick one.
    pub fn default_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::Overloaded => 503,
            Self::Timeout => 504,
        }
    }

    /// The kind an upstream HTTP status most likely means (for mapping provider errors).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::PermissionDenied,
            404 => Self::NotFound,
            413 => Self::RequestTooLarge,
            429 => Self::RateLimited,
            502 => Self::BadGateway,
            503 | 529 => Self::Overloaded,
            504 | 408 => Self::Timeout,
            400..=499 => Self::InvalidRequest,
            _ => Self::Internal,
        }
    }

    /// OpenAI's `error.type`. OpenAI sends `invalid_request_error` for 400/404/413 (and for bad
    /// keys, with `code: invalid_api_key`); the other names are those OpenAI-compatible servers use.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::NotFound | Self::RequestTooLarge => {
                "invalid_request_error"
            }
            Self::Authentication => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::RateLimited => "rate_limit_error",
            Self::Internal | Self::BadGateway | Self::Overloaded => "server_error",
            Self::Timeout => "timeout_error",
        }
    }

    /// Anthropic's `error.type` (the names documented for the Messages API).
    pub fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::PermissionDenied => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limit_error",
            Self::Internal | Self::BadGateway => "api_error",
            Self::Overloaded => "overloaded_error",
            Self::Timeout => "timeout_error",
        }
    }
}

/// An error to send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// HTTP status of the local reply.
    pub status: u16,
    /// What went wrong.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault (OpenAI `param`; Anthropic has no such field).
    pub param: Option<String>,
    /// A machine-readable code (OpenAI `code`, e.g. `model_not_found`; Anthropic has none).
    pub code: Option<String>,
}

/// A rendered error: what to pass to the host's local-reply call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedError {
    /// HTTP status.
    pub status: u16,
    /// The `content-type` header value.
    pub content_type: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

impl ClientError {
    /// An error of `kind` with its default status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status: kind.default_status(),
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// The same error with another HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same error naming the request field at fault.
    #[must_use]
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// The same error with a machine-readable code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The JSON body in `protocol`'s error shape.
    pub fn body(&self, protocol: ClientProtocol) -> Vec<u8> {
        let result = match protocol {
            ClientProtocol::OpenAi => serde_json::to_vec(&OpenAiBody {
                error: OpenAiError {
                    message: &self.message,
                    kind: self.kind.openai_type(),
                    param: self.param.as_deref(),
                    code: self.code.as_deref(),
                },
            }),
            ClientProtocol::Anthropic => serde_json::to_vec(&AnthropicBody {
                kind: "error",
                error: AnthropicError {
                    kind: self.kind.anthropic_type(),
                    message: &self.message,
                },
            }),
        };
        // Serialising borrowed strings into a Vec cannot fail; keep a valid body regardless.
        result.unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"server_error"}}"#.to_vec()
        })
    }

    /// Status, content type and body for a local reply in `protocol`'s shape.
    pub fn render(&self, protocol: ClientProtocol) -> RenderedError {
        RenderedError {
            status: self.status,
            content_type: "application/json",
            body: self.body(protocol),
        }
    }

    /// The error as one SSE event, for failing a stream that has already started: Anthropic's
    /// `event: error` with the error body, or OpenAI-style `data: {"error":...}`.
    pub fn to_sse_event(&self, protocol: ClientProtocol) -> Vec<u8> {
        let body = self.body(protocol);
        let mut out = Vec::with_capacity(body.len() + 24);
        if protocol == ClientProtocol::Anthropic {
            out.extend_from_slice(b"event: error\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\n\n");
        out
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.kind.openai_type(),
            self.message
        )
    }
}

impl std::error::Error for ClientError {}
