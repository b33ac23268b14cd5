//! OpenAI Responses API clients (`POST /v1/responses`) on backends that only have chat: the
//! request as a chat request for the hub ([`to_chat`]), and the hub's answer as a Responses
//! object ([`ResponsesEncoder`]), streamed as the Responses API's typed events when asked
//! (`response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`, `response.function_call_arguments.delta`,
//! their `.done` events, `response.completed` or `response.incomplete` with the whole response and
//! its usage; an upstream error ends the stream with `response.failed`).
//!
//! What is carried: `instructions` (a system message first), `input` as a string or as items
//! (messages with `input_text` / `output_text` / `input_image` parts, `function_call` and
//! `function_call_output` items; `reasoning` items are dropped: they are the provider's own),
//! function `tools`, `tool_choice`, `max_output_tokens`, `temperature`, `top_p`,
//! `parallel_tool_calls`, `reasoning.effort`, `text.format` (JSON schema or object), `user`.
//! Refused with a 400 naming the field: `previous_response_id` and `conversation` (the gateway
//! keeps no state), built-in tools (web or file search, computer use, code interpreter, MCP, …)
//! and input items only OpenAI has. `store`, `metadata`, `include`, `truncation`,
//! `service_tier` and `background` are accepted and not sent (they describe OpenAI's storage and
//! service).

use serde_json::{json, Map, Value};

use crate::hub::{ChatResponse, HubEvent};
use crate::translate::{ClientEncoder, TranslateError};
use aigw_shared::error::{ClientError, ClientProtocol};

/// The Responses API path (after `/v1`).
pub const RESPONSES: &str = "/responses";

fn bad(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::Malformed {
        message: message.into(),
        param: Some(param.to_owned()),
    }
}

/// Fields accepted and not sent to a chat backend.
const DROPPED: [&str; 7] = [
    "store",
    "metadata",
    "include",
    "truncation",
    "service_tier",
    "background",
    "prompt_cache_key",
];

/// A Responses API request body as a chat completions request (JSON), for the hub.
pub fn to_chat(body: &[u8]) -> Result<Value, TranslateError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(TranslateError::malformed(
            "request body must be a JSON object",
        ));
    };
    let mut chat = Map::new();
    let mut messages: Vec<Value> = Vec::new();
    for (key, value) in &obj {
        match key.as_str() {
            "model" | "temperature" | "top_p" | "parallel_tool_calls" | "user" | "stream" => {
                chat.insert(key.clone(), value.clone());
            }
            "instructions" => match value {
                Value::String(s) => messages.insert(0, json!({"role": "system", "content": s})),
                Value::Null => {}
                _ => return Err(bad("`instructions` must be a string", "instructions")),
            },
            "input" => {}
            "max_output_tokens" => {
                chat.insert("max_tokens".into(), value.clone());
            }
            "tools" => {
                chat.insert("tools".into(), tools(value)?);
            }
            "tool_choice" => {
                chat.insert("tool_choice".into(), tool_choice(value)?);
            }
            "reasoning" => {
                if let Some(effort) = value.get("effort").filter(|e| !e.is_null()) {
                    chat.insert("reasoning_effort".into(), effort.clone());
                }
            }
            "text" => {
                if let Some(format) = response_format(value)? {
                    chat.insert("response_format".into(), format);
                }
            }
            "previous_response_id" | "conversation" if !value.is_null() => {
                return Err(bad(
                    format!(
                        "`{key}` needs responses stored by OpenAI; this backend is stateless: \
                         send the whole conversation in `input`"
                    ),
                    key,
                ));
            }
            k if DROPPED.contains(&k) => {}
            _ if value.is_null() => {}
            other => {
                return Err(bad(
                    format!("`{other}` is not supported for this backend"),
                    other,
                ))
            }
        }
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => input_items(items, &mut messages)?,
        None | Some(Value::Null) => {}
        Some(_) => return Err(bad("`input` must be a string or a list of items", "input")),
    }
    if messages.is_empty() {
        return Err(bad("`input` is required", "input"));
    }
    chat.insert("messages".into(), Value::Array(messages));
    if chat.get("stream").and_then(Value::as_bool) == Some(true) {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(Value::Object(chat))
}

fn input_items(items: &[Value], messages: &mut Vec<Value>) -> Result<(), TranslateError> {
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        match kind {
            "message" => {
                let role = item
                    .get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a message needs a `role`", &path))?;
                let role = if role == "developer" { "system" } else { role };
                let content = match item.get("content") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Array(parts)) => content_parts(parts, &path)?,
                    _ => return Err(bad("a message needs `content`", &path)),
                };
                messages.push(json!({"role": role, "content": content}));
            }
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {
                        "name": item.get("name").cloned().unwrap_or(Value::Null),
                        "arguments": item.get("arguments").cloned()
                            .unwrap_or_else(|| Value::String("{}".into())),
                    }
                });
                // Consecutive calls are one assistant turn.
                let last_is_calls = messages.last().is_some_and(|m| {
                    m["role"] == "assistant"
                        && m.get("tool_calls").is_some()
                        && m["content"].is_null()
                });
                match messages.last_mut() {
                    Some(Value::Object(m)) if last_is_calls => {
                        if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
                            calls.push(call);
                        }
                    }
                    _ => messages.push(json!({"role": "assistant", "content": null,
                        "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                messages.push(json!({"role": "tool",
                    "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "content": output}));
            }
            "reasoning" => {}
            other => {
                return Err(bad(
                    format!("input items of type `{other}` exist only on OpenAI"),
                    &path,
                ))
            }
        }
    }
    Ok(())
}

fn content_parts(parts: &[Value], path: &str) -> Result<Value, TranslateError> {
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": part.get("text").cloned()
                    .unwrap_or_else(|| Value::String(String::new()))}));
            }
            Some("input_image") => {
                let url = part
                    .get("image_url")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("an `input_image` needs an `image_url`", path))?;
                out.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("refusal") => {}
            other => {
                return Err(bad(
                    format!(
                        "content parts of type `{}` are not supported for this backend",
                        other.unwrap_or("?")
                    ),
                    path,
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

fn tools(value: &Value) -> Result<Value, TranslateError> {
    let list = value
        .as_array()
        .ok_or_else(|| bad("`tools` must be a list", "tools"))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let mut function = Map::new();
                for key in ["name", "description", "parameters", "strict"] {
                    if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                        function.insert(key.into(), v.clone());
                    }
                }
                out.push(json!({"type": "function", "function": function}));
            }
            other => {
                return Err(bad(
                    format!(
                        "the built-in tool `{}` is OpenAI's own and not available on this backend",
                        other.unwrap_or("?")
                    ),
                    &format!("tools[{i}]"),
                ))
            }
        }
    }
    Ok(Value::Array(out))
}

fn tool_choice(value: &Value) -> Result<Value, TranslateError> {
    match value {
        Value::String(_) => Ok(value.clone()),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => Ok(
            json!({"type": "function", "function": {"name": o.get("name").cloned().unwrap_or(Value::Null)}}),
        ),
        _ => Err(bad(
            "`tool_choice` must be auto, none, required or a function",
            "tool_choice",
        )),
    }
}

fn response_format(text: &Value) -> Result<Option<Value>, TranslateError> {
    let Some(format) = text.get("format").filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(bad(
            "`text.format.type` must be text, json_object or json_schema",
            "text.format",
        )),
    }
}

/// Encodes the hub's answer as a Responses API object, or as its typed event stream.
#[derive(Debug, Default)]
pub struct ResponsesEncoder {
    stream: bool,
    wrote: bool,
    /// Stream state: started (`response.created` sent), the answer so far, event counter.
    started: bool,
    id: String,
    model: String,
    created: u64,
    sequence: u64,
    text: String,
    /// Output index of the open message item, if one is open.
    message_index: Option<usize>,
    /// Function calls: (hub tool-call index, output index, call id, name, arguments).
    calls: Vec<(u32, usize, String, String, String)>,
    items: usize,
    finish: Option<String>,
    usage: Option<crate::hub::Usage>,
}

impl ResponsesEncoder {
    /// An encoder for one answer (`stream`: the typed event stream).
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            ..Self::default()
        }
    }

    fn event(&mut self, kind: &str, mut body: Value, out: &mut Vec<u8>) {
        if let Value::Object(m) = &mut body {
            m.insert("type".into(), Value::String(kind.to_owned()));
            m.insert("sequence_number".into(), Value::from(self.sequence));
        }
        self.sequence = self.sequence.saturating_add(1);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        if serde_json::to_writer(&mut *out, &body).is_err() {
            out.extend_from_slice(b"{}");
        }
        out.extend_from_slice(b"\n\n");
    }

    fn message_id(&self) -> String {
        format!("msg_{}", self.id)
    }

    /// The response object as it stands (`status`), with the items so far.
    fn snapshot(&self, status: &str) -> Value {
        let mut output = Vec::new();
        let mut slots: Vec<(usize, Value)> = Vec::new();
        if let Some(i) = self.message_index {
            slots.push((
                i,
                json!({"type": "message", "id": self.message_id(),
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": self.text, "annotations": []}]}),
            ));
        }
        for (_, i, call_id, name, args) in &self.calls {
            slots.push((
                *i,
                json!({"type": "function_call", "id": format!("fc_{call_id}"),
                "call_id": call_id, "name": name, "arguments": args, "status": "completed"}),
            ));
        }
        slots.sort_by_key(|(i, _)| *i);
        output.extend(slots.into_iter().map(|(_, v)| v));
        let incomplete = match (status, self.finish.as_deref()) {
            ("incomplete", Some("content_filter")) => json!({"reason": "content_filter"}),
            ("incomplete", _) => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        json!({"id": format!("resp_{}", self.id), "object": "response",
            "created_at": self.created, "status": status, "error": null,
            "incomplete_details": incomplete, "model": self.model, "output": output,
            "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
            "usage": self.usage.as_ref().map(usage_object)})
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = "gateway".into();
        }
        let response = self.snapshot("in_progress");
        self.event("response.created", json!({"response": response}), out);
        let response = self.snapshot("in_progress");
        self.event("response.in_progress", json!({"response": response}), out);
    }

    fn text_delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        let index = match self.message_index {
            Some(i) => i,
            None => {
                let i = self.items;
                self.items = self.items.saturating_add(1);
                self.message_index = Some(i);
                let id = self.message_id();
                self.event(
                    "response.output_item.added",
                    json!({"output_index": i,
                    "item": {"type": "message", "id": id, "status": "in_progress",
                        "role": "assistant", "content": []}}),
                    out,
                );
                self.event(
                    "response.content_part.added",
                    json!({"item_id": id,
                    "output_index": i, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}}),
                    out,
                );
                i
            }
        };
        self.text.push_str(delta);
        let id = self.message_id();
        self.event(
            "response.output_text.delta",
            json!({"item_id": id, "output_index": index,
            "content_index": 0, "delta": delta}),
            out,
        );
    }

    fn call_delta(&mut self, call: &crate::hub::ToolCallDelta, out: &mut Vec<u8>) {
        let function = call.function.as_ref();
        let pos = match self.calls.iter().position(|c| c.0 == call.index) {
            Some(p) => p,
            None => {
                let i = self.items;
                self.items = self.items.saturating_add(1);
                let call_id = call.id.clone().unwrap_or_else(|| format!("call_{i}"));
                let name = function.and_then(|f| f.name.clone()).unwrap_or_default();
                self.event(
                    "response.output_item.added",
                    json!({"output_index": i,
                    "item": {"type": "function_call", "id": format!("fc_{call_id}"),
                        "call_id": call_id, "name": name, "arguments": "",
                        "status": "in_progress"}}),
                    out,
                );
                self.calls
                    .push((call.index, i, call_id, name, String::new()));
                self.calls.len().saturating_sub(1)
            }
        };
        let Some(args) = function.and_then(|f| f.arguments.as_deref()) else {
            return;
        };
        if args.is_empty() {
            return;
        }
        let (item_id, index) = match self.calls.get_mut(pos) {
            Some(c) => {
                c.4.push_str(args);
                (format!("fc_{}", c.2), c.1)
            }
            None => return,
        };
        self.event(
            "response.function_call_arguments.delta",
            json!({"item_id": item_id,
            "output_index": index, "delta": args}),
            out,
        );
    }

    fn chunk(&mut self, c: crate::hub::ChatChunk, out: &mut Vec<u8>) {
        if self.id.is_empty() && !c.id.is_empty() {
            self.id = c.id.trim_start_matches("chatcmpl-").to_owned();
        }
        if self.model.is_empty() {
            self.model.clone_from(&c.model);
        }
        if self.created == 0 {
            self.created = c.created;
        }
        self.start(out);
        if let Some(u) = c.usage {
            self.usage = Some(u);
        }
        for choice in c.choices.into_iter().filter(|ch| ch.index == 0) {
            if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                self.text_delta(text, out);
            }
            for call in choice.delta.tool_calls.iter().flatten() {
                self.call_delta(call, out);
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(f);
            }
        }
    }

    /// Close the open items and end the stream with the whole response.
    fn close(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        if let Some(i) = self.message_index {
            let id = self.message_id();
            let text = self.text.clone();
            self.event(
                "response.output_text.done",
                json!({"item_id": id, "output_index": i,
                "content_index": 0, "text": text}),
                out,
            );
            self.event(
                "response.content_part.done",
                json!({"item_id": id, "output_index": i,
                "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": []}}),
                out,
            );
            self.event(
                "response.output_item.done",
                json!({"output_index": i,
                "item": {"type": "message", "id": id, "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}}),
                out,
            );
        }
        let calls = self.calls.clone();
        for (_, i, call_id, name, args) in calls {
            let item_id = format!("fc_{call_id}");
            self.event(
                "response.function_call_arguments.done",
                json!({"item_id": item_id,
                "output_index": i, "arguments": args}),
                out,
            );
            self.event(
                "response.output_item.done",
                json!({"output_index": i,
                "item": {"type": "function_call", "id": item_id, "call_id": call_id,
                    "name": name, "arguments": args, "status": "completed"}}),
                out,
            );
        }
        let incomplete = matches!(self.finish.as_deref(), Some("length" | "content_filter"));
        let (kind, status) = if incomplete {
            ("response.incomplete", "incomplete")
        } else {
            ("response.completed", "completed")
        };
        let response = self.snapshot(status);
        self.event(kind, json!({"response": response}), out);
    }

    fn fail(&mut self, e: &ClientError, out: &mut Vec<u8>) {
        self.start(out);
        let mut response = self.snapshot("failed");
        if let Value::Object(m) = &mut response {
            m.insert(
                "error".into(),
                json!({"code": e.kind.openai_type(), "message": e.message}),
            );
        }
        self.event("response.failed", json!({"response": response}), out);
    }
}

impl ClientEncoder for ResponsesEncoder {
    fn content_type(&self) -> &'static str {
        if self.stream {
            "text/event-stream"
        } else {
            "application/json"
        }
    }

    fn encode(&mut self, ev: HubEvent, out: &mut Vec<u8>) {
        if self.wrote {
            return;
        }
        match ev {
            HubEvent::Chunk(c) if self.stream => self.chunk(c, out),
            HubEvent::Response(r) => {
                let v = response_object(&r);
                if serde_json::to_writer(&mut *out, &v).is_err() {
                    out.extend_from_slice(b"{}");
                }
                self.wrote = true;
            }
            HubEvent::Error(e) if self.stream => {
                self.fail(&e, out);
                self.wrote = true;
            }
            HubEvent::Error(e) => {
                out.extend_from_slice(&e.body(ClientProtocol::OpenAi));
                self.wrote = true;
            }
            HubEvent::Chunk(_) => {}
        }
    }

    fn finish(&mut self, error: Option<ClientError>, out: &mut Vec<u8>) {
        if self.wrote {
            return;
        }
        self.wrote = true;
        match (error, self.stream) {
            (Some(e), true) => self.fail(&e, out),
            (Some(e), false) => out.extend_from_slice(&e.body(ClientProtocol::OpenAi)),
            (None, true) => self.close(out),
            (None, false) => {}
        }
    }
}

fn usage_object(u: &crate::hub::Usage) -> Value {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .and_then(|d| d.cached_tokens)
        .unwrap_or(0);
    let reasoning = u
        .completion_tokens_details
        .as_ref()
        .and_then(|d| d.reasoning_tokens)
        .unwrap_or(0);
    json!({"input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": u.total_tokens})
}

/// The Responses object for a chat answer.
pub fn response_object(r: &ChatResponse) -> Value {
    let id = r.id.trim_start_matches("chatcmpl-");
    let mut output = Vec::new();
    let choice = r.choices.first();
    let message = choice.map(|c| &c.message);
    if let Some(text) = message.and_then(|m| m.reasoning_content.as_deref()) {
        if !text.is_empty() {
            output.push(json!({"type": "reasoning", "id": format!("rs_{id}"),
                "summary": [{"type": "summary_text", "text": text}]}));
        }
    }
    if let Some(text) = message.and_then(|m| m.content.as_deref()) {
        if !text.is_empty() {
            output.push(json!({"type": "message", "id": format!("msg_{id}"),
                "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}));
        }
    }
    for (i, call) in message
        .and_then(|m| m.tool_calls.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        output.push(
            json!({"type": "function_call", "id": format!("fc_{id}_{i}"),
            "call_id": call.id, "name": call.function.name,
            "arguments": call.function.arguments, "status": "completed"}),
        );
    }
    let finish = choice.and_then(|c| c.finish_reason.as_deref());
    let (status, incomplete) = match finish {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    };
    let usage = r.usage.as_ref().map(usage_object);
    json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": r.created,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "model": r.model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Value {
        to_chat(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn instructions_and_a_string_input_are_a_system_and_a_user_message() {
        let c = chat(
            json!({"model": "m", "instructions": "Be brief.", "input": "Hi",
            "max_output_tokens": 50, "store": true, "metadata": {"a": "b"}}),
        );
        assert_eq!(
            c["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        );
        assert_eq!(c["max_tokens"], 50);
        assert!(c.get("store").is_none() && c.get("metadata").is_none());
    }

    #[test]
    fn items_become_messages_tool_calls_and_tool_results() {
        let c = chat(json!({"model": "m", "input": [
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                {"type": "input_image", "image_url": "https://x/y.png"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "Sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": "noon"}],
            "tools": [{"type": "function", "name": "weather", "description": "d",
                "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
            "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}}));
        let m = c["messages"].as_array().unwrap();
        assert_eq!(m.len(), 5, "{m:?}");
        assert_eq!(m[0]["role"], "system");
        assert_eq!(m[1]["content"][1]["image_url"]["url"], "https://x/y.png");
        assert_eq!(
            m[2]["tool_calls"].as_array().unwrap().len(),
            2,
            "one assistant turn"
        );
        assert_eq!(m[2]["tool_calls"][0]["function"]["name"], "weather");
        assert_eq!(
            m[3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "Sunny"})
        );
        assert_eq!(c["tools"][0]["function"]["name"], "weather");
        assert_eq!(c["tools"][0]["function"]["strict"], true);
        assert_eq!(c["tool_choice"]["function"]["name"], "weather");
        assert_eq!(c["reasoning_effort"], "low");
        assert_eq!(c["response_format"]["json_schema"]["name"], "w");
    }

    #[test]
    fn what_a_stateless_chat_backend_cannot_do_is_refused_by_name() {
        for (body, param) in [
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0]",
            ),
            (
                json!({"model": "m", "input": [{"type": "file_search_call", "id": "x"}]}),
                "input[0]",
            ),
            (
                json!({"model": "m", "input": "x", "prompt": {"id": "p"}}),
                "prompt",
            ),
            (json!({"model": "m"}), "input"),
        ] {
            match to_chat(body.to_string().as_bytes()) {
                Err(TranslateError::Malformed { param: Some(p), .. }) => assert_eq!(p, param),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_chat_answer_becomes_a_responses_object() {
        let r: ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant",
                "content": "Hello", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 3}}}))
        .unwrap();
        let v = response_object(&r);
        assert_eq!(v["object"], "response");
        assert_eq!(v["id"], "resp_abc");
        assert_eq!(v["status"], "incomplete");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(v["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(v["output"][1]["type"], "function_call");
        assert_eq!(v["output"][1]["call_id"], "c1");
        assert_eq!(v["usage"]["input_tokens"], 5);
        assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 3);
        assert_eq!(v["usage"]["total_tokens"], 7);
    }
}
