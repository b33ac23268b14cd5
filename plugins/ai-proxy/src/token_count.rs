//! Token counting endpoints the gateway answers or forwards: Anthropic's
//! `POST /v1/messages/count_tokens` and OpenAI's `POST /v1/responses/input_tokens`, the estimate
//! for a Responses API body when the provider has no counting API, and the body of Bedrock's
//! `CountTokens` (`POST /model/{modelId}/count-tokens`, AWS "CountTokens" API reference:
//! `{"input": {"converse": {messages, system, toolConfig, additionalModelRequestFields}}}` or
//! `{"input": {"invokeModel": {"body": <base64 InvokeModel body>}}}`, answered
//! `{"inputTokens": N}`).

use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::llm::{Api, RequestView};
use aigw_shared::tokens::TokenEstimator;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::hub::ChatRequest;
use crate::translate::client::{anthropic as anthropic_client, responses as responses_client};
use crate::translate::{self, BuildContext, Schema};

/// Anthropic's token counting endpoint (after `/v1`).
pub const COUNT_TOKENS: &str = "/messages/count_tokens";

/// OpenAI's Responses API input token count (after `/v1`).
pub const INPUT_TOKENS: &str = "/responses/input_tokens";

/// Framing tokens counted per input item (role, separators), as for chat messages.
const TOKENS_PER_ITEM: u64 = 3;

/// The estimated input tokens of a Responses API body: `instructions`, every text of `input` (a
/// string, or items: messages with string or part contents, function calls and their outputs)
/// and the tools' names, descriptions and parameter schemas. `Err`: not a JSON object.
pub fn estimate_responses_input(body: &[u8]) -> Result<u64, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body must be a JSON object")?;
    let mut e = TokenEstimator::new();
    let mut push = |text: &str| {
        e.push(text);
        e.break_word();
    };
    let mut items = 0u64;
    if let Some(Value::String(s)) = obj.get("instructions") {
        push(s);
        items += 1;
    }
    match obj.get("input") {
        Some(Value::String(s)) => {
            push(s);
            items += 1;
        }
        Some(Value::Array(list)) => {
            for item in list {
                items += 1;
                texts_of_item(item, &mut push);
            }
        }
        _ => {}
    }
    for tool in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["name", "description"] {
            if let Some(Value::String(s)) = tool.get(key) {
                push(s);
            }
        }
        if let Some(p) = tool.get("parameters") {
            push(&p.to_string());
        }
    }
    Ok(e.estimate()
        .tokens
        .saturating_add(items.saturating_mul(TOKENS_PER_ITEM)))
}

/// The fields of a Converse request that Bedrock's `ConverseTokensRequest` takes (AWS API
/// reference, "ConverseTokensRequest"); generation settings (`inferenceConfig`) are not counted.
const CONVERSE_COUNTED: [&str; 4] = [
    "messages",
    "system",
    "toolConfig",
    "additionalModelRequestFields",
];

/// How a token count was asked for and is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Anthropic's `count_tokens`: `{"input_tokens": N}`.
    Anthropic,
    /// OpenAI's Responses `input_tokens`: `{"object": "response.input_tokens", "input_tokens": N}`.
    OpenAiResponses,
}

impl Asked {
    /// The API path (after `/v1`) asked.
    pub fn of(suffix: &str) -> Option<Self> {
        match suffix {
            COUNT_TOKENS => Some(Self::Anthropic),
            INPUT_TOKENS => Some(Self::OpenAiResponses),
            _ => None,
        }
    }

    /// The answer carrying `tokens`.
    pub fn answer(self, tokens: u64) -> String {
        match self {
            Self::Anthropic => format!("{{\"input_tokens\":{tokens}}}"),
            Self::OpenAiResponses => {
                format!("{{\"object\":\"response.input_tokens\",\"input_tokens\":{tokens}}}")
            }
        }
    }

    /// The suite's estimate of the request `body` (`None`: not a request of this API).
    pub fn estimate(self, body: &[u8]) -> Option<u64> {
        match self {
            Self::Anthropic => RequestView::parse(Api::AnthropicMessages, body)
                .ok()
                .map(|v| v.estimate_input_tokens().tokens),
            Self::OpenAiResponses => estimate_responses_input(body).ok(),
        }
    }
}

/// A token count sent to a provider's counting API, and how its answer comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counting {
    /// The backend schema that counts (Gemini `countTokens`, Bedrock `CountTokens`).
    pub from: Schema,
    /// The client's API (the answer's shape).
    pub asked: Asked,
    /// The gateway's estimate, answered (marked `x-aigw-token-count: estimated`) when the
    /// provider's count fails; `None`: a failure reaches the client as an error.
    pub estimate: Option<u64>,
}

impl Counting {
    /// The count in a provider's 2xx answer: Gemini's `totalTokens`, Bedrock's `inputTokens`.
    pub fn read(&self, body: &[u8]) -> Result<u64, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let key = match self.from {
            Schema::Bedrock | Schema::BedrockInvoke => "inputTokens",
            _ => "totalTokens",
        };
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no `{key}` in the answer"))
    }
}

fn internal(e: impl std::fmt::Display) -> ClientError {
    ClientError::new(
        ErrorKind::Internal,
        format!("cannot build CountTokens: {e}"),
    )
}

/// The hub request of a token count body.
fn hub_of(
    body: &[u8],
    asked: Asked,
    ctx: &mut BuildContext<'_>,
) -> Result<ChatRequest, ClientError> {
    match asked {
        Asked::Anthropic => anthropic_client::to_hub(body, ctx).map_err(|e| e.to_client()),
        Asked::OpenAiResponses => {
            let chat = responses_client::to_chat(body).map_err(|e| e.to_client())?;
            serde_json::from_value(chat).map_err(|e| {
                ClientError::invalid_request(format!(
                    "request body does not fit the Responses API: {e}"
                ))
            })
        }
    }
}

/// The body of Bedrock's `CountTokens` for a count asked as `asked`: the request as Converse
/// (`schema` [`Schema::Bedrock`]) would get it, reduced to the counted fields, or the
/// InvokeModel body (Anthropic Messages for Claude, [`Schema::BedrockInvoke`]) base64-encoded.
pub fn bedrock_count_body(
    body: &[u8],
    asked: Asked,
    schema: Schema,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<u8>, ClientError> {
    let hub = hub_of(body, asked, ctx)?;
    let encoded = translate::backend(schema)
        .encode_request(&hub, ctx)
        .map_err(|e| e.to_client())?;
    let input = if schema == Schema::BedrockInvoke {
        serde_json::json!({"invokeModel": {"body": STANDARD.encode(&encoded)}})
    } else {
        let mut request: Map<String, Value> = serde_json::from_slice(&encoded).map_err(internal)?;
        request.retain(|k, _| CONVERSE_COUNTED.contains(&k.as_str()));
        serde_json::json!({ "converse": request })
    };
    serde_json::to_vec(&serde_json::json!({ "input": input })).map_err(internal)
}

/// The texts of one input item.
fn texts_of_item(item: &Value, push: &mut dyn FnMut(&str)) {
    match item.get("content") {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(s)) = part.get("text") {
                    push(s);
                }
            }
        }
        _ => {}
    }
    for key in ["name", "arguments", "output"] {
        if let Some(Value::String(s)) = item.get(key) {
            push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_input_counts_and_more_text_counts_more() {
        let plain = estimate_responses_input(br#"{"model":"m","input":"Hello there"}"#).unwrap();
        assert!(plain >= 2, "{plain}");
        let items = estimate_responses_input(
            br#"{"model":"m","instructions":"Be brief.","input":[
              {"role":"user","content":[{"type":"input_text","text":"What is the weather in Paris?"}]},
              {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
              {"type":"function_call_output","call_id":"c1","output":"Sunny, 21 degrees"}],
              "tools":[{"type":"function","name":"get_weather","description":"Weather by city",
                        "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#,
        )
        .unwrap();
        assert!(items > 4 * plain, "{items} vs {plain}");
        assert!(estimate_responses_input(b"[1]").is_err());
        assert!(estimate_responses_input(b"{not json").is_err());
    }
}
