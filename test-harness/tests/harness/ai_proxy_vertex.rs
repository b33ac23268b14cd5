//! The built `ai_proxy.wasm` with a Vertex AI provider authenticated by a service account (Envoy
//! profile): the first request waits for the token endpoint (answered by a callout handler on the
//! `google-oauth` cluster), goes out with `Authorization: Bearer <token>`, and a second request
//! reuses the cached token without another callout; a refused fetch is a 503 in the client's shape.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aigw_harness::{
    wasm_path, CalloutOutcome, CalloutRequest, Chain, Env, PluginSpec, Request, UpstreamRequest,
    UpstreamResponse,
};
use serde_json::{json, Value};

fn config() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/ai-proxy/testdata/vertex/service-account.test-only.json");
    let key: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    json!({
        "providers": [{"name": "vertex", "type": "vertex", "cluster": "vertex", "options": {
            "project": "my-proj", "location": "us-central1",
            "serviceAccountKey": key, "tokenCluster": "google-oauth"}}],
        "models": [{"match": "*", "provider": "vertex", "target": "gemini-2.0-flash"}]
    })
    .to_string()
}

fn chain(env: &Env) -> Chain {
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    Chain::new(env)
        .with(
            PluginSpec::new(wasm)
                .config(config())
                .headers_stop_iteration(true),
        )
        .unwrap()
}

fn gemini_answer() -> UpstreamResponse {
    UpstreamResponse::json(
        200,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi there"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":2,"totalTokenCount":4}}"#,
    )
}

const CHAT: &str = r#"{"model":"flash","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn a_service_account_token_is_fetched_once_and_sent_as_a_bearer_token_on_every_request() {
    let env = Env::new();
    let calls: Arc<Mutex<Vec<CalloutRequest>>> = Arc::default();
    let seen = Arc::clone(&calls);
    env.on_callout(move |r: &CalloutRequest| {
        seen.lock().unwrap().push(r.clone());
        CalloutOutcome::ok(
            200,
            "application/json",
            r#"{"access_token":"ya29.harness","expires_in":3600,"token_type":"Bearer"}"#,
        )
    });
    let mut chain = chain(&env);
    for round in 0..2 {
        let mut upstream: Option<UpstreamRequest> = None;
        let out = chain
            .run(
                &Request::post_json("/v1/chat/completions", CHAT)
                    .header("authorization", "Bearer client-secret"),
                &mut |up: &UpstreamRequest| {
                    upstream = Some(up.clone());
                    gemini_answer()
                },
            )
            .unwrap();
        assert_eq!(
            out.status,
            200,
            "round {round}: {}",
            String::from_utf8_lossy(&out.body)
        );
        let up = upstream.expect("reached Vertex");
        assert_eq!(
            up.header("authorization").as_deref(),
            Some("Bearer ya29.harness"),
            "round {round}"
        );
        assert_eq!(
            up.header(":path").as_deref(),
            Some("/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent")
        );
        let sent: Value = serde_json::from_slice(&up.body).unwrap_or(Value::Null);
        assert!(
            sent["contents"].is_array(),
            "round {round}: the request held for the token keeps its body: {sent}"
        );
        let json: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(json["choices"][0]["message"]["content"], "hi there");
    }
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1, "the second request reuses the cached token");
    let call = &calls[0];
    assert_eq!(call.cluster, "google-oauth");
    assert_eq!(call.header(":path").as_deref(), Some("/token"));
    assert_eq!(
        call.header(":authority").as_deref(),
        Some("oauth2.googleapis.com")
    );
    assert_eq!(
        call.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let form = String::from_utf8(call.body.clone()).unwrap();
    assert!(form.starts_with("grant_type=urn"), "{form}");
}

#[test]
fn a_refused_token_fetch_answers_an_anthropic_client_with_a_503_and_never_calls_vertex() {
    let env = Env::new();
    env.on_callout(|_: &CalloutRequest| {
        CalloutOutcome::ok(400, "application/json", r#"{"error":"invalid_grant"}"#)
    });
    let mut chain = chain(&env);
    let body = r#"{"model":"flash","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut called = false;
    let out = chain
        .run(
            &Request::post_json("/v1/messages", body),
            &mut |_: &UpstreamRequest| {
                called = true;
                gemini_answer()
            },
        )
        .unwrap();
    assert!(!called, "Vertex must not be called without a token");
    assert_eq!(out.status, 503);
    let json: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(json["type"], "error", "{json}");
}

#[test]
fn the_workers_tick_refreshes_the_token_before_it_expires_without_a_request() {
    let env = Env::new();
    let calls: Arc<Mutex<u32>> = Arc::default();
    let seen = Arc::clone(&calls);
    env.on_callout(move |_: &CalloutRequest| {
        let mut n = seen.lock().unwrap();
        *n += 1;
        let body =
            format!(r#"{{"access_token":"ya29.t{n}","expires_in":3600,"token_type":"Bearer"}}"#);
        CalloutOutcome::ok(200, "application/json", body)
    });
    let mut chain = chain(&env);
    let bearer = |chain: &mut aigw_harness::Chain| {
        let mut auth = None;
        chain
            .run(
                &Request::post_json("/v1/chat/completions", CHAT),
                &mut |up: &UpstreamRequest| {
                    auth = up.header("authorization");
                    gemini_answer()
                },
            )
            .unwrap();
        auth
    };
    assert_eq!(bearer(&mut chain).as_deref(), Some("Bearer ya29.t1"));
    chain.advance(std::time::Duration::from_secs(3200)).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "no refresh while the token is fresh"
    );
    chain.advance(std::time::Duration::from_secs(120)).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        2,
        "the tick refreshed it from the root"
    );
    assert_eq!(bearer(&mut chain).as_deref(), Some("Bearer ya29.t2"));
    assert_eq!(
        *calls.lock().unwrap(),
        2,
        "requests never waited for the refresh"
    );
}
