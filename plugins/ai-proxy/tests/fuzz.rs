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
use aigw_shared::mock::{Exchange, UpstreamReply};
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
                let end = (at + rng.below(48)).min(len);
                out.drain(at..end);
            }
            2 if len > 0 => {
                let end = (at + rng.below(48)).min(len);
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            3 => {
                let pick: [&[u8]; 9] = [
                    b"{", b"[", b"\"", b"\n\n", b"data: ", b"\xff", b"null", b",", b"}",
                ];
                let junk = pick[rng.below(pick.len())].to_vec();
                out.splice(at.min(len)..at.min(len), junk);
            }
            4 if len > 0 => out[at] = b"{}[]\":,0\n"[rng.below(9)],
            _ => out.truncate(at),
        }
    }
    out
}

fn rounds() -> usize {
    std::env::var("AIGW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn cases() -> Vec<Scenario> {
    Scenario::load_tree(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata"))
}

fn chunked(rng: &mut Rng, body: Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = body.as_slice();
    while !rest.is_empty() {
        let n = (1 + rng.below(200)).min(rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
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
    let mut rng = Rng(0xa1_0001);
    for c in cases().iter().filter(|c| c.has_upstream()) {
        let original = c.upstream_body();
        for round in 0..rounds() {
            let body = mutate(&mut rng, &original);
            let reply = UpstreamReply {
                status: c.upstream_status(),
                headers: vec![(
                    "content-type".into(),
                    c.upstream_content_type().as_bytes().to_vec(),
                )],
                chunks: chunked(&mut rng, body),
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
    let mut rng = Rng(0xa1_0002);
    for c in cases().iter().filter(|c| !c.is_get()) {
        let original = c.request_body();
        for round in 0..rounds() {
            let body = mutate(&mut rng, &original);
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
    let mut rng = Rng(0xa1_0003);
    for c in cases() {
        for _ in 0..rounds() {
            let raw = mutate(&mut rng, c.config.as_bytes());
            let _ = PluginConfig::<Proxy>::parse(&raw);
        }
    }
}
