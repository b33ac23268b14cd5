//! Bounded mutation fuzzing: mutated requests and answers (JSON and SSE, OpenAI and Anthropic),
//! cut into random chunks, never make the plugin panic or stall a stream; every request is
//! forwarded or answered with one of the documented statuses; and the shared counters stay
//! consistent (no bucket above its capacity). `AIGW_FUZZ_ROUNDS` sets the rounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_token_ratelimit::TokenRateLimit;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use aigw_shared::mock::{Exchange, Gateway, UpstreamReply};

const PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b"\n\n",
    b"data: ",
    b"[DONE]",
    b"\"usage\":",
    b"\"max_tokens\":",
    b"-1",
    b"99999999999999999999",
    b"\\u00",
    b"\xff",
    b"event: message_stop\n",
];

fn fixture(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("../../testdata/providers").join(rest),
        None => root.join("testdata").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn mutated_and_rechunked_traffic_never_panics_stalls_or_overfills_a_bucket() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "/v1/chat/completions",
            "chat.request.json",
            "openai-chat.response.json",
        ),
        (
            "/v1/chat/completions",
            "providers/openai-chat-stream-usage.request.json",
            "providers/openai-chat-stream-usage.sse",
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
    let config = r#"{"rules": [
        {"name": "all", "limits": [{"tokens": 1000, "per": "minute", "burst": 200}, {"requests": 50, "per": "second"}]},
        {"name": "team", "keys": ["header:x-team", "model"], "limits": [{"cost": 5000, "per": "hour"}]}],
        "weights": {"gpt-*": {"input": 0.5, "output": 2}}, "maxRequestBodyBytes": 65536}"#;
    let mut gw = Gateway::<TokenRateLimit>::new(config, Capabilities::FULL);
    let mut rng = Rng::new(0x5eed_7a1e);
    let (mut forwarded, mut limited) = (0, 0);
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
        let sse = resp.ends_with(".sse");
        let reply = UpstreamReply {
            status: [200, 200, 200, 429, 500][rng.below(5)],
            headers: vec![(
                "content-type".into(),
                if sse {
                    b"text/event-stream".to_vec()
                } else {
                    b"application/json".to_vec()
                },
            )],
            chunks: chunks(&mut rng, &answer, 64),
        };
        let ex = Exchange::post_json(path, &String::from_utf8_lossy(&body))
            .header("x-team", ["a", "b"][rng.below(2)])
            .chunked(1 + rng.below(64))
            .reply(reply);
        let out = gw.run(ex);
        assert_eq!(out.stalled, None, "round {round}");
        if let Some(local) = &out.local_response {
            assert!(
                [400, 413, 429].contains(&local.status),
                "round {round}: {} {}",
                local.status,
                local.body_text()
            );
            limited += usize::from(local.status == 429);
        } else {
            assert!(out.upstream_headers.is_some(), "round {round}: neither");
            forwarded += 1;
        }
        if round % 50 == 49 {
            gw.advance(std::time::Duration::from_secs(7));
        }
    }
    assert!(
        forwarded > 0 && limited > 0,
        "{forwarded} forwarded, {limited} limited"
    );
    // No record holds more than its buckets' capacities.
    let root = gw.root_host();
    for (key, (bytes, _)) in root.shared.borrow().iter() {
        // A slot record (`…:#<slot>`) starts with its owner's 8-byte tag.
        let buckets = if key.contains(":#") {
            &bytes[8..]
        } else {
            &bytes[..]
        };
        for chunk in buckets.chunks_exact(16) {
            let level = i64::from_le_bytes(chunk[..8].try_into().unwrap());
            assert!(level <= 5000 * 1000, "{key}: {level}");
        }
    }
}
