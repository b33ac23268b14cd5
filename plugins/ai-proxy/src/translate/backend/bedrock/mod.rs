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

pub mod base64;
pub mod embed;
pub mod invoke;
pub mod response;
pub mod stream;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use super::anthropic::effort_to_budget;
use crate::hub::{ChatRequest, Content, ContentPart, Message, ResponseFormat, Role, ToolChoice};
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
    let (mut system, messages) = convert_messages(&req.messages, ctx)?;
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
    let Some(effort) = req.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    if effort == "none" {
        return Ok(None);
    }
    let budget = effort_to_budget(effort).ok_or_else(|| {
        TranslateError::malformed_param(
            format!("unknown reasoning_effort {effort:?}"),
            "reasoning_effort",
        )
    })?;
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
        max_tokens = Some(max_tokens.map_or(b + 4096, |m| m.max(b + 1024)));
    }
    if let Some(m) = max_tokens {
        cfg.insert("maxTokens".into(), json!(m));
    }
    let thinking = budget.is_some();
    if let Some(t) = req.temperature {
        if thinking {
            ctx.dropped
                .push("temperature (not allowed with thinking)".into());
        } else {
            // OpenAI allows 0..=2; the Bedrock models take 0..=1.
            cfg.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
    }
    if let Some(p) = req.top_p {
        if thinking {
            ctx.dropped.push("top_p (not allowed with thinking)".into());
        } else {
            cfg.insert("topP".into(), json!(p));
        }
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
            let schema = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
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
    let named = [
        ("n", req.n.is_some_and(|n| n > 1)),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("seed", req.seed.is_some()),
        ("logprobs", req.logprobs == Some(true)),
        ("top_logprobs", req.top_logprobs.is_some()),
    ];
    for (field, present) in named {
        if present {
            ctx.unsupported(field, NAME)?;
        }
    }
    if req.user.is_some() {
        ctx.dropped.push("user".into());
    }
    for key in req.extra.keys() {
        ctx.unsupported(key, NAME)?;
    }
    Ok(())
}

/// Split the conversation into `system` blocks and alternating Converse messages.
fn convert_messages(
    messages: &[Message],
    ctx: &mut BuildContext<'_>,
) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let text = m
                    .content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                if !text.is_empty() {
                    system.push(json!({ "text": text }));
                }
            }
            Role::User => push_turn(&mut turns, "user", user_blocks(m.content.as_ref(), i, ctx)?),
            Role::Assistant => push_turn(&mut turns, "assistant", assistant_blocks(m, i)?),
            Role::Tool => {
                let id = m.tool_call_id.clone().ok_or_else(|| {
                    TranslateError::malformed_param(
                        "a tool message needs tool_call_id",
                        &format!("messages[{i}].tool_call_id"),
                    )
                })?;
                let text = m
                    .content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                let block = json!({"toolResult": {"toolUseId": id, "content": [{"text": text}]}});
                push_turn(&mut turns, "user", vec![block]);
            }
            Role::Function => ctx.unsupported(&format!("messages[{i}].role=function"), NAME)?,
        }
    }
    Ok((system, turns))
}

/// Append `blocks` as a turn of `role`, merging into the previous turn of the same role.
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(Value::Array(content)) = last.get_mut("content") {
                content.extend(blocks);
                return;
            }
        }
    }
    turns.push(json!({ "role": role, "content": blocks }));
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn user_blocks(
    content: Option<&Content>,
    i: usize,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(text_block(t).into_iter().collect()),
        Some(Content::Parts(p)) => p,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => blocks.extend(text_block(text)),
            ContentPart::Refusal { refusal } => blocks.extend(text_block(refusal)),
            ContentPart::ImageUrl { image_url } => match image_block(&image_url.url, i, j)? {
                Some(b) => blocks.push(b),
                None => ctx.unsupported(
                    &format!("messages[{i}].content[{j}].image_url (only data: URLs)"),
                    NAME,
                )?,
            },
            ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                ctx.unsupported(&format!("messages[{i}].content[{j}]"), NAME)?;
            }
        }
    }
    Ok(blocks)
}

/// A Converse image block from a `data:image/<format>;base64,<data>` URL; `None` for other URLs
/// (Bedrock cannot fetch them).
fn image_block(url: &str, i: usize, j: usize) -> Result<Option<Value>, TranslateError> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    let param = || format!("messages[{i}].content[{j}].image_url.url");
    let (media, data) = rest.split_once(";base64,").ok_or_else(|| {
        TranslateError::malformed_param(
            "image data URLs must be base64 (data:<type>;base64,...)",
            &param(),
        )
    })?;
    let format = match media.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::malformed_param(
                format!("image type {other:?} is not supported (png, jpeg, gif, webp)"),
                &param(),
            ))
        }
    };
    Ok(Some(
        json!({"image": {"format": format, "source": {"bytes": data}}}),
    ))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks: Vec<Value> = m
        .content
        .as_ref()
        .and_then(|c| text_block(&c.joined_text()))
        .into_iter()
        .collect();
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let args = call.function.arguments.trim();
        let input: Value = if args.is_empty() {
            json!({})
        } else {
            serde_json::from_str(args).map_err(|_| {
                TranslateError::malformed_param(
                    "tool call arguments must be JSON",
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?
        };
        blocks.push(
            json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": input}}),
        );
    }
    Ok(blocks)
}
