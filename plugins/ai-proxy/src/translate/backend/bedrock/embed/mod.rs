//! OpenAI `/v1/embeddings` <-> Bedrock InvokeModel embedding models, as pure functions.
//!
//! * Amazon Titan Text Embeddings (`amazon.titan-embed-text-v1`, `-v2:0`): one text per call,
//!   `{inputText, dimensions?, normalize?}` -> `{embedding, inputTextTokenCount}`. `dimensions`
//!   (256, 512 or 1024) and `normalize` (default true, an extra OpenAI field) are v2 only.
//! * Cohere Embed (`cohere.embed-*`): `{texts, input_type, truncate?, output_dimension?}` ->
//!   `{embeddings}` (a list of float lists, or `{"float": [...]}` when typed). `input_type` is an
//!   extra OpenAI field (default `search_document`); `dimensions` is `output_dimension` (v4).
//!
//! The answer is an OpenAI `list` of `embedding` objects with floats or, for
//! `encoding_format: "base64"`, base64 of little-endian `f32`s; usage is Titan's token count
//! (Cohere bodies carry none: 0). Token-id inputs are rejected: Bedrock embeds text only.

use serde_json::{json, Map, Value};

use super::base64;
use crate::translate::TranslateError;

/// The embedding model family, from the Bedrock model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedFamily {
    /// Amazon Titan Text Embeddings v1.
    TitanV1,
    /// Amazon Titan Text Embeddings v2.
    TitanV2,
    /// Cohere Embed v3 (`dimensions` not supported).
    CohereV3,
    /// Cohere Embed v4 (`output_dimension`).
    CohereV4,
}

/// The family of a model id (inference-profile prefixes such as `us.` are allowed).
pub fn family(model: &str) -> Option<EmbedFamily> {
    let m = model.to_ascii_lowercase();
    if m.contains("amazon.titan-embed-text-v2") {
        Some(EmbedFamily::TitanV2)
    } else if m.contains("amazon.titan-embed-text-v1") || m.contains("amazon.titan-embed-g1-text") {
        Some(EmbedFamily::TitanV1)
    } else if m.contains("cohere.embed-v4") {
        Some(EmbedFamily::CohereV4)
    } else if m.contains("cohere.embed-") {
        Some(EmbedFamily::CohereV3)
    } else {
        None
    }
}

/// What the response translation needs to remember from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedPlan {
    /// The model family.
    pub family: EmbedFamily,
    /// The model name reported to the client.
    pub model: String,
    /// How many inputs were sent.
    pub count: usize,
    /// Answer with base64 instead of float lists.
    pub base64: bool,
}

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::malformed_param(message, param)
}

/// The text inputs of an OpenAI request (a string or a list of strings).
fn texts(req: &Value) -> Result<Vec<String>, TranslateError> {
    match req.get("input") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    bad("Bedrock embeds text only: `input` must be strings", "input")
                })
            })
            .collect(),
        Some(_) => Err(bad(
            "`input` must be a string or a list of strings",
            "input",
        )),
        None => Err(bad("`input` is required", "input")),
    }
}

/// An OpenAI embeddings request -> the Bedrock InvokeModel body for `model`, and the plan.
pub fn to_bedrock(body: &[u8], model: &str) -> Result<(Vec<u8>, EmbedPlan), TranslateError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("request body is not JSON: {e}")))?;
    let fam = family(model).ok_or_else(|| {
        bad(
            format!("`{model}` is not a Bedrock embedding model this gateway knows (amazon.titan-embed-text-*, cohere.embed-*)"),
            "model",
        )
    })?;
    let inputs = texts(&req)?;
    let base64 = match req.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(bad(
                format!("unknown encoding_format {other:?} (float or base64)"),
                "encoding_format",
            ))
        }
    };
    let dimensions = req.get("dimensions").and_then(Value::as_u64);
    let out = match fam {
        EmbedFamily::TitanV1 | EmbedFamily::TitanV2 => {
            titan_body(&req, fam, inputs.clone(), dimensions)?
        }
        EmbedFamily::CohereV3 | EmbedFamily::CohereV4 => {
            cohere_body(&req, fam, &inputs, dimensions)?
        }
    };
    let plan = EmbedPlan {
        family: fam,
        model: req
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or(model)
            .to_owned(),
        count: inputs.len(),
        base64,
    };
    let bytes = serde_json::to_vec(&out).map_err(|e| TranslateError::malformed(e.to_string()))?;
    Ok((bytes, plan))
}

fn titan_body(
    req: &Value,
    fam: EmbedFamily,
    mut inputs: Vec<String>,
    dimensions: Option<u64>,
) -> Result<Value, TranslateError> {
    if inputs.len() != 1 {
        return Err(bad(
            "Titan embeds one text per request: send `input` as one string",
            "input",
        ));
    }
    let mut body = Map::new();
    body.insert("inputText".into(), json!(inputs.pop().unwrap_or_default()));
    let normalize = req.get("normalize").and_then(Value::as_bool);
    match fam {
        EmbedFamily::TitanV2 => {
            if let Some(d) = dimensions {
                if ![256, 512, 1024].contains(&d) {
                    return Err(bad(
                        format!("Titan v2 offers 256, 512 or 1024 dimensions, not {d}"),
                        "dimensions",
                    ));
                }
                body.insert("dimensions".into(), json!(d));
            }
            body.insert("normalize".into(), json!(normalize.unwrap_or(true)));
        }
        _ => {
            if dimensions.is_some() {
                return Err(bad(
                    "Titan v1 has a fixed size; `dimensions` needs v2",
                    "dimensions",
                ));
            }
        }
    }
    Ok(Value::Object(body))
}

fn cohere_body(
    req: &Value,
    fam: EmbedFamily,
    inputs: &[String],
    dimensions: Option<u64>,
) -> Result<Value, TranslateError> {
    let mut body = Map::new();
    body.insert("texts".into(), json!(inputs));
    let input_type = req
        .get("input_type")
        .and_then(Value::as_str)
        .unwrap_or("search_document");
    body.insert("input_type".into(), json!(input_type));
    if let Some(t) = req.get("truncate").and_then(Value::as_str) {
        body.insert("truncate".into(), json!(t));
    }
    if let Some(d) = dimensions {
        if fam != EmbedFamily::CohereV4 {
            return Err(bad(
                "this Cohere model has a fixed size; `dimensions` needs cohere.embed-v4",
                "dimensions",
            ));
        }
        body.insert("output_dimension".into(), json!(d));
    }
    Ok(Value::Object(body))
}

/// The float vectors of a Bedrock answer, in input order, and the input token count.
fn vectors(v: &Value, fam: EmbedFamily) -> Result<(Vec<Vec<f64>>, u64), TranslateError> {
    let floats = |list: &Value| -> Result<Vec<f64>, TranslateError> {
        list.as_array()
            .ok_or_else(|| TranslateError::Upstream("an embedding is not a list".into()))?
            .iter()
            .map(|n| {
                n.as_f64().ok_or_else(|| {
                    TranslateError::Upstream("an embedding value is not a number".into())
                })
            })
            .collect()
    };
    match fam {
        EmbedFamily::TitanV1 | EmbedFamily::TitanV2 => {
            let e = v.get("embedding").ok_or_else(|| {
                TranslateError::Upstream("Titan answer without `embedding`".into())
            })?;
            let tokens = v
                .get("inputTextTokenCount")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Ok((vec![floats(e)?], tokens))
        }
        EmbedFamily::CohereV3 | EmbedFamily::CohereV4 => {
            let e = v.get("embeddings").ok_or_else(|| {
                TranslateError::Upstream("Cohere answer without `embeddings`".into())
            })?;
            let lists = match e {
                Value::Object(typed) => typed.get("float").ok_or_else(|| {
                    TranslateError::Upstream("Cohere answer without float embeddings".into())
                })?,
                other => other,
            };
            let all = lists
                .as_array()
                .ok_or_else(|| {
                    TranslateError::Upstream("Cohere `embeddings` is not a list".into())
                })?
                .iter()
                .map(floats)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((all, 0))
        }
    }
}

/// Little-endian `f32` bytes, base64-encoded (OpenAI's `encoding_format: base64`).
pub fn floats_to_base64(values: &[f64]) -> String {
    let mut bytes = Vec::with_capacity(values.len().saturating_mul(4));
    for v in values {
        #[allow(clippy::cast_possible_truncation)]
        bytes.extend_from_slice(&(*v as f32).to_le_bytes());
    }
    base64::encode(&bytes)
}

/// A Bedrock embedding answer -> the OpenAI embeddings response body.
pub fn from_bedrock(body: &[u8], plan: &EmbedPlan) -> Result<Vec<u8>, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))?;
    let (all, tokens) = vectors(&v, plan.family)?;
    if all.len() != plan.count {
        return Err(TranslateError::Upstream(format!(
            "{} embeddings for {} inputs",
            all.len(),
            plan.count
        )));
    }
    let data: Vec<Value> = all
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if plan.base64 {
                json!(floats_to_base64(e))
            } else {
                json!(e)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let out = json!({
        "object": "list",
        "data": data,
        "model": plan.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    serde_json::to_vec(&out).map_err(|e| TranslateError::Upstream(e.to_string()))
}

#[cfg(test)]
mod tests;
