//! Same-protocol pairs (OpenAI -> OpenAI-compatible, Anthropic -> Anthropic): no hub, no
//! re-encoding. The original bytes are kept field for field and only `model` is replaced.

use aigw_shared::schema::RawObject;

use super::TranslateError;

/// What the passthrough learned from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    /// The body to send (the original bytes when nothing changed).
    pub body: Vec<u8>,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

/// Read `model` and `stream` from a JSON object body without building values.
pub fn peek(body: &[u8]) -> Result<(Option<String>, bool), TranslateError> {
    let obj = RawObject::parse(body).map_err(|e| {
        TranslateError::malformed(format!("request body is not a JSON object: {e}"))
    })?;
    let model = match obj.get_as::<String>("model") {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(_)) => {
            return Err(TranslateError::malformed_param(
                "`model` must be a string",
                "model",
            ))
        }
    };
    let stream = match obj.get_as::<Option<bool>>("stream") {
        None => false,
        Some(Ok(s)) => s.unwrap_or(false),
        Some(Err(_)) => {
            return Err(TranslateError::malformed_param(
                "`stream` must be a boolean",
                "stream",
            ))
        }
    };
    Ok((model, stream))
}

/// Replace `model` with `mapped` (when it differs), keeping every other byte.
pub fn patch_model(body: &[u8], mapped: &str) -> Result<Patched, TranslateError> {
    let mut obj = RawObject::parse(body).map_err(|e| {
        TranslateError::malformed(format!("request body is not a JSON object: {e}"))
    })?;
    let stream = matches!(obj.get_as::<bool>("stream"), Some(Ok(true)));
    let current = obj.get_as::<String>("model").and_then(Result::ok);
    if current.as_deref() == Some(mapped) {
        return Ok(Patched {
            body: body.to_vec(),
            stream,
        });
    }
    obj.set_json("model", mapped)
        .map_err(|e| TranslateError::malformed(e.to_string()))?;
    Ok(Patched {
        body: obj.to_vec(),
        stream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_changes_and_other_bytes_stay() {
        let body =
            br#"{"model":"gpt-4o","temperature":1.50,"vendor_x":{"a":[1, 2]},"stream":true}"#;
        let p = patch_model(body, "qwen-max").unwrap();
        assert_eq!(
            p.body,
            br#"{"model":"qwen-max","temperature":1.50,"vendor_x":{"a":[1, 2]},"stream":true}"#
        );
        assert!(p.stream);
    }

    #[test]
    fn an_unchanged_model_returns_the_original_bytes() {
        let body = br#"{ "model" : "m" }"#;
        assert_eq!(patch_model(body, "m").unwrap().body, body);
    }

    #[test]
    fn a_non_string_model_is_a_clear_error() {
        assert!(peek(br#"{"model":5}"#).is_err());
        assert!(peek(b"[1]").is_err());
        assert_eq!(peek(br#"{"stream":true}"#).unwrap(), (None, true));
    }
}
