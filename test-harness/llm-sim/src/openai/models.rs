//! `GET /v1/models` and `GET /v1/models/{id}`: a fixed list of simulated models.

use serde::Serialize;

use super::error::ApiError;
use crate::plan::Plan;
use crate::request::SimRequest;
use crate::router::Ctx;

/// Models the simulator lists. Any model name is accepted by the other endpoints.
pub const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "gpt-5-nano",
    "sim-chat",
    "text-embedding-3-small",
    "sim-embedding",
];

/// Fixed `created` time of the listed models (deterministic output).
const MODELS_CREATED: u64 = 1_700_000_000;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

fn model(id: &str) -> Model<'_> {
    Model {
        id,
        object: "model",
        created: MODELS_CREATED,
        owned_by: "llm-sim",
    }
}

/// `GET /v1/models`.
pub fn list(_req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let body = List {
        object: "list",
        data: MODELS.iter().map(|id| model(id)).collect(),
    };
    Plan::json(serde_json::to_vec_pretty(&body).unwrap_or_default())
}

/// `GET /v1/models/{id}`: any listed model; others are OpenAI's `model_not_found` 404.
pub fn retrieve(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let id = req.params.first().map(String::as_str).unwrap_or_default();
    if !MODELS.contains(&id) {
        return ApiError {
            status: 404,
            message: format!("The model '{id}' does not exist"),
            kind: "invalid_request_error",
            param: Some("model".to_string()),
            code: Some("model_not_found"),
        }
        .plan();
    }
    Plan::json(serde_json::to_vec_pretty(&model(id)).unwrap_or_default())
}
