//! Gemini API provider tests: paths, model ids, unsupported APIs and the API-key header.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aigw_shared::llm::Api;
use serde_json::json;

use super::Gemini;
use crate::provider::{ApiCall, UpstreamCall, Vendor};

fn call(api: Api, model: &str, stream: bool) -> ApiCall<'_> {
    ApiCall {
        api,
        suffix: "/chat/completions",
        model,
        stream,
    }
}

#[test]
fn chat_goes_to_generate_content_and_streams_to_the_sse_method() {
    let g = Gemini::build(&json!({})).unwrap();
    let base = g.default_base_path();
    assert_eq!(
        g.default_authority(),
        Some("generativelanguage.googleapis.com")
    );
    let path = |api, model, stream| g.path(base, &call(api, model, stream)).unwrap();
    assert_eq!(
        path(Api::ChatCompletions, "gemini-2.0-flash", false),
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        path(Api::AnthropicMessages, "gemini-2.0-flash-exp", true),
        "/v1beta/models/gemini-2.0-flash-exp:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        path(Api::ChatCompletions, "models/gemini-2.5-pro", false),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    assert_eq!(
        path(Api::ChatCompletions, "tunedModels/my-model-1", false),
        "/v1beta/tunedModels/my-model-1:generateContent"
    );
}

#[test]
fn model_ids_that_could_change_the_path_and_other_apis_are_refused() {
    let g = Gemini::build(&json!({})).unwrap();
    for bad in ["", "a/b", "../x", "m?alt=json", "x#y", "a b"] {
        let e = g
            .path("/v1beta", &call(Api::ChatCompletions, bad, false))
            .unwrap_err();
        assert_eq!(
            (e.status, e.param.as_deref()),
            (400, Some("model")),
            "{bad:?}"
        );
    }
    assert_eq!(
        g.path(
            "/v1beta",
            &call(Api::Embeddings, "gemini-embedding-001", false)
        )
        .unwrap(),
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert!(g
        .path("/v1beta", &call(Api::Embeddings, "../x", false))
        .is_err());
    let e = g
        .path("/v1beta", &call(Api::Completions, "m", false))
        .unwrap_err();
    assert_eq!(e.code.as_deref(), Some("unsupported_api"));
    assert!(Gemini::build(&json!({"apiVersion": "v1"})).is_err());
}

#[test]
fn api_keys_go_out_as_x_goog_api_key() {
    let g = Gemini::build(&json!({})).unwrap();
    let mut c = UpstreamCall::default();
    g.authorize(&mut c, Some("AIza-test")).unwrap();
    g.sign(&mut c, 0).unwrap();
    assert_eq!(
        c.headers,
        [("x-goog-api-key".to_owned(), "AIza-test".to_owned())]
    );
}
