//! The filter on the mock host: requests blocked, masked and forwarded, answers restored (JSON
//! and streams) or passed untouched, bodies delivered in small chunks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ai_content_moderation::ContentModeration;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, UpstreamReply};
use serde_json::{json, Value};

const CONFIG: &str = r#"{"denyWords": [{"name": "demo", "words": ["forbidden-word"]}],
    "pii": {"email": "mask", "creditCard": "block"},
    "output": {"regexRules": [{"name": "secret", "pattern": "TOP-SECRET-[0-9]+"}], "holdBackChars": 4}}"#;

fn chat(text: &str, stream: bool) -> Exchange {
    let body =
        json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]});
    Exchange::post_json("/v1/chat/completions", &body.to_string()).chunked(5)
}

fn sse(pieces: &[&str]) -> UpstreamReply {
    let mut chunks = Vec::new();
    for p in pieces {
        let v = json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
        chunks.push(format!("data: {v}\n\n").into_bytes());
    }
    chunks.push(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_vec());
    UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        chunks,
    }
}

fn stream_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_deny_word_is_answered_in_the_callers_protocol_and_never_forwarded() {
    let out = chat("the FORBIDDEN-WORD", false).run::<ContentModeration>(CONFIG);
    let reply = out.local_response.expect("answered locally");
    assert_eq!(reply.status, 400);
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert!(out.upstream_headers.is_none());
    assert_eq!(
        out.host
            .metric_value("aigw.content_moderation.reason.deny_demo.requests_blocked"),
        Some(1)
    );
    let body = json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "4111 1111 1111 1111"}]});
    let out =
        Exchange::post_json("/v1/messages", &body.to_string()).run::<ContentModeration>(CONFIG);
    let v: Value = serde_json::from_slice(&out.local_response.unwrap().body).unwrap();
    assert_eq!(v["type"], "error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pii:creditCard"));
}

#[test]
fn keys_written_with_escapes_are_checked_like_plain_ones() {
    let body =
        r#"{"model":"m","m\u0065ssages":[{"role":"user","\u0063ontent":"the forbidden-word"}]}"#;
    let out = Exchange::post_json("/v1/chat/completions", body).run::<ContentModeration>(CONFIG);
    let reply = out.local_response.expect("refused, not forwarded");
    assert_eq!(reply.status, 400);
    assert!(out.upstream_headers.is_none());
}

#[test]
fn a_masked_email_is_restored_in_the_json_answer() {
    let answer = json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "sim: hi [EMAIL_1]"}, "finish_reason": "stop"}]});
    let out = chat("hi bo@corp.example", false)
        .reply(UpstreamReply::json(&answer.to_string()))
        .run::<ContentModeration>(CONFIG);
    assert_eq!(
        out.upstream_json()["messages"][0]["content"],
        "hi [EMAIL_1]"
    );
    let v: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "sim: hi bo@corp.example"
    );
    assert!(out.warnings().is_empty(), "{:?}", out.warnings());
}

#[test]
fn a_stream_is_restored_and_cut_by_an_output_rule() {
    let out = chat("mail bo@corp.example", true)
        .reply(sse(&["to [EM", "AIL_1] ok"]))
        .run::<ContentModeration>(CONFIG);
    assert_eq!(stream_text(&out.response_body), "to bo@corp.example ok");
    let out = chat("hello", true)
        .reply(sse(&["code TOP-SEC", "RET-42 now"]))
        .run::<ContentModeration>(CONFIG);
    let text = String::from_utf8_lossy(&out.response_body).into_owned();
    assert!(
        text.contains("\"content_filter\"") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert!(!text.contains("RET-42"));
}

#[test]
fn other_apis_and_apisix_pass_untouched() {
    let body = json!({"model": "e", "input": "forbidden-word bo@corp.example"}).to_string();
    let out = Exchange::post_json("/v1/embeddings", &body).run::<ContentModeration>(CONFIG);
    assert_eq!(out.upstream_body, body.as_bytes());
    let out = chat("forbidden-word", false)
        .capabilities(Capabilities::APISIX)
        .run::<ContentModeration>(CONFIG);
    assert!(out.local_response.is_none(), "APISIX: nothing is checked");
}

#[test]
fn a_body_that_is_not_json_is_refused() {
    let out = Exchange::post_json("/v1/chat/completions", "{\"messages\": [")
        .run::<ContentModeration>(CONFIG);
    assert_eq!(out.local_response.unwrap().status, 400);
}

#[test]
fn responses_api_requests_are_checked_and_masked_and_json_answers_restored() {
    let blocked = json!({"model": "m", "instructions": "say forbidden-word", "input": "hi"});
    let out =
        Exchange::post_json("/v1/responses", &blocked.to_string()).run::<ContentModeration>(CONFIG);
    let reply = out
        .local_response
        .expect("blocked by the deny word in instructions");
    assert_eq!(reply.status, 400);
    assert!(out.upstream_headers.is_none());

    let body = json!({"model": "m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "mail bo@corp.example"}]},
        {"type": "function_call_output", "call_id": "c", "output": "card 4111 1111 1111 1111"}]});
    let out =
        Exchange::post_json("/v1/responses", &body.to_string()).run::<ContentModeration>(CONFIG);
    assert_eq!(
        out.local_response
            .expect("the card in a tool output blocks")
            .status,
        400
    );

    let body = json!({"model": "m", "input": "mail bo@corp.example"});
    let answer = json!({"id": "resp_1", "object": "response", "status": "completed", "output": [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "sim: mail [EMAIL_1]", "annotations": []}]}]});
    let out = Exchange::post_json("/v1/responses", &body.to_string())
        .chunked(7)
        .reply(UpstreamReply::json(&answer.to_string()))
        .run::<ContentModeration>(CONFIG);
    assert_eq!(out.upstream_json()["input"], "mail [EMAIL_1]");
    let v: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "sim: mail bo@corp.example"
    );
}

#[test]
fn responses_api_refusals_and_cut_answers_keep_the_responses_shape() {
    // A request blocked in `refusal` mode is answered as a Responses API response, not a chat
    // completion the client's SDK could not read.
    let config = r#"{"denyWords": [{"name": "demo", "words": ["forbidden-word"]}],
        "onBlock": {"mode": "refusal", "message": "not here"}}"#;
    let body = json!({"model": "m", "input": "say forbidden-word"});
    let out =
        Exchange::post_json("/v1/responses", &body.to_string()).run::<ContentModeration>(config);
    let reply = out.local_response.expect("answered");
    assert_eq!(reply.status, 200);
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["incomplete_details"]["reason"], "content_filter");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "not here (rule: deny:demo)"
    );
    let streamed = json!({"model": "m", "input": "say forbidden-word", "stream": true});
    let out = Exchange::post_json("/v1/responses", &streamed.to_string())
        .run::<ContentModeration>(config);
    let text = String::from_utf8(out.local_response.expect("answered").body).unwrap();
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("event: response.incomplete\n"), "{text}");

    // A JSON answer an output rule cuts stays a response object (its id and usage kept).
    let body = json!({"model": "m", "input": "hello"});
    let answer = json!({"id": "resp_9", "object": "response", "status": "completed", "model": "m",
        "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "it is TOP-SECRET-42", "annotations": []}]}],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}});
    let out = Exchange::post_json("/v1/responses", &body.to_string())
        .reply(UpstreamReply::json(&answer.to_string()))
        .run::<ContentModeration>(CONFIG);
    let v: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["id"], "resp_9");
    assert_eq!(v["status"], "incomplete");
    assert_eq!(v["usage"]["total_tokens"], 7);
    assert!(!out.response_body.windows(10).any(|w| w == b"TOP-SECRET"));
}

#[test]
fn responses_api_event_streams_are_restored_and_cut() {
    let events = |deltas: &[&str]| {
        let mut chunks = vec![
            b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"m\",\"output\":[]}}\n\n".to_vec(),
        ];
        for (i, d) in deltas.iter().enumerate() {
            let v = json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                           "content_index": 0, "delta": d, "sequence_number": i + 1});
            chunks.push(format!("event: response.output_text.delta\ndata: {v}\n\n").into_bytes());
        }
        let full: String = deltas.concat();
        let done = json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0,
                          "content_index": 0, "text": full, "sequence_number": deltas.len() + 1});
        chunks.push(format!("event: response.output_text.done\ndata: {done}\n\n").into_bytes());
        UpstreamReply {
            status: 200,
            headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
            chunks,
        }
    };
    let body = json!({"model": "m", "input": "mail bo@corp.example", "stream": true});
    let out = Exchange::post_json("/v1/responses", &body.to_string())
        .reply(events(&["sim: mail [EMA", "IL_1]"]))
        .run::<ContentModeration>(CONFIG);
    let text = String::from_utf8(out.response_body.clone()).unwrap();
    assert!(
        text.contains("\"text\":\"sim: mail bo@corp.example\""),
        "{text}"
    );
    assert!(!text.contains("EMAIL_1"), "{text}");

    let out = Exchange::post_json("/v1/responses", &body.to_string())
        .reply(events(&["the code is TOP-SEC", "RET-7 ok"]))
        .run::<ContentModeration>(CONFIG);
    let text = String::from_utf8(out.response_body).unwrap();
    assert!(!text.contains("SECRET-7"), "{text}");
    assert!(text.contains("\"reason\":\"content_filter\""), "{text}");
}
