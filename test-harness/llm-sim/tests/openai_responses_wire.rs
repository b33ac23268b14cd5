//! The simulator's Responses API compared with the real recorded bytes in testdata/providers
//! (`openai-responses*.json`): the same fields at every level for text and function-call answers,
//! and a streamed answer whose typed events are named, numbered in order and end with the whole
//! response in that same shape.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{fixture, fixture_text, Ordered, TestServer};
use serde_json::Value;

const RESPONSES: &str = "/v1/responses";

#[test]
fn a_text_answer_has_the_recorded_fields_at_every_level() {
    let sim = TestServer::start();
    let resp = sim.post_json(RESPONSES, &fixture("openai-responses.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("openai-responses.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    let v = resp.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "sim: What is the capital of France?"
    );
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(
        v["usage"]["total_tokens"].as_u64(),
        Some(
            v["usage"]["input_tokens"].as_u64().unwrap()
                + v["usage"]["output_tokens"].as_u64().unwrap()
        )
    );
}

#[test]
fn a_function_call_answer_has_the_recorded_fields_and_its_result_gets_text() {
    let sim = TestServer::start();
    let mut request: Value =
        serde_json::from_slice(&fixture("openai-responses-functioncall.request.json")).unwrap();
    request["tool_choice"] = "required".into();
    let resp = sim.post_json(RESPONSES, request.to_string().as_bytes());
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("openai-responses-functioncall.response.json"));
    // `billing` appears in the later of the two recordings only; the simulator follows the other.
    assert_eq!(
        ours.sorted_shape(),
        real.without(&["billing"]).sorted_shape()
    );
    let v = resp.json();
    assert_eq!(v["output"][0]["type"], "function_call");
    assert_eq!(v["output"][0]["name"], "get_capital");
    assert!(v["output"][0]["call_id"]
        .as_str()
        .unwrap()
        .starts_with("call_"));
    let resp = sim.post_json(
        RESPONSES,
        &fixture("openai-responses-functioncall-output.request.json"),
    );
    assert_eq!(
        resp.json()["output"][0]["type"],
        "message",
        "a tool result is answered"
    );
}

/// (event name, data) of each SSE event, asserting `event:` / `data:` framing.
fn events(body: &str) -> Vec<(String, Value)> {
    body.strip_suffix("\n\n")
        .unwrap()
        .split("\n\n")
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (name, data)
        })
        .collect()
}

#[test]
fn a_streamed_answer_is_the_typed_event_sequence_ending_with_the_whole_response() {
    let sim = TestServer::start();
    let body = br#"{"model":"gpt-4o","input":"What is the capital of France?","stream":true}"#;
    let resp = sim.post_json(RESPONSES, body);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let evs = events(&resp.text());
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas >= 2);
    let mut want = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    want.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    want.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, want);
    for (i, (name, data)) in evs.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"].as_u64(), Some(i as u64));
    }
    let text: String = evs
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "sim: What is the capital of France?");
    let done = evs.last().unwrap().1["response"].to_string();
    let real = Ordered::parse(&fixture_text("openai-responses.response.json"));
    let ours = Ordered::parse(&done);
    assert_eq!(
        ours.without(&["instructions"]).sorted_shape(),
        real.without(&["instructions"]).sorted_shape()
    );
}

#[test]
fn a_streamed_answer_cut_by_max_output_tokens_ends_incomplete() {
    let sim = TestServer::start();
    let body = br#"{"model":"gpt-4o","input":"one two three four five","max_output_tokens":2,"stream":true}"#;
    let evs = events(&sim.post_json(RESPONSES, body).text());
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}
