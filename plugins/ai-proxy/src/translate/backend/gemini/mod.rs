//! Google Gemini backend (Gemini API and Vertex AI): hub (OpenAI chat) request ->
//! `GenerateContentRequest`.
//!
//! The model and the stream flag are not in the body: they are in the path
//! (`…/models/{model}:generateContent` or `:streamGenerateContent?alt=sse`). Mapping:
//! `system`/`developer` messages -> `systemInstruction`; user and assistant turns -> `contents`
//! with roles `user`/`model` ([`contents`]); `tool` messages -> `functionResponse` parts whose
//! function name is recovered from the assistant's earlier `tool_calls`; tools ->
//! `functionDeclarations` with schemas cleaned for Gemini ([`schema`]); `tool_choice` ->
//! `toolConfig.functionCallingConfig`; sampling, limits, `n`, `response_format` and
//! `reasoning_effort` -> `generationConfig`. A client's `safetySettings` pass through untouched;
//! the gateway never sets any. Responses are decoded in [`response`] (JSON) and [`stream`] (SSE);
//! embeddings have their own pure translator in [`embed`].

#![warn(clippy::arithmetic_side_effects)]

pub mod contents;
pub mod embed;
pub mod response;
pub mod schema;
pub mod stream;
#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

use crate::hub::{ChatRequest, ResponseFormat, ToolChoice};
use crate::translate::{Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError};

/// The backend name used in "unsupported" errors.
pub(crate) const NAME: &str = "gemini";

/// The Gemini / Vertex AI `generateContent` backend schema.
pub struct GeminiBackend;

impl Backend for GeminiBackend {
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError> {
        let body = to_gemini(req, ctx)?;
        serde_json::to_vec(&body).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        if head.is_sse() {
            Box::new(stream::GeminiSseToHub::new(head))
        } else {
            Box::new(response::GeminiJsonToHub::new(head))
        }
    }
}

/// Gemini 3 models take a thinking level and want thought signatures on function calls.
pub(crate) fn is_gemini3(model: &str) -> bool {
    model.to_ascii_lowercase().contains("gemini-3")
}

/// Build the `GenerateContentRequest` object.
pub fn to_gemini(req: &ChatRequest, ctx: &mut BuildContext<'_>) -> Result<Value, TranslateError> {
    let converted = contents::convert(&req.messages, ctx)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(converted.contents));
    if !converted.system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": converted.system }),
        );
    }
    // One schema budget for the whole request (tools and response format together).
    let mut budget = schema::Budget::default();
    let generation = generation_config(req, ctx, &mut budget)?;
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    if let Some(tools) = function_declarations(req, &mut budget)? {
        out.insert("tools".into(), tools);
    }
    if let Some(cfg) = tool_config(req)? {
        out.insert("toolConfig".into(), cfg);
    }
    if req.parallel_tool_calls == Some(false) {
        ctx.dropped.push("parallel_tool_calls".into());
    }
    if req.user.is_some() {
        ctx.dropped.push("user".into());
    }
    for (key, value) in &req.extra {
        match key.as_str() {
            "safetySettings" | "safety_settings" => {
                out.insert("safetySettings".into(), value.clone());
            }
            "modalities" => {
                let list = modalities(value).ok_or_else(|| {
                    TranslateError::malformed_param("must be a list of strings", "modalities")
                })?;
                if let Some(Value::Object(g)) = out.get_mut("generationConfig") {
                    g.insert("responseModalities".into(), list);
                } else {
                    out.insert(
                        "generationConfig".into(),
                        json!({ "responseModalities": list }),
                    );
                }
            }
            _ => ctx.unsupported(key, NAME)?,
        }
    }
    Ok(Value::Object(out))
}

/// OpenAI `modalities` (`["text"]`) -> Gemini `responseModalities` (`["TEXT"]`).
fn modalities(v: &Value) -> Option<Value> {
    let names = v.as_array()?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(json!(n.as_str()?.to_ascii_uppercase()));
    }
    Some(Value::Array(out))
}

fn generation_config(
    req: &ChatRequest,
    ctx: &mut BuildContext<'_>,
    budget: &mut schema::Budget,
) -> Result<Map<String, Value>, TranslateError> {
    let mut cfg = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            cfg.insert(k.into(), v);
        }
    };
    put("temperature", req.temperature.map(|t| json!(t)));
    put("topP", req.top_p.map(|p| json!(p)));
    put("maxOutputTokens", req.output_limit().map(|m| json!(m)));
    put(
        "stopSequences",
        req.stop.as_ref().map(|s| json!(s.to_vec())),
    );
    put(
        "candidateCount",
        req.n.filter(|n| *n != 1).map(|n| json!(n)),
    );
    put("presencePenalty", req.presence_penalty.map(|p| json!(p)));
    put("frequencyPenalty", req.frequency_penalty.map(|p| json!(p)));
    put("seed", req.seed.map(|s| json!(s)));
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            cfg.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            cfg.insert("responseMimeType".into(), json!("application/json"));
            if let Some(s) = &json_schema.schema {
                let cleaned = schema::clean(s, budget).map_err(|e| {
                    TranslateError::malformed_param(e.to_string(), "response_format.json_schema")
                })?;
                cfg.insert("responseSchema".into(), cleaned);
            }
        }
    }
    if let Some(thinking) = thinking_config(req.reasoning_effort.as_deref(), ctx.model)? {
        cfg.insert("thinkingConfig".into(), thinking);
    }
    if req.logprobs == Some(true) {
        ctx.unsupported("logprobs", NAME)?;
    }
    if req.top_logprobs.is_some() {
        ctx.unsupported("top_logprobs", NAME)?;
    }
    Ok(cfg)
}

/// `reasoning_effort` -> `thinkingConfig`: a thinking level for Gemini 3 models, a token budget
/// for the 2.x models (`none` turns thinking off where the model allows it). Thoughts are asked
/// for so they come back as reasoning content.
fn thinking_config(effort: Option<&str>, model: &str) -> Result<Option<Value>, TranslateError> {
    let Some(effort) = effort else {
        return Ok(None);
    };
    let budget: u64 = match effort {
        "none" => 0,
        "minimal" | "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        other => {
            return Err(TranslateError::malformed_param(
                format!("unknown reasoning_effort {other:?} (none, minimal, low, medium, high)"),
                "reasoning_effort",
            ))
        }
    };
    if is_gemini3(model) {
        let level = if budget > 1024 { "high" } else { "low" };
        return Ok(Some(
            json!({"thinkingLevel": level, "includeThoughts": budget > 0}),
        ));
    }
    if budget == 0 {
        return Ok(Some(json!({"thinkingBudget": 0})));
    }
    Ok(Some(
        json!({"thinkingBudget": budget, "includeThoughts": true}),
    ))
}

/// `tools` -> one `functionDeclarations` tool (schemas cleaned).
fn function_declarations(
    req: &ChatRequest,
    budget: &mut schema::Budget,
) -> Result<Option<Value>, TranslateError> {
    let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut decls = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        if t.kind != "function" {
            return Err(TranslateError::malformed_param(
                format!("tool type {:?} is not supported (function only)", t.kind),
                &format!("tools[{i}].type"),
            ));
        }
        let mut d = Map::new();
        d.insert("name".into(), json!(t.function.name));
        if let Some(desc) = &t.function.description {
            d.insert("description".into(), json!(desc));
        }
        if let Some(p) = &t.function.parameters {
            let cleaned = schema::clean(p, budget).map_err(|e| {
                TranslateError::malformed_param(
                    e.to_string(),
                    &format!("tools[{i}].function.parameters"),
                )
            })?;
            d.insert("parameters".into(), cleaned);
        }
        decls.push(Value::Object(d));
    }
    Ok(Some(json!([{ "functionDeclarations": decls }])))
}

/// `tool_choice` -> `toolConfig.functionCallingConfig`.
fn tool_config(req: &ChatRequest) -> Result<Option<Value>, TranslateError> {
    let config = match &req.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "none" => json!({"mode": "NONE"}),
            "required" => {
                let names: Vec<&str> = req
                    .tools
                    .iter()
                    .flatten()
                    .map(|t| t.function.name.as_str())
                    .collect();
                if names.is_empty() {
                    json!({"mode": "ANY"})
                } else {
                    json!({"mode": "ANY", "allowedFunctionNames": names})
                }
            }
            other => {
                return Err(TranslateError::malformed_param(
                    format!("unknown tool_choice {other:?}"),
                    "tool_choice",
                ))
            }
        },
        Some(ToolChoice::Named(n)) => {
            json!({"mode": "ANY", "allowedFunctionNames": [n.function.name]})
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}
