//! The embedding callout: an OpenAI-compatible `POST /v1/embeddings` (OpenAI, Azure OpenAI, vLLM,
//! Ollama, …) with the configured model and, when set, `dimensions`; the answer's first vector.

use aigw_shared::callout::CalloutRequest;
use serde::Deserialize;

use crate::config::Embedding;
use crate::store::excerpt;

/// The request body for `text`.
pub fn body(e: &Embedding, text: &str) -> Vec<u8> {
    let mut v = serde_json::Map::new();
    v.insert("model".into(), e.model.clone().into());
    v.insert("input".into(), text.into());
    if let Some(d) = e.dimensions {
        v.insert("dimensions".into(), d.into());
    }
    v.insert("encoding_format".into(), "float".into());
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The callout carrying `body`.
pub fn request<'a>(e: &'a Embedding, body: &'a [u8]) -> CalloutRequest<'a> {
    let mut req = CalloutRequest::post_json(&e.path, body, e.timeout);
    req.headers
        .extend(e.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    req
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
}

/// Read the service's answer: the first embedding (non-empty, finite), or why not.
pub fn vector(status: Option<u16>, body: &[u8]) -> Result<Vec<f32>, String> {
    let status = status.ok_or("no response (timeout or connection failure)")?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", excerpt(body)));
    }
    let a: Answer = serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    let v = a
        .data
        .into_iter()
        .next()
        .map(|i| i.embedding)
        .ok_or("no embedding in the answer")?;
    if v.is_empty() || !v.iter().all(|x| x.is_finite()) {
        return Err("the embedding is empty or not finite".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../../testdata/providers/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn service(dimensions: Option<u32>) -> Embedding {
        Embedding {
            upstream: aigw_shared::callout::Upstream::envoy("e", "e"),
            path: "/v1/embeddings".into(),
            model: "text-embedding-3-small".into(),
            dimensions,
            headers: vec![("authorization".into(), b"Bearer k".to_vec())],
            timeout: Duration::from_millis(500),
            max_input_chars: 100,
        }
    }

    #[test]
    fn the_request_names_model_input_and_dimensions_when_set() {
        let v: serde_json::Value =
            serde_json::from_slice(&body(&service(Some(256)), "hi")).unwrap();
        assert_eq!(v["model"], "text-embedding-3-small");
        assert_eq!(
            (v["input"].as_str(), v["dimensions"].as_u64()),
            (Some("hi"), Some(256))
        );
        let v: serde_json::Value = serde_json::from_slice(&body(&service(None), "hi")).unwrap();
        assert!(v.get("dimensions").is_none());
        let s = service(None);
        let b = body(&s, "x");
        let req = request(&s, &b);
        assert!(req.headers.iter().any(|(k, _)| *k == "authorization"));
    }

    #[test]
    fn a_real_openai_embeddings_answer_gives_its_vector() {
        let v = vector(Some(200), &fixture("openai-embeddings.response.json")).unwrap();
        assert!(!v.is_empty());
    }

    #[test]
    fn errors_timeouts_and_garbage_are_failures_not_vectors() {
        let err = vector(
            Some(400),
            &fixture("openai-embeddings-error-400.response.json"),
        );
        assert!(err.unwrap_err().starts_with("HTTP 400"));
        assert!(vector(None, b"").unwrap_err().contains("timeout"));
        assert!(vector(Some(200), b"<html>").is_err());
        assert!(vector(Some(200), br#"{"data":[]}"#).is_err());
        assert!(vector(Some(200), br#"{"data":[{"embedding":[]}]}"#).is_err());
    }
}
