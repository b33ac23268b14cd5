//! Bounded mutation fuzzing seeded from the scenario folders and the recorded provider samples:
//! every scenario's upstream answer (JSON, SSE, AWS event stream: every response translator) and
//! request body are mutated (bytes flipped, ranges dropped or repeated, JSON-significant bytes
//! inserted, cut short) and replayed on the mock host in random chunk sizes, and every config is
//! mutated and parsed. Nothing may panic or stall; every request reaches the upstream or gets a
//! JSON error, and every answer reaches the client with a status. Deterministic (fixed seed);
//! `AIGW_FUZZ_ROUNDS` raises the rounds per scenario.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use aigw_shared::mock::{Exchange, UpstreamReply};
use aigw_shared::plugin::PluginConfig;
use aigw_shared::scenario::Scenario;

/// Bytes that matter to JSON and SSE framing.
const PIECES: &[&[u8]] = &[
    b"{", b"[", b"\"", b"\n\n", b"data: ", b"\xff", b"null", b",", b"}",
];

fn cases() -> Vec<Scenario> {
    Scenario::load_tree(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata"))
}

fn exchange(c: &Scenario, request: &[u8]) -> Exchange {
    let text = String::from_utf8_lossy(request).into_owned();
    let mut ex = if c.is_get() {
        Exchange::get(c.path())
    } else {
        Exchange::post_json(c.path(), &text)
    };
    for (k, v) in c.headers() {
        ex = ex.header(&k, &v);
    }
    ex
}

#[test]
fn mutated_upstream_answers_reach_the_client_with_a_status_never_a_panic() {
    let mut rng = Rng::new(0xa1_0001);
    for c in cases().iter().filter(|c| c.has_upstream()) {
        let original = c.upstream_body();
        for round in 0..rounds(40) {
            let body = mutate(&mut rng, &original, PIECES);
            let reply = UpstreamReply {
                status: c.upstream_status(),
                headers: vec![(
                    "content-type".into(),
                    c.upstream_content_type().as_bytes().to_vec(),
                )],
                chunks: chunks(&mut rng, &body, 200),
            };
            let out = exchange(c, &c.request_body())
                .reply(reply)
                .run::<Proxy>(&c.config);
            assert!(
                out.stalled.is_none(),
                "{} round {round}: {:?}",
                c.name,
                out.stalled
            );
            let status = out
                .host
                .state
                .borrow()
                .response_headers
                .iter()
                .find(|(k, _)| k == ":status")
                .map(|(_, v)| v.clone());
            assert!(
                status.is_some() || out.local_response.is_some(),
                "{} round {round}: the client got no status",
                c.name
            );
        }
    }
}

#[test]
fn mutated_requests_reach_the_upstream_or_get_a_json_error_never_a_panic() {
    let mut rng = Rng::new(0xa1_0002);
    for c in cases().iter().filter(|c| !c.is_get()) {
        let original = c.request_body();
        for round in 0..rounds(40) {
            let body = mutate(&mut rng, &original, PIECES);
            let out = exchange(c, &body)
                .chunked(1 + rng.below(64))
                .run::<Proxy>(&c.config);
            assert!(
                out.stalled.is_none(),
                "{} round {round}: {:?}",
                c.name,
                out.stalled
            );
            match &out.local_response {
                Some(r) => {
                    assert!(r.status >= 400, "{} round {round}", c.name);
                    let json: Result<serde_json::Value, _> = serde_json::from_slice(&r.body);
                    assert!(
                        json.is_ok(),
                        "{} round {round}: error body not JSON",
                        c.name
                    );
                }
                None => assert!(out.upstream_headers.is_some(), "{} round {round}", c.name),
            }
        }
    }
}

#[test]
fn mutated_configs_are_accepted_or_refused_never_a_panic() {
    let mut rng = Rng::new(0xa1_0003);
    for c in cases() {
        for _ in 0..rounds(40) {
            let raw = mutate(&mut rng, c.config.as_bytes(), PIECES);
            let _ = PluginConfig::<Proxy>::parse(&raw);
        }
    }
}
