//! Anthropic Messages client-side wire types, as read-only views.
//!
//! [`Response`] reads a non-streaming message or an error body; [`StreamEvent`] reads any
//! streaming event's `data` (dispatching on its `type` field, not on the SSE event name).
//! Tool inputs, citations and signatures are skipped. Unknown fields are skipped, not kept (see
//! the module docs of [`crate::schema`]).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::openai::ApiError;
use super::{Count, Role, Text, TextContent};

/// A Messages request (`POST /v1/messages`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MessagesRequest<'a> {
    /// The requested model.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Stream the answer as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Output token cap (required by Anthropic).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// System prompt: a string or text blocks.
    #[serde(borrow, default)]
    pub system: TextContent<'a>,
    /// The conversation.
    #[serde(borrow, default)]
    pub messages: Vec<Message<'a>>,
}

/// One request message.
#[derive(Debug, Clone, Deserialize)]
pub struct Message<'a> {
    /// `user` or `assistant`.
    pub role: Role,
    /// String or content blocks.
    #[serde(borrow, default)]
    pub content: TextContent<'a>,
}

/// A non-streaming response, the `message` of `message_start`, or an error body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Response<'a> {
    /// `message` or `error`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// Message id (`msg_...`).
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Content blocks.
    #[serde(borrow, default)]
    pub content: Vec<Block<'a>>,
    /// Why generation stopped.
    #[serde(borrow, default)]
    pub stop_reason: Option<Text<'a>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The error of an error body.
    #[serde(borrow, default)]
    pub error: Option<ApiError<'a>>,
}

/// A content block, or a streaming delta of one (the union of the fields the gateway reads).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Block<'a> {
    /// `text`, `tool_use`, `thinking`, `text_delta`, `input_json_delta`, `thinking_delta`, ...
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// Text (`text` blocks and `text_delta`).
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
    /// Thinking text (`thinking` blocks and `thinking_delta`).
    #[serde(borrow, default)]
    pub thinking: Option<Text<'a>>,
    /// Tool name (`tool_use`, `server_tool_use`).
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// Complete tool input (`tool_use` blocks of a non-streaming response; `{}` in stream starts).
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// Tool input JSON fragment (`input_json_delta`).
    #[serde(borrow, default)]
    pub partial_json: Option<Text<'a>>,
    /// Stop reason (`message_delta.delta`).
    #[serde(borrow, default)]
    pub stop_reason: Option<Text<'a>>,
}

/// Anthropic `usage`. `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: Option<Count>,
    /// Output tokens (cumulative in `message_delta`).
    #[serde(default)]
    pub output_tokens: Option<Count>,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<Count>,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<Count>,
}

/// One streaming event's data.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamEvent<'a> {
    /// `message_start`, `content_block_start`, `content_block_delta`, `content_block_stop`,
    /// `message_delta`, `message_stop`, `ping`, `error`.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// `message_start`: the message so far.
    #[serde(borrow, default)]
    pub message: Option<Response<'a>>,
    /// Content block index.
    #[serde(default)]
    pub index: Option<u32>,
    /// `content_block_start`: the block.
    #[serde(borrow, default)]
    pub content_block: Option<Block<'a>>,
    /// `content_block_delta` / `message_delta`: the change.
    #[serde(borrow, default)]
    pub delta: Option<Block<'a>>,
    /// `message_delta`: usage so far.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// `error`: the error.
    #[serde(borrow, default)]
    pub error: Option<ApiError<'a>>,
}
