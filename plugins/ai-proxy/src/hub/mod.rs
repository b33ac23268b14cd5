//! The hub: OpenAI Chat Completions as owned, typed structs. Every cross-protocol translation goes
//! client format -> hub -> backend format, and backend events -> hub events -> client format, so a
//! new provider needs one translator pair, not one per client protocol.

mod request;
mod response;

pub use request::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, FunctionName, ImageUrl,
    JsonSchema, Message, NamedToolChoice, ResponseFormat, Role, Stop, StreamOptions, Tool,
    ToolCall, ToolChoice,
};
pub use response::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, CompletionTokensDetails, Delta, FunctionDelta,
    PromptTokensDetails, ResponseMessage, ToolCallDelta, Usage,
};

use aigw_shared::error::ClientError;

/// What a backend response translator yields, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// One stream chunk (streaming responses).
    Chunk(ChatChunk),
    /// The whole answer (non-streaming responses).
    Response(ChatResponse),
    /// The upstream reported an error (an error body, or an error event inside a stream).
    Error(ClientError),
}
