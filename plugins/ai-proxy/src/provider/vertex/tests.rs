//! Vertex AI provider tests: config validation, regional and global hosts, paths, static tokens,
//! and the service account's cached OAuth token put on the call at signing time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aigw_shared::llm::Api;
use serde_json::{json, Value};

use super::Vertex;
use crate::provider::auth::TokenCache;
use crate::provider::{ApiCall, UpstreamCall, Vendor};

const NOW: i64 = 1_750_000_000;

fn key_file() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vertex/service-account.test-only.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn call(model: &str, stream: bool) -> ApiCall<'_> {
    ApiCall {
        api: Api::ChatCompletions,
        suffix: "/chat/completions",
        model,
        stream,
    }
}

#[test]
fn regional_and_global_locations_get_their_hosts_and_paths() {
    let v = Vertex::build(&json!({"project": "my-proj", "location": "europe-west4"})).unwrap();
    assert_eq!(
        v.default_authority(),
        Some("europe-west4-aiplatform.googleapis.com")
    );
    assert_eq!(
        v.path(v.default_base_path(), &call("gemini-2.5-flash", false)).unwrap(),
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    let g = Vertex::build(&json!({"project": "pydantic-ai", "location": "global"})).unwrap();
    assert_eq!(g.default_authority(), Some("aiplatform.googleapis.com"));
    assert_eq!(
        g.path("/v1beta1", &call("gemini-3-flash-preview", true)).unwrap(),
        "/v1beta1/projects/pydantic-ai/locations/global/publishers/google/models/gemini-3-flash-preview:streamGenerateContent?alt=sse"
    );
    assert!(g.path("/v1", &call("models/x", false)).is_err());
    let embed = ApiCall {
        api: Api::Embeddings,
        ..call("text-embedding-005", false)
    };
    assert_eq!(
        g.path("/v1", &embed).unwrap(),
        "/v1/projects/pydantic-ai/locations/global/publishers/google/models/text-embedding-005:predict"
    );
    let completions = ApiCall {
        api: Api::Completions,
        suffix: "/completions",
        ..call("gemini-2.5-flash", false)
    };
    assert_eq!(
        g.path("/v1", &completions).unwrap_err().code.as_deref(),
        Some("unsupported_api")
    );
}

#[test]
fn config_needs_a_project_and_location_and_a_usable_key_file() {
    let mut bad_key = key_file();
    bad_key["private_key"] = json!("not a key");
    for bad in [
        json!({"project": "p"}),
        json!({"location": "us-central1"}),
        json!({"project": "My Project", "location": "us-central1"}),
        json!({"project": "p", "location": "us/central1"}),
        json!({"project": "p", "location": "us-central1", "serviceAccountKey": bad_key}),
        json!({"project": "p", "location": "us-central1", "other": 1}),
    ] {
        assert!(Vertex::build(&bad).is_err(), "{bad}");
    }
    let v = Vertex::build(
        &json!({"project": "p", "location": "us-central1", "serviceAccountKey": key_file()}),
    )
    .unwrap();
    assert!(!format!("{v:?}").contains("PRIVATE KEY"));
}

#[test]
fn static_tokens_go_out_as_bearer_and_win_over_the_service_account() {
    let v = Vertex::build(
        &json!({"project": "p", "location": "us-central1", "serviceAccountKey": key_file()}),
    )
    .unwrap();
    let mut c = UpstreamCall::default();
    v.authorize(&mut c, Some("ya29.static")).unwrap();
    v.sign(&mut c, NOW).unwrap();
    assert_eq!(
        c.headers,
        [("authorization".to_owned(), "Bearer ya29.static".to_owned())]
    );
}

#[test]
fn the_service_accounts_token_is_sent_and_its_absence_is_a_503_without_the_account_name() {
    let v = Vertex::build(
        &json!({"project": "p", "location": "us-central1", "serviceAccountKey": key_file()}),
    )
    .unwrap();
    let mut c = UpstreamCall::default();
    v.authorize(&mut c, None).unwrap();
    let e = v.sign(&mut c, NOW).unwrap_err();
    assert_eq!(e.status, 503);
    assert!(
        !e.message.contains("iam.gserviceaccount.com"),
        "clients never see the service account: {}",
        e.message
    );
    let auth = v.auth().unwrap();
    let mut cache = TokenCache::default();
    assert!(auth.fetch(&mut cache, NOW, false).unwrap().is_some());
    auth.on_response(
        &mut cache,
        200,
        br#"{"access_token":"ya29.sa","expires_in":3600,"token_type":"Bearer"}"#,
        NOW,
    )
    .unwrap();
    let mut signed = UpstreamCall::default();
    v.authorize(&mut signed, cache.usable(NOW + 10)).unwrap();
    v.sign(&mut signed, NOW + 10).unwrap();
    assert_eq!(
        signed.headers,
        [("authorization".to_owned(), "Bearer ya29.sa".to_owned())]
    );
    assert_eq!(
        cache.usable(NOW + 3600),
        None,
        "an expired token is not used"
    );
}

#[test]
fn without_any_credential_nothing_is_added() {
    let v = Vertex::build(&json!({"project": "p", "location": "us-central1"})).unwrap();
    let mut c = UpstreamCall::default();
    v.authorize(&mut c, None).unwrap();
    v.sign(&mut c, NOW).unwrap();
    assert!(c.headers.is_empty());
}

#[test]
fn token_cluster_needs_a_service_account_and_a_name() {
    assert!(Vertex::build(
        &json!({"project": "p", "location": "us-central1", "tokenCluster": "c"})
    )
    .is_err());
    assert!(
        Vertex::build(&json!({"project": "p", "location": "us-central1",
        "serviceAccountKey": key_file(), "tokenCluster": ""}))
        .is_err()
    );
    let v = Vertex::build(&json!({"project": "p", "location": "us-central1",
        "serviceAccountKey": key_file(), "tokenCluster": "google-oauth"}))
    .unwrap();
    let need = v
        .token_fetch(&mut TokenCache::default(), NOW, false)
        .unwrap()
        .unwrap();
    assert_eq!(need.cluster, "google-oauth");
    assert!(need.wait, "no token yet");
    let default = Vertex::build(&json!({"project": "p", "location": "us-central1",
        "serviceAccountKey": key_file()}))
    .unwrap();
    assert_eq!(
        default
            .token_fetch(&mut TokenCache::default(), NOW, false)
            .unwrap()
            .unwrap()
            .cluster,
        "oauth2.googleapis.com"
    );
}
