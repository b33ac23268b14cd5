//! ai-proxy's `auto` model on the built module (Envoy profile): the rules choose the model from
//! the request, the chosen model is routed and sent upstream, and the answer names it in
//! `x-aigw-upstream-model`.

use aigw_harness::{wasm_path, Chain, Env, PluginSpec, Request, UpstreamRequest, UpstreamResponse};
use serde_json::{json, Value};

fn chain(env: &Env) -> Chain {
    let config = json!({
        "providers": [
            {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-o"]},
            {"name": "claude", "type": "anthropic", "cluster": "claude", "apiKeys": ["sk-c"]}
        ],
        "models": [{"match": "gpt-4o-mini", "provider": "oai"}, {"match": "claude-*", "provider": "claude"}],
        "autoModels": {"auto": {"rules": [
            {"when": {"hasTools": true}, "model": "claude-sonnet-4-5"},
            {"when": {"keywords": ["prove"]}, "model": "claude-sonnet-4-5"}
        ], "default": "gpt-4o-mini"}}
    });
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    Chain::new(env)
        .with(
            PluginSpec::new(wasm)
                .config(config.to_string())
                .headers_stop_iteration(true),
        )
        .unwrap()
}

fn answer(req: &UpstreamRequest) -> UpstreamResponse {
    if req.header(":path").as_deref() == Some("/v1/messages") {
        UpstreamResponse::json(
            200,
            r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"big"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}"#,
        )
    } else {
        UpstreamResponse::json(
            200,
            r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"small"},"finish_reason":"stop"}]}"#,
        )
    }
}

#[test]
fn the_auto_model_is_chosen_by_the_request_and_named_in_the_answer() {
    let env = Env::new();
    let mut chain = chain(&env);
    let simple = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", simple.to_string()),
            &mut answer,
        )
        .unwrap();
    let sent = out.upstream.as_ref().unwrap();
    assert_eq!(sent.header("x-aigw-upstream").as_deref(), Some("openai"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(
        out.header("x-aigw-upstream-model").as_deref(),
        Some("gpt-4o-mini")
    );

    let hard = json!({"model": "auto", "messages": [{"role": "user", "content": "Prove it"}]});
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", hard.to_string()),
            &mut answer,
        )
        .unwrap();
    let sent = out.upstream.as_ref().unwrap();
    assert_eq!(sent.header("x-aigw-upstream").as_deref(), Some("claude"));
    assert_eq!(sent.header(":path").as_deref(), Some("/v1/messages"));
    assert_eq!(
        out.header("x-aigw-upstream-model").as_deref(),
        Some("claude-sonnet-4-5")
    );
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "big");
}
