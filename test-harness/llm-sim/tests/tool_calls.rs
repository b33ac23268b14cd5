//! The tool-call rule on the OpenAI chat route (JSON and streamed `tool_calls` deltas, compared
//! with the recordings) and across every provider format: the same question gets the same call.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{
    aws_frames, crlf_payloads, fixture, fixture_edited, fixture_text, named_events, sse_payloads,
    Ordered, TestServer,
};
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";

#[test]
fn a_weather_question_with_tools_gets_the_recorded_tool_calls_message() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &fixture("openai-chat-tools.request.json"));
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("openai-chat-tools.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    let v = resp.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_current_weather");
    assert_eq!(
        call["function"]["arguments"],
        r#"{"location":"Boston today"}"#
    );
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
}

/// The request the recorded tool-call stream answered (openai-python's streaming test).
fn nyc_stream_request() -> Vec<u8> {
    fixture_edited("openai-chat-tools.request.json", |v| {
        v["messages"][0]["content"] = "what's the weather in NYC?".into();
        v["tools"][0]["function"] = json!({"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
        v["stream"] = true.into();
        v["stream_options"] = json!({"include_usage": true});
    })
}

#[test]
fn a_streamed_tool_call_has_the_recorded_delta_layout() {
    let sim = TestServer::start();
    let resp = sim.post_json(CHAT, &nyc_stream_request());
    let ours: Vec<Value> = sse_payloads(&resp.text())
        .iter()
        .take_while(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let real: Vec<Value> = sse_payloads(&fixture_text("openai-chat-stream-toolcalls-usage.sse"))
        .iter()
        .take_while(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let delta = |c: &Value| Ordered::parse(&c["choices"][0]["delta"].to_string()).shape();
    assert_eq!(delta(&ours[0]), delta(&real[0]), "opening delta");
    assert_eq!(delta(&ours[1]), delta(&real[1]), "arguments delta");
    let n = ours.len();
    assert_eq!(
        ours[n - 2]["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "tool_calls"})
    );
    assert_eq!(ours[n - 1]["choices"], json!([]));
    let args: String = ours[..n - 2]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(args, r#"{"city":"NYC"}"#);
    assert_eq!(
        ours[n - 1]["usage"]["completion_tokens"],
        u64::try_from(n - 3).unwrap()
    );
}

#[test]
fn after_a_tool_result_the_answer_is_text() {
    let sim = TestServer::start();
    let body = fixture_edited("openai-chat-tools.request.json", |v| {
        let messages = v["messages"].as_array_mut().unwrap();
        messages.push(
            json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_current_weather", "arguments": "{}"}}]}),
        );
        messages.push(json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"}));
    });
    let v = sim.post_json(CHAT, &body).json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "sim: What is the weather like in Boston today?"
    );
}

/// `(name, arguments)` of the tool call each provider answers to "What is the weather in SF?".
fn calls_of_every_provider(sim: &TestServer) -> Vec<(String, Value)> {
    let question = "What is the weather in SF?";
    let anthropic_req: Value =
        serde_json::from_slice(&fixture("anthropic-messages-tooluse.request.json")).unwrap();
    let schema = anthropic_req["tools"][0]["input_schema"].clone();
    let mut out = Vec::new();

    let v = sim
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
            &fixture("anthropic-messages-tooluse.request.json"),
        )
        .json();
    out.push((
        v["content"][0]["name"].as_str().unwrap().to_string(),
        v["content"][0]["input"].clone(),
    ));

    let openai = json!({"model": "m", "messages": [{"role": "user", "content": question}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]});
    let v = sim.post_json(CHAT, openai.to_string().as_bytes()).json();
    let f = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    out.push((
        f["name"].as_str().unwrap().to_string(),
        serde_json::from_str(f["arguments"].as_str().unwrap()).unwrap(),
    ));

    let azure = "/openai/deployments/d/chat/completions?api-version=2024-10-21";
    let v = sim
        .send(
            "POST",
            azure,
            &[("api-key", "k")],
            openai.to_string().as_bytes(),
        )
        .json();
    let f = &v["choices"][0]["message"]["tool_calls"][0]["function"];
    out.push((
        f["name"].as_str().unwrap().to_string(),
        serde_json::from_str(f["arguments"].as_str().unwrap()).unwrap(),
    ));

    let bedrock = json!({"messages": [{"role": "user", "content": [{"text": question}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": schema}}}]}});
    let frames = aws_frames(
        &sim.post_json("/model/m/converse-stream", bedrock.to_string().as_bytes())
            .body,
    );
    let payloads: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(&f.payload).unwrap())
        .collect();
    let name = payloads[1]["start"]["toolUse"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let input: String = payloads
        .iter()
        .filter_map(|p| p["delta"]["toolUse"]["input"].as_str())
        .collect();
    out.push((name, serde_json::from_str(&input).unwrap()));

    let gemini = json!({"contents": [{"role": "user", "parts": [{"text": question}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": schema}]}]});
    let path = "/v1beta/models/g:streamGenerateContent?alt=sse";
    let text = sim
        .send(
            "POST",
            path,
            &[("x-goog-api-key", "k")],
            gemini.to_string().as_bytes(),
        )
        .text();
    let chunk: Value = serde_json::from_str(&crlf_payloads(&text)[0]).unwrap();
    let call = &chunk["candidates"][0]["content"]["parts"][0]["functionCall"];
    out.push((
        call["name"].as_str().unwrap().to_string(),
        call["args"].clone(),
    ));

    let streamed = sim
        .send(
            "POST",
            "/v1/messages",
            &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
            &fixture("anthropic-messages-stream-tooluse.request.json"),
        )
        .text();
    let partial: String = named_events(&streamed)
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["delta"]["partial_json"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    out.push((
        "get_weather".to_string(),
        serde_json::from_str(&partial).unwrap(),
    ));
    out
}

#[test]
fn every_provider_format_answers_the_same_question_with_the_same_call() {
    let sim = TestServer::start();
    let calls = calls_of_every_provider(&sim);
    assert_eq!(calls.len(), 6);
    for call in &calls {
        assert_eq!(
            call,
            &(
                "get_weather".to_string(),
                json!({"location": "SF", "units": "c"})
            )
        );
    }
}
