//! Anthropic Messages SSE -> hub chunks, for any split of the upstream body.
//!
//! `message_start` gives the id, model and input usage and becomes the first chunk (role
//! `assistant`); text, thinking and `input_json_delta` deltas become content, reasoning and tool
//! argument deltas; `message_delta` carries the stop reason (-> `finish_reason`) and the
//! cumulative output usage; `message_stop` yields the final usage-only chunk. `ping` and
//! `content_block_stop` add nothing; `error` events become [`HubEvent::Error`].

use std::borrow::Cow;

use aigw_shared::stream::sse::{SseDecoder, SseEnd};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::str_of;
use crate::hub::{ChatChunk, Delta, HubEvent, Usage};
use crate::translate::errors;
use crate::translate::kit::response::{self as kit, ChunkHead, ToolIndex};
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub fn stop_reason_to_finish(reason: &str) -> &'static str {
    kit::stop_reason_to_finish(reason, &["refusal"])
}

/// Anthropic usage -> hub usage (OpenAI's `prompt_tokens` counts cached and cache-written input).
pub fn usage_to_hub(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    kit::cached_usage(
        n("input_tokens"),
        n("cache_read_input_tokens"),
        n("cache_creation_input_tokens"),
        n("output_tokens"),
    )
}

/// A `content_block_delta` event, read borrowed: most events of a stream are these, so they skip
/// building a `serde_json::Value`.
#[derive(Deserialize)]
struct BlockDeltaEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: u64,
    #[serde(borrow)]
    delta: Option<BlockDelta<'a>>,
}

/// The `delta` of a [`BlockDeltaEvent`].
#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
}

/// The stateful translator.
pub struct AnthropicSseToHub {
    decoder: SseDecoder,
    head: ChunkHead,
    /// Usage so far as Anthropic reports it (message_start, then cumulative message_delta).
    usage: Map<String, Value>,
    /// Anthropic block index -> OpenAI tool-call index.
    tools: ToolIndex,
    started: bool,
    done: bool,
}

impl AnthropicSseToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: SseDecoder::new(),
            head: ChunkHead::new(head),
            usage: Map::new(),
            tools: ToolIndex::default(),
            started: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> ChatChunk {
        self.head.delta(0, delta, finish)
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
        if data.contains("\"content_block_delta\"") {
            if let Ok(e) = serde_json::from_str::<BlockDeltaEvent<'_>>(data) {
                if e.kind == "content_block_delta" {
                    self.block_delta(&e, out);
                    return Ok(());
                }
            }
        }
        let v = kit::parse_event(data)?;
        match str_of(&v, "type") {
            "message_start" => self.message_start(&v, out),
            "content_block_start" => self.block_start(&v, out),
            // Read typed above unless the event repeats a key (the typed parse refuses that;
            // the value keeps the last one, as JSON parsers do): read again from the value.
            "content_block_delta" => {
                if let Ok(e) = serde_json::from_str::<BlockDeltaEvent<'_>>(&v.to_string()) {
                    self.block_delta(&e, out);
                }
            }
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
        self.head.id = str_of(msg, "id").to_owned();
        if let Some(m) = msg.get("model").and_then(Value::as_str) {
            self.head.model = m.to_owned();
        }
        self.merge_usage(msg.get("usage"));
        self.started = true;
        out.push(HubEvent::Chunk(self.chunk(kit::role_delta(), None)));
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<HubEvent>) {
        let block = v.get("content_block").unwrap_or(&Value::Null);
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match str_of(block, "type") {
            "tool_use" => {
                let call = kit::tool_call_start(
                    self.tools.open(index),
                    str_of(block, "id").to_owned(),
                    str_of(block, "name").to_owned(),
                    String::new(),
                );
                let delta = kit::tool_calls_delta(vec![call]);
                out.push(HubEvent::Chunk(self.chunk(delta, None)));
            }
            "text" if !str_of(block, "text").is_empty() => {
                let delta = kit::text_delta(str_of(block, "text").to_owned());
                out.push(HubEvent::Chunk(self.chunk(delta, None)));
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, e: &BlockDeltaEvent<'_>, out: &mut Vec<HubEvent>) {
        let Some(d) = &e.delta else { return };
        let text = |t: &Option<Cow<'_, str>>| t.as_deref().unwrap_or("").to_owned();
        let delta = match d.kind.as_ref() {
            "text_delta" => kit::text_delta(text(&d.text)),
            "thinking_delta" => kit::reasoning_delta(text(&d.thinking)),
            "input_json_delta" => {
                let part = d.partial_json.as_deref().unwrap_or("");
                let Some(tool_index) = self.tools.get(e.index) else {
                    return;
                };
                if part.is_empty() {
                    return;
                }
                kit::tool_calls_delta(vec![kit::tool_call_arguments(tool_index, part.to_owned())])
            }
            _ => return,
        };
        out.push(HubEvent::Chunk(self.chunk(delta, None)));
    }

    fn message_stop(&mut self, out: &mut Vec<HubEvent>) {
        let usage = usage_to_hub(&Value::Object(self.usage.clone()));
        out.push(HubEvent::Chunk(self.head.usage(usage)));
        self.done = true;
    }
}

impl ResponseTranslator for AnthropicSseToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        // The decoder is moved out for the call so each event is read in place (no copy).
        let mut decoder = std::mem::take(&mut self.decoder);
        let mut failure = None;
        let framed = decoder.feed(chunk, |ev| {
            if failure.is_none() && !self.done {
                failure = self.on_event(ev.data, out).err();
            }
        });
        self.decoder = decoder;
        if let Some(e) = failure {
            return Err(e);
        }
        framed.map_err(|e| TranslateError::Upstream(e.to_string()))
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
            Ok(())
        } else {
            Err(kit::ended_early(self.started, "message_stop"))
        }
    }

    fn complete(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(events: &[HubEvent]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                HubEvent::Chunk(c) => c.choices.first()?.delta.content.clone(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_delta_event_with_a_repeated_key_is_still_read() {
        let head = ResponseHead {
            status: 200,
            content_type: "text/event-stream".into(),
            stream: true,
            model: "m".into(),
            created: 1,
        };
        let mut t = AnthropicSseToHub::new(&head);
        let mut out = Vec::new();
        let body = "event: content_block_delta\n\
            data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"one\"}}\n\n\
            event: content_block_delta\n\
            data: {\"type\":\"x\",\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" two\",\"text\":\" 2\"}}\n\n";
        t.feed(body.as_bytes(), &mut out).unwrap_or_default();
        assert_eq!(text_of(&out), "one 2", "the last of a repeated key wins");
    }
}
