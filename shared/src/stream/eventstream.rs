//! AWS event-stream (`application/vnd.amazon.eventstream`): an incremental decoder and an encoder.
//!
//! A frame is `total_length u32 BE | headers_length u32 BE | prelude CRC32 | headers | payload |
//! message CRC32`, where the prelude CRC covers the first 8 bytes and the message CRC everything
//! before it. A header is `name_len u8 | name | type u8 | value` with the ten value types of
//! [`HeaderValue`]. Bytes may arrive split anywhere; every malformed input is an
//! [`EventStreamError`] value, after which the decoder stays failed (framing is lost).

#![warn(clippy::arithmetic_side_effects)]

mod header;

pub use header::{Header, HeaderValue};

use crate::aws::crc32::{crc32, Crc32};
use header::{encode_header, parse_headers};

/// Bytes of prelude (two lengths and the prelude CRC).
const PRELUDE: usize = 12;
/// Fixed overhead of a frame: prelude plus message CRC.
const OVERHEAD: usize = 16;
/// The default cap on a frame, 24 MiB (the limit of AWS's C event-stream library).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 24 << 20;

/// One message: headers in wire order and the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The headers.
    pub headers: Vec<Header>,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// What a message is, from its `:message-type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind<'a> {
    /// `:message-type` = `event`, with its `:event-type` (empty if absent).
    Event(&'a str),
    /// `:message-type` = `exception`, with its `:exception-type` (empty if absent); the payload is
    /// the exception body (JSON with a `message` for Bedrock).
    Exception(&'a str),
    /// `:message-type` = `error`, with `:error-code` and `:error-message`.
    Error {
        /// The `:error-code` header.
        code: &'a str,
        /// The `:error-message` header.
        message: &'a str,
    },
    /// Any other or a missing `:message-type`.
    Other(&'a str),
}

impl Message {
    /// A message with string headers.
    pub fn new(headers: &[(&str, &str)], payload: impl Into<Vec<u8>>) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|(n, v)| Header {
                    name: (*n).to_owned(),
                    value: HeaderValue::String((*v).to_owned()),
                })
                .collect(),
            payload: payload.into(),
        }
    }

    /// A Bedrock-style event: `:event-type`, `:content-type: application/json`, `:message-type: event`.
    pub fn event(event_type: &str, json: impl Into<Vec<u8>>) -> Self {
        Self::new(
            &[
                (":event-type", event_type),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            json,
        )
    }

    /// A modelled exception: `:exception-type`, `:content-type: application/json`, `:message-type: exception`.
    pub fn exception(exception_type: &str, json: impl Into<Vec<u8>>) -> Self {
        Self::new(
            &[
                (":exception-type", exception_type),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json,
        )
    }

    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| &h.value)
    }

    /// The first header named `name` if it is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(HeaderValue::as_str)
    }

    /// Classify by `:message-type`.
    pub fn kind(&self) -> MessageKind<'_> {
        let get = |n: &str| self.header_str(n).unwrap_or("");
        match get(":message-type") {
            "event" => MessageKind::Event(get(":event-type")),
            "exception" => MessageKind::Exception(get(":exception-type")),
            "error" => MessageKind::Error {
                code: get(":error-code"),
                message: get(":error-message"),
            },
            other => MessageKind::Other(other),
        }
    }
}

/// A decoded frame: the message and where and how it was framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Stream offset of the frame's first byte.
    pub offset: u64,
    /// The `total_length` field.
    pub total_length: u32,
    /// The `headers_length` field.
    pub headers_length: u32,
    /// The prelude CRC (verified).
    pub prelude_crc: u32,
    /// The message CRC (verified).
    pub message_crc: u32,
    /// The message.
    pub message: Message,
}

/// Why a stream could not be decoded (offsets are of the frame's first byte).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventStreamError {
    /// The prelude CRC does not match.
    #[error("event-stream frame at {offset}: prelude CRC {actual:#010x} != {expected:#010x}")]
    PreludeCrc {
        /// Frame offset.
        offset: u64,
        /// The CRC in the frame.
        expected: u32,
        /// The CRC computed.
        actual: u32,
    },
    /// The message CRC does not match.
    #[error("event-stream frame at {offset}: message CRC {actual:#010x} != {expected:#010x}")]
    MessageCrc {
        /// Frame offset.
        offset: u64,
        /// The CRC in the frame.
        expected: u32,
        /// The CRC computed.
        actual: u32,
    },
    /// `total_length` is below 16 or `headers_length` does not fit in it.
    #[error(
        "event-stream frame at {offset}: bad lengths total={total_length} headers={headers_length}"
    )]
    BadLengths {
        /// Frame offset.
        offset: u64,
        /// The `total_length` field.
        total_length: u32,
        /// The `headers_length` field.
        headers_length: u32,
    },
    /// The frame is larger than the decoder's limit.
    #[error("event-stream frame at {offset}: {total_length} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Frame offset.
        offset: u64,
        /// The `total_length` field.
        total_length: u32,
        /// The limit.
        max: usize,
    },
    /// The headers section is malformed.
    #[error("event-stream frame at {offset}: bad header: {reason}")]
    BadHeader {
        /// Frame offset.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The stream ended inside a frame.
    #[error("event-stream truncated: {buffered} bytes of an incomplete frame at {offset}")]
    Truncated {
        /// Offset of the incomplete frame.
        offset: u64,
        /// How many of its bytes arrived.
        buffered: usize,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A header name is empty or longer than 255 bytes.
    #[error("header name must be 1..=255 bytes: {0:?}")]
    HeaderName(String),
    /// A string or bytes header value is longer than 65535 bytes.
    #[error("header {0:?}: value longer than 65535 bytes")]
    HeaderValueTooLong(String),
    /// The frame would exceed `u32::MAX` bytes.
    #[error("message too large to frame")]
    TooLarge,
}

/// The incremental decoder. Feed body chunks in order, then call [`EventStreamDecoder::finish`].
#[derive(Debug, Clone)]
pub struct EventStreamDecoder {
    buffer: Vec<u8>,
    /// Stream offset of `buffer[0]`.
    offset: u64,
    max_frame: usize,
    failed: Option<EventStreamError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDecoder {
    /// A decoder with the default frame limit ([`DEFAULT_MAX_FRAME_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A decoder that rejects frames larger than `max` bytes.
    pub fn with_max_frame_bytes(max: usize) -> Self {
        Self {
            buffer: Vec::new(),
            offset: 0,
            max_frame: max.max(OVERHEAD),
            failed: None,
        }
    }

    /// Total bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.offset.saturating_add(self.buffer.len() as u64)
    }

    /// Bytes held of an incomplete frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Feed a chunk; `on_frame` gets each frame completed by it. After an error every later call
    /// returns the same error.
    pub fn feed<F: FnMut(Frame)>(
        &mut self,
        chunk: &[u8],
        mut on_frame: F,
    ) -> Result<(), EventStreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buffer.extend_from_slice(chunk);
        let mut pos = 0usize;
        let result = loop {
            let rest = self.buffer.get(pos..).unwrap_or_default();
            match parse_frame(rest, self.offset.saturating_add(pos as u64), self.max_frame) {
                Ok(Some(frame)) => {
                    pos = pos.saturating_add(frame.total_length as usize);
                    on_frame(frame);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buffer.drain(..pos.min(self.buffer.len()));
        self.offset = self.offset.saturating_add(pos as u64);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buffer = Vec::new();
        }
        result
    }

    /// Feed a chunk and collect its frames.
    pub fn feed_owned(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, EventStreamError> {
        let mut frames = Vec::new();
        self.feed(chunk, |f| frames.push(f))?;
        Ok(frames)
    }

    /// End of stream: an error if a frame is incomplete (or an earlier error happened).
    pub fn finish(&mut self) -> Result<(), EventStreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buffer.is_empty() {
            return Ok(());
        }
        let e = EventStreamError::Truncated {
            offset: self.offset,
            buffered: self.buffer.len(),
        };
        self.failed = Some(e.clone());
        Err(e)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Parse the frame at the start of `bytes`: `Ok(None)` if more bytes are needed. The prelude is
/// checked as soon as its 12 bytes are present.
fn parse_frame(bytes: &[u8], offset: u64, max: usize) -> Result<Option<Frame>, EventStreamError> {
    let (Some(total_length), Some(headers_length), Some(prelude_crc)) =
        (be_u32(bytes, 0), be_u32(bytes, 4), be_u32(bytes, 8))
    else {
        return Ok(None);
    };
    let actual = crc32(bytes.get(..8).unwrap_or_default());
    if actual != prelude_crc {
        return Err(EventStreamError::PreludeCrc {
            offset,
            expected: prelude_crc,
            actual,
        });
    }
    let total = total_length as usize;
    let headers_len = headers_length as usize;
    if total
        .checked_sub(OVERHEAD)
        .is_none_or(|room| headers_len > room)
    {
        return Err(EventStreamError::BadLengths {
            offset,
            total_length,
            headers_length,
        });
    }
    if total > max {
        return Err(EventStreamError::FrameTooLarge {
            offset,
            total_length,
            max,
        });
    }
    let Some(frame) = bytes.get(..total) else {
        return Ok(None);
    };
    // `total` >= OVERHEAD (checked above), so the CRC and the prelude fit.
    let body_end = total.saturating_sub(4);
    let message_crc = be_u32(frame, body_end).unwrap_or_default();
    let mut crc = Crc32::new();
    crc.update(frame.get(..body_end).unwrap_or_default());
    if crc.finish() != message_crc {
        return Err(EventStreamError::MessageCrc {
            offset,
            expected: message_crc,
            actual: crc.finish(),
        });
    }
    let header_bytes = frame
        .get(PRELUDE..PRELUDE.saturating_add(headers_len))
        .unwrap_or_default();
    let headers = parse_headers(header_bytes)
        .map_err(|reason| EventStreamError::BadHeader { offset, reason })?;
    let payload = frame
        .get(PRELUDE.saturating_add(headers_len)..body_end)
        .unwrap_or_default()
        .to_vec();
    Ok(Some(Frame {
        offset,
        total_length,
        headers_length,
        prelude_crc,
        message_crc,
        message: Message { headers, payload },
    }))
}

/// Append the frame of `message` to `out`.
pub fn encode(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut headers = Vec::new();
    for h in &message.headers {
        encode_header(h, &mut headers)?;
    }
    let total = OVERHEAD
        .saturating_add(headers.len())
        .saturating_add(message.payload.len());
    let total_u32 = u32::try_from(total).map_err(|_| EncodeError::TooLarge)?;
    let headers_u32 = u32::try_from(headers.len()).map_err(|_| EncodeError::TooLarge)?;
    let start = out.len();
    out.reserve(total);
    out.extend_from_slice(&total_u32.to_be_bytes());
    out.extend_from_slice(&headers_u32.to_be_bytes());
    let prelude_crc = crc32(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(&message.payload);
    let message_crc = crc32(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&message_crc.to_be_bytes());
    Ok(())
}

/// The frame of `message` as a new buffer.
pub fn encode_to_vec(message: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(message, &mut out)?;
    Ok(out)
}
