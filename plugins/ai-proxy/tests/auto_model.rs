//! The `auto` model alias through the filter (mock host): the model its rules choose from the
//! request is the one routed, sent upstream and reported in `x-aigw-upstream-model`; the alias is
//! listed by `GET /v1/models`; a config whose alias names an unserved model is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ai_proxy::Proxy;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Gateway, Outcome, UpstreamReply};
use serde_json::{json, Value};

fn config() -> Value {
    json!({
        "providers": [
            {"name": "oai", "type": "openai", "apiKeys": ["sk-o"]},
            {"name": "claude", "type": "anthropic", "apiKeys": ["sk-c"]}
        ],
        "models": [
            {"match": "gpt-4o-mini", "provider": "oai"},
            {"match": "claude-*", "provider": "claude"}
        ],
        "autoModels": {"auto": {"rules": [
            {"when": {"hasCode": true}, "model": "claude-sonnet-4-5"},
            {"when": {"minPromptTokens": 500}, "model": "claude-sonnet-4-5"}
        ], "default": "gpt-4o-mini"}}
    })
}

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
const CLAUDE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}"#;

fn ask(text: &str, reply: &str) -> Outcome {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": text}]});
    let mut gw = Gateway::<Proxy>::new(&config().to_string(), Capabilities::FULL);
    gw.run(
        Exchange::post_json("/v1/chat/completions", &body.to_string())
            .reply(UpstreamReply::json(reply)),
    )
}

fn response_header(out: &Outcome, name: &str) -> Option<String> {
    out.host
        .state
        .borrow()
        .response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn a_simple_prompt_goes_to_the_default_model_and_the_header_names_it() {
    let out = ask("What is the capital of France?", ANSWER);
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("oai")
    );
    assert_eq!(out.upstream_json()["model"], "gpt-4o-mini");
    assert_eq!(
        response_header(&out, "x-aigw-upstream-model").as_deref(),
        Some("gpt-4o-mini")
    );
}

#[test]
fn a_prompt_with_code_goes_to_the_large_model_translated_for_its_provider() {
    let out = ask("Why does this fail?\n```python\nprint(1/0)\n```", CLAUDE);
    assert_eq!(
        out.upstream_header("x-aigw-upstream").as_deref(),
        Some("claude")
    );
    assert_eq!(out.upstream_json()["model"], "claude-sonnet-4-5");
    assert_eq!(
        response_header(&out, "x-aigw-upstream-model").as_deref(),
        Some("claude-sonnet-4-5")
    );
    let body: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        body["model"], "claude-sonnet-4-5",
        "the answer names the model that answered"
    );
}

#[test]
fn a_long_prompt_goes_to_the_large_model() {
    let out = ask(&"tell me more about it ".repeat(200), CLAUDE);
    assert_eq!(out.upstream_json()["model"], "claude-sonnet-4-5");
}

#[test]
fn the_alias_is_listed_and_an_unserved_choice_refuses_the_config() {
    let mut gw = Gateway::<Proxy>::new(&config().to_string(), Capabilities::FULL);
    let out = gw.run(Exchange::get("/v1/models"));
    let listed = out.local_response.unwrap().body_text();
    assert!(listed.contains("\"auto\""), "{listed}");
    let mut bad = config();
    bad["autoModels"]["auto"]["default"] = "nobody-serves-this".into();
    bad["models"] = json!([{"match": "gpt-4o-mini", "provider": "oai"}]);
    let err = ai_proxy::config::Config::build(&bad).unwrap_err();
    assert_eq!(err.path(), "autoModels.auto");
}
