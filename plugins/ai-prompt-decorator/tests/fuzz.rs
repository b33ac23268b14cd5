//! Bounded mutation fuzzing seeded from the scenario files: every scenario's request body and
//! config are mutated (bytes flipped, ranges dropped or repeated, junk inserted, cut short) and
//! pushed through the plugin on the mock host in random chunk sizes. The plugin must never panic,
//! and every request either reaches the upstream or gets a 4xx/5xx JSON error; a mutated config is
//! accepted or refused with an error, never a panic. Deterministic (fixed seed);
//! `AIGW_FUZZ_ROUNDS` raises the rounds.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_prompt_decorator::PromptDecorator;
use aigw_shared::mock::Exchange;
use aigw_shared::plugin::PluginConfig;
use aigw_shared::scenario::Scenario;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let len = out.len();
        let at = rng.below(len.max(1));
        match rng.below(6) {
            0 if len > 0 => out[at] ^= 1 << rng.below(8),
            1 if len > 0 => {
                let end = (at + rng.below(32)).min(len);
                out.drain(at..end);
            }
            2 if len > 0 => {
                let end = (at + rng.below(32)).min(len);
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            3 => {
                let pick = [
                    &b"{"[..],
                    b"[",
                    b"\"",
                    b"\\u0000",
                    b"\xff",
                    b"null",
                    b",",
                    b"}",
                ];
                let junk = pick[rng.below(pick.len())].to_vec();
                out.splice(at.min(len)..at.min(len), junk);
            }
            4 if len > 0 => out[at] = b"{}[]\":,"[rng.below(7)],
            _ => out.truncate(at),
        }
    }
    out
}

fn rounds() -> usize {
    std::env::var("AIGW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn cases() -> Vec<Scenario> {
    Scenario::load_files(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/cases"))
}

#[test]
fn mutated_requests_reach_the_upstream_or_get_a_json_error_never_a_panic() {
    let mut rng = Rng(0xdec0_0001);
    for case in cases() {
        let body = case.request_body();
        for round in 0..rounds() {
            let input = mutate(&mut rng, &body);
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
    let mut rng = Rng(0xdec0_0002);
    for case in cases() {
        for _ in 0..rounds() {
            let raw = mutate(&mut rng, case.config.as_bytes());
            let _ = PluginConfig::<PromptDecorator>::parse(&raw);
        }
    }
}
