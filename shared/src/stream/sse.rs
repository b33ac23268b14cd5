//! Server-sent events: an incremental decoder and an encoder.
//!
//! The decoder follows the WHATWG "event stream interpretation" rules: lines end with LF, CRLF or a
//! lone CR; a blank line dispatches the event; lines starting with `:` are comments; a field without
//! a colon has an empty value; one space after the colon is dropped; several `data` lines are joined
//! with `\n`; an event without any `data` line is not dispatched; a UTF-8 BOM at the very start is
//! skipped; invalid UTF-8 is replaced with U+FFFD. Bytes can arrive split anywhere, including between
//! the CR and LF of a CRLF or inside the BOM. Unlike a browser, `id` is reported per event (it does
//! not carry over to later events) and `retry` only when it arrives with an event.
//!
//! Allocation: the decoder keeps one line buffer and one event buffer and reuses their capacity, so
//! decoding allocates only when an event is larger than any before it. Lines that end inside the
//! chunk they started in are not copied at all. Events are handed to a callback as [`SseEventRef`]
//! borrowing those buffers; [`SseDecoder::feed_owned`] collects owned [`SseEvent`]s instead.

#![warn(clippy::arithmetic_side_effects)]

use std::borrow::Cow;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
/// `bom_matched` value once the start of the stream has been checked.
const BOM_DONE: usize = usize::MAX;

/// The default cap on one event (its current line plus its data), 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

/// One dispatched event, borrowing the decoder's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    /// The `event` field, if the event had one (browsers then call it `message`).
    pub event: Option<&'a str>,
    /// The `data` lines joined with `\n`.
    pub data: &'a str,
    /// The `id` field, if this event had one.
    pub id: Option<&'a str>,
    /// The `retry` field (milliseconds), if this event had a valid one.
    pub retry: Option<u64>,
    /// Stream offset just past the blank line that ended this event: everything before it has been
    /// fully decoded. Useful to forward or hold back whole events. When that line ended with a CR
    /// that was the last byte of a chunk, an LF at the start of the next chunk belongs to it too.
    pub end_offset: u64,
}

impl SseEventRef<'_> {
    /// An owned copy.
    pub fn to_owned_event(&self) -> SseEvent {
        SseEvent {
            event: self.event.map(str::to_owned),
            data: self.data.to_owned(),
            id: self.id.map(str::to_owned),
            retry: self.retry,
        }
    }
}

/// An owned event, as decoded or to be encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field.
    pub event: Option<String>,
    /// The data (lines joined with `\n`).
    pub data: String,
    /// The `id` field.
    pub id: Option<String>,
    /// The `retry` field in milliseconds.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// A `data`-only event.
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// An event with a name and data.
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            event: Some(event.into()),
            data: data.into(),
            ..Self::default()
        }
    }

    /// Encode this event (see [`encode_event`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len().saturating_add(32));
        encode_event(&mut out, self);
        out
    }
}

/// How a stream ended, from [`SseDecoder::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEnd {
    /// The stream ended on an event boundary.
    Complete,
    /// The stream ended in the middle of an event (no blank line after its last field). `event` is
    /// what that event would have been had a blank line followed, when it had any data.
    Truncated {
        /// The unterminated event, if it carried data.
        event: Option<SseEvent>,
    },
}

/// Why decoding stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event grew beyond the configured limit; the decoder refuses further input.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Incremental SSE decoder. Feed byte chunks as they arrive; complete events come out in order.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    line: Vec<u8>,
    pending_cr: bool,
    bom_matched: usize,
    event: String,
    has_event: bool,
    data: String,
    has_data: bool,
    id: String,
    has_id: bool,
    retry: Option<u64>,
    in_event: bool,
    offset: u64,
    /// Where (in bytes fed) the last event or comment ended: everything before it is whole.
    boundary: u64,
    max_event_bytes: usize,
    failed: bool,
    comments: u64,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default event size cap ([`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that fails when one event (pending line plus data) exceeds `limit` bytes.
    pub fn with_max_event_bytes(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            pending_cr: false,
            bom_matched: 0,
            event: String::new(),
            has_event: false,
            data: String::new(),
            has_data: false,
            id: String::new(),
            has_id: false,
            retry: None,
            in_event: false,
            offset: 0,
            boundary: 0,
            max_event_bytes: limit,
            failed: false,
            comments: 0,
        }
    }

    /// Comment lines (`: keep-alive`) seen so far: a rewriter that re-encodes events can pass
    /// keep-alives on (the decoder itself drops comments, as the SSE spec says).
    pub fn comments(&self) -> u64 {
        self.comments
    }

    /// Total bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.offset
    }

    /// Where (in bytes fed) the last complete event, blank line or comment line outside an
    /// event ended: the bytes before it hold no partial event (keep-alive comments included).
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Decode one chunk, calling `on_event` for every event it completes.
    pub fn feed<F>(&mut self, chunk: &[u8], mut on_event: F) -> Result<(), SseError>
    where
        F: FnMut(SseEventRef<'_>),
    {
        if self.failed {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        let base = self.offset;
        self.offset = base.saturating_add(chunk.len() as u64);
        let mut rest = self.skip_bom(chunk);
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if let Some((b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', rest) {
            let (line, after) = rest.split_at(pos);
            let mut after = after.get(1..).unwrap_or_default();
            if rest.get(pos) == Some(&b'\r') {
                match after.split_first() {
                    Some((b'\n', tail)) => after = tail,
                    None => self.pending_cr = true,
                    Some(_) => {}
                }
            }
            let end_offset = base.saturating_add(chunk.len().saturating_sub(after.len()) as u64);
            if self.line.is_empty() {
                self.check_size(line.len())?;
                self.process_line(line, end_offset, &mut on_event);
            } else {
                self.check_size(self.line.len().saturating_add(line.len()))?;
                let mut buffered = std::mem::take(&mut self.line);
                buffered.extend_from_slice(line);
                self.process_line(&buffered, end_offset, &mut on_event);
                buffered.clear();
                self.line = buffered;
            }
            rest = after;
        }
        if !rest.is_empty() {
            self.check_size(self.line.len().saturating_add(rest.len()))?;
            self.line.extend_from_slice(rest);
        }
        Ok(())
    }

    /// Decode one chunk and return the completed events as owned values.
    pub fn feed_owned(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        self.feed(chunk, |e| events.push(e.to_owned_event()))?;
        Ok(events)
    }

    /// The stream has ended: report whether it stopped mid-event, and reset the decoder.
    pub fn finish(&mut self) -> SseEnd {
        if self.bom_matched != BOM_DONE {
            let matched = BOM.get(..self.bom_matched).unwrap_or_default();
            self.line.extend_from_slice(matched);
        }
        let partial_line = !self.line.is_empty();
        if partial_line {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, self.offset, &mut |_| {});
        }
        let end = if self.has_data {
            SseEnd::Truncated {
                event: Some(self.current().to_owned_event()),
            }
        } else if partial_line || self.in_event {
            SseEnd::Truncated { event: None }
        } else {
            SseEnd::Complete
        };
        *self = Self::with_max_event_bytes(self.max_event_bytes);
        end
    }

    /// Consume the BOM (or the part of it seen so far) at the start of the stream.
    fn skip_bom<'c>(&mut self, chunk: &'c [u8]) -> &'c [u8] {
        let mut rest = chunk;
        while self.bom_matched < BOM.len() {
            let Some((&b, tail)) = rest.split_first() else {
                return rest;
            };
            if BOM.get(self.bom_matched) == Some(&b) {
                self.bom_matched = self.bom_matched.saturating_add(1);
                rest = tail;
            } else {
                let matched = BOM.get(..self.bom_matched).unwrap_or_default();
                self.line.extend_from_slice(matched);
                self.bom_matched = BOM_DONE;
                return rest;
            }
        }
        self.bom_matched = BOM_DONE;
        rest
    }

    fn check_size(&mut self, line_len: usize) -> Result<(), SseError> {
        if line_len.saturating_add(self.data.len()) > self.max_event_bytes {
            self.failed = true;
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn current(&self) -> SseEventRef<'_> {
        SseEventRef {
            event: self.has_event.then_some(self.event.as_str()),
            data: &self.data,
            id: self.has_id.then_some(self.id.as_str()),
            retry: self.retry,
            end_offset: self.offset,
        }
    }

    fn process_line(
        &mut self,
        line: &[u8],
        end_offset: u64,
        on_event: &mut dyn FnMut(SseEventRef<'_>),
    ) {
        if line.is_empty() {
            if self.has_data {
                on_event(SseEventRef {
                    end_offset,
                    ..self.current()
                });
            }
            self.reset_event();
            self.boundary = end_offset;
            return;
        }
        if line.first() == Some(&b':') {
            self.comments = self.comments.saturating_add(1);
            if !self.in_event {
                self.boundary = end_offset;
            }
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = line.get(colon.saturating_add(1)..).unwrap_or_default();
                (
                    line.get(..colon).unwrap_or_default(),
                    value.strip_prefix(b" ").unwrap_or(value),
                )
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&String::from_utf8_lossy(value));
                self.has_event = true;
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.push_str(&String::from_utf8_lossy(value));
                self.has_id = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => return,
        }
        self.in_event = true;
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event.clear();
        self.has_event = false;
        self.id.clear();
        self.has_id = false;
        self.retry = None;
        self.in_event = false;
    }
}

/// Field values must not contain line breaks; replace them with spaces.
fn single_line(value: &str) -> Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        Cow::Owned(value.replace(['\r', '\n'], " "))
    } else {
        Cow::Borrowed(value)
    }
}

/// Append one event to `out`: `event:`, `id:`, `retry:` when set, one `data:` line per line of data
/// (LF, CRLF and CR all split), then the blank line. Line breaks in the name or id become spaces.
pub fn encode_event(out: &mut Vec<u8>, event: &SseEvent) {
    if let Some(name) = &event.event {
        write_field(out, "event", &single_line(name));
    }
    if let Some(id) = &event.id {
        write_field(out, "id", &single_line(id));
    }
    if let Some(retry) = event.retry {
        write_field(out, "retry", &retry.to_string());
    }
    write_data(out, &event.data);
    out.push(b'\n');
}

/// Append a `data`-only event (optionally named) to `out` without building an [`SseEvent`].
pub fn encode_data(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        write_field(out, "event", &single_line(name));
    }
    write_data(out, data);
    out.push(b'\n');
}

/// Append a comment line (`: text`), e.g. a keep-alive. Line breaks in `text` become spaces.
pub fn encode_comment(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b": ");
    out.extend_from_slice(single_line(text).as_bytes());
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

fn write_data(out: &mut Vec<u8>, data: &str) {
    let mut rest = data;
    loop {
        match rest.find(['\r', '\n']) {
            Some(pos) => {
                let (line, tail) = rest.split_at(pos);
                write_field(out, "data", line);
                rest = tail
                    .strip_prefix("\r\n")
                    .or_else(|| tail.get(1..))
                    .unwrap_or_default();
            }
            None => {
                write_field(out, "data", rest);
                return;
            }
        }
    }
}
