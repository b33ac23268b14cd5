//! `POST /v1/chat/completions`: request validation, conversion to the neutral
//! [`Conversation`](crate::reply::Conversation), and the non-streamed `chat.completion` body.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::stream;
use crate::plan::{Plan, JSON};
use crate::reply::{derive_reply, Conversation, Finish, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::tools::{Tool, ToolChoice};

/// A validated chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The `model` field, echoed back.
    pub model: String,
    /// Message texts.
    pub conversation: Conversation,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage: true`.
    pub include_usage: bool,
}

/// OpenAI's usage object (field order as OpenAI sends it).
#[derive(Debug, Serialize)]
pub struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Debug, Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Debug, Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

impl Usage {
    /// Usage of one reply.
    pub fn of(reply: &Reply) -> Self {
        Usage {
            prompt_tokens: reply.prompt_tokens,
            completion_tokens: reply.completion_tokens(),
            total_tokens: reply.total_tokens(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: 0,
                audio_tokens: 0,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: 0,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            },
        }
    }
}

/// OpenAI's `finish_reason` for a [`Finish`].
pub fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolUse => "tool_calls",
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice; 1],
    usage: Usage,
    service_tier: &'static str,
    system_fingerprint: Option<&'static str>,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    message: Message,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut; 1]>,
    refusal: Option<()>,
    annotations: [(); 0],
}

/// A tool call in a whole message.
#[derive(Serialize)]
struct ToolCallOut {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut,
}

#[derive(Serialize)]
struct FunctionOut {
    name: String,
    arguments: String,
}

/// Route handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let chat = match parse(&req.body) {
        Ok(chat) => chat,
        Err(e) => return e.plan(),
    };
    let reply = derive_reply(&chat.conversation);
    if chat.stream {
        return stream::plan(&chat, &reply, ctx);
    }
    let body = Completion {
        id: ctx.id("chatcmpl-"),
        object: "chat.completion",
        created: ctx.created,
        model: &chat.model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: reply.tool_call.is_none().then(|| reply.text()),
                tool_calls: reply.tool_call.as_ref().map(|call| {
                    [ToolCallOut {
                        id: format!("call_{}", call.id),
                        kind: "function",
                        function: FunctionOut {
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                        },
                    }]
                }),
                refusal: None,
                annotations: [],
            },
            finish_reason: finish_reason(reply.finish),
        }],
        usage: Usage::of(&reply),
        service_tier: "default",
        system_fingerprint: None,
    };
    Plan::full(
        200,
        JSON,
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
        reply.completion_tokens(),
    )
}

/// Validates a chat request body the way OpenAI does for the fields the simulator reads.
pub fn parse(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::unparsable_body())?;
    let obj = value.as_object().ok_or_else(ApiError::unparsable_body)?;
    let model = required_model(obj)?;
    let messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(ApiError::missing("messages")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(ApiError::wrong_type("messages", "an array of objects")),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            Some("messages"),
            Some("empty_array"),
        ));
    }
    let mut conversation = Conversation::default();
    for (i, msg) in messages.iter().enumerate() {
        conversation.messages.push(message_text(i, msg)?);
    }
    conversation.last_is_tool_result = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        .is_some_and(|r| r == "tool" || r == "function");
    conversation.tools = tools(obj);
    conversation.tool_choice = tool_choice(obj.get("tool_choice"));
    conversation.max_tokens = max_tokens(obj)?;
    let stream = flag(obj, "stream")?;
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(opts)) => flag(opts, "include_usage")?,
        Some(_) => return Err(ApiError::wrong_type("stream_options", "an object")),
    };
    Ok(ChatRequest {
        model,
        conversation,
        stream,
        include_usage,
    })
}

fn message_text(i: usize, msg: &Value) -> Result<(bool, String), ApiError> {
    let param = format!("messages[{i}]");
    let obj = msg
        .as_object()
        .ok_or_else(|| ApiError::wrong_type(&param, "an object"))?;
    role_and_text(&param, obj, false)
}

/// The `model` field, which OpenAI requires as a string.
pub(crate) fn required_model(obj: &Map<String, Value>) -> Result<String, ApiError> {
    match obj.get("model") {
        None | Some(Value::Null) => Err(ApiError::missing_model()),
        Some(Value::String(m)) => Ok(m.clone()),
        Some(_) => Err(ApiError::wrong_type("model", "a string")),
    }
}

/// A message object at `param` as (from the user, its text: a string or its parts' `text`s
/// joined by newlines). Without `content_required`, a missing or null content is empty text.
pub(crate) fn role_and_text(
    param: &str,
    obj: &Map<String, Value>,
    content_required: bool,
) -> Result<(bool, String), ApiError> {
    let role = match obj.get("role") {
        Some(Value::String(r)) => r.as_str(),
        Some(_) => return Err(ApiError::wrong_type(&format!("{param}.role"), "a string")),
        None => return Err(ApiError::missing(&format!("{param}.role"))),
    };
    let text = match obj.get("content") {
        None | Some(Value::Null) if content_required => {
            return Err(ApiError::missing(&format!("{param}.content")))
        }
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(_) => {
            return Err(ApiError::wrong_type(
                &format!("{param}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    Ok((role == "user", text))
}

/// `tool_choice`: `"required"` forces some tool, `{"type":"function","function":{"name"}}` one.
fn tool_choice(value: Option<&Value>) -> ToolChoice {
    match value {
        Some(Value::String(s)) if s == "required" => ToolChoice::Any,
        Some(v) => match v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => ToolChoice::Named(name.to_string()),
            None => ToolChoice::Auto,
        },
        None => ToolChoice::Auto,
    }
}

/// Declared function tools (`tools[].function`, or legacy `functions`); none with
/// `tool_choice: "none"`.
fn tools(obj: &Map<String, Value>) -> Vec<Tool> {
    if obj.get("tool_choice").and_then(Value::as_str) == Some("none") {
        return Vec::new();
    }
    let declared = |key: &str| -> Vec<Value> {
        match obj.get(key) {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for t in declared("tools") {
        let f = t.get("function").unwrap_or(&t);
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            let parameters = f.get("parameters").cloned().unwrap_or(Value::Null);
            out.push(Tool {
                name: name.to_string(),
                parameters,
            });
        }
    }
    for f in declared("functions") {
        if let Some(name) = f.get("name").and_then(Value::as_str) {
            let parameters = f.get("parameters").cloned().unwrap_or(Value::Null);
            out.push(Tool {
                name: name.to_string(),
                parameters,
            });
        }
    }
    out
}

fn max_tokens(obj: &Map<String, Value>) -> Result<Option<u64>, ApiError> {
    for name in ["max_completion_tokens", "max_tokens"] {
        match obj.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) => return Ok(Some(n)),
                None => return Err(ApiError::wrong_type(name, "a non-negative integer")),
            },
        }
    }
    Ok(None)
}

/// An optional boolean field (absent or null: false).
pub(crate) fn flag(obj: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::wrong_type(name, "a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_text_parts_roles_limits_and_stream_options() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},
            {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{}}]}],
            "max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}"#;
        let chat = parse(body).unwrap();
        assert_eq!(chat.model, "m");
        assert_eq!(
            chat.conversation.messages,
            vec![(false, "be brief".to_string()), (true, "hi".to_string())]
        );
        assert_eq!(chat.conversation.max_tokens, Some(3));
        assert!(chat.stream && chat.include_usage);
    }

    #[test]
    fn parse_rejects_what_openai_rejects_with_its_codes() {
        assert_eq!(parse(b"{nope").unwrap_err().code, None);
        assert_eq!(
            parse(b"{\"messages\":[]}").unwrap_err(),
            ApiError::missing_model()
        );
        let e = parse(br#"{"model":"m"}"#).unwrap_err();
        assert_eq!(
            (e.param.as_deref(), e.code),
            (Some("messages"), Some("missing_required_parameter"))
        );
        let e = parse(br#"{"model":"m","messages":[{"content":"x"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = parse(br#"{"model":"m","messages":[]}"#).unwrap_err();
        assert_eq!(e.code, Some("empty_array"));
        let e = parse(br#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#).unwrap_err();
        assert_eq!(e.code, Some("invalid_type"));
    }
}
