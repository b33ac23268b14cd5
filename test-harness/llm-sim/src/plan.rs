//! What a handler decides to send, independent of timing: a whole body or a list of stream events.
//! The server turns a [`Plan`] into bytes on the wire and applies the latency knobs.

use bytes::Bytes;

/// Content type of JSON results.
pub const JSON: &str = "application/json";
/// Content type of error bodies (what OpenAI sends for errors).
pub const JSON_ERROR: &str = "application/json; charset=utf-8";
/// Content type of server-sent event streams.
pub const EVENT_STREAM: &str = "text/event-stream";
/// Content type of plain text answers.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Role of one stream event in pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Sent with the first token (e.g. OpenAI's `role: assistant` chunk).
    Lead,
    /// Carries one generated token; paced by tokens-per-second.
    Token,
    /// Sent right after the last token (finish reason, usage).
    Trail,
    /// Marks the normal end of the stream (`data: [DONE]`); never sent when truncating.
    Terminator,
}

/// One framed stream event, exactly as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Pacing role.
    pub kind: EventKind,
    /// Wire bytes, framing included.
    pub bytes: Bytes,
}

impl Event {
    /// An SSE event `data: <payload>\n\n`.
    pub fn sse(kind: EventKind, payload: &str) -> Self {
        Event {
            kind,
            bytes: Bytes::from(format!("data: {payload}\n\n")),
        }
    }
}

/// A response decided by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A complete body.
    Full {
        /// HTTP status.
        status: u16,
        /// `content-type` header.
        content_type: &'static str,
        /// Body bytes.
        body: Bytes,
        /// Generated tokens the body represents (drives simulated generation time).
        tokens: u64,
    },
    /// A streamed body (status 200), sent event by event.
    Stream {
        /// `content-type` header.
        content_type: &'static str,
        /// Events in order.
        events: Vec<Event>,
    },
}

impl Plan {
    /// A JSON body with status 200 and no generation time.
    pub fn json(body: Vec<u8>) -> Self {
        Plan::Full {
            status: 200,
            content_type: JSON,
            body: Bytes::from(body),
            tokens: 0,
        }
    }

    /// A plain text body.
    pub fn text(status: u16, body: &str) -> Self {
        Plan::Full {
            status,
            content_type: TEXT,
            body: Bytes::from(body.to_string()),
            tokens: 0,
        }
    }

    /// HTTP status the plan answers with.
    pub fn status(&self) -> u16 {
        match self {
            Plan::Full { status, .. } => *status,
            Plan::Stream { .. } => 200,
        }
    }
}
