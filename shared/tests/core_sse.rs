//! SSE decoder/encoder tests over real provider streams and hand-written edge cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::stream::sse::{
    encode_comment, encode_data, SseDecoder, SseEnd, SseError, SseEvent,
};

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers")
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/sse")
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Decode `chunks` in order; return the events, the end state and each event's end offset.
fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<SseEvent>, SseEnd, Vec<u64>) {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    let mut offsets = Vec::new();
    for chunk in chunks {
        decoder
            .feed(chunk, |e| {
                events.push(e.to_owned_event());
                offsets.push(e.end_offset);
            })
            .unwrap();
    }
    (events, decoder.finish(), offsets)
}

fn decode_whole(bytes: &[u8]) -> (Vec<SseEvent>, SseEnd, Vec<u64>) {
    decode_chunks([bytes])
}

fn assert_split_invariant(name: &str, bytes: &[u8]) {
    let (events, end, offsets) = decode_whole(bytes);
    let check = |got: (Vec<SseEvent>, SseEnd, Vec<u64>), how: &str| {
        assert_eq!((&got.0, &got.1), (&events, &end), "{name}: {how}");
        // An event ending in a CR at a chunk end reports the offset past the CR; the LF that may
        // follow in the next chunk belongs to it too.
        for (split, whole) in got.2.iter().zip(&offsets) {
            let ok = split == whole || (split + 1 == *whole && bytes[*split as usize] == b'\n');
            assert!(ok, "{name}: {how}: offset {split} vs {whole}");
        }
    };
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        check(decode_chunks([a, b]), &format!("split at byte {cut}"));
    }
    check(decode_chunks(bytes.chunks(1)), "one-byte chunks");
    check(decode_chunks(bytes.chunks(7)), "seven-byte chunks");
}

#[test]
fn every_provider_stream_decodes_the_same_however_it_is_split() {
    let files = files_with_ext(&providers_dir(), "sse");
    assert!(
        files.len() >= 8,
        "expected the provider .sse samples, found {files:?}"
    );
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (events, _, _) = decode_whole(&bytes);
        assert!(!events.is_empty(), "{name}: no events");
        assert_split_invariant(&name, &bytes);
    }
}

#[test]
fn every_provider_event_carries_json_or_the_done_marker() {
    for path in files_with_ext(&providers_dir(), "sse") {
        let bytes = std::fs::read(&path).unwrap();
        let (events, end, _) = decode_whole(&bytes);
        let mut all = events;
        if let SseEnd::Truncated { event: Some(e) } = end {
            all.push(e);
        }
        for e in all {
            if e.data != "[DONE]" {
                serde_json::from_str::<serde_json::Value>(&e.data)
                    .unwrap_or_else(|err| panic!("{}: {err}: {:?}", path.display(), e.data));
            }
        }
    }
}

#[test]
fn openai_stream_with_usage_ends_with_done_and_has_no_event_names() {
    let bytes = std::fs::read(providers_dir().join("openai-chat-stream-usage.sse")).unwrap();
    let (events, end, offsets) = decode_whole(&bytes);
    assert_eq!(end, SseEnd::Complete);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert!(events.iter().all(|e| e.event.is_none() && e.id.is_none()));
    assert_eq!(*offsets.last().unwrap(), bytes.len() as u64);
}

#[test]
fn anthropic_fixture_without_final_newline_reports_the_truncated_message_stop() {
    let bytes = std::fs::read(providers_dir().join("anthropic-messages-stream.sse")).unwrap();
    let (events, end, _) = decode_whole(&bytes);
    assert_eq!(
        events.first().unwrap().event.as_deref(),
        Some("message_start")
    );
    assert_eq!(events.len(), 8);
    let SseEnd::Truncated { event: Some(last) } = end else {
        panic!("expected truncation, got {end:?}")
    };
    assert_eq!(last.event.as_deref(), Some("message_stop"));
    assert_eq!(last.data, r#"{"type":"message_stop"}"#);
}

#[test]
fn gemini_crlf_stream_decodes_with_crlf_delimiters() {
    let bytes = std::fs::read(providers_dir().join("gemini-streamgeneratecontent.sse")).unwrap();
    let (events, end, _) = decode_whole(&bytes);
    assert_eq!(end, SseEnd::Complete);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| !e.data.contains('\r')));
}

#[derive(serde::Deserialize)]
struct Expected {
    end: String,
    #[serde(default)]
    truncated_data: Option<String>,
    events: Vec<ExpectedEvent>,
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct ExpectedEvent {
    #[serde(default)]
    event: Option<String>,
    data: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    retry: Option<u64>,
}

#[test]
fn hand_written_edge_cases_decode_as_expected_at_every_split() {
    let files = files_with_ext(&cases_dir(), "sse");
    assert!(files.len() >= 4);
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let expected: Expected =
            serde_json::from_slice(&std::fs::read(path.with_extension("expected.json")).unwrap())
                .unwrap();
        let (events, end, _) = decode_whole(&bytes);
        let got: Vec<ExpectedEvent> = events
            .into_iter()
            .map(|e| ExpectedEvent {
                event: e.event,
                data: e.data,
                id: e.id,
                retry: e.retry,
            })
            .collect();
        assert_eq!(got, expected.events, "{name}");
        match (expected.end.as_str(), end) {
            ("complete", SseEnd::Complete) => {}
            ("truncated", SseEnd::Truncated { event }) => {
                assert_eq!(event.map(|e| e.data), expected.truncated_data, "{name}");
            }
            (want, got) => panic!("{name}: expected end {want}, got {got:?}"),
        }
        assert_split_invariant(&name, &bytes);
    }
}

#[test]
fn encoded_events_decode_back_to_the_same_events() {
    for path in files_with_ext(&providers_dir(), "sse")
        .into_iter()
        .chain(files_with_ext(&cases_dir(), "sse"))
    {
        let (events, _, _) = decode_whole(&std::fs::read(&path).unwrap());
        let mut encoded = Vec::new();
        for e in &events {
            encoded.extend_from_slice(&e.to_bytes());
        }
        let (again, end, _) = decode_whole(&encoded);
        assert_eq!(again, events, "{}", path.display());
        assert_eq!(end, SseEnd::Complete);
    }
}

#[test]
fn encoder_splits_multiline_data_and_neutralises_line_breaks_in_names() {
    let event = SseEvent {
        event: Some("a\nb".into()),
        data: "x\r\ny\rz\n".into(),
        id: Some("1".into()),
        retry: Some(5),
    };
    let bytes = event.to_bytes();
    assert_eq!(
        bytes,
        b"event: a b\nid: 1\nretry: 5\ndata: x\ndata: y\ndata: z\ndata: \n\n"
    );
    let (events, _, _) = decode_whole(&bytes);
    assert_eq!(
        events,
        vec![SseEvent {
            event: Some("a b".into()),
            data: "x\ny\nz\n".into(),
            ..event
        }]
    );

    let mut out = Vec::new();
    encode_comment(&mut out, "keep\nalive");
    encode_data(&mut out, Some("message_stop"), r#"{"type":"message_stop"}"#);
    assert_eq!(
        out,
        b": keep alive\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    );
}

#[test]
fn a_partial_bom_is_kept_as_data_and_a_full_one_is_dropped() {
    let (events, _, _) = decode_chunks([&b"\xef\xbb"[..], b"\xbfdata: a\n\n"]);
    assert_eq!(events, vec![SseEvent::data("a")]);
    let (events, _, _) = decode_chunks([&b"\xef"[..], b"data: a\n\n"]);
    assert!(
        events.is_empty(),
        "a broken BOM makes the first line an unknown field"
    );
    let (events, end, _) = decode_chunks([&b"\xef\xbb"[..]]);
    assert!(events.is_empty());
    assert_eq!(end, SseEnd::Truncated { event: None });
}

#[test]
fn an_empty_stream_and_a_stream_of_blank_lines_are_complete() {
    assert_eq!(decode_whole(b""), (vec![], SseEnd::Complete, vec![]));
    assert_eq!(decode_whole(b"\n\r\n\r").1, SseEnd::Complete);
    assert_eq!(decode_whole(b": ping\n\n").0, vec![]);
}

#[test]
fn oversized_events_stop_the_decoder_with_an_error() {
    let mut decoder = SseDecoder::with_max_event_bytes(16);
    assert!(decoder.feed(b"data: 0123456789\n", |_| {}).is_ok());
    assert_eq!(
        decoder.feed(b"data: 0123456789\n", |_| {}),
        Err(SseError::EventTooLarge { limit: 16 })
    );
    assert!(decoder.feed(b"\n", |_| {}).is_err());
    let mut decoder = SseDecoder::with_max_event_bytes(12);
    assert!(decoder.feed(b"data: 01234", |_| {}).is_ok());
    assert!(decoder.feed(b"56789", |_| {}).is_err());
}

/// A small deterministic generator for fuzz-style inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn random_bytes_never_panic_and_decode_the_same_in_any_chunking() {
    let alphabet: &[u8] = b"data:event:id:retry: \r\n\n\r:x{}\xef\xbb\xbf\xff\x00123";
    let mut rng = Lcg(42);
    for _ in 0..300 {
        let len = (rng.next() % 200) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
            .collect();
        let whole = decode_whole(&bytes);
        let mut chunks = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let n = 1 + (rng.next() as usize) % rest.len();
            let (a, b) = rest.split_at(n);
            chunks.push(a);
            rest = b;
        }
        let got = decode_chunks(chunks);
        assert_eq!((got.0, got.1), (whole.0, whole.1), "{bytes:?}");
    }
}

#[test]
fn comment_lines_are_counted_though_no_event_carries_them() {
    let mut d = SseDecoder::new();
    let mut events = 0;
    d.feed(b": keep-alive\n\ndata: 1\n: inside an event\n\n:x", |_| {
        events += 1
    })
    .unwrap();
    assert_eq!(events, 1);
    assert_eq!(d.comments(), 2, "the last line is not complete yet");
    d.feed(b"\n", |_| events += 1).unwrap();
    assert_eq!(d.comments(), 3);
}
