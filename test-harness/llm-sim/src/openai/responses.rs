//! `POST /v1/responses`: the OpenAI Responses API. `input` as a string or as items (messages with
//! string or `input_text`/`output_text` parts, `function_call` and `function_call_output` items),
//! `instructions`, flat function `tools` and `tool_choice`, `max_output_tokens`, `stream`. The
//! answer is the `response` object shaped like `testdata/providers/openai-responses*.json`, or,
//! streamed, its typed event sequence (`response.created`, `response.in_progress`,
//! `response.output_item.added`, `response.content_part.added`, `response.output_text.delta` or
//! `response.function_call_arguments.delta` per piece, the `.done` events, then
//! `response.completed` or `response.incomplete` with the whole response), each event named and
//! carrying its `type` and `sequence_number`.
//!
//! State lives with OpenAI: a `previous_response_id` the simulator never issued is answered as
//! OpenAI answers an unknown one.

use serde_json::{json, Map, Value};

use super::chat::{flag, required_model, role_and_text};
use super::error::ApiError;
use crate::plan::{Event, EventKind, Plan, EVENT_STREAM, JSON};
use crate::reply::{derive_reply, Conversation, Finish, Reply};
use crate::request::SimRequest;
use crate::router::Ctx;
use crate::tools::{Tool, ToolChoice};

/// A validated Responses API request.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesRequest {
    /// `model`, echoed back.
    pub model: String,
    /// Instructions and input texts.
    pub conversation: Conversation,
    /// `stream: true`.
    pub stream: bool,
    /// `instructions`, echoed back.
    pub instructions: Option<String>,
    /// `max_output_tokens`, echoed back.
    pub max_output_tokens: Option<u64>,
    /// `tools`, echoed back.
    pub tools: Vec<Value>,
}

/// Route handler.
pub fn handle(req: &SimRequest, ctx: &Ctx<'_>) -> Plan {
    let request = match parse(&req.body) {
        Ok(r) => r,
        Err(e) => return e.plan(),
    };
    let reply = derive_reply(&request.conversation);
    let ids = Ids::new(ctx, &reply);
    if request.stream {
        return stream(&request, &reply, &ids, ctx.created);
    }
    let body = response(&request, &reply, &ids, ctx.created, status_of(&reply));
    Plan::full(
        200,
        JSON,
        serde_json::to_vec_pretty(&body).unwrap_or_default(),
        reply.completion_tokens(),
    )
}

/// The ids of one answer: the response, its message item, its function call item.
struct Ids {
    response: String,
    message: String,
    call_item: String,
    call: String,
}

impl Ids {
    fn new(ctx: &Ctx<'_>, reply: &Reply) -> Self {
        let base = ctx.id("");
        let call = reply
            .tool_call
            .as_ref()
            .map(|c| format!("call_{}", c.id))
            .unwrap_or_default();
        Ids {
            response: format!("resp_{base}"),
            message: format!("msg_{base}"),
            call_item: format!("fc_{base}"),
            call,
        }
    }
}

/// The status of a finished response and of its output item: cut by `max_output_tokens`, OpenAI
/// marks both `incomplete`.
fn status_of(reply: &Reply) -> &'static str {
    if reply.finish == Finish::Length {
        "incomplete"
    } else {
        "completed"
    }
}

fn usage(reply: &Reply) -> Value {
    json!({
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": reply.completion_tokens(),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.total_tokens(),
    })
}

/// The one output item of a finished answer.
fn output_item(reply: &Reply, ids: &Ids, status: &str) -> Value {
    match &reply.tool_call {
        Some(call) => json!({
            "arguments": call.arguments, "call_id": ids.call, "id": ids.call_item,
            "name": call.name, "status": status, "type": "function_call",
        }),
        None => json!({
            "content": [text_part(&reply.text())],
            "id": ids.message, "role": "assistant", "status": status, "type": "message",
        }),
    }
}

fn text_part(text: &str) -> Value {
    json!({"annotations": [], "logprobs": [], "text": text, "type": "output_text"})
}

/// The `response` object in `status`: with its output and usage once it has ended.
fn response(
    request: &ResponsesRequest,
    reply: &Reply,
    ids: &Ids,
    created: u64,
    status: &str,
) -> Value {
    let ended = status != "in_progress";
    let output = if ended {
        vec![output_item(reply, ids, status_of(reply))]
    } else {
        Vec::new()
    };
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "background": false,
        "created_at": created,
        "error": null,
        "id": ids.response,
        "incomplete_details": incomplete,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "max_tool_calls": null,
        "metadata": {},
        "model": request.model,
        "object": "response",
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "prompt_cache_key": null,
        "reasoning": {"effort": null, "summary": null},
        "safety_identifier": null,
        "service_tier": "default",
        "status": status,
        "store": true,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": request.tools,
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": if ended { usage(reply) } else { Value::Null },
        "user": null,
    })
}

/// Numbered, named events.
struct Events {
    list: Vec<Event>,
    next: u64,
}

impl Events {
    fn push(&mut self, kind: EventKind, name: &str, mut data: Value) {
        if let Value::Object(m) = &mut data {
            m.insert("type".into(), Value::from(name));
            m.insert("sequence_number".into(), Value::from(self.next));
        }
        self.next += 1;
        self.list
            .push(Event::sse_named(kind, name, &data.to_string()));
    }
}

/// The streamed answer: the typed event sequence of the Responses API.
fn stream(request: &ResponsesRequest, reply: &Reply, ids: &Ids, created: u64) -> Plan {
    let mut ev = Events {
        list: Vec::with_capacity(reply.pieces.len() + 10),
        next: 0,
    };
    let progress = response(request, reply, ids, created, "in_progress");
    ev.push(
        EventKind::Lead,
        "response.created",
        json!({"response": progress}),
    );
    ev.push(
        EventKind::Lead,
        "response.in_progress",
        json!({"response": progress}),
    );
    match &reply.tool_call {
        Some(call) => {
            let item = json!({"arguments": "", "call_id": ids.call, "id": ids.call_item,
                "name": call.name, "status": "in_progress", "type": "function_call"});
            ev.push(
                EventKind::Lead,
                "response.output_item.added",
                json!({"item": item, "output_index": 0}),
            );
            for piece in &call.pieces {
                ev.push(
                    EventKind::Token,
                    "response.function_call_arguments.delta",
                    json!({"delta": piece, "item_id": ids.call_item, "output_index": 0}),
                );
            }
            ev.push(
                EventKind::Trail,
                "response.function_call_arguments.done",
                json!({"arguments": call.arguments, "item_id": ids.call_item, "output_index": 0}),
            );
        }
        None => {
            let item = json!({"content": [], "id": ids.message, "role": "assistant",
                "status": "in_progress", "type": "message"});
            ev.push(
                EventKind::Lead,
                "response.output_item.added",
                json!({"item": item, "output_index": 0}),
            );
            ev.push(
                EventKind::Lead,
                "response.content_part.added",
                json!({"content_index": 0, "item_id": ids.message, "output_index": 0,
                    "part": text_part("")}),
            );
            for piece in &reply.pieces {
                ev.push(
                    EventKind::Token,
                    "response.output_text.delta",
                    json!({"content_index": 0, "delta": piece, "item_id": ids.message,
                        "logprobs": [], "output_index": 0}),
                );
            }
            let text = reply.text();
            ev.push(
                EventKind::Trail,
                "response.output_text.done",
                json!({"content_index": 0, "item_id": ids.message, "logprobs": [],
                    "output_index": 0, "text": text}),
            );
            ev.push(
                EventKind::Trail,
                "response.content_part.done",
                json!({"content_index": 0, "item_id": ids.message, "output_index": 0,
                    "part": text_part(&text)}),
            );
        }
    }
    ev.push(
        EventKind::Trail,
        "response.output_item.done",
        json!({"item": output_item(reply, ids, status_of(reply)), "output_index": 0}),
    );
    let status = status_of(reply);
    let done = response(request, reply, ids, created, status);
    ev.push(
        EventKind::Terminator,
        &format!("response.{status}"),
        json!({"response": done}),
    );
    Plan::stream(EVENT_STREAM, ev.list)
}

/// Validates a Responses API body the way OpenAI does for the fields the simulator reads.
pub fn parse(body: &[u8]) -> Result<ResponsesRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::unparsable_body())?;
    let obj = value.as_object().ok_or_else(ApiError::unparsable_body)?;
    let model = required_model(obj)?;
    if let Some(Value::String(id)) = obj.get("previous_response_id") {
        return Err(ApiError::invalid(
            format!("Previous response with id '{id}' not found."),
            Some("previous_response_id"),
            Some("previous_response_not_found"),
        ));
    }
    let mut conversation = Conversation::default();
    let instructions = match obj.get("instructions") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::wrong_type("instructions", "a string")),
    };
    if let Some(text) = &instructions {
        conversation.messages.push((false, text.clone()));
    }
    match obj.get("input") {
        None | Some(Value::Null) => return Err(ApiError::missing("input")),
        Some(Value::String(s)) => conversation.messages.push((true, s.clone())),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                conversation.messages.push(item_text(i, item)?);
            }
            conversation.last_is_tool_result = items
                .last()
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
                == Some("function_call_output");
        }
        Some(_) => {
            return Err(ApiError::wrong_type(
                "input",
                "a string or an array of items",
            ))
        }
    }
    let tools = match obj.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err(ApiError::wrong_type("tools", "an array")),
    };
    conversation.tools = function_tools(obj, &tools);
    conversation.tool_choice = tool_choice(obj.get("tool_choice"));
    let max_output_tokens = match obj.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ApiError::wrong_type("max_output_tokens", "an integer"))?,
        ),
    };
    conversation.max_tokens = max_output_tokens;
    let stream = flag(obj, "stream")?;
    Ok(ResponsesRequest {
        model,
        conversation,
        stream,
        instructions,
        max_output_tokens,
        tools,
    })
}

/// One input item as (from the user, text).
fn item_text(i: usize, item: &Value) -> Result<(bool, String), ApiError> {
    let param = format!("input[{i}]");
    let obj = item
        .as_object()
        .ok_or_else(|| ApiError::wrong_type(&param, "an object"))?;
    match obj.get("type").and_then(Value::as_str).unwrap_or("message") {
        "message" => {}
        "function_call" => {
            let args = obj.get("arguments").and_then(Value::as_str).unwrap_or("");
            return Ok((false, args.to_owned()));
        }
        "function_call_output" => {
            let out = match obj.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(ApiError::missing(&format!("{param}.output"))),
            };
            return Ok((false, out));
        }
        other => {
            return Err(ApiError::invalid(
                format!("Invalid value: '{other}'. Supported values are: 'message', 'function_call' and 'function_call_output'."),
                Some(&format!("{param}.type")),
                Some("invalid_value"),
            ))
        }
    }
    role_and_text(&param, obj, true)
}

/// Function tools (`{"type": "function", "name", "parameters"}`); none with `tool_choice: none`.
fn function_tools(obj: &Map<String, Value>, tools: &[Value]) -> Vec<Tool> {
    if obj.get("tool_choice").and_then(Value::as_str) == Some("none") {
        return Vec::new();
    }
    tools
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| {
            Some(Tool {
                name: t.get("name")?.as_str()?.to_owned(),
                parameters: t.get("parameters").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// `tool_choice`: `"required"`, `{"type": "function", "name"}`, else the model decides.
fn tool_choice(value: Option<&Value>) -> ToolChoice {
    match value {
        Some(Value::String(s)) if s == "required" => ToolChoice::Any,
        Some(v) => match v.get("name").and_then(Value::as_str) {
            Some(name) => ToolChoice::Named(name.to_owned()),
            None => ToolChoice::Auto,
        },
        None => ToolChoice::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/providers")
            .join(name);
        std::fs::read(path).unwrap_or_default()
    }

    #[test]
    fn the_real_requests_parse_into_a_conversation() {
        let r = parse(&fixture("openai-responses.request.json")).unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert_eq!(
            r.conversation.messages,
            [(true, "What is the capital of France?".to_owned())]
        );
        let r = parse(&fixture("openai-responses-functioncall.request.json")).unwrap();
        assert_eq!(r.conversation.tools.len(), 1);
        assert_eq!(r.conversation.tools[0].name, "get_capital");
        let r = parse(&fixture(
            "openai-responses-functioncall-output.request.json",
        ))
        .unwrap();
        assert!(r.conversation.last_is_tool_result);
        assert_eq!(r.conversation.messages.len(), 3);
    }

    #[test]
    fn an_answer_cut_by_max_output_tokens_has_its_item_incomplete_too() {
        let request =
            parse(br#"{"model":"m","input":"one two three four","max_output_tokens":1}"#).unwrap();
        let reply = derive_reply(&request.conversation);
        assert_eq!(reply.finish, Finish::Length);
        let ids = Ids {
            response: "resp_1".into(),
            message: "msg_1".into(),
            call_item: "fc_1".into(),
            call: String::new(),
        };
        let body = response(&request, &reply, &ids, 0, status_of(&reply));
        assert_eq!(body["status"], "incomplete");
        assert_eq!(body["output"][0]["status"], "incomplete");
        let Plan::Stream { events, .. } = stream(&request, &reply, &ids, 0) else {
            panic!("not a stream")
        };
        let item_done = String::from_utf8_lossy(&events[events.len() - 2].bytes).into_owned();
        assert!(item_done.starts_with("event: response.output_item.done\n"));
        let data: Value =
            serde_json::from_str(item_done.split_once("data: ").unwrap().1.trim()).unwrap();
        assert_eq!(data["item"]["status"], "incomplete");
    }

    #[test]
    fn instructions_come_first_and_what_openai_refuses_is_refused_with_its_codes() {
        let r =
            parse(br#"{"model":"m","instructions":"be brief","input":"hi","max_output_tokens":3}"#)
                .unwrap();
        assert_eq!(
            r.conversation.messages,
            [(false, "be brief".to_owned()), (true, "hi".to_owned())]
        );
        assert_eq!(r.conversation.max_tokens, Some(3));
        assert_eq!(
            parse(br#"{"input":"hi"}"#).unwrap_err(),
            ApiError::missing_model()
        );
        assert_eq!(
            parse(br#"{"model":"m"}"#).unwrap_err().code,
            Some("missing_required_parameter")
        );
        let e = parse(br#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#).unwrap_err();
        assert_eq!(e.code, Some("previous_response_not_found"));
        let e = parse(br#"{"model":"m","input":[{"type":"web_search_call"}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("input[0].type"));
    }
}
