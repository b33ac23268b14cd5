//! Bounded mutation fuzzing seeded from the scenario files: every scenario's request body and
//! config are mutated (bytes flipped, ranges dropped or repeated, junk inserted, cut short) and
//! pushed through the plugin on the mock host in random chunk sizes. The plugin must never panic,
//! and every request either reaches the upstream or gets a 4xx/5xx JSON error; a mutated config is
//! accepted or refused with an error, never a panic. Deterministic (fixed seed);
//! `AIGW_FUZZ_ROUNDS` raises the rounds.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_prompt_decorator::PromptDecorator;
use aigw_shared::mock::fuzz::{mutate, rounds, Rng};
use aigw_shared::mock::Exchange;
use aigw_shared::plugin::PluginConfig;
use aigw_shared::scenario::Scenario;

/// Bytes that matter to JSON.
const PIECES: &[&[u8]] = &[b"{", b"[", b"\"", b"\\u0000", b"\xff", b"null", b",", b"}"];

fn cases() -> Vec<Scenario> {
    Scenario::load_files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/cases"))
}

#[test]
fn mutated_requests_reach_the_upstream_or_get_a_json_error_never_a_panic() {
    let mut rng = Rng::new(0xdec0_0001);
    for case in cases() {
        let body = case.request_body();
        for round in 0..rounds(200) {
            let input = mutate(&mut rng, &body, PIECES);
            let text = String::from_utf8_lossy(&input).into_owned();
            let chunk = 1 + rng.below(64);
            let out = Exchange::post_json(case.path(), &text)
                .chunked(chunk)
                .run::<PromptDecorator>(&case.config);
            assert!(
                out.stalled.is_none(),
                "{} round {round}: stalled",
                case.name
            );
            match &out.local_response {
                Some(r) => {
                    assert!(r.status >= 400, "{} round {round}: {}", case.name, r.status);
                    let json: Result<serde_json::Value, _> = serde_json::from_slice(&r.body);
                    assert!(
                        json.is_ok(),
                        "{} round {round}: error body not JSON",
                        case.name
                    );
                }
                None => assert!(
                    out.upstream_headers.is_some(),
                    "{} round {round}",
                    case.name
                ),
            }
        }
    }
}

#[test]
fn mutated_configs_are_accepted_or_refused_never_a_panic() {
    let mut rng = Rng::new(0xdec0_0002);
    for case in cases() {
        for _ in 0..rounds(200) {
            let raw = mutate(&mut rng, case.config.as_bytes(), PIECES);
            let _ = PluginConfig::<PromptDecorator>::parse(&raw);
        }
    }
}
