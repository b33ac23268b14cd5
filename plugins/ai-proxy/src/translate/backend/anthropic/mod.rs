//! Anthropic backend: hub (OpenAI chat) request -> Anthropic Messages body, and a Messages JSON
//! response -> hub response. The stream side is in [`stream`].

pub mod stream;

use serde_json::{json, Map, Value};

use super::openai::JsonToHub;
use crate::hub::{
    ChatRequest, ChatResponse, Choice, Content, ContentPart, FunctionCall, HubEvent, Message,
    ResponseFormat, ResponseMessage, Role, ToolCall, ToolChoice,
};
use crate::translate::{
    errors, Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError,
};
use stream::{stop_reason_to_finish, usage_to_hub, AnthropicSseToHub};

/// `max_tokens` when the client gives none (Anthropic requires it).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
const NAME: &str = "anthropic";

/// The Anthropic Messages backend schema.
pub struct AnthropicBackend;

impl Backend for AnthropicBackend {
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError> {
        let body = to_anthropic(req, ctx)?;
        serde_json::to_vec(&body).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        if head.is_sse() {
            Box::new(AnthropicSseToHub::new(head))
        } else {
            Box::new(AnthropicJsonToHub {
                raw: JsonToHub::default(),
                created: head.created,
            })
        }
    }
}

/// Thinking budget for an OpenAI `reasoning_effort`.
pub fn effort_to_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(16384),
        _ => None,
    }
}

/// Build the Anthropic request object.
pub fn to_anthropic(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
) -> Result<Value, TranslateError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(ctx.model));
    let (system, messages) = convert_messages(&req.messages, ctx)?;
    let mut system = system;
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            system.push(
                json!({"type":"text","text":"Respond with one JSON object and nothing else."}),
            );
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.clone().unwrap_or(Value::Null);
            system.push(json!({"type":"text","text":format!(
                "Respond with one JSON object matching this JSON schema and nothing else: {schema}")}));
        }
        Some(ResponseFormat::Text) | None => {}
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    let mut max_tokens = req.output_limit().unwrap_or(DEFAULT_MAX_TOKENS);
    let mut thinking = false;
    if let Some(effort) = &req.reasoning_effort {
        match effort_to_budget(effort) {
            Some(budget) => {
                max_tokens = max_tokens.max(budget + 1024);
                out.insert(
                    "thinking".into(),
                    json!({"type":"enabled","budget_tokens":budget}),
                );
                thinking = true;
            }
            None if effort == "none" => {}
            None => {
                return Err(TranslateError::malformed_param(
                    format!("unknown reasoning_effort {effort:?}"),
                    "reasoning_effort",
                ))
            }
        }
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    sampling(req, ctx, thinking, &mut out)?;
    tools(req, &mut out);
    if let Some(user) = &req.user {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    if req.is_stream() {
        out.insert("stream".into(), Value::Bool(true));
    }
    unsupported(req, ctx)?;
    Ok(Value::Object(out))
}

fn sampling(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
    thinking: bool,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    if let Some(t) = req.temperature {
        if thinking {
            ctx.dropped
                .push("temperature (not allowed with thinking)".into());
        } else {
            // OpenAI accepts 0..2, Anthropic 0..1.
            out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
        }
    }
    if let Some(p) = req.top_p {
        if thinking {
            ctx.dropped.push("top_p (not allowed with thinking)".into());
        } else {
            out.insert("top_p".into(), json!(p));
        }
    }
    if let Some(stop) = &req.stop {
        out.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
    if req.n.is_some_and(|n| n > 1) {
        ctx.unsupported("n", NAME)?;
    }
    Ok(())
}

fn tools(req: &ChatRequest, out: &mut Map<String, Value>) {
    if let Some(tools) = &req.tools {
        let list: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.function.name));
                if let Some(d) = &t.function.description {
                    o.insert("description".into(), json!(d));
                }
                let schema = t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type":"object","properties":{}}));
                o.insert("input_schema".into(), schema);
                Value::Object(o)
            })
            .collect();
        out.insert("tools".into(), Value::Array(list));
    }
    let mut choice = match &req.tool_choice {
        Some(ToolChoice::Mode(m)) if m == "required" => Some(json!({"type":"any"})),
        Some(ToolChoice::Mode(m)) if m == "none" => Some(json!({"type":"none"})),
        Some(ToolChoice::Mode(_)) => Some(json!({"type":"auto"})),
        Some(ToolChoice::Named(n)) => Some(json!({"type":"tool","name":n.function.name})),
        None => None,
    };
    if req.parallel_tool_calls == Some(false) && req.tools.is_some() {
        let c = choice.get_or_insert_with(|| json!({"type":"auto"}));
        if let Some(o) = c.as_object_mut() {
            o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
}

fn unsupported(req: &ChatRequest, ctx: &mut BuildContext<'_>) -> Result<(), TranslateError> {
    let named = [
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
    for key in req.extra.keys() {
        ctx.unsupported(key, NAME)?;
    }
    Ok(())
}

/// Split the OpenAI conversation into Anthropic `system` blocks and messages.
fn convert_messages(
    messages: &[Message],
    ctx: &mut BuildContext<'_>,
) -> Result<(Vec<Value>, Vec<Value>), TranslateError> {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let text = m
                    .content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                system.push(json!({"type":"text","text":text}));
            }
            Role::User => {
                let blocks = user_blocks(m.content.as_ref(), i, ctx)?;
                push_turn(&mut out, "user", blocks);
            }
            Role::Assistant => push_turn(&mut out, "assistant", assistant_blocks(m, i)?),
            Role::Tool => {
                let text = m
                    .content
                    .as_ref()
                    .map(Content::joined_text)
                    .unwrap_or_default();
                let id = m.tool_call_id.clone().ok_or_else(|| {
                    TranslateError::malformed_param(
                        "a tool message needs tool_call_id",
                        &format!("messages[{i}].tool_call_id"),
                    )
                })?;
                let block = json!({"type":"tool_result","tool_use_id":id,"content":text});
                push_turn(&mut out, "user", vec![block]);
            }
            Role::Function => ctx.unsupported(&format!("messages[{i}].role=function"), NAME)?,
        }
    }
    Ok((system, out))
}

/// Append blocks to the last turn when it has the same role (Anthropic wants alternation).
fn push_turn(out: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if let Some(last) = out.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(Value::Array(existing)) = last.get_mut("content") {
                existing.extend(blocks);
                return;
            }
        }
    }
    out.push(json!({"role": role, "content": blocks}));
}

fn user_blocks(
    content: Option<&Content>,
    i: usize,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<Value>, TranslateError> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    let parts = match content {
        Content::Text(t) => return Ok(vec![json!({"type":"text","text":t})]),
        Content::Parts(p) => p,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => blocks.push(json!({"type":"text","text":text})),
            ContentPart::ImageUrl { image_url } => blocks.push(image_block(&image_url.url, i, j)?),
            ContentPart::Refusal { refusal } => blocks.push(json!({"type":"text","text":refusal})),
            ContentPart::InputAudio { .. } | ContentPart::File { .. } => {
                ctx.unsupported(&format!("messages[{i}].content[{j}]"), NAME)?;
            }
        }
    }
    Ok(blocks)
}

/// An Anthropic image block from an OpenAI image URL (`data:` URLs become base64 sources).
pub fn image_block(url: &str, i: usize, j: usize) -> Result<Value, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (media, data) = rest.split_once(";base64,").ok_or_else(|| {
            TranslateError::malformed_param(
                "image data URLs must be base64 (data:<type>;base64,...)",
                &format!("messages[{i}].content[{j}].image_url.url"),
            )
        })?;
        return Ok(
            json!({"type":"image","source":{"type":"base64","media_type":media,"data":data}}),
        );
    }
    Ok(json!({"type":"image","source":{"type":"url","url":url}}))
}

fn assistant_blocks(m: &Message, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    if let Some(c) = &m.content {
        let text = c.joined_text();
        if !text.is_empty() {
            blocks.push(json!({"type":"text","text":text}));
        }
    }
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        let input: Value = if call.function.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.function.arguments).map_err(|_| {
                TranslateError::malformed_param(
                    "tool call arguments must be JSON",
                    &format!("messages[{i}].tool_calls[{j}].function.arguments"),
                )
            })?
        };
        blocks
            .push(json!({"type":"tool_use","id":call.id,"name":call.function.name,"input":input}));
    }
    Ok(blocks)
}

/// A whole Anthropic JSON response -> one hub response.
struct AnthropicJsonToHub {
    raw: JsonToHub,
    created: u64,
}

impl ResponseTranslator for AnthropicJsonToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        self.raw.feed(chunk, out)
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let v: Value = serde_json::from_slice(self.raw.bytes())
            .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))?;
        if v.get("type").and_then(Value::as_str) == Some("error") {
            out.push(HubEvent::Error(errors::from_stream_event(&v)));
            return Ok(());
        }
        out.push(HubEvent::Response(message_to_hub(&v, self.created)));
        Ok(())
    }
}

/// An Anthropic `message` object -> hub response.
pub fn message_to_hub(v: &Value, created: u64) -> ChatResponse {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(str_of(block, "text")),
            Some("thinking") => reasoning.push_str(str_of(block, "thinking")),
            Some("tool_use") => calls.push(ToolCall {
                id: str_of(block, "id").to_owned(),
                kind: "function".into(),
                function: FunctionCall {
                    name: str_of(block, "name").to_owned(),
                    arguments: block.get("input").map(Value::to_string).unwrap_or_default(),
                },
            }),
            _ => {}
        }
    }
    let finish = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(|r| stop_reason_to_finish(r).to_owned());
    let message = ResponseMessage {
        content: (!text.is_empty() || calls.is_empty()).then_some(text),
        reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
        tool_calls: (!calls.is_empty()).then_some(calls),
        ..ResponseMessage::default()
    };
    ChatResponse {
        id: str_of(v, "id").to_owned(),
        object: "chat.completion".into(),
        created,
        model: str_of(v, "model").to_owned(),
        choices: vec![Choice {
            index: 0,
            message,
            finish_reason: finish,
            extra: Map::new(),
        }],
        usage: v.get("usage").map(usage_to_hub),
        extra: Map::new(),
    }
}

/// A string field of a JSON object, or "".
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}
