//! `POST /v1/responses` (the OpenAI Responses API): passed to an OpenAI provider as it is, and
//! through the hub to any other backend (here Anthropic), answered as a Responses object. Every
//! real Responses request sample in `testdata/providers/` is a case.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::mock::{Exchange, UpstreamReply};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-pool"]},
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-oai-pool"]}
  ],
  "models": [
    {"match": "gpt-4o", "provider": "claude", "target": "claude-haiku-4-5"},
    {"match": "gpt-5.2", "provider": "claude", "target": "claude-opus-4-5"},
    {"match": "gpt-*", "provider": "oai"}
  ]
}"#;

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn json_reply(body: Vec<u8>) -> UpstreamReply {
    UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        chunks: vec![body],
    }
}

#[test]
fn every_real_responses_request_reaches_anthropic_as_messages_and_comes_back_as_a_response() {
    for name in [
        "openai-responses.request.json",
        "openai-responses-functioncall.request.json",
        "openai-responses-functioncall-output.request.json",
        "openai-responses-reasoning.request.json",
    ] {
        let ask = sample(name);
        let out = Exchange::post_json("/v1/responses", std::str::from_utf8(&ask).unwrap())
            .header("authorization", "Bearer client")
            .reply(json_reply(sample(
                "anthropic-messages-tooluse.response.json",
            )))
            .run::<Proxy>(CONFIG);
        let sent = out.upstream_headers.as_ref().expect(name);
        assert_eq!(header(sent, ":path"), Some("/v1/messages"), "{name}");
        assert_eq!(header(sent, "x-api-key"), Some("sk-ant-pool"), "{name}");
        let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
        assert!(
            body["model"].as_str().unwrap().starts_with("claude-"),
            "{name}"
        );
        assert!(!body["messages"].as_array().unwrap().is_empty(), "{name}");
        let asked: Value = serde_json::from_slice(&ask).unwrap();
        if asked.get("instructions").is_some() {
            assert!(
                body["system"].is_string() || body["system"].is_array(),
                "{name}"
            );
        }
        if asked.get("tools").is_some() {
            assert_eq!(
                body["tools"][0]["name"], asked["tools"][0]["name"],
                "{name}"
            );
        }
        let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
        assert_eq!(answer["object"], "response", "{name}: {answer}");
        assert!(answer["id"].as_str().unwrap().starts_with("resp_"));
        let kinds: Vec<&str> = answer["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["type"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"function_call"), "{name}: {kinds:?}");
        assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            header(&out.response_headers, "content-type"),
            Some("application/json")
        );
    }
}

#[test]
fn a_function_call_output_is_sent_back_as_a_tool_result() {
    let ask = sample("openai-responses-functioncall-output.request.json");
    let out = Exchange::post_json("/v1/responses", std::str::from_utf8(&ask).unwrap())
        .reply(json_reply(sample(
            "anthropic-messages-tooluse.response.json",
        )))
        .run::<Proxy>(CONFIG);
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    let messages = body["messages"].as_array().unwrap();
    let last = &messages[messages.len() - 1];
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(
        last["content"][0]["tool_use_id"],
        "call_YfwRsW8sUxDKipwyhWTzOXCA"
    );
    assert_eq!(
        messages[messages.len() - 2]["content"][0]["type"],
        "tool_use"
    );
}

#[test]
fn an_openai_model_gets_the_responses_api_as_it_is() {
    let ask = br#"{"model":"gpt-4.1-mini","input":"Hi","store":false}"#;
    let out = Exchange::post_json("/v1/responses", std::str::from_utf8(ask).unwrap())
        .reply(json_reply(sample("openai-responses.response.json")))
        .run::<Proxy>(CONFIG);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(header(sent, ":path"), Some("/v1/responses"));
    assert_eq!(header(sent, "authorization"), Some("Bearer sk-oai-pool"));
    assert_eq!(out.upstream_body, ask.to_vec());
    assert_eq!(out.response_body, sample("openai-responses.response.json"));
}

#[test]
fn what_the_backend_cannot_do_is_a_400_naming_the_field() {
    for (body, param) in [
        (r#"{"model":"gpt-4o","input":"Hi","stream":true}"#, "stream"),
        (
            r#"{"model":"gpt-4o","input":"Hi","tools":[{"type":"web_search"}]}"#,
            "tools[0]",
        ),
        (
            r#"{"model":"gpt-4o","input":"Hi","previous_response_id":"resp_1"}"#,
            "previous_response_id",
        ),
    ] {
        let out = Exchange::post_json("/v1/responses", body).run::<Proxy>(CONFIG);
        let local = out.local_response.as_ref().expect(body);
        assert_eq!(local.status, 400, "{body}");
        let v: Value = serde_json::from_slice(&local.body).unwrap();
        assert_eq!(v["error"]["param"], param, "{body}: {v}");
    }
}
