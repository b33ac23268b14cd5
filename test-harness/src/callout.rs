//! HTTP callouts (`proxy_http_call`) and Higress Redis calls: what the guest asked for and how test
//! code (or a real local server) answers.

use crate::abi::Headers;
use std::time::Duration;

/// An outgoing `dispatch_http_call` as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalloutRequest {
    /// Cluster (upstream) name the guest passed.
    pub cluster: String,
    /// Request headers including `:method`, `:path`, `:authority`.
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Headers,
    /// Timeout the guest asked for (zero = none).
    pub timeout: Duration,
    /// The token the host returned.
    pub token: u32,
}

impl CalloutRequest {
    /// The first value of a header (case-insensitive), lossy UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        crate::abi::header_value(&self.headers, name)
    }
}

/// How a callout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutOutcome {
    /// The upstream answered.
    Response {
        /// HTTP status (becomes `:status`).
        status: u16,
        /// Response headers (without `:status`).
        headers: Headers,
        /// Response body.
        body: Vec<u8>,
    },
    /// The upstream did not answer in time: Envoy synthesises a 504 "upstream request timeout".
    Timeout,
    /// The connection failed: Envoy synthesises a 503 "upstream connect error ...".
    ConnectFailure,
    /// The stream was reset: the guest gets `on_http_call_response(token, 0, 0, 0)` and
    /// `get_status` returns (11, "reset").
    Reset,
}

impl CalloutOutcome {
    /// A response with a body and a content-type.
    pub fn ok(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> CalloutOutcome {
        CalloutOutcome::Response {
            status,
            headers: vec![("content-type".to_string(), content_type.as_bytes().to_vec())],
            body: body.into(),
        }
    }

    /// The shape the guest actually receives (synthesised responses for timeout and connect failure).
    pub(crate) fn materialize(self) -> Option<(u16, Headers, Vec<u8>)> {
        match self {
            CalloutOutcome::Response { status, headers, body } => Some((status, headers, body)),
            CalloutOutcome::Timeout => Some(synth(504, "upstream request timeout")),
            CalloutOutcome::ConnectFailure => Some(synth(
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            )),
            CalloutOutcome::Reset => None,
        }
    }
}

fn synth(status: u16, text: &str) -> (u16, Headers, Vec<u8>) {
    let headers = vec![
        (
            "content-length".to_string(),
            text.len().to_string().into_bytes(),
        ),
        ("content-type".to_string(), b"text/plain".to_vec()),
    ];
    (status, headers, text.as_bytes().to_vec())
}

/// Test code answering callouts. Closures `FnMut(&CalloutRequest) -> CalloutOutcome` implement it.
pub trait CalloutHandler: Send {
    /// Answers one callout.
    fn answer(&mut self, request: &CalloutRequest) -> CalloutOutcome;
}

impl<F: FnMut(&CalloutRequest) -> CalloutOutcome + Send> CalloutHandler for F {
    fn answer(&mut self, request: &CalloutRequest) -> CalloutOutcome {
        self(request)
    }
}

/// A Higress `proxy_redis_call` as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisCall {
    /// Cluster name (with any `?db=N` suffix given at init).
    pub cluster: String,
    /// The RESP-encoded command.
    pub query: Vec<u8>,
    /// Token returned to the guest.
    pub token: u32,
}

/// How a Redis call ends: `Ok(resp_bytes)` (status 0) or `Err(status)`.
pub type RedisReply = Result<Vec<u8>, u32>;
