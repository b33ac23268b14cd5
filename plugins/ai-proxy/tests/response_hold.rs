//! Translated JSON answers hold their response headers until the body is complete, so `:status`
//! and `content-type` can follow the translation; streams and same-protocol answers flow on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::host::{Action, Capabilities, MapKind};
use aigw_shared::mock::{driver, MockHost};
use aigw_shared::plugin::FilterDriver;

fn config() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/metrics/config.json");
    std::fs::read_to_string(p).unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Send `body` to the plugin and let it through to the upstream.
fn sent(body: &str) -> (FilterDriver<Proxy>, MockHost) {
    let mut drv = driver::<Proxy>(&config(), Capabilities::FULL);
    let host = MockHost::new(Capabilities::FULL);
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/v1/chat/completions".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
        ];
        st.gate.open(MapKind::RequestHeaders);
        st.request_body = body.as_bytes().to_vec();
    }
    assert_eq!(drv.on_request_headers(&host, false), Action::Pause);
    assert_eq!(
        drv.on_request_body(&host, body.len(), true),
        Action::Continue
    );
    (drv, host)
}

fn respond_headers(drv: &mut FilterDriver<Proxy>, host: &MockHost, ct: &str) -> Action {
    {
        let mut st = host.state.borrow_mut();
        st.response_headers = vec![
            (":status".into(), b"200".to_vec()),
            ("content-type".into(), ct.as_bytes().to_vec()),
            ("content-length".into(), b"999".to_vec()),
        ];
        st.gate.open(MapKind::ResponseHeaders);
    }
    drv.on_response_headers(host, false)
}

fn header(host: &MockHost, name: &str) -> Option<String> {
    let st = host.state.borrow();
    st.response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn a_translated_json_answer_holds_headers_and_body_until_the_end() {
    let (mut drv, host) = sent(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(
        respond_headers(&mut drv, &host, "application/json"),
        Action::Pause
    );
    let body = sample("anthropic-messages-tooluse.response.json");
    let (a, b) = body.split_at(body.len() / 2);
    host.state.borrow_mut().response_body = a.to_vec();
    assert_eq!(drv.on_response_body(&host, a.len(), false), Action::Pause);
    host.state.borrow_mut().response_body.extend_from_slice(b);
    assert_eq!(
        drv.on_response_body(&host, body.len(), true),
        Action::Continue
    );
    assert_eq!(header(&host, ":status").as_deref(), Some("200"));
    assert_eq!(header(&host, "content-length"), None);
    let out: serde_json::Value =
        serde_json::from_slice(&host.state.borrow().response_body).unwrap();
    assert_eq!(out["object"], "chat.completion");
}

#[test]
fn an_untranslatable_json_answer_changes_the_held_status_to_502() {
    let (mut drv, host) = sent(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(
        respond_headers(&mut drv, &host, "application/json"),
        Action::Pause
    );
    host.state.borrow_mut().response_body = b"{\"id\": tru".to_vec();
    assert_eq!(drv.on_response_body(&host, 10, true), Action::Continue);
    assert_eq!(header(&host, ":status").as_deref(), Some("502"));
    assert_eq!(
        header(&host, "content-type").as_deref(),
        Some("application/json")
    );
    let out: serde_json::Value =
        serde_json::from_slice(&host.state.borrow().response_body).unwrap();
    assert_eq!(out["error"]["type"], "server_error");
}

#[test]
fn a_translated_answer_without_a_body_is_a_502_not_an_empty_200() {
    let (mut drv, host) = sent(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
    host.state.borrow_mut().response_headers = vec![(":status".into(), b"200".to_vec())];
    host.state.borrow_mut().gate.open(MapKind::ResponseHeaders);
    assert_eq!(drv.on_response_headers(&host, true), Action::Pause);
    // Headers alone cannot carry the error body: the client gets a local 502 with one.
    let reply = host.state.borrow().local_response.clone().unwrap();
    assert_eq!(reply.status, 502);
    let out: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(out["error"]["type"], "server_error");
}

#[test]
fn a_translated_stream_flows_chunk_by_chunk() {
    let (mut drv, host) =
        sent(r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(
        respond_headers(&mut drv, &host, "text/event-stream"),
        Action::Continue
    );
    let first = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n";
    host.state.borrow_mut().response_body = first.to_vec();
    assert_eq!(
        drv.on_response_body(&host, first.len(), false),
        Action::Continue
    );
    let out = String::from_utf8(host.state.borrow().response_body.clone()).unwrap();
    assert!(
        out.starts_with("data: {"),
        "the first chunk leaves at once: {out:?}"
    );
}

#[test]
fn a_same_protocol_answer_is_not_held() {
    let (mut drv, host) =
        sent(r#"{"model":"gpt-5-nano","messages":[{"role":"user","content":"hi"}]}"#);
    assert_eq!(
        respond_headers(&mut drv, &host, "application/json"),
        Action::Continue
    );
    assert_eq!(header(&host, "content-length").as_deref(), Some("999"));
}
