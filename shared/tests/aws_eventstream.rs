//! Event-stream decoder/encoder tests over AWS's codec vectors and real Bedrock streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::aws::crc32::crc32;
use aigw_shared::stream::eventstream::{
    encode, encode_to_vec, EncodeError, EventStreamDecoder, EventStreamError, Frame, Header,
    HeaderValue, Message, MessageKind,
};
use base64::Engine;

fn providers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers")
}

/// Every `.b64` event-stream sample (codec vectors and Bedrock captures), sorted.
fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(providers_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "b64"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the event-stream samples, found {files:?}"
    );
    files
}

fn load_b64(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Frame> {
    let mut d = EventStreamDecoder::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        d.feed(chunk, |f| frames.push(f)).unwrap();
    }
    d.finish().unwrap();
    frames
}

/// Render frames the way the `*.decoded.txt` reading aids do.
fn render(frames: &[Frame]) -> Vec<String> {
    let mut out = Vec::new();
    for f in frames {
        out.push(format!(
            "frame @{} total_length={} headers_length={} prelude_crc={:#010x} message_crc={:#010x} (both CRC32 verified)",
            f.offset, f.total_length, f.headers_length, f.prelude_crc, f.message_crc
        ));
        for h in &f.message.headers {
            let value = h.value.as_str().expect("samples only carry string headers");
            out.push(format!(
                "  header {} (value type {} = string) = {value}",
                h.name,
                h.value.type_code()
            ));
        }
        out.push(format!(
            "  payload: {}",
            String::from_utf8(f.message.payload.clone()).unwrap()
        ));
    }
    out
}

/// The frame, header and payload lines of a `*.decoded.txt` (other lines are extra reading aids).
fn expected_lines(b64: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(b64.with_extension("decoded.txt")).unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("frame @") || l.starts_with("  header ") || l.starts_with("  payload: ")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn decodes_every_sample_as_its_reading_aid_describes() {
    for path in samples() {
        let bytes = load_b64(&path);
        let frames = decode_chunks([bytes.as_slice()]);
        assert!(!frames.is_empty(), "{path:?}");
        assert_eq!(render(&frames), expected_lines(&path), "{path:?}");
        let last = frames.last().unwrap();
        assert_eq!(
            last.offset + u64::from(last.total_length),
            bytes.len() as u64
        );
    }
}

#[test]
fn decodes_every_sample_identically_when_split_at_any_byte() {
    for path in samples() {
        let bytes = load_b64(&path);
        let whole = decode_chunks([bytes.as_slice()]);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(decode_chunks([a, b]), whole, "{path:?} split at {cut}");
        }
        assert_eq!(
            decode_chunks(bytes.chunks(1)),
            whole,
            "{path:?} byte by byte"
        );
        assert_eq!(
            decode_chunks(bytes.chunks(7)),
            whole,
            "{path:?} in 7-byte chunks"
        );
    }
}

#[test]
fn re_encoding_every_decoded_frame_gives_the_original_bytes() {
    for path in samples() {
        let bytes = load_b64(&path);
        let mut out = Vec::new();
        for f in decode_chunks([bytes.as_slice()]) {
            encode(&f.message, &mut out).unwrap();
        }
        assert_eq!(out, bytes, "{path:?}");
    }
}

#[test]
fn bedrock_frames_are_classified_as_events_with_their_event_type() {
    let bytes = load_b64(&providers_dir().join("bedrock-conversestream-tooluse.b64"));
    let frames = decode_chunks([bytes.as_slice()]);
    let kinds: Vec<MessageKind<'_>> = frames.iter().map(|f| f.message.kind()).collect();
    assert_eq!(kinds.first(), Some(&MessageKind::Event("messageStart")));
    assert!(kinds.contains(&MessageKind::Event("contentBlockStart")));
    assert_eq!(kinds.last(), Some(&MessageKind::Event("metadata")));
}

#[test]
fn exceptions_and_errors_are_surfaced_as_such() {
    let exc = Message::exception("throttlingException", r#"{"message":"Too many requests"}"#);
    let err = Message::new(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "boom"),
        ],
        "",
    );
    let mut bytes = encode_to_vec(&exc).unwrap();
    encode(&err, &mut bytes).unwrap();
    let frames = decode_chunks(bytes.chunks(5));
    assert_eq!(
        frames[0].message.kind(),
        MessageKind::Exception("throttlingException")
    );
    assert_eq!(
        frames[0].message.payload,
        br#"{"message":"Too many requests"}"#
    );
    assert_eq!(
        frames[1].message.kind(),
        MessageKind::Error {
            code: "InternalFailure",
            message: "boom"
        }
    );
    assert_eq!(Message::default().kind(), MessageKind::Other(""));
}

#[test]
fn all_ten_header_value_types_round_trip() {
    let values = [
        HeaderValue::Bool(true),
        HeaderValue::Bool(false),
        HeaderValue::Byte(-7),
        HeaderValue::Int16(-300),
        HeaderValue::Int32(70_000),
        HeaderValue::Int64(-5_000_000_000),
        HeaderValue::Bytes(vec![0, 1, 255]),
        HeaderValue::String("ünïcode".into()),
        HeaderValue::Timestamp(1_440_938_160_000),
        HeaderValue::Uuid(*b"0123456789abcdef"),
    ];
    let message = Message {
        headers: values
            .iter()
            .enumerate()
            .map(|(i, v)| Header {
                name: format!("h{i}"),
                value: v.clone(),
            })
            .collect(),
        payload: b"payload".to_vec(),
    };
    let bytes = encode_to_vec(&message).unwrap();
    let frames = decode_chunks(bytes.chunks(3));
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].message, message);
    let codes: Vec<u8> = frames[0]
        .message
        .headers
        .iter()
        .map(|h| h.value.type_code())
        .collect();
    assert_eq!(codes, (0..=9).collect::<Vec<u8>>());
}

fn first_vector() -> Vec<u8> {
    load_b64(&providers_dir().join("aws-eventstream-vector-one-header.b64"))
}

fn decode_err(bytes: &[u8]) -> EventStreamError {
    let mut d = EventStreamDecoder::new();
    match d.feed(bytes, |_| {}) {
        Err(e) => e,
        Ok(()) => d.finish().unwrap_err(),
    }
}

/// Rewrite a frame's lengths and fix up both CRCs, so that only the lengths are wrong.
fn frame_with_lengths(total: u32, headers: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers.to_be_bytes());
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out
}

#[test]
fn a_corrupted_prelude_is_a_prelude_crc_error() {
    let mut bytes = first_vector();
    bytes[5] ^= 1;
    assert!(matches!(
        decode_err(&bytes),
        EventStreamError::PreludeCrc { offset: 0, .. }
    ));
}

#[test]
fn a_corrupted_payload_is_a_message_crc_error() {
    let mut bytes = first_vector();
    let n = bytes.len();
    bytes[n - 6] ^= 0x20;
    assert!(matches!(
        decode_err(&bytes),
        EventStreamError::MessageCrc { offset: 0, .. }
    ));
}

#[test]
fn impossible_lengths_are_rejected_before_buffering() {
    let short = frame_with_lengths(15, 0, b"");
    assert!(matches!(
        decode_err(&short[..12]),
        EventStreamError::BadLengths {
            total_length: 15,
            ..
        }
    ));
    let headers_too_long = frame_with_lengths(20, 5, b"");
    assert!(matches!(
        decode_err(&headers_too_long[..12]),
        EventStreamError::BadLengths {
            headers_length: 5,
            ..
        }
    ));
    let huge = frame_with_lengths(u32::MAX, 0, b"");
    let mut d = EventStreamDecoder::with_max_frame_bytes(1024);
    let got = d.feed(&huge[..12], |_| {});
    assert!(
        matches!(got, Err(EventStreamError::FrameTooLarge { max: 1024, .. })),
        "{got:?}"
    );
}

#[test]
fn a_stream_ending_inside_a_frame_is_truncated_at_finish() {
    let bytes = load_b64(&providers_dir().join("bedrock-conversestream.b64"));
    let cut = bytes.len() - 3;
    let mut d = EventStreamDecoder::new();
    let frames = d.feed_owned(&bytes[..cut]).unwrap();
    assert_eq!(frames.len(), 8);
    let last_offset = frames
        .last()
        .map(|f| f.offset + u64::from(f.total_length))
        .unwrap();
    assert_eq!(
        d.finish(),
        Err(EventStreamError::Truncated {
            offset: last_offset,
            buffered: cut - last_offset as usize
        })
    );
    let mut fresh = EventStreamDecoder::new();
    fresh.feed(&bytes[..5], |_| {}).unwrap();
    assert_eq!(fresh.buffered(), 5);
    assert!(matches!(
        fresh.finish(),
        Err(EventStreamError::Truncated {
            offset: 0,
            buffered: 5
        })
    ));
}

#[test]
fn after_an_error_the_decoder_stays_failed() {
    let mut bytes = first_vector();
    let good = bytes.clone();
    bytes[5] ^= 1;
    let mut d = EventStreamDecoder::new();
    let first = d.feed(&bytes, |_| {}).unwrap_err();
    assert_eq!(
        d.feed(&good, |_| panic!("no frame after an error")),
        Err(first.clone())
    );
    assert_eq!(d.finish(), Err(first));
}

#[test]
fn a_good_frame_before_a_bad_one_is_still_delivered() {
    let mut bytes = first_vector();
    let mut bad = first_vector();
    bad[0] ^= 0x80;
    bytes.extend_from_slice(&bad);
    let mut d = EventStreamDecoder::new();
    let mut count = 0;
    let err = d.feed(&bytes, |_| count += 1).unwrap_err();
    assert_eq!(count, 1);
    assert!(
        matches!(err, EventStreamError::PreludeCrc { offset: 61, .. }),
        "{err:?}"
    );
}

#[test]
fn malformed_header_sections_are_bad_header_errors() {
    let cases: [(&[u8], &str); 5] = [
        (&[0, 7, 0, 0], "empty header name"),
        (&[1, b'a', 10], "unknown header value type"),
        (
            &[1, b'a', 7, 0, 9, b'x'],
            "value runs past the header section",
        ),
        (&[1, b'a', 7, 0, 1, 0xFF], "string header is not UTF-8"),
        (&[2, 0xC3, 0x28, 0], "header name is not UTF-8"),
    ];
    for (headers, reason) in cases {
        let total = u32::try_from(16 + headers.len()).unwrap();
        let headers_len = u32::try_from(headers.len()).unwrap();
        let frame = frame_with_lengths(total, headers_len, headers);
        assert_eq!(
            decode_err(&frame),
            EventStreamError::BadHeader { offset: 0, reason },
            "{headers:?}"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_of_a_sample_is_an_error_not_a_panic() {
    let bytes = load_b64(&providers_dir().join("bedrock-conversestream.b64"));
    let first_len = 16 + 16 + 100; // covers the prelude, headers and part of the payload
    for i in 0..first_len.min(bytes.len()) {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            let mut d = EventStreamDecoder::new();
            let fed = d.feed(&b, |_| {});
            assert!(
                fed.is_err() || d.finish().is_err(),
                "flip at {i} went unnoticed"
            );
        }
    }
}

#[test]
fn the_encoder_rejects_unframeable_headers() {
    let long_name = Message {
        headers: vec![Header {
            name: "n".repeat(256),
            value: HeaderValue::Bool(true),
        }],
        payload: vec![],
    };
    assert!(matches!(
        encode_to_vec(&long_name),
        Err(EncodeError::HeaderName(_))
    ));
    let empty_name = Message {
        headers: vec![Header {
            name: String::new(),
            value: HeaderValue::Bool(true),
        }],
        payload: vec![],
    };
    assert!(matches!(
        encode_to_vec(&empty_name),
        Err(EncodeError::HeaderName(_))
    ));
    let long_value = Message::new(&[("k", &"v".repeat(65_536))], "");
    assert_eq!(
        encode_to_vec(&long_value),
        Err(EncodeError::HeaderValueTooLong("k".into()))
    );
}

#[test]
fn the_encoder_reproduces_the_aws_codec_vectors() {
    assert_eq!(
        encode_to_vec(&Message::default()).unwrap(),
        load_b64(&providers_dir().join("aws-eventstream-vector-empty.b64"))
    );
    assert_eq!(
        encode_to_vec(&Message::new(&[], "{'foo':'bar'}")).unwrap(),
        load_b64(&providers_dir().join("aws-eventstream-vector-payload.b64"))
    );
    assert_eq!(
        encode_to_vec(&Message::new(
            &[("content-type", "application/json")],
            "{'foo':'bar'}"
        ))
        .unwrap(),
        first_vector()
    );
}
