//! `converse-stream`: the answer as AWS event-stream frames (encoded by `aigw-shared`), each with
//! the headers `:event-type`, `:content-type: application/json`, `:message-type: event` and a
//! compact JSON payload with keys in byte order, like the recordings: `messageStart`, then for
//! text one `contentBlockDelta` per token, or for a tool call `contentBlockStart` (toolUse name
//! and id), a `contentBlockDelta` with empty `toolUse.input` and one per argument piece; then
//! `contentBlockStop`, `messageStop` (stopReason) and `metadata` (usage with the empty
//! `serverToolUsage` of the newest capture, metrics).
//!
//! Every payload carries the `"p"` padding field Bedrock adds (a prefix of `abc…XYZ0…9`; its
//! length is derived from the event, so the bytes stay deterministic).

use aigw_shared::stream::eventstream::{encode_to_vec, Message};
use serde_json::{json, Value};

use super::converse::{stop_reason, usage};
use super::error;
use crate::plan::{Event, EventKind, Plan, EVENT_STREAM_AWS};
use crate::reply::Reply;
use crate::router::Ctx;
use crate::sorted;

/// Alphabet the padding is cut from.
const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// One frame: the payload gets its padding, is serialized with sorted keys and framed.
fn frame(kind: EventKind, event_type: &str, mut payload: Value) -> Event {
    let seed = sorted::to_string(&payload).len();
    let len = seed.wrapping_mul(7) % PAD.len() + 1;
    if let Some(obj) = payload.as_object_mut() {
        obj.insert(
            "p".into(),
            Value::String(PAD.get(..len).unwrap_or(PAD).to_string()),
        );
    }
    let message = Message::event(event_type, sorted::to_vec(&payload));
    Event::raw(kind, encode_to_vec(&message).unwrap_or_default())
}

/// Builds the frames of a streamed reply.
pub fn plan(reply: &Reply, ctx: &Ctx<'_>) -> Plan {
    let mut events = vec![frame(
        EventKind::Lead,
        "messageStart",
        json!({"role": "assistant"}),
    )];
    let delta = |kind, delta: Value| {
        frame(
            kind,
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": delta}),
        )
    };
    match &reply.tool_call {
        Some(call) => {
            let start = json!({"contentBlockIndex": 0, "start": {"toolUse": {
                "name": call.name,
                "toolUseId": format!("tooluse_{}", call.id),
            }}});
            events.push(frame(EventKind::Lead, "contentBlockStart", start));
            events.push(delta(EventKind::Lead, json!({"toolUse": {"input": ""}})));
            for piece in &call.pieces {
                events.push(delta(
                    EventKind::Token,
                    json!({"toolUse": {"input": piece}}),
                ));
            }
        }
        None => {
            for piece in &reply.pieces {
                events.push(delta(EventKind::Token, json!({"text": piece})));
            }
        }
    }
    events.push(frame(
        EventKind::Trail,
        "contentBlockStop",
        json!({"contentBlockIndex": 0}),
    ));
    events.push(frame(
        EventKind::Trail,
        "messageStop",
        json!({"stopReason": stop_reason(reply.finish)}),
    ));
    let mut usage = usage(reply);
    if let Some(obj) = usage.as_object_mut() {
        // The newest capture (Nova, 2025) adds this empty object to the stream's usage.
        obj.insert("serverToolUsage".into(), json!({}));
    }
    let metadata = json!({"metrics": {"latencyMs": ctx.latency_ms}, "usage": usage});
    events.push(frame(EventKind::Terminator, "metadata", metadata));
    Plan::stream(EVENT_STREAM_AWS, events)
        .with_header("x-amzn-requestid", error::request_id(&ctx.id("")))
}
