//! Streamed Messages: named SSE events in the order the API sends them — `message_start`,
//! `content_block_start`, `ping`, `content_block_delta` (`text_delta`, or `input_json_delta` for a
//! tool call, starting with an empty `partial_json` as recorded), `content_block_stop`,
//! `message_delta` (stop reason and usage), `message_stop`.
//!
//! Like the live API, the JSON of every event but `ping` is padded with spaces before its final
//! `}` (the amount varies; here it is derived from the payload length, so it is deterministic).

use serde::Serialize;

use super::messages::{stop_reason, Block, Message, Usage, DIRECT};
use crate::plan::{Event, EventKind, Plan};
use crate::reply::Reply;

/// Content type of Anthropic's streams.
pub const EVENT_STREAM_UTF8: &str = "text/event-stream; charset=utf-8";

/// The `ping` payload exactly as the API sends it (note the space after the colon).
pub const PING: &str = r#"{"type": "ping"}"#;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Payload<'a> {
    MessageStart { message: Message<'a> },
    ContentBlockStart { index: u32, content_block: Block },
    ContentBlockDelta { index: u32, delta: Delta<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopDelta, usage: DeltaUsage },
    MessageStop,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct DeltaUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

fn name(p: &Payload<'_>) -> &'static str {
    match p {
        Payload::MessageStart { .. } => "message_start",
        Payload::ContentBlockStart { .. } => "content_block_start",
        Payload::ContentBlockDelta { .. } => "content_block_delta",
        Payload::ContentBlockStop { .. } => "content_block_stop",
        Payload::MessageDelta { .. } => "message_delta",
        Payload::MessageStop => "message_stop",
    }
}

fn event(kind: EventKind, payload: &Payload<'_>) -> Event {
    let json = serde_json::to_string(payload).unwrap_or_default();
    Event::sse_named(kind, name(payload), &pad(&json))
}

/// Inserts 0 to 15 spaces before the final `}`, as the live API does.
pub fn pad(json: &str) -> String {
    let spaces = (json.len().wrapping_mul(7)) % 16;
    match json.strip_suffix('}') {
        Some(head) => format!("{head}{}}}", " ".repeat(spaces)),
        None => json.to_string(),
    }
}

/// Builds the event list of a streamed reply.
pub fn plan(model: &str, id: &str, reply: &Reply) -> Plan {
    let start = Message {
        model,
        id,
        kind: "message",
        role: "assistant",
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage::new(reply.prompt_tokens, 1),
    };
    let mut events = vec![event(
        EventKind::Lead,
        &Payload::MessageStart { message: start },
    )];
    let block = match &reply.tool_call {
        Some(call) => Block::ToolUse {
            id: format!("toolu_{}", call.id),
            name: call.name.clone(),
            input: serde_json::Value::Object(Default::default()),
            caller: DIRECT,
        },
        None => Block::Text {
            text: String::new(),
        },
    };
    events.push(event(
        EventKind::Lead,
        &Payload::ContentBlockStart {
            index: 0,
            content_block: block,
        },
    ));
    events.push(Event::sse_named(EventKind::Lead, "ping", PING));
    let delta = |kind, delta| event(kind, &Payload::ContentBlockDelta { index: 0, delta });
    match &reply.tool_call {
        Some(call) => {
            events.push(delta(
                EventKind::Lead,
                Delta::InputJsonDelta { partial_json: "" },
            ));
            for piece in &call.pieces {
                events.push(delta(
                    EventKind::Token,
                    Delta::InputJsonDelta {
                        partial_json: piece,
                    },
                ));
            }
        }
        None => {
            for piece in &reply.pieces {
                events.push(delta(EventKind::Token, Delta::TextDelta { text: piece }));
            }
        }
    }
    events.push(event(
        EventKind::Trail,
        &Payload::ContentBlockStop { index: 0 },
    ));
    let message_delta = Payload::MessageDelta {
        delta: StopDelta {
            stop_reason: stop_reason(reply.finish),
            stop_sequence: None,
        },
        usage: DeltaUsage {
            input_tokens: reply.prompt_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
            output_tokens: reply.completion_tokens(),
        },
    };
    events.push(event(EventKind::Trail, &message_delta));
    events.push(event(EventKind::Terminator, &Payload::MessageStop));
    Plan::stream(EVENT_STREAM_UTF8, events).with_header("request-id", format!("req_{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_only_adds_spaces_before_the_last_brace() {
        let padded = pad(r#"{"type":"message_stop"}"#);
        assert!(padded.starts_with(r#"{"type":"message_stop""#) && padded.ends_with('}'));
        assert_eq!(
            padded.trim_end_matches('}').trim_end(),
            r#"{"type":"message_stop""#
        );
    }
}
