//! Streams through [`StreamFix`] with the real provider samples (`testdata/providers/`), re-split
//! at every byte boundary: untouched text comes out the same, an output rule cuts the stream in
//! the caller's protocol, placeholders split across events are restored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_content_moderation::detect::Kind;
use ai_content_moderation::stream::StreamFix;
use ai_content_moderation::vault::Vault;
use ai_content_moderation::Config;
use aigw_shared::error::ClientProtocol;
use aigw_shared::llm::{Api, DeltaKind, FinishReason, ResponseFormat, ResponseObserver};
use aigw_shared::stream::sse::SseDecoder;
use serde_json::{json, Value};

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The client's view of a stream: content text, tool arguments, finish reason, completed.
#[derive(Debug, PartialEq)]
struct Seen {
    text: String,
    args: String,
    finish: Option<FinishReason>,
    completed: bool,
}

/// What the client sees of `bytes` (a stream the plugin wrote: whole events only).
fn seen(api: Api, bytes: &[u8]) -> Seen {
    let s = read(api, bytes);
    assert!(!s.1, "no half event reaches the client");
    s.0
}

/// What a client sees of `bytes`, and whether they end in the middle of an event.
fn read(api: Api, bytes: &[u8]) -> (Seen, bool) {
    let mut obs = ResponseObserver::new(api, ResponseFormat::Sse);
    let mut text = String::new();
    let mut args = String::new();
    let mut on = |d: aigw_shared::llm::Delta<'_>| match d.kind {
        DeltaKind::Content => text.push_str(d.text),
        DeltaKind::ToolArguments => args.push_str(d.text),
        _ => {}
    };
    obs.feed(bytes, 1, &mut on);
    let s = obs.finish(2, &mut on).clone();
    assert_eq!(s.malformed_events, 0, "every event the client gets is JSON");
    let seen = Seen {
        text,
        args,
        finish: s.finish_reason,
        completed: s.completed,
    };
    (seen, s.truncated)
}

fn run(
    config: &Config,
    vault: Option<&Vault>,
    protocol: ClientProtocol,
    chunks: &[&[u8]],
) -> Vec<u8> {
    let mut fix = StreamFix::new(protocol);
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        out.extend(fix.feed(config, vault, c, i + 1 == chunks.len()));
    }
    out
}

fn every_split(bytes: &[u8], step: usize) -> impl Iterator<Item = (&[u8], &[u8])> {
    (1..bytes.len())
        .step_by(step)
        .map(move |cut| bytes.split_at(cut))
}

const SAMPLES: [(&str, Api, ClientProtocol); 4] = [
    (
        "openai-chat-stream.sse",
        Api::ChatCompletions,
        ClientProtocol::OpenAi,
    ),
    (
        "openai-chat-stream-toolcalls-usage.sse",
        Api::ChatCompletions,
        ClientProtocol::OpenAi,
    ),
    (
        "anthropic-messages-stream.sse",
        Api::AnthropicMessages,
        ClientProtocol::Anthropic,
    ),
    (
        "anthropic-messages-stream-tooluse.sse",
        Api::AnthropicMessages,
        ClientProtocol::Anthropic,
    ),
];

#[test]
fn real_streams_pass_with_the_same_text_when_no_rule_matches_split_at_every_byte() {
    let config = Config::build(&json!({"output": {
        "denyWords": [{"name": "never", "words": ["zzyzx-not-in-any-sample"]}],
        "holdBackChars": 16
    }}))
    .unwrap();
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "x@y.io", b"");
    for (name, api, protocol) in SAMPLES {
        let bytes = sample(name);
        // Some samples end without the last blank line; the plugin writes that event whole.
        let want = read(api, &bytes).0;
        assert!(want.completed, "{name}");
        let step = if bytes.len() > 4000 { 5 } else { 1 };
        for (a, b) in every_split(&bytes, step) {
            let out = run(&config, Some(&vault), protocol, &[a, b]);
            assert_eq!(seen(api, &out), want, "{name} split at {}", a.len());
        }
    }
}

#[test]
fn an_output_rule_cuts_real_streams_in_the_callers_protocol() {
    let config = Config::build(&json!({"output": {
        "denyWords": [{"name": "greeting", "words": ["there"]}],
        "holdBackChars": 8,
        "safeMessage": "[removed]"
    }}))
    .unwrap();
    for (name, api, protocol) in [SAMPLES[0], SAMPLES[2]] {
        let bytes = sample(name);
        for (a, b) in every_split(&bytes, if bytes.len() > 4000 { 7 } else { 1 }) {
            let out = run(&config, None, protocol, &[a, b]);
            let s = seen(api, &out);
            assert_eq!(
                s.finish,
                Some(FinishReason::ContentFilter),
                "{name} at {}",
                a.len()
            );
            assert!(s.completed, "{name}: the stream ends properly");
            assert!(!s.text.contains("there"), "{name}: {}", s.text);
            assert!(s.text.ends_with("[removed]"), "{name}: {}", s.text);
        }
    }
}

fn openai_stream(pieces: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for p in pieces {
        let v = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
        out.push_str(&format!("data: {v}\n\n"));
    }
    let end = json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {end}\n\ndata: [DONE]\n\n"));
    out.into_bytes()
}

#[test]
fn placeholders_split_across_events_and_chunks_are_restored() {
    let config = Config::build(&json!({"pii": {"email": "mask"}})).unwrap();
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "ann@corp.example", b"");
    let bytes = openai_stream(&["Mail [EMA", "IL_", "1]", " now [EMAIL_1", "]"]);
    for (a, b) in every_split(&bytes, 1) {
        let out = run(&config, Some(&vault), ClientProtocol::OpenAi, &[a, b]);
        let s = seen(Api::ChatCompletions, &out);
        assert_eq!(
            s.text,
            "Mail ann@corp.example now ann@corp.example",
            "split at {}",
            a.len()
        );
        assert_eq!(s.finish, Some(FinishReason::Stop));
    }
}

#[test]
fn anthropic_placeholders_are_restored_before_the_block_stops() {
    let config = Config::build(&json!({"pii": {"email": "mask"}})).unwrap();
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "ann@corp.example", b"");
    let text = String::from_utf8(sample("anthropic-messages-stream.sse"))
        .unwrap()
        .replace("\"!\"", "\" [EMAIL_1\"")
        .replace("\" there\"", "\" there, [EM\"");
    let bytes = text.as_bytes();
    for (a, b) in every_split(bytes, 1) {
        let out = run(&config, Some(&vault), ClientProtocol::Anthropic, &[a, b]);
        let s = seen(Api::AnthropicMessages, &out);
        assert_eq!(
            s.text, "Hello there, [EM [EMAIL_1",
            "a placeholder never completed stays as sent"
        );
        assert!(s.completed);
    }
    let closed = String::from_utf8(sample("anthropic-messages-stream.sse"))
        .unwrap()
        .replace("\"!\"", "\"[EMAIL_1]\"");
    let out = run(
        &config,
        Some(&vault),
        ClientProtocol::Anthropic,
        &[closed.as_bytes()],
    );
    assert_eq!(
        seen(Api::AnthropicMessages, &out).text,
        "Hello thereann@corp.example"
    );
}

#[test]
fn after_a_cut_the_rest_of_the_stream_is_dropped() {
    let config = Config::build(&json!({"output": {"regexRules": [{"name": "digits", "pattern": "[0-9]{6}"}], "holdBackChars": 0}})).unwrap();
    let bytes = openai_stream(&["code 123", "456 is", " secret"]);
    let out = run(&config, None, ClientProtocol::OpenAi, &[&bytes]);
    let events: Vec<Value> = SseDecoder::new()
        .feed_owned(&out)
        .unwrap()
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(last["id"], "c1", "the cut keeps the stream's id");
    let s = seen(Api::ChatCompletions, &out);
    assert_eq!(s.text, format!("code 123{}", config.safe_message));
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with("data: [DONE]\n\n"));
}

#[test]
fn placeholders_in_streamed_tool_arguments_are_restored_escaped_as_json() {
    let config = Config::build(&json!({"pii": {"privateKey": "mask"}})).unwrap();
    let mut vault = Vault::default();
    vault.placeholder(Kind::PrivateKey, "-----BEGIN KEY-----\nabc", b"");
    // The model puts the placeholder in a tool argument, split across two deltas.
    let text = String::from_utf8(sample("anthropic-messages-stream-tooluse.sse"))
        .unwrap()
        .replace(
            "\"partial_json\":\"\\\"San Fr\"",
            "\"partial_json\":\"\\\"[PRIVATE_\"",
        )
        .replace("\"partial_json\":\"anci\"", "\"partial_json\":\"KEY_1]\"");
    let bytes = text.as_bytes();
    for (a, b) in every_split(bytes, 1) {
        let out = run(&config, Some(&vault), ClientProtocol::Anthropic, &[a, b]);
        let s = seen(Api::AnthropicMessages, &out);
        let args: Value =
            serde_json::from_str(&s.args).unwrap_or_else(|e| panic!("{e}: {}", s.args));
        assert_eq!(
            args["location"],
            "-----BEGIN KEY-----\nabcsco, CA",
            "split at {}",
            a.len()
        );
        assert_eq!(s.finish, Some(FinishReason::ToolCalls));
    }
}

#[test]
fn upstream_keep_alive_comments_still_reach_the_client() {
    let config = Config::build(&json!({"output": {
        "denyWords": [{"name": "never", "words": ["zzyzx"]}], "holdBackChars": 8
    }}))
    .unwrap();
    let stream = sample("openai-chat-stream.sse");
    // A silent model: the upstream sends keep-alives before the first event, in chunks of their
    // own, as proxies in front of slow models do.
    let first = b": keep-alive\n\n".as_slice();
    let second = b": OPENROUTER PROCESSING\n\n".as_slice();
    let mut fix = StreamFix::new(ClientProtocol::OpenAi);
    let mut pieces = Vec::new();
    for (i, chunk) in [first, second, stream.as_slice()].into_iter().enumerate() {
        pieces.push(fix.feed(&config, None, chunk, i == 2));
    }
    assert_eq!(pieces[0], b": keep-alive\n".to_vec(), "passed on at once");
    assert_eq!(pieces[1], b": keep-alive\n".to_vec());
    let all: Vec<u8> = pieces.concat();
    assert_eq!(
        seen(Api::ChatCompletions, &all),
        seen(Api::ChatCompletions, &stream),
        "the events are unchanged"
    );
}
