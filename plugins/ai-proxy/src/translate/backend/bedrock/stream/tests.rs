//! ConverseStream translation tests: every recorded event stream re-split at every byte boundary,
//! tool-call and reasoning deltas, exceptions, and truncated or corrupt streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use aigw_shared::error::ErrorKind;
use aigw_shared::stream::eventstream::{encode, Message};
use serde_json::Value;

use super::super::response::exception_status;
use super::super::tests::{providers, translate};
use super::super::EVENT_STREAM;
use crate::hub::{ChatChunk, HubEvent};
use crate::translate::TranslateError;

fn stream_bytes(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(providers().join(name)).unwrap();
    decode_base64(text.trim())
}

/// Standard base64 with padding (this crate does not depend on a base64 library).
fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn chunks_of(events: &[HubEvent]) -> Vec<ChatChunk> {
    events
        .iter()
        .map(|e| match e {
            HubEvent::Chunk(c) => c.clone(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// (id, name, arguments) of one streamed tool call.
type Call = (String, String, String);

/// Text, tool calls by index, finish reason and (prompt, completion) usage of a chunk sequence.
type Summary = (String, Vec<Call>, Option<String>, Option<(u64, u64)>);

fn summarize(chunks: &[ChatChunk]) -> Summary {
    let mut text = String::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut finish = None;
    let mut usage = None;
    for c in chunks {
        if let Some(u) = &c.usage {
            usage = Some((u.prompt_tokens, u.completion_tokens));
        }
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            for tc in ch.delta.tool_calls.iter().flatten() {
                let i = tc.index as usize;
                if calls.len() <= i {
                    calls.resize(i + 1, Default::default());
                }
                if let Some(id) = &tc.id {
                    calls[i].0.clone_from(id);
                }
                let f = tc.function.as_ref().unwrap();
                if let Some(n) = &f.name {
                    calls[i].1.clone_from(n);
                }
                calls[i].2.push_str(f.arguments.as_deref().unwrap_or(""));
            }
            if ch.finish_reason.is_some() {
                finish.clone_from(&ch.finish_reason);
            }
        }
    }
    (text, calls, finish, usage)
}

/// The concatenated `delta.text` of the frames listed in a `.decoded.txt` reading aid.
fn expected_text(decoded: &str) -> String {
    let text = std::fs::read_to_string(providers().join(decoded)).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("  payload: "))
        .filter_map(|p| serde_json::from_str::<Value>(p).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn every_conversestream_sample_translates_identically_at_every_split() {
    for name in [
        "bedrock-conversestream",
        "bedrock-conversestream-nova",
        "bedrock-conversestream-tooluse",
    ] {
        let bytes = stream_bytes(&format!("{name}.b64"));
        let (events, end) = translate(EVENT_STREAM, &[&bytes]);
        end.unwrap();
        let whole = chunks_of(&events);
        let (text, _, finish, usage) = summarize(&whole);
        assert_eq!(
            text,
            expected_text(&format!("{name}.decoded.txt")),
            "{name}"
        );
        assert!(finish.is_some() && usage.is_some(), "{name}");
        assert_eq!(whole[0].choices[0].delta.role.as_deref(), Some("assistant"));
        assert!(whole
            .iter()
            .all(|c| c.id == whole[0].id && c.model == "bedrock-model"));
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let (split, end) = translate(EVENT_STREAM, &[a, b]);
            end.unwrap();
            assert_eq!(split, events, "{name} split at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            translate(EVENT_STREAM, &singles).0,
            events,
            "{name} byte by byte"
        );
    }
}

#[test]
fn a_streamed_tool_call_becomes_openai_tool_call_deltas() {
    let bytes = stream_bytes("bedrock-conversestream-tooluse.b64");
    let (events, end) = translate(EVENT_STREAM, &[&bytes]);
    end.unwrap();
    let (text, calls, finish, usage) = summarize(&chunks_of(&events));
    assert!(text.starts_with("To calculate the cosine of 7,"));
    assert_eq!(
        calls,
        [(
            "tooluse_QklrEHKjRu6Oc4BQUfy7ZQ".to_owned(),
            "cosine".to_owned(),
            "{\"x\": 7}".to_owned()
        )]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage, Some((386, 75)));
    let last = chunks_of(&events).pop().unwrap();
    assert!(last.choices.is_empty() && last.usage.is_some());
}

fn frames(messages: &[Message]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        encode(m, &mut out).unwrap();
    }
    out
}

#[test]
fn an_exception_frame_becomes_a_hub_error_with_its_status() {
    let bytes = frames(&[
        Message::event("messageStart", r#"{"role":"assistant"}"#),
        Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"}}"#,
        ),
        Message::exception(
            "throttlingException",
            r#"{"message":"Too many tokens, please wait."}"#,
        ),
        Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"never"}}"#,
        ),
    ]);
    let (events, end) = translate(EVENT_STREAM, &[&bytes]);
    end.unwrap();
    let HubEvent::Error(e) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!((e.status, e.kind), (429, ErrorKind::RateLimited));
    assert_eq!(e.message, "Too many tokens, please wait.");
    assert_eq!(e.code.as_deref(), Some("throttlingException"));
    assert_eq!(events.len(), 3);
}

#[test]
fn exception_types_map_to_http_statuses() {
    for (t, s) in [
        ("validationException", 400),
        ("ValidationException:http://internal", 400),
        ("accessDeniedException", 403),
        ("resourceNotFoundException", 404),
        ("throttlingException", 429),
        ("modelStreamErrorException", 502),
        ("serviceUnavailableException", 503),
        ("modelTimeoutException", 504),
        ("internalServerException", 500),
        ("somethingNew", 500),
    ] {
        assert_eq!(exception_status(t), s, "{t}");
    }
}

#[test]
fn reasoning_deltas_become_reasoning_content() {
    let bytes = frames(&[
        Message::event("messageStart", r#"{"role":"assistant"}"#),
        Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"Hmm."}}}"#,
        ),
        Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"signature":"abc"}}}"#,
        ),
        Message::event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":1,"delta":{"text":"Yes."}}"#,
        ),
        Message::event("messageStop", r#"{"stopReason":"end_turn"}"#),
    ]);
    let (events, end) = translate(EVENT_STREAM, &[&bytes]);
    end.unwrap();
    let chunks = chunks_of(&events);
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert_eq!(
        chunks[1].choices[0].delta.reasoning_content.as_deref(),
        Some("Hmm.")
    );
    assert_eq!(chunks[3].choices[0].finish_reason.as_deref(), Some("stop"));
}

#[test]
fn streams_that_end_early_or_are_corrupt_are_upstream_errors() {
    let bytes = stream_bytes("bedrock-conversestream.b64");
    let (_, end) = translate(EVENT_STREAM, &[&bytes[..bytes.len() - 10]]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))), "{end:?}");
    let start_only = frames(&[Message::event("messageStart", r#"{"role":"assistant"}"#)]);
    let (_, end) = translate(EVENT_STREAM, &[&start_only]);
    assert!(matches!(end, Err(TranslateError::Upstream(m)) if m.contains("messageStop")));
    let (_, end) = translate(EVENT_STREAM, &[b""]);
    assert!(matches!(end, Err(TranslateError::Upstream(m)) if m.contains("without any event")));
    let mut corrupt = bytes.clone();
    corrupt[20] ^= 0xFF;
    let (_, end) = translate(EVENT_STREAM, &[&corrupt]);
    assert!(matches!(end, Err(TranslateError::Upstream(m)) if m.contains("CRC")));
    let bad_json = frames(&[Message::event("messageStart", "{not json")]);
    assert!(matches!(
        translate(EVENT_STREAM, &[&bad_json]).1,
        Err(TranslateError::Upstream(_))
    ));
}
