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
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use aigw_shared::stream::eventstream::EventStreamDecoder;
use aigw_shared::stream::sse::SseDecoder;
use base64::Engine;

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

#[test]
fn the_sse_decoder_survives_mutants_of_every_recorded_stream() {
    let mut rng = Rng::new(0x5eed_0001);
    for (name, sample) in samples(".sse") {
        for round in 0..rounds(1000) {
            let input = mutate(&mut rng, &sample, &[]);
            let mut dec = SseDecoder::new();
            let mut data = 0usize;
            for chunk in chunks(&mut rng, &input, 97) {
                if dec
                    .feed(&chunk, |e| {
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
    let mut rng = Rng::new(0x5eed_0002);
    let engine = base64::engine::general_purpose::STANDARD;
    for (name, text) in samples(".b64") {
        let clean: String = String::from_utf8(text)
            .unwrap()
            .split_whitespace()
            .collect();
        let sample = engine.decode(clean).unwrap();
        for round in 0..rounds(1000) {
            let mut input = mutate(&mut rng, &sample, &[]);
            if round % 2 == 0 {
                input = fix_crcs(input);
            }
            let mut dec = EventStreamDecoder::new();
            let mut payload = 0usize;
            for chunk in chunks(&mut rng, &input, 97) {
                if dec
                    .feed(&chunk, |f| payload += f.message.payload.len())
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
