//! A cache hit answered in the caller's protocol: an OpenAI chat completion or its stream (role
//! chunk, the text in several chunks, the finish chunk, the usage chunk when
//! `stream_options.include_usage` was asked, `[DONE]`), an Anthropic message or its event stream
//! (`message_start`, a text block in several deltas, `message_delta` with the stop reason and
//! usage, `message_stop`). Usage is the cached answer's, as the provider reported it.

use aigw_shared::error::ClientProtocol;
use aigw_shared::stream::sse::encode_data;
use serde_json::{json, Value};

use crate::entry::Entry;

/// How the hit is answered.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The caller's protocol.
    pub protocol: ClientProtocol,
    /// A stream was asked for.
    pub stream: bool,
    /// OpenAI: the usage chunk was asked for.
    pub include_usage: bool,
    /// Unix seconds now.
    pub created: u64,
    /// The response id (derived from the cache key).
    pub id: &'a str,
    /// Characters per stream chunk (about).
    pub chunk_chars: usize,
}

/// The `content-type` and body of the answer.
pub fn render(entry: &Entry, shape: &Shape<'_>) -> (&'static str, Vec<u8>) {
    match (shape.protocol, shape.stream) {
        (ClientProtocol::OpenAi, false) => ("application/json", openai_json(entry, shape)),
        (ClientProtocol::OpenAi, true) => ("text/event-stream", openai_stream(entry, shape)),
        (ClientProtocol::Anthropic, false) => ("application/json", anthropic_json(entry, shape)),
        (ClientProtocol::Anthropic, true) => ("text/event-stream", anthropic_stream(entry, shape)),
    }
}

fn openai_usage(e: &Entry) -> Value {
    json!({"prompt_tokens": e.input_tokens, "completion_tokens": e.output_tokens,
        "total_tokens": e.input_tokens.saturating_add(e.output_tokens)})
}

fn openai_json(e: &Entry, s: &Shape<'_>) -> Vec<u8> {
    let v = json!({
        "id": format!("chatcmpl-{}", s.id), "object": "chat.completion", "created": s.created,
        "model": e.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": e.text, "refusal": null},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": openai_usage(e),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn openai_stream(e: &Entry, s: &Shape<'_>) -> Vec<u8> {
    let id = format!("chatcmpl-{}", s.id);
    let mut out = Vec::with_capacity(e.text.len() * 3 + 512);
    let chunk = |delta: Value, finish: Value| {
        let mut v = json!({
            "id": id, "object": "chat.completion.chunk", "created": s.created, "model": e.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if s.include_usage {
            if let Some(o) = v.as_object_mut() {
                o.insert("usage".into(), Value::Null);
            }
        }
        v.to_string()
    };
    encode_data(
        &mut out,
        None,
        &chunk(json!({"role": "assistant", "content": ""}), Value::Null),
    );
    for piece in pieces(&e.text, s.chunk_chars) {
        encode_data(
            &mut out,
            None,
            &chunk(json!({"content": piece}), Value::Null),
        );
    }
    encode_data(&mut out, None, &chunk(json!({}), json!("stop")));
    if s.include_usage {
        let v = json!({
            "id": id, "object": "chat.completion.chunk", "created": s.created, "model": e.model,
            "choices": [], "usage": openai_usage(e),
        });
        encode_data(&mut out, None, &v.to_string());
    }
    encode_data(&mut out, None, "[DONE]");
    out
}

fn anthropic_json(e: &Entry, s: &Shape<'_>) -> Vec<u8> {
    let v = json!({
        "id": format!("msg_{}", s.id), "type": "message", "role": "assistant", "model": e.model,
        "content": [{"type": "text", "text": e.text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": e.input_tokens, "output_tokens": e.output_tokens},
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn anthropic_stream(e: &Entry, s: &Shape<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.text.len() * 3 + 1024);
    let mut event = |name: &str, v: Value| encode_data(&mut out, Some(name), &v.to_string());
    event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_{}", s.id), "type": "message", "role": "assistant", "model": e.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": e.input_tokens, "output_tokens": 1}}}),
    );
    event(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    );
    event("ping", json!({"type": "ping"}));
    for piece in pieces(&e.text, s.chunk_chars) {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
        );
    }
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": e.output_tokens}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

/// `text` cut into pieces of about `size` characters, each ending after a space where one is
/// near, never inside a character. An empty text is one empty piece.
pub fn pieces(text: &str, size: usize) -> Vec<&str> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((hard, _)) = rest.char_indices().nth(size) else {
            out.push(rest);
            break;
        };
        let head = rest.get(..hard).unwrap_or(rest);
        // Prefer to cut after the last space of the second half of the piece.
        let cut = head
            .rfind(' ')
            .filter(|&i| i + 1 >= hard / 2 && i > 0)
            .map_or(hard, |i| i + 1);
        let (piece, tail) = rest.split_at_checked(cut).unwrap_or((rest, ""));
        out.push(piece);
        rest = tail;
    }
    if out.is_empty() {
        out.push("");
    }
    out
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
