//! OpenAI Responses API event streams (`/v1/responses` with `stream: true`): the same channels as
//! chat streams, keyed by (output item, content part), over the typed events.
//!
//! The text of a part appears several times: as deltas, then whole in `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done` and the final response object. The
//! deltas go through the part's channel; every later copy is replaced by the text the client was
//! actually sent (checked, restored, masked). Text the channel still holds at a part's `…done`
//! goes out as one more delta just before it, so every later `sequence_number` moves up by one.

use aigw_shared::stream::sse::{encode_event, SseEvent};
use serde_json::{json, Value};

use super::{Key, StreamFix};
use crate::answer::{push_numbered, ResponsesEnd};
use crate::config::Config;
use crate::output::Cut;
use crate::vault::Vault;

/// What a Responses stream keeps besides the channels.
#[derive(Debug, Default)]
pub struct State {
    /// The text sent so far for each (output index, content index, arguments).
    released: Vec<(Key, String)>,
    /// Item ids by output index.
    items: Vec<(u64, String)>,
    /// Events added so far: added to every later sequence number.
    added: u64,
    /// The sequence number the next event written gets (as renumbered).
    next_seq: u64,
    /// The response object of `response.created`.
    base: Option<Value>,
}

impl State {
    fn released(&self, key: Key) -> Option<&str> {
        self.released
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t.as_str())
    }

    fn release(&mut self, key: Key, text: &str) {
        match self.released.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => t.push_str(text),
            None => self.released.push((key, text.to_owned())),
        }
    }

    fn item_id(&self, output_index: u64) -> String {
        self.items
            .iter()
            .find(|(i, _)| *i == output_index)
            .map(|(_, id)| id.clone())
            .unwrap_or_default()
    }

    /// Renumber `v` (an event from upstream) and return its new number.
    fn renumber(&mut self, v: &mut Value) {
        if let Some(n) = v.get("sequence_number").and_then(Value::as_u64) {
            let n = n.saturating_add(self.added);
            if let Some(o) = v.as_object_mut() {
                o.insert("sequence_number".into(), json!(n));
            }
            self.next_seq = n.saturating_add(1);
        }
    }

    /// Put every copy of a part's text in `item` (a message or function call at `output_index`)
    /// to what was released.
    fn fix_item(&self, item: &mut Value, output_index: u64) {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) else {
                    return;
                };
                for (ci, part) in parts.iter_mut().enumerate() {
                    let key = (output_index, ci as u64, false);
                    if let (Some(text), Some(o)) = (self.released(key), part.as_object_mut()) {
                        if o.contains_key("text") {
                            o.insert("text".into(), json!(text));
                        }
                    }
                }
            }
            Some("function_call") => {
                if let (Some(args), Some(o)) =
                    (self.released((output_index, 0, true)), item.as_object_mut())
                {
                    o.insert("arguments".into(), json!(args));
                }
            }
            _ => {}
        }
    }
}

fn number(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

impl StreamFix {
    /// Rewrite one Responses API event.
    pub(super) fn responses_event(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        e: SseEvent,
        out: &mut Vec<u8>,
    ) {
        let Some(mut st) = self.responses.take() else {
            return;
        };
        let Ok(mut v) = serde_json::from_str::<Value>(e.data.trim()) else {
            encode_event(out, &e);
            self.responses = Some(st);
            return;
        };
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let oi = number(&v, "output_index");
        let ci = number(&v, "content_index");
        let mut cut = None;
        match kind.as_str() {
            "response.created" | "response.in_progress" if st.base.is_none() => {
                st.base = v.get("response").cloned();
            }
            "response.output_item.added" => {
                if let Some(id) = v.pointer("/item/id").and_then(Value::as_str) {
                    st.items.push((oi, id.to_owned()));
                }
            }
            "response.output_text.delta" | "response.function_call_arguments.delta" => {
                let args = kind != "response.output_text.delta";
                let key = (oi, if args { 0 } else { ci }, args);
                let piece = v
                    .get("delta")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                match self.text(config, vault, key, &piece) {
                    Ok(s) => {
                        st.release(key, &s);
                        if let Some(o) = v.as_object_mut() {
                            o.insert("delta".into(), json!(s));
                        }
                    }
                    Err(rule) if !args => cut = Some(rule),
                    // Arguments have no rules: a cut cannot come from them.
                    Err(_) => {}
                }
            }
            "response.output_text.done" | "response.function_call_arguments.done" => {
                let args = kind != "response.output_text.done";
                let key = (oi, if args { 0 } else { ci }, args);
                let field = if args { "arguments" } else { "text" };
                if st.released(key).is_none() {
                    // Never streamed as deltas: check the whole text now.
                    let whole = v
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    match self.text(config, vault, key, &whole) {
                        Ok(s) => st.release(key, &s),
                        Err(rule) if !args => cut = Some(rule),
                        Err(_) => {}
                    }
                }
                if cut.is_none() {
                    self.held_delta(config, vault, &mut st, key, &v, out);
                    if let (Some(text), Some(o)) = (st.released(key), v.as_object_mut()) {
                        o.insert(field.into(), json!(text));
                    }
                }
            }
            "response.content_part.done" => {
                if let (Some(text), Some(part)) = (
                    st.released((oi, ci, false)),
                    v.get_mut("part").and_then(Value::as_object_mut),
                ) {
                    if part.contains_key("text") {
                        part.insert("text".into(), json!(text));
                    }
                }
            }
            "response.output_item.done" => {
                if let Some(item) = v.get_mut("item") {
                    st.fix_item(item, oi);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.flush_into(config, vault, &mut st, None, out);
                if let Some(items) = v
                    .pointer_mut("/response/output")
                    .and_then(Value::as_array_mut)
                {
                    for (i, item) in items.iter_mut().enumerate() {
                        st.fix_item(item, i as u64);
                    }
                }
            }
            _ => {}
        }
        if let Some(rule) = cut {
            self.cut_responses(config, &mut st, (oi, ci), &v, rule, out);
            self.responses = Some(st);
            return;
        }
        st.renumber(&mut v);
        let data = serde_json::to_string(&v).unwrap_or_default();
        encode_event(out, &SseEvent { data, ..e });
        self.responses = Some(st);
    }

    /// The stream ended without its last event (or one is about to end it): every part's held
    /// text goes out as one more delta.
    pub(super) fn responses_flush_all(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        only: Option<Key>,
        out: &mut Vec<u8>,
    ) {
        if let Some(mut st) = self.responses.take() {
            self.flush_into(config, vault, &mut st, only, out);
            self.responses = Some(st);
        }
    }

    fn flush_into(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        st: &mut State,
        only: Option<Key>,
        out: &mut Vec<u8>,
    ) {
        for (key, text) in self.flush_where(config, vault, |k| only.is_none_or(|o| o == k)) {
            st.release(key, &text);
            let item_id = st.item_id(key.0);
            let v = if key.2 {
                json!({"type": "response.function_call_arguments.delta", "item_id": item_id,
                       "output_index": key.0, "delta": text})
            } else {
                json!({"type": "response.output_text.delta", "item_id": item_id,
                       "output_index": key.0, "content_index": key.1, "delta": text, "logprobs": []})
            };
            push_numbered(out, v, st.next_seq);
            st.next_seq = st.next_seq.saturating_add(1);
            st.added = st.added.saturating_add(1);
        }
    }

    /// Before part `key`'s `…done` event (`v`, not yet renumbered): its held text as a delta.
    fn held_delta(
        &mut self,
        config: &Config,
        vault: Option<&Vault>,
        st: &mut State,
        key: Key,
        v: &Value,
        out: &mut Vec<u8>,
    ) {
        // The added delta takes the number the `…done` event would have had.
        if let Some(n) = v.get("sequence_number").and_then(Value::as_u64) {
            st.next_seq = n.saturating_add(st.added);
        }
        if let Some(id) = v.get("item_id").and_then(Value::as_str) {
            if st.items.iter().all(|(i, _)| *i != key.0) {
                st.items.push((key.0, id.to_owned()));
            }
        }
        self.flush_into(config, vault, st, Some(key), out);
    }

    /// An output rule hit part (`output_index`, `content_index`) in event `v`: the safe message
    /// ends it, and the response ends `incomplete`.
    fn cut_responses(
        &mut self,
        config: &Config,
        st: &mut State,
        (output_index, content_index): (u64, u64),
        v: &Value,
        rule: Cut,
        out: &mut Vec<u8>,
    ) {
        let seq = v
            .get("sequence_number")
            .and_then(Value::as_u64)
            .map_or(st.next_seq, |n| n.saturating_add(st.added));
        let item_id = v
            .get("item_id")
            .and_then(Value::as_str)
            .map_or_else(|| st.item_id(output_index), str::to_owned);
        let model = st
            .base
            .as_ref()
            .and_then(|b| b.get("model"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let before = st
            .released((output_index, content_index, false))
            .unwrap_or("")
            .to_owned();
        let end = ResponsesEnd {
            base: st.base.as_ref(),
            model: &model,
            item: Some((&item_id, output_index, content_index)),
            before: &before,
            seq,
            created: 0,
        };
        end.write(out, &config.safe_message);
        self.end(rule);
    }
}
