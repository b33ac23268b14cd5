//! Vertex service accounts through the whole filter on the mock host: the first request waits
//! for the token callout and goes out with `Authorization: Bearer <token>`, the next one reuses
//! the cached token without a callout, and a failed fetch is a 503 in the client's shape.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::rc::Rc;

use aigw_shared::host::{Action, CallResponse, Capabilities, Direction, MapKind};
use aigw_shared::mock::MockHost;
use aigw_shared::plugin::{FilterDriver, FilterEnv, PluginConfig};
use serde_json::{json, Value};

use crate::Proxy;

const TOKEN_ANSWER: &[u8] =
    br#"{"access_token":"ya29.sa-token","expires_in":3600,"token_type":"Bearer"}"#;

fn config() -> Rc<PluginConfig<Proxy>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vertex/service-account.test-only.json");
    let key: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let cfg = json!({
        "providers": [{"name": "vertex", "type": "vertex", "options": {
            "project": "my-proj", "location": "us-central1",
            "serviceAccountKey": key, "tokenCluster": "google-oauth"}}],
        "models": [{"match": "*", "provider": "vertex", "target": "gemini-2.0-flash"}]
    });
    Rc::new(PluginConfig::parse(cfg.to_string().as_bytes()).unwrap())
}

/// Start a request `later` seconds after the mock clock's default and deliver its whole body;
/// returns the driver, the host and the body action.
fn start_at(
    config: &Rc<PluginConfig<Proxy>>,
    path: &str,
    later: u64,
) -> (FilterDriver<Proxy>, MockHost, Action) {
    let host = MockHost::default();
    host.state.borrow_mut().now_nanos += later * 1_000_000_000;
    let body = if path.ends_with("/messages") {
        json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
    } else {
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    };
    let body = body.to_string().into_bytes();
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"gateway".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        st.gate.open(MapKind::RequestHeaders);
    }
    let mut drv = FilterDriver::new(
        Rc::clone(config),
        FilterEnv {
            capabilities: Capabilities::FULL,
        },
    );
    assert_eq!(drv.on_request_headers(&host, false), Action::Pause);
    host.state.borrow_mut().request_body = body.clone();
    let action = drv.on_request_body(&host, body.len(), true);
    (drv, host, action)
}

fn start(config: &Rc<PluginConfig<Proxy>>, path: &str) -> (FilterDriver<Proxy>, MockHost, Action) {
    start_at(config, path, 0)
}

fn answer(body: &[u8]) -> CallResponse {
    CallResponse {
        status: Some(200),
        headers: Vec::new(),
        body: body.to_vec(),
    }
}

fn header(host: &MockHost, name: &str) -> Option<String> {
    host.state
        .borrow()
        .request_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
}

#[test]
fn the_first_request_waits_for_the_token_and_the_next_reuses_it_without_a_callout() {
    let config = config();
    let (mut drv, host, action) = start(&config, "/v1/chat/completions");
    assert_eq!(action, Action::Pause, "held until the token arrives");
    let call = host.state.borrow().callouts[0].clone();
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
    let form = String::from_utf8(call.body.unwrap()).unwrap();
    assert!(form.contains("grant_type=urn"), "{form}");
    assert!(form.contains("assertion="), "{form}");
    assert!(host.state.borrow().resumed.is_empty());

    let answer = CallResponse {
        status: Some(200),
        headers: Vec::new(),
        body: TOKEN_ANSWER.to_vec(),
    };
    drv.on_http_call_response(&host, call.token, answer);
    assert_eq!(host.state.borrow().resumed, [Direction::Request]);
    assert_eq!(
        header(&host, "authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
    assert_eq!(
        header(&host, ":path").as_deref(),
        Some("/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent")
    );
    assert_eq!(
        header(&host, ":authority").as_deref(),
        Some("us-central1-aiplatform.googleapis.com")
    );

    let (_drv2, host2, action2) = start(&config, "/v1/chat/completions");
    assert_eq!(
        action2,
        Action::Continue,
        "the cached token is used at once"
    );
    assert!(host2.state.borrow().callouts.is_empty());
    assert_eq!(
        header(&host2, "authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
}

#[test]
fn a_refused_or_failed_token_fetch_is_a_503_in_the_clients_shape() {
    let config = config();
    let (mut drv, host, _) = start(&config, "/v1/messages");
    let token = host.state.borrow().callouts[0].token;
    let refused = CallResponse {
        status: Some(400),
        headers: Vec::new(),
        body: br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.to_vec(),
    };
    drv.on_http_call_response(&host, token, refused);
    let reply = host.state.borrow().local_response.clone().unwrap();
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["type"], "error", "Anthropic error shape: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gateway@aigw-test.iam.gserviceaccount.com"),
        "{body}"
    );
    assert!(host.state.borrow().resumed.is_empty());
}

#[test]
fn a_callout_without_an_answer_is_a_503_for_an_openai_client() {
    let config = config();
    let (mut drv, host, _) = start(&config, "/v1/chat/completions");
    let token = host.state.borrow().callouts[0].token;
    let none = CallResponse {
        status: None,
        headers: Vec::new(),
        body: Vec::new(),
    };
    drv.on_http_call_response(&host, token, none);
    let reply = host.state.borrow().local_response.clone().unwrap();
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[test]
fn a_token_close_to_expiry_is_refreshed_while_requests_keep_using_it() {
    let config = config();
    let (mut drv, host, _) = start(&config, "/v1/chat/completions");
    let token = host.state.borrow().callouts[0].token;
    drv.on_http_call_response(&host, token, answer(TOKEN_ANSWER));

    // 100 s before expiry: still usable, but due for refresh.
    let (mut drv2, host2, action) = start_at(&config, "/v1/chat/completions", 3500);
    assert_eq!(action, Action::Continue, "the request does not wait");
    assert_eq!(
        header(&host2, "authorization").as_deref(),
        Some("Bearer ya29.sa-token")
    );
    let refresh = host2.state.borrow().callouts[0].token;
    let fresh = br#"{"access_token":"ya29.fresh","expires_in":3600}"#;
    drv2.on_http_call_response(&host2, refresh, answer(fresh));
    assert!(host2.state.borrow().resumed.is_empty());

    let (_drv3, host3, action) = start_at(&config, "/v1/chat/completions", 3500);
    assert_eq!(action, Action::Continue);
    assert!(host3.state.borrow().callouts.is_empty());
    assert_eq!(
        header(&host3, "authorization").as_deref(),
        Some("Bearer ya29.fresh")
    );
}
