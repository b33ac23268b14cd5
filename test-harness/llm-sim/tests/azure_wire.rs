//! The simulator's Azure OpenAI bytes compared with the recorded Azure answer and the Azure
//! documentation examples in testdata/providers: keys in byte order, content-filter annotations,
//! the content-filter 400, the gateway's own 401/404 bodies, streams and embeddings.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{assert_keys_sorted, fixture, fixture_text, sse_payloads, Ordered, TestServer};
use serde_json::Value;

const CHAT: &str = "/openai/deployments/gpt-5-nano/chat/completions?api-version=2024-12-01-preview";
const KEY: [(&str, &str); 1] = [("api-key", "azure-test-key")];

fn keys(o: &Ordered) -> Vec<String> {
    o.keys().iter().map(|k| k.to_string()).collect()
}

fn at<'a>(o: &'a Ordered, path: &[&str]) -> &'a Ordered {
    path.iter()
        .fold(o, |cur, p| match (p.parse::<usize>(), cur) {
            (Ok(i), Ordered::Array(items)) => &items[i],
            _ => cur
                .get(p)
                .unwrap_or_else(|| panic!("no {p} in {}", cur.shape())),
        })
}

#[test]
fn a_chat_answer_has_the_recorded_azure_fields_in_byte_order() {
    let sim = TestServer::start();
    let resp = sim.send(
        "POST",
        CHAT,
        &KEY,
        &fixture("azure-openai-chat.request.json"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-ms-deployment-name"), Some("gpt-5-nano"));
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("azure-openai-chat.response.json"));
    assert_keys_sorted(&ours);
    for path in [
        &[][..],
        &["choices", "0"],
        &["choices", "0", "message"],
        &["prompt_filter_results", "0"],
    ] {
        assert_eq!(keys(at(&ours, path)), keys(at(&real, path)), "{path:?}");
    }
    assert_eq!(
        at(&ours, &["usage"]).sorted_shape(),
        at(&real, &["usage"]).sorted_shape()
    );
    assert_eq!(
        resp.json()["choices"][0]["message"]["content"],
        "sim: Hello!"
    );
}

#[test]
fn filter_annotations_have_the_documented_categories_and_shapes() {
    let sim = TestServer::start();
    let ours = Ordered::parse(
        &sim.send(
            "POST",
            CHAT,
            &KEY,
            &fixture("azure-openai-chat.request.json"),
        )
        .text(),
    );
    let docs = Ordered::parse(&fixture_text(
        "azure-openai-content-filter-annotations.docs.json",
    ));
    for (path, categories) in [
        (
            &["choices", "0", "content_filter_results"][..],
            &[
                "hate",
                "protected_material_text",
                "self_harm",
                "sexual",
                "violence",
            ][..],
        ),
        (
            &["prompt_filter_results", "0", "content_filter_results"][..],
            &["hate", "jailbreak", "self_harm", "sexual", "violence"][..],
        ),
    ] {
        for c in categories {
            assert_eq!(
                at(at(&ours, path), &[c]).shape(),
                at(at(&docs, path), &[c]).shape(),
                "{c}"
            );
        }
    }
}

#[test]
fn the_trigger_word_gets_the_documented_content_filter_400() {
    let sim = TestServer::start();
    let body = br#"{"messages":[{"role":"user","content":"please sim-content-filter this"}]}"#;
    let resp = sim.send("POST", CHAT, &KEY, body);
    assert_eq!(resp.status, 400);
    // The docs print the message wrapped over three lines, which is not valid JSON; unwrap it.
    let docs_text = fixture_text("azure-openai-content-filter-error.docs.txt")
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let mut docs: Value = serde_json::from_str(&docs_text).unwrap();
    let mut ours = resp.json();
    for v in [&mut docs, &mut ours] {
        let m = v["error"]["message"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        v["error"]["message"] = m.into();
    }
    assert_eq!(ours, docs);
    assert_eq!(
        keys(&Ordered::parse(&resp.text()).get("error").unwrap().clone()),
        keys(Ordered::parse(&docs_text).get("error").unwrap()),
        "documented field order"
    );
}

#[test]
fn the_gateway_rejects_missing_keys_and_api_versions_with_its_own_bodies() {
    let sim = TestServer::with_config(|c| {
        c.credentials.require("azure", "azure-good");
    });
    let body = fixture("azure-openai-chat.request.json");
    let denied = sim.send("POST", CHAT, &KEY, &body);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.json()["error"]["code"], "401");
    assert_eq!(sim.send("POST", CHAT, &[], &body).status, 401);
    let good = [("api-key", "azure-good")];
    assert_eq!(sim.send("POST", CHAT, &good, &body).status, 200);
    let bearer = [("authorization", "Bearer azure-good")];
    assert_eq!(sim.send("POST", CHAT, &bearer, &body).status, 200);
    let no_version = sim.send(
        "POST",
        "/openai/deployments/gpt-5-nano/chat/completions",
        &good,
        &body,
    );
    assert_eq!(no_version.status, 404);
    assert_eq!(
        no_version.text(),
        r#"{"error":{"code":"404","message": "Resource not found"}}"#
    );
    let limited = sim.send(
        "POST",
        CHAT,
        &[("api-key", "azure-good"), ("x-sim-error-status", "429")],
        &body,
    );
    assert_eq!(
        (limited.status, limited.json()["error"]["code"].clone()),
        (429, Value::from("429"))
    );
}

#[test]
fn a_stream_starts_with_the_prompt_filter_chunk_and_annotates_content_chunks() {
    let sim = TestServer::start();
    let body = br#"{"stream":true,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"Hello there"}]}"#;
    let resp = sim.send("POST", CHAT, &KEY, body);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let payloads = sse_payloads(&resp.text());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Ordered> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| Ordered::parse(p))
        .collect();
    chunks.iter().for_each(assert_keys_sorted);
    let first: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["choices"], serde_json::json!([]));
    assert_eq!(first["id"], "");
    assert!(first["prompt_filter_results"][0]["content_filter_results"]["jailbreak"].is_object());
    let values: Vec<Value> = payloads[1..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let text: String = values
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "sim: Hello there");
    assert!(values[1]["choices"][0]["content_filter_results"]["hate"].is_object());
    let usage = values.last().unwrap();
    assert_eq!(usage["usage"]["total_tokens"], 5);
}

#[test]
fn embeddings_and_tool_calls_follow_the_openai_format() {
    let sim = TestServer::start();
    let emb = sim
        .send(
            "POST",
            "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21",
            &KEY,
            br#"{"input":"hello"}"#,
        )
        .json();
    assert_eq!(emb["model"], "text-embedding-3-small");
    assert_eq!(emb["data"][0]["embedding"].as_array().unwrap().len(), 16);
    let tools = sim.send(
        "POST",
        CHAT,
        &KEY,
        &fixture("openai-chat-tools.request.json"),
    );
    let ours = Ordered::parse(&tools.text());
    let real = Ordered::parse(&fixture_text("openai-chat-tools.response.json"));
    let message = ["choices", "0", "message"];
    assert_eq!(
        at(&ours, &message).sorted_shape(),
        at(&real, &message).sorted_shape()
    );
    assert_eq!(tools.json()["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn azure_serves_the_responses_api_on_v1_and_on_the_dated_form_in_openais_recorded_shape() {
    let sim = TestServer::start();
    let request = fixture_text("openai-responses.request.json")
        .replace("\"gpt-4o\"", "\"my-deployment\"")
        .replace("\"gpt-4.1-mini\"", "\"my-deployment\"");
    let asked: Value = serde_json::from_str(&request).unwrap();
    assert_eq!(
        asked["model"], "my-deployment",
        "the deployment as the model"
    );
    let real = Ordered::parse(&fixture_text("openai-responses.response.json"));
    for path in [
        "/openai/v1/responses",
        "/openai/responses?api-version=2025-04-01-preview",
    ] {
        let resp = sim.send("POST", path, &KEY, request.as_bytes());
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(resp.header("x-ms-deployment-name"), Some("my-deployment"));
        assert!(resp.header("apim-request-id").is_some());
        let ours = Ordered::parse(&resp.text());
        assert_eq!(ours.sorted_shape(), real.sorted_shape(), "{path}");
        let v = resp.json();
        assert_eq!(v["model"], "my-deployment");
        assert!(v["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("sim: "));
    }
    // The dated form needs its api-version; neither form answers without a key.
    let resp = sim.send("POST", "/openai/responses", &KEY, request.as_bytes());
    assert_eq!(resp.status, 404);
    let resp = sim.post_json("/openai/v1/responses", request.as_bytes());
    assert_eq!(resp.status, 401);
    // A Bearer token is accepted on v1 as well.
    let resp = sim.send(
        "POST",
        "/openai/v1/responses",
        &[("authorization", "Bearer azure-test-key")],
        request.as_bytes(),
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn azure_streams_the_responses_api_as_openais_typed_events() {
    let sim = TestServer::start();
    let resp = sim.send(
        "POST",
        "/openai/v1/responses",
        &KEY,
        br#"{"model":"my-deployment","input":"Name three colours","stream":true}"#,
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let text = resp.text();
    assert!(text.starts_with("event: response.created\n"), "{text}");
    assert!(text.contains("event: response.completed\n"), "{text}");
}
