//! Hub messages -> Gemini `contents` and `systemInstruction` parts.
//!
//! Roles: `system`/`developer` -> `systemInstruction`; `user` -> `user`; `assistant` -> `model`
//! (text, then one `functionCall` part per tool call); `tool` (and legacy `function`) messages ->
//! `functionResponse` parts of a `user` turn. A tool message carries only the call id, Gemini
//! wants the function name, so names are looked up from the assistant's earlier `tool_calls`.
//! Consecutive turns of one role are merged (parallel calls' results must come in one turn).
//! Images and files: `data:` URLs -> `inlineData`; `http(s)://` and `gs://` URLs with a known
//! file type -> `fileData`; anything else is an unsupported field (reject or drop by policy).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{is_gemini3, NAME};
use crate::hub::{Content, ContentPart, Message, Role};
use crate::translate::{BuildContext, TranslateError};

/// The documented placeholder for a function call whose thought signature is not available
/// (history from another model or a client that dropped it): Gemini 3 then skips validation.
pub const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// The converted conversation.
#[derive(Debug, Default)]
pub struct Converted {
    /// `systemInstruction.parts`.
    pub system: Vec<Value>,
    /// `contents`.
    pub contents: Vec<Value>,
}

/// Convert the conversation.
pub fn convert(
    messages: &[Message],
    ctx: &mut BuildContext<'_>,
) -> Result<Converted, TranslateError> {
    let names = call_names(messages);
    let sign = is_gemini3(ctx.model);
    let mut out = Converted::default();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let text = m
                    .content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                if !text.is_empty() {
                    out.system.push(json!({ "text": text }));
                }
            }
            Role::User => {
                let parts = user_parts(m.content.as_ref(), i, ctx)?;
                push_turn(&mut out.contents, "user", parts);
            }
            Role::Assistant => push_turn(&mut out.contents, "model", model_parts(m, i, sign)?),
            Role::Tool => {
                let id = m.tool_call_id.as_deref().ok_or_else(|| {
                    TranslateError::malformed_param(
                        "a tool message needs tool_call_id",
                        &format!("messages[{i}].tool_call_id"),
                    )
                })?;
                let name = names.get(id).ok_or_else(|| {
                    TranslateError::malformed_param(
                        format!("no earlier assistant tool call has the id {id:?}"),
                        &format!("messages[{i}].tool_call_id"),
                    )
                })?;
                let part = function_response(name, m.content.as_ref());
                push_turn(&mut out.contents, "user", vec![part]);
            }
            Role::Function => {
                let name = m.name.as_deref().ok_or_else(|| {
                    TranslateError::malformed_param(
                        "a function message needs name",
                        &format!("messages[{i}].name"),
                    )
                })?;
                let part = function_response(name, m.content.as_ref());
                push_turn(&mut out.contents, "user", vec![part]);
            }
        }
    }
    Ok(out)
}

/// Tool-call id -> function name, from every assistant message.
fn call_names(messages: &[Message]) -> HashMap<&str, &str> {
    messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.as_str(), c.function.name.as_str()))
        .collect()
}

/// Append `parts` as a turn of `role`, merging into the previous turn of the same role.
fn push_turn(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    if let Some(last) = contents.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(Value::Array(existing)) = last.get_mut("parts") {
                existing.extend(parts);
                return;
            }
        }
    }
    contents.push(json!({ "role": role, "parts": parts }));
}

/// A `functionResponse` part. The response must be an object: a JSON object result is sent as
/// is, anything else as `{"output": ...}` (Gemini's documented key for a function's output).
fn function_response(name: &str, content: Option<&Content>) -> Value {
    let text = content.map(Content::joined_text).unwrap_or_default();
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(o)) => Value::Object(o),
        Ok(other) => json!({ "output": other }),
        Err(_) => json!({ "output": text }),
    };
    json!({"functionResponse": {"name": name, "response": response}})
}

fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn user_parts(
    content: Option<&Content>,
    i: usize,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(text_part(t).into_iter().collect()),
        Some(Content::Parts(p)) => p,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = || format!("messages[{i}].content[{j}]");
        let converted = match part {
            ContentPart::Text { text } => text_part(text),
            ContentPart::Refusal { refusal } => text_part(refusal),
            ContentPart::ImageUrl { image_url } => {
                media_part(&image_url.url, &format!("{}.image_url.url", at()))?
            }
            ContentPart::InputAudio { input_audio } => audio_part(input_audio, &at())?,
            ContentPart::File { file } => match file.get("file_data").and_then(Value::as_str) {
                Some(url) => media_part(url, &format!("{}.file.file_data", at()))?,
                None => None,
            },
        };
        match (converted, part) {
            (Some(p), _) => out.push(p),
            (None, ContentPart::Text { .. } | ContentPart::Refusal { .. }) => {}
            (None, ContentPart::ImageUrl { .. }) => ctx.unsupported(
                &format!(
                    "{}.image_url (data:, http(s):// or gs:// URLs of a known image type)",
                    at()
                ),
                NAME,
            )?,
            (None, _) => ctx.unsupported(&at(), NAME)?,
        }
    }
    Ok(out)
}

/// `data:<type>;base64,<data>` -> `inlineData`; a fetchable URL of a known type -> `fileData`;
/// `None` for URLs Gemini cannot use.
fn media_part(url: &str, param: &str) -> Result<Option<Value>, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = rest.split_once(";base64,").ok_or_else(|| {
            TranslateError::malformed_param(
                "data URLs must be base64 (data:<type>;base64,...)",
                param,
            )
        })?;
        if mime.is_empty() || data.is_empty() {
            return Err(TranslateError::malformed_param("empty data URL", param));
        }
        return Ok(Some(
            json!({"inlineData": {"mimeType": mime.to_ascii_lowercase(), "data": data}}),
        ));
    }
    let fetchable = ["https://", "http://", "gs://"]
        .iter()
        .any(|s| url.starts_with(s));
    Ok(match mime_of(url) {
        Some(mime) if fetchable => Some(json!({"fileData": {"mimeType": mime, "fileUri": url}})),
        _ => None,
    })
}

/// The media type of a URL, from its file extension.
fn mime_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "mp3" => "audio/mp3",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => return None,
    })
}

/// `input_audio` `{data, format}` -> `inlineData`.
fn audio_part(audio: &Value, at: &str) -> Result<Option<Value>, TranslateError> {
    let data = audio.get("data").and_then(Value::as_str).unwrap_or("");
    let mime = match audio.get("format").and_then(Value::as_str) {
        Some("wav") => "audio/wav",
        Some("mp3") => "audio/mp3",
        _ => return Ok(None),
    };
    if data.is_empty() {
        return Err(TranslateError::malformed_param(
            "empty audio data",
            &format!("{at}.input_audio.data"),
        ));
    }
    Ok(Some(
        json!({"inlineData": {"mimeType": mime, "data": data}}),
    ))
}

/// An assistant turn: its text, then one `functionCall` per tool call (arguments parsed).
fn model_parts(m: &Message, i: usize, sign: bool) -> Result<Vec<Value>, TranslateError> {
    let mut parts: Vec<Value> = m
        .content
        .as_ref()
        .and_then(|c| text_part(&c.joined_text()))
        .into_iter()
        .collect();
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let args: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|e| {
                TranslateError::malformed_param(
                    format!("tool call arguments are not JSON: {e}"),
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?
        };
        if !args.is_object() {
            return Err(TranslateError::malformed_param(
                "tool call arguments must be a JSON object",
                &format!("messages[{i}].tool_calls[{j}].function.arguments"),
            ));
        }
        let mut part = Map::new();
        part.insert(
            "functionCall".into(),
            json!({"name": call.function.name, "args": args}),
        );
        if sign && j == 0 {
            part.insert("thoughtSignature".into(), json!(SKIP_SIGNATURE));
        }
        parts.push(Value::Object(part));
    }
    Ok(parts)
}
