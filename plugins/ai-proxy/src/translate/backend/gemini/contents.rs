//! Hub messages -> Gemini `contents` and `systemInstruction` parts.
//!
//! Roles: `system`/`developer` -> `systemInstruction`; `user` -> `user`; `assistant` -> `model`
//! (text, then one `functionCall` part per tool call); `tool` (and legacy `function`) messages ->
//! `functionResponse` parts of a `user` turn. A tool message carries only the call id, Gemini
//! wants the function name, so names are looked up from the assistant's earlier `tool_calls`.
//! Consecutive turns of one role are merged (parallel calls' results must come in one turn).
//! Images and files: `data:` URLs -> `inlineData`; `http(s)://` and `gs://` URLs with a known
//! file type -> `fileData`; anything else is an unsupported field (reject or drop by policy).
//! Vertex AI refuses `gs://` URIs outside its `allowedFileUriPrefixes` on the final body
//! (`provider::vertex`): Vertex reads them with the gateway project's identity.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{is_gemini3, NAME};
use crate::hub::{Content, ContentPart, Message, Role, ToolCall};
use crate::translate::kit::request::{self as kit, Dialect};
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
    let dialect = Contents {
        names: call_names(messages),
        sign: is_gemini3(ctx.model),
    };
    let conv = kit::split(&dialect, messages, ctx)?;
    Ok(Converted {
        system: conv.system,
        contents: conv.turns,
    })
}

/// How Gemini writes a conversation: `parts` lists (empty text and empty turns left out), the
/// assistant as `model`, `functionCall` and `functionResponse` parts.
struct Contents<'m> {
    /// Tool-call id -> function name, from every assistant message.
    names: HashMap<&'m str, &'m str>,
    /// Whether function calls carry a thought signature (Gemini 3).
    sign: bool,
}

impl Dialect for Contents<'_> {
    const NAME: &'static str = NAME;
    const BLOCKS: &'static str = "parts";
    const KEEP_EMPTY_TURNS: bool = false;

    fn role(&self, role: Role) -> &'static str {
        match role {
            Role::Assistant => "model",
            other => other.as_str(),
        }
    }

    fn system(&self, text: &str) -> Option<Value> {
        self.text(text)
    }

    fn text(&self, text: &str) -> Option<Value> {
        (!text.is_empty()).then(|| json!({ "text": text }))
    }

    fn media(
        &self,
        part: &ContentPart,
        i: usize,
        j: usize,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError> {
        let at = || format!("messages[{i}].content[{j}]");
        let converted = match part {
            ContentPart::Text { .. } | ContentPart::Refusal { .. } => return Ok(None),
            ContentPart::ImageUrl { image_url } => {
                media_part(&image_url.url, &format!("{}.image_url.url", at()))?
            }
            ContentPart::InputAudio { input_audio } => audio_part(input_audio, &at())?,
            ContentPart::File { file } => match file.get("file_data").and_then(Value::as_str) {
                Some(url) => media_part(url, &format!("{}.file.file_data", at()))?,
                None => None,
            },
        };
        if converted.is_some() {
            return Ok(converted);
        }
        let field = match part {
            ContentPart::ImageUrl { .. } => format!(
                "{}.image_url (data:, http(s):// or gs:// URLs of a known image type)",
                at()
            ),
            _ => at(),
        };
        ctx.unsupported(&field, NAME).map(|()| None)
    }

    fn tool_call(&self, call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError> {
        let args = kit::call_arguments(call).map_err(|e| {
            TranslateError::malformed_param(
                format!("tool call arguments are not JSON: {e}"),
                &kit::arguments_param(i, j),
            )
        })?;
        if !args.is_object() {
            return Err(TranslateError::malformed_param(
                "tool call arguments must be a JSON object",
                &kit::arguments_param(i, j),
            ));
        }
        let mut part = Map::new();
        part.insert(
            "functionCall".into(),
            json!({"name": call.function.name, "args": args}),
        );
        if self.sign && j == 0 {
            part.insert("thoughtSignature".into(), json!(SKIP_SIGNATURE));
        }
        Ok(Value::Object(part))
    }

    fn tool_result(&self, id: &str, m: &Message, i: usize) -> Result<Value, TranslateError> {
        let name = self.names.get(id).ok_or_else(|| {
            TranslateError::malformed_param(
                format!("no earlier assistant tool call has the id {id:?}"),
                &format!("messages[{i}].tool_call_id"),
            )
        })?;
        Ok(function_response(name, m.content.as_ref()))
    }

    fn function_result(
        &self,
        m: &Message,
        i: usize,
        _ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError> {
        let name = m.name.as_deref().ok_or_else(|| {
            TranslateError::malformed_param(
                "a function message needs name",
                &format!("messages[{i}].name"),
            )
        })?;
        Ok(Some(function_response(name, m.content.as_ref())))
    }
}

/// Tool-call id -> function name, from every assistant message.
fn call_names(messages: &[Message]) -> HashMap<&str, &str> {
    messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().flatten())
        .map(|c| (c.id.as_str(), c.function.name.as_str()))
        .collect()
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

/// `data:<type>;base64,<data>` -> `inlineData`; a fetchable URL of a known type -> `fileData`;
/// `None` for URLs Gemini cannot use.
fn media_part(url: &str, param: &str) -> Result<Option<Value>, TranslateError> {
    let must = "data URLs must be base64 (data:<type>;base64,...)";
    if let Some((mime, data)) = kit::data_url(url, must, param)? {
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
