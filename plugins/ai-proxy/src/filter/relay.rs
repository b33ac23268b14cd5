//! Same-protocol streams relayed whole events at a time.
//!
//! The bytes pass untouched while they are made of complete, well-formed SSE events — the usual
//! case, since upstreams write whole events, so no chunk is rewritten. A partial event at the
//! end of a chunk waits for its rest. A malformed event (data that is not JSON, or an event over
//! the decoder's size limit) ends the stream there with an in-band error event in the caller's
//! protocol, and so does an end before the stream's own terminator (`[DONE]`, `message_stop`)
//! or an upstream error event: the SDK gets a clean error, never half an event or garbage to
//! decode. The usage is read on the side for the token metrics.

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::llm::{ResponseObserver, Usage};
use aigw_shared::plugin::budget::Reservation;

/// What to do with the chunk just fed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// Pass it as it is.
    Unchanged,
    /// Send these bytes instead.
    Replace(Vec<u8>),
}

/// One same-protocol stream on its way to the client.
pub(crate) struct Relay {
    observer: Box<ResponseObserver>,
    protocol: ClientProtocol,
    /// Upstream bytes released to the client so far.
    released: u64,
    /// Upstream bytes after `released` that wait for the rest of their event.
    held: Vec<u8>,
    /// `held` counted in the VM's memory budget.
    reserved: Reservation,
    /// The gateway ended the stream (a malformed event); later bytes are dropped.
    ended: bool,
    /// The stream ended with an error of the gateway's.
    broken: bool,
}

impl Relay {
    /// A relay reading usage with `observer` (an SSE stream of the caller's own protocol).
    pub(crate) fn new(observer: Box<ResponseObserver>, protocol: ClientProtocol) -> Self {
        Self {
            observer,
            protocol,
            released: 0,
            held: Vec::new(),
            reserved: Reservation::default(),
            ended: false,
            broken: false,
        }
    }

    /// The stream ended with an error event of the gateway's (for the broken-stream metric).
    pub(crate) fn broken(&self) -> bool {
        self.broken
    }

    /// The usage the stream reported (after the end).
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.observer.summary().usage
    }

    /// Take one body chunk received at `now_ns` (`eos`: the last one).
    pub(crate) fn feed(&mut self, chunk: &[u8], now_ns: u64, eos: bool) -> Relayed {
        if self.ended {
            return if chunk.is_empty() {
                Relayed::Unchanged
            } else {
                Relayed::Replace(Vec::new())
            };
        }
        let received = self.released.saturating_add(self.held.len() as u64);
        let end = received.saturating_add(chunk.len() as u64);
        self.observer.feed_quiet(chunk, now_ns);
        let (mut release_to, malformed) = self.observer.clean_prefix();
        let mut error = None;
        let mut close = false;
        if malformed {
            error = Some("upstream sent a malformed stream event");
        } else if eos {
            // `finish` reads a last event that lacks its blank line: complete only if it ends
            // the stream; otherwise the release stops before it (`release_to` is from before).
            let summary = self.observer.finish(now_ns, |_| {});
            if summary.completed || summary.error.is_some() {
                release_to = end;
                // Without its blank line the SDK would never dispatch that last event.
                close = summary.truncated;
            } else {
                error = Some("upstream stream ended before it was complete");
            }
        }
        if error.is_none() && !close && self.held.is_empty() && release_to == end {
            self.released = end;
            return Relayed::Unchanged;
        }
        let mut pending = std::mem::take(&mut self.held);
        pending.extend_from_slice(chunk);
        let n = usize::try_from(release_to.saturating_sub(self.released))
            .unwrap_or(usize::MAX)
            .min(pending.len());
        // Nothing complete yet: the partial event keeps growing in place (splitting at 0 would
        // copy all of it per chunk, quadratic in a large event sent in small chunks).
        let rest = if n == 0 {
            std::mem::take(&mut pending)
        } else {
            pending.split_off(n)
        };
        self.released = self.released.saturating_add(n as u64);
        let mut out = pending;
        if close {
            out.extend_from_slice(b"\n\n");
        }
        if error.is_none() && !eos && !self.reserved.resize(rest.len()) {
            error = Some(
                "the gateway cannot hold this stream's event now: its memory budget is in use",
            );
        }
        if let Some(message) = error {
            self.ended = true;
            self.reserved.resize(0);
            self.broken = true;
            out.extend_from_slice(
                &ClientError::new(ErrorKind::BadGateway, message).to_sse_event(self.protocol),
            );
        } else if !eos {
            self.held = rest;
        }
        if eos {
            // The stream is over: nothing stays held or counted in the budget.
            self.held = Vec::new();
            self.reserved.resize(0);
        }
        Relayed::Replace(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::llm::{Api, ResponseFormat};

    fn relay(api: Api) -> Relay {
        let protocol = if api == Api::AnthropicMessages {
            ClientProtocol::Anthropic
        } else {
            ClientProtocol::OpenAi
        };
        Relay::new(
            Box::new(ResponseObserver::new(api, ResponseFormat::Sse).usage_only()),
            protocol,
        )
    }

    /// What the client receives for `chunks` (the last one ends the stream).
    fn client_bytes(relay: &mut Relay, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            match relay.feed(chunk, 1, i + 1 == chunks.len()) {
                Relayed::Unchanged => out.extend_from_slice(chunk),
                Relayed::Replace(bytes) => out.extend_from_slice(&bytes),
            }
        }
        out
    }

    const OPENAI: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn whole_events_pass_without_a_rewrite() {
        let mut r = relay(Api::ChatCompletions);
        let (a, b) = OPENAI.split_at(48);
        assert_eq!(&a[46..], b"\n\n");
        assert_eq!(r.feed(a, 1, false), Relayed::Unchanged);
        assert_eq!(r.feed(b, 2, true), Relayed::Unchanged);
        assert!(!r.broken());
        assert_eq!(r.usage().map(|u| u.output_tokens), Some(1));
    }

    #[test]
    fn a_complete_stream_split_anywhere_reaches_the_client_byte_for_byte() {
        for cut in 1..OPENAI.len() {
            let mut r = relay(Api::ChatCompletions);
            let (a, b) = OPENAI.split_at(cut);
            assert_eq!(client_bytes(&mut r, &[a, b]), OPENAI, "cut at {cut}");
            assert!(!r.broken());
        }
    }

    #[test]
    fn a_stream_cut_short_ends_with_an_error_event_and_no_half_event() {
        let cut = OPENAI.len() - 20;
        for split in 1..cut {
            let mut r = relay(Api::ChatCompletions);
            let (a, b) = OPENAI[..cut].split_at(split);
            let out = String::from_utf8(client_bytes(&mut r, &[a, b])).unwrap_or_default();
            assert!(r.broken());
            let events: Vec<&str> = out.split("\n\n").filter(|e| !e.is_empty()).collect();
            assert_eq!(events.len(), 2, "{out}");
            assert!(events[0].contains("\"Hi\""));
            assert!(events[1].contains("ended before it was complete"), "{out}");
            assert!(!out.contains("[DONE]"));
        }
    }

    #[test]
    fn a_half_event_at_the_end_never_reaches_the_client() {
        let mut r = relay(Api::ChatCompletions);
        let out = client_bytes(&mut r, &[b"data: {\"choices\":[]}\n\ndata: {\"choi"]);
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(
            out.starts_with("data: {\"choices\":[]}\n\ndata: {\"error\""),
            "{out}"
        );
        assert!(!out.contains("choi\""));
    }

    #[test]
    fn a_partial_event_over_the_vm_budget_ends_the_stream_cleanly() {
        aigw_shared::plugin::budget::set_budget(aigw_shared::plugin::budget::held() + 8);
        let mut r = relay(Api::ChatCompletions);
        let out = client_bytes(
            &mut r,
            &[
                b"data: {\"choices\":[]}\n\ndata: {\"choices\":[{\"delta\"",
                b"more",
            ],
        );
        aigw_shared::plugin::budget::set_budget(aigw_shared::plugin::budget::DEFAULT_BUDGET);
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(
            out.starts_with("data: {\"choices\":[]}\n\ndata: {\"error\""),
            "{out}"
        );
        assert!(out.contains("memory budget"), "{out}");
        assert!(r.broken());
    }

    #[test]
    fn a_large_event_in_small_chunks_is_released_whole_at_its_end() {
        let mut r = relay(Api::ChatCompletions);
        let event = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
            "x".repeat(256 << 10)
        );
        let mut out = Vec::new();
        for piece in event.as_bytes().chunks(64) {
            match r.feed(piece, 1, false) {
                Relayed::Unchanged => out.extend_from_slice(piece),
                Relayed::Replace(bytes) => out.extend_from_slice(&bytes),
            }
        }
        assert_eq!(out, event.as_bytes());
        assert!(!r.broken());
    }

    #[test]
    fn the_end_of_the_stream_gives_its_budget_back() {
        let before = aigw_shared::plugin::budget::held();
        let mut r = relay(Api::ChatCompletions);
        r.feed(b"data: {\"choices\":[]}\n\ndata: [DO", 1, false);
        assert!(
            aigw_shared::plugin::budget::held() > before,
            "the partial event is counted"
        );
        r.feed(b"NE]", 2, true);
        assert_eq!(aigw_shared::plugin::budget::held(), before);
        assert!(!r.broken());
    }

    #[test]
    fn garbage_ends_the_stream_where_it_starts() {
        let mut r = relay(Api::ChatCompletions);
        let first = b"data: {\"choices\":[]}\n\n";
        let out = client_bytes(
            &mut r,
            &[
                first,
                b"data: <html>oops</html>\n\ndata: {\"x\":1}\n\n",
                b"more",
                b"",
            ],
        );
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(out.starts_with("data: {\"choices\":[]}\n\n"));
        assert!(out.contains("malformed stream event"));
        assert!(!out.contains("html") && !out.contains("more"));
        assert!(r.broken());
    }

    #[test]
    fn an_anthropic_stream_is_complete_at_message_stop() {
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let mut r = relay(Api::AnthropicMessages);
        assert_eq!(client_bytes(&mut r, &[stream, b""]), stream.to_vec());
        assert!(!r.broken());
        let mut cut = relay(Api::AnthropicMessages);
        let out = client_bytes(&mut cut, &[&stream[..stream.len() - 10]]);
        let out = String::from_utf8(out).unwrap_or_default();
        assert!(out.contains("event: error"), "{out}");
        assert!(!out.contains("message_stop"));
    }

    #[test]
    fn a_message_stop_without_an_event_line_still_completes_the_stream() {
        let stream =
            b"data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1}}}\n\n\
            data: {\"type\":\"message_stop\"}\n\n";
        let mut r = relay(Api::AnthropicMessages);
        assert_eq!(client_bytes(&mut r, &[stream, b""]), stream.to_vec());
        assert!(!r.broken());
    }

    #[test]
    fn keep_alive_comments_pass_at_once() {
        let mut r = relay(Api::ChatCompletions);
        assert_eq!(
            r.feed(b"data: {\"choices\":[]}\n\n", 1, false),
            Relayed::Unchanged
        );
        assert_eq!(r.feed(b": PROCESSING\n\n", 2, false), Relayed::Unchanged);
        assert_eq!(r.feed(b": still here\n", 3, false), Relayed::Unchanged);
        assert_eq!(r.feed(b"data: [DONE]\n\n", 4, true), Relayed::Unchanged);
        assert!(!r.broken());
    }

    #[test]
    fn an_upstream_error_event_ends_the_stream_as_it_is() {
        let stream =
            b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
        let mut r = relay(Api::ChatCompletions);
        assert_eq!(client_bytes(&mut r, &[stream]), stream.to_vec());
        assert!(!r.broken());
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_closed() {
        let mut r = relay(Api::ChatCompletions);
        let out = client_bytes(&mut r, &[b"data: {\"choices\":[]}\n\ndata: [DONE]"]);
        assert_eq!(out, b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n".to_vec());
    }
}
