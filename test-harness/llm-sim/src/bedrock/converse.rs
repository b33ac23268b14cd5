//! `POST /model/{modelId}/converse`: reads a Converse request into the neutral
//! [`Conversation`](crate::reply::Conversation) and answers with Bedrock's compact JSON, keys in
//! byte order (`metrics`, `output`, `stopReason`, `usage`) as Bedrock writes them.

use serde_json::{json, Value};

use super::{error, stream};
use crate::plan::{Plan, JSON};
use crate::reply::{derive_reply, Conversation, Finish, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::sorted;
use crate::tools::{Tool, ToolChoice};

/// Bedrock's `stopReason` for a [`Finish`].
pub fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolUse => "tool_use",
    }
}

/// `usage` of a reply.
pub fn usage(reply: &Reply) -> Value {
    json!({
        "inputTokens": reply.prompt_tokens,
        "outputTokens": reply.completion_tokens(),
        "totalTokens": reply.total_tokens(),
    })
}

/// `converse` handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let conv = match parse(&req.body) {
        Ok(c) => c,
        Err(msg) => return error::shaped(400, Some(&msg)),
    };
    let reply = derive_reply(&conv);
    let content = match &reply.tool_call {
        Some(call) => json!([{"toolUse": {
            "input": call.input(),
            "name": call.name,
            "toolUseId": format!("tooluse_{}", call.id),
            "type": "tool_use",
        }}]),
        None => json!([{"text": reply.text()}]),
    };
    let body = json!({
        "metrics": {"latencyMs": ctx.latency_ms},
        "output": {"message": {"content": content, "role": "assistant"}},
        "stopReason": stop_reason(reply.finish),
        "usage": usage(&reply),
    });
    Plan::full(200, JSON, sorted::to_vec(&body), reply.completion_tokens())
        .with_header("x-amzn-requestid", error::request_id(&ctx.id("")))
}

/// `converse-stream` handler.
pub fn handle_stream(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    match parse(&req.body) {
        Ok(conv) => stream::plan(&derive_reply(&conv), ctx),
        Err(msg) => error::shaped(400, Some(&msg)),
    }
}

/// Reads a Converse request body; the error is the message of Bedrock's `ValidationException`.
pub fn parse(body: &[u8]) -> Result<Conversation, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        "Malformed input request, please reformat your input and try again.".to_string()
    })?;
    let messages = match value.get("messages") {
        Some(Value::Array(m)) => m,
        _ => {
            return Err(
                "1 validation error detected: Value null at 'messages' failed to satisfy \
                        constraint: Member must not be null"
                    .to_string(),
            )
        }
    };
    let mut conv = Conversation::default();
    if let Some(system) = value.get("system") {
        conv.messages.push((false, texts(system)));
    }
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).ok_or_else(|| {
            format!("1 validation error detected: Value null at 'messages.{}.member.role' failed to satisfy constraint: Member must not be null", i + 1)
        })?;
        let content = msg.get("content").unwrap_or(&Value::Null);
        conv.messages.push((role == "user", texts(content)));
        conv.last_is_tool_result = content
            .as_array()
            .is_some_and(|blocks| blocks.iter().any(|b| b.get("toolResult").is_some()));
    }
    conv.max_tokens = value
        .get("inferenceConfig")
        .and_then(|c| c.get("maxTokens"))
        .and_then(Value::as_u64);
    conv.tools = tools(&value);
    let choice = value.get("toolConfig").and_then(|t| t.get("toolChoice"));
    conv.tool_choice = match choice {
        Some(c) if c.get("any").is_some() => ToolChoice::Any,
        Some(c) => match c
            .get("tool")
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => ToolChoice::Named(name.to_string()),
            None => ToolChoice::Auto,
        },
        None => ToolChoice::Auto,
    };
    Ok(conv)
}

/// Text of the `text` blocks of a content list (or system list), joined by newlines.
fn texts(blocks: &Value) -> String {
    blocks
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// `toolConfig.tools[].toolSpec` with `inputSchema.json` as parameters.
fn tools(value: &Value) -> Vec<Tool> {
    let Some(Value::Array(list)) = value.get("toolConfig").and_then(|t| t.get("tools")) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| t.get("toolSpec"))
        .filter_map(|spec| {
            Some(Tool {
                name: spec.get("name")?.as_str()?.to_string(),
                parameters: spec
                    .get("inputSchema")
                    .and_then(|s| s.get("json"))
                    .cloned()
                    .unwrap_or(Value::Null),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_messages_limits_tools_and_tool_results_are_read() {
        let body = br#"{"system":[{"text":"sys"}],"inferenceConfig":{"maxTokens":3},
            "toolConfig":{"tools":[{"toolSpec":{"name":"cosine","inputSchema":{"json":{"type":"object"}}}}]},
            "messages":[{"role":"user","content":[{"text":"a"}]},
                        {"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"text":"1"}]}}]}]}"#;
        let c = parse(body).unwrap();
        assert_eq!(c.messages[0], (false, "sys".to_string()));
        assert_eq!(c.messages[1], (true, "a".to_string()));
        assert!(c.last_is_tool_result);
        assert_eq!(c.max_tokens, Some(3));
        assert_eq!(c.tools[0].name, "cosine");
        assert!(parse(b"{}").unwrap_err().contains("'messages'"));
    }
}
