//! The simulator's OpenAI bytes compared with real recorded provider bytes in testdata/providers:
//! same fields at every level, same chunk layout and SSE framing, same error shape.

// Helpers outside #[test] fns fail loudly too (clippy.toml only relaxes these inside tests).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use base64::Engine as _;
use common::{fixture, fixture_text, sse_payloads, Ordered, TestServer};

const CHAT: &str = "/v1/chat/completions";

#[test]
fn chat_completion_has_the_recorded_openai_fields_at_every_level() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("openai-chat.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.header("content-length"),
        Some(resp.body.len().to_string().as_str())
    );
    let ours = Ordered::parse(&resp.text());
    // The recorder sorted the fixture's keys, so compare sorted structure.
    let real = Ordered::parse(&fixture_text("openai-chat.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    // And in the order OpenAI really sends them.
    assert_eq!(
        ours.keys(),
        [
            "id",
            "object",
            "created",
            "model",
            "choices",
            "usage",
            "service_tier",
            "system_fingerprint"
        ]
    );
    let v = resp.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-5-nano");
    assert_eq!(v["choices"][0]["message"]["content"], "sim: Hello!");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
}

#[test]
fn chat_completion_carries_every_field_that_openai_and_vllm_both_send() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("vllm-openai-chat.request.json"));
    let ours = Ordered::parse(&resp.text());
    let vllm = Ordered::parse(&fixture_text("vllm-openai-chat.response.json"));
    let openai = Ordered::parse(&fixture_text("openai-chat.response.json"));
    let path_keys = |o: &Ordered, path: &[&str]| -> Vec<String> {
        let mut cur = o.clone();
        for p in path {
            cur = match (*p, &cur) {
                ("0", Ordered::Array(items)) => items[0].clone(),
                (k, _) => cur.get(k).unwrap().clone(),
            };
        }
        cur.keys().iter().map(|s| s.to_string()).collect()
    };
    for path in [
        &[][..],
        &["choices", "0"],
        &["choices", "0", "message"],
        &["usage"],
    ] {
        let ours_keys = path_keys(&ours, path);
        for key in path_keys(&vllm, path) {
            if path_keys(&openai, path).contains(&key) {
                assert!(
                    ours_keys.contains(&key),
                    "missing {key} at {path:?}: {ours_keys:?}"
                );
            }
        }
    }
    // vLLM's request asks for max_tokens 100; the reply is shorter, so it stops normally.
    assert_eq!(resp.json()["choices"][0]["finish_reason"], "stop");
}

/// Chunk payloads of a recorded or simulated stream, checking the `data: [DONE]` ending.
fn chunks(body: &str) -> Vec<Ordered> {
    let payloads = sse_payloads(body);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| Ordered::parse(p))
        .collect()
}

/// Chunk payloads as plain JSON values.
fn values(body: &str) -> Vec<serde_json::Value> {
    let payloads = sse_payloads(body);
    payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// A chunk as compared with recordings: OpenAI's random `obfuscation` padding is not simulated.
fn chunk_shape(c: &Ordered) -> String {
    c.without(&["obfuscation"]).shape()
}

#[test]
fn stream_without_usage_has_the_recorded_chunk_layout_and_framing() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("openai-chat-stream.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert!(resp.complete);
    let ours = chunks(&resp.text());
    let real = chunks(&fixture_text("openai-chat-stream.sse"));
    // role chunk, content chunks, finish chunk: the same ordered structure as recorded.
    assert_eq!(chunk_shape(&ours[0]), chunk_shape(&real[0]));
    assert_eq!(chunk_shape(&ours[1]), chunk_shape(&real[1]));
    assert_eq!(
        chunk_shape(ours.last().unwrap()),
        chunk_shape(real.last().unwrap())
    );
    assert!(
        ours.iter().all(|c| c.get("usage").is_none()),
        "no usage key without include_usage"
    );
    let text: String = values(&resp.text())[1..ours.len() - 1]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "sim: Hello!");
}

#[test]
fn stream_with_include_usage_puts_null_usage_on_each_chunk_and_a_final_usage_chunk() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("openai-chat-stream-usage.request.json"));
    let ours = chunks(&resp.text());
    let real = chunks(&fixture_text("openai-chat-stream-usage.sse"));
    assert_eq!(chunk_shape(&ours[0]), chunk_shape(&real[0]), "role chunk");
    let n = ours.len();
    assert_eq!(
        chunk_shape(&ours[n - 2]),
        chunk_shape(&real[real.len() - 2]),
        "finish chunk"
    );
    assert_eq!(
        chunk_shape(&ours[n - 1]),
        chunk_shape(&real[real.len() - 1]),
        "usage chunk"
    );
    for c in &ours[..n - 1] {
        assert_eq!(
            c.get("usage"),
            Some(&Ordered::Scalar(serde_json::Value::Null))
        );
    }
    let usage = values(&resp.text()).pop().unwrap();
    assert_eq!(usage["choices"], serde_json::json!([]));
    // A developer message is not a user message: 4 prompt words, reply "sim: (no user message)".
    assert_eq!(usage["usage"]["prompt_tokens"], 4);
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    assert_eq!(usage["usage"]["total_tokens"], 8);
}

#[test]
fn stream_chunks_are_one_sse_event_per_http_chunk() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("openai-chat-stream.request.json"));
    for chunk in &resp.chunks {
        let text = std::str::from_utf8(chunk).unwrap();
        assert!(
            text.starts_with("data: ") && text.ends_with("\n\n"),
            "{text:?}"
        );
        assert_eq!(text.matches("\n\n").count(), 1);
    }
}

#[test]
fn same_request_gives_the_same_bytes_except_id_and_created() {
    let sim = TestServer::start();
    let normalise = |r: common::Response| {
        let mut v = r.json();
        v["id"] = serde_json::Value::Null;
        v["created"] = serde_json::Value::Null;
        v
    };
    let a = normalise(sim.post_json(CHAT, &fixture("openai-chat.request.json")));
    let b = normalise(sim.post_json(CHAT, &fixture("openai-chat.request.json")));
    assert_eq!(a, b);
    let e1 = sim.post_json("/v1/embeddings", &fixture("openai-embeddings.request.json"));
    let e2 = sim.post_json("/v1/embeddings", &fixture("openai-embeddings.request.json"));
    assert_eq!(e1.body, e2.body);
}

#[test]
fn embeddings_have_the_recorded_fields_and_unit_length_default_width() {
    let sim = TestServer::start();
    let resp = sim.post_json("/v1/embeddings", &fixture("openai-embeddings.request.json"));
    assert_eq!(resp.status, 200);
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("openai-embeddings.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    let v = resp.json();
    let vec: Vec<f64> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(vec.len(), 16);
    let norm = vec.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert_eq!(v["usage"]["prompt_tokens"], 6);
}

#[test]
fn base64_embeddings_decode_to_the_same_floats_as_the_float_form() {
    let sim = TestServer::start();
    let b64 = sim.post_json(
        "/v1/embeddings",
        &fixture("openai-embeddings-base64.request.json"),
    );
    let ours = Ordered::parse(&b64.text());
    let real = Ordered::parse(&fixture_text("openai-embeddings-base64.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    let floats = sim
        .post_json("/v1/embeddings", &fixture("openai-embeddings.request.json"))
        .json();
    let encoded = b64.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(decoded, expected);
}

#[test]
fn embeddings_honour_dimensions_and_multiple_inputs() {
    let sim = TestServer::start();
    let resp = sim.post_json(
        "/v1/embeddings",
        br#"{"model":"e","input":["a","b c"],"dimensions":3}"#,
    );
    let v = resp.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["index"], 1);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(v["usage"]["total_tokens"], 3);
}

#[test]
fn embeddings_reject_bad_dimensions_with_the_recorded_error_body() {
    let sim = TestServer::start();
    let resp = sim.post_json(
        "/v1/embeddings",
        &fixture("openai-embeddings-error-400.request.json"),
    );
    assert_eq!(resp.status, 400);
    let real: serde_json::Value =
        serde_json::from_slice(&fixture("openai-embeddings-error-400.response.json")).unwrap();
    assert_eq!(resp.json(), real);
}

#[test]
fn malformed_or_incomplete_chat_requests_get_openai_shaped_400s() {
    let sim = TestServer::start();
    let real = Ordered::parse(&fixture_text("openai-chat-error-400.response.json"));
    let cases: [(&[u8], serde_json::Value, serde_json::Value); 3] = [
        (
            b"{not json",
            serde_json::Value::Null,
            serde_json::Value::Null,
        ),
        (
            br#"{"model":"m"}"#,
            "messages".into(),
            "missing_required_parameter".into(),
        ),
        (
            br#"{"messages":[{"role":"user","content":"x"}]}"#,
            serde_json::Value::Null,
            serde_json::Value::Null,
        ),
    ];
    for (body, param, code) in cases {
        let resp = sim.post_json(CHAT, body);
        assert_eq!(resp.status, 400);
        assert_eq!(
            resp.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let ours = Ordered::parse(&resp.text());
        assert_eq!(
            ours.sorted_shape().replace("null", "string"),
            real.sorted_shape()
        );
        let v = resp.json();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], param);
        assert_eq!(v["error"]["code"], code);
    }
    let missing_model = sim.post_json(CHAT, br#"{"messages":[]}"#).json();
    assert_eq!(
        missing_model["error"]["message"],
        "you must provide a model parameter"
    );
}

#[test]
fn unknown_paths_get_openai_shaped_404s_with_the_error_field_order_openai_sends() {
    let sim = TestServer::start();
    let resp = sim.send("GET", "/v1/nothing-here", &[], b"");
    assert_eq!(resp.status, 404);
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("openai-chat-error-404.response.json"));
    assert_eq!(
        ours.shape().replace("code:null", "code:string"),
        real.shape()
    );
    assert_eq!(
        resp.json()["error"]["message"],
        "Invalid URL (GET /v1/nothing-here)"
    );
    assert_eq!(sim.send("GET", CHAT, &[], b"").status, 404);
}

#[test]
fn models_are_listed_and_retrievable() {
    let sim = TestServer::start();
    let list = sim.send("GET", "/v1/models", &[], b"").json();
    assert_eq!(list["object"], "list");
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "gpt-4o-mini"));
    let one = sim.send("GET", "/v1/models/gpt-4o-mini", &[], b"");
    assert_eq!(
        (one.status, one.json()["object"].clone()),
        (200, "model".into())
    );
    let missing = sim.send("GET", "/v1/models/nope", &[], b"");
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
}
