//! Translation is a hub: **client -> OpenAI-chat hub -> backend, and back**.
//!
//! Every cross-protocol request is decoded from the client's schema into the hub
//! ([`crate::hub::ChatRequest`], OpenAI Chat Completions as owned structs) and encoded from the hub
//! into the backend's schema; every response goes the other way: the backend's bytes become
//! [`HubEvent`]s, and hub events become the client's bytes. A new client protocol or a new backend
//! is therefore one translator against the hub, never one per (client, backend) pair.
//!
//! * [`client`]: the client side. An Anthropic Messages request becomes a hub request
//!   ([`client::anthropic::to_hub`]; OpenAI requests already are one); hub events become the
//!   client's bytes through a [`ClientEncoder`] (OpenAI SSE/JSON in [`client::openai`], Anthropic
//!   SSE/JSON in [`client::anthropic_encode`]).
//! * [`backend`](mod@backend): the backend side, one module per backend schema ([`Backend`]). A hub
//!   [`ChatRequest`] becomes the backend's request body, and the backend's response (JSON or a
//!   stream, split anywhere) becomes [`HubEvent`]s through a per-request [`ResponseTranslator`].
//! * Same-protocol pairs skip the hub entirely ([`passthrough`]): only `model` is patched in the
//!   original bytes and the response is forwarded untouched.
//! * [`kit`]: what the backend translators share (conversation splitting, content parts, chunk
//!   and message building, tool-call indices, finish reasons, usage).
//! * [`errors`]: upstream error bodies in the caller's shape.
//!
//! Adding a backend schema: a [`Schema`] variant, a module under `backend/`, and one arm in
//! [`backend()`].

pub mod backend;
pub mod client;
pub mod errors;
pub mod kit;
pub mod passthrough;

use aigw_shared::error::{ClientError, ErrorKind};

use crate::hub::{ChatRequest, HubEvent};

/// The wire protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Schema {
    /// OpenAI Chat Completions (OpenAI, Azure OpenAI and every OpenAI-compatible server).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Amazon Bedrock Converse (SigV4-signed, event-stream responses).
    Bedrock,
    /// Amazon Bedrock InvokeModel with the Anthropic Messages body (Claude models).
    BedrockInvoke,
    /// Google Gemini `generateContent` (Gemini API and Vertex AI; SSE responses).
    Gemini,
}

impl Schema {
    /// Stable lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Bedrock => "bedrock",
            Self::BedrockInvoke => "bedrock-invoke",
            Self::Gemini => "gemini",
        }
    }
}

/// The translator for a backend schema.
pub fn backend(schema: Schema) -> &'static dyn Backend {
    match schema {
        Schema::OpenAi => &backend::openai::OpenAiBackend,
        Schema::Anthropic => &backend::anthropic::AnthropicBackend,
        Schema::Bedrock => &backend::bedrock::BedrockBackend,
        Schema::BedrockInvoke => &backend::bedrock::invoke::InvokeBackend,
        Schema::Gemini => &backend::gemini::GeminiBackend,
    }
}

/// What to do with a request field the chosen backend cannot express.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnsupportedPolicy {
    /// Answer 400 naming the field.
    #[default]
    Reject,
    /// Drop the field and log a warning.
    Ignore,
}

/// Everything a request encoder needs besides the hub request.
#[derive(Debug)]
pub struct BuildContext<'a> {
    /// The backend's model name (after mapping).
    pub model: &'a str,
    /// Reject or drop fields the backend cannot express.
    pub unsupported: UnsupportedPolicy,
    /// Names of the fields dropped under [`UnsupportedPolicy::Ignore`] (for the log).
    pub dropped: Vec<String>,
}

impl<'a> BuildContext<'a> {
    /// A context for `model`.
    pub fn new(model: &'a str, unsupported: UnsupportedPolicy) -> Self {
        Self {
            model,
            unsupported,
            dropped: Vec::new(),
        }
    }

    /// Report that `field` cannot be expressed: an error under `Reject`, a note under `Ignore`.
    pub fn unsupported(&mut self, field: &str, backend: &str) -> Result<(), TranslateError> {
        match self.unsupported {
            UnsupportedPolicy::Reject => Err(TranslateError::Unsupported {
                field: field.to_owned(),
                backend: backend.to_owned(),
            }),
            UnsupportedPolicy::Ignore => {
                self.dropped.push(field.to_owned());
                Ok(())
            }
        }
    }
}

/// Facts about an upstream response a translator starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// `content-type`, lower-cased.
    pub content_type: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The model to report when the backend does not name one.
    pub model: String,
    /// Unix seconds, for `created`.
    pub created: u64,
}

impl ResponseHead {
    /// Whether the body is an SSE stream.
    pub fn is_sse(&self) -> bool {
        self.content_type.starts_with("text/event-stream")
    }
}

/// A backend schema: request encoding and response decoding.
pub trait Backend {
    /// Encode a hub chat request as this backend's request body.
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError>;

    /// A translator for one successful (2xx) response.
    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator>;
}

/// Turns one upstream response body, delivered in chunks split anywhere, into hub events.
pub trait ResponseTranslator {
    /// Consume a chunk; append the events it completes to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError>;
    /// The body ended: flush what is pending; an `Err` reports a truncated or unusable body.
    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError>;
    /// The upstream stream has sent its own ending (or an error event): nothing after it is
    /// read, so the client's stream can be closed now, even when the body ends with trailers
    /// (where no more bytes can be sent). Streams without an explicit ending say `false`.
    fn complete(&self) -> bool {
        false
    }
}

/// Turns hub events into the client's bytes (SSE or JSON).
pub trait ClientEncoder {
    /// The `content-type` of the client response.
    fn content_type(&self) -> &'static str;
    /// Append the bytes for one event.
    fn encode(&mut self, event: HubEvent, out: &mut Vec<u8>);
    /// The upstream body ended (`error` when it ended badly): close the stream properly.
    fn finish(&mut self, error: Option<ClientError>, out: &mut Vec<u8>);
}

/// Why a translation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The client's request is not valid JSON or does not fit the API (400).
    #[error("{message}")]
    Malformed {
        /// What is wrong.
        message: String,
        /// The field at fault.
        param: Option<String>,
    },
    /// The request uses a field the backend cannot express (400 under `unsupportedFields: reject`).
    #[error("`{field}` is not supported by the {backend} backend")]
    Unsupported {
        /// The field.
        field: String,
        /// The backend schema.
        backend: String,
    },
    /// The upstream body could not be understood or ended early (502).
    #[error("{0}")]
    Upstream(String),
}

impl TranslateError {
    /// A malformed-request error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed {
            message: message.into(),
            param: None,
        }
    }

    /// A malformed-request error naming a field.
    pub fn malformed_param(message: impl Into<String>, param: &str) -> Self {
        Self::Malformed {
            message: message.into(),
            param: Some(param.to_owned()),
        }
    }

    /// The error as the client sees it.
    pub fn to_client(&self) -> ClientError {
        match self {
            Self::Malformed { message, param } => {
                let e = ClientError::invalid_request(message.clone());
                match param {
                    Some(p) => e.with_param(p.clone()),
                    None => e,
                }
            }
            Self::Unsupported { field, .. } => ClientError::invalid_request(self.to_string())
                .with_param(field.clone())
                .with_code("unsupported_parameter"),
            Self::Upstream(message) => ClientError::new(
                ErrorKind::BadGateway,
                format!("upstream response could not be translated: {message}"),
            ),
        }
    }
}
