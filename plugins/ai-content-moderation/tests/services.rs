//! External moderation services on the mock host, answered with the real documented samples
//! (`testdata/providers/openai-moderations*.json`, `azure-contentsafety-*.json`): a flagged
//! text is refused in the caller's protocol, a clean one goes on, a service that fails blocks
//! (fail-closed) or lets pass (fail-open) as configured, and the service sees masked text only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_content_moderation::ContentModeration;
use aigw_shared::host::CallResponse;
use aigw_shared::mock::{Exchange, UpstreamReply};
use aigw_shared::plugin::Reply;
use serde_json::{json, Value};

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(path).unwrap()
}

fn config(kind: &str, on_error: &str) -> String {
    json!({
        "pii": {"email": "mask"},
        "services": [{"name": "svc", "kind": kind, "cluster": "moderation",
                      "authority": "moderation.test", "apiKey": "k", "onError": on_error}]
    })
    .to_string()
}

fn chat(text: &str) -> Exchange {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    Exchange::post_json("/v1/chat/completions", &body.to_string())
        .reply(UpstreamReply::json(r#"{"choices":[]}"#))
}

fn answered(status: Option<u16>, body: Vec<u8>) -> Option<Reply> {
    Some(Reply::Http(CallResponse {
        status,
        headers: Vec::new(),
        body,
    }))
}

#[test]
fn a_text_openai_flags_is_refused_and_never_forwarded() {
    let out = chat("I want to kill them.")
        .answer(|c| {
            let body: Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
            assert_eq!(body["input"], "I want to kill them.");
            assert_eq!(c.upstream, "moderation");
            answered(Some(200), sample("openai-moderations.response.json"))
        })
        .run::<ContentModeration>(&config("openaiModeration", "block"));
    let reply = out.local_response.expect("refused");
    assert_eq!(reply.status, 400);
    assert!(
        String::from_utf8_lossy(&reply.body).contains("service:svc"),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(out.upstream_headers.is_none());
    assert_eq!(
        out.host
            .metric_value("aigw.content_moderation.reason.service_svc.requests_blocked"),
        Some(1)
    );
}

#[test]
fn a_clean_azure_answer_lets_the_request_go_on_with_masked_text_only() {
    let example: Value = serde_json::from_slice(&sample(
        "azure-contentsafety-text-analyze.x-ms-example.json",
    ))
    .unwrap();
    let clean = serde_json::to_vec(&example["responses"]["200"]["body"]).unwrap();
    let out = chat("hello from ann@corp.example")
        .answer(move |c| {
            let body: Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
            assert_eq!(
                body["text"], "hello from [EMAIL_1]",
                "the service sees masked text"
            );
            assert!(c
                .headers
                .iter()
                .any(|(k, v)| k == "ocp-apim-subscription-key" && v == b"k"));
            answered(Some(200), clean.clone())
        })
        .run::<ContentModeration>(&config("azureContentSafety", "block"));
    assert!(out.local_response.is_none());
    assert_eq!(
        out.upstream_json()["messages"][0]["content"],
        "hello from [EMAIL_1]"
    );
}

#[test]
fn a_failing_service_blocks_when_fail_closed_and_passes_when_fail_open() {
    for (status, body) in [
        (None, Vec::new()),
        (Some(500), b"oops".to_vec()),
        (Some(200), b"<html>".to_vec()),
    ] {
        let b = body.clone();
        let out = chat("hello")
            .answer(move |_| answered(status, b.clone()))
            .run::<ContentModeration>(&config("openaiModeration", "block"));
        let reply = out.local_response.expect("fail-closed");
        assert_eq!(reply.status, 503);
        assert!(String::from_utf8_lossy(&reply.body).contains("moderation_unavailable"));
        let out = chat("hello")
            .answer(move |_| answered(status, body.clone()))
            .run::<ContentModeration>(&config("openaiModeration", "allow"));
        assert!(out.local_response.is_none(), "fail-open");
        assert!(out.upstream_headers.is_some());
        assert_eq!(
            out.host
                .metric_value("aigw.content_moderation.reason.service_svc.service_errors"),
            Some(1)
        );
    }
}

fn answering_config() -> String {
    json!({
        "output": {"safeMessage": "[withheld]"},
        "services": [{"name": "svc", "kind": "openaiModeration", "cluster": "moderation",
                      "authority": "moderation.test", "apiKey": "k", "answers": true}]
    })
    .to_string()
}

/// An OpenAI moderation answer: the flagged sample for texts with "kill", a clean one otherwise.
fn moderate(input: &str) -> Option<Reply> {
    if input.contains("kill") {
        return answered(Some(200), sample("openai-moderations.response.json"));
    }
    let clean = json!({"id": "modr-1", "model": "omni-moderation-latest",
        "results": [{"flagged": false, "categories": {}, "category_scores": {}}]});
    answered(Some(200), clean.to_string().into_bytes())
}

fn chat_answered(question: &str, answer: &str) -> Exchange {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": question}]});
    let reply = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}});
    Exchange::post_json("/v1/chat/completions", &body.to_string())
        .reply(UpstreamReply::json(&reply.to_string()))
}

#[test]
fn a_service_with_answers_on_replaces_a_flagged_json_answer_and_lets_a_clean_one_pass() {
    let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = std::rc::Rc::clone(&asked);
    let out = chat_answered("tell me a story", "They wanted to kill them all.")
        .answer(move |c| {
            let body: Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
            let input = body["input"].as_str().unwrap().to_owned();
            seen.borrow_mut().push(input.clone());
            moderate(&input)
        })
        .run::<ContentModeration>(&answering_config());
    assert_eq!(
        *asked.borrow(),
        ["tell me a story", "They wanted to kill them all."],
        "asked about the request, then about the answer"
    );
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "[withheld]");
    assert_eq!(answer["usage"]["completion_tokens"], 5, "usage kept");
    assert_eq!(
        out.host
            .metric_value("aigw.content_moderation.reason.service_svc.answers_cut"),
        Some(1)
    );
    let out = chat_answered("tell me a story", "Once upon a time.")
        .answer(|c| {
            let body: Value = serde_json::from_slice(c.body.as_deref().unwrap()).unwrap();
            moderate(body["input"].as_str().unwrap())
        })
        .run::<ContentModeration>(&answering_config());
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Once upon a time."
    );
}

#[test]
fn a_failing_answer_check_replaces_the_answer_when_fail_closed_and_passes_it_when_fail_open() {
    for (on_error, want) in [("block", "[withheld]"), ("allow", "Once upon a time.")] {
        let config = answering_config().replace(
            r#""answers":true"#,
            &format!(r#""answers":true,"onError":"{on_error}","requests":false"#),
        );
        assert!(config.contains(on_error), "{config}");
        let out = chat_answered("tell me a story", "Once upon a time.")
            .answer(|_| answered(Some(500), b"down".to_vec()))
            .run::<ContentModeration>(&config);
        let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
        assert_eq!(
            answer["choices"][0]["message"]["content"], want,
            "{on_error}"
        );
    }
}
