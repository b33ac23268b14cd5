//! Reads a `GenerateContentRequest` (shared by the Gemini API and Vertex AI) into the neutral
//! [`Conversation`](crate::reply::Conversation).

use serde_json::{Map, Value};

use crate::reply::Conversation;
use crate::tools::{Tool, ToolChoice};

/// Converts a request body; the error is the message of Google's 400 `INVALID_ARGUMENT`.
pub fn parse(body: &[u8]) -> Result<Conversation, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "Invalid JSON payload received. Expected an object.".to_string())?;
    let contents = match obj.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(Value::Array(_)) | None => {
            return Err("* GenerateContentRequest.contents: contents is not specified\n".into())
        }
        Some(_) => {
            return Err(
                "Invalid JSON payload received. Unknown name \"contents\": Proto field is not repeating, cannot start list."
                    .into(),
            )
        }
    };
    let mut conv = Conversation::default();
    if let Some(system) = obj.get("systemInstruction") {
        conv.messages.push((false, parts_text(system)));
    }
    for content in contents {
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        conv.messages.push((role == "user", parts_text(content)));
        conv.last_is_tool_result = has_part(content, "functionResponse");
    }
    conv.max_tokens = obj
        .get("generationConfig")
        .and_then(|g| g.get("maxOutputTokens"))
        .and_then(Value::as_u64);
    conv.tools = tools(obj);
    let config = obj
        .get("toolConfig")
        .and_then(|t| t.get("functionCallingConfig"));
    if config.and_then(|f| f.get("mode")).and_then(Value::as_str) == Some("ANY") {
        let allowed: Vec<&str> = config
            .and_then(|f| f.get("allowedFunctionNames"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !allowed.is_empty() {
            conv.tools.retain(|t| allowed.contains(&t.name.as_str()));
        }
        conv.tool_choice = ToolChoice::Any;
    }
    Ok(conv)
}

/// Text of the `text` parts of a `Content`, joined by newlines.
pub fn parts_text(content: &Value) -> String {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn has_part(content: &Value, kind: &str) -> bool {
    content
        .get("parts")
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| p.get(kind).is_some()))
}

/// `tools[].functionDeclarations[]`; none when `toolConfig.functionCallingConfig.mode` is `NONE`.
fn tools(obj: &Map<String, Value>) -> Vec<Tool> {
    let mode = obj
        .get("toolConfig")
        .and_then(|t| t.get("functionCallingConfig"))
        .and_then(|f| f.get("mode"))
        .and_then(Value::as_str);
    if mode == Some("NONE") {
        return Vec::new();
    }
    let Some(Value::Array(list)) = obj.get("tools") else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| {
            let parameters = f
                .get("parameters")
                .or_else(|| f.get("parametersJsonSchema"))
                .cloned()
                .unwrap_or(Value::Null);
            Some(Tool {
                name: f.get("name")?.as_str()?.to_string(),
                parameters,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_system_instruction_limits_and_function_declarations_are_read() {
        let body = br#"{"systemInstruction":{"parts":[{"text":"sys"}]},
            "contents":[{"role":"user","parts":[{"text":"a"},{"text":"b"}]},
                        {"role":"model","parts":[{"functionCall":{"name":"f","args":{}}}]},
                        {"role":"user","parts":[{"functionResponse":{"name":"f","response":{}}}]}],
            "generationConfig":{"maxOutputTokens":7},
            "tools":[{"functionDeclarations":[{"name":"f","parameters":{"type":"OBJECT"}}]}]}"#;
        let c = parse(body).unwrap();
        assert_eq!(c.messages[0], (false, "sys".to_string()));
        assert_eq!(c.messages[1], (true, "a\nb".to_string()));
        assert!(c.last_is_tool_result);
        assert_eq!(c.max_tokens, Some(7));
        assert_eq!(c.tools.len(), 1);
        assert!(parse(br#"{"contents":[]}"#)
            .unwrap_err()
            .contains("contents is not specified"));
    }
}
