use super::*;
use aigw_shared::llm::{Api, DeltaKind, FinishReason, ResponseFormat, ResponseObserver};

fn entry(text: &str) -> Entry {
    Entry {
        model: "gpt-4o-mini-2024-07-18".into(),
        text: text.into(),
        input_tokens: 14,
        output_tokens: 9,
        estimated: false,
        at: 1,
    }
}

fn shape(protocol: ClientProtocol, stream: bool, include_usage: bool) -> Shape<'static> {
    Shape {
        protocol,
        stream,
        include_usage,
        created: 1_800_000_000,
        id: "aigwcache0123",
        chunk_chars: 8,
    }
}

/// What the suite's own response observer reads from a rendered answer, re-split at every byte.
fn observe(api: Api, body: &[u8], format: ResponseFormat) -> (String, usize, FinishReason, u64) {
    let mut obs = ResponseObserver::new(api, format);
    let mut text = String::new();
    let mut deltas = 0;
    for b in body.chunks(1) {
        obs.feed(b, 1, |d| {
            if d.kind == DeltaKind::Content {
                text.push_str(d.text);
                deltas += 1;
            }
        });
    }
    let s = obs.finish(2, |d| text.push_str(d.text)).clone();
    assert!(s.completed, "{s:?}");
    assert!(!s.truncated && s.malformed_events == 0 && s.error.is_none());
    let out = s.usage.map(|u| u.output_tokens).unwrap_or(0);
    (text, deltas, s.finish_reason.unwrap(), out)
}

const TEXT: &str =
    "Rust is a systems programming language focused on safety, speed and concurrency.";

#[test]
fn an_openai_stream_has_role_content_chunks_finish_usage_and_done() {
    let (ct, body) = render(&entry(TEXT), &shape(ClientProtocol::OpenAi, true, true));
    assert_eq!(ct, "text/event-stream");
    let s = String::from_utf8(body.clone()).unwrap();
    assert!(s.ends_with("data: [DONE]\n\n"));
    assert!(
        s.starts_with("data: {") && s.contains(r#""delta":{"content":"","role":"assistant"}"#)
            || s.contains(r#""role":"assistant""#)
    );
    let (text, deltas, finish, out) = observe(Api::ChatCompletions, &body, ResponseFormat::Sse);
    assert_eq!(text, TEXT);
    assert!(deltas >= 5, "several content chunks, got {deltas}");
    assert_eq!((finish, out), (FinishReason::Stop, 9));
    assert!(s.contains(r#""choices":[]"#), "the usage chunk");
}

#[test]
fn an_openai_stream_without_include_usage_has_no_usage_chunk() {
    let (_, body) = render(&entry(TEXT), &shape(ClientProtocol::OpenAi, true, false));
    let s = String::from_utf8(body).unwrap();
    assert!(!s.contains("usage"), "{s}");
}

#[test]
fn an_openai_json_answer_carries_the_cached_usage() {
    let (ct, body) = render(&entry(TEXT), &shape(ClientProtocol::OpenAi, false, false));
    assert_eq!(ct, "application/json");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], TEXT);
    assert_eq!(v["usage"]["total_tokens"], 23);
    assert_eq!(v["id"], "chatcmpl-aigwcache0123");
    let (text, _, finish, out) = observe(Api::ChatCompletions, &body, ResponseFormat::Json);
    assert_eq!((text.as_str(), finish, out), (TEXT, FinishReason::Stop, 9));
}

#[test]
fn an_anthropic_event_stream_reads_back_as_the_same_answer() {
    let (ct, body) = render(&entry(TEXT), &shape(ClientProtocol::Anthropic, true, false));
    assert_eq!(ct, "text/event-stream");
    let s = String::from_utf8(body.clone()).unwrap();
    for name in [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ] {
        assert!(s.contains(&format!("event: {name}\n")), "{name}");
    }
    let (text, deltas, finish, out) = observe(Api::AnthropicMessages, &body, ResponseFormat::Sse);
    assert_eq!((text.as_str(), finish, out), (TEXT, FinishReason::Stop, 9));
    assert!(deltas >= 5);
}

#[test]
fn an_anthropic_json_answer_is_a_message() {
    let (_, body) = render(
        &entry(TEXT),
        &shape(ClientProtocol::Anthropic, false, false),
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("end_turn"))
    );
    assert_eq!(v["usage"]["input_tokens"], 14);
    let (text, _, _, _) = observe(Api::AnthropicMessages, &body, ResponseFormat::Json);
    assert_eq!(text, TEXT);
}

#[test]
fn pieces_cut_at_spaces_and_never_inside_a_character() {
    let p = pieces("hello brave new world", 8);
    assert_eq!(p.concat(), "hello brave new world");
    assert!(p.iter().all(|x| x.chars().count() <= 8), "{p:?}");
    assert_eq!(p.first(), Some(&"hello "));
    let cjk = "你好世界，这是一个缓存的回答。";
    let q = pieces(cjk, 4);
    assert_eq!(q.concat(), cjk);
    assert!(q.len() >= 3);
    assert_eq!(pieces("", 4), vec![""]);
    assert_eq!(pieces("abc", 0).concat(), "abc");
}
