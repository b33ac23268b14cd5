//! The simulator's Anthropic Messages bytes compared with the live recordings and SDK fixtures
//! in testdata/providers: field order at every level, the event sequence and `event:` framing of
//! streams, tool use, the error shape, and the header checks.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{fixture, fixture_edited, fixture_text, named_events, Ordered, TestServer};

const MESSAGES: &str = "/v1/messages";
const AUTH: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("x-api-key", "sk-ant-test"),
    ("anthropic-version", "2023-06-01"),
];

fn post(sim: &TestServer, body: &[u8]) -> common::Response {
    sim.send("POST", MESSAGES, &AUTH, body)
}

/// Event names with runs of repeated names collapsed (delta counts differ by content).
fn sequence(events: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in events {
        if out.last() != Some(name) {
            out.push(name.clone());
        }
    }
    out
}

fn event<'a>(events: &'a [(String, String)], name: &str) -> &'a str {
    &events.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn a_text_answer_has_the_live_message_fields_in_the_live_order() {
    let sim = TestServer::start();
    // The tool-result follow-up: the answer is text even though the question mentions weather.
    let resp = post(&sim, &fixture("anthropic-messages-toolresult.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("request-id").unwrap().starts_with("req_"));
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("anthropic-messages-toolresult.response.json"));
    assert_eq!(ours.shape(), real.shape());
    let v = resp.json();
    assert_eq!(v["content"][0]["text"], "sim: What is the weather in SF?");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["model"], "claude-haiku-4-5");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["usage"]["output_tokens"], 7);
}

#[test]
fn a_weather_question_with_tools_gets_a_tool_use_block_shaped_like_the_recording() {
    let sim = TestServer::start();
    let resp = post(&sim, &fixture("anthropic-messages-tooluse.request.json"));
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("anthropic-messages-tooluse.response.json"));
    assert_eq!(ours.shape(), real.shape());
    let v = resp.json();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["name"], "get_weather");
    assert_eq!(
        block["input"],
        serde_json::json!({"location": "SF", "units": "c"})
    );
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
}

#[test]
fn max_tokens_cuts_the_answer_with_stop_reason_max_tokens() {
    let sim = TestServer::start();
    let body =
        br#"{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"one two three"}]}"#;
    let v = post(&sim, body).json();
    assert_eq!(v["content"][0]["text"], "sim: one");
    assert_eq!(v["stop_reason"], "max_tokens");
}

#[test]
fn a_text_stream_has_the_recorded_event_sequence_framing_and_payload_shapes() {
    let sim = TestServer::start();
    let body = br#"{"model":"claude-3-opus-latest","max_tokens":64,"stream":true,
        "messages":[{"role":"user","content":"Hello there!"}]}"#;
    let resp = post(&sim, body);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert!(resp.complete);
    for chunk in &resp.chunks {
        let text = std::str::from_utf8(chunk).unwrap();
        assert!(
            text.starts_with("event: ") && text.ends_with("\n\n"),
            "{text:?}"
        );
    }
    let ours = named_events(&resp.text());
    let basic = named_events(&fixture_text("anthropic-messages-stream.sse"));
    let live = named_events(&fixture_text("anthropic-messages-stream-tooluse.sse"));
    assert_eq!(sequence(&ours), sequence(&basic));
    let shape = |s: &str| Ordered::parse(s).shape();
    // message_start and message_delta as the live API sends them today; the rest as the fixture.
    for name in ["message_start", "message_delta", "message_stop"] {
        assert_eq!(
            shape(event(&ours, name)),
            shape(event(&live, name)),
            "{name}"
        );
    }
    for name in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ] {
        assert_eq!(
            shape(event(&ours, name)),
            shape(event(&basic, name)),
            "{name}"
        );
    }
    assert_eq!(event(&ours, "ping"), event(&basic, "ping"), "ping bytes");
    let text: String = ours
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .map(|d| d["delta"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "sim: Hello there!");
    let delta: serde_json::Value = serde_json::from_str(event(&ours, "message_delta")).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
}

#[test]
fn a_tool_use_stream_matches_the_live_recording_event_for_event() {
    let sim = TestServer::start();
    let resp = post(
        &sim,
        &fixture("anthropic-messages-stream-tooluse.request.json"),
    );
    let ours = named_events(&resp.text());
    let live = named_events(&fixture_text("anthropic-messages-stream-tooluse.sse"));
    assert_eq!(sequence(&ours), sequence(&live));
    for name in sequence(&live) {
        assert_eq!(
            Ordered::parse(event(&ours, &name)).shape(),
            Ordered::parse(event(&live, &name)).shape(),
            "{name}"
        );
    }
    let partials: Vec<String> = ours
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .map(|d| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        partials[0], "",
        "the first input_json_delta is empty, as recorded"
    );
    let input: serde_json::Value = serde_json::from_str(&partials.concat()).unwrap();
    assert_eq!(input, serde_json::json!({"location": "SF", "units": "c"}));
    let delta: serde_json::Value = serde_json::from_str(event(&ours, "message_delta")).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
}

#[test]
fn a_forced_tool_choice_and_tool_choice_none_are_honoured() {
    let sim = TestServer::start();
    let forced = fixture_edited("anthropic-messages-tooluse.request.json", |v| {
        v["messages"][0]["content"] = "Hello".into();
        v["tool_choice"] = serde_json::json!({"type": "any"});
    });
    assert_eq!(post(&sim, &forced).json()["stop_reason"], "tool_use");
    let none = fixture_edited("anthropic-messages-tooluse.request.json", |v| {
        v["tool_choice"] = serde_json::json!({"type": "none"});
    });
    assert_eq!(post(&sim, &none).json()["stop_reason"], "end_turn");
}

#[test]
fn missing_key_or_version_and_injected_errors_use_anthropics_error_shape() {
    let sim = TestServer::start();
    let body = fixture("anthropic-messages-tooluse.request.json");
    let recorded = Ordered::parse(&fixture_text("anthropic-error-400.response.json")).shape();
    let no_key = sim.send(
        "POST",
        MESSAGES,
        &[("anthropic-version", "2023-06-01")],
        &body,
    );
    assert_eq!(no_key.status, 401);
    assert_eq!(Ordered::parse(&no_key.text()).shape(), recorded);
    assert_eq!(no_key.json()["error"]["type"], "authentication_error");
    assert_eq!(
        no_key.json()["error"]["message"],
        "x-api-key header is required"
    );
    let no_version = sim.send("POST", MESSAGES, &[("x-api-key", "k")], &body);
    assert_eq!(no_version.status, 400);
    assert_eq!(
        no_version.json()["error"]["message"],
        "anthropic-version: header is required"
    );
    let mut headers = AUTH.to_vec();
    headers.push(("x-sim-error-status", "429"));
    let limited = sim.send("POST", MESSAGES, &headers, &body);
    assert_eq!(limited.status, 429);
    assert_eq!(
        Ordered::parse(&limited.text()).shape(),
        Ordered::parse(&fixture_text("anthropic-error-429.response.json")).shape()
    );
    assert_eq!(limited.json()["error"]["type"], "rate_limit_error");
    assert_eq!(limited.header("x-should-retry"), Some("true"));
    headers[3] = ("x-sim-error-status", "529");
    let overloaded = sim.send("POST", MESSAGES, &headers, &body);
    assert_eq!(overloaded.json()["error"]["type"], "overloaded_error");
    let invalid = post(&sim, br#"{"model":"m","messages":[]}"#);
    assert_eq!(
        invalid.json()["error"]["message"],
        "max_tokens: Field required"
    );
}

#[test]
fn a_required_key_must_match_and_the_journal_shows_what_arrived() {
    let sim = TestServer::with_config(|c| {
        c.credentials.require("anthropic", "sk-ant-expected");
    });
    let body = fixture("anthropic-messages-tooluse.request.json");
    let wrong = post(&sim, &body);
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["message"], "invalid x-api-key");
    let right = sim.send(
        "POST",
        MESSAGES,
        &[
            ("x-api-key", "sk-ant-expected"),
            ("anthropic-version", "2023-06-01"),
        ],
        &body,
    );
    assert_eq!(right.status, 200);
    let journal = sim.send("GET", "/_sim/requests", &[], b"").json();
    assert_eq!(journal[1]["headers"]["x-api-key"], "sk-ant-expected");
    assert!(journal[1]["headers"].get("authorization").is_none());
}

#[test]
fn a_truncated_stream_never_sends_message_stop() {
    let sim = TestServer::start();
    let mut headers = AUTH.to_vec();
    headers.push(("x-sim-truncate-after", "100"));
    let resp = sim.send(
        "POST",
        MESSAGES,
        &headers,
        &fixture("anthropic-messages-stream-tooluse.request.json"),
    );
    assert!(!resp.complete);
    let events = named_events(&resp.text());
    assert_eq!(events.last().unwrap().0, "message_delta");
}
