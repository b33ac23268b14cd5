//! Watching a forwarded answer pass (never holding or rewriting it) to decide whether it may be
//! stored: HTTP 200, complete (a JSON body that parsed, or a stream that reached `[DONE]` /
//! `message_stop`), finished normally (`stop` / `end_turn`), no error, nothing truncated or
//! malformed, plain answer text only (no tool calls), within the size limit.

use aigw_shared::llm::{Api, DeltaKind, FinishReason, ResponseFormat, ResponseObserver};

use crate::entry::Entry;

/// An answer being watched.
#[derive(Debug)]
pub struct Capture {
    observer: ResponseObserver,
    text: String,
    max_bytes: usize,
    unfit: Option<&'static str>,
}

impl Capture {
    /// Watch an answer to `api` framed as `format`, keeping up to `max_bytes` of text.
    pub fn new(api: Api, format: ResponseFormat, max_bytes: usize) -> Self {
        Self {
            observer: ResponseObserver::new(api, format)
                .with_max_json_bytes(max_bytes.saturating_mul(4).max(1 << 16)),
            text: String::new(),
            max_bytes,
            unfit: None,
        }
    }

    /// One chunk of the answer.
    pub fn feed(&mut self, chunk: &[u8], now_ns: u64) {
        let Self {
            observer,
            text,
            max_bytes,
            unfit,
        } = self;
        observer.feed(chunk, now_ns, |d| take(d, text, *max_bytes, unfit));
    }

    /// The end marker of a stream (`[DONE]`, `message_stop`) was read: the answer is whole even
    /// though the body has not ended yet.
    pub fn complete(&self) -> bool {
        self.observer.format() == ResponseFormat::Sse && self.observer.summary().completed
    }

    /// The answer ended: the entry to store, or why not (for the log).
    pub fn finish(mut self, now_ns: u64, input_estimate: u64) -> Result<Entry, &'static str> {
        let Self {
            observer,
            text,
            max_bytes,
            unfit,
        } = &mut self;
        let s = observer.finish(now_ns, |d| take(d, text, *max_bytes, unfit));
        if let Some(why) = unfit {
            return Err(why);
        }
        if s.error.is_some() {
            return Err("the answer reported an error");
        }
        // A last event without its blank line is still whole when it is the end marker
        // (`[DONE]`, `message_stop`): `completed` says the marker was read.
        if (s.truncated && !s.completed) || s.malformed_events > 0 || s.parse_error.is_some() {
            return Err("the answer was cut or unreadable");
        }
        if !s.completed {
            return Err("the answer did not complete");
        }
        if s.finish_reason != Some(FinishReason::Stop) {
            return Err("the answer did not finish normally");
        }
        if text.is_empty() {
            return Err("the answer has no text");
        }
        let (input_tokens, output_tokens, estimated) = match s.usage {
            Some(u) => (u.input_tokens, u.output_tokens, false),
            None => (input_estimate, s.output_tokens().tokens, true),
        };
        Ok(Entry {
            model: s.model.clone().unwrap_or_default(),
            text: std::mem::take(text),
            input_tokens,
            output_tokens,
            estimated,
            at: now_ns / 1_000_000_000,
        })
    }
}

fn take(
    d: aigw_shared::llm::Delta<'_>,
    text: &mut String,
    max: usize,
    unfit: &mut Option<&'static str>,
) {
    if unfit.is_some() {
        return;
    }
    match d.kind {
        DeltaKind::Content if d.choice == 0 => {
            if text.len().saturating_add(d.text.len()) > max {
                *unfit = Some("the answer is larger than maxAnswerBytes");
                text.clear();
            } else {
                text.push_str(d.text);
            }
        }
        DeltaKind::Content | DeltaKind::Reasoning => {}
        DeltaKind::Refusal => *unfit = Some("the answer is a refusal"),
        DeltaKind::ToolName | DeltaKind::ToolArguments => *unfit = Some("the answer calls tools"),
    }
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
