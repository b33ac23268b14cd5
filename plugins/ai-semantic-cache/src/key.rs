//! Cache keys: which text of a request is looked up (the last user message, every user message,
//! or the whole conversation) and the partition it is looked up in (route, model, optionally the
//! consumer, a hash of the system prompt, and the requested response format), plus the skip rules
//! read from the same body.

use aigw_shared::llm::{Api, RequestError, RequestView};
use aigw_shared::schema::Role;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Which messages make the key text.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyMode {
    /// The last user message (the question just asked).
    #[default]
    LastUserMessage,
    /// Every user message, in order.
    AllUserMessages,
    /// Every message but the system prompt (which partitions), with its role.
    Conversation,
}

/// The fields the skip rules and the partition read, borrowed and skipped over otherwise.
#[derive(Debug, Default, Deserialize)]
struct Extras<'a> {
    /// OpenAI `response_format` (JSON mode, a JSON schema): answers differ by it.
    #[serde(borrow, default)]
    response_format: Option<&'a RawValue>,
    #[serde(default)]
    tools: Option<IgnoredAny>,
    #[serde(default)]
    functions: Option<IgnoredAny>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    n: Option<u64>,
}

/// What the request is, for the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// Requested model.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The text looked up (and embedded).
    pub text: String,
    /// Hex SHA-256 of the partition (route, model, consumer, system prompt).
    pub partition: String,
    /// Hex SHA-256 of partition and normalised text: the exact key and the vector id.
    pub exact: String,
    /// Estimated input tokens of this request.
    pub input_estimate: u64,
}

/// Why a request is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// It offers tools (answers depend on tool results).
    Tools,
    /// Its temperature is above the configured bound.
    Temperature,
    /// It asks for several choices.
    Choices,
    /// It has no user text to key on.
    NoText,
}

impl Skip {
    /// Every reason, in [`Skip::index`] order.
    pub const ALL: [Skip; 4] = [Skip::Tools, Skip::Temperature, Skip::Choices, Skip::NoText];

    /// Its position in [`Skip::ALL`] (for per-reason tables made once).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Temperature => "temperature",
            Self::Choices => "choices",
            Self::NoText => "no_text",
        }
    }
}

/// What the key is built from besides the body.
#[derive(Debug, Clone, Copy)]
pub struct KeyRules<'a> {
    /// Which messages.
    pub mode: KeyMode,
    /// Partition by the system prompt.
    pub system_prompt: bool,
    /// Skip requests with tools.
    pub skip_with_tools: bool,
    /// Skip above this temperature.
    pub max_temperature: Option<f64>,
    /// The route's name (`""` when unknown).
    pub route: &'a str,
    /// The consumer, when partitioning by consumer (`Some("")` when unidentified).
    pub consumer: Option<&'a str>,
}

/// Read `body` (a request to `api`) into a [`Lookup`], or say why it is not cached.
pub fn read(
    api: Api,
    body: &[u8],
    rules: &KeyRules<'_>,
) -> Result<Result<Lookup, Skip>, RequestError> {
    let view = RequestView::parse(api, body)?;
    // The view read the body already: the extras cannot fail where it did not, but stay lenient.
    let extras: Extras = serde_json::from_slice(body).unwrap_or_default();
    if rules.skip_with_tools && (extras.tools.is_some() || extras.functions.is_some()) {
        return Ok(Err(Skip::Tools));
    }
    if let (Some(max), Some(t)) = (rules.max_temperature, extras.temperature) {
        if t > max {
            return Ok(Err(Skip::Temperature));
        }
    }
    if extras.n.is_some_and(|n| n > 1) {
        return Ok(Err(Skip::Choices));
    }
    let text = key_text(&view, rules.mode);
    if text.trim().is_empty() {
        return Ok(Err(Skip::NoText));
    }
    let model = view.model_str().to_owned();
    let mut p = Sha256::new();
    for part in [rules.route, &model, rules.consumer.unwrap_or("\u{1}none")] {
        p.update(part.as_bytes());
        p.update([0]);
    }
    if let Some(format) = extras.response_format {
        p.update(b"\x02response_format");
        p.update(format.get().as_bytes());
    }
    if rules.system_prompt {
        for m in view
            .messages
            .iter()
            .filter(|m| matches!(m.role, Role::System | Role::Developer))
        {
            for t in &m.content.parts {
                p.update(t.as_str().as_bytes());
                p.update([1]);
            }
        }
    }
    let partition = hex(&p.finalize());
    let mut e = Sha256::new();
    e.update(partition.as_bytes());
    e.update([0]);
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            e.update(b" ");
        }
        e.update(word.as_bytes());
    }
    Ok(Ok(Lookup {
        model,
        stream: view.stream,
        include_usage: view.include_usage,
        text: text.trim().to_owned(),
        partition,
        exact: hex(&e.finalize()),
        input_estimate: view.estimate_input_tokens().tokens,
    }))
}

fn key_text(view: &RequestView<'_>, mode: KeyMode) -> String {
    match mode {
        KeyMode::LastUserMessage => view.last_user_text().unwrap_or_default(),
        KeyMode::AllUserMessages => {
            let mut out = String::new();
            for (i, t) in view.texts_by_role(Role::User).enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(t);
            }
            out
        }
        KeyMode::Conversation => {
            let mut out = String::new();
            for m in view
                .messages
                .iter()
                .filter(|m| !matches!(m.role, Role::System | Role::Developer))
            {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(m.role.as_str());
                out.push_str(": ");
                out.push_str(&m.content.joined());
            }
            out
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;
