//! Bedrock embeddings tests: the recorded OpenAI embeddings requests become Titan and Cohere
//! bodies, and Titan/Cohere answers (files under `testdata/bedrock/embeddings/`) become OpenAI
//! embeddings responses, as floats and as base64 `f32`s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use serde_json::{json, Value};

use super::super::base64;
use super::super::tests::providers;
use super::{family, floats_to_base64, from_bedrock, to_bedrock, EmbedFamily, EmbedPlan};
use crate::translate::TranslateError;

const TITAN: &str = "amazon.titan-embed-text-v2:0";
const COHERE: &str = "cohere.embed-english-v3";

fn sample(name: &str) -> Vec<u8> {
    let p = providers().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn answer(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bedrock/embeddings")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn body(req: &Value, model: &str) -> (Value, EmbedPlan) {
    let (bytes, plan) = to_bedrock(req.to_string().as_bytes(), model).unwrap();
    (serde_json::from_slice(&bytes).unwrap(), plan)
}

fn param(result: Result<(Vec<u8>, EmbedPlan), TranslateError>) -> String {
    match result.unwrap_err() {
        TranslateError::Malformed { param, .. } => param.unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn model_ids_pick_the_family_with_or_without_a_region_prefix() {
    assert_eq!(family(TITAN), Some(EmbedFamily::TitanV2));
    assert_eq!(
        family("amazon.titan-embed-text-v1"),
        Some(EmbedFamily::TitanV1)
    );
    assert_eq!(family(COHERE), Some(EmbedFamily::CohereV3));
    assert_eq!(family("us.cohere.embed-v4:0"), Some(EmbedFamily::CohereV4));
    assert_eq!(family("us.amazon.nova-micro-v1:0"), None);
}

#[test]
fn the_recorded_openai_request_becomes_a_titan_body() {
    let (b, plan) = body(
        &serde_json::from_slice(&sample("openai-embeddings.request.json")).unwrap(),
        TITAN,
    );
    assert_eq!(
        b,
        json!({"inputText": "How do I reset my password?", "normalize": true})
    );
    assert_eq!(plan.model, "text-embedding-3-small");
    assert!(!plan.base64);
    let (b, plan) = body(
        &json!({"model": "t", "input": ["one"], "dimensions": 256, "normalize": false, "encoding_format": "base64"}),
        TITAN,
    );
    assert_eq!(
        b,
        json!({"inputText": "one", "dimensions": 256, "normalize": false})
    );
    assert!(plan.base64);
}

#[test]
fn openai_requests_become_cohere_bodies_with_an_input_type() {
    let (b, plan) = body(
        &json!({"model": "c", "input": ["a", "b"], "input_type": "search_query"}),
        COHERE,
    );
    assert_eq!(
        b,
        json!({"texts": ["a", "b"], "input_type": "search_query"})
    );
    assert_eq!(plan.count, 2);
    let (b, _) = body(
        &json!({"model": "c", "input": "a", "dimensions": 512}),
        "cohere.embed-v4:0",
    );
    assert_eq!(
        b,
        json!({"texts": ["a"], "input_type": "search_document", "output_dimension": 512})
    );
}

#[test]
fn requests_bedrock_cannot_serve_name_the_field_at_fault() {
    let bytes = |v: Value| v.to_string().into_bytes();
    let cases = [
        (json!({"input": [1, 2, 3]}), TITAN, "input"),
        (json!({"input": ["a", "b"]}), TITAN, "input"),
        (
            json!({"input": "a", "dimensions": 300}),
            TITAN,
            "dimensions",
        ),
        (
            json!({"input": "a", "dimensions": 256}),
            "amazon.titan-embed-text-v1",
            "dimensions",
        ),
        (
            json!({"input": "a", "dimensions": 256}),
            COHERE,
            "dimensions",
        ),
        (
            json!({"input": "a", "encoding_format": "int8"}),
            COHERE,
            "encoding_format",
        ),
        (json!({"model": "x"}), COHERE, "input"),
        (json!({"input": "a"}), "us.amazon.nova-micro-v1:0", "model"),
    ];
    for (req, model, field) in cases {
        assert_eq!(
            param(to_bedrock(&bytes(req.clone()), model)),
            field,
            "{req}"
        );
    }
}

fn plan(fam: EmbedFamily, count: usize, base64: bool) -> EmbedPlan {
    EmbedPlan {
        family: fam,
        model: "client-model".into(),
        count,
        base64,
    }
}

#[test]
fn a_titan_answer_becomes_an_openai_list_with_usage() {
    let out = from_bedrock(
        &answer("titan-v2.response.json"),
        &plan(EmbedFamily::TitanV2, 1, false),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.125, -0.25, 0.5, 1.0]}],
            "model": "client-model",
            "usage": {"prompt_tokens": 7, "total_tokens": 7}
        })
    );
}

#[test]
fn cohere_answers_plain_or_typed_become_openai_lists_in_input_order() {
    let v: Value = serde_json::from_slice(
        &from_bedrock(
            &answer("cohere-v3.response.json"),
            &plan(EmbedFamily::CohereV3, 2, false),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"], json!([0.0, 1.0, -1.0]));
    assert_eq!(v["usage"]["prompt_tokens"], 0);
    let typed = from_bedrock(
        &answer("cohere-v4-typed.response.json"),
        &plan(EmbedFamily::CohereV4, 1, false),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&typed).unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([0.5, -0.5, 0.25]));
}

#[test]
fn base64_answers_are_little_endian_f32s() {
    let out = from_bedrock(
        &answer("titan-v2.response.json"),
        &plan(EmbedFamily::TitanV2, 1, true),
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let text = v["data"][0]["embedding"].as_str().unwrap();
    let bytes = base64::decode(text).unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, [0.125, -0.25, 0.5, 1.0]);
    assert_eq!(floats_to_base64(&[1.0]), "AACAPw==");
    // The recorded OpenAI base64 answer decodes the same way (a whole number of f32s).
    let recorded: Value =
        serde_json::from_slice(&sample("openai-embeddings-base64.response.json")).unwrap();
    let raw = base64::decode(recorded["data"][0]["embedding"].as_str().unwrap()).unwrap();
    assert_eq!(raw.len() % 4, 0);
}

#[test]
fn broken_or_mismatched_answers_are_upstream_errors() {
    let titan = plan(EmbedFamily::TitanV2, 1, false);
    for body in [
        &b"not json"[..],
        br#"{"message":"x"}"#,
        br#"{"embedding":"x"}"#,
        br#"{"embedding":[1,"x"]}"#,
    ] {
        assert!(matches!(
            from_bedrock(body, &titan),
            Err(TranslateError::Upstream(_))
        ));
    }
    let two = plan(EmbedFamily::CohereV3, 3, false);
    assert!(matches!(
        from_bedrock(&answer("cohere-v3.response.json"), &two),
        Err(TranslateError::Upstream(_))
    ));
}
