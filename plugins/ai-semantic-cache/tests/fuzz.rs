//! Bounded mutation fuzzing: request bodies, the real provider answers and stream samples, and
//! every store's and the embedder's answers are mutated (bytes flipped, ranges dropped or repeated,
//! JSON pieces inserted, cut short) and pushed through the key reader, the answer capture (in
//! random chunks) and the answer readers. Nothing may panic; whatever is stored replays as an
//! answer the suite's observer reads whole. Deterministic (fixed seeds); `AIGW_FUZZ_ROUNDS`
//! raises the rounds.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_semantic_cache::capture::Capture;
use ai_semantic_cache::config::RawStore;
use ai_semantic_cache::embed;
use ai_semantic_cache::key::{self, KeyMode, KeyRules};
use ai_semantic_cache::replay::{render, Shape};
use ai_semantic_cache::store::VectorStore;
use aigw_shared::callout::Upstream;
use aigw_shared::error::ClientProtocol;
use aigw_shared::llm::{Api, ResponseFormat, ResponseObserver};
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use std::time::Duration;

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
    b"\n\n",
    b"data: ",
    b"[DONE]",
    b"null",
    b"1e999",
    b"-1",
    b"\"stop\"",
    b"message_stop",
];

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn provider(name: &str) -> Vec<u8> {
    sample(&format!("../../testdata/providers/{name}"))
}

#[test]
fn mutated_requests_are_keyed_skipped_or_refused_never_a_panic() {
    let mut rng = Rng::new(12);
    let rules = KeyRules {
        mode: KeyMode::Conversation,
        system_prompt: true,
        skip_with_tools: true,
        max_temperature: Some(1.0),
        route: "r",
        consumer: Some("c"),
    };
    let seeds = [
        (Api::ChatCompletions, provider("openai-chat.request.json")),
        (
            Api::ChatCompletions,
            provider("openai-chat-tools.request.json"),
        ),
        (
            Api::AnthropicMessages,
            provider("anthropic-messages-toolresult.request.json"),
        ),
    ];
    for _ in 0..rounds(300) {
        for (api, seed) in &seeds {
            let body = mutate(&mut rng, seed, PIECES);
            let _ = key::read(*api, &body, &rules);
        }
    }
}

#[test]
fn mutated_answers_in_random_chunks_store_only_what_replays_whole() {
    let mut rng = Rng::new(34);
    let seeds = [
        (
            Api::ChatCompletions,
            ResponseFormat::Json,
            provider("openai-chat.response.json"),
        ),
        (
            Api::ChatCompletions,
            ResponseFormat::Sse,
            provider("openai-chat-stream.sse"),
        ),
        (
            Api::AnthropicMessages,
            ResponseFormat::Sse,
            provider("anthropic-messages-stream.sse"),
        ),
        (
            Api::AnthropicMessages,
            ResponseFormat::Json,
            provider("anthropic-messages-tooluse.response.json"),
        ),
    ];
    for _ in 0..rounds(200) {
        for (api, format, seed) in &seeds {
            let body = mutate(&mut rng, seed, PIECES);
            let mut c = Capture::new(*api, *format, 1 << 16);
            for piece in chunks(&mut rng, &body, 64) {
                c.feed(&piece, 1);
            }
            let Ok(entry) = c.finish(2, 3) else { continue };
            for (protocol, stream) in [
                (ClientProtocol::OpenAi, true),
                (ClientProtocol::OpenAi, false),
                (ClientProtocol::Anthropic, true),
                (ClientProtocol::Anthropic, false),
            ] {
                let shape = Shape {
                    protocol,
                    stream,
                    include_usage: true,
                    created: 1,
                    id: "x",
                    chunk_chars: 7,
                };
                let (_, out) = render(&entry, &shape);
                let replay_api = if protocol == ClientProtocol::OpenAi {
                    Api::ChatCompletions
                } else {
                    Api::AnthropicMessages
                };
                let format = if stream {
                    ResponseFormat::Sse
                } else {
                    ResponseFormat::Json
                };
                let mut obs = ResponseObserver::new(replay_api, format);
                let mut text = String::new();
                obs.feed(&out, 1, |d| text.push_str(d.text));
                let s = obs.finish(2, |d| text.push_str(d.text));
                assert!(s.completed && s.error.is_none(), "{s:?}");
                assert_eq!(text, entry.text);
            }
        }
    }
}

#[test]
fn mutated_store_and_embedder_answers_are_errors_or_results_never_a_panic() {
    let mut rng = Rng::new(56);
    let stores: Vec<(VectorStore, Vec<u8>)> = [
        ("chroma", "testdata/stores/chroma-query-hit.response.json"),
        ("qdrant", "testdata/stores/qdrant-search-hit.response.json"),
        ("milvus", "testdata/stores/milvus-search-hit.response.json"),
        (
            "elasticsearch",
            "testdata/stores/elasticsearch-search-hit.response.json",
        ),
    ]
    .into_iter()
    .map(|(kind, file)| {
        let raw: RawStore = serde_json::from_value(serde_json::json!(
            {"kind": kind, "cluster": "c", "authority": "a"}))
        .unwrap();
        (
            VectorStore::build(&raw, Upstream::envoy("c", "a"), Duration::from_secs(1)).unwrap(),
            sample(file),
        )
    })
    .collect();
    let embedding = provider("openai-embeddings.response.json");
    for _ in 0..rounds(300) {
        for (store, seed) in &stores {
            let body = mutate(&mut rng, seed, PIECES);
            let b = store.backend();
            let _ = b.found(200, &body);
            let _ = b.ensured(200, &body);
            let _ = b.upserted(200, &body);
        }
        let _ = embed::vector(Some(200), &mutate(&mut rng, &embedding, PIECES));
    }
}
