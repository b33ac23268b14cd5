//! Gemini `GenerateContentResponse` JSON -> hub response, plus the pieces the stream shares:
//! `finishReason` mapping, `usageMetadata` -> usage, stable tool-call ids, and Google error
//! objects (`{"error":{"code","message","status"}}`) -> client errors.

use aigw_shared::error::ClientError;
use serde_json::{Map, Value};

use crate::hub::{
    ChatResponse, Choice, CompletionTokensDetails, HubEvent, PromptTokensDetails, ResponseMessage,
    ToolCall, Usage,
};
use crate::translate::backend::openai::JsonToHub;
use crate::translate::kit::response::{self as kit, finish, Answer};
use crate::translate::{errors, ResponseHead, ResponseTranslator, TranslateError};

/// Gemini `finishReason` -> OpenAI `finish_reason`. `STOP` becomes `tool_calls` when the
/// candidate called a function.
pub fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => finish::LENGTH,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => finish::CONTENT_FILTER,
        _ if called => finish::TOOL_CALLS,
        _ => finish::STOP,
    }
}

/// `usageMetadata` -> hub usage. Gemini's `promptTokenCount` already includes cached content;
/// OpenAI's `completion_tokens` includes reasoning, so thoughts are added to the candidates.
/// Tool-use prompt tokens count as prompt. The counts come from upstream: sums saturate.
pub fn usage_to_hub(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let prompt = n("promptTokenCount").saturating_add(n("toolUsePromptTokenCount"));
    let thoughts = n("thoughtsTokenCount");
    let completion = n("candidatesTokenCount").saturating_add(thoughts);
    let total = u
        .get("totalTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(prompt.saturating_add(completion));
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(n("cachedContentTokenCount")),
            cache_creation_tokens: None,
            extra: Map::new(),
        }),
        completion_tokens_details: Some(CompletionTokensDetails {
            reasoning_tokens: Some(thoughts),
            extra: Map::new(),
        }),
        extra: Map::new(),
    }
}

/// A stable tool-call id: the same response, candidate and call position always give the same
/// id, whatever the chunking of the stream.
pub fn call_id(response_id: &str, candidate: u32, index: u32, name: &str) -> String {
    let seed = format!("{response_id}\n{candidate}\n{index}\n{name}");
    kit::hashed_id("call_", seed.as_bytes())
}

/// The hub id of a response: `chatcmpl-` + Gemini's `responseId`, or a hash of the body.
pub fn response_id(v: &Value, body: &[u8]) -> String {
    match v.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => kit::hashed_id("chatcmpl-", body),
    }
}

/// A Google error object (`{"error":{...}}`) as the client's error, its status from `code`
/// (else from `status`).
pub fn google_error(v: &Value) -> ClientError {
    let code = v
        .pointer("/error/code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c));
    match code {
        Some(status) => errors::from_upstream(status, v.to_string().as_bytes()),
        None => {
            let status = v
                .pointer("/error/status")
                .and_then(Value::as_str)
                .unwrap_or("");
            let wrapped = serde_json::json!({"error": {
                "type": status,
                "message": v.pointer("/error/message").and_then(Value::as_str)
                    .unwrap_or("upstream stream reported an error"),
            }});
            errors::from_stream_event(&wrapped)
        }
    }
}

/// The parts of one candidate, sorted into text, reasoning and function calls.
#[derive(Debug, Default)]
pub struct Parts {
    /// Answer text.
    pub text: String,
    /// Thought summaries (`thought: true` parts).
    pub reasoning: String,
    /// `(name, arguments JSON)` per function call.
    pub calls: Vec<(String, String)>,
}

/// Sort a candidate's `content.parts`.
pub fn read_parts(candidate: &Value) -> Parts {
    let mut out = Parts::default();
    let parts = candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for p in parts {
        if let Some(fc) = p.get("functionCall") {
            let name = fc.get("name").and_then(Value::as_str).unwrap_or("");
            let args = fc.get("args").map_or_else(|| "{}".into(), Value::to_string);
            out.calls.push((name.to_owned(), args));
        } else if let Some(t) = p.get("text").and_then(Value::as_str) {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                out.reasoning.push_str(t);
            } else {
                out.text.push_str(t);
            }
        }
    }
    out
}

/// A candidate's index (`index`, else its position).
pub fn candidate_index(candidate: &Value, position: usize) -> u32 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX))
}

/// A whole `GenerateContentResponse` -> one hub response.
pub struct GeminiJsonToHub {
    raw: JsonToHub,
    model: String,
    created: u64,
}

impl GeminiJsonToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            raw: JsonToHub::default(),
            model: head.model.clone(),
            created: head.created,
        }
    }
}

impl ResponseTranslator for GeminiJsonToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        self.raw.feed(chunk, out)
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let body = self.raw.bytes();
        let v = kit::parse_body(body)?;
        if v.get("error").is_some() {
            out.push(HubEvent::Error(google_error(&v)));
            return Ok(());
        }
        if v.get("candidates").is_none() && v.get("promptFeedback").is_none() {
            return Err(TranslateError::Upstream(
                "generateContent response without `candidates`".into(),
            ));
        }
        let mut resp = gemini_to_hub(&v, self.created, &self.model);
        resp.id = response_id(&v, body);
        out.push(HubEvent::Response(resp));
        Ok(())
    }
}

/// A `GenerateContentResponse` -> hub response (id left empty). A prompt blocked before any
/// candidate (`promptFeedback.blockReason`) is an empty answer with `content_filter`.
pub fn gemini_to_hub(v: &Value, created: u64, fallback_model: &str) -> ChatResponse {
    let response_id = v.get("responseId").and_then(Value::as_str).unwrap_or("");
    let candidates = v
        .get("candidates")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut choices: Vec<Choice> = candidates
        .iter()
        .enumerate()
        .map(|(pos, c)| choice(c, candidate_index(c, pos), response_id))
        .collect();
    if choices.is_empty() {
        let blocked = v.pointer("/promptFeedback/blockReason").is_some();
        choices.push(Choice {
            message: ResponseMessage {
                content: Some(String::new()),
                ..ResponseMessage::default()
            },
            finish_reason: Some(if blocked { "content_filter" } else { "stop" }.into()),
            ..Choice::default()
        });
    }
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or(fallback_model);
    ChatResponse {
        id: String::new(),
        object: "chat.completion".into(),
        created,
        model: model.to_owned(),
        choices,
        usage: v.get("usageMetadata").map(usage_to_hub),
        extra: Map::new(),
    }
}

fn choice(c: &Value, index: u32, response_id: &str) -> Choice {
    let parts = read_parts(c);
    let calls: Vec<ToolCall> = parts
        .calls
        .into_iter()
        .enumerate()
        .map(|(i, (name, arguments))| {
            let n = u32::try_from(i).unwrap_or(u32::MAX);
            kit::tool_call(call_id(response_id, index, n, &name), name, arguments)
        })
        .collect();
    let finish = c
        .get("finishReason")
        .and_then(Value::as_str)
        .map(|r| finish_reason(r, !calls.is_empty()).to_owned());
    let answer = Answer {
        text: parts.text,
        reasoning: parts.reasoning,
        calls,
    };
    Choice {
        index,
        message: answer.message(),
        finish_reason: finish,
        extra: Map::new(),
    }
}
