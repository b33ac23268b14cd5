//! `:generateContent` and `:streamGenerateContent` answers for the Gemini API and Vertex AI.
//!
//! Key order follows the recordings: `candidates`, `usageMetadata`, `modelVersion`,
//! (`createTime` on Vertex), `responseId`; Gemini writes `content` as `parts` then `role`, Vertex
//! as `role` then `parts`; Vertex adds `usageMetadata.trafficType`. Whole answers are 2-space
//! indented JSON. With `alt=sse` a stream is one `data: {…}\r\n\r\n` event per token in Gemini's
//! chunk style, every chunk carrying `usageMetadata` (prompt counts only until the last chunk,
//! which adds `finishReason` and the candidate counts). Without `alt=sse` the same chunks are
//! streamed as one JSON array.

use serde::Serialize;
use serde_json::Value;

use super::error::{self, JSON_UTF8};
use super::json::{chunk_text, rfc3339};
use super::request;
use crate::auth::query_param;
use crate::plan::{Event, EventKind, Plan, EVENT_STREAM};
use crate::reply::{derive_reply, Finish, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;

/// Which Google API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// generativelanguage.googleapis.com
    Gemini,
    /// aiplatform.googleapis.com
    Vertex,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    candidates: [Candidate; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_time: Option<&'a str>,
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avg_logprobs: Option<f64>,
}

/// `role` is written before (Vertex) or after (Gemini) `parts`.
#[derive(Serialize)]
struct Content {
    #[serde(rename = "role", skip_serializing_if = "Option::is_none")]
    role_first: Option<&'static str>,
    parts: [Part; 1],
    #[serde(rename = "role", skip_serializing_if = "Option::is_none")]
    role_last: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part {
    Text {
        text: String,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall,
    },
}

#[derive(Serialize)]
struct FunctionCall {
    name: String,
    #[serde(serialize_with = "crate::sorted::serialize")]
    args: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_token_count: Option<u64>,
    total_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    traffic_type: Option<&'static str>,
    prompt_tokens_details: [Modality; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates_tokens_details: Option<[Modality; 1]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Modality {
    modality: &'static str,
    token_count: u64,
}

/// Gemini's `finishReason` for a [`Finish`] (function calls end with `STOP`).
pub fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::ToolUse => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

/// Per-answer facts every chunk repeats.
struct Frame<'a> {
    api: Api,
    model: &'a str,
    id: String,
    create_time: Option<String>,
}

impl Frame<'_> {
    fn content(&self, part: Part) -> Content {
        let vertex = self.api == Api::Vertex;
        Content {
            role_first: vertex.then_some("model"),
            parts: [part],
            role_last: (!vertex).then_some("model"),
        }
    }

    /// Usage: prompt counts only (`done == false`) or the full counts.
    fn usage(&self, reply: &Reply, done: bool) -> UsageMetadata {
        let prompt = reply.prompt_tokens;
        let out = reply.completion_tokens();
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: done.then_some(out),
            total_token_count: if done { reply.total_tokens() } else { prompt },
            traffic_type: (self.api == Api::Vertex).then_some("ON_DEMAND"),
            prompt_tokens_details: [Modality {
                modality: "TEXT",
                token_count: prompt,
            }],
            candidates_tokens_details: done.then_some([Modality {
                modality: "TEXT",
                token_count: out,
            }]),
        }
    }

    fn response(&self, candidate: Candidate, usage: UsageMetadata) -> Response<'_> {
        Response {
            candidates: [candidate],
            usage_metadata: usage,
            model_version: self.model,
            create_time: self.create_time.as_deref(),
            response_id: &self.id,
        }
    }
}

fn whole_part(reply: &Reply) -> Part {
    match &reply.tool_call {
        Some(call) => Part::FunctionCall {
            function_call: FunctionCall {
                name: call.name.clone(),
                args: call.input(),
            },
        },
        None => Part::Text { text: reply.text() },
    }
}

/// Gemini API `:generateContent`.
pub fn gemini(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    answer(req, ctx, Api::Gemini, false)
}

/// Gemini API `:streamGenerateContent`.
pub fn gemini_stream(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    answer(req, ctx, Api::Gemini, true)
}

/// Vertex AI `:generateContent`.
pub fn vertex(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    answer(req, ctx, Api::Vertex, false)
}

/// Vertex AI `:streamGenerateContent`.
pub fn vertex_stream(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    answer(req, ctx, Api::Vertex, true)
}

/// Gemini API and Vertex AI `:countTokens`: `{"totalTokens": N, ...}`, N counted as a
/// `generateContent` call with the same request reports its prompt tokens. The Gemini API's body
/// may wrap the request in `generateContentRequest`.
pub fn count_tokens(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    let value: serde_json::Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return error::invalid(&format!("Invalid JSON payload received. {e}")),
    };
    let inner = value.get("generateContentRequest").unwrap_or(&value);
    let body = serde_json::to_vec(inner).unwrap_or_default();
    let conv = match request::parse(&body) {
        Ok(c) => c,
        Err(msg) => return error::invalid(&msg),
    };
    let tokens = derive_reply(&conv).prompt_tokens;
    let answer = serde_json::json!({"totalTokens": tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]});
    Plan::json(serde_json::to_vec(&answer).unwrap_or_default())
}

fn answer(req: &SimRequest, ctx: &Ctx<'_>, api: Api, stream: bool) -> Plan {
    let conv = match request::parse(&req.body) {
        Ok(c) => c,
        Err(msg) => return error::invalid(&msg),
    };
    let reply = derive_reply(&conv);
    let frame = Frame {
        api,
        model: req.params.last().map(String::as_str).unwrap_or_default(),
        id: ctx.id(""),
        create_time: (api == Api::Vertex).then(|| rfc3339(ctx.created)),
    };
    if stream {
        let sse = query_param(req, "alt") == Some("sse");
        return stream_plan(&frame, &reply, sse);
    }
    let candidate = Candidate {
        content: frame.content(whole_part(&reply)),
        finish_reason: Some(finish_reason(reply.finish)),
        avg_logprobs: Some(-0.05),
    };
    let body = frame.response(candidate, frame.usage(&reply, true));
    let bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
    Plan::full(200, JSON_UTF8, bytes, reply.completion_tokens())
}

/// The chunks of a streamed answer: one per text piece (the last one finishing), or one holding
/// the whole function call.
fn stream_plan(frame: &Frame<'_>, reply: &Reply, sse: bool) -> Plan {
    let parts: Vec<Part> = match &reply.tool_call {
        Some(_) => vec![whole_part(reply)],
        None => reply
            .pieces
            .iter()
            .map(|p| Part::Text { text: p.clone() })
            .collect(),
    };
    let last = parts.len().saturating_sub(1);
    let mut events = Vec::with_capacity(parts.len().saturating_add(1));
    for (i, part) in parts.into_iter().enumerate() {
        let done = i == last;
        let candidate = Candidate {
            content: frame.content(part),
            finish_reason: done.then(|| finish_reason(reply.finish)),
            avg_logprobs: None,
        };
        let chunk = frame.response(candidate, frame.usage(reply, done));
        let kind = if done {
            EventKind::LastToken
        } else {
            EventKind::Token
        };
        let bytes = if sse {
            format!("data: {}\r\n\r\n", chunk_text(&chunk))
        } else {
            let sep = if i == 0 { "[" } else { "\n,\r\n" };
            let pretty = serde_json::to_string_pretty(&chunk).unwrap_or_default();
            format!("{sep}{pretty}")
        };
        events.push(Event::raw(kind, bytes));
    }
    if sse {
        return Plan::stream(EVENT_STREAM, events);
    }
    events.push(Event::raw(EventKind::Terminator, "\n]"));
    Plan::stream(JSON_UTF8, events)
}
