//! `:embedContent` (`{"embedding":{"values":[…]}}`) and `:batchEmbedContents`
//! (`{"embeddings":[{"values":[…]}, …]}`): the same deterministic unit vectors as OpenAI's
//! embeddings, of the text parts joined by newlines; `outputDimensionality` sets the width
//! (default 16).

use serde::Serialize;
use serde_json::Value;

use super::error::{self, JSON_UTF8};
use super::request::parts_text;
use crate::plan::Plan;
use crate::reply::{embed, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::request::SimRequest;
use crate::router::Ctx;

#[derive(Serialize)]
struct Values {
    values: Vec<f32>,
}

#[derive(Serialize)]
struct Single {
    embedding: Values,
}

#[derive(Serialize)]
struct Batch {
    embeddings: Vec<Values>,
}

/// `:embedContent`.
pub fn single(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let value = match body(req) {
        Ok(v) => v,
        Err(plan) => return plan,
    };
    match one(&value, "EmbedContentRequest") {
        Ok(values) => ok(&Single { embedding: values }),
        Err(msg) => error::invalid(&msg),
    }
}

/// `:batchEmbedContents`.
pub fn batch(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let value = match body(req) {
        Ok(v) => v,
        Err(plan) => return plan,
    };
    let Some(Value::Array(requests)) = value.get("requests") else {
        return error::invalid("* BatchEmbedContentsRequest.requests: requests is not specified\n");
    };
    let mut embeddings = Vec::with_capacity(requests.len());
    for (i, r) in requests.iter().enumerate() {
        match one(r, &format!("BatchEmbedContentsRequest.requests[{i}]")) {
            Ok(v) => embeddings.push(v),
            Err(msg) => return error::invalid(&msg),
        }
    }
    ok(&Batch { embeddings })
}

fn body(req: &SimRequest) -> Result<Value, Plan> {
    serde_json::from_slice(&req.body)
        .map_err(|e| error::invalid(&format!("Invalid JSON payload received. {e}")))
}

fn one(request: &Value, what: &str) -> Result<Values, String> {
    let content = request
        .get("content")
        .ok_or_else(|| format!("* {what}.content: content is not specified\n"))?;
    let dims = match request.get("outputDimensionality") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(v) => match v.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return Err(format!(
                    "* {what}.output_dimensionality: must be between 1 and {MAX_DIMENSIONS}\n"
                ))
            }
        },
    };
    Ok(Values {
        values: embed(&parts_text(content), dims),
    })
}

fn ok<T: Serialize>(body: &T) -> Plan {
    Plan::full(
        200,
        JSON_UTF8,
        serde_json::to_vec_pretty(body).unwrap_or_default(),
        0,
    )
}
