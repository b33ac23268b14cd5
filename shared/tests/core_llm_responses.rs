//! The OpenAI Responses API in the shared views: requests read from the real recorded samples
//! (`testdata/providers/openai-responses*.request.json`), JSON answers from the real recorded
//! responses, and a typed event stream (hand-written from OpenAI's documentation) read the same
//! however it is split, in full, light and usage-only readings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use aigw_shared::llm::{
    Api, DeltaKind, FinishReason, RequestView, ResponseFormat, ResponseObserver, ResponseSummary,
};
use aigw_shared::schema::Role;

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/providers")
            .join(name),
    )
    .unwrap()
}

fn hand_written(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/llm")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_recorded_requests_read_as_conversations() {
    assert_eq!(Api::from_path("POST", "/v1/responses"), Api::Responses);
    let body = sample("openai-responses.request.json");
    let v = RequestView::parse(Api::Responses, &body).unwrap();
    assert_eq!(v.model_str(), "gpt-4o");
    assert!(!v.stream);
    assert_eq!(
        v.last_user_text().as_deref(),
        Some("What is the capital of France?")
    );
    assert!(v.estimate_input_tokens().tokens > 4);

    let body = sample("openai-responses-functioncall-output.request.json");
    let v = RequestView::parse(Api::Responses, &body).unwrap();
    let roles: Vec<Role> = v.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool]);
    assert_eq!(
        v.messages[1].content.joined(),
        r#"{"country":"PotatoLand"}"#
    );
    assert_eq!(v.messages[2].content.joined(), "Potato City");
}

#[test]
fn instructions_string_input_and_caps_are_read_and_bad_bodies_named() {
    let body = br#"{"model":"m","instructions":"Be brief.","input":"Hi","max_output_tokens":9,"stream":true}"#;
    let v = RequestView::parse(Api::Responses, body).unwrap();
    assert_eq!(v.messages[0].role, Role::System);
    assert_eq!(v.messages[0].content.joined(), "Be brief.");
    assert_eq!(v.last_user_text().as_deref(), Some("Hi"));
    assert_eq!(v.max_tokens, Some(9));
    assert!(
        v.stream && v.include_usage,
        "Responses streams always end with usage"
    );
    let parts = br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"x"}]}]}"#;
    assert_eq!(
        RequestView::parse(Api::Responses, parts)
            .unwrap()
            .last_user_text()
            .as_deref(),
        Some("a")
    );
    let err = RequestView::parse(Api::Responses, br#"{"model":"m","input":7}"#).unwrap_err();
    assert!(err.to_string().contains("input"), "{err}");
    assert!(RequestView::parse(Api::Responses, b"[1]").is_err());
    assert!(RequestView::parse(Api::Responses, b"").is_err());
}

fn observe(bytes: &[u8], format: ResponseFormat, splits: &[usize]) -> (ResponseSummary, String) {
    let mut obs = ResponseObserver::new(Api::Responses, format);
    let mut text = String::new();
    let mut last = 0;
    for (i, &at) in splits.iter().chain([&bytes.len()]).enumerate() {
        obs.feed(&bytes[last..at], i as u64 + 1, |d| {
            if d.kind == DeltaKind::Content {
                text.push_str(d.text)
            }
        });
        last = at;
    }
    let summary = obs
        .finish(99, |d| {
            if d.kind == DeltaKind::Content {
                text.push_str(d.text)
            }
        })
        .clone();
    (summary, text)
}

#[test]
fn recorded_json_answers_give_usage_text_and_status() {
    let body = sample("openai-responses.response.json");
    let (s, text) = observe(&body, ResponseFormat::Json, &[]);
    assert_eq!(text, "The capital of France is Paris.");
    let u = s.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (14, 8, 22)
    );
    assert_eq!(u.cached_input_tokens, Some(0));
    assert_eq!(s.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(s.finish_reason, Some(FinishReason::Stop));
    assert!(s.completed && s.error.is_none());

    let body = sample("openai-responses-functioncall.response.json");
    let (s, _) = observe(&body, ResponseFormat::Json, &[]);
    assert_eq!(s.finish_reason, Some(FinishReason::ToolCalls));
    assert!(
        s.output_estimate.estimate().tokens > 0,
        "the arguments count as output"
    );
}

#[test]
fn a_typed_event_stream_reads_the_same_however_it_is_split() {
    let bytes = hand_written("responses-stream-text.sse");
    let (whole, text) = observe(&bytes, ResponseFormat::Sse, &[]);
    assert_eq!(text, "The capital of France is \"Paris\".\n");
    let u = whole.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_input_tokens),
        (14, 8, Some(4))
    );
    assert_eq!(whole.finish_reason, Some(FinishReason::Stop));
    assert!(whole.completed && !whole.truncated && whole.malformed_events == 0);
    assert_eq!(whole.id.as_deref(), Some("resp_0abc123"));
    for cut in 1..bytes.len() {
        let (s, t) = observe(&bytes, ResponseFormat::Sse, &[cut]);
        assert_eq!(t, text, "cut at {cut}");
        assert_eq!(s.usage, whole.usage, "cut at {cut}");
        assert!(s.completed, "cut at {cut}");
    }
}

#[test]
fn light_and_usage_only_readings_agree_with_the_full_one_on_usage() {
    let bytes = hand_written("responses-stream-text.sse");
    let (full, _) = observe(&bytes, ResponseFormat::Sse, &[]);
    for mut obs in [
        ResponseObserver::new(Api::Responses, ResponseFormat::Sse).light_after_first_token(),
        ResponseObserver::new(Api::Responses, ResponseFormat::Sse).usage_only(),
    ] {
        obs.feed_quiet(&bytes, 1);
        let s = obs.finish(2, |_| {});
        assert_eq!(s.usage, full.usage);
        assert!(s.completed);
    }
    let mut light =
        ResponseObserver::new(Api::Responses, ResponseFormat::Sse).light_after_first_token();
    light.feed_quiet(&bytes, 1);
    let s = light.finish(2, |_| {});
    assert_eq!(
        s.output_estimate.estimate().tokens,
        full.output_estimate.estimate().tokens,
        "the deltas are still estimated without a parse"
    );
}

#[test]
fn a_failed_stream_reports_the_error_and_ends() {
    let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"output\":[]}}\n\n";
    let (s, _) = observe(failed.as_bytes(), ResponseFormat::Sse, &[]);
    assert!(s.completed);
    assert_eq!(s.error.unwrap().message.as_deref(), Some("boom"));
}
