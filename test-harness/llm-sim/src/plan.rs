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

/// Content type of AWS event streams (Bedrock `converse-stream`).
pub const EVENT_STREAM_AWS: &str = "application/vnd.amazon.eventstream";

/// Extra response headers of a plan, in order.
pub type Headers = Vec<(&'static str, String)>;

/// Role of one stream event in pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Sent with the first token (e.g. OpenAI's `role: assistant` chunk).
    Lead,
    /// Carries one generated token; paced by tokens-per-second.
    Token,
    /// Carries the last generated token and also ends the stream (Gemini's final chunk with
    /// `finishReason`): paced like a token, withheld like a terminator when truncating.
    LastToken,
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

    /// A named SSE event `event: <name>\ndata: <payload>\n\n` (Anthropic's framing).
    pub fn sse_named(kind: EventKind, name: &str, payload: &str) -> Self {
        Event {
            kind,
            bytes: Bytes::from(format!("event: {name}\ndata: {payload}\n\n")),
        }
    }

    /// An event of already framed bytes (CRLF SSE, AWS event-stream frames).
    pub fn raw(kind: EventKind, bytes: impl Into<Bytes>) -> Self {
        Event {
            kind,
            bytes: bytes.into(),
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
        /// Extra response headers.
        headers: Headers,
    },
    /// A streamed body (status 200), sent event by event.
    Stream {
        /// `content-type` header.
        content_type: &'static str,
        /// Events in order.
        events: Vec<Event>,
        /// Extra response headers.
        headers: Headers,
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
            headers: Vec::new(),
        }
    }

    /// A complete body with the given status, content type and generated-token count.
    pub fn full(status: u16, content_type: &'static str, body: Vec<u8>, tokens: u64) -> Self {
        Plan::Full {
            status,
            content_type,
            body: Bytes::from(body),
            tokens,
            headers: Vec::new(),
        }
    }

    /// A stream of events.
    pub fn stream(content_type: &'static str, events: Vec<Event>) -> Self {
        Plan::Stream {
            content_type,
            events,
            headers: Vec::new(),
        }
    }

    /// The plan with one more response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        match &mut self {
            Plan::Full { headers, .. } | Plan::Stream { headers, .. } => {
                headers.push((name, value.into()))
            }
        }
        self
    }

    /// Replaces the body of a complete plan (`x-sim-error-body`); streams are left alone.
    pub fn with_body(mut self, bytes: Vec<u8>) -> Self {
        if let Plan::Full { body, .. } = &mut self {
            *body = Bytes::from(bytes);
        }
        self
    }

    /// A plain text body.
    pub fn text(status: u16, body: &str) -> Self {
        Plan::Full {
            status,
            content_type: TEXT,
            body: Bytes::from(body.to_string()),
            tokens: 0,
            headers: Vec::new(),
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
