//! Bedrock ConverseStream (`application/vnd.amazon.eventstream`) -> hub chunks, for any split of
//! the upstream body.
//!
//! Frames are decoded with [`EventStreamDecoder`] (both CRCs checked). Events: `messageStart` ->
//! the first chunk (role `assistant`); `contentBlockStart` with `toolUse` -> a tool call's id and
//! name; `contentBlockDelta` -> text, reasoning text or tool-argument text; `messageStop` -> the
//! `finish_reason`; `metadata` -> a final usage-only chunk. `contentBlockStop` adds nothing.
//! Exception frames (`:message-type` `exception`, e.g. `throttlingException`) and `error` frames
//! become [`HubEvent::Error`] and end the stream.

use std::collections::BTreeMap;

use aigw_shared::stream::eventstream::{EventStreamDecoder, Frame, MessageKind};
use serde_json::{Map, Value};

use super::response::{exception_to_error, response_id, stop_reason_to_finish, usage_to_hub};
use crate::hub::{ChatChunk, ChunkChoice, Delta, FunctionDelta, HubEvent, ToolCallDelta};
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// The stateful translator.
pub struct ConverseStreamToHub {
    decoder: EventStreamDecoder,
    id: String,
    model: String,
    created: u64,
    /// Converse content block index -> OpenAI tool-call index.
    tools: BTreeMap<u64, u32>,
    started: bool,
    stopped: bool,
    done: bool,
}

impl ConverseStreamToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: EventStreamDecoder::new(),
            id: String::new(),
            model: head.model.clone(),
            created: head.created,
            tools: BTreeMap::new(),
            started: false,
            stopped: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
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
                let mut c = self.chunk(Delta::default(), None);
                c.choices.clear();
                c.usage = Some(usage_to_hub(v.get("usage").unwrap_or(&Value::Null)));
                out.push(HubEvent::Chunk(c));
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
        self.id = response_id(seed);
        let delta = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        self.push(delta, out);
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let Some(tool) = v.pointer("/start/toolUse") else {
            return;
        };
        let block = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
        self.tools.insert(block, index);
        let text = |k: &str| tool.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let call = ToolCallDelta {
            index,
            id: Some(text("toolUseId")),
            kind: Some("function".into()),
            function: Some(FunctionDelta {
                name: Some(text("name")),
                arguments: Some(String::new()),
            }),
        };
        self.push(
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            },
            out,
        );
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let Some(d) = v.get("delta") else { return };
        let block = v
            .get("contentBlockIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let delta = if let Some(t) = d.get("text").and_then(Value::as_str) {
            Delta {
                content: Some(t.to_owned()),
                ..Delta::default()
            }
        } else if let Some(r) = d.pointer("/reasoningContent/text").and_then(Value::as_str) {
            Delta {
                reasoning_content: Some(r.to_owned()),
                ..Delta::default()
            }
        } else if let Some(input) = d.pointer("/toolUse/input").and_then(Value::as_str) {
            let Some(&index) = self.tools.get(&block) else {
                return;
            };
            if input.is_empty() {
                return;
            }
            let call = ToolCallDelta {
                index,
                function: Some(FunctionDelta {
                    name: None,
                    arguments: Some(input.to_owned()),
                }),
                ..ToolCallDelta::default()
            };
            Delta {
                tool_calls: Some(vec![call]),
                ..Delta::default()
            }
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
        Err(TranslateError::Upstream(if self.started {
            "the upstream stream ended before messageStop".into()
        } else {
            "the upstream stream ended without any event".into()
        }))
    }
}

#[cfg(test)]
mod tests;
