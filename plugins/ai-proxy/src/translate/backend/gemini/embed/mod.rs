//! OpenAI `/v1/embeddings` <-> Gemini `:batchEmbedContents`, as pure functions.
//!
//! Request: `input` (a string or a list of strings) -> one `requests[]` entry per input, each
//! `{model: "models/{model}", content: {parts: [{text}]}}`, with `dimensions` ->
//! `outputDimensionality`. Token-id inputs cannot be sent (Gemini embeds text only).
//! Response: `embeddings[].values` (or a single `embedContent` answer's `embedding.values`) ->
//! an OpenAI `list` of `embedding` objects, as floats or, for `encoding_format: "base64"`, as
//! base64 of little-endian `f32`s. Gemini reports no token usage here, so usage is zero.
//!
//! Vertex AI's `:predict` text-embedding API has its own translator in [`vertex`], which shares
//! the request reading and the answer building here.
//!
//! [`crate::prepare`] calls [`to_batch_embed`] for `/v1/embeddings` routed to a `gemini` provider
//! (path `…/models/{model}:batchEmbedContents`); the response side holds the JSON answer and
//! hands it to [`from_batch_embed`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

pub mod vertex;

use super::NAME;
use crate::translate::TranslateError;

/// What the response translation needs to remember from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedPlan {
    /// The model name reported to the client.
    pub model: String,
    /// How many inputs were sent.
    pub count: usize,
    /// Answer with base64 instead of float arrays.
    pub base64: bool,
}

/// The Gemini model resource name (`gemini-embedding-001` -> `models/gemini-embedding-001`).
fn resource(model: &str) -> String {
    if model.starts_with("models/") || model.starts_with("tunedModels/") {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

/// What an OpenAI embeddings request asks for, shared by Gemini and Vertex AI.
pub(crate) struct EmbedAsk<'a> {
    /// The texts, in order.
    pub texts: Vec<&'a str>,
    /// `dimensions`, when set.
    pub dims: Option<u64>,
    /// `encoding_format: "base64"`.
    pub base64: bool,
}

/// Read `input`, `dimensions` and `encoding_format` from an OpenAI embeddings request
/// (`backend` names the provider in the error for token-id inputs).
pub(crate) fn read_ask<'a>(body: &'a Value, backend: &str) -> Result<EmbedAsk<'a>, TranslateError> {
    let texts: Vec<&str> = match body.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| TranslateError::Unsupported {
                    field: "input (token ids)".into(),
                    backend: backend.into(),
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(TranslateError::malformed_param(
                "`input` must be a string or a non-empty list of strings",
                "input",
            ))
        }
    };
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|d| *d > 0).ok_or_else(|| {
            TranslateError::malformed_param("`dimensions` must be a positive integer", "dimensions")
        })?),
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(TranslateError::malformed_param(
                format!("unknown encoding_format {other:?}"),
                "encoding_format",
            ))
        }
    };
    Ok(EmbedAsk {
        texts,
        dims,
        base64,
    })
}

/// An OpenAI embeddings request -> a `batchEmbedContents` body for `model`.
pub fn to_batch_embed(body: &Value, model: &str) -> Result<(Value, EmbedPlan), TranslateError> {
    let EmbedAsk {
        texts,
        dims,
        base64,
    } = read_ask(body, NAME)?;
    let name = resource(model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            match dims {
                Some(d) => json!({"model": name, "content": {"parts": [{"text": t}]}, "outputDimensionality": d}),
                None => json!({"model": name, "content": {"parts": [{"text": t}]}}),
            }
        })
        .collect();
    let plan = EmbedPlan {
        model: model.to_owned(),
        count: texts.len(),
        base64,
    };
    Ok((json!({ "requests": requests }), plan))
}

/// A `batchEmbedContents` (or `embedContent`) answer -> an OpenAI embeddings response.
pub fn from_batch_embed(body: &[u8], plan: &EmbedPlan) -> Result<Value, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))?;
    let vectors: Vec<&Value> = match (v.get("embeddings"), v.get("embedding")) {
        (Some(Value::Array(list)), _) => list.iter().collect(),
        (None, Some(one)) => vec![one],
        _ => {
            return Err(TranslateError::Upstream(
                "embeddings response without `embeddings`".into(),
            ))
        }
    };
    if vectors.len() != plan.count {
        return Err(TranslateError::Upstream(format!(
            "{} inputs were sent but {} embeddings came back",
            plan.count,
            vectors.len()
        )));
    }
    let mut data = Vec::with_capacity(vectors.len());
    for (i, e) in vectors.into_iter().enumerate() {
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .ok_or_else(|| TranslateError::Upstream(format!("embedding {i} has no `values`")))?;
        data.push(values.as_slice());
    }
    openai_list(&data, plan, 0)
}

/// The OpenAI `list` answer for the vectors, in input order, with `prompt_tokens` as usage.
pub(crate) fn openai_list(
    vectors: &[&[Value]],
    plan: &EmbedPlan,
    prompt_tokens: u64,
) -> Result<Value, TranslateError> {
    let mut data = Vec::with_capacity(vectors.len());
    for (i, values) in vectors.iter().enumerate() {
        let embedding = if plan.base64 {
            json!(encode_f32(values)?)
        } else {
            Value::Array(values.to_vec())
        };
        data.push(json!({"object": "embedding", "index": i, "embedding": embedding}));
    }
    Ok(json!({
        "object": "list",
        "data": data,
        "model": plan.model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
}

/// Base64 of the values as little-endian `f32`s (OpenAI's `encoding_format: "base64"`).
fn encode_f32(values: &[Value]) -> Result<String, TranslateError> {
    let mut bytes = Vec::with_capacity(values.len().saturating_mul(4));
    for v in values {
        let f = v
            .as_f64()
            .ok_or_else(|| TranslateError::Upstream("an embedding value is not a number".into()))?;
        // Narrowing to f32 is the point: OpenAI's base64 format is f32.
        #[allow(clippy::cast_possible_truncation)]
        bytes.extend_from_slice(&(f as f32).to_le_bytes());
    }
    Ok(STANDARD.encode(bytes))
}
