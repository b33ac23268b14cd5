//! Anthropic client -> hub: a Messages request becomes an OpenAI chat request.
//!
//! `system` becomes a system message; `tool_use` blocks become assistant `tool_calls`;
//! `tool_result` blocks become `tool` messages (before the rest of that user turn); base64 and URL
//! images become `image_url` parts; `thinking.budget_tokens` becomes `reasoning_effort`;
//! `stop_sequences`, `tool_choice`, `metadata.user_id` map to their OpenAI names. The response
//! side is [`super::anthropic_encode`].

use serde_json::{Map, Value};

use crate::hub::{
    ChatRequest, Content, ContentPart, FunctionCall, FunctionDef, FunctionName, ImageUrl, Message,
    NamedToolChoice, Role, Stop, StreamOptions, Tool, ToolCall, ToolChoice,
};
use crate::translate::{BuildContext, TranslateError};

const NAME: &str = "openai";

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::malformed_param(message, param)
}

/// OpenAI `reasoning_effort` for an Anthropic thinking budget.
pub fn budget_to_effort(budget: u64) -> &'static str {
    match budget {
        0..=2048 => "low",
        2049..=12288 => "medium",
        _ => "high",
    }
}

/// Parse an Anthropic Messages request body into a hub request.
pub fn to_hub(body: &[u8], ctx: &mut BuildContext<'_>) -> Result<ChatRequest, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(TranslateError::malformed(
            "request body must be a JSON object",
        ));
    };
    let mut req = ChatRequest::default();
    for (key, value) in &obj {
        field(&mut req, key, value, ctx)?;
    }
    if req.model.is_empty() {
        return Err(bad("`model` is required", "model"));
    }
    Ok(req)
}

fn field(
    req: &mut ChatRequest,
    key: &str,
    value: &Value,
    ctx: &mut BuildContext<'_>,
) -> Result<(), TranslateError> {
    let num = |v: &Value| {
        v.as_f64()
            .ok_or_else(|| bad(format!("`{key}` must be a number"), key))
    };
    match key {
        "model" => {
            req.model = value
                .as_str()
                .ok_or_else(|| bad("`model` must be a string", key))?
                .into()
        }
        "messages" => {
            let list = value
                .as_array()
                .ok_or_else(|| bad("`messages` must be an array", key))?;
            for (i, m) in list.iter().enumerate() {
                message(req, m, i, ctx)?;
            }
        }
        "system" => {
            let text = system_text(value)?;
            req.messages.insert(0, Message::text(Role::System, text));
        }
        "max_tokens" => {
            req.max_tokens = Some(
                value
                    .as_u64()
                    .ok_or_else(|| bad("`max_tokens` must be a positive integer", key))?,
            )
        }
        "temperature" => req.temperature = Some(num(value)?),
        "top_p" => req.top_p = Some(num(value)?),
        "stop_sequences" => {
            let list: Vec<String> = serde_json::from_value(value.clone())
                .map_err(|_| bad("`stop_sequences` must be a list of strings", key))?;
            req.stop = Some(Stop::Many(list));
        }
        "stream" => {
            let s = value
                .as_bool()
                .ok_or_else(|| bad("`stream` must be a boolean", key))?;
            req.stream = Some(s);
            if s {
                req.stream_options = Some(StreamOptions {
                    include_usage: Some(true),
                    extra: Map::new(),
                });
            }
        }
        "tools" => req.tools = Some(tools(value, ctx)?),
        "tool_choice" => tool_choice(req, value)?,
        "thinking" => {
            if value.get("type").and_then(Value::as_str) == Some("enabled") {
                let budget = value
                    .get("budget_tokens")
                    .and_then(Value::as_u64)
                    .unwrap_or(1024);
                req.reasoning_effort = Some(budget_to_effort(budget).into());
            }
        }
        "metadata" => {
            if let Some(u) = value.get("user_id").and_then(Value::as_str) {
                req.user = Some(u.into());
            }
        }
        _ => ctx.unsupported(key, NAME)?,
    }
    Ok(())
}

fn system_text(value: &Value) -> Result<String, TranslateError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => Ok(blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        _ => Err(bad(
            "`system` must be a string or a list of text blocks",
            "system",
        )),
    }
}

fn tools(value: &Value, ctx: &mut BuildContext<'_>) -> Result<Vec<Tool>, TranslateError> {
    let list = value
        .as_array()
        .ok_or_else(|| bad("`tools` must be an array", "tools"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            return Err(bad("a tool needs a name", &format!("tools[{i}].name")));
        };
        let Some(schema) = t.get("input_schema") else {
            // Server tools (web_search, bash, ...) have a `type` and no schema.
            ctx.unsupported(&format!("tools[{i}] ({name})"), NAME)?;
            continue;
        };
        out.push(Tool {
            kind: "function".into(),
            function: FunctionDef {
                name: name.into(),
                description: t.get("description").and_then(Value::as_str).map(Into::into),
                parameters: Some(schema.clone()),
                strict: None,
            },
        });
    }
    Ok(out)
}

fn tool_choice(req: &mut ChatRequest, value: &Value) -> Result<(), TranslateError> {
    let choice = match value.get("type").and_then(Value::as_str) {
        Some("auto") => ToolChoice::Mode("auto".into()),
        Some("any") => ToolChoice::Mode("required".into()),
        Some("none") => ToolChoice::Mode("none".into()),
        Some("tool") => ToolChoice::Named(NamedToolChoice {
            kind: "function".into(),
            function: FunctionName {
                name: value
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            },
        }),
        _ => {
            return Err(bad(
                "`tool_choice.type` must be auto, any, tool or none",
                "tool_choice",
            ))
        }
    };
    req.tool_choice = Some(choice);
    if value
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        req.parallel_tool_calls = Some(false);
    }
    Ok(())
}

fn message(
    req: &mut ChatRequest,
    m: &Value,
    i: usize,
    ctx: &mut BuildContext<'_>,
) -> Result<(), TranslateError> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => {
            return Err(bad(
                "role must be user or assistant",
                &format!("messages[{i}].role"),
            ))
        }
    };
    let blocks = match m.get("content") {
        Some(Value::String(s)) => {
            req.messages.push(Message::text(role, s.clone()));
            return Ok(());
        }
        Some(Value::Array(b)) => b,
        _ => {
            return Err(bad(
                "content must be a string or a list of blocks",
                &format!("messages[{i}].content"),
            ))
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    let mut reasoning = String::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match b.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(ContentPart::Text {
                text: b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
            }),
            Some("image") => parts.push(image(b, &at)?),
            Some("tool_use") => calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    arguments: b.get("input").map_or_else(|| "{}".into(), Value::to_string),
                },
            }),
            Some("tool_result") => req.messages.push(tool_result(b, &at)?),
            Some("thinking") => reasoning.push_str(
                b.get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("redacted_thinking") => {}
            _ => ctx.unsupported(&at, NAME)?,
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let content = match parts.as_slice() {
        [] => None,
        [ContentPart::Text { text }] => Some(Content::Text(text.clone())),
        _ => Some(Content::Parts(parts)),
    };
    let mut msg = Message::text(role, "");
    msg.content = content;
    msg.tool_calls = (!calls.is_empty()).then_some(calls);
    msg.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    req.messages.push(msg);
    Ok(())
}

fn image(b: &Value, at: &str) -> Result<ContentPart, TranslateError> {
    let src = b.get("source").unwrap_or(&Value::Null);
    let url = match src.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            src.get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png"),
            src.get("data").and_then(Value::as_str).unwrap_or_default()
        ),
        Some("url") => src
            .get("url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        _ => {
            return Err(bad(
                "image source must be base64 or url",
                &format!("{at}.source"),
            ))
        }
    };
    Ok(ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    })
}

fn tool_result(b: &Value, at: &str) -> Result<Message, TranslateError> {
    let id = b
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                "tool_result needs tool_use_id",
                &format!("{at}.tool_use_id"),
            )
        })?;
    let text = match b.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    let text = if b.get("is_error").and_then(Value::as_bool) == Some(true) {
        format!("Error: {text}")
    } else {
        text
    };
    let mut m = Message::text(Role::Tool, text);
    m.tool_call_id = Some(id.into());
    Ok(m)
}
