//! `POST /model/{modelId}/invoke` for the embedding models: Amazon Titan Text Embeddings
//! (`{"inputText", "dimensions"?}` -> `{"embedding", "inputTextTokenCount"}`, plus
//! `embeddingsByType.float` as v2 sends it) and Cohere Embed (`{"texts", "input_type"}` ->
//! `{"embeddings", "id", "response_type", "texts"}`). The body shape picks the family; the vectors
//! are the simulator's deterministic unit vectors ([`crate::reply::embed`]), `dimensions` /
//! `output_dimension` wide (default 16). Other bodies get Bedrock's 400 `ValidationException`.

use serde_json::{json, Value};

use super::error;
use crate::plan::{Plan, JSON};
use crate::reply::{count_tokens, embed, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::sorted;

/// The `invoke` handler for embedding models.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => return error::shaped(400, None),
    };
    let answer = if let Some(text) = body.get("inputText") {
        titan(text, &body)
    } else if let Some(texts) = body.get("texts") {
        cohere(texts, &body, &ctx.id(""))
    } else {
        Err(
            "this simulator's invoke route serves embedding models only (inputText or texts)"
                .into(),
        )
    };
    match answer {
        Ok(v) => Plan::full(200, JSON, sorted::to_vec(&v), 0)
            .with_header("x-amzn-requestid", error::request_id(&ctx.id(""))),
        Err(msg) => error::shaped(400, Some(&msg)),
    }
}

fn width(body: &Value, field: &str) -> Result<usize, String> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(DEFAULT_DIMENSIONS),
        Some(v) => v
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .filter(|d| (1..=MAX_DIMENSIONS).contains(d))
            .ok_or_else(|| format!("{field}: must be between 1 and {MAX_DIMENSIONS}")),
    }
}

fn titan(text: &Value, body: &Value) -> Result<Value, String> {
    let text = text.as_str().ok_or("inputText: expected type: String")?;
    let values = embed(text, width(body, "dimensions")?);
    Ok(json!({
        "embedding": values,
        "embeddingsByType": {"float": values},
        "inputTextTokenCount": count_tokens(text),
    }))
}

fn cohere(texts: &Value, body: &Value, id: &str) -> Result<Value, String> {
    let list = texts
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or("texts: expected a non-empty array of strings")?;
    let texts: Vec<&str> = list
        .iter()
        .map(|t| t.as_str().ok_or("texts: expected type: String"))
        .collect::<Result<_, _>>()?;
    let dims = width(body, "output_dimension")?;
    let embeddings: Vec<Vec<f32>> = texts.iter().map(|t| embed(t, dims)).collect();
    Ok(json!({
        "embeddings": embeddings,
        "id": id,
        "response_type": "embeddings_floats",
        "texts": texts,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn titan_bodies_get_one_vector_of_the_asked_width_and_a_token_count() {
        let v = titan(&json!("hello there"), &json!({"dimensions": 8})).unwrap();
        assert_eq!(v["embedding"].as_array().unwrap().len(), 8);
        assert_eq!(v["embeddingsByType"]["float"], v["embedding"]);
        assert_eq!(v["inputTextTokenCount"], 2);
    }

    #[test]
    fn cohere_bodies_get_one_vector_per_text_in_order() {
        let v = cohere(&json!(["a", "b"]), &json!({}), "id1").unwrap();
        let e = v["embeddings"].as_array().unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].as_array().unwrap().len(), DEFAULT_DIMENSIONS);
        assert_ne!(e[0], e[1]);
        assert_eq!(v["texts"], json!(["a", "b"]));
    }

    #[test]
    fn bad_widths_and_inputs_are_refused() {
        assert!(titan(&json!(1), &json!({})).is_err());
        assert!(titan(&json!("x"), &json!({"dimensions": 0})).is_err());
        assert!(cohere(&json!([]), &json!({}), "i").is_err());
        assert!(cohere(&json!([1]), &json!({}), "i").is_err());
    }
}
