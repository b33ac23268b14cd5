//! InvokeModel (Anthropic on Bedrock) tests: the request body against the recorded one, the
//! recorded JSON answer, and the recorded InvokeModelWithResponseStream re-split at every byte;
//! exceptions and broken chunks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use aigw_shared::stream::eventstream::{encode, Message};
use serde_json::{json, Value};

use super::super::base64;
use super::super::tests::providers;
use super::{chunk_to_sse, InvokeBackend, ANTHROPIC_VERSION};
use crate::hub::{ChatChunk, ChatRequest, HubEvent};
use crate::translate::backend::bedrock::EVENT_STREAM;
use crate::translate::{Backend, BuildContext, ResponseHead, TranslateError, UnsupportedPolicy};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample_json(name: &str) -> Value {
    serde_json::from_slice(&read(&providers().join(name))).unwrap()
}

fn stream_sample() -> Vec<u8> {
    let text = String::from_utf8(read(
        &providers().join("bedrock-invoke-anthropic-stream.b64"),
    ));
    base64::decode(text.unwrap().trim()).unwrap()
}

fn encode_hub(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bedrock/invoke")
        .join(name);
    let req: ChatRequest = serde_json::from_slice(&read(&path)).unwrap();
    let mut ctx = BuildContext::new(&req.model, UnsupportedPolicy::Reject);
    serde_json::from_slice(&InvokeBackend.encode_request(&req, &mut ctx).unwrap()).unwrap()
}

fn translate(content_type: &str, chunks: &[&[u8]]) -> (Vec<HubEvent>, Result<(), TranslateError>) {
    let head = ResponseHead {
        status: 200,
        content_type: content_type.into(),
        stream: true,
        model: "claude-invoke".into(),
        created: 1_700_000_000,
    };
    let mut t = InvokeBackend.response_translator(&head);
    let mut out = Vec::new();
    for c in chunks {
        if let Err(e) = t.feed(c, &mut out) {
            return (out, Err(e));
        }
    }
    let end = t.finish(&mut out);
    (out, end)
}

fn chunks(events: &[HubEvent]) -> Vec<ChatChunk> {
    events
        .iter()
        .map(|e| match e {
            HubEvent::Chunk(c) => c.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn invoke_bodies_carry_the_bedrock_anthropic_version_and_no_model_or_stream() {
    let body = encode_hub("review.hub.json");
    let recorded = sample_json("bedrock-invoke-anthropic.request.json");
    assert_eq!(body["anthropic_version"], ANTHROPIC_VERSION);
    assert_eq!(body["anthropic_version"], recorded["anthropic_version"]);
    assert_eq!(body["max_tokens"], recorded["max_tokens"]);
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );
    // The recorded body keeps a mid-conversation system turn in `messages`; the hub moves every
    // system/developer message into `system`, so the other turns must match exactly.
    let turns: Vec<&Value> = recorded["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .collect();
    let sent: Vec<&Value> = body["messages"].as_array().unwrap().iter().collect();
    assert_eq!(sent.len(), turns.len(), "{body}");
    for (s, r) in sent.iter().zip(&turns) {
        assert_eq!(s["role"], r["role"]);
        let text = |v: &Value| match &v["content"] {
            Value::String(s) => s.clone(),
            Value::Array(a) => a[0]["text"].as_str().unwrap().to_owned(),
            other => panic!("{other}"),
        };
        assert_eq!(text(s), text(r));
    }
    let system = body["system"].to_string();
    assert!(system.contains("You are a code reviewer."), "{system}");
    assert!(system.contains("explicit type annotations"), "{system}");
}

#[test]
fn the_recorded_invoke_json_answer_becomes_a_hub_response() {
    let body = read(&providers().join("bedrock-invoke-anthropic.response.json"));
    let (events, end) = translate("application/json", &[&body]);
    end.unwrap();
    let [HubEvent::Response(r)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        r.id,
        "msg_bdrk_er2hevp3kltzds335kiev73amxxstt3go2joi3x3egl7vkircylq"
    );
    assert_eq!(r.choices[0].finish_reason.as_deref(), Some("stop"));
    let text = r.choices[0].message.content.as_deref().unwrap();
    assert!(
        text.starts_with("I'll set aside that instruction"),
        "{text}"
    );
    let usage = r.usage.as_ref().unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (68, 508));
}

#[test]
fn the_recorded_invoke_stream_translates_identically_at_every_split() {
    let bytes = stream_sample();
    let (events, end) = translate(EVENT_STREAM, &[&bytes]);
    end.unwrap();
    let whole = chunks(&events);
    assert_eq!(whole[0].choices[0].delta.role.as_deref(), Some("assistant"));
    let text: String = whole
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(text, "Hi! 👋 How are you doing today?");
    let finish: Vec<&str> = whole
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.finish_reason.as_deref())
        .collect();
    assert_eq!(finish, ["stop"]);
    let usage = whole.iter().find_map(|c| c.usage.clone()).unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (10, 15));
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let (split, end) = translate(EVENT_STREAM, &[a, b]);
        end.unwrap();
        assert_eq!(split, events, "split at {cut}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(translate(EVENT_STREAM, &singles).0, events, "byte by byte");
}

fn frame(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(message, &mut out).unwrap();
    out
}

fn chunk_frame(event: &Value) -> Vec<u8> {
    let payload = json!({"bytes": base64::encode(event.to_string().as_bytes()), "p": "abc"});
    frame(&Message::event("chunk", payload.to_string()))
}

#[test]
fn an_exception_frame_ends_the_stream_with_its_error() {
    let mut bytes = chunk_frame(
        &json!({"type":"message_start","message":{"id":"msg_1","model":"m","usage":{"input_tokens":3}}}),
    );
    bytes.extend(frame(&Message::exception(
        "throttlingException",
        r#"{"message":"Too many requests, please wait before trying again."}"#,
    )));
    let (events, end) = translate(EVENT_STREAM, &[&bytes]);
    end.unwrap();
    let HubEvent::Error(e) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(e.status, 429);
    assert!(e.message.contains("Too many requests"), "{}", e.message);
}

#[test]
fn truncated_streams_and_broken_chunks_are_upstream_errors() {
    let bytes = stream_sample();
    let (_, end) = translate(EVENT_STREAM, &[&bytes[..bytes.len() - 10]]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))), "{end:?}");
    let frames = bytes.len() - 316; // the last frame (message_stop) is 316 bytes
    let (_, end) = translate(EVENT_STREAM, &[&bytes[..frames]]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))), "{end:?}");
    for payload in [r#"{"p":"x"}"#, r#"{"bytes":"!!!"}"#, "not json"] {
        assert!(chunk_to_sse(payload.as_bytes()).is_err(), "{payload}");
    }
    let bad = frame(&Message::event("chunk", r#"{"bytes":"!!!"}"#));
    let (_, end) = translate(EVENT_STREAM, &[&bad]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))), "{end:?}");
}

#[test]
fn multi_line_event_json_is_carried_as_one_sse_event() {
    let event = b"{\"type\":\"ping\",\r\n \"x\": 1}";
    let payload = json!({"bytes": base64::encode(event)}).to_string();
    assert_eq!(
        chunk_to_sse(payload.as_bytes()).unwrap(),
        b"data: {\"type\":\"ping\",\ndata:  \"x\": 1}\n\n"
    );
}
