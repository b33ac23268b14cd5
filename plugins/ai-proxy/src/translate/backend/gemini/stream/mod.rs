//! Gemini `streamGenerateContent?alt=sse` -> hub chunks, for any split of the upstream body.
//!
//! Every SSE event (`data: {...}\r\n\r\n`) is a whole `GenerateContentResponse` holding the next
//! piece of each candidate. Per candidate: the first event gives a role chunk (`assistant`,
//! empty content); thought parts become reasoning deltas, text parts content deltas, and each
//! `functionCall` (which Gemini sends whole) one complete tool-call delta with a stable id;
//! `finishReason` becomes a chunk with the mapped `finish_reason`. `usageMetadata` is cumulative
//! in every event, so the last one seen becomes the final usage-only chunk when the body ends. An
//! `{"error":{...}}` event becomes [`HubEvent::Error`] and ends the stream.

use std::collections::BTreeMap;

use aigw_shared::stream::sse::{SseDecoder, SseEnd};
use serde_json::Value;

use super::response::{
    call_id, candidate_index, finish_reason, google_error, read_parts, response_id, usage_to_hub,
};
use crate::hub::{Delta, HubEvent};
use crate::translate::kit::response::{self as kit, finish, ChunkHead};
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// What the stream has said about one candidate.
#[derive(Debug, Default, Clone, Copy)]
struct Candidate {
    calls: u32,
    finished: bool,
}

/// The stateful translator.
pub struct GeminiSseToHub {
    decoder: SseDecoder,
    head: ChunkHead,
    response_id: String,
    candidates: BTreeMap<u32, Candidate>,
    usage: Option<Value>,
    started: bool,
    done: bool,
}

impl GeminiSseToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: SseDecoder::new(),
            head: ChunkHead::new(head),
            response_id: String::new(),
            candidates: BTreeMap::new(),
            usage: None,
            started: false,
            done: false,
        }
    }

    fn chunk(&self, index: u32, delta: Delta, finish: Option<&str>) -> HubEvent {
        HubEvent::Chunk(self.head.delta(index, delta, finish))
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let v = kit::parse_event(data)?;
        if v.get("error").is_some() {
            out.push(HubEvent::Error(google_error(&v)));
            self.done = true;
            return Ok(());
        }
        if !self.started {
            self.started = true;
            self.head.id = response_id(&v, data.as_bytes());
            self.response_id = v
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if let Some(m) = v
                .get("modelVersion")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                m.clone_into(&mut self.head.model);
            }
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(u.clone());
        }
        let candidates = v
            .get("candidates")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (pos, c) in candidates.iter().enumerate() {
            self.on_candidate(c, candidate_index(c, pos), out);
        }
        if candidates.is_empty() && v.pointer("/promptFeedback/blockReason").is_some() {
            self.open(0, out);
            out.push(self.chunk(0, Delta::default(), Some(finish::CONTENT_FILTER)));
            if let Some(state) = self.candidates.get_mut(&0) {
                state.finished = true;
            }
        }
        Ok(())
    }

    /// The role chunk of a candidate seen for the first time.
    fn open(&mut self, index: u32, out: &mut Vec<HubEvent>) -> Candidate {
        if let Some(state) = self.candidates.get(&index) {
            return *state;
        }
        self.candidates.insert(index, Candidate::default());
        out.push(self.chunk(index, kit::role_delta(), None));
        Candidate::default()
    }

    fn on_candidate(&mut self, c: &Value, index: u32, out: &mut Vec<HubEvent>) {
        let mut state = self.open(index, out);
        let parts = read_parts(c);
        if !parts.reasoning.is_empty() {
            out.push(self.chunk(index, kit::reasoning_delta(parts.reasoning), None));
        }
        if !parts.text.is_empty() {
            out.push(self.chunk(index, kit::text_delta(parts.text), None));
        }
        if !parts.calls.is_empty() {
            let mut calls = Vec::with_capacity(parts.calls.len());
            for (name, arguments) in parts.calls {
                let n = state.calls;
                state.calls = n.saturating_add(1);
                let id = call_id(&self.response_id, index, n, &name);
                calls.push(kit::tool_call_start(n, id, name, arguments));
            }
            out.push(self.chunk(index, kit::tool_calls_delta(calls), None));
        }
        if let Some(reason) = c.get("finishReason").and_then(Value::as_str) {
            let finish = finish_reason(reason, state.calls > 0);
            out.push(self.chunk(index, Delta::default(), Some(finish)));
            state.finished = true;
        }
        self.candidates.insert(index, state);
    }

    fn complete(&self) -> bool {
        !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished)
    }
}

impl ResponseTranslator for GeminiSseToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let mut failure = None;
        // The decoder is moved out for the call so the callback can update the rest of `self`.
        let mut decoder = std::mem::take(&mut self.decoder);
        let decoded = decoder.feed(chunk, |ev| {
            if failure.is_none() && !self.done {
                failure = self.on_event(ev.data, out).err();
            }
        });
        self.decoder = decoder;
        if let Some(e) = failure {
            return Err(e);
        }
        if self.done {
            return Ok(());
        }
        decoded.map_err(|e| TranslateError::Upstream(e.to_string()))
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        // A last event without its blank line is still used when it is complete JSON.
        if let SseEnd::Truncated { event: Some(ev) } = self.decoder.finish() {
            if !self.done {
                self.on_event(&ev.data, out)
                    .map_err(|_| kit::truncated_event())?;
            }
        }
        if self.done {
            return Ok(());
        }
        if !self.complete() {
            return Err(kit::ended_early(self.started, "finishReason"));
        }
        if let Some(u) = &self.usage {
            out.push(HubEvent::Chunk(self.head.usage(usage_to_hub(u))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
