//! Bedrock's error shape (REST-JSON protocol): body `{"message": "..."}`, error type in the
//! `x-amzn-errortype` header (`Type:namespace`; clients cut it at the colon), and an
//! `x-amzn-requestid` header.

use serde::Serialize;

use crate::plan::{Plan, JSON};
use crate::reply::fnv1a;

/// Namespace suffix of `x-amzn-errortype` values.
const NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
}

/// The exception type and usual message Bedrock uses for an HTTP status.
pub fn defaults_for(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        ),
        403 => (
            "AccessDeniedException",
            "You don't have access to the model with the specified model ID.",
        ),
        404 => (
            "ResourceNotFoundException",
            "Could not resolve the foundation model from the provided model identifier.",
        ),
        408 => (
            "ModelTimeoutException",
            "Model has timed out in processing the request. Try your request again.",
        ),
        424 => (
            "ModelErrorException",
            "The model returned an error (simulated).",
        ),
        429 => (
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        ),
        500 => (
            "InternalServerException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        503 => (
            "ServiceUnavailableException",
            "Bedrock is unable to process your request.",
        ),
        s if s >= 500 => (
            "InternalServerException",
            "The system encountered an unexpected error during processing. Try your request again.",
        ),
        _ => (
            "ValidationException",
            "Malformed input request, please reformat your input and try again.",
        ),
    }
}

/// An error of any status in Bedrock's shape; without a message, the usual one for the status.
pub fn shaped(status: u16, message: Option<&str>) -> Plan {
    let (kind, default_message) = defaults_for(status);
    typed(status, kind, message.unwrap_or(default_message))
}

/// An error with an explicit exception type.
pub fn typed(status: u16, kind: &str, message: &str) -> Plan {
    let body = serde_json::to_vec(&Body { message }).unwrap_or_default();
    Plan::full(status, JSON, body, 0)
        .with_header(
            "x-amzn-requestid",
            request_id(&format!("{status}{kind}{message}")),
        )
        .with_header("x-amzn-errortype", format!("{kind}:{NAMESPACE}"))
}

/// A request id in AWS's UUID form, derived from `seed`.
pub fn request_id(seed: &str) -> String {
    let h = fnv1a(seed.as_bytes());
    let l = crate::reply::splitmix64(h);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xffff,
        l >> 48,
        l & 0xffff_ffff_ffff
    )
}
