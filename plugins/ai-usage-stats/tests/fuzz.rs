//! Bounded mutation fuzzing: mutated requests and responses (JSON and SSE, OpenAI and Anthropic),
//! cut into random chunks, never make the plugin panic or hold the stream, and every request is
//! still counted exactly once. `AIGW_FUZZ_ROUNDS` sets the rounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use common::{fixture, Call, Worker};

const PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"\n\n",
    b"data: ",
    b"[DONE]",
    b"\"usage\":",
    b"\\u00",
    b"\xff",
    b"0",
    b"\"model\":",
    b"event: message_stop\n",
];

#[test]
fn mutated_and_rechunked_traffic_never_panics_and_is_counted_once_per_request() {
    let cases: [(&str, &str, &str); 5] = [
        (
            "/v1/chat/completions",
            "providers/openai-chat.request.json",
            "providers/openai-chat.response.json",
        ),
        (
            "/v1/chat/completions",
            "providers/openai-chat-stream-usage.request.json",
            "providers/openai-chat-stream-usage.sse",
        ),
        (
            "/v1/chat/completions",
            "pii-chat.request.json",
            "openai-stream-error-event.sse",
        ),
        (
            "/v1/messages",
            "providers/anthropic-messages-tooluse.request.json",
            "providers/anthropic-messages-stream.sse",
        ),
        (
            "/v1/embeddings",
            "providers/openai-embeddings.request.json",
            "providers/openai-embeddings.response.json",
        ),
    ];
    let config = r#"{"prices": {"*": {"input": 1, "output": 2}}, "maxModelLabels": 4,
                     "audit": {"capturePrompt": true, "captureAnswer": true, "maxCaptureBytes": 50}}"#;
    let mut w = Worker::new(config);
    let mut rng = Rng::new(0x5eed_0013);
    let mut sent = 0;
    for round in 0..rounds(300) {
        let (path, req, resp) = cases[round % cases.len()];
        let mut body = fixture(req);
        let mut answer = fixture(resp);
        if rng.below(2) == 0 {
            body = mutate(&mut rng, &body, PIECES);
        }
        if rng.below(3) != 0 {
            answer = mutate(&mut rng, &answer, PIECES);
        }
        let mut call = Call::chat(&body).path(path);
        call.request_chunk = 1 + rng.below(64);
        call.status = [200, 200, 200, 429, 500][rng.below(5)];
        call.content_type = if resp.ends_with(".sse") {
            "text/event-stream"
        } else {
            "application/json"
        }
        .into();
        call.chunks = chunks(&mut rng, &answer, 97)
            .into_iter()
            .map(|c| (Duration::from_millis(rng.below(5) as u64), c))
            .collect();
        call.ends = rng.below(10) != 0;
        w.run(&call);
        sent += 1;
    }
    let total: i64 = w
        .host
        .state
        .borrow()
        .metrics
        .iter()
        .filter(|(k, _)| k.ends_with(".requests_total"))
        .map(|(_, m)| m.value)
        .sum();
    assert_eq!(total, sent);
    assert_eq!(w.audit_lines().len() as i64, sent);
    assert!(w.root.state().series_count() <= 1024);
}
