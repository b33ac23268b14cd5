//! Azure's streamed chat completions: a first chunk with only `prompt_filter_results` (empty
//! `id`, `model`, `object`, `created: 0`), then OpenAI's chunks with keys in byte order and a
//! `content_filter_results` per choice (safe annotations on content chunks, `{}` on the role and
//! finish chunks), the usage chunk with `include_usage`, and `data: [DONE]`. No Azure stream was
//! recorded; this follows Azure's documented stream layout.

use serde_json::{json, Value};

use super::chat::usage;
use super::filter;
use crate::openai::chat::{finish_reason, ChatRequest};
use crate::openai::stream::deltas;
use crate::plan::{Event, EventKind, Plan, EVENT_STREAM};
use crate::reply::Reply;
use crate::router::Ctx;
use crate::sorted;

/// Builds the event list of a streamed reply.
pub fn plan(chat: &ChatRequest, reply: &Reply, ctx: &Ctx<'_>) -> Plan {
    let id = ctx.id("chatcmpl-");
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut c = json!({
            "choices": choices,
            "created": ctx.created,
            "id": id,
            "model": chat.model,
            "object": "chat.completion.chunk",
            "system_fingerprint": null,
        });
        if let (Some(u), Some(obj)) = (usage, c.as_object_mut()) {
            obj.insert("usage".into(), u);
        }
        sorted::to_string(&c)
    };
    let per_chunk_usage = chat.include_usage.then_some(Value::Null);
    let choice = |filter: Value, delta: Value, finish: Option<&str>| {
        json!([{
            "content_filter_results": filter,
            "delta": delta,
            "finish_reason": finish,
            "index": 0,
            "logprobs": null,
        }])
    };
    let first = json!({
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": filter::prompt_filter_results(),
    });
    let mut events = vec![Event::sse(EventKind::Lead, &sorted::to_string(&first))];
    for (kind, delta) in deltas(reply) {
        let results = if kind == EventKind::Token && reply.tool_call.is_none() {
            filter::completion_results()
        } else {
            json!({})
        };
        let delta = serde_json::to_value(&delta).unwrap_or(Value::Null);
        let payload = chunk(choice(results, delta, None), per_chunk_usage.clone());
        events.push(Event::sse(kind, &payload));
    }
    let finish = choice(json!({}), json!({}), Some(finish_reason(reply.finish)));
    events.push(Event::sse(
        EventKind::Trail,
        &chunk(finish, per_chunk_usage),
    ));
    if chat.include_usage {
        events.push(Event::sse(
            EventKind::Trail,
            &chunk(json!([]), Some(usage(reply))),
        ));
    }
    events.push(Event::sse(EventKind::Terminator, "[DONE]"));
    Plan::stream(EVENT_STREAM, events)
}
