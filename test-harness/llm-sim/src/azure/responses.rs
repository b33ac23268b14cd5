//! Azure OpenAI's Responses API: the v1 form `POST /openai/v1/responses` (no `api-version`) and
//! the dated form `POST /openai/responses?api-version=…` (Microsoft Learn, "Azure OpenAI Responses
//! API"; the `AzureOpenAI` clients post there, outside `/deployments/`). The body's `model` is the
//! deployment name; the answer is OpenAI's Responses object or event stream
//! ([`crate::openai::responses`], checked against the recorded `openai-responses-*` samples) with
//! the headers Azure adds to every answer.

use super::{check_api_version, error};
use crate::openai;
use crate::plan::Plan;
use crate::request::SimRequest;
use crate::router::Ctx;

/// `POST /openai/v1/responses`.
pub fn handle_v1(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    answer(req, ctx)
}

/// `POST /openai/responses?api-version=…`: without `api-version` Azure's gateway does not know the
/// URL.
pub fn handle_versioned(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    if let Err(plan) = check_api_version(req) {
        return plan;
    }
    answer(req, ctx)
}

fn answer(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let deployment = serde_json::from_slice::<serde_json::Value>(&req.body)
        .ok()
        .and_then(|v| v.get("model")?.as_str().map(str::to_owned));
    let Some(deployment) = deployment.filter(|d| !d.is_empty()) else {
        // Azure names the deployment it cannot find; with no model there is none.
        return error::shaped(
            404,
            Some("The API deployment for this resource does not exist."),
        );
    };
    openai::responses::handle(req, ctx)
        .with_header("apim-request-id", ctx.id(""))
        .with_header("x-ms-region", "Simulated Region")
        .with_header("x-ms-deployment-name", deployment)
}
