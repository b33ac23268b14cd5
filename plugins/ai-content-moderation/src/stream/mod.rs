//! Streamed answers (SSE) rewritten event by event: the text of each choice / content block
//! goes through its [`Channel`] (output rules, restore), the event is written again with the
//! released text, and an output rule ends the stream in the caller's protocol.
//!
//! * OpenAI: `choices[].delta.content` is checked and restored, `delta.tool_calls[].function
//!   .arguments` restored; text still held when a choice finishes goes out in its finishing
//!   chunk. A cut sends a chunk with the safe message and `finish_reason: "content_filter"`,
//!   then `data: [DONE]`.
//! * Anthropic: `text_delta` text is checked and restored, `input_json_delta` restored; held text
//!   goes out as one more delta before `content_block_stop`. A cut puts the safe message in the
//!   open text block (or a new one), closes it, and ends the message with
//!   `stop_reason: "refusal"` and `message_stop`.
//!
//! * OpenAI Responses API (typed events; [`responses`]): `response.output_text.delta` text is
//!   checked and restored, function call argument deltas restored; held text goes out as one more
//!   delta before the part's `…done` event, and the `…done` events and the final response object
//!   carry the text as released. Later sequence numbers move up by the events added. A cut writes
//!   the safe message as the message's last delta, closes the part and item, and ends with
//!   `response.incomplete` (`incomplete_details.reason: "content_filter"`).
//!
//! After a cut, the rest of the upstream's stream is dropped. Partial events wait in the
//! decoder for their rest, so a stream split at any byte comes out the same.

mod responses;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::stream::sse::{encode_event, SseDecoder, SseEnd, SseEvent};
use serde_json::{json, Value};

use crate::answer::{self, OpenAiMeta};
use crate::config::Config;
use crate::output::{Channel, Cut, Policy, Tally};
use crate::vault::Vault;

/// (choice, index, arguments): OpenAI choice and tool-call index, Anthropic block index.
type Key = (u64, u64, bool);

/// One streamed answer on its way to the client.
#[derive(Debug)]
pub struct StreamFix {
    protocol: ClientProtocol,
    decoder: SseDecoder,
    channels: Vec<(Key, Channel)>,
    meta: OpenAiMeta,
    meta_seen: bool,
    /// Anthropic: the open content block (index, is text).
    open_block: Option<(u64, bool)>,
    next_block: u64,
    ended: bool,
    /// A Responses API event stream: its own bookkeeping.
    responses: Option<Box<responses::State>>,
    /// Why the stream was cut.
    pub cut: Option<Cut>,
    /// Running results.
    pub tally: Tally,
}

impl StreamFix {
    /// A rewriter for a stream in `protocol`.
    pub fn new(protocol: ClientProtocol) -> Self {
        Self {
            protocol,
            decoder: SseDecoder::new(),
            channels: Vec::new(),
            meta: OpenAiMeta::default(),
            meta_seen: false,
            open_block: None,
            next_block: 0,
            ended: false,
            responses: None,
            cut: None,
            tally: Tally::default(),
        }
    }

    /// A rewriter for an OpenAI Responses API event stream.
    pub fn responses() -> Self {
        Self {
            responses: Some(Box::default()),
            ..Self::new(ClientProtocol::OpenAi)
        }
    }

    /// Take one upstream chunk (`eos`: the last); the bytes for the client.
    pub fn feed(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        chunk: &[u8],
        eos: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let mut events = Vec::new();
        let comments = self.decoder.comments();
        if self
            .decoder
            .feed(chunk, |e| events.push(e.to_owned_event()))
            .is_err()
        {
            self.ended = true;
            let err = ClientError::new(
                ErrorKind::BadGateway,
                "upstream sent a stream event too large to check",
            );
            out.extend_from_slice(&err.to_sse_event(self.protocol));
            return out;
        }
        if eos {
            if let SseEnd::Truncated { event: Some(e) } = self.decoder.finish() {
                events.push(e);
            }
        }
        for e in events {
            if self.ended {
                break;
            }
            self.event(config, vault, e, &mut out);
        }
        if eos && !self.ended {
            // A stream that ended without its terminator: what is held still goes out.
            self.flush_all(config, vault, &mut out);
        }
        if self.decoder.comments() > comments && !self.ended {
            // The upstream's keep-alives keep the client's connection (and its proxies) from
            // timing out while the model is silent: one goes on for the chunk's comments.
            aigw_shared::stream::sse::encode_comment(&mut out, "keep-alive");
        }
        out
    }

    fn policy<'a>(&self, config: &'a Config, vault: Option<&'a Vault>, args: bool) -> Policy<'a> {
        Policy {
            rules: (!args && !config.output.is_empty()).then_some(&config.output),
            vault,
            hold_back: config.hold_back_chars,
            json_inner: args,
            pii: (!args && !config.output_pii.kinds.is_empty()).then_some(config),
        }
    }

    /// Feed text to a channel; the released text, or the rule that cuts the stream.
    fn text(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        key: Key,
        piece: &str,
    ) -> Result<String, Cut> {
        let p = self.policy(config, vault, key.2);
        let mut tally = std::mem::take(&mut self.tally);
        let r = match self.channels.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ch)) => ch.feed(p, piece, &mut tally),
            None => {
                let mut ch = Channel::default();
                let r = ch.feed(p, piece, &mut tally);
                self.channels.push((key, ch));
                r
            }
        };
        self.tally = tally;
        r
    }

    /// Flush the channels matching `pred`; (key, held text) of those with text.
    fn flush_where(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        pred: impl Fn(Key) -> bool,
    ) -> Vec<(Key, String)> {
        let mut out = Vec::new();
        let mut tally = std::mem::take(&mut self.tally);
        for (key, ch) in &mut self.channels {
            if pred(*key) {
                let p = Policy {
                    rules: None,
                    vault,
                    hold_back: 0,
                    json_inner: key.2,
                    pii: (!key.2 && !config.output_pii.kinds.is_empty()).then_some(config),
                };
                let text = ch.flush(p, &mut tally);
                if !text.is_empty() {
                    out.push((*key, text));
                }
            }
        }
        self.tally = tally;
        out
    }

    fn flush_all(&mut self, config: &Config, vault: Option<&Vault>, out: &mut Vec<u8>) {
        if self.responses.is_some() {
            self.responses_flush_all(config, vault, None, out);
            return;
        }
        for (key, text) in self.flush_where(config, vault, |_| true) {
            match self.protocol {
                ClientProtocol::OpenAi if !key.2 => {
                    answer::openai_chunk(out, &self.meta, key.0, &text, None)
                }
                ClientProtocol::OpenAi => {
                    let v = json!({"id": self.meta.id, "object": "chat.completion.chunk", "created": self.meta.created,
                        "model": self.meta.model, "choices": [{"index": key.0, "delta": {"tool_calls": [
                            {"index": key.1, "function": {"arguments": text}}]}, "finish_reason": null}]});
                    write(out, None, &v);
                }
                ClientProtocol::Anthropic => self.anthropic_held(out, key, &text),
            }
        }
    }

    fn anthropic_held(&self, out: &mut Vec<u8>, key: Key, text: &str) {
        if key.2 {
            let v = json!({"type": "content_block_delta", "index": key.1,
                "delta": {"type": "input_json_delta", "partial_json": text}});
            write(out, Some("content_block_delta"), &v);
        } else {
            answer::anthropic_text(out, key.1, text);
        }
    }

    fn event(&mut self, config: &Config, vault: Option<&Vault>, e: SseEvent, out: &mut Vec<u8>) {
        if self.responses.is_some() {
            self.responses_event(config, vault, e, out);
            return;
        }
        let data = e.data.trim();
        if self.protocol == ClientProtocol::OpenAi && data == "[DONE]" {
            self.flush_all(config, vault, out);
            encode_event(out, &e);
            return;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(data) else {
            encode_event(out, &e);
            return;
        };
        let done = match self.protocol {
            ClientProtocol::OpenAi => self.openai(config, vault, &mut v, out),
            ClientProtocol::Anthropic => self.anthropic(config, vault, &mut v, out),
        };
        if done {
            return;
        }
        let data = serde_json::to_string(&v).unwrap_or_default();
        encode_event(out, &SseEvent { data, ..e });
    }

    /// Rewrite one OpenAI chunk in place; true when the stream was cut instead.
    fn openai(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        v: &mut Value,
        out: &mut Vec<u8>,
    ) -> bool {
        if !self.meta_seen {
            self.meta_seen = true;
            for (slot, key) in [
                (&mut self.meta.id, "id"),
                (&mut self.meta.model, "model"),
                (&mut self.meta.created, "created"),
            ] {
                if let Some(x) = v.get(key) {
                    *slot = x.clone();
                }
            }
        }
        let Some(choices) = v.get_mut("choices").and_then(Value::as_array_mut) else {
            return false;
        };
        for (pos, ch) in choices.iter_mut().enumerate() {
            let c = ch
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let finishing = ch.get("finish_reason").is_some_and(|f| !f.is_null());
            let Some(delta) = ch.get_mut("delta").and_then(Value::as_object_mut) else {
                continue;
            };
            if let Some(text) = delta
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_owned)
            {
                match self.text(config, vault, (c, 0, false), &text) {
                    Ok(s) => {
                        delta.insert("content".into(), Value::String(s));
                    }
                    Err(rule) => {
                        self.cut_openai(config, c, rule, out);
                        return true;
                    }
                }
            }
            if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                for (i, call) in calls.iter_mut().enumerate() {
                    let ti = call
                        .get("index")
                        .and_then(Value::as_u64)
                        .unwrap_or(i as u64);
                    let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) else {
                        continue;
                    };
                    if let Some(args) = f
                        .get("arguments")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                    {
                        if let Ok(s) = self.text(config, vault, (c, ti, true), &args) {
                            f.insert("arguments".into(), Value::String(s));
                        }
                    }
                }
            }
            if finishing {
                for (key, text) in self.flush_where(config, vault, |k| k.0 == c) {
                    if key.2 {
                        let entry = json!({"index": key.1, "function": {"arguments": text}});
                        match delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
                            Some(calls) => calls.push(entry),
                            None => {
                                delta.insert("tool_calls".into(), json!([entry]));
                            }
                        }
                    } else {
                        let before = delta.get("content").and_then(Value::as_str).unwrap_or("");
                        let joined = format!("{before}{text}");
                        delta.insert("content".into(), Value::String(joined));
                    }
                }
            }
        }
        false
    }

    fn cut_openai(&mut self, config: &Config, choice: u64, rule: Cut, out: &mut Vec<u8>) {
        answer::openai_chunk(
            out,
            &self.meta,
            choice,
            &config.safe_message,
            Some("content_filter"),
        );
        encode_event(out, &SseEvent::data("[DONE]"));
        self.end(rule);
    }

    fn end(&mut self, rule: Cut) {
        self.ended = true;
        self.cut = Some(rule);
        self.channels.clear();
    }

    /// Rewrite one Anthropic event in place; true when the stream was cut instead.
    fn anthropic(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        v: &mut Value,
        out: &mut Vec<u8>,
    ) -> bool {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match kind.as_str() {
            "content_block_start" => {
                let is_text =
                    v.pointer("/content_block/type").and_then(Value::as_str) == Some("text");
                self.open_block = Some((index, is_text));
                self.next_block = self.next_block.max(index.saturating_add(1));
            }
            "content_block_delta" => {
                let delta_type = v
                    .pointer("/delta/type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let (field, args) = match delta_type.as_str() {
                    "text_delta" => ("text", false),
                    "input_json_delta" => ("partial_json", true),
                    _ => return false,
                };
                let Some(delta) = v.get_mut("delta").and_then(Value::as_object_mut) else {
                    return false;
                };
                let Some(text) = delta.get(field).and_then(Value::as_str).map(str::to_owned) else {
                    return false;
                };
                match self.text(config, vault, (0, index, args), &text) {
                    Ok(s) => {
                        delta.insert(field.into(), Value::String(s));
                    }
                    Err(rule) if !args => {
                        self.cut_anthropic(config, rule, out);
                        return true;
                    }
                    Err(_) => {}
                }
            }
            "content_block_stop" => {
                for (key, text) in self.flush_where(config, vault, |k| k.1 == index) {
                    self.anthropic_held(out, key, &text);
                }
                self.open_block = None;
            }
            "message_delta" | "message_stop" => self.flush_all(config, vault, out),
            _ => {}
        }
        false
    }

    fn cut_anthropic(&mut self, config: &Config, rule: Cut, out: &mut Vec<u8>) {
        let text = &config.safe_message;
        match self.open_block {
            Some((i, true)) => answer::anthropic_block(out, i, false, text),
            Some((i, false)) => {
                write(
                    out,
                    Some("content_block_stop"),
                    &json!({"type": "content_block_stop", "index": i}),
                );
                answer::anthropic_block(out, self.next_block, true, text);
            }
            None => answer::anthropic_block(out, self.next_block, true, text),
        }
        answer::anthropic_end(out);
        self.end(rule);
    }
}

fn write(out: &mut Vec<u8>, name: Option<&str>, v: &Value) {
    let data = serde_json::to_string(v).unwrap_or_default();
    aigw_shared::stream::sse::encode_data(out, name, &data);
}
