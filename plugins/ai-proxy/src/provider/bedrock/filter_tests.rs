//! Bedrock through the whole filter on the mock host: the request that reaches the upstream carries
//! a SigV4 signature (session token included) that the shared verifier accepts for the final path,
//! authority and body, and the event-stream answer reaches OpenAI and Anthropic clients as their
//! own SSE, whatever the upstream chunking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use aigw_shared::aws::{verify, AmzDate, Credentials, SignableRequest, VerifyPolicy};
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Outcome, UpstreamReply};
use serde_json::Value;

use crate::translate::backend::bedrock::base64;
use crate::Proxy;

const CONFIG: &str = r#"{
  "providers": [{"name": "aws", "type": "bedrock", "options": {
    "region": "us-east-1", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI",
    "sessionToken": "session-token-1", "invokeModels": ["us.anthropic.*"]}}],
  "models": [{"match": "nova", "provider": "aws", "target": "us.amazon.nova-micro-v1:0"},
             {"match": "claude", "provider": "aws", "target": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"},
             {"match": "*", "provider": "aws"}]
}"#;

/// The mock host's clock (`MockHost::now_nanos`) in seconds.
const MOCK_NOW: i64 = 1_700_000_000;

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn stream_sample(name: &str) -> Vec<u8> {
    let text = String::from_utf8(sample(name)).unwrap();
    base64::decode(text.trim()).unwrap()
}

fn reply(content_type: &str, body: &[u8], chunk: usize) -> UpstreamReply {
    UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
        chunks: body.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect(),
    }
}

/// Check the upstream request's signature as Bedrock would.
fn verify_upstream(out: &Outcome) -> Result<(), aigw_shared::aws::VerifyError> {
    let headers = out.upstream_headers.as_ref().expect("reached the upstream");
    let text: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
        .collect();
    let find = |name: &str| {
        text.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut req = SignableRequest::new("POST", find(":path").unwrap(), &out.upstream_body)
        .header("host", find(":authority").unwrap());
    for (k, v) in text.iter().filter(|(k, _)| !k.starts_with(':')) {
        req = req.header(k, v);
    }
    let creds =
        Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI").with_session_token("session-token-1");
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(MOCK_NOW + 1)),
        region: Some("us-east-1"),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    verify(
        &req,
        |id| (id == "AKIDEXAMPLE").then(|| creds.clone()),
        &policy,
    )
    .map(|_| ())
}

#[test]
fn the_upstream_request_carries_a_valid_sigv4_signature_over_the_final_body() {
    let body = r#"{"model":"nova","messages":[{"role":"system","content":"You are a chatbot."},{"role":"user","content":"Hello!"}]}"#;
    let out = Exchange::post_json("/v1/chat/completions", body)
        .header("authorization", "Bearer client-key")
        .chunked(7)
        .reply(reply(
            "application/json",
            &sample("bedrock-converse.response.json"),
            0,
        ))
        .run::<Proxy>(CONFIG);
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    assert_eq!(
        out.upstream_header(":path").as_deref(),
        Some("/model/us.amazon.nova-micro-v1%3A0/converse")
    );
    assert_eq!(
        out.upstream_header(":authority").as_deref(),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    assert_eq!(
        out.upstream_header("x-amz-security-token").as_deref(),
        Some("session-token-1")
    );
    assert_eq!(
        out.upstream_header("x-amz-date").as_deref(),
        Some("20231114T221320Z")
    );
    assert_eq!(verify_upstream(&out), Ok(()));
    let json: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "nova");
    assert_eq!(json["usage"]["prompt_tokens"], 7);
    assert_eq!(json["usage"]["completion_tokens"], 30);
}

#[test]
fn a_host_without_a_clock_gets_a_clear_error_instead_of_an_unsigned_request() {
    let body = r#"{"model":"nova","messages":[{"role":"user","content":"Hello!"}]}"#;
    let caps = Capabilities {
        clock: false,
        ..Capabilities::FULL
    };
    let out = Exchange::post_json("/v1/chat/completions", body)
        .capabilities(caps)
        .run::<Proxy>(CONFIG);
    let local = out.local_response.expect("answered locally");
    assert_eq!(local.status, 500);
    assert!(local.body_text().contains("clock"), "{}", local.body_text());
    assert!(out.upstream_headers.is_none());
}

fn stream_through(path: &str, body: &str, chunk: usize) -> Outcome {
    let out = Exchange::post_json(path, body)
        .reply(reply(
            "application/vnd.amazon.eventstream",
            &stream_sample("bedrock-conversestream-nova.b64"),
            chunk,
        ))
        .run::<Proxy>(CONFIG);
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    assert_eq!(verify_upstream(&out), Ok(()));
    assert!(out
        .upstream_header(":path")
        .unwrap()
        .ends_with("/converse-stream"));
    out
}

fn content_type(out: &Outcome) -> String {
    let v = out
        .response_headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    String::from_utf8(v).unwrap()
}

#[test]
fn an_event_stream_reaches_openai_clients_as_the_same_sse_at_any_upstream_chunking() {
    let body = r#"{"model":"nova","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello!"}]}"#;
    let whole = stream_through("/v1/chat/completions", body, usize::MAX);
    assert_eq!(content_type(&whole), "text/event-stream");
    let text = String::from_utf8(whole.response_body.clone()).unwrap();
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
    assert!(text.contains(r#""prompt_tokens":"#), "{text}");
    for chunk in [1, 3, 64, 1000] {
        let out = stream_through("/v1/chat/completions", body, chunk);
        assert_eq!(out.response_body, whole.response_body, "chunks of {chunk}");
    }
}

#[test]
fn an_event_stream_reaches_anthropic_clients_as_anthropic_events_at_any_upstream_chunking() {
    let body = r#"{"model":"nova","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}"#;
    let whole = stream_through("/v1/messages", body, usize::MAX);
    assert_eq!(content_type(&whole), "text/event-stream");
    let text = String::from_utf8(whole.response_body.clone()).unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("event: content_block_delta\n"), "{text}");
    assert!(text.contains(r#""stop_reason":"end_turn""#), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    for chunk in [1, 5, 100] {
        let out = stream_through("/v1/messages", body, chunk);
        assert_eq!(out.response_body, whole.response_body, "chunks of {chunk}");
    }
}

fn invoke_stream(path: &str, body: &str, chunk: usize) -> Outcome {
    let out = Exchange::post_json(path, body)
        .reply(reply(
            "application/vnd.amazon.eventstream",
            &stream_sample("bedrock-invoke-anthropic-stream.b64"),
            chunk,
        ))
        .run::<Proxy>(CONFIG);
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    assert_eq!(verify_upstream(&out), Ok(()));
    assert_eq!(
        out.upstream_header(":path").as_deref(),
        Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream")
    );
    let sent = out.upstream_json();
    assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
    assert!(
        sent.get("model").is_none() && sent.get("stream").is_none(),
        "{sent}"
    );
    out
}

#[test]
fn an_invoke_stream_reaches_openai_and_anthropic_clients_at_any_upstream_chunking() {
    let openai = r#"{"model":"claude","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
    let anthropic = r#"{"model":"claude","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#;
    let whole_openai = invoke_stream("/v1/chat/completions", openai, usize::MAX);
    let text = String::from_utf8(whole_openai.response_body.clone()).unwrap();
    assert!(text.contains(r#""content":"Hi""#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let whole_anthropic = invoke_stream("/v1/messages", anthropic, usize::MAX);
    let text = String::from_utf8(whole_anthropic.response_body.clone()).unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains(r#""text":" are you doing today?""#), "{text}");
    for chunk in [1, 9, 200] {
        let out = invoke_stream("/v1/chat/completions", openai, chunk);
        assert_eq!(
            out.response_body, whole_openai.response_body,
            "chunks of {chunk}"
        );
        let out = invoke_stream("/v1/messages", anthropic, chunk);
        assert_eq!(
            out.response_body, whole_anthropic.response_body,
            "chunks of {chunk}"
        );
    }
}
