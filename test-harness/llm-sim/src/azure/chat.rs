//! `POST /openai/deployments/{deployment}/chat/completions`: OpenAI's request format (the model
//! may be left out; it defaults to the deployment name) answered in Azure's form — keys in byte
//! order at every level, `prompt_filter_results`, `content_filter_results` per choice,
//! `logprobs: null`, no `service_tier`.

use serde_json::{json, Value};

use super::{check_api_version, decorate, filter, stream, with_model};
use crate::openai::chat::{finish_reason, parse, Usage};
use crate::plan::{Plan, JSON};
use crate::reply::{derive_reply, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::sorted;

/// Route handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    if let Err(plan) = check_api_version(req) {
        return plan;
    }
    let chat = match parse(&with_model(req)) {
        Ok(chat) => chat,
        Err(e) => return e.plan(),
    };
    if filter::triggered(&chat.conversation) {
        return decorate(filter::refusal(), req, ctx);
    }
    let reply = derive_reply(&chat.conversation);
    let plan = if chat.stream {
        stream::plan(&chat, &reply, ctx)
    } else {
        let body = completion(&chat.model, &reply, ctx);
        Plan::full(200, JSON, sorted::to_vec(&body), reply.completion_tokens())
    };
    decorate(plan, req, ctx)
}

/// OpenAI's usage object as a JSON value.
pub fn usage(reply: &Reply) -> Value {
    serde_json::to_value(Usage::of(reply)).unwrap_or(Value::Null)
}

fn message(reply: &Reply) -> Value {
    match &reply.tool_call {
        Some(call) => json!({
            "annotations": [],
            "content": null,
            "refusal": null,
            "role": "assistant",
            "tool_calls": [{
                "function": {"arguments": call.arguments, "name": call.name},
                "id": format!("call_{}", call.id),
                "type": "function",
            }],
        }),
        None => json!({
            "annotations": [],
            "content": reply.text(),
            "refusal": null,
            "role": "assistant",
        }),
    }
}

fn completion(model: &str, reply: &Reply, ctx: &Ctx<'_>) -> Value {
    let filter_results = match reply.tool_call {
        Some(_) => json!({}),
        None => filter::completion_results(),
    };
    json!({
        "choices": [{
            "content_filter_results": filter_results,
            "finish_reason": finish_reason(reply.finish),
            "index": 0,
            "logprobs": null,
            "message": message(reply),
        }],
        "created": ctx.created,
        "id": ctx.id("chatcmpl-"),
        "model": model,
        "object": "chat.completion",
        "prompt_filter_results": filter::prompt_filter_results(),
        "system_fingerprint": null,
        "usage": usage(reply),
    })
}
