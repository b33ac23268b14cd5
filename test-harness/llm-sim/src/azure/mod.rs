//! Azure OpenAI: `/openai/deployments/{deployment}/chat/completions` and `/embeddings` with
//! `?api-version=…` and an `api-key` header, Azure's content-filter annotations
//! (`prompt_filter_results`, `content_filter_results`) and its content-filter 400; the Responses
//! API on `/openai/v1/responses` and `/openai/responses?api-version=…` ([`responses`]).

pub mod chat;
pub mod error;
pub mod filter;
pub mod responses;
pub mod stream;

use crate::auth::{self, query_param};
use crate::openai;
use crate::plan::Plan;
use crate::request::SimRequest;
use crate::router::{Ctx, Kind, Route};

/// The Azure OpenAI routes.
pub fn routes() -> Vec<Route> {
    let kind = Kind::Model(error::shaped);
    vec![
        Route {
            method: "POST",
            pattern: "/openai/deployments/{deployment}/chat/completions",
            handler: chat::handle,
            kind,
            auth: Some(auth::azure),
        },
        Route {
            method: "POST",
            pattern: "/openai/deployments/{deployment}/embeddings",
            handler: embeddings,
            kind,
            auth: Some(auth::azure),
        },
        Route {
            method: "POST",
            pattern: "/openai/v1/responses",
            handler: responses::handle_v1,
            kind,
            auth: Some(auth::azure),
        },
        Route {
            method: "POST",
            pattern: "/openai/responses",
            handler: responses::handle_versioned,
            kind,
            auth: Some(auth::azure),
        },
    ]
}

/// Azure's answer when `api-version` is missing: the gateway in front of the deployments does not
/// know the URL.
pub fn check_api_version(req: &SimRequest) -> Result<(), Plan> {
    match query_param(req, "api-version") {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(error::resource_not_found()),
    }
}

/// The deployment name from the path.
pub fn deployment(req: &SimRequest) -> &str {
    req.params.first().map(String::as_str).unwrap_or_default()
}

/// Response headers Azure adds to every deployment answer.
pub fn decorate(plan: Plan, req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    plan.with_header("apim-request-id", ctx.id(""))
        .with_header("x-ms-region", "Simulated Region")
        .with_header("x-ms-deployment-name", deployment(req))
        .with_header("x-ms-rai-invoked", "true")
}

fn embeddings(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    if let Err(plan) = check_api_version(req) {
        return plan;
    }
    let body = with_model(req);
    let inner = SimRequest {
        body: body.into(),
        ..req.clone()
    };
    decorate(openai::embeddings::handle(&inner, ctx), req, ctx)
}

/// The request body with `model` set to the deployment name when the caller left it out (Azure
/// takes the model from the deployment).
pub fn with_model(req: &SimRequest) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&req.body) {
        Ok(serde_json::Value::Object(mut obj)) => {
            if !obj.contains_key("model") {
                obj.insert("model".into(), deployment(req).into());
            }
            serde_json::to_vec(&obj).unwrap_or_default()
        }
        _ => req.body.to_vec(),
    }
}
