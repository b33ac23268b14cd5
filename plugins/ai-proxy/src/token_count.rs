//! Token counting endpoints the gateway answers or forwards: Anthropic's
//! `POST /v1/messages/count_tokens` and OpenAI's `POST /v1/responses/input_tokens`, and the
//! estimate for a Responses API body when the provider has no counting API.

use aigw_shared::tokens::TokenEstimator;
use serde_json::Value;

/// Anthropic's token counting endpoint (after `/v1`).
pub const COUNT_TOKENS: &str = "/messages/count_tokens";

/// OpenAI's Responses API input token count (after `/v1`).
pub const INPUT_TOKENS: &str = "/responses/input_tokens";

/// Framing tokens counted per input item (role, separators), as for chat messages.
const TOKENS_PER_ITEM: u64 = 3;

/// The estimated input tokens of a Responses API body: `instructions`, every text of `input` (a
/// string, or items: messages with string or part contents, function calls and their outputs)
/// and the tools' names, descriptions and parameter schemas. `Err`: not a JSON object.
pub fn estimate_responses_input(body: &[u8]) -> Result<u64, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v.as_object().ok_or("the body must be a JSON object")?;
    let mut e = TokenEstimator::new();
    let mut push = |text: &str| {
        e.push(text);
        e.break_word();
    };
    let mut items = 0u64;
    if let Some(Value::String(s)) = obj.get("instructions") {
        push(s);
        items += 1;
    }
    match obj.get("input") {
        Some(Value::String(s)) => {
            push(s);
            items += 1;
        }
        Some(Value::Array(list)) => {
            for item in list {
                items += 1;
                texts_of_item(item, &mut push);
            }
        }
        _ => {}
    }
    for tool in obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["name", "description"] {
            if let Some(Value::String(s)) = tool.get(key) {
                push(s);
            }
        }
        if let Some(p) = tool.get("parameters") {
            push(&p.to_string());
        }
    }
    Ok(e.estimate()
        .tokens
        .saturating_add(items.saturating_mul(TOKENS_PER_ITEM)))
}

/// The texts of one input item.
fn texts_of_item(item: &Value, push: &mut dyn FnMut(&str)) {
    match item.get("content") {
        Some(Value::String(s)) => push(s),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(Value::String(s)) = part.get("text") {
                    push(s);
                }
            }
        }
        _ => {}
    }
    for key in ["name", "arguments", "output"] {
        if let Some(Value::String(s)) = item.get(key) {
            push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_input_counts_and_more_text_counts_more() {
        let plain = estimate_responses_input(br#"{"model":"m","input":"Hello there"}"#).unwrap();
        assert!(plain >= 2, "{plain}");
        let items = estimate_responses_input(
            br#"{"model":"m","instructions":"Be brief.","input":[
              {"role":"user","content":[{"type":"input_text","text":"What is the weather in Paris?"}]},
              {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
              {"type":"function_call_output","call_id":"c1","output":"Sunny, 21 degrees"}],
              "tools":[{"type":"function","name":"get_weather","description":"Weather by city",
                        "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]}"#,
        )
        .unwrap();
        assert!(items > 4 * plain, "{items} vs {plain}");
        assert!(estimate_responses_input(b"[1]").is_err());
        assert!(estimate_responses_input(b"{not json").is_err());
    }
}
