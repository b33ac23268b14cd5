//! Streamed chat completions: `chat.completion.chunk` events framed as SSE, in the order and with
//! the fields OpenAI sends (role chunk, one chunk per token, finish chunk, optional usage chunk
//! with `choices: []`, then `data: [DONE]`).

use serde::Serialize;

use super::chat::{finish_reason, ChatRequest, Usage};
use crate::plan::{Event, EventKind, Plan, EVENT_STREAM};
use crate::reply::Reply;
use crate::router::Ctx;

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: Option<&'static str>,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent without `include_usage`; `null` on ordinary chunks with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` serializes as `"content": null` (first chunk of a tool call).
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
    /// `Some(())` serializes as `"refusal": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<()>,
}

/// One streamed piece of a tool call: the first carries id, type and name.
#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The deltas of a reply: one per text piece, or a tool call's opening delta (role, null
/// content, id, name, empty arguments) followed by one per argument piece.
pub(crate) fn deltas(reply: &Reply) -> Vec<(EventKind, Delta<'_>)> {
    let Some(call) = &reply.tool_call else {
        let lead = Delta {
            role: Some("assistant"),
            content: Some(Some("")),
            refusal: Some(()),
            ..Delta::default()
        };
        let mut out = vec![(EventKind::Lead, lead)];
        for piece in &reply.pieces {
            let delta = Delta {
                content: Some(Some(piece)),
                ..Delta::default()
            };
            out.push((EventKind::Token, delta));
        }
        return out;
    };
    let lead = Delta {
        role: Some("assistant"),
        content: Some(None),
        tool_calls: Some([ToolCallDelta {
            index: 0,
            id: Some(format!("call_{}", call.id)),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(&call.name),
                arguments: "",
            },
        }]),
        refusal: Some(()),
    };
    let mut out = vec![(EventKind::Lead, lead)];
    for piece in &call.pieces {
        let delta = Delta {
            tool_calls: Some([ToolCallDelta {
                index: 0,
                id: None,
                kind: None,
                function: FunctionDelta {
                    name: None,
                    arguments: piece,
                },
            }]),
            ..Delta::default()
        };
        out.push((EventKind::Token, delta));
    }
    out
}

fn one<'a>(delta: Delta<'a>, finish: Option<&'static str>) -> Vec<ChunkChoice<'a>> {
    vec![ChunkChoice {
        index: 0,
        delta,
        finish_reason: finish,
    }]
}

/// Builds the event list of a streamed reply.
pub fn plan(chat: &ChatRequest, reply: &Reply, ctx: &Ctx<'_>) -> Plan {
    let id = ctx.id("chatcmpl-");
    let usage = Usage::of(reply);
    let per_chunk_usage = if chat.include_usage { Some(None) } else { None };
    let chunk = |choices: Vec<ChunkChoice<'_>>, usage: Option<Option<&Usage>>| {
        let c = Chunk {
            id: &id,
            object: "chat.completion.chunk",
            created: ctx.created,
            model: &chat.model,
            service_tier: "default",
            system_fingerprint: None,
            choices,
            usage,
        };
        serde_json::to_string(&c).unwrap_or_default()
    };

    let mut events = Vec::with_capacity(reply.pieces.len() + 4);
    for (kind, delta) in deltas(reply) {
        events.push(Event::sse(kind, &chunk(one(delta, None), per_chunk_usage)));
    }
    let finish = Some(finish_reason(reply.finish));
    events.push(Event::sse(
        EventKind::Trail,
        &chunk(one(Delta::default(), finish), per_chunk_usage),
    ));
    if chat.include_usage {
        events.push(Event::sse(
            EventKind::Trail,
            &chunk(Vec::new(), Some(Some(&usage))),
        ));
    }
    events.push(Event::sse(EventKind::Terminator, "[DONE]"));
    Plan::stream(EVENT_STREAM, events)
}
