//! `GET /v1/models` and `GET /v1/models/{id}` answered from the configured models, in the shape
//! of the client that asks: OpenAI's list, or Anthropic's (`anthropic-version` or an `x-api-key`
//! without `authorization`, as the Anthropic SDK sends); an unknown id is a 404 in that shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ai_proxy::Proxy;
use aigw_shared::mock::{Exchange, Outcome};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant"]},
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-oai"]}
  ],
  "models": [
    {"match": "claude-haiku-4-5", "provider": "claude"},
    {"match": "claude-*", "provider": "claude"},
    {"match": "gpt-5-nano", "provider": "oai"}
  ]
}"#;

fn answer(out: &Outcome) -> (u16, Value) {
    let local = out
        .local_response
        .as_ref()
        .expect("answered by the gateway");
    assert!(out.upstream_headers.is_none(), "nothing went upstream");
    (local.status, serde_json::from_slice(&local.body).unwrap())
}

fn get(path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut ex = Exchange::get(path);
    for (k, v) in headers {
        ex = ex.header(k, v);
    }
    answer(&ex.run::<Proxy>(CONFIG))
}

const ANTHROPIC: &[(&str, &str)] = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];

#[test]
fn an_openai_client_gets_the_openai_list_of_the_named_models() {
    let (status, body) = get("/v1/models", &[("authorization", "Bearer k")]);
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-haiku-4-5", "gpt-5-nano"], "exact names only");
    assert_eq!(body["data"][1]["owned_by"], "oai");
}

#[test]
fn an_anthropic_client_gets_the_anthropic_list() {
    for headers in [ANTHROPIC, &[("x-api-key", "k")][..]] {
        let (status, body) = get("/v1/models", headers);
        assert_eq!(status, 200);
        assert_eq!(body["has_more"], false);
        assert_eq!(body["first_id"], "claude-haiku-4-5");
        assert_eq!(body["last_id"], "gpt-5-nano");
        let first = &body["data"][0];
        assert_eq!(first["type"], "model");
        assert_eq!(first["id"], "claude-haiku-4-5");
        assert!(first["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(body.get("object").is_none());
    }
}

#[test]
fn one_model_is_answered_alone_and_an_unknown_one_is_a_404_in_the_callers_shape() {
    let (status, body) = get("/v1/models/gpt-5-nano", &[]);
    assert_eq!((status, body["id"].as_str()), (200, Some("gpt-5-nano")));
    assert_eq!(body["object"], "model");
    let (status, body) = get("/v1/models/claude-haiku-4-5/", ANTHROPIC);
    assert_eq!((status, body["type"].as_str()), (200, Some("model")));

    let (status, body) = get("/v1/models/nope", &[]);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    let (status, body) = get("/v1/models/nope", ANTHROPIC);
    assert_eq!(status, 404);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");
}
