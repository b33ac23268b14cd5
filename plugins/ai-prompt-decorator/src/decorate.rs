//! The request rewrite, as a pure function from body bytes to body bytes.
//!
//! The body is split into its top-level fields as raw JSON ([`RawObject`]), and written back with a
//! new `messages` array (and, for Anthropic, a new `system`; for the Responses API, a new `input`
//! array and `instructions` string), copying every other field's bytes verbatim: values are
//! never re-serialised, numbers and unknown fields stay exactly as sent. Only user messages are
//! parsed, and only when the injection guard must rewrite their text.

use std::borrow::Cow;

use aigw_shared::schema::RawObject;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{Config, Message, Role, Template};
use crate::guard::Guard;

/// Which request format is being decorated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI `POST /v1/chat/completions`: system text travels as messages.
    OpenAiChat,
    /// Anthropic `POST /v1/messages`: system text travels in the top-level `system` field.
    AnthropicMessages,
    /// OpenAI `POST /v1/responses`: system text travels in the `instructions` string, messages
    /// are `input` items (a string `input` is one user message).
    Responses,
}

/// Why a request could not be decorated. Every variant is the client's fault (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecorateError {
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotObject,
    /// `messages` is there but not an array.
    #[error("`messages` must be an array")]
    MessagesNotArray,
    /// `system` (Anthropic) is neither a string nor an array of blocks.
    #[error("`system` must be a string or an array of content blocks")]
    SystemInvalid,
    /// `input` (Responses API) is neither a string nor an array of items.
    #[error("`input` must be a string or an array of items")]
    InputInvalid,
    /// `instructions` (Responses API) is not a string.
    #[error("`instructions` must be a string")]
    InstructionsInvalid,
    /// `template` is not a string.
    #[error("`template` must be a string naming a configured template")]
    TemplateNotString,
    /// `variables` is not an object.
    #[error("`variables` must be an object")]
    VariablesNotObject,
    /// No template by that name.
    #[error("unknown template `{0}`")]
    UnknownTemplate(String),
    /// A message could not be read (too deeply nested, or not an object): with the injection
    /// guard on, an unreadable message is refused rather than passed unwrapped.
    #[error("messages[{index}] cannot be read: {reason}")]
    MessageUnreadable {
        /// Index in `messages`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The template uses a variable the request did not give.
    #[error("template `{template}` needs variable `{name}`; pass it in `variables`")]
    MissingVariable {
        /// Template name.
        template: String,
        /// Variable name.
        name: String,
    },
}

impl DecorateError {
    /// The request field the error is about.
    pub fn param(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) | Self::NotObject => "body",
            Self::MessagesNotArray | Self::MessageUnreadable { .. } => "messages",
            Self::SystemInvalid => "system",
            Self::InputInvalid => "input",
            Self::InstructionsInvalid => "instructions",
            Self::TemplateNotString | Self::UnknownTemplate(_) => "template",
            Self::VariablesNotObject | Self::MissingVariable { .. } => "variables",
        }
    }

    /// True when the body is not a JSON object at all (subject to `onInvalidBody`).
    pub fn is_unparseable(&self) -> bool {
        matches!(self, Self::InvalidJson(_) | Self::NotObject)
    }
}

/// Ready-made JSON text of the configured messages, built once per config.
#[derive(Debug, Default)]
pub struct Fragments {
    openai_head: Vec<String>,
    openai_tail: Vec<String>,
    anthropic_head: Vec<String>,
    anthropic_tail: Vec<String>,
    system_head: Vec<String>,
    system_tail: Vec<String>,
    /// The instruction texts in front of (and after) a Responses request's `instructions`.
    instructions_head: Vec<String>,
    instructions_tail: Vec<String>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

fn message_json(role: Role, content: &str) -> String {
    serde_json::to_string(&MessageOut {
        role: role.as_str(),
        content,
    })
    .unwrap_or_default()
}

fn block_json(text: &str) -> String {
    serde_json::to_string(&TextBlock { kind: "text", text }).unwrap_or_default()
}

impl Fragments {
    /// Render the prepend/append messages and the guard instruction for both dialects.
    pub fn new(prepend: &[Message], append: &[Message], guard: Option<&Guard>) -> Self {
        let mut f = Self::default();
        if let Some(g) = guard {
            f.openai_head
                .push(message_json(Role::System, g.instruction()));
            f.system_head.push(block_json(g.instruction()));
            f.instructions_head.push(g.instruction().to_owned());
        }
        for m in prepend {
            f.openai_head.push(message_json(m.role, &m.content));
            if m.role.is_instruction() {
                f.system_head.push(block_json(&m.content));
                f.instructions_head.push(m.content.clone());
            } else {
                f.anthropic_head.push(message_json(m.role, &m.content));
            }
        }
        for m in append {
            f.openai_tail.push(message_json(m.role, &m.content));
            if m.role.is_instruction() {
                f.system_tail.push(block_json(&m.content));
                f.instructions_tail.push(m.content.clone());
            } else {
                f.anthropic_tail.push(message_json(m.role, &m.content));
            }
        }
        f
    }
}

/// Decorate `body`. `Ok(None)` means the body needs no change.
pub fn decorate(
    config: &Config,
    dialect: Dialect,
    body: &[u8],
) -> Result<Option<Vec<u8>>, DecorateError> {
    let mut object = parse_object(body)?;
    let field = |name: &str| object.get(name);
    let template = match field("template") {
        None => None,
        Some(raw) => {
            let name: String =
                serde_json::from_str(raw.get()).map_err(|_| DecorateError::TemplateNotString)?;
            let t = config
                .templates
                .get(&name)
                .ok_or_else(|| DecorateError::UnknownTemplate(name.clone()))?;
            Some((name, t))
        }
    };
    if template.is_none() && config.is_noop_without_template() {
        return Ok(None);
    }
    let vars: Map<String, Value> = match field("variables") {
        None => Map::new(),
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|_| DecorateError::VariablesNotObject)?
        }
    };
    let filled = match &template {
        Some((name, t)) => fill(name, t, &vars, config.guard.as_ref())?,
        None => Filled::default(),
    };
    let original: Vec<Cow<'_, str>> = match (dialect, field("messages")) {
        (Dialect::Responses, _) => responses_input(config.guard.as_ref(), field("input"))?,
        (_, None) => Vec::new(),
        (_, Some(raw)) => {
            let items: Vec<&RawValue> =
                serde_json::from_str(raw.get()).map_err(|_| DecorateError::MessagesNotArray)?;
            items
                .into_iter()
                .enumerate()
                .map(|(i, m)| guard_message(config.guard.as_ref(), i, m))
                .collect::<Result<_, _>>()?
        }
    };
    let frag = &config.fragments;
    let (messages, system) = match dialect {
        Dialect::OpenAiChat => {
            let mut all: Vec<Cow<'_, str>> = Vec::new();
            all.extend(frag.openai_head.iter().map(|s| Cow::Borrowed(s.as_str())));
            if let Some(sys) = &filled.system {
                all.push(Cow::Owned(message_json(Role::System, sys)));
            }
            all.extend(
                filled
                    .messages
                    .iter()
                    .map(|(r, c)| Cow::Owned(message_json(*r, c))),
            );
            all.extend(original);
            all.extend(frag.openai_tail.iter().map(|s| Cow::Borrowed(s.as_str())));
            (all, None)
        }
        Dialect::AnthropicMessages => anthropic_parts(frag, &filled, original, field("system"))?,
        Dialect::Responses => {
            let instructions = responses_instructions(frag, &filled, field("instructions"))?;
            let items = responses_parts(frag, &filled, original);
            let items = join_array::<_, &str, &str>(&items, &[], &[]);
            object.remove("template");
            object.remove("variables");
            object.set("input", raw(items)?);
            if let Some(text) = instructions {
                object
                    .set_json("instructions", &text)
                    .map_err(|e| DecorateError::InvalidJson(e.to_string()))?;
            }
            return Ok(Some(object.to_vec()));
        }
    };
    let messages = join_array::<_, &str, &str>(&messages, &[], &[]);
    object.remove("template");
    object.remove("variables");
    object.set("messages", raw(messages)?);
    if let Some(system) = system {
        object.set("system", raw(system)?);
    }
    Ok(Some(object.to_vec()))
}

/// A Responses request's `input` as item JSON texts, user text guarded: a string input becomes
/// one user message item.
fn responses_input<'a>(
    guard: Option<&Guard>,
    input: Option<&'a RawValue>,
) -> Result<Vec<Cow<'a, str>>, DecorateError> {
    let Some(raw) = input else {
        return Ok(Vec::new());
    };
    let text = raw.get();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).map_err(|_| DecorateError::InputInvalid)?;
        let s = match guard {
            Some(g) => g.wrap(&s),
            None => s,
        };
        return Ok(vec![Cow::Owned(message_json(Role::User, &s))]);
    }
    if text == "null" {
        return Ok(Vec::new());
    }
    let items: Vec<&RawValue> =
        serde_json::from_str(text).map_err(|_| DecorateError::InputInvalid)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, m)| guard_message(guard, i, m))
        .collect()
}

/// The new `instructions` of a Responses request: the configured instruction texts (guard,
/// prepended system/developer messages, a template's system text) before the request's own,
/// appended ones after, joined by blank lines; `None` when nothing is added.
fn responses_instructions(
    frag: &Fragments,
    filled: &Filled,
    existing: Option<&RawValue>,
) -> Result<Option<String>, DecorateError> {
    let mut head: Vec<&str> = frag.instructions_head.iter().map(String::as_str).collect();
    head.extend(filled.system.as_deref());
    head.extend(
        filled
            .messages
            .iter()
            .filter(|(r, _)| r.is_instruction())
            .map(|(_, t)| t.as_str()),
    );
    if head.is_empty() && frag.instructions_tail.is_empty() {
        return Ok(None);
    }
    let own: Option<String> = match existing.map(RawValue::get) {
        None | Some("null") => None,
        Some(text) => {
            Some(serde_json::from_str(text).map_err(|_| DecorateError::InstructionsInvalid)?)
        }
    };
    let all: Vec<&str> = head
        .into_iter()
        .chain(own.as_deref())
        .chain(frag.instructions_tail.iter().map(String::as_str))
        .collect();
    Ok(Some(all.join("\n\n")))
}

/// The `input` items of a decorated Responses request: prepended messages, a template's
/// non-instruction messages, the request's own, appended messages.
fn responses_parts<'a>(
    frag: &'a Fragments,
    filled: &Filled,
    original: Vec<Cow<'a, str>>,
) -> Vec<Cow<'a, str>> {
    let mut items: Vec<Cow<'a, str>> = frag
        .anthropic_head
        .iter()
        .map(|s| Cow::Borrowed(s.as_str()))
        .collect();
    for (role, text) in &filled.messages {
        if !role.is_instruction() {
            items.push(Cow::Owned(message_json(*role, text)));
        }
    }
    items.extend(original);
    items.extend(
        frag.anthropic_tail
            .iter()
            .map(|s| Cow::Borrowed(s.as_str())),
    );
    items
}

/// Wrap JSON text this module produced as a raw value (it is valid by construction; checked anyway).
fn raw(json: String) -> Result<Box<RawValue>, DecorateError> {
    RawValue::from_string(json).map_err(|e| DecorateError::InvalidJson(e.to_string()))
}

/// A template with its variables filled in.
#[derive(Debug, Default)]
struct Filled {
    system: Option<String>,
    messages: Vec<(Role, String)>,
}

/// Fill a template; with the guard on, every variable value (client text) is wrapped.
fn fill(
    name: &str,
    t: &Template,
    vars: &Map<String, Value>,
    guard: Option<&Guard>,
) -> Result<Filled, DecorateError> {
    let missing = |e: crate::template::MissingVariable| DecorateError::MissingVariable {
        template: name.to_owned(),
        name: e.0,
    };
    let value = |v: &str| match guard {
        Some(g) => g.wrap(v),
        None => v.to_owned(),
    };
    let system = match &t.system {
        Some(text) => Some(text.render_with(vars, value).map_err(missing)?),
        None => None,
    };
    let mut messages = Vec::with_capacity(t.messages.len());
    for (role, text) in &t.messages {
        messages.push((*role, text.render_with(vars, value).map_err(missing)?));
    }
    Ok(Filled { system, messages })
}

type Parts<'a> = (Vec<Cow<'a, str>>, Option<String>);

fn anthropic_parts<'a>(
    frag: &'a Fragments,
    filled: &Filled,
    original: Vec<Cow<'a, str>>,
    system: Option<&'a RawValue>,
) -> Result<Parts<'a>, DecorateError> {
    let mut blocks: Vec<Cow<'a, str>> = frag
        .system_head
        .iter()
        .map(|s| Cow::Borrowed(s.as_str()))
        .collect();
    if let Some(sys) = &filled.system {
        blocks.push(Cow::Owned(block_json(sys)));
    }
    let mut messages: Vec<Cow<'a, str>> = frag
        .anthropic_head
        .iter()
        .map(|s| Cow::Borrowed(s.as_str()))
        .collect();
    for (role, text) in &filled.messages {
        if role.is_instruction() {
            blocks.push(Cow::Owned(block_json(text)));
        } else {
            messages.push(Cow::Owned(message_json(*role, text)));
        }
    }
    messages.extend(original);
    messages.extend(
        frag.anthropic_tail
            .iter()
            .map(|s| Cow::Borrowed(s.as_str())),
    );
    let added = blocks.len() + frag.system_tail.len();
    let system = match system {
        _ if added == 0 => None,
        None => Some(join_array::<_, _, &str>(&blocks, &frag.system_tail, &[])),
        Some(raw) => {
            let text = raw.get();
            let existing: Vec<Cow<'a, str>> = if text.starts_with('"') {
                // Reuse the string's JSON text as the block's `text` value: no re-encoding.
                vec![Cow::Owned(format!("{{\"type\":\"text\",\"text\":{text}}}"))]
            } else if text.starts_with('[') {
                let items: Vec<&RawValue> =
                    serde_json::from_str(text).map_err(|_| DecorateError::SystemInvalid)?;
                items.into_iter().map(|b| Cow::Borrowed(b.get())).collect()
            } else if text == "null" {
                Vec::new()
            } else {
                return Err(DecorateError::SystemInvalid);
            };
            Some(join_array(&blocks, &existing, &frag.system_tail))
        }
    };
    Ok((messages, system))
}

fn join_array<A: AsRef<str>, B: AsRef<str>, C: AsRef<str>>(a: &[A], b: &[B], c: &[C]) -> String {
    let items = a
        .iter()
        .map(AsRef::as_ref)
        .chain(b.iter().map(AsRef::as_ref))
        .chain(c.iter().map(AsRef::as_ref));
    let mut out = String::from("[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// Rewrite a user message's text through the guard; other messages pass as their raw text.
///
/// With the guard on, a message that cannot be read (not an object, or its content nested past
/// the JSON depth limit) or that names its `role` twice (servers disagree on which one wins) is
/// refused: passing it unwrapped would switch the guard off for exactly the input that tries to.
/// Other fields keep their bytes however deep they nest; a repeated `content` leaves as one
/// wrapped field (the last, as JSON parsers read it).
fn guard_message<'a>(
    guard: Option<&Guard>,
    index: usize,
    raw: &'a RawValue,
) -> Result<Cow<'a, str>, DecorateError> {
    let Some(guard) = guard else {
        return Ok(Cow::Borrowed(raw.get()));
    };
    let unreadable = |reason: String| DecorateError::MessageUnreadable { index, reason };
    let mut msg = RawObject::parse(raw.get().as_bytes()).map_err(|e| unreadable(e.to_string()))?;
    if msg.keys().filter(|k| *k == "role").count() > 1 {
        return Err(unreadable("`role` is given more than once".into()));
    }
    let is_user = matches!(msg.get_as::<Cow<'_, str>>("role"), Some(Ok(r)) if r == "user");
    let Some(content) = msg.get("content").filter(|_| is_user) else {
        return Ok(Cow::Borrowed(raw.get()));
    };
    let mut content: Value =
        serde_json::from_str(content.get()).map_err(|e| unreadable(e.to_string()))?;
    wrap_content(guard, &mut content);
    msg.set_json("content", &content)
        .map_err(|e| unreadable(e.to_string()))?;
    String::from_utf8(msg.to_vec())
        .map(Cow::Owned)
        .map_err(|e| unreadable(e.to_string()))
}

/// Wrap a user message's text (a string, or the `text` of each text part).
fn wrap_content(guard: &Guard, content: &mut Value) {
    match content {
        Value::String(s) => *s = guard.wrap(s),
        Value::Array(parts) => {
            for part in parts.iter_mut().filter_map(Value::as_object_mut) {
                if matches!(
                    part.get("type").and_then(Value::as_str),
                    Some("text" | "input_text")
                ) {
                    if let Some(Value::String(t)) = part.get_mut("text") {
                        *t = guard.wrap(t);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Parse the body as a JSON object whose field values stay raw.
fn parse_object(body: &[u8]) -> Result<RawObject<'_>, DecorateError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(DecorateError::NotObject),
            Err(e) => Err(DecorateError::InvalidJson(e.to_string())),
        };
    }
    RawObject::parse(body).map_err(|e| DecorateError::InvalidJson(e.to_string()))
}

#[cfg(test)]
#[path = "decorate_tests.rs"]
mod tests;
