//! Error rendering compared with real provider error bodies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/providers")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The structure of a JSON value: object keys (recursively) and value kinds, not the values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::String(_) => Value::String("string".into()),
        Value::Null => Value::String("null-or-string".into()),
        other => other.clone(),
    }
}

fn rendered(err: &ClientError, protocol: ClientProtocol) -> Value {
    serde_json::from_slice(&err.render(protocol).body).unwrap()
}

#[test]
fn openai_errors_have_the_same_keys_as_real_openai_error_bodies() {
    let err = ClientError::invalid_request("Unsupported parameter")
        .with_param("max_tokens")
        .with_code("unsupported_parameter");
    let ours = rendered(&err, ClientProtocol::OpenAi);
    assert_eq!(
        shape(&ours),
        shape(&fixture("openai-chat-error-400.response.json"))
    );
    assert_eq!(ours["error"]["type"], "invalid_request_error");
    assert_eq!(ours["error"]["param"], "max_tokens");

    let not_found = ClientError::new(ErrorKind::NotFound, "The model `x` does not exist")
        .with_code("model_not_found");
    let real = fixture("openai-chat-error-404.response.json");
    let ours = rendered(&not_found, ClientProtocol::OpenAi);
    let mut real_shape = shape(&real);
    real_shape["error"]["param"] = "null-or-string".into();
    assert_eq!(shape(&ours), real_shape);
    assert_eq!(ours["error"]["type"], real["error"]["type"]);
    assert_eq!(not_found.render(ClientProtocol::OpenAi).status, 404);
}

#[test]
fn openai_errors_without_param_or_code_send_nulls_like_openai_does() {
    let ours = rendered(&ClientError::invalid_request("bad"), ClientProtocol::OpenAi);
    let real = fixture("openai-embeddings-error-400.response.json");
    assert_eq!(shape(&ours), shape(&real));
    assert!(ours["error"]["param"].is_null() && ours["error"]["code"].is_null());
}

#[test]
fn anthropic_errors_have_the_same_keys_and_type_names_as_real_anthropic_bodies() {
    for (kind, name) in [
        (
            ErrorKind::InvalidRequest,
            "anthropic-error-400.response.json",
        ),
        (ErrorKind::RateLimited, "anthropic-error-429.response.json"),
    ] {
        let real = fixture(name);
        let ours = rendered(&ClientError::new(kind, "m"), ClientProtocol::Anthropic);
        let mut real_shape = shape(&real);
        // `request_id` is assigned by Anthropic's servers; a gateway has none to give.
        real_shape.as_object_mut().unwrap().remove("request_id");
        assert_eq!(shape(&ours), real_shape, "{name}");
        assert_eq!(ours["error"]["type"], real["error"]["type"], "{name}");
    }
}

#[test]
fn every_kind_maps_to_the_documented_anthropic_type_and_status() {
    let table = [
        (ErrorKind::InvalidRequest, 400, "invalid_request_error"),
        (ErrorKind::Authentication, 401, "authentication_error"),
        (ErrorKind::PermissionDenied, 403, "permission_error"),
        (ErrorKind::NotFound, 404, "not_found_error"),
        (ErrorKind::RequestTooLarge, 413, "request_too_large"),
        (ErrorKind::RateLimited, 429, "rate_limit_error"),
        (ErrorKind::Internal, 500, "api_error"),
        (ErrorKind::BadGateway, 502, "api_error"),
        (ErrorKind::Overloaded, 503, "overloaded_error"),
        (ErrorKind::Timeout, 504, "timeout_error"),
    ];
    for (kind, status, name) in table {
        let r = ClientError::new(kind, "m").render(ClientProtocol::Anthropic);
        assert_eq!(r.status, status);
        assert_eq!(r.content_type, "application/json");
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], name);
        assert_eq!(ErrorKind::from_status(status), kind);
    }
    assert_eq!(ErrorKind::from_status(529), ErrorKind::Overloaded);
    assert_eq!(ErrorKind::from_status(422), ErrorKind::InvalidRequest);
    assert_eq!(ErrorKind::from_status(0), ErrorKind::Internal);
}

#[test]
fn messages_with_quotes_and_control_characters_stay_valid_json() {
    let err = ClientError::invalid_request("bad \"x\"\n\u{0}\u{1F600}").with_status(422);
    for protocol in [ClientProtocol::OpenAi, ClientProtocol::Anthropic] {
        let r = err.render(protocol);
        assert_eq!(r.status, 422);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["message"], "bad \"x\"\n\u{0}\u{1F600}");
    }
}

#[test]
fn protocol_follows_the_request_path() {
    assert_eq!(
        ClientProtocol::from_path("/v1/messages"),
        ClientProtocol::Anthropic
    );
    assert_eq!(
        ClientProtocol::from_path("/v1/messages?beta=true"),
        ClientProtocol::Anthropic
    );
    assert_eq!(
        ClientProtocol::from_path("/anthropic/v1/messages/"),
        ClientProtocol::Anthropic
    );
    assert_eq!(
        ClientProtocol::from_path("/v1/messages/count_tokens"),
        ClientProtocol::Anthropic
    );
    assert_eq!(
        ClientProtocol::from_path("/v1/chat/completions"),
        ClientProtocol::OpenAi
    );
    assert_eq!(
        ClientProtocol::from_path("/v1/threads/t1/messages"),
        ClientProtocol::OpenAi
    );
    assert_eq!(ClientProtocol::from_path(""), ClientProtocol::OpenAi);
}

#[test]
fn in_stream_errors_are_single_sse_events_in_the_callers_framing() {
    let err = ClientError::new(ErrorKind::Overloaded, "Overloaded");
    let a = err.to_sse_event(ClientProtocol::Anthropic);
    assert!(a.starts_with(b"event: error\ndata: {\"type\":\"error\""));
    assert!(a.ends_with(b"\n\n"));
    let o = err.to_sse_event(ClientProtocol::OpenAi);
    assert!(o.starts_with(b"data: {\"error\":"));
}
