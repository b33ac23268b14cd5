//! Retry and fallback through the filter on a mock worker (its state, shared data and clock kept
//! across requests): a failed routed attempt is held and the next key or target is called with
//! the body translated for it; the client gets one answer in its own protocol, with
//! `x-aigw-attempts` and the model that answered; the circuit breaker keeps a failing target away
//! and lets one probe through after the cool-off.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Duration;

use ai_proxy::Proxy;
use aigw_shared::host::{CallResponse, Capabilities};
use aigw_shared::mock::{Callout, Exchange, Gateway, Outcome, UpstreamReply};
use aigw_shared::plugin::Reply;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/fallback")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn config_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&fixture("config.json")).unwrap();
    edit(&mut v);
    v.to_string()
}

const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str =
    r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"primary"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn failing(status: u16) -> UpstreamReply {
    UpstreamReply {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        chunks: vec![fixture("openai-503.json").into_bytes()],
    }
}

fn reply(status: u16, content_type: &str, body: &str) -> Reply {
    Reply::Http(CallResponse {
        status: Some(status),
        headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
        body: body.as_bytes().to_vec(),
    })
}

fn claude_answers(_: &Callout) -> Option<Reply> {
    Some(reply(
        200,
        "application/json",
        &fixture("anthropic-answer.json"),
    ))
}

fn header(out: &Outcome, name: &str) -> Option<String> {
    let st = out.host.state.borrow();
    st.response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn callout_header(call: &Callout, name: &str) -> Option<String> {
    call.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn body_json(out: &Outcome) -> Value {
    serde_json::from_slice(&out.response_body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.response_body)))
}

#[test]
fn a_503_falls_back_to_the_next_target_translated_for_it_and_back() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(claude_answers),
    );
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("oai")
    );
    assert_eq!(out.callouts.len(), 1);
    let call = &out.callouts[0];
    assert_eq!(call.upstream, "claude");
    assert_eq!(
        callout_header(call, ":path").as_deref(),
        Some("/v1/messages")
    );
    assert_eq!(callout_header(call, "x-api-key").as_deref(), Some("sk-c"));
    let sent: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["model"], "claude-haiku-4-5");
    assert_eq!(sent["messages"][0]["content"][0]["text"], "hi");
    assert_eq!(header(&out, ":status").as_deref(), Some("200"));
    assert_eq!(header(&out, "x-aigw-attempts").as_deref(), Some("2"));
    assert_eq!(
        header(&out, "x-aigw-upstream-model").as_deref(),
        Some("claude-haiku-4-5")
    );
    let body = body_json(&out);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Answered by the fallback."
    );
    assert_eq!(
        out.host.metric_value("aigw.ai_proxy.fallbacks"),
        Some(1),
        "one fallback counted"
    );
}

#[test]
fn a_streaming_request_falls_back_and_the_client_gets_one_clean_stream() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", STREAM)
            .reply(failing(500))
            .answer(|_| {
                Some(reply(
                    200,
                    "text/event-stream",
                    &fixture("anthropic-stream.sse"),
                ))
            }),
    );
    assert_eq!(header(&out, ":status").as_deref(), Some("200"));
    assert_eq!(
        header(&out, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let text = String::from_utf8(out.response_body.clone()).unwrap();
    assert_eq!(text.matches("data: [DONE]").count(), 1, "{text}");
    assert!(text.contains("\"role\":\"assistant\""), "{text}");
    assert!(text.contains("Hello"), "{text}");
    assert!(
        !text.contains("overloaded"),
        "no byte of the failed answer: {text}"
    );
}

#[test]
fn when_every_target_fails_the_client_gets_the_last_status_in_its_shape() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(|_| {
                Some(reply(
                    529,
                    "application/json",
                    r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                ))
            }),
    );
    assert_eq!(header(&out, ":status").as_deref(), Some("529"));
    assert_eq!(header(&out, "x-aigw-attempts").as_deref(), Some("2"));
    let body = body_json(&out);
    assert_eq!(body["error"]["message"], "Overloaded", "{body}");
}

#[test]
fn a_retried_status_of_the_last_target_is_retried_no_further_than_the_list() {
    let config = config_with(|v| v["fallback"]["onStatus"] = serde_json::json!([500, 503, 529]));
    let mut gw = Gateway::<Proxy>::new(&config, Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(|_| Some(reply(529, "application/json", "{}"))),
    );
    assert_eq!(out.callouts.len(), 1, "one fallback target, one callout");
    assert_eq!(header(&out, ":status").as_deref(), Some("529"));
}

#[test]
fn a_configured_response_answers_when_every_target_failed() {
    let config = config_with(|v| {
        v["fallback"]["response"] = serde_json::json!({"status": 503,
            "body": "{\"error\":{\"message\":\"all providers are busy\",\"type\":\"server_error\"}}"});
    });
    let mut gw = Gateway::<Proxy>::new(&config, Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(|_| Some(Reply::Http(CallResponse::default()))),
    );
    assert_eq!(header(&out, ":status").as_deref(), Some("503"));
    assert_eq!(
        body_json(&out)["error"]["message"],
        "all providers are busy"
    );
}

#[test]
fn a_client_error_is_not_retried() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(400))
            .answer(claude_answers),
    );
    assert!(out.callouts.is_empty());
    assert_eq!(header(&out, ":status").as_deref(), Some("400"));
}

#[test]
fn a_rate_limited_key_is_retried_on_the_pool_s_next_key_first() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(429))
            .answer(|_| Some(reply(200, "application/json", ANSWER))),
    );
    let first = out.upstream_header("authorization").unwrap();
    assert_eq!(out.callouts.len(), 1);
    let call = &out.callouts[0];
    assert_eq!(call.upstream, "oai", "the same target");
    let second = callout_header(call, "authorization").unwrap();
    assert_ne!(first, second, "with the other key");
    assert_eq!(
        body_json(&out)["choices"][0]["message"]["content"],
        "primary"
    );
    assert_eq!(header(&out, "x-aigw-upstream-model"), None);
}

#[test]
fn the_breaker_opens_after_its_failures_and_one_probe_goes_after_the_cool_off() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    for _ in 0..2 {
        let out = gw.run(
            Exchange::post_json("/v1/chat/completions", CHAT)
                .reply(failing(503))
                .answer(claude_answers),
        );
        assert_eq!(
            out.upstream_header("x-aigw-upstream").as_deref(),
            Some("oai")
        );
    }
    // Open: the request goes straight to the fallback target through the route.
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(UpstreamReply::json(&fixture("anthropic-answer.json"))),
    );
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("claude")
    );
    assert!(out.callouts.is_empty());
    assert_eq!(
        body_json(&out)["choices"][0]["message"]["content"],
        "Answered by the fallback."
    );
    gw.advance(Duration::from_secs(31));
    // Half-open: this request probes the primary and closes the breaker.
    let probe = gw
        .run(Exchange::post_json("/v1/chat/completions", CHAT).reply(UpstreamReply::json(ANSWER)));
    assert_eq!(
        probe.upstream_header("x-aigw-upstream").as_deref(),
        Some("oai")
    );
    let after = gw
        .run(Exchange::post_json("/v1/chat/completions", CHAT).reply(UpstreamReply::json(ANSWER)));
    assert_eq!(
        after.upstream_header("x-aigw-upstream").as_deref(),
        Some("oai")
    );
}

#[test]
fn a_route_without_fallbacks_keeps_no_breaker_and_makes_no_callout() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let out = gw.run(Exchange::post_json("/v1/chat/completions", body).reply(failing(503)));
    assert!(out.callouts.is_empty());
    assert_eq!(header(&out, ":status").as_deref(), Some("503"));
    let shared = out.host.shared.borrow();
    assert!(
        !shared.keys().any(|k| k.contains("breaker")),
        "{:?}",
        shared.keys().collect::<Vec<_>>()
    );
}

#[test]
fn fallback_config_errors_name_their_path() {
    let bad = config_with(|v| v["models"][0]["fallbacks"][0]["provider"] = "nope".into());
    let err = ai_proxy::config::Config::build(&serde_json::from_str(&bad).unwrap()).unwrap_err();
    assert_eq!(err.path(), "models[0].fallbacks[0].provider");
    let bad = config_with(|v| v["fallback"]["maxAttempts"] = 0.into());
    let err = ai_proxy::config::Config::build(&serde_json::from_str(&bad).unwrap()).unwrap_err();
    assert_eq!(err.path(), "fallback.maxAttempts");
}

#[test]
fn a_fallback_target_whose_breaker_is_open_is_skipped_without_costing_an_attempt() {
    let config = config_with(|v| {
        v["providers"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "backup", "type": "openai", "apiKeys": ["sk-b"]}));
        v["models"][0]["fallbacks"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"provider": "backup", "target": "gpt-4o"}));
        v["fallback"]["maxAttempts"] = 2.into();
    });
    let mut gw = Gateway::<Proxy>::new(&config, Capabilities::FULL);
    let open = format!("2 0 0 0 {} 0", gw.now_nanos() / 1_000_000_000 + 60);
    gw.root_host().shared.borrow_mut().insert(
        "aigw.ai_proxy.breaker.claude.claude-haiku-4-5".into(),
        (open.into_bytes(), 1),
    );
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(|_| Some(reply(200, "application/json", ANSWER))),
    );
    let clusters: Vec<&str> = out.callouts.iter().map(|c| c.upstream.as_str()).collect();
    assert_eq!(clusters, ["backup"]);
    assert_eq!(header(&out, "x-aigw-attempts").as_deref(), Some("2"));
    assert_eq!(header(&out, ":status").as_deref(), Some("200"));
}

#[test]
fn a_rate_limited_fallback_call_takes_its_key_out_for_the_retry_after_and_moves_on() {
    let mut gw = Gateway::<Proxy>::new(&fixture("config.json"), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(429))
            .answer(|call| {
                if call.upstream == "oai" {
                    Some(Reply::Http(CallResponse {
                        status: Some(429),
                        headers: vec![
                            ("content-type".into(), b"application/json".to_vec()),
                            ("retry-after".into(), b"20".to_vec()),
                        ],
                        body: br#"{"error":{"message":"slow down"}}"#.to_vec(),
                    }))
                } else {
                    claude_answers(call)
                }
            }),
    );
    let clusters: Vec<&str> = out.callouts.iter().map(|c| c.upstream.as_str()).collect();
    assert_eq!(
        clusters,
        ["oai", "claude"],
        "the next key, then the next target"
    );
    assert_eq!(header(&out, "x-aigw-attempts").as_deref(), Some("3"));
    let logs = out.host.logs_at_least(aigw_shared::host::LogLevel::Warn);
    assert!(
        logs.iter()
            .any(|l| l.contains("sits out for 20 s after a 429")),
        "{logs:?}"
    );
    assert_eq!(
        out.host
            .metric_value("aigw.ai_proxy.provider.oai.key_ejections"),
        Some(2),
        "both keys of the pool sit out"
    );
}

#[test]
fn a_primary_that_waited_for_its_token_still_falls_back() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vertex/service-account.test-only.json");
    let key: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    let config = serde_json::json!({
        "providers": [
            {"name": "vertex", "type": "vertex", "options": {"project": "p", "location": "us-central1",
             "serviceAccountKey": key, "tokenCluster": "google-oauth"}},
            {"name": "oai", "type": "openai", "apiKeys": ["sk-o"]}],
        "models": [{"match": "gpt-4o", "provider": "vertex", "target": "gemini-2.0-flash",
                    "fallbacks": [{"provider": "oai"}]}]
    });
    let mut gw = Gateway::<Proxy>::new(&config.to_string(), Capabilities::FULL);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .reply(failing(503))
            .answer(|call| match call.upstream.as_str() {
                "google-oauth" => Some(reply(
                    200,
                    "application/json",
                    r#"{"access_token":"ya29.t","expires_in":3600,"token_type":"Bearer"}"#,
                )),
                _ => Some(reply(200, "application/json", ANSWER)),
            }),
    );
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("vertex")
    );
    let clusters: Vec<&str> = out.callouts.iter().map(|c| c.upstream.as_str()).collect();
    assert_eq!(clusters, ["google-oauth", "oai"]);
    assert_eq!(header(&out, "x-aigw-attempts").as_deref(), Some("2"));
    assert_eq!(
        body_json(&out)["choices"][0]["message"]["content"],
        "primary"
    );
}
