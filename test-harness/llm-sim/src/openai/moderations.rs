//! `POST /v1/moderations`: a deterministic moderation verdict in OpenAI's documented shape
//! (`testdata/providers/openai-moderations.response.json`). An input is flagged, in the
//! `violence` and `harassment/threatening` categories, when it contains the word `kill` (any
//! case); everything else is clean. The input is a string or an array of strings.

use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::plan::Plan;
use crate::request::SimRequest;
use crate::router::Ctx;

/// The word that makes an input flagged.
pub const FLAG_WORD: &str = "kill";

const CATEGORIES: [&str; 11] = [
    "sexual",
    "hate",
    "harassment",
    "self-harm",
    "sexual/minors",
    "hate/threatening",
    "violence/graphic",
    "self-harm/intent",
    "self-harm/instructions",
    "harassment/threatening",
    "violence",
];

/// Answers `POST /v1/moderations`.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    match respond(&req.body, &ctx.id("modr-")) {
        Ok(body) => Plan::json(body),
        Err(e) => e.plan(),
    }
}

fn verdict(text: &str) -> Value {
    let flagged = text
        .split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(FLAG_WORD));
    let hit = |c: &str| flagged && (c == "violence" || c == "harassment/threatening");
    let categories: Map<String, Value> = CATEGORIES
        .iter()
        .map(|c| ((*c).to_owned(), Value::Bool(hit(c))))
        .collect();
    let scores: Map<String, Value> = CATEGORIES
        .iter()
        .map(|c| ((*c).to_owned(), json!(if hit(c) { 0.97 } else { 0.0001 })))
        .collect();
    json!({"flagged": flagged, "categories": categories, "category_scores": scores})
}

fn respond(body: &[u8], id: &str) -> Result<Vec<u8>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::unparsable_body())?;
    let inputs: Vec<&str> = match value.get("input") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err(ApiError::unparsable_body()),
    };
    let model = value
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("omni-moderation-latest");
    let results: Vec<Value> = inputs.iter().map(|t| verdict(t)).collect();
    Ok(
        serde_json::to_vec(&json!({"id": id, "model": model, "results": results}))
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inputs_with_the_flag_word_are_flagged_in_the_documented_shape() {
        let out: Value = serde_json::from_slice(
            &respond(br#"{"input": ["I will KILL it", "skill"]}"#, "m").unwrap(),
        )
        .unwrap();
        assert_eq!(out["results"][0]["flagged"], true);
        assert_eq!(out["results"][0]["categories"]["violence"], true);
        assert_eq!(
            out["results"][1]["flagged"], false,
            "a word, not a substring"
        );
        let sample: Value = serde_json::from_str(include_str!(
            "../../../../testdata/providers/openai-moderations.response.json"
        ))
        .unwrap();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&out["results"][0]["categories"]),
            keys(&sample["results"][0]["categories"])
        );
        assert!(respond(b"{}", "m").is_err());
    }
}
