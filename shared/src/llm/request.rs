//! [`RequestView`]: a protocol-agnostic reading of a client request body.

use serde::Deserialize;

use super::Api;
use crate::error::{ClientError, ClientProtocol};
use crate::schema::{anthropic, openai, Role, Text, TextContent};
use crate::tokens::{TokenCount, TokenEstimator};

/// Tokens added per chat message for role and framing (OpenAI's cookbook counts 3–4).
const TOKENS_PER_MESSAGE: u64 = 4;

/// One message of the conversation, with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView<'a> {
    /// Who wrote it (Anthropic's top-level `system` appears as a first [`Role::System`] message).
    pub role: Role,
    /// Its text pieces.
    pub content: TextContent<'a>,
}

/// What a request asks for, whatever its protocol. Strings borrow from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// The API called.
    pub api: Api,
    /// The client's protocol.
    pub protocol: ClientProtocol,
    /// The requested model.
    pub model: Option<Text<'a>>,
    /// `"stream": true`.
    pub stream: bool,
    /// `stream_options.include_usage` (OpenAI); always false for Anthropic, whose streams carry usage.
    pub include_usage: bool,
    /// Output cap: `max_completion_tokens`, else `max_tokens` (OpenAI); `max_tokens` (Anthropic).
    pub max_tokens: Option<u64>,
    /// Chat/messages conversation, in order.
    pub messages: Vec<MessageView<'a>>,
    /// Completions prompts or embeddings inputs.
    pub inputs: Vec<Text<'a>>,
    /// Token ids given instead of text (completions/embeddings).
    pub input_token_ids: u64,
}

/// Why a request body could not be read. Render it with [`RequestError::to_client_error`] (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The API needs a body and there was none.
    #[error("the request body is empty")]
    Empty,
    /// The body is not JSON or a field has the wrong type.
    #[error("{}", if path.is_empty() { format!("invalid JSON body: {message}") } else { format!("invalid `{path}`: {message}") })]
    Invalid {
        /// The field at fault, in `messages[0].content` form (empty for the body as a whole).
        path: String,
        /// What serde said.
        message: String,
    },
}

impl RequestError {
    /// A 400 `invalid_request_error` naming the field (as OpenAI's `param`).
    pub fn to_client_error(&self) -> ClientError {
        let err = ClientError::invalid_request(self.to_string());
        match self {
            Self::Invalid { path, .. } if !path.is_empty() => err.with_param(path.clone()),
            _ => err,
        }
    }
}

impl<'a> RequestView<'a> {
    /// Read `body` as a request to `api`. [`Api::Models`] and [`Api::Other`] need no body and
    /// give an empty view.
    pub fn parse(api: Api, body: &'a [u8]) -> Result<Self, RequestError> {
        let mut view = Self::empty(api);
        if matches!(api, Api::Models | Api::Other) {
            return Ok(view);
        }
        if api == Api::Responses {
            return Self::parse_responses(body);
        }
        expect_object(body)?;
        match api {
            Api::ChatCompletions => {
                let r: openai::ChatRequest<'a> = parse_body(body)?;
                view.model = r.model;
                view.stream = r.stream.unwrap_or(false);
                view.include_usage = r
                    .stream_options
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false);
                view.max_tokens = r.max_completion_tokens.or(r.max_tokens);
                view.messages = r
                    .messages
                    .into_iter()
                    .map(|m| MessageView {
                        role: m.role,
                        content: m.content,
                    })
                    .collect();
            }
            Api::Completions => {
                let r: openai::CompletionRequest<'a> = parse_body(body)?;
                view.model = r.model;
                view.stream = r.stream.unwrap_or(false);
                view.include_usage = r
                    .stream_options
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false);
                view.max_tokens = r.max_tokens;
                view.inputs = r.prompt.texts;
                view.input_token_ids = r.prompt.token_ids;
            }
            Api::Embeddings => {
                let r: openai::EmbeddingsRequest<'a> = parse_body(body)?;
                view.model = r.model;
                view.inputs = r.input.texts;
                view.input_token_ids = r.input.token_ids;
            }
            Api::AnthropicMessages => {
                let r: anthropic::MessagesRequest<'a> = parse_body(body)?;
                view.model = r.model;
                view.stream = r.stream.unwrap_or(false);
                view.max_tokens = r.max_tokens;
                let system = (!r.system.parts.is_empty()).then_some(MessageView {
                    role: Role::System,
                    content: r.system,
                });
                view.messages = system
                    .into_iter()
                    .chain(r.messages.into_iter().map(|m| MessageView {
                        role: m.role,
                        content: m.content,
                    }))
                    .collect();
            }
            Api::Models | Api::Other | Api::Responses => {}
        }
        Ok(view)
    }

    /// [`Api::Responses`]: `instructions` as a system message, then each input item — a message
    /// with its role, a `function_call`'s arguments as the assistant's, a `function_call_output`
    /// as a tool message. Its streams always report usage (`include_usage` is set with `stream`).
    fn parse_responses(body: &'a [u8]) -> Result<Self, RequestError> {
        let mut view = Self::empty(Api::Responses);
        expect_object(body)?;
        let r: openai::ResponsesRequest<'a> = parse_body(body)?;
        view.model = r.model;
        view.stream = r.stream.unwrap_or(false);
        view.include_usage = view.stream;
        view.max_tokens = r.max_output_tokens;
        if let Some(text) = r.instructions {
            view.messages.push(MessageView {
                role: Role::System,
                content: TextContent { parts: vec![text] },
            });
        }
        for item in r.input.items {
            let (role, content) = match item.kind.as_deref().unwrap_or("message") {
                "function_call" => (
                    Role::Assistant,
                    TextContent {
                        parts: item.arguments.into_iter().collect(),
                    },
                ),
                "function_call_output" => (Role::Tool, item.output),
                _ => (item.role.unwrap_or(Role::User), item.content),
            };
            view.messages.push(MessageView { role, content });
        }
        Ok(view)
    }

    fn empty(api: Api) -> Self {
        Self {
            api,
            protocol: api.protocol(),
            model: None,
            stream: false,
            include_usage: false,
            max_tokens: None,
            messages: Vec::new(),
            inputs: Vec::new(),
            input_token_ids: 0,
        }
    }

    /// The model name, or `""`.
    pub fn model_str(&self) -> &str {
        self.model.as_deref().unwrap_or("")
    }

    /// Every text piece of messages with `role`, in order.
    pub fn texts_by_role(&self, role: Role) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .filter(move |m| m.role == role)
            .flat_map(|m| m.content.parts.iter().map(|t| t.as_str()))
    }

    /// The text of the last user message, pieces joined with `\n`.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.joined())
    }

    /// Every text the request carries (messages, then inputs), in order.
    pub fn all_texts(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .flat_map(|m| m.content.parts.iter().map(|t| t.as_str()))
            .chain(self.inputs.iter().map(|t| t.as_str()))
    }

    /// An estimate of the input tokens: text estimate plus per-message framing plus token ids.
    pub fn estimate_input_tokens(&self) -> TokenCount {
        let mut e = TokenEstimator::new();
        for text in self.all_texts() {
            e.push(text);
            e.break_word();
        }
        let framing = (self.messages.len() as u64).saturating_mul(TOKENS_PER_MESSAGE);
        let count = e.estimate();
        TokenCount {
            tokens: count
                .tokens
                .saturating_add(framing)
                .saturating_add(self.input_token_ids),
            estimated: true,
        }
    }
}

/// A request body must be a JSON object: serde would read an array into a struct positionally.
fn expect_object(body: &[u8]) -> Result<(), RequestError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Err(RequestError::Empty),
        Some(b'{') => Ok(()),
        Some(_) => Err(RequestError::Invalid {
            path: String::new(),
            message: "the request body must be a JSON object".to_owned(),
        }),
    }
}

/// Deserialize a whole body, naming the JSON path of any error and rejecting trailing data.
fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, RequestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." || path == "?" {
            String::new()
        } else {
            path
        };
        RequestError::Invalid {
            path,
            message: e.into_inner().to_string(),
        }
    })?;
    de.end().map_err(|e| RequestError::Invalid {
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(value)
}
