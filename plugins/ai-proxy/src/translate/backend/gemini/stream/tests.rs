//! Gemini SSE translation tests: every recorded `gemini-*` / `vertex-*` stream re-split at every
//! byte boundary (and byte by byte) gives the same hub events; tool calls, thoughts, several
//! candidates, error events, and truncated or garbage streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;

use super::super::tests::{providers, translate};
use crate::hub::{ChatChunk, HubEvent};
use crate::translate::TranslateError;

const SSE: &str = "text/event-stream";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(providers().join(name)).unwrap()
}

fn recorded_streams() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(providers())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.starts_with("gemini-") || n.starts_with("vertex-")) && n.ends_with(".sse"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "{names:?}");
    names
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

/// Text, reasoning, `(id, name, arguments)` per call, finish reason, (prompt, completion, total).
type Summary = (
    String,
    String,
    Vec<(String, String, String)>,
    Option<String>,
    Option<(u64, u64, u64)>,
);

fn summarize(chunks: &[ChatChunk]) -> Summary {
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    let (mut finish, mut usage) = (None, None);
    for c in chunks {
        if let Some(u) = &c.usage {
            usage = Some((u.prompt_tokens, u.completion_tokens, u.total_tokens));
        }
        for ch in &c.choices {
            text.push_str(ch.delta.content.as_deref().unwrap_or(""));
            reasoning.push_str(ch.delta.reasoning_content.as_deref().unwrap_or(""));
            for tc in ch.delta.tool_calls.iter().flatten() {
                let f = tc.function.as_ref().unwrap();
                calls.push((
                    tc.id.clone().unwrap(),
                    f.name.clone().unwrap(),
                    f.arguments.clone().unwrap(),
                ));
            }
            if ch.finish_reason.is_some() {
                finish.clone_from(&ch.finish_reason);
            }
        }
    }
    (text, reasoning, calls, finish, usage)
}

#[test]
fn every_recorded_stream_translates_identically_at_every_split() {
    for name in recorded_streams() {
        let bytes = sample(&name);
        let (whole, end) = translate(SSE, &[&bytes]);
        end.unwrap_or_else(|e| panic!("{name}: {e}"));
        for i in 1..bytes.len() {
            let (a, b) = bytes.split_at(i);
            let (split, end) = translate(SSE, &[a, b]);
            end.unwrap();
            assert_eq!(split, whole, "{name} split at {i}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(translate(SSE, &singles).0, whole, "{name} byte by byte");
    }
}

#[test]
fn the_recorded_text_stream_gives_text_finish_and_final_usage() {
    let (events, _) = translate(SSE, &[&sample("gemini-streamgeneratecontent.sse")]);
    let chunks = chunks_of(&events);
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks
        .iter()
        .all(|c| c.id == "chatcmpl-w1peaMz6INOvnvgPgYfPiQY"));
    assert!(chunks.iter().all(|c| c.model == "gemini-2.0-flash-exp"));
    let (text, reasoning, calls, finish, usage) = summarize(&chunks);
    assert_eq!(text, "The capital of France is Paris.\n");
    assert!(reasoning.is_empty() && calls.is_empty());
    assert_eq!(finish.as_deref(), Some("stop"));
    assert_eq!(usage, Some((13, 8, 21)));
    let last = chunks.last().unwrap();
    assert!(
        last.choices.is_empty() && last.usage.is_some(),
        "usage comes last"
    );
}

#[test]
fn the_recorded_function_call_stream_gives_one_complete_tool_call() {
    let (events, _) = translate(
        SSE,
        &[&sample("gemini-streamgeneratecontent-functioncall.sse")],
    );
    let (text, _, calls, finish, usage) = summarize(&chunks_of(&events));
    assert_eq!(text, "");
    assert_eq!(calls.len(), 1);
    let (id, name, args) = &calls[0];
    assert!(id.starts_with("call_"), "{id}");
    assert_eq!(
        (name.as_str(), args.as_str()),
        ("get_capital", r#"{"country":"France"}"#)
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage, Some((52, 5, 57)));
}

#[test]
fn the_recorded_vertex_stream_counts_thoughts_as_completion_tokens() {
    let (events, _) = translate(SSE, &[&sample("vertex-streamgeneratecontent.sse")]);
    let chunks = chunks_of(&events);
    let (text, _, _, finish, usage) = summarize(&chunks);
    assert_eq!((text.as_str(), finish.as_deref()), ("OK", Some("stop")));
    assert_eq!(usage, Some((5, 101, 106)));
    let u = chunks.last().unwrap().usage.as_ref().unwrap();
    assert_eq!(u.reasoning(), Some(100));
}

fn sse(events: &[serde_json::Value]) -> Vec<u8> {
    events
        .iter()
        .flat_map(|e| format!("data: {e}\r\n\r\n").into_bytes())
        .collect()
}

#[test]
fn thoughts_and_several_candidates_stream_per_choice() {
    let body = sse(&[
        json!({"responseId": "r1", "candidates": [
            {"index": 0, "content": {"parts": [{"text": "hmm", "thought": true}]}},
            {"index": 1, "content": {"parts": [{"text": "B"}]}}]}),
        json!({"responseId": "r1", "candidates": [
            {"index": 0, "content": {"parts": [{"text": "A"}, {"functionCall": {"name": "f", "args": {"x": 1}}}]}, "finishReason": "STOP"},
            {"index": 1, "content": {"parts": []}, "finishReason": "RECITATION"}],
         "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}}),
    ]);
    let (events, end) = translate(SSE, &[&body]);
    end.unwrap();
    let chunks = chunks_of(&events);
    let of = |i: u32| -> Vec<ChatChunk> {
        chunks
            .iter()
            .filter(|c| c.choices.first().is_some_and(|ch| ch.index == i))
            .cloned()
            .collect()
    };
    let (text, reasoning, calls, finish, _) = summarize(&of(0));
    assert_eq!((text.as_str(), reasoning.as_str()), ("A", "hmm"));
    assert_eq!(calls[0].1, "f");
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let (text, _, _, finish, _) = summarize(&of(1));
    assert_eq!(
        (text.as_str(), finish.as_deref()),
        ("B", Some("content_filter"))
    );
    assert_eq!(summarize(&chunks).4, Some((2, 3, 5)));
}

#[test]
fn an_error_event_ends_the_stream_with_the_google_status() {
    let body = sse(&[
        json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}),
        json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}),
        json!({"candidates": [{"content": {"parts": [{"text": "ignored"}]}}]}),
    ]);
    let (events, end) = translate(SSE, &[&body]);
    end.unwrap();
    match events.last() {
        Some(HubEvent::Error(e)) => {
            assert_eq!(e.status, 429);
            assert_eq!(e.message, "Resource has been exhausted");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.len(), 3, "role, text, error: {events:?}");
}

#[test]
fn truncated_empty_or_garbage_streams_are_upstream_errors() {
    let full = sample("gemini-streamgeneratecontent.sse");
    // Cut cleanly after the first event, and inside the second one.
    let second = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (events, end) = translate(SSE, &[&full[..second]]);
    assert!(!events.is_empty());
    assert!(matches!(end, Err(TranslateError::Upstream(m)) if m.contains("finishReason")));
    let (_, end) = translate(SSE, &[&full[..second + 20]]);
    assert!(matches!(end, Err(TranslateError::Upstream(_))));
    assert!(
        matches!(translate(SSE, &[b""]).1, Err(TranslateError::Upstream(m)) if m.contains("without any event"))
    );
    assert!(matches!(
        translate(SSE, &[b"data: {oops\r\n\r\n"]).1,
        Err(TranslateError::Upstream(_))
    ));
    // A complete last event without its blank line still counts.
    let trimmed = full.strip_suffix(b"\r\n\r\n").unwrap();
    let (events, end) = translate(SSE, &[trimmed]);
    end.unwrap();
    assert_eq!(summarize(&chunks_of(&events)).3.as_deref(), Some("stop"));
}
