//! Bedrock translation tests: hub requests -> Converse bodies (recorded requests and hand-written
//! cases under `testdata/bedrock/`), and recorded Converse JSON responses -> hub responses. The
//! stream side is in `stream/tests.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::error::ErrorKind;
use serde_json::{json, Value};

use super::{to_converse, BedrockBackend, EVENT_STREAM};
use crate::hub::{ChatRequest, HubEvent};
use crate::translate::{
    errors, Backend, BuildContext, ResponseHead, TranslateError, UnsupportedPolicy,
};

pub(super) fn providers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/providers")
}

fn requests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bedrock/requests")
}

fn load_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hub(name: &str) -> ChatRequest {
    serde_json::from_value(load_json(&requests_dir().join(format!("{name}.hub.json")))).unwrap()
}

fn encode_with(
    req: &ChatRequest,
    policy: UnsupportedPolicy,
) -> (Result<Value, TranslateError>, Vec<String>) {
    let mut ctx = BuildContext::new(&req.model, policy);
    let body = BedrockBackend.encode_request(req, &mut ctx);
    (
        body.map(|b| serde_json::from_slice(&b).unwrap()),
        ctx.dropped,
    )
}

fn encode_ok(req: &ChatRequest) -> Value {
    encode_with(req, UnsupportedPolicy::Reject).0.unwrap()
}

/// Recorded requests carry an empty `inferenceConfig`, which the encoder leaves out.
fn without_empty_inference(mut v: Value) -> Value {
    if v.get("inferenceConfig") == Some(&json!({})) {
        v.as_object_mut().unwrap().remove("inferenceConfig");
    }
    v
}

#[test]
fn hub_requests_become_the_recorded_converse_bodies() {
    let pairs = [
        ("nova-basic", "bedrock-converse.request.json"),
        ("nova-stream", "bedrock-conversestream-nova.request.json"),
        ("claude-tooluse", "bedrock-converse-tooluse.request.json"),
        (
            "claude-stream-tooluse",
            "bedrock-conversestream-tooluse.request.json",
        ),
    ];
    for (case, recorded) in pairs {
        let want = without_empty_inference(load_json(&providers().join(recorded)));
        assert_eq!(encode_ok(&hub(case)), want, "{case}");
    }
}

#[test]
fn hub_requests_become_the_expected_converse_bodies() {
    let mut seen = 0;
    for entry in std::fs::read_dir(requests_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(case) = name.strip_suffix(".converse.json") else {
            continue;
        };
        assert_eq!(encode_ok(&hub(case)), load_json(&path), "{case}");
        seen += 1;
    }
    assert!(seen >= 4, "expected the hand-written cases, found {seen}");
}

#[test]
fn thinking_drops_sampling_fields_and_notes_them() {
    let (body, dropped) = encode_with(&hub("claude-reasoning"), UnsupportedPolicy::Reject);
    assert!(body.is_ok());
    assert_eq!(dropped, ["temperature (not allowed with thinking)"]);
}

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn fields_bedrock_cannot_express_are_rejected_or_dropped_by_policy() {
    let req = request(json!({
        "model": "us.amazon.nova-micro-v1:0", "n": 2, "seed": 1,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]
    }));
    let (err, _) = encode_with(&req, UnsupportedPolicy::Reject);
    match err {
        Err(TranslateError::Unsupported { field, backend }) => {
            assert_eq!(backend, "bedrock");
            assert!(field.contains("image_url"), "{field}");
        }
        other => panic!("{other:?}"),
    }
    let (ok, dropped) = encode_with(&req, UnsupportedPolicy::Ignore);
    assert_eq!(
        ok.unwrap()["messages"][0]["content"],
        json!([{"text": "hi"}])
    );
    assert_eq!(dropped.len(), 3, "{dropped:?}");
}

#[test]
fn malformed_requests_name_the_field_at_fault() {
    let cases = [
        (
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,AAAA"}}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            json!({"role": "tool", "content": "x"}),
            "messages[0].tool_call_id",
        ),
        (
            json!({"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{oops"}}]}),
            "messages[0].tool_calls[0].function.arguments",
        ),
    ];
    for (message, param) in cases {
        let req = request(json!({"model": "m", "messages": [message]}));
        match encode_with(&req, UnsupportedPolicy::Reject).0 {
            Err(TranslateError::Malformed { param: Some(p), .. }) => assert_eq!(p, param),
            other => panic!("{param}: {other:?}"),
        }
    }
    let bad_effort =
        request(json!({"model": "anthropic.claude-x", "reasoning_effort": "max", "messages": []}));
    assert!(matches!(
        encode_with(&bad_effort, UnsupportedPolicy::Reject).0,
        Err(TranslateError::Malformed { .. })
    ));
    let llama =
        request(json!({"model": "meta.llama3-70b", "reasoning_effort": "low", "messages": []}));
    assert!(matches!(
        encode_with(&llama, UnsupportedPolicy::Reject).0,
        Err(TranslateError::Unsupported { .. })
    ));
}

pub(super) fn head(content_type: &str, stream: bool) -> ResponseHead {
    ResponseHead {
        status: 200,
        content_type: content_type.into(),
        stream,
        model: "bedrock-model".into(),
        created: 1_700_000_000,
    }
}

pub(super) fn translate(
    content_type: &str,
    chunks: &[&[u8]],
) -> (Vec<HubEvent>, Result<(), TranslateError>) {
    let mut t =
        BedrockBackend.response_translator(&head(content_type, content_type == EVENT_STREAM));
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    let end = t.finish(&mut out);
    (out, end)
}

fn response_of(file: &str) -> crate::hub::ChatResponse {
    let body = std::fs::read(providers().join(file)).unwrap();
    let (events, end) = translate("application/json", &[&body]);
    end.unwrap();
    match events.as_slice() {
        [HubEvent::Response(r)] => r.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn converse_json_becomes_a_hub_response_with_usage() {
    let r = response_of("bedrock-converse.response.json");
    assert_eq!(r.model, "bedrock-model");
    assert!(r.id.starts_with("chatcmpl-"));
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(r.choices[0]
        .message
        .content
        .as_deref()
        .unwrap()
        .starts_with("Hello! How can I assist"));
    let u = r.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (7, 30, 37)
    );
}

#[test]
fn converse_tool_use_becomes_tool_calls() {
    let r = response_of("bedrock-converse-tooluse.response.json");
    let m = &r.choices[0].message;
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        m.content.as_deref(),
        Some("I'll help you find the capital city using the available tools.")
    );
    let calls = m.tool_calls.as_ref().unwrap();
    assert_eq!(calls[0].id, "tooluse_YFo0dGJWt2BxnVmdQ8qPQt");
    assert_eq!(
        (
            calls[0].function.name.as_str(),
            calls[0].function.arguments.as_str()
        ),
        ("country_source", "{}")
    );
    assert_eq!(
        r.usage
            .unwrap()
            .prompt_tokens_details
            .unwrap()
            .cached_tokens,
        Some(0)
    );
}

#[test]
fn reasoning_and_cache_usage_are_carried_over() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "sig"}}},
            {"text": "42"}
        ]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 115, "cacheReadInputTokens": 60, "cacheWriteInputTokens": 40}
    });
    let (events, end) = translate("application/json", &[body.to_string().as_bytes()]);
    end.unwrap();
    let HubEvent::Response(r) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        r.choices[0].message.reasoning_content.as_deref(),
        Some("Let me think.")
    );
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("length"));
    let u = r.usage.as_ref().unwrap();
    assert_eq!(
        (
            u.prompt_tokens,
            u.total_tokens,
            u.cached(),
            u.cache_creation()
        ),
        (110, 115, 60, 40)
    );
}

#[test]
fn a_json_body_without_output_is_an_upstream_error() {
    let (_, end) = translate("application/json", &[br#"{"message":"odd"}"#]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))));
}

#[test]
fn the_recorded_bedrock_error_body_keeps_its_message_and_status() {
    let body = std::fs::read(providers().join("bedrock-converse-error-400.response.json")).unwrap();
    let e = errors::from_upstream(400, &body);
    assert_eq!((e.status, e.kind), (400, ErrorKind::InvalidRequest));
    assert_eq!(e.message, "The provided model identifier is invalid.");
}

#[test]
fn to_converse_leaves_model_and_stream_out_of_the_body() {
    let req = hub("nova-stream");
    let mut ctx = BuildContext::new("us.amazon.nova-micro-v1:0", UnsupportedPolicy::Reject);
    let v = to_converse(&req, &mut ctx).unwrap();
    assert!(
        v.get("model").is_none() && v.get("stream").is_none() && v.get("stream_options").is_none()
    );
}
