//! Bounded mutation fuzzing of the stream decoders, seeded from the recorded provider samples in
//! `testdata/providers/`: every SSE sample and every AWS event-stream sample is mutated a few
//! hundred times (bytes flipped, ranges dropped or repeated, random bytes inserted, cut short)
//! and fed in random chunk sizes. Event-stream mutants get their CRCs recomputed, so the header
//! and payload parsers behind the checksums are reached too. The decoders must never panic, must
//! decode output linear in the input's size, and must end with a verdict.
//!
//! Deterministic (a fixed-seed xorshift), so a failure reproduces; `AIGW_FUZZ_ROUNDS` raises the
//! number of mutants per sample for a longer local run.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;

use aigw_shared::aws::crc32::crc32;
use aigw_shared::stream::eventstream::EventStreamDecoder;
use aigw_shared::stream::sse::SseDecoder;
use base64::Engine;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn rounds() -> usize {
    std::env::var("AIGW_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn samples(suffix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{suffix} samples in {}", dir.display());
    out
}

/// One random mutation of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(3) {
        let len = out.len();
        let at = rng.below(len.max(1));
        match rng.below(5) {
            0 if len > 0 => out[at] ^= 1 << rng.below(8),
            1 if len > 0 => {
                let end = (at + rng.below(64)).min(len);
                out.drain(at..end);
            }
            2 if len > 0 => {
                let end = (at + rng.below(64)).min(len);
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            3 => {
                let junk: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(at.min(len)..at.min(len), junk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// `input` in random chunk sizes (1..=97 bytes).
fn chunks<'a>(rng: &mut Rng, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (1 + rng.below(97)).min(rest.len());
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}

#[test]
fn the_sse_decoder_survives_mutants_of_every_recorded_stream() {
    let mut rng = Rng(0x5eed_0001);
    for (name, sample) in samples(".sse") {
        for round in 0..rounds() {
            let input = mutate(&mut rng, &sample);
            let mut dec = SseDecoder::new();
            let mut data = 0usize;
            for chunk in chunks(&mut rng, &input) {
                if dec
                    .feed(chunk, |e| {
                        data += e.data.len() + e.event.map_or(0, str::len)
                    })
                    .is_err()
                {
                    break;
                }
            }
            let _ = dec.finish();
            // Invalid UTF-8 becomes U+FFFD (3 bytes a bad byte) and data lines join with `\n`.
            assert!(
                data <= 4 * input.len(),
                "{name} round {round}: output not linear in input"
            );
        }
    }
}

/// Rewrite the prelude and message CRCs of every frame that still parses as a frame.
fn fix_crcs(mut bytes: Vec<u8>) -> Vec<u8> {
    let mut at = 0;
    while at + 16 <= bytes.len() {
        let total = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if total < 16 || at + total > bytes.len() {
            break;
        }
        let prelude = crc32(&bytes[at..at + 8]);
        bytes[at + 8..at + 12].copy_from_slice(&prelude.to_be_bytes());
        let message = crc32(&bytes[at..at + total - 4]);
        bytes[at + total - 4..at + total].copy_from_slice(&message.to_be_bytes());
        at += total;
    }
    bytes
}

#[test]
fn the_event_stream_decoder_survives_mutants_of_every_recorded_stream() {
    let mut rng = Rng(0x5eed_0002);
    let engine = base64::engine::general_purpose::STANDARD;
    for (name, text) in samples(".b64") {
        let clean: String = String::from_utf8(text)
            .unwrap()
            .split_whitespace()
            .collect();
        let sample = engine.decode(clean).unwrap();
        for round in 0..rounds() {
            let mut input = mutate(&mut rng, &sample);
            if round % 2 == 0 {
                input = fix_crcs(input);
            }
            let mut dec = EventStreamDecoder::new();
            let mut payload = 0usize;
            for chunk in chunks(&mut rng, &input) {
                if dec
                    .feed(chunk, |f| payload += f.message.payload.len())
                    .is_err()
                {
                    break;
                }
            }
            let _ = dec.finish();
            assert!(
                payload <= input.len(),
                "{name} round {round}: more out than in"
            );
        }
    }
}
