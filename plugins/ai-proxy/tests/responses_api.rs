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

/// The SSE events of a body, as (event name, data).
fn events(body: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[test]
fn a_streamed_responses_request_gets_the_typed_event_sequence_from_an_anthropic_stream() {
    for (sse, split) in [
        ("anthropic-messages-stream.sse", usize::MAX),
        ("anthropic-messages-stream.sse", 7),
        ("anthropic-messages-stream-tooluse.sse", 13),
    ] {
        let body = sample(sse);
        let chunks: Vec<Vec<u8>> = body
            .chunks(split.min(body.len()))
            .map(<[u8]>::to_vec)
            .collect();
        let out = Exchange::post_json(
            "/v1/responses",
            r#"{"model":"gpt-4o","input":"Hi","stream":true}"#,
        )
        .reply(UpstreamReply {
            status: 200,
            headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
            chunks,
        })
        .run::<Proxy>(CONFIG);
        assert!(
            out.local_response.is_none(),
            "{sse}: {:?}",
            out.local_response
                .as_ref()
                .map(|l| String::from_utf8_lossy(&l.body).into_owned())
        );
        let sent: Value = serde_json::from_slice(&out.upstream_body).unwrap();
        assert_eq!(sent["stream"], true, "{sse}");
        let evs = events(&out.response_body);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            &names[..2],
            ["response.created", "response.in_progress"],
            "{sse}"
        );
        assert_eq!(
            names.last(),
            Some(&"response.completed"),
            "{sse}: {names:?}"
        );
        for (i, (name, data)) in evs.iter().enumerate() {
            assert_eq!(data["type"], name.as_str());
            assert_eq!(data["sequence_number"], i as u64, "{sse}");
        }
        let done = &evs.last().unwrap().1["response"];
        assert_eq!(done["status"], "completed");
        assert!(
            done["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{sse}: {done}"
        );
        let deltas: String = evs
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        let text = done["output"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["type"] == "message")
            .map(|o| o["content"][0]["text"].as_str().unwrap())
            .collect::<String>();
        assert_eq!(deltas, text, "{sse}: the deltas add up to the final text");
        if sse.contains("tooluse") {
            let args: String = evs
                .iter()
                .filter(|(n, _)| n == "response.function_call_arguments.delta")
                .map(|(_, d)| d["delta"].as_str().unwrap())
                .collect();
            let call = done["output"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["type"] == "function_call")
                .expect("a function call item");
            assert_eq!(call["arguments"].as_str().unwrap(), args);
            assert!(serde_json::from_str::<Value>(&args).is_ok(), "{args}");
        } else {
            assert!(!text.is_empty(), "{sse}");
        }
    }
}

#[test]
fn an_upstream_error_in_the_stream_ends_it_with_response_failed() {
    let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let out = Exchange::post_json(
        "/v1/responses",
        r#"{"model":"gpt-4o","input":"Hi","stream":true}"#,
    )
    .reply(UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        chunks: vec![stream.to_vec()],
    })
    .run::<Proxy>(CONFIG);
    let evs = events(&out.response_body);
    let (last, data) = evs.last().unwrap();
    assert_eq!(last, "response.failed", "{evs:?}");
    assert_eq!(data["response"]["status"], "failed");
    assert!(data["response"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Overloaded"));
    assert_eq!(
        evs.iter().filter(|(n, _)| n == "response.failed").count(),
        1
    );
}

const AZURE: &str = r#"{
  "providers": [
    {"name": "az", "type": "azure-openai", "cluster": "azure", "authority": "res.openai.azure.com",
     "apiKeys": ["az-key-1", "az-key-2"], "options": {"deployments": {"gpt-4o": "prod-4o"}}},
    {"name": "azdated", "type": "azure-openai", "cluster": "azure", "apiKeys": ["az-key-3"],
     "options": {"responses": "versioned"}},
    {"name": "azchat", "type": "azure-openai", "cluster": "azure", "apiKeys": ["az-key-4"],
     "options": {"responses": "chat"}}
  ],
  "models": [
    {"match": "gpt-4o", "provider": "az"},
    {"match": "dated-*", "provider": "azdated", "target": "dated-deploy"},
    {"match": "chat-*", "provider": "azchat"}
  ]
}"#;

fn counter(out: &aigw_shared::mock::Outcome, name: &str) -> Option<i64> {
    out.host.metric_value(&format!("aigw.gen_ai.{name}"))
}

#[test]
fn azure_gets_the_responses_api_natively_on_v1_with_the_deployment_as_the_model() {
    let ask = br#"{"model":"gpt-4o","input":"What is the capital of France?","store":false}"#;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let out = Exchange::post_json("/v1/responses", std::str::from_utf8(ask).unwrap())
            .header("authorization", "Bearer client-key")
            .reply(json_reply(sample("openai-responses.response.json")))
            .run::<Proxy>(AZURE);
        let sent = out.upstream_headers.as_ref().expect("forwarded");
        assert_eq!(header(sent, ":path"), Some("/openai/v1/responses"));
        assert_eq!(header(sent, ":authority"), Some("res.openai.azure.com"));
        assert_eq!(header(sent, "x-aigw-upstream"), Some("azure"));
        assert_eq!(
            header(sent, "authorization"),
            None,
            "the client's key is gone"
        );
        keys.push(header(sent, "api-key").unwrap().to_owned());
        let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
        assert_eq!(body["model"], "prod-4o", "the deployment, in the body");
        assert_eq!(body["input"], "What is the capital of France?");
        assert_eq!(body["store"], false, "the rest as the client sent it");
        assert_eq!(
            out.response_body,
            sample("openai-responses.response.json"),
            "the answer passes untouched"
        );
        // The same metrics as chat: the request and the answer's usage, read on the side.
        let series = "provider.az.model.gpt-4o.route.unknown.consumer.unknown";
        assert_eq!(
            counter(&out, &format!("{series}.upstream_requests_total")),
            Some(1)
        );
        assert_eq!(
            counter(
                &out,
                &format!("{series}.token_type.input.upstream_tokens_total")
            ),
            Some(14)
        );
        assert_eq!(
            counter(
                &out,
                &format!("{series}.token_type.output.upstream_tokens_total")
            ),
            Some(8)
        );
    }
    assert!(
        keys.iter().all(|k| k.starts_with("az-key-")),
        "pool keys: {keys:?}"
    );
}

#[test]
fn azure_streams_pass_untouched_and_their_usage_is_counted() {
    let stream = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n\
event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Paris\"}\n\n\
event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"total_tokens\":12}}}\n\n";
    let out = Exchange::post_json(
        "/v1/responses",
        r#"{"model":"gpt-4o","input":"Capital of France?","stream":true}"#,
    )
    .reply(UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        chunks: stream.as_bytes().chunks(7).map(<[u8]>::to_vec).collect(),
    })
    .run::<Proxy>(AZURE);
    assert_eq!(out.response_body, stream.as_bytes());
    let series = "provider.az.model.gpt-4o.route.unknown.consumer.unknown";
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.input.upstream_tokens_total")
        ),
        Some(9)
    );
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.output.upstream_tokens_total")
        ),
        Some(3)
    );
}

#[test]
fn azure_versioned_responses_carry_the_api_version_and_chat_mode_translates() {
    let out = Exchange::post_json("/v1/responses", r#"{"model":"dated-x","input":"Hi"}"#)
        .reply(json_reply(sample("openai-responses.response.json")))
        .run::<Proxy>(AZURE);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/openai/responses?api-version=2025-04-01-preview")
    );
    assert_eq!(header(sent, "api-key"), Some("az-key-3"));
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    assert_eq!(body["model"], "dated-deploy");

    // `responses: chat`: the deployment's Chat Completions, answered as a Responses object.
    let out = Exchange::post_json("/v1/responses", r#"{"model":"chat-4o","input":"Hi"}"#)
        .reply(json_reply(sample("azure-openai-chat.response.json")))
        .run::<Proxy>(AZURE);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/openai/deployments/chat-4o/chat/completions?api-version=2024-10-21")
    );
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    assert_eq!(body["messages"][0]["content"], "Hi");
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer["object"], "response", "{answer}");
}

#[test]
fn azure_needs_a_model_for_its_deployment() {
    let out = Exchange::post_json("/v1/responses", r#"{"input":"Hi"}"#)
        .run::<Proxy>(&AZURE.replace(r#""models": ["#, r#""defaultProvider": "az", "models": ["#));
    let local = out.local_response.as_ref().expect("refused");
    assert_eq!(local.status, 400);
    assert!(out.upstream_headers.is_none());
}
