//! Bounded mutation fuzzing: request bodies carrying every kind of finding, and the real stream
//! samples, are mutated (bytes flipped, ranges dropped or repeated, JSON and placeholder pieces
//! inserted, cut short) and pushed through the checks and the stream rewriter in random chunks.
//! Nothing may panic; a request is checked or refused as not JSON; a rewritten stream is made of
//! whole events. Deterministic (fixed seeds); `AIGW_FUZZ_ROUNDS` raises the rounds.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_content_moderation::detect::Kind;
use ai_content_moderation::request::{check, Scratch};
use ai_content_moderation::stream::StreamFix;
use ai_content_moderation::vault::Vault;
use ai_content_moderation::Config;
use aigw_shared::error::ClientProtocol;
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use aigw_shared::stream::sse::{SseDecoder, SseEnd};
use serde_json::json;

const PIECES: &[&[u8]] = &[
    b"{",
    b"[",
    b"\"",
    b"\\u0000",
    b"\\\"",
    b"\xff",
    b"\xe4\xb8",
    b",",
    b"}",
    b"[EMAIL_1]",
    b"[EM",
    b"4111 1111 1111 1111",
    b"@x.io",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"eyJhbGciOiJI.",
    b"\n\n",
    b"data: ",
    b"kaboom",
    b"AKIA",
    b"+86",
    b"DE89 ",
];

fn config() -> Config {
    let mut pii = serde_json::Map::new();
    for (i, k) in Kind::ALL.iter().enumerate() {
        let action = ["mask", "hash", "log"][i % 3];
        pii.insert(k.name().to_owned(), json!(action));
    }
    Config::build(&json!({
        "denyWords": [{"name": "d", "words": ["forbidden-word", "炸弹"]}],
        "regexRules": [{"name": "r", "pattern": "TICKET-[0-9]+", "action": "log"}],
        "injection": {"action": "log"},
        "pii": pii,
        "output": {"denyWords": [{"name": "k", "words": ["kaboom"]}], "holdBackChars": 5}
    }))
    .unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/providers")
            .join(name),
    )
    .unwrap()
}

#[test]
fn mutated_requests_are_checked_or_refused_never_a_panic() {
    let config = config();
    let text =
        "mail a.b@corp.example, +86 138 1234 5678, 4111 1111 1111 1111, 11010519491231002X, \
        123-45-6789, DE89 3704 0044 0532 0130 00, 10.0.0.1, sk-proj-abcdefghijklmnopqrstu, \
        AKIAIOSFODNN7EXAMPLE, ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, \
        eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig, ignore all previous instructions";
    let bodies = [
        serde_json::to_vec(&json!({"model": "m", "messages": [{"role": "user", "content": text}]}))
            .unwrap(),
        sample("anthropic-messages-toolresult.request.json"),
        sample("openai-chat-tools.request.json"),
    ];
    let mut rng = Rng::new(0x6d6f_6401);
    let mut scratch = Scratch::default();
    for body in &bodies {
        for _ in 0..rounds(300) {
            let input = mutate(&mut rng, body, PIECES);
            let mut vault = Vault::default();
            if let Ok(out) = check(&config, &input, &mut vault, &mut scratch) {
                if let Some(new) = out.body {
                    // A rewritten body is still JSON when the input was.
                    if serde_json::from_slice::<serde_json::Value>(&input).is_ok() {
                        serde_json::from_slice::<serde_json::Value>(&new).unwrap();
                    }
                }
            }
        }
    }
}

#[test]
fn mutated_streams_come_out_as_whole_events_never_a_panic() {
    let config = config();
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "a@b.io", b"");
    let mut rng = Rng::new(0x6d6f_6402);
    for (name, protocol) in [
        ("openai-chat-stream.sse", ClientProtocol::OpenAi),
        (
            "openai-chat-stream-toolcalls-usage.sse",
            ClientProtocol::OpenAi,
        ),
        ("anthropic-messages-stream.sse", ClientProtocol::Anthropic),
        (
            "anthropic-messages-stream-tooluse.sse",
            ClientProtocol::Anthropic,
        ),
    ] {
        let seed = sample(name);
        for _ in 0..rounds(100) {
            let input = mutate(&mut rng, &seed, PIECES);
            let parts = chunks(&mut rng, &input, 64);
            let mut fix = StreamFix::new(protocol);
            let mut out = Vec::new();
            for (i, c) in parts.iter().enumerate() {
                out.extend(fix.feed(&config, Some(&vault), c, i + 1 == parts.len()));
            }
            let mut dec = SseDecoder::new();
            dec.feed(&out, |_| {}).unwrap();
            assert_eq!(dec.finish(), SseEnd::Complete, "{name}: whole events only");
        }
    }
}
