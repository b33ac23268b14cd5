//! Vertex AI `:predict` embeddings translation: request shape, usage, base64 and bad answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;

use super::{from_predict, to_predict};
use crate::translate::TranslateError;

#[test]
fn each_input_becomes_an_instance_and_dimensions_become_output_dimensionality() {
    let (body, plan) = to_predict(
        &json!({"model": "m", "input": ["a", "b"], "dimensions": 4}),
        "text-embedding-005",
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"instances": [{"content": "a"}, {"content": "b"}],
               "parameters": {"outputDimensionality": 4}})
    );
    assert_eq!(plan.count, 2);
    let (single, _) = to_predict(&json!({"input": "x"}), "m").unwrap();
    assert_eq!(single, json!({"instances": [{"content": "x"}]}));
}

#[test]
fn token_ids_and_unknown_encodings_are_refused() {
    let err = to_predict(&json!({"input": [[1, 2]]}), "m").unwrap_err();
    assert!(matches!(err, TranslateError::Unsupported { ref backend, .. } if backend == "vertex"));
    assert!(to_predict(&json!({"input": "a", "encoding_format": "hex"}), "m").is_err());
}

#[test]
fn the_answer_keeps_input_order_and_sums_token_counts_as_usage() {
    let (_, plan) = to_predict(&json!({"input": ["a", "b"]}), "m").unwrap();
    let answer = json!({"predictions": [
        {"embeddings": {"values": [1.0, 0.0], "statistics": {"token_count": 2, "truncated": false}}},
        {"embeddings": {"values": [0.0, 1.0], "statistics": {"token_count": 3.0, "truncated": false}}}
    ]});
    let out = from_predict(&serde_json::to_vec(&answer).unwrap(), &plan).unwrap();
    assert_eq!(out["data"][1]["embedding"], json!([0.0, 1.0]));
    assert_eq!(out["data"][1]["index"], 1);
    assert_eq!(out["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
}

#[test]
fn base64_answers_are_little_endian_f32() {
    let (_, plan) = to_predict(&json!({"input": "a", "encoding_format": "base64"}), "m").unwrap();
    let answer = br#"{"predictions":[{"embeddings":{"values":[1.0]}}]}"#;
    let out = from_predict(answer, &plan).unwrap();
    assert_eq!(out["data"][0]["embedding"], "AACAPw==");
    assert_eq!(out["usage"]["prompt_tokens"], 0);
}

#[test]
fn a_short_or_shapeless_answer_is_an_upstream_error() {
    let (_, plan) = to_predict(&json!({"input": ["a", "b"]}), "m").unwrap();
    for bad in [
        &br#"{"predictions":[{"embeddings":{"values":[1.0]}}]}"#[..],
        br#"{"predictions":[{"embeddings":{}}, {"embeddings":{}}]}"#,
        br#"{"embeddings":[]}"#,
        b"not json",
    ] {
        assert!(matches!(
            from_predict(bad, &plan),
            Err(TranslateError::Upstream(_))
        ));
    }
}
