//! Hub events -> Anthropic client bytes: a `message` JSON, or the Messages SSE sequence
//! `message_start`, `content_block_start` / `_delta` / `_stop` (text, thinking, and tool_use with
//! `input_json_delta`), `message_delta` (stop_reason and usage, sent once the upstream is done so
//! the final usage is known) and `message_stop`.

use aigw_shared::error::{ClientError, ClientProtocol};
use serde_json::{json, Value};

use crate::hub::{ChatChunk, ChatResponse, HubEvent, Usage};
use crate::translate::ClientEncoder;

/// OpenAI `finish_reason` -> Anthropic `stop_reason`.
pub fn finish_to_stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Hub usage -> Anthropic usage (Anthropic's `input_tokens` excludes cache reads and writes).
pub fn usage_to_anthropic(u: &Usage) -> Value {
    let (read, write) = (u.cached(), u.cache_creation());
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(read).saturating_sub(write),
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    })
}

/// The content block open in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text,
    Thinking,
    Tool(u32),
}

/// Encoder for an Anthropic client.
#[derive(Debug)]
pub struct AnthropicEncoder {
    stream: bool,
    model: String,
    started: bool,
    block: Block,
    next_index: u32,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    failed: bool,
    wrote: bool,
}

fn event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

impl AnthropicEncoder {
    /// An encoder; `model` is reported when the upstream names none.
    pub fn new(stream: bool, model: &str) -> Self {
        Self {
            stream,
            model: model.to_owned(),
            started: false,
            block: Block::None,
            next_index: 0,
            stop_reason: None,
            usage: None,
            failed: false,
            wrote: false,
        }
    }

    fn start(&mut self, id: &str, model: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if !model.is_empty() {
            self.model = model.to_owned();
        }
        let message = json!({
            "id": id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event(
            out,
            "message_start",
            &json!({"type":"message_start","message":message}),
        );
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.block != Block::None {
            let index = self.next_index.saturating_sub(1);
            event(
                out,
                "content_block_stop",
                &json!({"type":"content_block_stop","index":index}),
            );
            self.block = Block::None;
        }
    }

    fn open_block(&mut self, block: Block, content: Value, out: &mut Vec<u8>) -> u32 {
        self.close_block(out);
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.block = block;
        event(
            out,
            "content_block_start",
            &json!({"type":"content_block_start","index":index,"content_block":content}),
        );
        index
    }

    fn delta(&self, delta: Value, out: &mut Vec<u8>) {
        let index = self.next_index.saturating_sub(1);
        event(
            out,
            "content_block_delta",
            &json!({"type":"content_block_delta","index":index,"delta":delta}),
        );
    }

    fn chunk(&mut self, c: ChatChunk, out: &mut Vec<u8>) {
        self.start(&c.id, &c.model, out);
        if let Some(u) = c.usage {
            self.usage = Some(u);
        }
        for choice in c.choices.into_iter().filter(|ch| ch.index == 0) {
            let d = choice.delta;
            if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
                if self.block != Block::Thinking {
                    self.open_block(
                        Block::Thinking,
                        json!({"type":"thinking","thinking":""}),
                        out,
                    );
                }
                self.delta(json!({"type":"thinking_delta","thinking":r}), out);
            }
            if let Some(t) = d.content.filter(|t| !t.is_empty()) {
                if self.block != Block::Text {
                    self.open_block(Block::Text, json!({"type":"text","text":""}), out);
                }
                self.delta(json!({"type":"text_delta","text":t}), out);
            }
            for tc in d.tool_calls.into_iter().flatten() {
                let f = tc.function.unwrap_or_default();
                if tc.id.is_some() || self.block != Block::Tool(tc.index) {
                    let start = json!({"type":"tool_use","id":tc.id.unwrap_or_default(),
                        "name":f.name.unwrap_or_default(),"input":{}});
                    self.open_block(Block::Tool(tc.index), start, out);
                }
                if let Some(a) = f.arguments.filter(|a| !a.is_empty()) {
                    self.delta(json!({"type":"input_json_delta","partial_json":a}), out);
                }
            }
            if let Some(f) = choice.finish_reason {
                self.stop_reason = Some(finish_to_stop_reason(&f));
            }
        }
    }

    fn write_error(&mut self, e: &ClientError, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.failed = true;
        if self.stream {
            out.extend_from_slice(&e.to_sse_event(ClientProtocol::Anthropic));
        } else if !self.wrote {
            out.extend_from_slice(&e.body(ClientProtocol::Anthropic));
        }
        self.wrote = true;
    }
}

/// A hub response -> an Anthropic `message` object.
pub fn response_to_message(r: &ChatResponse, fallback_model: &str) -> Value {
    let mut content = Vec::new();
    let choice = r.choices.iter().find(|c| c.index == 0);
    let mut stop = "end_turn";
    if let Some(c) = choice {
        if let Some(t) = c
            .message
            .reasoning_content
            .as_ref()
            .filter(|t| !t.is_empty())
        {
            content.push(json!({"type":"thinking","thinking":t,"signature":""}));
        }
        if let Some(t) = c.message.content.as_ref().filter(|t| !t.is_empty()) {
            content.push(json!({"type":"text","text":t}));
        }
        for call in c.message.tool_calls.iter().flatten() {
            let input: Value = serde_json::from_str(&call.function.arguments).unwrap_or(json!({}));
            content.push(
                json!({"type":"tool_use","id":call.id,"name":call.function.name,"input":input}),
            );
        }
        stop = c
            .finish_reason
            .as_deref()
            .map_or("end_turn", finish_to_stop_reason);
    }
    let model = if r.model.is_empty() {
        fallback_model
    } else {
        &r.model
    };
    let usage = r
        .usage
        .as_ref()
        .map_or_else(|| usage_to_anthropic(&Usage::default()), usage_to_anthropic);
    json!({"id": r.id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop, "stop_sequence": null, "usage": usage})
}

impl ClientEncoder for AnthropicEncoder {
    fn content_type(&self) -> &'static str {
        if self.stream {
            "text/event-stream"
        } else {
            "application/json"
        }
    }

    fn encode(&mut self, ev: HubEvent, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        match ev {
            HubEvent::Chunk(c) => self.chunk(c, out),
            HubEvent::Response(r) => {
                let msg = response_to_message(&r, &self.model);
                if serde_json::to_writer(&mut *out, &msg).is_err() {
                    out.extend_from_slice(b"{}");
                }
                self.wrote = true;
            }
            HubEvent::Error(e) => self.write_error(&e, out),
        }
    }

    fn finish(&mut self, error: Option<ClientError>, out: &mut Vec<u8>) {
        if let Some(e) = error {
            self.write_error(&e, out);
        }
        if !self.stream || self.failed {
            return;
        }
        self.start("msg_gateway", "", out);
        self.close_block(out);
        let usage = self
            .usage
            .as_ref()
            .map_or_else(|| usage_to_anthropic(&Usage::default()), usage_to_anthropic);
        let delta = json!({"type":"message_delta",
            "delta":{"stop_reason":self.stop_reason.unwrap_or("end_turn"),"stop_sequence":null},
            "usage":usage});
        event(out, "message_delta", &delta);
        event(out, "message_stop", &json!({"type":"message_stop"}));
    }
}
