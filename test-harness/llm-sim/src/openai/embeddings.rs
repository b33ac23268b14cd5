//! `POST /v1/embeddings`: deterministic unit vectors per input, as float arrays or as base64 of
//! little-endian `f32`s (`encoding_format: "base64"`).

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use crate::plan::Plan;
use crate::reply::{count_tokens, embed, DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::request::SimRequest;
use crate::router::Ctx;

/// One input to embed: its text (token arrays are rendered as their numbers) and token count.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Input {
    text: String,
    tokens: u64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Response<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

/// Route handler.
pub fn handle(req: &SimRequest, _ctx: &Ctx<'_>) -> Plan {
    match respond(&req.body) {
        Ok(body) => Plan::json(body),
        Err(e) => e.plan(),
    }
}

fn respond(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ApiError::unparsable_body())?;
    let obj = value.as_object().ok_or_else(ApiError::unparsable_body)?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => return Err(ApiError::missing_model()),
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err(ApiError::wrong_type("model", "a string")),
    };
    let inputs = inputs(obj.get("input"))?;
    // OpenAI checks `dimensions` before `encoding_format` (see the recorded 400).
    let dims = dimensions(obj.get("dimensions"))?;
    let base64 = match obj.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(f)) if f == "float" => false,
        Some(Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid value for 'encoding_format': expected one of 'float' or 'base64'.",
                Some("encoding_format"),
                Some("invalid_value"),
            ))
        }
    };
    let mut tokens = 0u64;
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            tokens = tokens.saturating_add(input.tokens);
            let v = embed(&input.text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Vector::Floats(v)
            };
            Item {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    let resp = Response {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Ok(serde_json::to_vec_pretty(&resp).unwrap_or_default())
}

fn inputs(input: Option<&Value>) -> Result<Vec<Input>, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "'input' must be a string, an array of strings, an array of token ids, or an array of token id arrays.",
            Some("input"),
            Some("invalid_type"),
        )
    };
    let list = match input {
        None | Some(Value::Null) => return Err(ApiError::missing("input")),
        Some(Value::String(s)) => return Ok(vec![text_input(s)]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid()),
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "'input' cannot be an empty array.",
            Some("input"),
            None,
        ));
    }
    if list.iter().all(Value::is_u64) {
        return Ok(vec![token_input(list)]);
    }
    list.iter()
        .map(|item| match item {
            Value::String(s) => Ok(text_input(s)),
            Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_u64) => {
                Ok(token_input(ids))
            }
            _ => Err(invalid()),
        })
        .collect()
}

fn text_input(s: &str) -> Input {
    Input {
        text: s.to_string(),
        tokens: count_tokens(s),
    }
}

fn token_input(ids: &[Value]) -> Input {
    let text = ids
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    Input {
        text,
        tokens: u64::try_from(ids.len()).unwrap_or(u64::MAX),
    }
}

fn dimensions(value: Option<&Value>) -> Result<usize, ApiError> {
    let n = match value {
        None | Some(Value::Null) => return Ok(DEFAULT_DIMENSIONS),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(ApiError::wrong_type("dimensions", "an integer")),
    };
    match n.as_i64() {
        Some(d) if d < 1 => Err(ApiError::invalid(
            format!("{d} is less than the minimum of 1 - 'dimensions'"),
            None,
            None,
        )),
        Some(d) => match usize::try_from(d) {
            Ok(d) if d <= MAX_DIMENSIONS => Ok(d),
            _ => Err(ApiError::invalid(
                format!("{d} is greater than the maximum of {MAX_DIMENSIONS} - 'dimensions'"),
                None,
                None,
            )),
        },
        None => Err(ApiError::wrong_type("dimensions", "an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_form_becomes_one_item_per_input() {
        assert_eq!(
            inputs(Some(&serde_json::json!("a b"))).unwrap()[0].tokens,
            2
        );
        assert_eq!(
            inputs(Some(&serde_json::json!(["a", "b c"])))
                .unwrap()
                .len(),
            2
        );
        let toks = inputs(Some(&serde_json::json!([1, 2, 3]))).unwrap();
        assert_eq!((toks.len(), toks[0].tokens), (1, 3));
        assert_eq!(
            inputs(Some(&serde_json::json!([[1], [2, 3]])))
                .unwrap()
                .len(),
            2
        );
        assert!(inputs(Some(&serde_json::json!([{}]))).is_err());
        assert!(inputs(None).is_err());
    }

    #[test]
    fn dimensions_default_and_bounds_match_openai_messages() {
        assert_eq!(dimensions(None).unwrap(), DEFAULT_DIMENSIONS);
        assert_eq!(dimensions(Some(&serde_json::json!(3))).unwrap(), 3);
        let e = dimensions(Some(&serde_json::json!(-1))).unwrap_err();
        assert_eq!(e.message, "-1 is less than the minimum of 1 - 'dimensions'");
        assert!(dimensions(Some(&serde_json::json!(1.5))).is_err());
    }
}
