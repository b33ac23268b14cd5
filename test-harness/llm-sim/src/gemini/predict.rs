//! Vertex AI text embeddings, `…/publishers/google/models/{model}:predict`: each
//! `instances[].content` gets the same deterministic unit vector as the other embeddings routes,
//! `parameters.outputDimensionality` sets the width (default 16), and each prediction carries
//! `statistics.token_count` (one per word) as Vertex reports it.

use serde::Serialize;
use serde_json::Value;

use super::error::{self, JSON_UTF8};
use crate::plan::Plan;
use crate::reply::{count_tokens, embed, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::request::SimRequest;
use crate::router::Ctx;

#[derive(Serialize)]
struct Statistics {
    truncated: bool,
    token_count: u64,
}

#[derive(Serialize)]
struct Embeddings {
    statistics: Statistics,
    values: Vec<f32>,
}

#[derive(Serialize)]
struct Prediction {
    embeddings: Embeddings,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    billable_character_count: usize,
}

#[derive(Serialize)]
struct Answer {
    predictions: Vec<Prediction>,
    metadata: Metadata,
}

/// `:predict` for a text-embedding model.
pub fn predict(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    match answer(&req.body) {
        Ok(a) => Plan::full(
            200,
            JSON_UTF8,
            serde_json::to_vec_pretty(&a).unwrap_or_default(),
            0,
        ),
        Err(msg) => error::invalid(&msg),
    }
}

/// The answer for a request body, or the message of Google's 400.
fn answer(body: &[u8]) -> Result<Answer, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid JSON payload received. {e}"))?;
    let Some(Value::Array(instances)) = value.get("instances") else {
        return Err("* PredictRequest.instances: instances is not specified\n".into());
    };
    if instances.is_empty() {
        return Err("* PredictRequest.instances: at least one instance is required\n".into());
    }
    let dims = match value.pointer("/parameters/outputDimensionality") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return Err(format!(
                    "* parameters.outputDimensionality: must be between 1 and {MAX_DIMENSIONS}\n"
                ))
            }
        },
    };
    let mut predictions = Vec::with_capacity(instances.len());
    let mut characters = 0usize;
    for (i, instance) in instances.iter().enumerate() {
        let Some(text) = instance.get("content").and_then(Value::as_str) else {
            return Err(format!(
                "* PredictRequest.instances[{i}].content: content is not specified\n"
            ));
        };
        characters = characters.saturating_add(text.chars().count());
        predictions.push(Prediction {
            embeddings: Embeddings {
                statistics: Statistics {
                    truncated: false,
                    token_count: count_tokens(text),
                },
                values: embed(text, dims),
            },
        });
    }
    Ok(Answer {
        predictions,
        metadata: Metadata {
            billable_character_count: characters,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Credentials;
    use crate::router::{lookup, Lookup};

    const PATH: &str =
        "/v1/projects/p/locations/us-central1/publishers/google/models/text-embedding-005:predict";

    #[test]
    fn each_instance_gets_its_own_vector_in_order_with_a_token_count() {
        let body = br#"{"instances":[{"content":"a b"},{"content":"c"}],"parameters":{"outputDimensionality":8}}"#;
        let a = answer(body).unwrap();
        assert_eq!(a.predictions.len(), 2);
        assert_eq!(a.predictions[0].embeddings.values, embed("a b", 8));
        assert_eq!(a.predictions[1].embeddings.values, embed("c", 8));
        assert_eq!(a.predictions[0].embeddings.statistics.token_count, 2);
        assert_eq!(a.metadata.billable_character_count, 4);
        let plain = answer(br#"{"instances":[{"content":"x"}]}"#).unwrap();
        assert_eq!(
            plain.predictions[0].embeddings.values.len(),
            DEFAULT_DIMENSIONS
        );
    }

    #[test]
    fn bad_bodies_are_refused_with_a_message() {
        for bad in [
            &b"nope"[..],
            br#"{"instances":[]}"#,
            br#"{"instances":[{"text":"a"}]}"#,
            br#"{"instances":[{"content":"a"}],"parameters":{"outputDimensionality":0}}"#,
        ] {
            assert!(answer(bad).is_err());
        }
    }

    #[test]
    fn the_predict_route_requires_a_vertex_bearer_token() {
        let Lookup::Found(route, params) = lookup(&super::super::routes(), "POST", PATH) else {
            panic!("no :predict route");
        };
        assert_eq!(
            params.last().map(String::as_str),
            Some("text-embedding-005")
        );
        let check = route.auth.unwrap();
        let req = SimRequest {
            method: "POST".into(),
            path: PATH.into(),
            query: String::new(),
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::new(),
            params: vec![],
        };
        assert_eq!(
            check(&req, &Credentials::default()).unwrap_err().status(),
            401
        );
    }
}
