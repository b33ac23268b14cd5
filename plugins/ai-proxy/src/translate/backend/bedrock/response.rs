//! Bedrock Converse JSON response -> hub response, and the mappings the stream shares: stop
//! reasons, usage (cache reads and writes included) and exceptions -> client errors.

use aigw_shared::error::{ClientError, ErrorKind};
use serde_json::Value;

use crate::hub::{ChatResponse, HubEvent, Usage};
use crate::translate::backend::openai::JsonToHub;
use crate::translate::kit::response::{self as kit, str_of, Answer};
use crate::translate::{ResponseHead, ResponseTranslator, TranslateError};

/// Converse `stopReason` -> OpenAI `finish_reason`.
pub fn stop_reason_to_finish(reason: &str) -> &'static str {
    kit::stop_reason_to_finish(reason, &["guardrail_intervened", "content_filtered"])
}

/// Converse `usage` -> hub usage. Bedrock's `inputTokens` excludes cache reads and writes;
/// OpenAI's `prompt_tokens` includes them.
pub fn usage_to_hub(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    kit::cached_usage(
        n("inputTokens"),
        n("cacheReadInputTokens"),
        n("cacheWriteInputTokens"),
        n("outputTokens"),
    )
}

/// The HTTP status of a Bedrock exception type (stream exceptions are camelCase, the
/// `x-amzn-errortype` names PascalCase; both are accepted, as is a `:`-suffixed form).
pub fn exception_status(exception_type: &str) -> u16 {
    let name = exception_type
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match name.as_str() {
        "validationexception" => 400,
        "accessdeniedexception" | "unrecognizedclientexception" => 403,
        "resourcenotfoundexception" => 404,
        "modeltimeoutexception" => 504,
        "throttlingexception" | "servicequotaexceededexception" => 429,
        "serviceunavailableexception" | "modelnotreadyexception" => 503,
        "modelstreamerrorexception" | "modelerrorexception" => 502,
        _ => 500,
    }
}

/// A Bedrock exception (type and JSON body `{"message": ...}`) as the client's error.
pub fn exception_to_error(exception_type: &str, payload: &[u8]) -> ClientError {
    let status = exception_status(exception_type);
    let json: Option<Value> = serde_json::from_slice(payload).ok();
    let message = json
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map_or_else(
            || format!("upstream reported {exception_type}"),
            str::to_owned,
        );
    let mut e = ClientError::new(ErrorKind::from_status(status), message).with_status(status);
    if !exception_type.is_empty() {
        e = e.with_code(exception_type.to_owned());
    }
    e
}

/// A response id from the bytes that identify the response (Bedrock bodies carry none).
pub fn response_id(seed: &[u8]) -> String {
    kit::hashed_id("chatcmpl-", seed)
}

/// A whole Converse JSON response -> one hub response.
pub struct ConverseJsonToHub {
    raw: JsonToHub,
    model: String,
    created: u64,
}

impl ConverseJsonToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            raw: JsonToHub::default(),
            model: head.model.clone(),
            created: head.created,
        }
    }
}

impl ResponseTranslator for ConverseJsonToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        self.raw.feed(chunk, out)
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let body = self.raw.bytes();
        let v = kit::parse_body(body)?;
        if v.get("output").is_none() {
            return Err(TranslateError::Upstream(
                "Converse response without `output`".into(),
            ));
        }
        let mut resp = converse_to_hub(&v, self.created, &self.model);
        resp.id = response_id(body);
        out.push(HubEvent::Response(resp));
        Ok(())
    }
}

/// A Converse response object -> hub response (id left empty).
pub fn converse_to_hub(v: &Value, created: u64, model: &str) -> ChatResponse {
    let blocks = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut answer = Answer::default();
    for block in blocks {
        if let Some(t) = block.get("text").and_then(Value::as_str) {
            answer.text.push_str(t);
        } else if let Some(r) = block.pointer("/reasoningContent/reasoningText/text") {
            answer.reasoning.push_str(r.as_str().unwrap_or(""));
        } else if let Some(tu) = block.get("toolUse") {
            answer.calls.push(kit::tool_call(
                str_of(tu, "toolUseId").to_owned(),
                str_of(tu, "name").to_owned(),
                tu.get("input")
                    .map_or_else(|| "{}".into(), Value::to_string),
            ));
        }
    }
    let finish = v
        .get("stopReason")
        .and_then(Value::as_str)
        .map(|r| stop_reason_to_finish(r).to_owned());
    kit::single_choice(
        String::new(),
        created,
        model.to_owned(),
        answer.message(),
        finish,
        v.get("usage").map(usage_to_hub),
    )
}
