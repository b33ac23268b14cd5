//! Bedrock ConverseStream (`application/vnd.amazon.eventstream`) -> hub chunks, for any split of
//! the upstream body.
//!
//! Frames are decoded with [`EventStreamDecoder`] (both CRCs checked). Events: `messageStart` ->
//! the first chunk (role `assistant`); `contentBlockStart` with `toolUse` -> a tool call's id and
//! name; `contentBlockDelta` -> text, reasoning text or tool-argument text; `messageStop` -> the
//! `finish_reason`; `metadata` -> a final usage-only chunk. `contentBlockStop` adds nothing.
//! Exception frames (`:message-type` `exception`, e.g. `throttlingException`) and `error` frames
//! become [`HubEvent::Error`] and end the stream.

use aigw_shared::stream::eventstream::{EventStreamDecoder, Frame, MessageKind};
use serde_json::Value;

use super::response::{exception_to_error, response_id, stop_reason_to_finish, usage_to_hub};
use crate::hub::{ChatChunk, Delta, HubEvent};
use crate::translate::kit::response::{self as kit, str_of, ChunkHead, ToolIndex};
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// The stateful translator.
pub struct ConverseStreamToHub {
    decoder: EventStreamDecoder,
    head: ChunkHead,
    /// Converse content block index -> OpenAI tool-call index.
    tools: ToolIndex,
    started: bool,
    stopped: bool,
    done: bool,
}

impl ConverseStreamToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: EventStreamDecoder::new(),
            head: ChunkHead::new(head),
            tools: ToolIndex::default(),
            started: false,
            stopped: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        self.head.delta(0, delta, finish)
    }

    fn push(&self, delta: Delta, out: &mut Vec<HubEvent>) {
        out.push(HubEvent::Chunk(self.chunk(delta, None)));
    }

    fn on_frame(&mut self, frame: &Frame, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let msg = &frame.message;
        let event = match msg.kind() {
            MessageKind::Event(e) => e,
            MessageKind::Exception(kind) => {
                out.push(HubEvent::Error(exception_to_error(kind, &msg.payload)));
                self.done = true;
                return Ok(());
            }
            MessageKind::Error { code, message } => {
                let body = serde_json::json!({ "message": message }).to_string();
                out.push(HubEvent::Error(exception_to_error(code, body.as_bytes())));
                self.done = true;
                return Ok(());
            }
            MessageKind::Other(_) => return Ok(()),
        };
        let v: Value = serde_json::from_slice(&msg.payload)
            .map_err(|e| TranslateError::Upstream(format!("bad {event} event payload: {e}")))?;
        if !self.started && event != "messageStart" {
            self.start(&msg.payload, out);
        }
        match event {
            "messageStart" => self.start(&msg.payload, out),
            "contentBlockStart" => self.block_start(&v, out),
            "contentBlockDelta" => self.block_delta(&v, out),
            "messageStop" => {
                let reason = v.get("stopReason").and_then(Value::as_str).unwrap_or("");
                let c = self.chunk(Delta::default(), Some(stop_reason_to_finish(reason)));
                out.push(HubEvent::Chunk(c));
                self.stopped = true;
            }
            "metadata" => {
                let usage = usage_to_hub(v.get("usage").unwrap_or(&Value::Null));
                out.push(HubEvent::Chunk(self.head.usage(usage)));
                self.done = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn start(&mut self, seed: &[u8], out: &mut Vec<HubEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        self.head.id = response_id(seed);
        self.push(kit::role_delta(), out);
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let Some(tool) = v.pointer("/start/toolUse") else {
            return;
        };
        let block = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let call = kit::tool_call_start(
            self.tools.open(block),
            str_of(tool, "toolUseId").to_owned(),
            str_of(tool, "name").to_owned(),
            String::new(),
        );
        self.push(kit::tool_calls_delta(vec![call]), out);
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let Some(d) = v.get("delta") else { return };
        let block = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let delta = if let Some(t) = d.get("text").and_then(Value::as_str) {
            kit::text_delta(t.to_owned())
        } else if let Some(r) = d.pointer("/reasoningContent/text").and_then(Value::as_str) {
            kit::reasoning_delta(r.to_owned())
        } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
            let Some(index) = self.tools.get(block) else {
                return;
            };
            if input.is_empty() {
                return;
            }
            kit::tool_calls_delta(vec![kit::tool_call_arguments(index, input.to_owned())])
        } else {
            // Reasoning signatures and redacted reasoning have no OpenAI form.
            return;
        };
        self.push(delta, out);
    }
}

impl ResponseTranslator for ConverseStreamToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let mut frames = Vec::new();
        let decoded = self.decoder.feed(chunk, |f| frames.push(f));
        for frame in &frames {
            if self.done {
                break;
            }
            self.on_frame(frame, out)?;
        }
        if self.done {
            // Whatever follows an exception or the final metadata is not read.
            return Ok(());
        }
        decoded.map_err(|e| TranslateError::Upstream(e.to_string()))
    }

    fn finish(&mut self, _out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let end = self.decoder.finish();
        if self.done || (self.stopped && end.is_ok()) {
            return Ok(());
        }
        if let Err(e) = end {
            return Err(TranslateError::Upstream(e.to_string()));
        }
        Err(kit::ended_early(self.started, "messageStop"))
    }

    fn complete(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests;
