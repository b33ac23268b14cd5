//! Backend response -> hub events: chunk and message building, tool-call indices, finish reasons,
//! usage and ids, as every translator needs them.

use std::collections::BTreeMap;

use aigw_shared::aws::hmac::sha256_hex;
use serde_json::{Map, Value};

use crate::hub::{
    ChatChunk, ChatResponse, Choice, ChunkChoice, Delta, FunctionCall, FunctionDelta,
    PromptTokensDetails, ResponseMessage, Role, ToolCall, ToolCallDelta, Usage,
};
use crate::translate::{ResponseHead, TranslateError};

/// OpenAI `finish_reason` values.
pub mod finish {
    /// The model stopped on its own (or on a stop sequence).
    pub const STOP: &str = "stop";
    /// The output limit was reached.
    pub const LENGTH: &str = "length";
    /// The model called tools.
    pub const TOOL_CALLS: &str = "tool_calls";
    /// A filter stopped the answer.
    pub const CONTENT_FILTER: &str = "content_filter";
}

/// A Claude-style `stop_reason` (Anthropic Messages, Bedrock Converse) -> OpenAI `finish_reason`;
/// `filtered` names the backend's reasons for a filtered answer.
pub fn stop_reason_to_finish(reason: &str, filtered: &[&str]) -> &'static str {
    match reason {
        "tool_use" => finish::TOOL_CALLS,
        "max_tokens" | "model_context_window_exceeded" => finish::LENGTH,
        r if filtered.contains(&r) => finish::CONTENT_FILTER,
        _ => finish::STOP,
    }
}

/// Hub usage from counts that exclude cache reads and writes (Anthropic, Bedrock); OpenAI's
/// `prompt_tokens` includes them. The counts come from upstream: sums saturate.
pub fn cached_usage(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Usage {
    let prompt = input.saturating_add(cache_read).saturating_add(cache_write);
    Usage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: prompt.saturating_add(output),
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(cache_read),
            cache_creation_tokens: (cache_write > 0).then_some(cache_write),
            extra: Map::new(),
        }),
        completion_tokens_details: None,
        extra: Map::new(),
    }
}

/// An id made of `prefix` and the first 24 hex digits of the SHA-256 of `seed`: the same bytes
/// always give the same id, whatever the chunking.
pub fn hashed_id(prefix: &str, seed: &[u8]) -> String {
    let hex = sha256_hex(seed);
    format!("{prefix}{}", hex.get(..24).unwrap_or(&hex))
}

/// A string field of a JSON object, or "".
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A whole JSON answer body.
pub fn parse_body(body: &[u8]) -> Result<Value, TranslateError> {
    serde_json::from_slice(body)
        .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))
}

/// One JSON stream event.
pub fn parse_event(data: &str) -> Result<Value, TranslateError> {
    serde_json::from_str(data)
        .map_err(|e| TranslateError::Upstream(format!("bad stream event: {e}")))
}

/// A stream that ended before it was complete: before `marker` once it had started, else
/// without any event.
pub fn ended_early(started: bool, marker: &str) -> TranslateError {
    TranslateError::Upstream(if started {
        format!("the upstream stream ended before {marker}")
    } else {
        "the upstream stream ended without any event".into()
    })
}

/// A stream whose last event was cut off.
pub fn truncated_event() -> TranslateError {
    TranslateError::Upstream("the upstream stream ended in the middle of an event".into())
}

/// What every chunk of one streamed answer repeats: id, model and creation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHead {
    /// `id` (set once the backend names or implies it).
    pub id: String,
    /// `model` (the requested one until the backend names another).
    pub model: String,
    /// `created`.
    pub created: u64,
}

impl ChunkHead {
    /// The head of a stream answering a request described by `head` (id still empty).
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            id: String::new(),
            model: head.model.clone(),
            created: head.created,
        }
    }

    /// A chunk with these choices.
    pub fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: None,
            extra: Map::new(),
        }
    }

    /// A chunk with one choice.
    pub fn delta(&self, index: u32, delta: Delta, finish: Option<&str>) -> ChatChunk {
        self.chunk(vec![ChunkChoice {
            index,
            delta,
            finish_reason: finish.map(str::to_owned),
            extra: Map::new(),
        }])
    }

    /// The final usage-only chunk (no choices).
    pub fn usage(&self, usage: Usage) -> ChatChunk {
        let mut c = self.chunk(Vec::new());
        c.usage = Some(usage);
        c
    }
}

/// The first delta of a choice: role `assistant`, empty content.
pub fn role_delta() -> Delta {
    Delta {
        role: Some(Role::Assistant.as_str().into()),
        content: Some(String::new()),
        ..Delta::default()
    }
}

/// A content delta.
pub fn text_delta(text: String) -> Delta {
    Delta {
        content: Some(text),
        ..Delta::default()
    }
}

/// A reasoning delta.
pub fn reasoning_delta(text: String) -> Delta {
    Delta {
        reasoning_content: Some(text),
        ..Delta::default()
    }
}

/// A delta carrying tool-call deltas.
pub fn tool_calls_delta(calls: Vec<ToolCallDelta>) -> Delta {
    Delta {
        tool_calls: Some(calls),
        ..Delta::default()
    }
}

/// The opening delta of tool call `index`: its id and name, and `arguments` so far.
pub fn tool_call_start(index: u32, id: String, name: String, arguments: String) -> ToolCallDelta {
    ToolCallDelta {
        index,
        id: Some(id),
        kind: Some("function".into()),
        function: Some(FunctionDelta {
            name: Some(name),
            arguments: Some(arguments),
        }),
    }
}

/// More argument text for tool call `index`.
pub fn tool_call_arguments(index: u32, arguments: String) -> ToolCallDelta {
    ToolCallDelta {
        index,
        function: Some(FunctionDelta {
            name: None,
            arguments: Some(arguments),
        }),
        ..ToolCallDelta::default()
    }
}

/// Backend content-block index -> OpenAI tool-call index (0, 1, … in the order the calls open).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolIndex(BTreeMap<u64, u32>);

impl ToolIndex {
    /// A tool call opens in `block`: its OpenAI index.
    pub fn open(&mut self, block: u64) -> u32 {
        let index = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.insert(block, index);
        index
    }

    /// The OpenAI index of the call open in `block`, if any.
    pub fn get(&self, block: u64) -> Option<u32> {
        self.0.get(&block).copied()
    }
}

/// A tool call of a whole answer.
pub fn tool_call(id: String, name: String, arguments: String) -> ToolCall {
    ToolCall {
        id,
        kind: "function".into(),
        function: FunctionCall { name, arguments },
    }
}

/// A whole answer's text, reasoning and tool calls, collected from the backend's blocks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answer {
    /// Answer text.
    pub text: String,
    /// Reasoning text.
    pub reasoning: String,
    /// Tool calls.
    pub calls: Vec<ToolCall>,
}

impl Answer {
    /// The hub message: content unless the answer is only tool calls; reasoning and tool calls
    /// when there are any.
    pub fn message(self) -> ResponseMessage {
        let calls = self.calls;
        ResponseMessage {
            content: (!self.text.is_empty() || calls.is_empty()).then_some(self.text),
            reasoning_content: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls: (!calls.is_empty()).then_some(calls),
            ..ResponseMessage::default()
        }
    }
}

/// A one-choice `chat.completion`.
pub fn single_choice(
    id: String,
    created: u64,
    model: String,
    message: ResponseMessage,
    finish_reason: Option<String>,
    usage: Option<Usage>,
) -> ChatResponse {
    ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model,
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason,
            extra: Map::new(),
        }],
        usage,
        extra: Map::new(),
    }
}
