//! The response observer over every real OpenAI/Anthropic/vLLM/Ollama response sample, compared
//! with the independent Python reading in `testdata/llm/expected.json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aigw_shared::llm::{Api, DeltaKind, ResponseFormat, ResponseObserver, ResponseSummary};
use aigw_shared::stream::sse::SseDecoder;
use serde::Deserialize;

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers")
}

#[derive(Debug, Deserialize)]
struct Expected {
    api: String,
    id: Option<String>,
    model: Option<String>,
    content: String,
    reasoning: String,
    tool_names: String,
    tool_args: Option<String>,
    finish_raw: Option<String>,
    finish: Option<String>,
    usage: Option<ExpectedUsage>,
    completed: bool,
    truncated: bool,
    error_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ExpectedUsage {
    input: u64,
    output: u64,
    total: u64,
    cached: Option<u64>,
    cache_creation: Option<u64>,
    reasoning: Option<u64>,
}

fn expectations() -> BTreeMap<String, Expected> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/llm/expected.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn api_of(name: &str) -> Api {
    match name {
        "chat_completions" => Api::ChatCompletions,
        "embeddings" => Api::Embeddings,
        "messages" => Api::AnthropicMessages,
        other => panic!("unknown api {other}"),
    }
}

/// Delta text collected per kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Collected {
    content: String,
    reasoning: String,
    refusal: String,
    tool_names: String,
    tool_args: String,
}

fn observe(
    api: Api,
    format: ResponseFormat,
    chunks: &[(&[u8], u64)],
    end_ns: u64,
) -> (ResponseSummary, Collected) {
    let mut obs = ResponseObserver::new(api, format);
    let mut got = Collected::default();
    let mut sink = |d: aigw_shared::llm::Delta<'_>| {
        assert!(!d.text.is_empty());
        let slot = match d.kind {
            DeltaKind::Content => &mut got.content,
            DeltaKind::Reasoning => &mut got.reasoning,
            DeltaKind::Refusal => &mut got.refusal,
            DeltaKind::ToolName => &mut got.tool_names,
            DeltaKind::ToolArguments => &mut got.tool_args,
        };
        slot.push_str(d.text);
    };
    for (chunk, now) in chunks {
        obs.feed(chunk, *now, &mut sink);
    }
    let summary = obs.finish(end_ns, &mut sink).clone();
    (summary, got)
}

fn without_timing(mut s: ResponseSummary) -> ResponseSummary {
    s.first_byte_ns = None;
    s.first_token_ns = None;
    s.last_token_ns = None;
    s
}

fn check(name: &str, want: &Expected, s: &ResponseSummary, got: &Collected) {
    assert_eq!(s.id, want.id, "{name}: id");
    assert_eq!(s.model, want.model, "{name}: model");
    assert_eq!(got.content, want.content, "{name}: content");
    assert_eq!(got.reasoning, want.reasoning, "{name}: reasoning");
    assert_eq!(got.tool_names, want.tool_names, "{name}: tool names");
    if let Some(args) = &want.tool_args {
        assert_eq!(&got.tool_args, args, "{name}: tool arguments");
    }
    assert_eq!(
        s.finish_reason_raw, want.finish_raw,
        "{name}: raw finish reason"
    );
    assert_eq!(
        s.finish_reason.map(|f| f.as_str().to_owned()),
        want.finish,
        "{name}: finish reason"
    );
    match (&s.usage, &want.usage) {
        (None, None) => {}
        (Some(u), Some(w)) => {
            assert_eq!(
                (u.input_tokens, u.output_tokens, u.total_tokens),
                (w.input, w.output, w.total),
                "{name}: usage"
            );
            assert_eq!(u.cached_input_tokens, w.cached, "{name}: cached");
            assert_eq!(
                u.cache_creation_input_tokens, w.cache_creation,
                "{name}: cache creation"
            );
            assert_eq!(u.reasoning_tokens, w.reasoning, "{name}: reasoning tokens");
        }
        (u, w) => panic!("{name}: usage {u:?} vs expected {w:?}"),
    }
    assert_eq!(s.completed, want.completed, "{name}: completed");
    assert_eq!(s.truncated, want.truncated, "{name}: truncated");
    assert_eq!(
        s.error.as_ref().and_then(|e| e.kind.clone()),
        want.error_type,
        "{name}: error type"
    );
    assert_eq!(s.malformed_events, 0, "{name}: malformed events");
    assert_eq!(s.parse_error, None, "{name}: parse error");
}

#[test]
fn every_response_sample_is_observed_as_the_reference_reading_says() {
    let cases = expectations();
    assert!(cases.len() >= 20);
    for (name, want) in &cases {
        let bytes = std::fs::read(providers_dir().join(name)).unwrap();
        let api = api_of(&want.api);
        let format = if name.ends_with(".sse") {
            ResponseFormat::Sse
        } else {
            ResponseFormat::Json
        };
        let (s, got) = observe(api, format, &[(&bytes, 5)], 9);
        check(name, want, &s, &got);
        let (auto, auto_got) = observe(api, ResponseFormat::Auto, &[(&bytes, 5)], 9);
        assert_eq!(
            (auto, auto_got),
            (s.clone(), got.clone()),
            "{name}: auto-detected format"
        );
        if s.deltas > 0 {
            assert_eq!(s.first_token_ns, Some(5), "{name}");
            assert!(s.output_estimate.estimate().tokens > 0, "{name}");
        }
    }
}

#[test]
fn every_stream_sample_gives_the_same_result_however_it_is_split() {
    for (name, want) in expectations().iter().filter(|(n, _)| n.ends_with(".sse")) {
        let bytes = std::fs::read(providers_dir().join(name)).unwrap();
        let api = api_of(&want.api);
        let (whole, whole_got) = observe(api, ResponseFormat::Sse, &[(&bytes, 1)], 3);
        let whole = without_timing(whole);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            let (s, got) = observe(api, ResponseFormat::Sse, &[(a, 1), (b, 2)], 3);
            assert_eq!(without_timing(s), whole, "{name}: split at {cut}");
            assert_eq!(got, whole_got, "{name}: split at {cut}");
        }
        let one_byte: Vec<(&[u8], u64)> = bytes.chunks(1).zip(0..).collect();
        let (s, got) = observe(api, ResponseFormat::Sse, &one_byte, u64::MAX);
        assert_eq!(got, whole_got, "{name}: one-byte chunks");
        assert_eq!(without_timing(s.clone()), whole, "{name}: one-byte chunks");
        assert_eq!(
            s.first_token_ns,
            first_delta_byte(api, &bytes),
            "{name}: first token moment"
        );
    }
}

/// The index of the byte that completes the first event producing a delta, found by observing
/// growing prefixes that end on event boundaries.
fn first_delta_byte(api: Api, bytes: &[u8]) -> Option<u64> {
    let mut ends = Vec::new();
    SseDecoder::new()
        .feed(bytes, |e| ends.push(e.end_offset))
        .unwrap();
    ends.into_iter().find_map(|end| {
        let prefix = &bytes[..end as usize];
        let mut obs = ResponseObserver::new(api, ResponseFormat::Sse);
        obs.feed_quiet(prefix, 0);
        (obs.summary().deltas > 0).then(|| end - 1)
    })
}

#[test]
fn json_samples_give_the_same_result_when_split() {
    for (name, want) in expectations().iter().filter(|(n, _)| n.ends_with(".json")) {
        let bytes = std::fs::read(providers_dir().join(name)).unwrap();
        let api = api_of(&want.api);
        let (whole, whole_got) = observe(api, ResponseFormat::Json, &[(&bytes, 1)], 3);
        for cut in (0..=bytes.len()).step_by(97) {
            let (a, b) = bytes.split_at(cut);
            let (s, got) = observe(api, ResponseFormat::Json, &[(a, 1), (b, 2)], 3);
            assert_eq!(
                without_timing(s.clone()),
                without_timing(whole.clone()),
                "{name}: split at {cut}"
            );
            assert_eq!(got, whole_got);
            if s.deltas > 0 {
                let first_chunk = if a.is_empty() { 2 } else { 1 };
                assert_eq!(
                    s.first_token_ns,
                    Some(first_chunk),
                    "{name}: first token is the first body chunk"
                );
                assert_eq!(
                    s.last_token_ns,
                    Some(if b.is_empty() { 1 } else { 2 }),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn truncated_and_corrupted_samples_never_panic() {
    for (name, want) in expectations() {
        let bytes = std::fs::read(providers_dir().join(&name)).unwrap();
        let api = api_of(&want.api);
        let step = (bytes.len() / 200).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            for format in [
                ResponseFormat::Sse,
                ResponseFormat::Json,
                ResponseFormat::Auto,
            ] {
                let _ = observe(api, format, &[(&bytes[..cut], 1)], 2);
                let mut corrupted = bytes.clone();
                corrupted[cut] ^= 0x5A;
                let _ = observe(api, format, &[(&corrupted, 1)], 2);
            }
        }
    }
}

#[test]
fn a_stream_cut_mid_event_is_reported_as_truncated_and_incomplete() {
    let bytes = std::fs::read(providers_dir().join("openai-chat-stream-usage.sse")).unwrap();
    let cut = bytes.len() - 30;
    let (s, _) = observe(
        Api::ChatCompletions,
        ResponseFormat::Sse,
        &[(&bytes[..cut], 1)],
        2,
    );
    assert!(s.truncated);
    assert!(!s.completed);
    assert_eq!(
        s.malformed_events, 1,
        "the partial last chunk is not valid JSON"
    );
}

#[test]
fn missing_usage_falls_back_to_an_estimate_from_the_deltas() {
    let bytes = std::fs::read(providers_dir().join("openai-chat-stream.sse")).unwrap();
    let (s, got) = observe(Api::ChatCompletions, ResponseFormat::Sse, &[(&bytes, 1)], 2);
    assert!(s.usage.is_none());
    let out = s.output_tokens();
    assert!(out.estimated);
    assert_eq!(out, aigw_shared::tokens::estimate(&got.content));
}

#[test]
fn oversized_json_bodies_are_not_buffered() {
    let bytes = std::fs::read(providers_dir().join("openai-chat.response.json")).unwrap();
    let mut obs =
        ResponseObserver::new(Api::ChatCompletions, ResponseFormat::Json).with_max_json_bytes(100);
    obs.feed_quiet(&bytes, 1);
    let s = obs.finish(2, |_| {});
    assert!(s
        .parse_error
        .as_deref()
        .unwrap()
        .contains("larger than 100 bytes"));
    assert!(!s.completed);
}

#[test]
fn other_apis_are_not_observed() {
    let bytes = std::fs::read(providers_dir().join("openai-chat.response.json")).unwrap();
    let (s, got) = observe(Api::Other, ResponseFormat::Json, &[(&bytes, 1)], 2);
    assert_eq!(s, ResponseSummary::default());
    assert_eq!(got, Collected::default());
}

#[test]
fn content_types_choose_the_framing() {
    assert_eq!(
        ResponseFormat::from_content_type(Some(b"text/event-stream; charset=utf-8")),
        ResponseFormat::Sse
    );
    assert_eq!(
        ResponseFormat::from_content_type(Some(b"Application/JSON")),
        ResponseFormat::Json
    );
    assert_eq!(
        ResponseFormat::from_content_type(Some(b"text/plain")),
        ResponseFormat::Auto
    );
    assert_eq!(
        ResponseFormat::from_content_type(None),
        ResponseFormat::Auto
    );
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
fn anthropic_in_stream_errors_and_thinking_are_reported() {
    let bytes = hand_written("anthropic-stream-thinking-then-error.sse");
    let (s, got) = observe(
        Api::AnthropicMessages,
        ResponseFormat::Sse,
        &[(&bytes, 7)],
        8,
    );
    assert_eq!(got.reasoning, "Let me think.");
    assert_eq!(s.first_token_ns, Some(7));
    let err = s.error.unwrap();
    assert_eq!(
        (err.kind.as_deref(), err.message.as_deref()),
        (Some("overloaded_error"), Some("Overloaded"))
    );
    assert!(!s.completed);
    assert_eq!(
        s.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((5, 1))
    );
}

#[test]
fn openai_in_stream_errors_and_reasoning_content_are_reported() {
    let bytes = hand_written("openai-stream-reasoning-then-error.sse");
    let (s, got) = observe(Api::ChatCompletions, ResponseFormat::Sse, &[(&bytes, 7)], 8);
    assert_eq!(
        (got.reasoning.as_str(), got.content.as_str()),
        ("hmm", "hi")
    );
    let err = s.error.unwrap();
    assert_eq!(
        (err.kind.as_deref(), err.code.as_deref()),
        (Some("server_error"), Some("internal"))
    );
    assert!(!s.completed);
}

#[test]
fn legacy_completion_streams_yield_text_finish_and_usage() {
    let bytes = hand_written("completions-stream-usage.sse");
    let (s, got) = observe(Api::Completions, ResponseFormat::Sse, &[(&bytes, 7)], 8);
    assert_eq!(got.content, "Hello world");
    assert_eq!(s.finish_reason_raw.as_deref(), Some("length"));
    assert_eq!(s.usage.map(|u| u.total_tokens), Some(5));
    assert!(s.completed);
}

#[test]
fn a_usage_only_observer_reads_the_same_usage_from_every_recorded_stream() {
    let mut with_usage = 0;
    for (name, want) in expectations().iter().filter(|(n, _)| n.ends_with(".sse")) {
        let bytes = std::fs::read(providers_dir().join(name)).unwrap();
        let api = api_of(&want.api);
        let (full, _) = observe(api, ResponseFormat::Sse, &[(&bytes, 1)], 3);
        let mut quick = ResponseObserver::new(api, ResponseFormat::Sse).usage_only();
        for chunk in bytes.chunks(61) {
            quick.feed_quiet(chunk, 1);
        }
        let summary = quick.finish(3, |_| {}).clone();
        assert_eq!(summary.usage, full.usage, "{name}");
        assert_eq!(
            summary.events, full.events,
            "{name}: every event is still counted"
        );
        assert_eq!(summary.deltas, 0, "{name}: no deltas are produced");
        with_usage += usize::from(full.usage.is_some());
    }
    assert!(with_usage >= 3, "the samples carry usage ({with_usage})");
}

/// `light_after_first_token` on every OpenAI and Anthropic stream sample, fed whole and one
/// byte at a time: the same id, model, first-token time, finish reason, usage, error and
/// completion as a full reading, and an output estimate within a token or 5 % of it (the light
/// reading adds raw string values, escapes included, instead of parsed text).
#[test]
fn a_light_reading_after_the_first_token_agrees_with_a_full_one() {
    let mut checked = 0;
    for entry in std::fs::read_dir(providers_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let api = if name.starts_with("openai-chat") {
            Api::ChatCompletions
        } else if name.starts_with("anthropic-messages") {
            Api::AnthropicMessages
        } else {
            continue;
        };
        if !name.ends_with(".sse") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for split in [bytes.len(), 1] {
            let read = |light: bool| {
                let mut obs = ResponseObserver::new(api, ResponseFormat::Sse);
                if light {
                    obs = obs.light_after_first_token();
                }
                for (i, chunk) in bytes.chunks(split).enumerate() {
                    obs.feed_quiet(chunk, 100 + i as u64);
                }
                obs.finish(1_000_000, |_| {}).clone()
            };
            let (full, light) = (read(false), read(true));
            assert_eq!(light.id, full.id, "{name}");
            assert_eq!(light.model, full.model, "{name}");
            assert_eq!(light.first_token_ns, full.first_token_ns, "{name}");
            assert_eq!(light.finish_reason_raw, full.finish_reason_raw, "{name}");
            assert_eq!(light.usage, full.usage, "{name}");
            assert_eq!(light.error.is_some(), full.error.is_some(), "{name}");
            assert_eq!(
                (light.completed, light.truncated),
                (full.completed, full.truncated),
                "{name}"
            );
            let (l, f) = (
                light.output_estimate.estimate().tokens,
                full.output_estimate.estimate().tokens,
            );
            assert!(
                l.abs_diff(f) <= 1.max(f / 20),
                "{name}: estimate {l} vs {f}"
            );
            assert!(f == 0 || l > 0, "{name}");
        }
        checked += 1;
    }
    assert!(checked >= 5, "{checked} stream samples");
}
