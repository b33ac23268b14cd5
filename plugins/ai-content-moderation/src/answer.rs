//! Answers the plugin writes itself, in the caller's protocol: the refusal of a blocked request
//! (JSON or a stream), and the events that end a stream cut by an output rule.

use aigw_shared::error::ClientProtocol;
use aigw_shared::stream::sse::encode_data;
use serde_json::{json, Value};

/// The id of answers the plugin writes.
pub const OPENAI_ID: &str = "chatcmpl-moderation";
/// The id of Anthropic messages the plugin writes.
pub const ANTHROPIC_ID: &str = "msg_moderation";
/// The id of OpenAI Responses API responses the plugin writes, and of their message item.
pub const RESPONSES_ID: &str = "resp_moderation";
const RESPONSES_ITEM_ID: &str = "msg_moderation";

/// A Responses API response object whose one message says `text`, `incomplete` for content
/// filtering (`incomplete_details.reason: "content_filter"`, as OpenAI ends a filtered answer).
/// `base` is the upstream's response object to keep fields of (id, model, usage…), if any.
pub fn responses_object(base: Option<&Value>, model: &str, text: &str, created: u64) -> Value {
    let mut v = base.filter(|b| b.is_object()).cloned().unwrap_or_else(|| {
        json!({"id": RESPONSES_ID, "object": "response", "created_at": created,
                   "model": model, "error": null,
                   "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}})
    });
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), json!("incomplete"));
        o.insert(
            "incomplete_details".into(),
            json!({"reason": "content_filter"}),
        );
        o.insert(
            "output".into(),
            json!([responses_message(text, "incomplete")]),
        );
    }
    v
}

/// A Responses API message item saying `text`.
pub fn responses_message(text: &str, status: &str) -> Value {
    json!({"type": "message", "id": RESPONSES_ITEM_ID, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

/// The Responses API events that write `text` as (the rest of) message `output_index` and end
/// the response as `incomplete` for content filtering; `seq` numbers them on from the stream's
/// own. `item_id` is the message's id in the stream (a new item when `None`), `before` the text
/// the client already got in it.
pub struct ResponsesEnd<'a> {
    /// The response object from `response.created`, if seen.
    pub base: Option<&'a Value>,
    /// The model to name when there is no base.
    pub model: &'a str,
    /// The message item being cut, and its content part.
    pub item: Option<(&'a str, u64, u64)>,
    /// Its text so far.
    pub before: &'a str,
    /// The next sequence number.
    pub seq: u64,
    /// Creation time for a response written from scratch.
    pub created: u64,
}

impl ResponsesEnd<'_> {
    /// Append the events to `out`; returns the next sequence number.
    pub fn write(&self, out: &mut Vec<u8>, text: &str) -> u64 {
        let mut seq = self.seq;
        let mut push = |out: &mut Vec<u8>, v: Value| {
            push_numbered(out, v, seq);
            seq += 1;
        };
        let (item_id, output_index, content_index) = match self.item {
            Some((id, o, c)) => (id.to_owned(), o, c),
            None => {
                let item = json!({"type": "message", "id": RESPONSES_ITEM_ID, "status": "in_progress",
                                  "role": "assistant", "content": []});
                push(
                    out,
                    json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
                );
                push(
                    out,
                    json!({"type": "response.content_part.added", "item_id": RESPONSES_ITEM_ID,
                                 "output_index": 0, "content_index": 0,
                                 "part": {"type": "output_text", "text": "", "annotations": []}}),
                );
                (RESPONSES_ITEM_ID.to_owned(), 0, 0)
            }
        };
        let full = format!("{}{text}", self.before);
        push(
            out,
            json!({"type": "response.output_text.delta", "item_id": item_id,
                         "output_index": output_index, "content_index": content_index,
                         "delta": text, "logprobs": []}),
        );
        push(
            out,
            json!({"type": "response.output_text.done", "item_id": item_id,
                         "output_index": output_index, "content_index": content_index,
                         "text": full, "logprobs": []}),
        );
        let part = json!({"type": "output_text", "text": full, "annotations": []});
        push(
            out,
            json!({"type": "response.content_part.done", "item_id": item_id,
                         "output_index": output_index, "content_index": content_index, "part": part}),
        );
        let mut item = responses_message(&full, "incomplete");
        if let Some(o) = item.as_object_mut() {
            o.insert("id".into(), json!(item_id));
        }
        push(
            out,
            json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
        );
        let mut response = responses_object(self.base, self.model, &full, self.created);
        if let Some(o) = response
            .pointer_mut("/output/0")
            .and_then(Value::as_object_mut)
        {
            o.insert("id".into(), json!(item_id));
        }
        push(
            out,
            json!({"type": "response.incomplete", "response": response}),
        );
        seq
    }
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A complete JSON answer in which the assistant says `text` and stops for content filtering
/// (OpenAI `finish_reason: "content_filter"`, Anthropic `stop_reason: "refusal"`). `usage` is
/// the upstream's usage object to keep, if any.
pub fn refusal_json(
    protocol: ClientProtocol,
    responses: bool,
    model: &str,
    text: &str,
    created: u64,
    usage: Option<Value>,
) -> Vec<u8> {
    if responses {
        let mut v = responses_object(None, model, text, created);
        if let (Some(o), Some(u)) = (v.as_object_mut(), usage) {
            o.insert("usage".into(), u);
        }
        return bytes(&v);
    }
    match protocol {
        ClientProtocol::OpenAi => bytes(&json!({
            "id": OPENAI_ID,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": "content_filter"
            }],
            "usage": usage.unwrap_or_else(|| json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}))
        })),
        ClientProtocol::Anthropic => bytes(&json!({
            "id": ANTHROPIC_ID,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "refusal",
            "stop_sequence": null,
            "usage": usage.unwrap_or_else(|| json!({"input_tokens": 0, "output_tokens": 0}))
        })),
    }
}

/// The same refusal as a complete SSE stream.
pub fn refusal_stream(
    protocol: ClientProtocol,
    responses: bool,
    model: &str,
    text: &str,
    created: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    if responses {
        let mut base = json!({"id": RESPONSES_ID, "object": "response", "created_at": created,
                              "status": "in_progress", "model": model, "output": [], "usage": null});
        let created_event =
            json!({"type": "response.created", "sequence_number": 0, "response": base});
        push_event(&mut out, "response.created", &created_event);
        if let Some(o) = base.as_object_mut() {
            o.insert(
                "usage".into(),
                json!({"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}),
            );
        }
        let end = ResponsesEnd {
            base: Some(&base),
            model,
            item: None,
            before: "",
            seq: 1,
            created,
        };
        end.write(&mut out, text);
        return out;
    }
    match protocol {
        ClientProtocol::OpenAi => {
            let chunk = |delta: Value, finish: Value| {
                json!({
                    "id": OPENAI_ID, "object": "chat.completion.chunk", "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
                })
            };
            let first = chunk(json!({"role": "assistant", "content": text}), Value::Null);
            encode_data(&mut out, None, &String::from_utf8_lossy(&bytes(&first)));
            let last = chunk(json!({}), json!("content_filter"));
            encode_data(&mut out, None, &String::from_utf8_lossy(&bytes(&last)));
            encode_data(&mut out, None, "[DONE]");
        }
        ClientProtocol::Anthropic => {
            let start = json!({"type": "message_start", "message": {
                "id": ANTHROPIC_ID, "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}
            }});
            push_event(&mut out, "message_start", &start);
            anthropic_block(&mut out, 0, true, text);
            anthropic_end(&mut out);
        }
    }
    out
}

/// A Responses API event numbered `seq`, named after its `type`.
pub fn push_numbered(out: &mut Vec<u8>, mut v: Value, seq: u64) {
    let name = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(o) = v.as_object_mut() {
        o.insert("sequence_number".into(), json!(seq));
    }
    push_event(out, &name, &v);
}

fn push_event(out: &mut Vec<u8>, name: &str, v: &Value) {
    encode_data(out, Some(name), &String::from_utf8_lossy(&bytes(v)));
}

/// Anthropic: `text` as a text block at `index` (`open`: start the block first), then its stop.
pub fn anthropic_block(out: &mut Vec<u8>, index: u64, open: bool, text: &str) {
    if open {
        push_event(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        );
    }
    anthropic_text(out, index, text);
    push_event(
        out,
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    );
}

/// Anthropic: one text delta.
pub fn anthropic_text(out: &mut Vec<u8>, index: u64, text: &str) {
    push_event(
        out,
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
    );
}

/// Anthropic: the message stops for content filtering (`stop_reason: "refusal"`).
pub fn anthropic_end(out: &mut Vec<u8>) {
    push_event(
        out,
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": "refusal", "stop_sequence": null}, "usage": {"output_tokens": 0}}),
    );
    push_event(out, "message_stop", &json!({"type": "message_stop"}));
}

/// OpenAI: a chunk carrying `text` for `choice` (and a finish reason), with the stream's own id,
/// model and creation time.
pub fn openai_chunk(
    out: &mut Vec<u8>,
    meta: &OpenAiMeta,
    choice: u64,
    text: &str,
    finish: Option<&str>,
) {
    let v = json!({
        "id": meta.id, "object": "chat.completion.chunk", "created": meta.created,
        "model": meta.model,
        "choices": [{"index": choice, "delta": {"content": text}, "logprobs": null, "finish_reason": finish}]
    });
    encode_data(out, None, &String::from_utf8_lossy(&bytes(&v)));
}

/// What OpenAI chunks the plugin writes into a stream copy from the stream's own.
#[derive(Debug, Clone)]
pub struct OpenAiMeta {
    /// `id`.
    pub id: Value,
    /// `model`.
    pub model: Value,
    /// `created`.
    pub created: Value,
}

impl Default for OpenAiMeta {
    fn default() -> Self {
        Self {
            id: json!(OPENAI_ID),
            model: json!(""),
            created: json!(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::stream::sse::SseDecoder;

    fn events(bytes: &[u8]) -> Vec<(Option<String>, String)> {
        SseDecoder::new()
            .feed_owned(bytes)
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.data))
            .collect()
    }

    #[test]
    fn refusals_have_each_protocols_shape() {
        let o: Value = serde_json::from_slice(&refusal_json(
            ClientProtocol::OpenAi,
            false,
            "m",
            "no",
            5,
            None,
        ))
        .unwrap();
        assert_eq!(o["choices"][0]["message"]["content"], "no");
        assert_eq!(o["choices"][0]["finish_reason"], "content_filter");
        let a: Value = serde_json::from_slice(&refusal_json(
            ClientProtocol::Anthropic,
            false,
            "m",
            "no",
            5,
            None,
        ))
        .unwrap();
        assert_eq!(a["content"][0]["text"], "no");
        assert_eq!(a["stop_reason"], "refusal");
    }

    #[test]
    fn refusal_streams_end_like_the_provider_ends_them() {
        let o = events(&refusal_stream(ClientProtocol::OpenAi, false, "m", "no", 1));
        assert_eq!(o.last().unwrap().1, "[DONE]");
        assert!(o[1].1.contains("\"content_filter\""));
        let a = events(&refusal_stream(
            ClientProtocol::Anthropic,
            false,
            "m",
            "no",
            1,
        ));
        let names: Vec<&str> = a.iter().map(|e| e.0.as_deref().unwrap()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(a[4].1.contains("\"refusal\""));
    }
}
