//! Test support for the non-OpenAI formats: named-event and CRLF SSE splitting, AWS event-stream
//! decoding, `.b64` fixtures, edited fixture requests and a key-order check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::{fixture, fixture_text, Ordered};

/// Splits a named-event SSE body (Anthropic) into `(event, data)` pairs, asserting the
/// `event: NAME\ndata: JSON` framing. A missing final blank line (as in the SDK fixtures) is
/// tolerated.
pub fn named_events(body: &str) -> Vec<(String, String)> {
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|e| {
            let (event, data) = e
                .split_once('\n')
                .unwrap_or_else(|| panic!("event without data: {e:?}"));
            let name = event
                .strip_prefix("event: ")
                .unwrap_or_else(|| panic!("no `event: `: {e:?}"));
            let data = data
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("no `data: `: {e:?}"));
            assert!(!data.contains('\n'), "one data line expected: {e:?}");
            (name.to_string(), data.to_string())
        })
        .collect()
}

/// Splits a CRLF-framed SSE body (Gemini) into its `data:` payloads.
pub fn crlf_payloads(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\r\n\r\n"),
        "CRLF SSE body must end with a blank line"
    );
    body.strip_suffix("\r\n\r\n")
        .unwrap()
        .split("\r\n\r\n")
        .map(|e| {
            assert!(!e.contains('\n'), "one line per event expected: {e:?}");
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without `data: `: {e:?}"))
                .to_string()
        })
        .collect()
}

/// A decoded AWS event-stream frame: header names and values in order, and the payload text.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsFrame {
    pub headers: Vec<(String, String)>,
    pub payload: String,
}

impl AwsFrame {
    pub fn event_type(&self) -> &str {
        &self.headers[0].1
    }
}

/// Decodes an `application/vnd.amazon.eventstream` body (both CRCs are checked by the decoder).
pub fn aws_frames(bytes: &[u8]) -> Vec<AwsFrame> {
    use aigw_shared::stream::eventstream::EventStreamDecoder;
    let mut decoder = EventStreamDecoder::new();
    let frames = decoder.feed_owned(bytes).unwrap();
    decoder.finish().unwrap();
    frames
        .into_iter()
        .map(|f| AwsFrame {
            headers: f
                .message
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.as_str().unwrap().to_string()))
                .collect(),
            payload: String::from_utf8(f.message.payload.clone()).unwrap(),
        })
        .collect()
}

/// A `.b64` fixture decoded.
pub fn fixture_b64(name: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(fixture_text(name).trim())
        .unwrap()
}

/// A fixture request body with some edits applied (for recorded requests that need, say, a
/// forced tool choice).
pub fn fixture_edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Asserts that every object in `o` has its keys in byte order.
pub fn assert_keys_sorted(o: &Ordered) {
    match o {
        Ordered::Object(fields) => {
            let keys: Vec<&String> = fields.iter().map(|(k, _)| k).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
            fields.iter().for_each(|(_, v)| assert_keys_sorted(v));
        }
        Ordered::Array(items) => items.iter().for_each(assert_keys_sorted),
        Ordered::Scalar(_) => {}
    }
}
