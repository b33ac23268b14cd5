//! OpenAI `/v1/embeddings` <-> Vertex AI text embeddings (`…/publishers/google/models/{model}:predict`).
//!
//! Request: one `instances[]` entry `{content}` per input text, with `dimensions` ->
//! `parameters.outputDimensionality`. Response: `predictions[].embeddings.values`, in input
//! order, -> an OpenAI `list` (floats, or base64 `f32`s for `encoding_format: "base64"`); the
//! usage's `prompt_tokens` is the sum of `predictions[].embeddings.statistics.token_count`.

use serde_json::{json, Value};

use super::{openai_list, read_ask, EmbedAsk, EmbedPlan};
use crate::translate::TranslateError;

/// The backend name used in "unsupported" errors.
const NAME: &str = "vertex";

/// An OpenAI embeddings request -> a Vertex AI `:predict` body (the model is in the path).
pub fn to_predict(body: &Value, model: &str) -> Result<(Value, EmbedPlan), TranslateError> {
    let EmbedAsk {
        texts,
        dims,
        base64,
    } = read_ask(body, NAME)?;
    let instances: Vec<Value> = texts.iter().map(|t| json!({ "content": t })).collect();
    let out = match dims {
        Some(d) => json!({"instances": instances, "parameters": {"outputDimensionality": d}}),
        None => json!({ "instances": instances }),
    };
    let plan = EmbedPlan {
        model: model.to_owned(),
        count: texts.len(),
        base64,
    };
    Ok((out, plan))
}

/// A `:predict` answer -> an OpenAI embeddings response.
pub fn from_predict(body: &[u8], plan: &EmbedPlan) -> Result<Value, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))?;
    let predictions = v
        .get("predictions")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::Upstream("predict response without `predictions`".into()))?;
    if predictions.len() != plan.count {
        return Err(TranslateError::Upstream(format!(
            "{} inputs were sent but {} predictions came back",
            plan.count,
            predictions.len()
        )));
    }
    let mut vectors = Vec::with_capacity(predictions.len());
    let mut tokens = 0u64;
    for (i, p) in predictions.iter().enumerate() {
        let e = p.get("embeddings");
        let values = e
            .and_then(|e| e.get("values"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                TranslateError::Upstream(format!("prediction {i} has no `embeddings.values`"))
            })?;
        vectors.push(values.as_slice());
        tokens = tokens.saturating_add(token_count(e));
    }
    openai_list(&vectors, plan, tokens)
}

/// `embeddings.statistics.token_count` (Vertex may write it as a float, e.g. `6.0`); 0 if absent.
fn token_count(embeddings: Option<&Value>) -> u64 {
    let Some(n) = embeddings
        .and_then(|e| e.get("statistics"))
        .and_then(|s| s.get("token_count"))
    else {
        return 0;
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| {
                // A count written as a float: whole tokens, non-negative, checked above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let whole = f.round() as u64;
                whole
            })
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
