//! Anthropic backend: hub (OpenAI chat) request -> Anthropic Messages body, and a Messages JSON
//! response -> hub response. The stream side is in [`stream`].

#![warn(clippy::arithmetic_side_effects)]

pub mod stream;

use serde_json::{json, Map, Value};

use super::openai::JsonToHub;
use crate::hub::{ChatRequest, ChatResponse, ContentPart, HubEvent, Message, ResponseFormat};
use crate::hub::{ToolCall, ToolChoice};
use crate::translate::kit::request::{self as kit, Dialect};
use crate::translate::kit::response::{parse_body, single_choice, tool_call, Answer};
use crate::translate::{
    errors, Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError,
};
use stream::{stop_reason_to_finish, usage_to_hub, AnthropicSseToHub};

pub use crate::translate::kit::request::effort_to_budget;
pub use crate::translate::kit::response::str_of;

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

/// Build the Anthropic request object.
pub fn to_anthropic(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
) -> Result<Value, TranslateError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(ctx.model));
    let kit::Conversation {
        mut system,
        turns: messages,
    } = kit::split(&Messages, &req.messages, ctx)?;
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
    let budget = kit::thinking_budget(req)?;
    if let Some(budget) = budget {
        max_tokens = max_tokens.max(budget.saturating_add(1024));
        out.insert(
            "thinking".into(),
            json!({"type":"enabled","budget_tokens":budget}),
        );
    }
    out.insert("max_tokens".into(), json!(max_tokens));
    sampling(req, ctx, budget.is_some(), &mut out);
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
) {
    let (temperature, top_p) = kit::sampling(req, ctx, thinking);
    if let Some(t) = temperature {
        out.insert("temperature".into(), json!(t));
    }
    if let Some(p) = top_p {
        out.insert("top_p".into(), json!(p));
    }
    if let Some(stop) = &req.stop {
        out.insert("stop_sequences".into(), json!(stop.to_vec()));
    }
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
                o.insert("input_schema".into(), kit::parameters(&t.function));
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
    kit::refuse(ctx, NAME, kit::openai_only_fields(req))?;
    kit::refuse_extra(ctx, NAME, req)
}

/// How Anthropic Messages writes a conversation: `system` text blocks, `content` block lists
/// (empty turns kept), `tool_use` and `tool_result` blocks.
struct Messages;

impl Dialect for Messages {
    const NAME: &'static str = NAME;
    const BLOCKS: &'static str = "content";
    const KEEP_EMPTY_TURNS: bool = true;

    fn system(&self, text: &str) -> Option<Value> {
        self.text(text)
    }

    fn text(&self, text: &str) -> Option<Value> {
        Some(json!({"type":"text","text":text}))
    }

    fn media(
        &self,
        part: &ContentPart,
        i: usize,
        j: usize,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError> {
        match part {
            ContentPart::ImageUrl { image_url } => image_block(&image_url.url, i, j).map(Some),
            _ => ctx
                .unsupported(&format!("messages[{i}].content[{j}]"), NAME)
                .map(|()| None),
        }
    }

    fn tool_call(&self, call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError> {
        let input = kit::json_arguments(call, i, j)?;
        Ok(json!({"type":"tool_use","id":call.id,"name":call.function.name,"input":input}))
    }

    fn tool_result(&self, id: &str, m: &Message, _i: usize) -> Result<Value, TranslateError> {
        let text = kit::joined_text(m.content.as_ref());
        Ok(json!({"type":"tool_result","tool_use_id":id,"content":text}))
    }
}

/// An Anthropic image block from an OpenAI image URL (`data:` URLs become base64 sources).
pub fn image_block(url: &str, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = format!("messages[{i}].content[{j}].image_url.url");
    let message = "image data URLs must be base64 (data:<type>;base64,...)";
    Ok(match kit::data_url(url, message, &param)? {
        Some((media, data)) => {
            json!({"type":"image","source":{"type":"base64","media_type":media,"data":data}})
        }
        None => json!({"type":"image","source":{"type":"url","url":url}}),
    })
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
        let v = parse_body(self.raw.bytes())?;
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
    let mut answer = Answer::default();
    for block in v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => answer.text.push_str(str_of(block, "text")),
            Some("thinking") => answer.reasoning.push_str(str_of(block, "thinking")),
            Some("tool_use") => answer.calls.push(tool_call(
                str_of(block, "id").to_owned(),
                str_of(block, "name").to_owned(),
                block.get("input").map(Value::to_string).unwrap_or_default(),
            )),
            _ => {}
        }
    }
    let finish = v
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(|r| stop_reason_to_finish(r).to_owned());
    single_choice(
        str_of(v, "id").to_owned(),
        created,
        str_of(v, "model").to_owned(),
        answer.message(),
        finish,
        v.get("usage").map(usage_to_hub),
    )
}
