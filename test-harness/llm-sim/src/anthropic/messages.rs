//! `POST /v1/messages`: request validation, conversion to the neutral
//! [`Conversation`](crate::reply::Conversation), and the non-streamed `message` body (fields in
//! the order the live API sends them).

use serde::Serialize;
use serde_json::{Map, Value};

use super::{error, stream};
use crate::plan::{Plan, JSON};
use crate::reply::{derive_reply, Conversation, Finish, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::tools::{Tool, ToolChoice};

/// A validated Messages request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesRequest {
    /// The `model` field, echoed back.
    pub model: String,
    /// Message texts, tools and limits.
    pub conversation: Conversation,
    /// `stream: true`.
    pub stream: bool,
}

/// Anthropic's `usage` object as sent in `message_start` and whole messages.
#[derive(Debug, Serialize)]
pub struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    cache_creation: CacheCreation,
    output_tokens: u64,
    service_tier: &'static str,
    inference_geo: &'static str,
}

#[derive(Debug, Serialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: u64,
    ephemeral_1h_input_tokens: u64,
}

impl Usage {
    /// Usage with the given token counts.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            cache_creation: CacheCreation {
                ephemeral_5m_input_tokens: 0,
                ephemeral_1h_input_tokens: 0,
            },
            output_tokens,
            service_tier: "standard",
            inference_geo: "not_available",
        }
    }
}

/// A content block of a whole message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call.
    ToolUse {
        /// `toolu_…` id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments object (`{}` in a stream's `content_block_start`).
        #[serde(serialize_with = "crate::sorted::serialize")]
        input: Value,
        /// Always `{"type":"direct"}`, as recorded.
        caller: Caller,
    },
}

/// `caller` of a tool-use block.
#[derive(Debug, Serialize)]
pub struct Caller {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The `caller` the live API sends for ordinary tool calls.
pub const DIRECT: Caller = Caller { kind: "direct" };

/// The message object; `content` is empty and `stop_reason` null in `message_start`.
#[derive(Debug, Serialize)]
pub struct Message<'a> {
    /// Model name.
    pub model: &'a str,
    /// `msg_…` id.
    pub id: &'a str,
    #[serde(rename = "type")]
    /// Always `message`.
    pub kind: &'static str,
    /// Always `assistant`.
    pub role: &'static str,
    /// Content blocks.
    pub content: Vec<Block>,
    /// Why generation stopped.
    pub stop_reason: Option<&'static str>,
    /// Always null.
    pub stop_sequence: Option<()>,
    /// Token counts.
    pub usage: Usage,
}

/// Anthropic's `stop_reason` for a [`Finish`].
pub fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolUse => "tool_use",
    }
}

/// The content blocks of a whole reply.
pub fn blocks(reply: &Reply) -> Vec<Block> {
    match &reply.tool_call {
        Some(call) => vec![Block::ToolUse {
            id: format!("toolu_{}", call.id),
            name: call.name.clone(),
            input: call.input(),
            caller: DIRECT,
        }],
        None => vec![Block::Text { text: reply.text() }],
    }
}

/// Route handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let parsed = match parse(&req.body) {
        Ok(p) => p,
        Err(plan) => return *plan,
    };
    let reply = derive_reply(&parsed.conversation);
    let id = ctx.id("msg_");
    if parsed.stream {
        return stream::plan(&parsed.model, &id, &reply);
    }
    let message = Message {
        model: &parsed.model,
        id: &id,
        kind: "message",
        role: "assistant",
        content: blocks(&reply),
        stop_reason: Some(stop_reason(reply.finish)),
        stop_sequence: None,
        usage: Usage::new(reply.prompt_tokens, reply.completion_tokens()),
    };
    let body = serde_json::to_vec(&message).unwrap_or_default();
    Plan::full(200, JSON, body, reply.completion_tokens())
        .with_header("request-id", format!("req_{id}"))
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens": N}`, N counted as a Messages call with the
/// same body reports its `usage.input_tokens` (the body has no `max_tokens`).
pub fn count_tokens(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let mut value: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return error::invalid(&format!("There was an error parsing the body: {e}"));
        }
    };
    if let Some(obj) = value.as_object_mut() {
        obj.entry("max_tokens").or_insert(Value::from(1));
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let parsed = match parse(&body) {
        Ok(p) => p,
        Err(plan) => return *plan,
    };
    let tokens = derive_reply(&parsed.conversation).prompt_tokens;
    Plan::json(format!("{{\"input_tokens\":{tokens}}}").into_bytes())
}

/// Validates a Messages request body for the fields the simulator reads, with the messages the
/// API uses (`model: Field required`, `messages.0.role: Field required`, …).
pub fn parse(body: &[u8]) -> Result<MessagesRequest, Box<Plan>> {
    let bad = |m: String| Box::new(error::invalid(&m));
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("There was an error parsing the body: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("Input should be a valid dictionary".into()))?;
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        None => return Err(bad("model: Field required".into())),
        Some(_) => return Err(bad("model: Input should be a valid string".into())),
    };
    let max_tokens = match obj.get("max_tokens") {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| bad("max_tokens: Input should be a valid integer".into()))?,
        None => return Err(bad("max_tokens: Field required".into())),
    };
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) => m,
        None => return Err(bad("messages: Field required".into())),
        Some(_) => return Err(bad("messages: Input should be a valid list".into())),
    };
    let mut conversation = Conversation {
        max_tokens: Some(max_tokens),
        ..Conversation::default()
    };
    if let Some(system) = obj.get("system") {
        conversation.messages.push((false, blocks_text(system)));
    }
    for (i, msg) in messages.iter().enumerate() {
        read_message(i, msg, &mut conversation).map_err(bad)?;
    }
    let choice = obj.get("tool_choice");
    let choice_type = choice.and_then(|c| c.get("type")).and_then(Value::as_str);
    conversation.tool_choice = match (choice_type, choice.and_then(|c| c.get("name"))) {
        (Some("any"), _) => ToolChoice::Any,
        (Some("tool"), Some(Value::String(name))) => ToolChoice::Named(name.clone()),
        _ => ToolChoice::Auto,
    };
    if choice_type != Some("none") {
        conversation.tools = tools(obj);
    }
    let stream = matches!(obj.get("stream"), Some(Value::Bool(true)));
    Ok(MessagesRequest {
        model,
        conversation,
        stream,
    })
}

fn read_message(i: usize, msg: &Value, conv: &mut Conversation) -> Result<(), String> {
    let role = match msg.get("role") {
        Some(Value::String(r)) => r.as_str(),
        Some(_) => {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ))
        }
        None => return Err(format!("messages.{i}.role: Field required")),
    };
    let content = msg
        .get("content")
        .ok_or_else(|| format!("messages.{i}.content: Field required"))?;
    let results = tool_results(content);
    conv.messages.push((role == "user", blocks_text(content)));
    if !results.is_empty() {
        conv.messages.push((false, results.join("\n")));
    }
    conv.last_is_tool_result = !results.is_empty();
    Ok(())
}

/// Text of a string or of the `text` blocks of a block list, joined by newlines.
fn blocks_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Texts of the `tool_result` blocks of a block list.
fn tool_results(content: &Value) -> Vec<String> {
    let Value::Array(blocks) = content else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| b.get("content").map(blocks_text).unwrap_or_default())
        .collect()
}

fn tools(obj: &Map<String, Value>) -> Vec<Tool> {
    let Some(Value::Array(list)) = obj.get("tools") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| {
            Some(Tool {
                name: t.get("name")?.as_str()?.to_string(),
                parameters: t.get("input_schema").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_system_text_blocks_tools_and_tool_results() {
        let body = br#"{"model":"m","max_tokens":5,"system":[{"type":"text","text":"sys"}],
            "tools":[{"name":"get_weather","input_schema":{"type":"object"}}],
            "messages":[{"role":"user","content":"weather?"},
              {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"get_weather","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"sunny"}]}]}"#;
        let p = parse(body).unwrap();
        assert_eq!(p.conversation.messages[0], (false, "sys".to_string()));
        assert_eq!(p.conversation.tools[0].name, "get_weather");
        assert!(p.conversation.last_is_tool_result);
        assert_eq!(p.conversation.max_tokens, Some(5));
        assert!(!p.stream);
    }

    #[test]
    fn parse_rejects_missing_fields_with_anthropic_messages() {
        let msg = |body: &[u8]| match parse(body).unwrap_err().as_ref() {
            Plan::Full { body, .. } => String::from_utf8(body.to_vec()).unwrap(),
            Plan::Stream { .. } => unreachable!(),
        };
        assert!(msg(br#"{"max_tokens":1,"messages":[]}"#).contains("model: Field required"));
        assert!(msg(br#"{"model":"m","messages":[]}"#).contains("max_tokens: Field required"));
        assert!(
            msg(br#"{"model":"m","max_tokens":1,"messages":[{"content":"x"}]}"#)
                .contains("messages.0.role: Field required")
        );
    }
}
