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
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    /// `Some(())` serializes as `"refusal": null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<()>,
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
    let lead = Delta {
        role: Some("assistant"),
        content: Some(""),
        refusal: Some(()),
    };
    events.push(Event::sse(
        EventKind::Lead,
        &chunk(one(lead, None), per_chunk_usage),
    ));
    for piece in &reply.pieces {
        let delta = Delta {
            content: Some(piece),
            ..Delta::default()
        };
        events.push(Event::sse(
            EventKind::Token,
            &chunk(one(delta, None), per_chunk_usage),
        ));
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
    Plan::Stream {
        content_type: EVENT_STREAM,
        events,
    }
}
