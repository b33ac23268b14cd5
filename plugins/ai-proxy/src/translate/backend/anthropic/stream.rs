//! Anthropic Messages SSE -> hub chunks, for any split of the upstream body.
//!
//! `message_start` gives the id, model and input usage and becomes the first chunk (role
//! `assistant`); text, thinking and `input_json_delta` deltas become content, reasoning and tool
//! argument deltas; `message_delta` carries the stop reason (-> `finish_reason`) and the
//! cumulative output usage; `message_stop` yields the final usage-only chunk. `ping` and
//! `content_block_stop` add nothing; `error` events become [`HubEvent::Error`].

use std::collections::BTreeMap;

use aigw_shared::stream::sse::{SseDecoder, SseEnd};
use serde_json::{Map, Value};

use super::str_of;
use crate::hub::{
    ChatChunk, ChunkChoice, CompletionTokensDetails, Delta, FunctionDelta, HubEvent,
    PromptTokensDetails, ToolCallDelta, Usage,
};
use crate::translate::errors;
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn stop_reason_to_finish(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage -> hub usage (OpenAI's `prompt_tokens` counts cached and cache-written input).
pub fn usage_to_hub(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (input, read, write, output) = (
        n("input_tokens"),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
        n("output_tokens"),
    );
    let prompt = input + read + write;
    Usage {
        prompt_tokens: prompt,
        completion_tokens: output,
        total_tokens: prompt + output,
        prompt_tokens_details: Some(PromptTokensDetails {
            cached_tokens: Some(read),
            cache_creation_tokens: (write > 0).then_some(write),
            extra: Map::new(),
        }),
        completion_tokens_details: None::<CompletionTokensDetails>,
        extra: Map::new(),
    }
}

/// The stateful translator.
pub struct AnthropicSseToHub {
    decoder: SseDecoder,
    id: String,
    model: String,
    created: u64,
    /// Usage so far as Anthropic reports it (message_start, then cumulative message_delta).
    usage: Map<String, Value>,
    /// Anthropic block index -> OpenAI tool-call index.
    tools: BTreeMap<u64, u32>,
    started: bool,
    done: bool,
}

impl AnthropicSseToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: SseDecoder::new(),
            id: String::new(),
            model: head.model.clone(),
            created: head.created,
            usage: Map::new(),
            tools: BTreeMap::new(),
            started: false,
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

    fn merge_usage(&mut self, u: Option<&Value>) {
        if let Some(Value::Object(u)) = u {
            for (k, v) in u {
                if v.is_number() {
                    self.usage.insert(k.clone(), v.clone());
                }
            }
        }
    }

    fn on_event(&mut self, data: &str, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| TranslateError::Upstream(format!("bad stream event: {e}")))?;
        match str_of(&v, "type") {
            "message_start" => self.message_start(&v, out),
            "content_block_start" => self.block_start(&v, out),
            "content_block_delta" => self.block_delta(&v, out),
            "message_delta" => {
                self.merge_usage(v.get("usage"));
                let reason = v
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str);
                if let Some(r) = reason {
                    let c = self.chunk(Delta::default(), Some(stop_reason_to_finish(r)));
                    out.push(HubEvent::Chunk(c));
                }
            }
            "message_stop" => self.message_stop(out),
            "error" => {
                out.push(HubEvent::Error(errors::from_stream_event(&v)));
                self.done = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn message_start(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let msg = v.get("message").unwrap_or(&Value::Null);
        self.id = str_of(msg, "id").to_owned();
        if let Some(m) = msg.get("model").and_then(Value::as_str) {
            self.model = m.to_owned();
        }
        self.merge_usage(msg.get("usage"));
        self.started = true;
        let delta = Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            ..Delta::default()
        };
        out.push(HubEvent::Chunk(self.chunk(delta, None)));
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let block = v.get("content_block").unwrap_or(&Value::Null);
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match str_of(block, "type") {
            "tool_use" => {
                let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.insert(index, tool_index);
                let call = ToolCallDelta {
                    index: tool_index,
                    id: Some(str_of(block, "id").to_owned()),
                    kind: Some("function".into()),
                    function: Some(FunctionDelta {
                        name: Some(str_of(block, "name").to_owned()),
                        arguments: Some(String::new()),
                    }),
                };
                let delta = Delta {
                    tool_calls: Some(vec![call]),
                    ..Delta::default()
                };
                out.push(HubEvent::Chunk(self.chunk(delta, None)));
            }
            "text" if !str_of(block, "text").is_empty() => {
                let delta = Delta {
                    content: Some(str_of(block, "text").to_owned()),
                    ..Delta::default()
                };
                out.push(HubEvent::Chunk(self.chunk(delta, None)));
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let d = v.get("delta").unwrap_or(&Value::Null);
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        let delta = match str_of(d, "type") {
            "text_delta" => Delta {
                content: Some(str_of(d, "text").to_owned()),
                ..Delta::default()
            },
            "thinking_delta" => Delta {
                reasoning_content: Some(str_of(d, "thinking").to_owned()),
                ..Delta::default()
            },
            "input_json_delta" => {
                let part = str_of(d, "partial_json");
                let Some(&tool_index) = self.tools.get(&index) else {
                    return;
                };
                if part.is_empty() {
                    return;
                }
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index: tool_index,
                        function: Some(FunctionDelta {
                            name: None,
                            arguments: Some(part.to_owned()),
                        }),
                        ..ToolCallDelta::default()
                    }]),
                    ..Delta::default()
                }
            }
            _ => return,
        };
        out.push(HubEvent::Chunk(self.chunk(delta, None)));
    }

    fn message_stop(&mut self, out: &mut Vec<HubEvent>) {
        let usage = usage_to_hub(&Value::Object(self.usage.clone()));
        let mut c = self.chunk(Delta::default(), None);
        c.choices.clear();
        c.usage = Some(usage);
        out.push(HubEvent::Chunk(c));
        self.done = true;
    }
}

impl ResponseTranslator for AnthropicSseToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let mut events: Vec<String> = Vec::new();
        self.decoder
            .feed(chunk, |ev| events.push(ev.data.to_owned()))
            .map_err(|e| TranslateError::Upstream(e.to_string()))?;
        for data in events {
            if self.done {
                break;
            }
            self.on_event(&data, out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        // A last event without its blank line is still used when it is complete JSON.
        if let SseEnd::Truncated { event: Some(ev) } = self.decoder.finish() {
            if !self.done {
                self.on_event(&ev.data, out).map_err(|_| truncated())?;
            }
        }
        if self.done {
            Ok(())
        } else if self.started {
            Err(TranslateError::Upstream(
                "the upstream stream ended before message_stop".into(),
            ))
        } else {
            Err(TranslateError::Upstream(
                "the upstream stream ended without any event".into(),
            ))
        }
    }
}

fn truncated() -> TranslateError {
    TranslateError::Upstream("the upstream stream ended in the middle of an event".into())
}
