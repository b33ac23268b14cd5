//! Hub request -> backend request: the conversation walk and the request fields that several
//! backends treat alike.

use serde_json::{json, Map, Value};

use crate::hub::{ChatRequest, Content, ContentPart, FunctionDef, Message, Role, ToolCall};
use crate::translate::{BuildContext, TranslateError};

/// How one backend writes the pieces of a conversation; [`split`] does the walking and merging.
pub trait Dialect {
    /// The backend's name in "unsupported" errors.
    const NAME: &'static str;
    /// The key of a turn's block list (`content`, `parts`).
    const BLOCKS: &'static str;
    /// Whether a turn without blocks is still sent.
    const KEEP_EMPTY_TURNS: bool;

    /// The wire name of a turn's role ([`Role::User`] or [`Role::Assistant`]).
    fn role(&self, role: Role) -> &'static str {
        role.as_str()
    }
    /// The block for a system or developer message's text; `None`: nothing is sent.
    fn system(&self, text: &str) -> Option<Value>;
    /// A text block; `None`: nothing is sent.
    fn text(&self, text: &str) -> Option<Value>;
    /// A user part that is not text or a refusal (image, audio, file); `None`: dropped (after
    /// [`BuildContext::unsupported`] where the backend cannot express it).
    fn media(
        &self,
        part: &ContentPart,
        i: usize,
        j: usize,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError>;
    /// The block for tool call `j` of assistant message `i`.
    fn tool_call(&self, call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError>;
    /// The result block of tool message `m` (index `i`), answering the call `id`.
    fn tool_result(&self, id: &str, m: &Message, i: usize) -> Result<Value, TranslateError>;
    /// A legacy `function` message: unsupported unless the backend has a form for it.
    fn function_result(
        &self,
        _m: &Message,
        i: usize,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError> {
        ctx.unsupported(&format!("messages[{i}].role=function"), Self::NAME)
            .map(|()| None)
    }
}

/// A conversation split for a backend.
#[derive(Debug, Default, PartialEq)]
pub struct Conversation {
    /// System blocks, in order.
    pub system: Vec<Value>,
    /// Turns (`{"role": ..., <BLOCKS>: [...]}`), consecutive turns of one role merged.
    pub turns: Vec<Value>,
}

/// Split the hub conversation: system and developer messages become system blocks; user and
/// assistant messages become turns; tool results join a user turn (consecutive turns of one role
/// are merged, as the backends want strict alternation and parallel results in one turn).
pub fn split<D: Dialect>(
    d: &D,
    messages: &[Message],
    ctx: &mut BuildContext<'_>,
) -> Result<Conversation, TranslateError> {
    let mut conv = Conversation::default();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                conv.system
                    .extend(d.system(&joined_text(m.content.as_ref())));
            }
            Role::User => {
                let blocks = user_blocks(d, m.content.as_ref(), i, ctx)?;
                push_turn(d, &mut conv.turns, Role::User, blocks);
            }
            Role::Assistant => {
                let blocks = assistant_blocks(d, m, i)?;
                push_turn(d, &mut conv.turns, Role::Assistant, blocks);
            }
            Role::Tool => {
                let block = d.tool_result(tool_call_id(m, i)?, m, i)?;
                push_turn(d, &mut conv.turns, Role::User, vec![block]);
            }
            Role::Function => {
                if let Some(block) = d.function_result(m, i, ctx)? {
                    push_turn(d, &mut conv.turns, Role::User, vec![block]);
                }
            }
        }
    }
    Ok(conv)
}

/// Append `blocks` as a turn of `role`, merging into the previous turn of the same role.
fn push_turn<D: Dialect>(d: &D, turns: &mut Vec<Value>, role: Role, blocks: Vec<Value>) {
    if blocks.is_empty() && !D::KEEP_EMPTY_TURNS {
        return;
    }
    let role = d.role(role);
    if let Some(last) = turns.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some(role) {
            if let Some(Value::Array(existing)) = last.get_mut(D::BLOCKS) {
                existing.extend(blocks);
                return;
            }
        }
    }
    let mut turn = Map::new();
    turn.insert("role".into(), json!(role));
    turn.insert(D::BLOCKS.into(), Value::Array(blocks));
    turns.push(Value::Object(turn));
}

/// A user message's blocks: text and refusals through [`Dialect::text`], the rest through
/// [`Dialect::media`].
fn user_blocks<D: Dialect>(
    d: &D,
    content: Option<&Content>,
    i: usize,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<Value>, TranslateError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Content::Text(t)) => return Ok(d.text(t).into_iter().collect()),
        Some(Content::Parts(p)) => p,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => blocks.extend(d.text(text)),
            ContentPart::Refusal { refusal } => blocks.extend(d.text(refusal)),
            other => blocks.extend(d.media(other, i, j, ctx)?),
        }
    }
    Ok(blocks)
}

/// An assistant message's blocks: its text when not empty, then one block per tool call.
fn assistant_blocks<D: Dialect>(
    d: &D,
    m: &Message,
    i: usize,
) -> Result<Vec<Value>, TranslateError> {
    let text = joined_text(m.content.as_ref());
    let mut blocks: Vec<Value> = if text.is_empty() {
        Vec::new()
    } else {
        d.text(&text).into_iter().collect()
    };
    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
        blocks.push(d.tool_call(call, i, j)?);
    }
    Ok(blocks)
}

/// A message's text (parts joined), or "".
pub fn joined_text(content: Option<&Content>) -> String {
    content.map(Content::joined_text).unwrap_or_default()
}

/// The call a tool message answers (required).
pub fn tool_call_id(m: &Message, i: usize) -> Result<&str, TranslateError> {
    m.tool_call_id.as_deref().ok_or_else(|| {
        TranslateError::malformed_param(
            "a tool message needs tool_call_id",
            &format!("messages[{i}].tool_call_id"),
        )
    })
}

/// A tool call's arguments as JSON (blank arguments are `{}`).
pub fn call_arguments(call: &ToolCall) -> Result<Value, serde_json::Error> {
    let args = call.function.arguments.trim();
    if args.is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_str(args)
    }
}

/// The parameter name of tool call `j` of message `i`'s arguments.
pub fn arguments_param(i: usize, j: usize) -> String {
    format!("messages[{i}].tool_calls[{j}].function.arguments")
}

/// [`call_arguments`], with "tool call arguments must be JSON" as the error.
pub fn json_arguments(call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError> {
    call_arguments(call).map_err(|_| {
        TranslateError::malformed_param("tool call arguments must be JSON", &arguments_param(i, j))
    })
}

/// A data URL split into its media type and base64 data (`None`: not a `data:` URL).
pub fn data_url<'a>(url: &'a str, message: &str, param: &str) -> DataUrl<'a> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(None);
    };
    rest.split_once(";base64,")
        .map(Some)
        .ok_or_else(|| TranslateError::malformed_param(message, param))
}

/// What [`data_url`] finds: `(media type, base64 data)`, or `None` for another URL.
pub type DataUrl<'a> = Result<Option<(&'a str, &'a str)>, TranslateError>;

/// A function's parameter schema (an empty object schema when it has none).
pub fn parameters(f: &FunctionDef) -> Value {
    f.parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
}

/// Thinking budget (tokens) for an OpenAI `reasoning_effort`.
pub fn effort_to_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(16384),
        _ => None,
    }
}

/// The thinking budget a request asks for: `None` without `reasoning_effort` or with `none`; an
/// unknown effort is an error.
pub fn thinking_budget(req: &ChatRequest) -> Result<Option<u64>, TranslateError> {
    let Some(effort) = req.reasoning_effort.as_deref() else {
        return Ok(None);
    };
    if effort == "none" {
        return Ok(None);
    }
    effort_to_budget(effort).map(Some).ok_or_else(|| {
        TranslateError::malformed_param(
            format!("unknown reasoning_effort {effort:?}"),
            "reasoning_effort",
        )
    })
}

/// `temperature` (OpenAI allows 0..=2; Claude-style backends take 0..=1) and `top_p`, both
/// dropped (and noted) while thinking is on.
pub fn sampling(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
    thinking: bool,
) -> (Option<f64>, Option<f64>) {
    let mut keep = |value: Option<f64>, name: &str| match value {
        Some(_) if thinking => {
            ctx.dropped
                .push(format!("{name} (not allowed with thinking)"));
            None
        }
        v => v,
    };
    let temperature = keep(req.temperature, "temperature").map(|t| t.clamp(0.0, 1.0));
    let top_p = keep(req.top_p, "top_p");
    (temperature, top_p)
}

/// The OpenAI fields a Claude-style backend has no form for, in the order they are reported.
pub fn openai_only_fields(req: &ChatRequest) -> [(&'static str, bool); 6] {
    [
        ("n", req.n.is_some_and(|n| n > 1)),
        ("presence_penalty", req.presence_penalty.is_some()),
        ("frequency_penalty", req.frequency_penalty.is_some()),
        ("seed", req.seed.is_some()),
        ("logprobs", req.logprobs == Some(true)),
        ("top_logprobs", req.top_logprobs.is_some()),
    ]
}

/// Report every present field of `fields` as unsupported by `backend`.
pub fn refuse(
    ctx: &mut BuildContext<'_>,
    backend: &str,
    fields: impl IntoIterator<Item = (&'static str, bool)>,
) -> Result<(), TranslateError> {
    for (field, present) in fields {
        if present {
            ctx.unsupported(field, backend)?;
        }
    }
    Ok(())
}

/// Report every field the hub does not know (`extra`) as unsupported by `backend`.
pub fn refuse_extra(
    ctx: &mut BuildContext<'_>,
    backend: &str,
    req: &ChatRequest,
) -> Result<(), TranslateError> {
    for key in req.extra.keys() {
        ctx.unsupported(key, backend)?;
    }
    Ok(())
}
