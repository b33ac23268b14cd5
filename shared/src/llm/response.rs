//! What the response observer reports: deltas, finish reasons, usage and the running summary,
//! plus the conversions from each provider's usage and error objects.

use crate::schema::{anthropic, openai, Count};
use crate::tokens::{TokenCount, TokenEstimator};

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// One JSON document.
    Json,
    /// Server-sent events.
    Sse,
    /// Decide from the first non-whitespace byte (`{` or `[` means JSON, anything else SSE).
    Auto,
}

impl ResponseFormat {
    /// From a `content-type` header value: `text/event-stream` is SSE, `*json*` is JSON, anything
    /// else (or no header) is [`ResponseFormat::Auto`].
    pub fn from_content_type(value: Option<&[u8]>) -> Self {
        let Some(value) = value else {
            return Self::Auto;
        };
        let lower = value.to_ascii_lowercase();
        if lower.windows(17).any(|w| w == b"text/event-stream") {
            Self::Sse
        } else if lower.windows(4).any(|w| w == b"json") {
            Self::Json
        } else {
            Self::Auto
        }
    }
}

/// What a delta carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeltaKind {
    /// Answer text.
    Content,
    /// Reasoning / thinking text.
    Reasoning,
    /// A refusal message (OpenAI).
    Refusal,
    /// The name of a tool the model calls.
    ToolName,
    /// (A fragment of) a tool call's JSON arguments.
    ToolArguments,
}

/// One piece of generated text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta<'a> {
    /// The choice (OpenAI `n` > 1); always 0 for Anthropic.
    pub choice: u32,
    /// The tool call index (OpenAI) or content block index (Anthropic); 0 for plain OpenAI text.
    pub index: u32,
    /// What the text is.
    pub kind: DeltaKind,
    /// The text (never empty).
    pub text: &'a str,
}

/// Why generation stopped, normalised across providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinishReason {
    /// Natural end or a stop sequence (OpenAI `stop`; Anthropic `end_turn`, `stop_sequence`).
    Stop,
    /// Output cap or context window reached (OpenAI `length`; Anthropic `max_tokens`,
    /// `model_context_window_exceeded`).
    Length,
    /// The model called tools (OpenAI `tool_calls`, `function_call`; Anthropic `tool_use`).
    ToolCalls,
    /// Filtered or refused (OpenAI `content_filter`; Anthropic `refusal`).
    ContentFilter,
    /// Anything else (e.g. Anthropic `pause_turn`); see the raw value.
    Other,
}

impl FinishReason {
    /// Normalise an OpenAI `finish_reason`.
    pub fn from_openai(raw: &str) -> Self {
        match raw {
            "stop" | "eos" => Self::Stop,
            "length" => Self::Length,
            "tool_calls" | "function_call" => Self::ToolCalls,
            "content_filter" => Self::ContentFilter,
            _ => Self::Other,
        }
    }

    /// Normalise an Anthropic `stop_reason`.
    pub fn from_anthropic(raw: &str) -> Self {
        match raw {
            "end_turn" | "stop_sequence" => Self::Stop,
            "max_tokens" | "model_context_window_exceeded" => Self::Length,
            "tool_use" => Self::ToolCalls,
            "refusal" => Self::ContentFilter,
            _ => Self::Other,
        }
    }

    /// OpenAI's name for it (`other` for [`FinishReason::Other`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolCalls => "tool_calls",
            Self::ContentFilter => "content_filter",
            Self::Other => "other",
        }
    }
}

/// Token usage as the provider reported it, normalised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached ones included (Anthropic: `input_tokens` + cache reads + cache
    /// writes, so the number compares with OpenAI's `prompt_tokens`).
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// As reported, else input + output.
    pub total_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_creation_input_tokens: Option<u64>,
    /// Hidden reasoning tokens (OpenAI).
    pub reasoning_tokens: Option<u64>,
}

/// An error the upstream reported in the body (error response or in-stream error event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamError {
    /// `error.type` (or Google's `status`).
    pub kind: Option<String>,
    /// `error.message`.
    pub message: Option<String>,
    /// `error.code` as text.
    pub code: Option<String>,
}

/// Everything observed about a response so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseSummary {
    /// Response id.
    pub id: Option<String>,
    /// The model that answered.
    pub model: Option<String>,
    /// Normalised finish reason (of choice 0 when there are several).
    pub finish_reason: Option<FinishReason>,
    /// The provider's finish reason string.
    pub finish_reason_raw: Option<String>,
    /// Usage, once reported.
    pub usage: Option<Usage>,
    /// An error reported in the body.
    pub error: Option<UpstreamError>,
    /// Clock of the first body chunk.
    pub first_byte_ns: Option<u64>,
    /// Clock of the chunk that completed the first delta (see the module docs).
    pub first_token_ns: Option<u64>,
    /// Clock of the chunk that completed the last delta.
    pub last_token_ns: Option<u64>,
    /// The response ended properly (`[DONE]`, `message_stop`, or a JSON body that parsed).
    pub completed: bool,
    /// The SSE stream ended in the middle of an event.
    pub truncated: bool,
    /// SSE events seen (including `[DONE]` and pings).
    pub events: u64,
    /// Events whose data could not be read.
    pub malformed_events: u64,
    /// Why the body could not be read at all, if so.
    pub parse_error: Option<String>,
    /// Deltas emitted.
    pub deltas: u64,
    /// Running estimate over all delta text, for when usage is missing.
    pub output_estimate: TokenEstimator,
}

impl ResponseSummary {
    /// Output tokens: as reported, else estimated from the delta text.
    pub fn output_tokens(&self) -> TokenCount {
        match self.usage {
            Some(u) => TokenCount::reported(u.output_tokens),
            None => self.output_estimate.estimate(),
        }
    }
}

/// Anthropic reports usage in pieces (`message_start`, then `message_delta`); keep the latest of each.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct AnthropicUsage {
    input: Option<u64>,
    output: Option<u64>,
    cache_creation: Option<u64>,
    cache_read: Option<u64>,
}

impl AnthropicUsage {
    pub(super) fn update(&mut self, u: &anthropic::Usage) {
        let pick = |new: Option<Count>, old: Option<u64>| new.map(|c| c.0).or(old);
        self.input = pick(u.input_tokens, self.input);
        self.output = pick(u.output_tokens, self.output);
        self.cache_creation = pick(u.cache_creation_input_tokens, self.cache_creation);
        self.cache_read = pick(u.cache_read_input_tokens, self.cache_read);
    }

    pub(super) fn normalised(&self) -> Usage {
        let input = self
            .input
            .unwrap_or(0)
            .saturating_add(self.cache_read.unwrap_or(0))
            .saturating_add(self.cache_creation.unwrap_or(0));
        let output = self.output.unwrap_or(0);
        Usage {
            input_tokens: input,
            output_tokens: output,
            total_tokens: input.saturating_add(output),
            cached_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_creation,
            reasoning_tokens: None,
        }
    }
}

pub(super) fn openai_usage(u: &openai::Usage) -> Usage {
    usage_of(
        u.prompt_tokens,
        u.completion_tokens,
        u.total_tokens,
        u.prompt_tokens_details.and_then(|d| d.cached_tokens),
        u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
    )
}

pub(super) fn responses_usage(u: &openai::ResponsesUsage) -> Usage {
    usage_of(
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        u.input_tokens_details.and_then(|d| d.cached_tokens),
        u.output_tokens_details.and_then(|d| d.reasoning_tokens),
    )
}

/// OpenAI's usage numbers (chat and Responses API alike), total defaulting to the sum.
fn usage_of(
    input: Option<Count>,
    output: Option<Count>,
    total: Option<Count>,
    cached: Option<Count>,
    reasoning: Option<Count>,
) -> Usage {
    let input = input.map_or(0, |c| c.0);
    let output = output.map_or(0, |c| c.0);
    Usage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: total.map_or(input.saturating_add(output), |c| c.0),
        cached_input_tokens: cached.map(|c| c.0),
        cache_creation_input_tokens: None,
        reasoning_tokens: reasoning.map(|c| c.0),
    }
}

pub(super) fn upstream_error(e: &openai::ApiError<'_>) -> UpstreamError {
    let code = e.code.as_ref().and_then(|c| match c {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    });
    UpstreamError {
        kind: e.kind.as_deref().or(e.status.as_deref()).map(str::to_owned),
        message: e.message.as_deref().map(str::to_owned),
        code,
    }
}
