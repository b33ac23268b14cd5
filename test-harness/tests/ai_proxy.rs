//! The built `ai_proxy.wasm` in the harness (Envoy profile): OpenAI client -> Anthropic backend and
//! Anthropic client -> OpenAI backend, streaming (upstream body re-chunked) and not, same-protocol
//! passthrough to OpenAI and Azure, `/v1/models`, errors in the caller's shape. The expected client
//! bytes are the plugin's own golden files, so the native and wasm layers check the same thing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, PluginSpec, Request, UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-test"]},
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-openai-test"]},
    {"name": "azure", "type": "azure-openai", "authority": "res.openai.azure.com", "apiKeys": ["az-key"]}
  ],
  "models": [
    {"match": "claude-*", "provider": "claude"},
    {"match": "gpt-4o", "provider": "claude", "target": "claude-haiku-4-5"},
    {"match": "gpt-5-nano", "provider": "oai"},
    {"match": "azure-*", "provider": "azure", "target": "nano-deploy"}
  ]
}"#;

fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/ai-proxy/testdata")
}

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn golden(case: &str) -> Vec<u8> {
    std::fs::read(plugin_dir().join(case)).unwrap()
}

/// `created` as the plugin computes it under the harness clock (Unix seconds).
fn env_created() -> u64 {
    Env::new().now_ns() / 1_000_000_000
}

fn chain(env: &Env) -> Chain {
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    Chain::new(env)
        .with(
            PluginSpec::new(wasm)
                .config(CONFIG)
                .headers_stop_iteration(true),
        )
        .unwrap()
}

fn run(req: &Request, reply: UpstreamResponse) -> (Exchange, UpstreamRequest) {
    let env = Env::new();
    let mut c = chain(&env);
    let out = c
        .run(req, &mut |_: &UpstreamRequest| reply.clone())
        .unwrap();
    let up = out
        .upstream
        .clone()
        .expect("the request reached the upstream");
    (out, up)
}

#[test]
fn openai_client_streams_from_anthropic_backend_as_openai_chunks() {
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"temperature":1.5,"max_tokens":50,"stop":"END"}"#;
    let req = Request::post_json("/v1/chat/completions", body)
        .header("authorization", "Bearer client-secret")
        .chunk_size(9);
    for chunk in [1, 7, 64, 4096] {
        let reply = UpstreamResponse::new(200)
            .header("content-type", "text/event-stream")
            .chunk(sample("anthropic-messages-stream.sse"))
            .rechunk(chunk);
        let (out, up) = run(&req, reply);
        assert_eq!(up.header(":path").as_deref(), Some("/v1/messages"));
        assert_eq!(up.header("x-api-key").as_deref(), Some("sk-ant-test"));
        assert_eq!(up.header("x-aigw-upstream").as_deref(), Some("anthropic"));
        assert_eq!(
            up.header("authorization"),
            None,
            "client key must not leak upstream"
        );
        let sent: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(sent["model"], "claude-haiku-4-5");
        assert_eq!(out.status, 200);
        assert_eq!(
            out.header("content-type").as_deref(),
            Some("text/event-stream")
        );
        let want =
            String::from_utf8(golden("openai_anthropic/chat-stream-text/client.sse")).unwrap();
        // The harness clock differs from the mock host's: compare with `created` normalised.
        let created = format!(r#""created":{}"#, env_created());
        assert_eq!(
            out.body_text().replace(&created, r#""created":1700000000"#),
            want,
            "upstream chunks of {chunk}"
        );
    }
}

#[test]
fn anthropic_client_streams_tool_calls_from_openai_backend_as_anthropic_events() {
    let req = Request::post_json(
        "/v1/messages",
        sample("anthropic-messages-stream-tooluse.request.json"),
    )
    .header("x-api-key", "client-secret")
    .chunk_size(100);
    let body = sample("anthropic-messages-stream-tooluse.request.json");
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["model"] = "gpt-5-nano".into();
    let req = Request::post_json("/v1/messages", serde_json::to_vec(&v).unwrap())
        .header("x-api-key", "client-secret")
        .chunk_size(req.chunk_size);
    let reply = UpstreamResponse::new(200)
        .header("content-type", "text/event-stream")
        .chunk(sample("openai-chat-stream-toolcalls-usage.sse"))
        .rechunk(13);
    let (out, up) = run(&req, reply);
    assert_eq!(up.header(":path").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(
        up.header("authorization").as_deref(),
        Some("Bearer sk-openai-test")
    );
    assert_eq!(up.header("x-api-key"), None);
    let text = out.body_text();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains(r#""type":"input_json_delta""#), "{text}");
    assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
}

#[test]
fn openai_to_openai_passes_bytes_through_with_only_model_path_and_auth_changed() {
    let body = r#"{"model":"azure-nano","messages":[{"role":"user","content":"hi"}],"vendor":{"x": 1.50}}"#;
    let reply = UpstreamResponse::json(200, sample("azure-openai-chat.response.json"));
    let (out, up) = run(
        &Request::post_json("/v1/chat/completions", body).header("authorization", "Bearer c"),
        reply,
    );
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/openai/deployments/nano-deploy/chat/completions?api-version=2024-10-21")
    );
    assert_eq!(up.header("api-key").as_deref(), Some("az-key"));
    assert_eq!(
        up.header(":authority").as_deref(),
        Some("res.openai.azure.com")
    );
    assert_eq!(
        up.body_text(),
        r#"{"model":"nano-deploy","messages":[{"role":"user","content":"hi"}],"vendor":{"x": 1.50}}"#
    );
    assert_eq!(out.body, sample("azure-openai-chat.response.json"));
}

#[test]
fn anthropic_errors_reach_openai_clients_in_openai_shape() {
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = UpstreamResponse::json(429, sample("anthropic-error-429.response.json"));
    let (out, _) = run(&Request::post_json("/v1/chat/completions", body), reply);
    assert_eq!(out.status, 429);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[test]
fn models_and_bad_requests_are_answered_locally_without_a_trap() {
    let env = Env::new();
    let mut c = chain(&env);
    let mut never =
        |_: &UpstreamRequest| -> UpstreamResponse { panic!("must not reach the upstream") };
    let out = c.run(&Request::get("/v1/models"), &mut never).unwrap();
    assert_eq!(out.status, 200);
    assert!(
        out.body_text().contains(r#""id":"gpt-5-nano""#),
        "{}",
        out.body_text()
    );
    let out = c
        .run(&Request::post_json("/v1/messages", "{not json"), &mut never)
        .unwrap();
    assert_eq!(out.status, 400);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["type"], "error");
    let out = c
        .run(
            &Request::post_json("/v1/chat/completions", r#"{"model":"nope","messages":[]}"#),
            &mut never,
        )
        .unwrap();
    assert_eq!(out.status, 404);
}
