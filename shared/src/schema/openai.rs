//! OpenAI client-side wire types (chat completions, completions, embeddings), as read-only views.
//!
//! One response type, [`Response`], reads every OpenAI-shaped body the gateway observes: a chat
//! completion, a chat completion chunk (`choices[].delta`), a legacy completion or its chunk
//! (`choices[].text`), an embeddings list (only `model` and `usage` are read; the vectors are
//! skipped) and an error body (`{"error":{...}}`). vLLM/Ollama extras (`reasoning_content`,
//! `reasoning`) are read as reasoning text. Unknown fields are skipped, not kept (see the module
//! docs of [`crate::schema`]).

use serde::Deserialize;

use super::{Count, Role, Text, TextContent, TextList};

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Ask for a final usage chunk.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A chat completions request (`POST /v1/chat/completions`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatRequest<'a> {
    /// The requested model.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Stream the answer as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Legacy output token cap.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Output token cap (reasoning models).
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// The conversation.
    #[serde(borrow, default)]
    pub messages: Vec<ChatMessage<'a>>,
}

/// One chat message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage<'a> {
    /// Who wrote it.
    pub role: Role,
    /// Its text (string or text parts).
    #[serde(borrow, default)]
    pub content: TextContent<'a>,
}

/// A legacy completions request (`POST /v1/completions`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompletionRequest<'a> {
    /// The requested model.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Stream the answer as SSE.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Output token cap.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// The prompt(s).
    #[serde(borrow, default)]
    pub prompt: TextList<'a>,
}

/// An embeddings request (`POST /v1/embeddings`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EmbeddingsRequest<'a> {
    /// The requested model.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// The input text(s).
    #[serde(borrow, default)]
    pub input: TextList<'a>,
}

/// Any OpenAI-shaped response body or stream chunk (see the module docs).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Response<'a> {
    /// Response id (`chatcmpl-...`).
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Choices (absent for embeddings; empty in the final usage chunk).
    #[serde(borrow, default)]
    pub choices: Option<Vec<Choice<'a>>>,
    /// Token usage (`null` in stream chunks before the last).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error body or in-stream error.
    #[serde(borrow, default)]
    pub error: Option<ApiError<'a>>,
}

/// One choice of a response or chunk.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Choice<'a> {
    /// Choice index (`n` > 1).
    #[serde(default)]
    pub index: Option<u32>,
    /// The full message (non-streaming chat).
    #[serde(borrow, default)]
    pub message: Option<Message<'a>>,
    /// The increment (streaming chat).
    #[serde(borrow, default)]
    pub delta: Option<Message<'a>>,
    /// Generated text (legacy completions).
    #[serde(borrow, default)]
    pub text: Option<Text<'a>>,
    /// Why generation stopped.
    #[serde(borrow, default)]
    pub finish_reason: Option<Text<'a>>,
}

/// An assistant message or delta.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message<'a> {
    /// Answer text.
    #[serde(borrow, default)]
    pub content: Option<Text<'a>>,
    /// Reasoning text (vLLM, DeepSeek).
    #[serde(borrow, default)]
    pub reasoning_content: Option<Text<'a>>,
    /// Reasoning text (Ollama, newer vLLM).
    #[serde(borrow, default)]
    pub reasoning: Option<Text<'a>>,
    /// A refusal.
    #[serde(borrow, default)]
    pub refusal: Option<Text<'a>>,
    /// Tool calls (in streams: fragments keyed by `index`).
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// Legacy function call.
    #[serde(borrow, default)]
    pub function_call: Option<FunctionCall<'a>>,
}

/// A tool call or a fragment of one.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ToolCall<'a> {
    /// Position among the message's tool calls (streams).
    #[serde(default)]
    pub index: Option<u32>,
    /// Call id (first fragment only in streams).
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// Function name and argument text.
    #[serde(borrow, default)]
    pub function: Option<FunctionCall<'a>>,
}

/// A function name and (a fragment of) its JSON arguments.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    #[serde(borrow, default)]
    pub name: Option<Text<'a>>,
    /// Arguments JSON text (or a fragment of it).
    #[serde(borrow, default)]
    pub arguments: Option<Text<'a>>,
}

/// OpenAI `usage`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Usage {
    /// Input tokens (cached ones included).
    #[serde(default)]
    pub prompt_tokens: Option<Count>,
    /// Output tokens (reasoning included).
    #[serde(default)]
    pub completion_tokens: Option<Count>,
    /// Sum.
    #[serde(default)]
    pub total_tokens: Option<Count>,
    /// Input breakdown.
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Output breakdown.
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct PromptDetails {
    /// Input tokens served from the prompt cache.
    #[serde(default)]
    pub cached_tokens: Option<Count>,
}

/// `usage.completion_tokens_details`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CompletionDetails {
    /// Hidden reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: Option<Count>,
}

/// An error object: OpenAI `{"message","type","param","code"}`; also reads Anthropic's
/// `{"type","message"}` and Google's `{"code": 404, "message", "status"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiError<'a> {
    /// Error message.
    #[serde(borrow, default)]
    pub message: Option<Text<'a>>,
    /// Error type (`invalid_request_error`, ...).
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// Machine-readable code: a string (OpenAI) or number (Google).
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    /// Google's status name (`NOT_FOUND`).
    #[serde(borrow, default)]
    pub status: Option<Text<'a>>,
}

/// An OpenAI Responses API request (`POST /v1/responses`): the fields the suite reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesRequest<'a> {
    /// The requested model.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// Stream the answer as typed SSE events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Output token cap.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// System instructions.
    #[serde(borrow, default)]
    pub instructions: Option<Text<'a>>,
    /// The input: a string (one user message) or a list of items.
    #[serde(borrow, default)]
    pub input: ResponsesInput<'a>,
}

/// `input` of a Responses API request, as items.
#[derive(Debug, Clone, Default)]
pub struct ResponsesInput<'a> {
    /// The items in order (a string input is one user message).
    pub items: Vec<ResponsesItem<'a>>,
}

/// One input item: a message (`role`, `content`), a `function_call` (`arguments`) or a
/// `function_call_output` (`output`); other item types carry no text the suite reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesItem<'a> {
    /// `message` (also when absent), `function_call`, `function_call_output`, ...
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// A message's role.
    #[serde(default)]
    pub role: Option<Role>,
    /// A message's text (string or `input_text` / `output_text` parts).
    #[serde(borrow, default)]
    pub content: TextContent<'a>,
    /// A function call's arguments.
    #[serde(borrow, default)]
    pub arguments: Option<Text<'a>>,
    /// A function call output's text.
    #[serde(borrow, default)]
    pub output: TextContent<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ResponsesInput<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, SeqAccess, Visitor};
        use std::borrow::Cow;

        /// Read in place (an untagged enum would first copy the whole input into a buffer).
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ResponsesInput<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, null or an array of input items")
            }
            fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
                Ok(ResponsesInput::default())
            }
            fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
                Ok(ResponsesInput::default())
            }
            fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ResponsesInput::user(Text(Cow::Borrowed(v))))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ResponsesInput::user(Text(Cow::Owned(v.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ResponsesInput { items })
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'a> ResponsesInput<'a> {
    /// A string input: one user message.
    fn user(text: Text<'a>) -> Self {
        ResponsesInput {
            items: vec![ResponsesItem {
                role: Some(Role::User),
                content: TextContent { parts: vec![text] },
                ..ResponsesItem::default()
            }],
        }
    }
}

/// A Responses API `response` object (a JSON answer, or the `response` of a stream's
/// `response.completed` / `.incomplete` / `.failed` event).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesResponse<'a> {
    /// `resp_...`.
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    /// The model that answered.
    #[serde(borrow, default)]
    pub model: Option<Text<'a>>,
    /// `completed`, `incomplete`, `failed`, `in_progress`.
    #[serde(borrow, default)]
    pub status: Option<Text<'a>>,
    /// The output items.
    #[serde(borrow, default)]
    pub output: Vec<ResponsesItem<'a>>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<ResponsesUsage>,
    /// Why it failed.
    #[serde(borrow, default)]
    pub error: Option<ApiError<'a>>,
}

/// Responses API `usage`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct ResponsesUsage {
    /// Input tokens (cached ones included).
    #[serde(default)]
    pub input_tokens: Option<Count>,
    /// Output tokens (reasoning included).
    #[serde(default)]
    pub output_tokens: Option<Count>,
    /// Sum.
    #[serde(default)]
    pub total_tokens: Option<Count>,
    /// Input breakdown (`cached_tokens`).
    #[serde(default)]
    pub input_tokens_details: Option<PromptDetails>,
    /// Output breakdown (`reasoning_tokens`).
    #[serde(default)]
    pub output_tokens_details: Option<CompletionDetails>,
}

/// One typed event of a streamed Responses API answer (the data; its `type` names it).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponsesEvent<'a> {
    /// `response.output_text.delta`, `response.completed`, `error`, ...
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    /// A text or arguments delta.
    #[serde(borrow, default)]
    pub delta: Option<Text<'a>>,
    /// The response (lifecycle events).
    #[serde(borrow, default)]
    pub response: Option<ResponsesResponse<'a>>,
    /// An `error` event's message and code (top level).
    #[serde(borrow, default)]
    pub message: Option<Text<'a>>,
    /// An `error` event's code.
    #[serde(default)]
    pub code: Option<serde_json::Value>,
}
