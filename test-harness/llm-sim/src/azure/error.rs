//! Azure OpenAI's error bodies: its gateway's own `{"error":{"code":"401","message":…}}` for
//! credentials, missing routes and rate limits; OpenAI's shape (from the model service) otherwise;
//! and the content-filter 400 of the Azure documentation.

use serde::Serialize;

use crate::openai;
use crate::plan::{Plan, JSON};

/// The 401 message Azure's gateway sends for a missing or wrong key.
pub const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong API \
endpoint. Make sure to provide a valid key for an active subscription and use a correct regional \
API endpoint for your resource.";

/// The 429 message (rate limit of the deployment).
pub const RATE_LIMITED: &str = "Requests to the ChatCompletions_Create Operation under Azure \
OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing \
tier. Please retry after 1 second. Please go here: https://aka.ms/oai/quotaincrease if you would \
like to further increase the default rate limit.";

#[derive(Serialize)]
struct Envelope<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

fn gateway(status: u16, message: &str) -> Plan {
    let code = status.to_string();
    let body = Envelope {
        error: Detail {
            code: &code,
            message,
        },
    };
    Plan::full(
        status,
        JSON,
        serde_json::to_vec(&body).unwrap_or_default(),
        0,
    )
}

/// An error of any status as Azure sends it; without a message, the usual one for the status.
pub fn shaped(status: u16, message: Option<&str>) -> Plan {
    match status {
        401 => gateway(401, message.unwrap_or(ACCESS_DENIED)),
        404 => gateway(404, message.unwrap_or("Resource not found")),
        429 => gateway(429, message.unwrap_or(RATE_LIMITED)),
        _ => openai::error::shaped(status, message),
    }
}

/// The exact 404 body Azure sends for unknown URLs and a missing `api-version` (note the space
/// after the second colon).
pub fn resource_not_found() -> Plan {
    Plan::full(
        404,
        JSON,
        br#"{"error":{"code":"404","message": "Resource not found"}}"#.to_vec(),
        0,
    )
}
