//! Amazon Bedrock Converse backend: hub (OpenAI chat) request -> Converse / ConverseStream body.
//!
//! The model and the stream flag are not in the body (they are in the path
//! `/model/{modelId}/converse(-stream)`). Mapping: `system`/`developer` messages -> `system`
//! blocks; user and assistant turns -> `messages` with `text`, `image` (base64 `data:` URLs only)
//! and `toolUse` blocks; `tool` messages -> `toolResult` blocks of a user turn (consecutive turns of
//! one role are merged, as Bedrock wants strict alternation); `max_tokens`, `temperature`,
//! `top_p`, `stop` -> `inferenceConfig`; tools -> `toolConfig` (`toolSpec.inputSchema.json`);
//! `tool_choice` -> `auto`/`any`/`tool`; `reasoning_effort` -> `additionalModelRequestFields`
//! (`thinking` for Claude, `reasoningConfig` for Nova). Responses are decoded in
//! [`response`] (JSON) and [`stream`] (event stream).

#![warn(clippy::arithmetic_side_effects)]

pub mod base64;
pub mod embed;
pub mod invoke;
pub mod response;
pub mod stream;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use crate::hub::{ChatRequest, ContentPart, Message, ResponseFormat, Role, ToolCall, ToolChoice};
use crate::translate::kit::request::{self as kit, Dialect};
use crate::translate::{Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError};

/// The backend name used in "unsupported" errors.
const NAME: &str = "bedrock";

/// The `content-type` of ConverseStream responses.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The Bedrock Converse backend schema.
pub struct BedrockBackend;

impl Backend for BedrockBackend {
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError> {
        let body = to_converse(req, ctx)?;
        serde_json::to_vec(&body).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        if head.content_type.starts_with(EVENT_STREAM) {
            Box::new(stream::ConverseStreamToHub::new(head))
        } else {
            Box::new(response::ConverseJsonToHub::new(head))
        }
    }
}

/// The model family, for the fields Converse leaves to each model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Claude,
    Nova,
    Other,
}

fn family(model: &str) -> Family {
    let m = model.to_ascii_lowercase();
    if m.contains("anthropic.") || m.contains("claude") {
        Family::Claude
    } else if m.contains("amazon.nova") {
        Family::Nova
    } else {
        Family::Other
    }
}

/// Build the Converse request object.
pub fn to_converse(req: &ChatRequest, ctx: &mut BuildContext<'_>) -> Result<Value, TranslateError> {
    let mut out = Map::new();
    let kit::Conversation {
        mut system,
        turns: messages,
    } = kit::split(&Converse, &req.messages, ctx)?;
    if let Some(instruction) = format_instruction(req.response_format.as_ref()) {
        system.push(json!({ "text": instruction }));
    }
    out.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let reasoning = reasoning_fields(req, ctx)?;
    let inference = inference_config(req, ctx, reasoning.as_ref());
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if let Some(tc) = tool_config(req, ctx)? {
        out.insert("toolConfig".into(), tc);
    }
    if let Some(r) = reasoning {
        out.insert("additionalModelRequestFields".into(), r.fields);
    }
    unsupported(req, ctx)?;
    Ok(Value::Object(out))
}

/// A JSON-output instruction for `response_format` (Converse has no JSON mode).
fn format_instruction(format: Option<&ResponseFormat>) -> Option<String> {
    match format? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some("Answer with a single JSON object only.".into()),
        ResponseFormat::JsonSchema { json_schema } => {
            let schema = json_schema.schema.clone().unwrap_or(Value::Null);
            Some(format!(
                "Answer with a single JSON object only, valid against this JSON schema: {schema}"
            ))
        }
    }
}

/// Reasoning settings: the model-specific fields and the budget `maxTokens` must exceed.
struct Reasoning {
    fields: Value,
    budget: Option<u64>,
}

fn reasoning_fields(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
) -> Result<Option<Reasoning>, TranslateError> {
    let Some(budget) = kit::thinking_budget(req)? else {
        return Ok(None);
    };
    let effort = req.reasoning_effort.as_deref().unwrap_or_default();
    match family(ctx.model) {
        Family::Claude => Ok(Some(Reasoning {
            fields: json!({"thinking": {"type": "enabled", "budget_tokens": budget}}),
            budget: Some(budget),
        })),
        Family::Nova => {
            let level = if effort == "minimal" { "low" } else { effort };
            Ok(Some(Reasoning {
                fields: json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": level}}),
                budget: None,
            }))
        }
        Family::Other => ctx.unsupported("reasoning_effort", NAME).map(|()| None),
    }
}

fn inference_config(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
    reasoning: Option<&Reasoning>,
) -> Map<String, Value> {
    let mut cfg = Map::new();
    let budget = reasoning.and_then(|r| r.budget);
    let mut max_tokens = req.output_limit();
    if let Some(b) = budget {
        // Claude needs room for the answer beyond the thinking budget.
        max_tokens =
            Some(max_tokens.map_or(b.saturating_add(4096), |m| m.max(b.saturating_add(1024))));
    }
    if let Some(m) = max_tokens {
        cfg.insert("maxTokens".into(), json!(m));
    }
    let (temperature, top_p) = kit::sampling(req, ctx, budget.is_some());
    if let Some(t) = temperature {
        cfg.insert("temperature".into(), json!(t));
    }
    if let Some(p) = top_p {
        cfg.insert("topP".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        cfg.insert("stopSequences".into(), json!(stop.to_vec()));
    }
    cfg
}

fn tool_config(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
) -> Result<Option<Value>, TranslateError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let specs: Vec<Value> = tools
        .iter()
        .map(|t| {
            let mut spec = Map::new();
            spec.insert("name".into(), json!(t.function.name));
            if let Some(d) = &t.function.description {
                spec.insert("description".into(), json!(d));
            }
            let schema = kit::parameters(&t.function);
            spec.insert("inputSchema".into(), json!({ "json": schema }));
            if let Some(strict) = t.function.strict {
                spec.insert("strict".into(), json!(strict));
            }
            json!({ "toolSpec": spec })
        })
        .collect();
    let mut cfg = Map::new();
    cfg.insert("tools".into(), Value::Array(specs));
    match &req.tool_choice {
        None => {}
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => {
                cfg.insert("toolChoice".into(), json!({"auto": {}}));
            }
            "required" => {
                cfg.insert("toolChoice".into(), json!({"any": {}}));
            }
            "none" => {
                // Converse has no "none"; without tool blocks in the history the tools can go.
                if !has_tool_blocks(&req.messages) {
                    return Ok(None);
                }
                ctx.unsupported("tool_choice=none", NAME)?;
            }
            other => {
                return Err(TranslateError::malformed_param(
                    format!("unknown tool_choice {other:?}"),
                    "tool_choice",
                ))
            }
        },
        Some(ToolChoice::Named(n)) => {
            cfg.insert(
                "toolChoice".into(),
                json!({"tool": {"name": n.function.name}}),
            );
        }
    }
    if req.parallel_tool_calls == Some(false) {
        ctx.dropped.push("parallel_tool_calls".into());
    }
    Ok(Some(Value::Object(cfg)))
}

fn has_tool_blocks(messages: &[Message]) -> bool {
    messages
        .iter()
        .any(|m| m.role == Role::Tool || m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()))
}

fn unsupported(req: &ChatRequest, ctx: &mut BuildContext<'_>) -> Result<(), TranslateError> {
    kit::refuse(ctx, NAME, kit::openai_only_fields(req))?;
    if req.user.is_some() {
        ctx.dropped.push("user".into());
    }
    kit::refuse_extra(ctx, NAME, req)
}

/// How Converse writes a conversation: `{"text"}` blocks (empty text left out), `content` lists
/// (empty turns left out), `image` blocks from data URLs only, `toolUse` and `toolResult` blocks.
struct Converse;

impl Dialect for Converse {
    const NAME: &'static str = NAME;
    const BLOCKS: &'static str = "content";
    const KEEP_EMPTY_TURNS: bool = false;

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
        let unsupported = match part {
            ContentPart::ImageUrl { image_url } => match image_block(&image_url.url, i, j)? {
                Some(b) => return Ok(Some(b)),
                None => format!("messages[{i}].content[{j}].image_url (only data: URLs)"),
            },
            _ => format!("messages[{i}].content[{j}]"),
        };
        ctx.unsupported(&unsupported, NAME).map(|()| None)
    }

    fn tool_call(&self, call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError> {
        let input = kit::json_arguments(call, i, j)?;
        Ok(json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": input}}))
    }

    fn tool_result(&self, id: &str, m: &Message, _i: usize) -> Result<Value, TranslateError> {
        let text = kit::joined_text(m.content.as_ref());
        Ok(json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}}))
    }
}

/// A Converse image block from a `data:image/<format>;base64,<data>` URL; `None` for other URLs
/// (Bedrock cannot fetch them).
fn image_block(url: &str, i: usize, j: usize) -> Result<Option<Value>, TranslateError> {
    let param = format!("messages[{i}].content[{j}].image_url.url");
    let message = "image data URLs must be base64 (data:<type>;base64,...)";
    let Some((media, data)) = kit::data_url(url, message, &param)? else {
        return Ok(None);
    };
    let format = match media.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::malformed_param(
                format!("image type {other:?} is not supported (png, jpeg, gif, webp)"),
                &param,
            ))
        }
    };
    Ok(Some(
        json!({"image": {"format": format, "source": {"bytes": data}}}),
    ))
}
