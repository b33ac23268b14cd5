//! What an LLM call looks like to a plugin that is not ai-proxy: which API it is ([`Api`]), what the
//! request asks for ([`RequestView`]) and what the response says ([`ResponseObserver`]).
//!
//! Every plugin but ai-proxy sees client-format traffic (OpenAI or Anthropic); these types read it
//! without building a `serde_json::Value`, borrowing strings from the body where possible.

mod observer;
mod request;
mod response;

pub use crate::error::ClientProtocol;
pub use observer::{ResponseObserver, DEFAULT_MAX_JSON_BYTES};
pub use request::{MessageView, RequestError, RequestView};
pub use response::{
    Delta, DeltaKind, FinishReason, ResponseFormat, ResponseSummary, UpstreamError, Usage,
};

/// The API a request calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST .../chat/completions` (OpenAI).
    ChatCompletions,
    /// `POST .../completions` (OpenAI legacy).
    Completions,
    /// `POST .../embeddings` (OpenAI).
    Embeddings,
    /// `POST .../v1/messages` (Anthropic).
    AnthropicMessages,
    /// `POST .../v1/responses` (the OpenAI Responses API; not its sub-paths such as
    /// `/v1/responses/input_tokens`).
    Responses,
    /// `GET .../v1/models` or `.../v1/models/{id}` (OpenAI).
    Models,
    /// Anything else; plugins pass it through.
    Other,
}

impl Api {
    /// Classify a request by method and path. The query string is ignored, as is one trailing `/`.
    ///
    /// Matching is by path **suffix**, so prefixes added by gateways and providers still match:
    /// `/openai/v1/chat/completions` and Azure's `/openai/deployments/{d}/chat/completions` are
    /// chat completions (as Higress's `enableOnPathSuffix` does). Anthropic needs the `/v1/messages`
    /// suffix, so OpenAI's `/v1/threads/{id}/messages` is not mistaken for it;
    /// `/v1/messages/count_tokens` and `/v1/messages/batches` are [`Api::Other`]. The method must be
    /// `POST` (`GET` for models), compared case-insensitively.
    pub fn from_path(method: &str, path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        if method.eq_ignore_ascii_case("GET") {
            let is_models = path.ends_with("/v1/models")
                || path
                    .rsplit_once('/')
                    .is_some_and(|(parent, id)| !id.is_empty() && parent.ends_with("/v1/models"));
            return if is_models { Self::Models } else { Self::Other };
        }
        if !method.eq_ignore_ascii_case("POST") {
            return Self::Other;
        }
        if path.ends_with("/chat/completions") {
            Self::ChatCompletions
        } else if path.ends_with("/completions") {
            Self::Completions
        } else if path.ends_with("/embeddings") {
            Self::Embeddings
        } else if path.ends_with("/v1/messages") {
            Self::AnthropicMessages
        } else if path.ends_with("/v1/responses") {
            Self::Responses
        } else {
            Self::Other
        }
    }

    /// The client protocol of this API (Anthropic for Messages, OpenAI otherwise).
    pub fn protocol(self) -> ClientProtocol {
        match self {
            Self::AnthropicMessages => ClientProtocol::Anthropic,
            _ => ClientProtocol::OpenAi,
        }
    }

    /// True for the APIs that generate text (chat, completions, messages, responses).
    pub fn is_generation(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::AnthropicMessages | Self::Responses
        )
    }

    /// A stable lower-case name for logs and metric tags.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::AnthropicMessages => "messages",
            Self::Responses => "responses",
            Self::Models => "models",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_are_recognised_by_path_suffix_and_method() {
        let cases = [
            ("POST", "/v1/chat/completions", Api::ChatCompletions),
            ("post", "/v1/chat/completions?x=1", Api::ChatCompletions),
            ("POST", "/openai/v1/chat/completions/", Api::ChatCompletions),
            (
                "POST",
                "/openai/deployments/gpt/chat/completions?api-version=1",
                Api::ChatCompletions,
            ),
            ("POST", "/v1/completions", Api::Completions),
            ("POST", "/v1/embeddings", Api::Embeddings),
            ("POST", "/v1/messages?beta=true", Api::AnthropicMessages),
            ("POST", "/v1/messages/count_tokens", Api::Other),
            ("POST", "/v1/threads/t/messages", Api::Other),
            ("GET", "/v1/models", Api::Models),
            ("GET", "/v1/models/gpt-4o", Api::Models),
            ("GET", "/v1/models/", Api::Models),
            ("GET", "/v1/chat/completions", Api::Other),
            ("PUT", "/v1/embeddings", Api::Other),
            ("POST", "", Api::Other),
            ("POST", "/", Api::Other),
        ];
        for (method, path, want) in cases {
            assert_eq!(Api::from_path(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn the_responses_api_is_recognised_apart_from_its_sub_paths() {
        let api = Api::from_path;
        assert_eq!(api("POST", "/v1/responses"), Api::Responses);
        assert_eq!(api("post", "/openai/v1/responses/?x=1"), Api::Responses);
        assert_eq!(api("POST", "/v1/responses/input_tokens"), Api::Other);
        assert_eq!(api("GET", "/v1/responses"), Api::Other);
        assert_eq!(api("POST", "/v1/responses/resp_1/cancel"), Api::Other);
        assert!(Api::Responses.is_generation());
        assert_eq!(Api::Responses.protocol(), ClientProtocol::OpenAi);
        assert_eq!(Api::Responses.as_str(), "responses");
    }

    #[test]
    fn only_messages_speaks_anthropic() {
        assert_eq!(Api::AnthropicMessages.protocol(), ClientProtocol::Anthropic);
        assert_eq!(Api::Embeddings.protocol(), ClientProtocol::OpenAi);
        assert!(Api::Completions.is_generation() && !Api::Embeddings.is_generation());
        assert_eq!(Api::AnthropicMessages.as_str(), "messages");
    }
}
