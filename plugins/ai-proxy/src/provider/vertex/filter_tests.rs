//! Vertex service accounts through the whole filter on a mock worker: the first request waits
//! for the token callout and goes out with `Authorization: Bearer <token>`, the next one reuses
//! the worker's cached token without a callout, the worker's tick refreshes a token near expiry
//! from the root, a failed fetch is a 503 in the client's shape, and a client that goes away
//! while its fetch is pending does not block the next request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use aigw_shared::host::{CallResponse, Capabilities};
use aigw_shared::mock::{Callout, Exchange, Gateway, Outcome};
use aigw_shared::plugin::Reply;
use serde_json::{json, Value};

use crate::Proxy;

const TOKEN_ANSWER: &[u8] =
    br#"{"access_token":"ya29.sa-token","expires_in":3600,"token_type":"Bearer"}"#;

fn config() -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vertex/service-account.test-only.json");
    let key: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    json!({
        "providers": [{"name": "vertex", "type": "vertex", "options": {
            "project": "my-proj", "location": "us-central1",
            "serviceAccountKey": key, "tokenCluster": "google-oauth"}}],
        "models": [{"match": "*", "provider": "vertex", "target": "gemini-2.0-flash"}]
    })
    .to_string()
}

fn answer(status: Option<u16>, body: &[u8]) -> Reply {
    Reply::Http(CallResponse {
        status,
        headers: Vec::new(),
        body: body.to_vec(),
    })
}

fn request(path: &str) -> Exchange {
    let body = if path.ends_with("/messages") {
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    };
    Exchange::post_json(path, &body.to_string())
}

fn worker() -> Gateway<Proxy> {
    Gateway::new(&config(), Capabilities::FULL)
}

fn chat(gw: &mut Gateway<Proxy>, token: &'static [u8]) -> Outcome {
    gw.run(request("/v1/chat/completions").answer(move |_| Some(answer(Some(200), token))))
}

#[test]
fn the_first_request_waits_for_the_token_and_the_next_reuses_it_without_a_callout() {
    let mut gw = worker();
    let out = chat(&mut gw, TOKEN_ANSWER);
    assert_eq!(out.callouts.len(), 1, "one token callout");
    let call = &out.callouts[0];
    assert_eq!(call.upstream, "google-oauth");
    let h = |k: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(h(":method").as_deref(), Some("POST"));
    assert_eq!(h(":path").as_deref(), Some("/token"));
    assert_eq!(h(":authority").as_deref(), Some("oauth2.googleapis.com"));
    assert_eq!(
        h("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let form = String::from_utf8(call.body.clone().unwrap()).unwrap();
    assert!(form.contains("grant_type=urn"), "{form}");
    assert!(form.contains("assertion="), "{form}");
    assert!(out.stalled.is_none(), "{:?}", out.stalled);
    assert_eq!(
        out.upstream_header("authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
    assert_eq!(
        out.upstream_header(":path").as_deref(),
        Some("/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent")
    );
    assert_eq!(
        out.upstream_header(":authority").as_deref(),
        Some("us-central1-aiplatform.googleapis.com")
    );

    let again = chat(&mut gw, b"unused");
    assert!(
        again.callouts.is_empty(),
        "the worker's token is used at once"
    );
    assert_eq!(
        again.upstream_header("authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
}

#[test]
fn a_refused_token_fetch_is_a_503_in_the_clients_shape_without_the_account_name() {
    let mut gw = worker();
    let refused = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    let out = gw.run(request("/v1/messages").answer(|_| Some(answer(Some(400), refused))));
    let reply = out.local_response.clone().unwrap();
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["type"], "error", "Anthropic error shape: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{body}");
    assert!(!message.contains("iam.gserviceaccount.com"), "{body}");
    assert!(out.upstream_headers.is_none());
    assert!(
        out.warnings().iter().any(|w| w.contains("provider vertex")),
        "the operator's log names the provider: {:?}",
        out.warnings()
    );
}

#[test]
fn a_callout_without_an_answer_is_a_503_for_an_openai_client() {
    let mut gw = worker();
    let out = gw.run(request("/v1/chat/completions").answer(|_| Some(answer(None, b""))));
    let reply = out.local_response.clone().unwrap();
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[test]
fn the_workers_tick_refreshes_a_token_near_expiry_while_requests_keep_using_it() {
    let fresh: &'static [u8] = br#"{"access_token":"ya29.fresh","expires_in":3600}"#;
    let mut gw = worker().answer(move |c: &Callout| {
        assert_eq!(c.upstream, "google-oauth");
        Some(answer(Some(200), fresh))
    });
    chat(&mut gw, TOKEN_ANSWER);
    assert!(gw.root_host().state.borrow().callouts.is_empty());

    // Ticks while the token is fresh fetch nothing; just before the refresh window (300 s
    // before expiry) a request uses the token and starts no callout.
    gw.advance(Duration::from_secs(3290));
    assert!(gw.root_host().state.borrow().callouts.is_empty());
    let out = chat(&mut gw, b"unused");
    assert!(out.callouts.is_empty());
    assert_eq!(
        out.upstream_header("authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
    // The tick inside the window refreshes from the root; later requests get the new token.
    assert_eq!(gw.advance(Duration::from_secs(15)), 3);
    assert_eq!(gw.root_host().state.borrow().callouts.len(), 1);
    let out = chat(&mut gw, b"unused");
    assert!(out.callouts.is_empty());
    assert_eq!(
        out.upstream_header("authorization").as_deref(),
        Some("Bearer ya29.fresh")
    );
}

#[test]
fn a_client_gone_while_its_token_fetch_is_pending_does_not_block_the_next_request() {
    let mut gw = worker();
    let gone = gw.run(request("/v1/chat/completions").answer(|_| None));
    assert_eq!(gone.callouts.len(), 1);
    assert!(gone.stalled.is_some(), "held until the client went away");
    // The stream ended with its fetch pending; the next request fetches at once and succeeds.
    let out = chat(&mut gw, TOKEN_ANSWER);
    assert_eq!(out.callouts.len(), 1);
    assert_eq!(
        out.upstream_header("authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
}
