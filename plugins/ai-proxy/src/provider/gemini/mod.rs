//! Google Gemini API: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` on `generativelanguage.googleapis.com`, authenticated with
//! `x-goog-api-key` (from `apiKeys`). OpenAI `/v1/embeddings` goes to
//! `/v1beta/models/{model}:batchEmbedContents` (translated in [`crate::translate::backend::gemini::embed`]).
//! The path helpers are shared with Vertex AI.

#![warn(clippy::arithmetic_side_effects)]

use aigw_shared::config::ConfigError;
use aigw_shared::error::ClientError;
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::{options, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

/// The Gemini API host.
pub const AUTHORITY: &str = "generativelanguage.googleapis.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {}

/// The Gemini API provider.
#[derive(Debug)]
pub struct Gemini;

impl Gemini {
    /// Build from options (there are none).
    pub fn build(opts: &Value) -> Result<Self, ConfigError> {
        let _: Options = options(opts)?;
        Ok(Self)
    }
}

/// The method suffix: `:generateContent`, or `:streamGenerateContent?alt=sse` for streams.
pub fn method(stream: bool) -> &'static str {
    if stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
    }
}

/// Check a model name for use as one path segment (Google model ids are letters, digits, `.`,
/// `-`, `_` and `@`; anything else could change the path).
pub fn model_segment(model: &str) -> Result<&str, ClientError> {
    if model.is_empty() {
        return Err(ClientError::invalid_request("`model` is required").with_param("model"));
    }
    let ok = model
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'));
    if ok {
        Ok(model)
    } else {
        Err(
            ClientError::invalid_request(format!("model {model:?} is not a valid Google model id"))
                .with_param("model"),
        )
    }
}

/// The 400 for an API a Google provider does not offer.
pub fn no_api(kind: &str, call: &ApiCall<'_>) -> ClientError {
    let api = call.suffix.split('?').next().unwrap_or(call.suffix);
    ClientError::invalid_request(format!("provider type {kind} has no /v1{api} API"))
        .with_code("unsupported_api")
}

impl Vendor for Gemini {
    fn schema(&self) -> Schema {
        Schema::Gemini
    }

    fn default_authority(&self) -> Option<&str> {
        Some(AUTHORITY)
    }

    fn default_base_path(&self) -> &str {
        "/v1beta"
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        match call.api {
            Api::ChatCompletions | Api::AnthropicMessages => {
                // `models/x` and `tunedModels/x` are accepted as Google writes them.
                let (collection, id) = match call.model.split_once('/') {
                    Some((c @ ("models" | "tunedModels"), id)) => (c, id),
                    _ => ("models", call.model),
                };
                let id = model_segment(id)?;
                Ok(format!("{base}/{collection}/{id}{}", method(call.stream)))
            }
            Api::Other if call.suffix == crate::prepare::COUNT_TOKENS => {
                let (collection, id) = match call.model.split_once('/') {
                    Some((c @ ("models" | "tunedModels"), id)) => (c, id),
                    _ => ("models", call.model),
                };
                Ok(format!(
                    "{base}/{collection}/{}:countTokens",
                    model_segment(id)?
                ))
            }
            Api::Embeddings => {
                let id = call.model.strip_prefix("models/").unwrap_or(call.model);
                Ok(format!(
                    "{base}/models/{}:batchEmbedContents",
                    model_segment(id)?
                ))
            }
            _ => Err(no_api("gemini", call)),
        }
    }

    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        if let Some(k) = key {
            call.headers.push(("x-goog-api-key".into(), k.to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
