//! `POST /model/{modelId}/count-tokens` (Bedrock Runtime `CountTokens`, AWS API reference):
//! `{"input": {"converse": {messages, system, toolConfig, …}}}` or
//! `{"input": {"invokeModel": {"body": "<base64 InvokeModel body>"}}}` (an Anthropic Messages body
//! for Claude models), answered `{"inputTokens": N}` with N counted as the Converse (or Messages)
//! call with the same input reports its input tokens. No recorded sample exists; the shapes are
//! the documented ones. Malformed input is Bedrock's `ValidationException`.

use base64::Engine as _;
use serde_json::Value;

use super::{converse, error};
use crate::anthropic::messages;
use crate::plan::{Plan, JSON};
use crate::reply::{derive_reply, Conversation};
use crate::request::SimRequest;
use crate::router::Ctx;

const MALFORMED: &str = "Malformed input request, please reformat your input and try again.";

/// `count-tokens` handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let conv = match conversation(&req.body) {
        Ok(c) => c,
        Err(msg) => return error::typed(400, "ValidationException", &msg),
    };
    let body = serde_json::json!({"inputTokens": derive_reply(&conv).prompt_tokens});
    Plan::full(200, JSON, serde_json::to_vec(&body).unwrap_or_default(), 0)
        .with_header("x-amzn-requestid", error::request_id(&ctx.id("")))
}

/// The conversation of a CountTokens body; `Err`: the ValidationException message.
fn conversation(body: &[u8]) -> Result<Conversation, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| MALFORMED.to_string())?;
    let Some(input) = value.get("input").and_then(Value::as_object) else {
        return Err(
            "1 validation error detected: Value null at 'input' failed to satisfy \
                    constraint: Member must not be null"
                .to_string(),
        );
    };
    match (input.get("converse"), input.get("invokeModel"), input.len()) {
        (Some(c), None, 1) => {
            let mut c = c.clone();
            // ConverseTokensRequest's messages are optional.
            if let Some(obj) = c.as_object_mut() {
                obj.entry("messages").or_insert(Value::Array(Vec::new()));
            }
            converse::parse(&serde_json::to_vec(&c).unwrap_or_default())
        }
        (None, Some(i), 1) => {
            let encoded = i.get("body").and_then(Value::as_str).ok_or_else(|| {
                "1 validation error detected: Value null at 'input.invokeModel.body' failed to \
                 satisfy constraint: Member must not be null"
                    .to_string()
            })?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| MALFORMED.to_string())?;
            let mut inner: Value =
                serde_json::from_slice(&raw).map_err(|_| MALFORMED.to_string())?;
            // An InvokeModel body names no model and may omit max_tokens for counting.
            if let Some(obj) = inner.as_object_mut() {
                obj.entry("model").or_insert(Value::from("invoke"));
                obj.entry("max_tokens").or_insert(Value::from(1));
            }
            messages::parse(&serde_json::to_vec(&inner).unwrap_or_default())
                .map(|m| m.conversation)
                .map_err(|_| MALFORMED.to_string())
        }
        _ => Err("input must name exactly one of converse and invokeModel".to_string()),
    }
}
