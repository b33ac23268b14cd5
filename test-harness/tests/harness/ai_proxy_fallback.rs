//! ai-proxy's retry and fallback on the built module (Envoy profile): a routed answer that failed
//! is held and replaced by the answer of a callout to the next target, translated for it and back
//! (a reset call moves on to the one after); streams fall back as one clean stream; the circuit
//! breaker one worker opened sends the other worker's requests straight to the fallback target;
//! the Higress build falls back the same way to `outbound|port||fqdn` clusters.

use std::sync::{Arc, Mutex};

use aigw_harness::{
    header_value, wasm_path, CalloutOutcome, CalloutRequest, Chain, Env, Plugin, PluginSpec,
    Request, UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-o"]},
    {"name": "claude", "type": "anthropic", "cluster": "claude", "apiKeys": ["sk-c"]},
    {"name": "backup", "type": "openai-compatible", "cluster": "backup", "apiKeys": ["sk-b"]}
  ],
  "models": [{"match": "gpt-4o", "provider": "oai", "fallbacks": [
    {"provider": "claude", "target": "claude-haiku-4-5"}, {"provider": "backup", "target": "llama"}]}],
  "circuitBreaker": {"failures": 1, "coolOffSeconds": 30}
}"#;
const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM: &str =
    r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
const CLAUDE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"from claude"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}"#;
const BACKUP_SSE: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"from backup\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"llama\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

fn spec() -> PluginSpec {
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    PluginSpec::new(wasm)
        .config(CONFIG)
        .headers_stop_iteration(true)
}

/// Answer callouts by cluster; returns the log of what was called.
fn answer_callouts(
    env: &Env,
    by_cluster: fn(&str) -> CalloutOutcome,
) -> Arc<Mutex<Vec<CalloutRequest>>> {
    let calls: Arc<Mutex<Vec<CalloutRequest>>> = Arc::default();
    let seen = Arc::clone(&calls);
    env.on_callout(move |r: &CalloutRequest| {
        seen.lock().unwrap().push(r.clone());
        by_cluster(&r.cluster)
    });
    calls
}

fn failing(_: &UpstreamRequest) -> UpstreamResponse {
    UpstreamResponse::json(
        503,
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
    )
}

#[test]
fn a_failed_routed_answer_is_replaced_by_the_next_target_translated_back() {
    let env = Env::new();
    let calls = answer_callouts(&env, |_| {
        CalloutOutcome::ok(200, "application/json", CLAUDE)
    });
    let mut chain = Chain::new(&env).with(spec()).unwrap();
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", CHAT),
            &mut failing,
        )
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.body_text());
    assert_eq!(out.header("x-aigw-attempts").as_deref(), Some("2"));
    assert_eq!(
        out.header("x-aigw-upstream-model").as_deref(),
        Some("claude-haiku-4-5")
    );
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from claude");
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].cluster, "claude");
    assert_eq!(calls[0].header(":path").as_deref(), Some("/v1/messages"));
    assert_eq!(calls[0].header("x-api-key").as_deref(), Some("sk-c"));
    let sent: Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(sent["model"], "claude-haiku-4-5");
}

#[test]
fn a_stream_moves_past_a_reset_call_and_the_client_reads_one_stream() {
    let env = Env::new();
    let calls = answer_callouts(&env, |cluster| match cluster {
        "claude" => CalloutOutcome::Reset,
        _ => CalloutOutcome::ok(200, "text/event-stream", BACKUP_SSE),
    });
    let mut chain = Chain::new(&env).with(spec()).unwrap();
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", STREAM),
            &mut failing,
        )
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.body_text());
    assert_eq!(out.header("x-aigw-attempts").as_deref(), Some("3"));
    let text = out.body_text();
    assert!(text.contains("from backup"), "{text}");
    assert_eq!(text.matches("data: [DONE]").count(), 1, "{text}");
    assert!(!text.contains("overloaded"), "{text}");
    let clusters: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.cluster.clone())
        .collect();
    assert_eq!(clusters, ["claude", "backup"]);
}

#[test]
fn a_breaker_opened_on_one_worker_sends_the_other_worker_straight_to_the_fallback() {
    let env = Env::new();
    answer_callouts(&env, |_| {
        CalloutOutcome::ok(200, "application/json", CLAUDE)
    });
    let mut p = Plugin::load_workers(&env, spec(), 2).unwrap();
    let headers = |path: &str| {
        [
            (":method", "POST"),
            (":path", path),
            (":authority", "gw"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect::<Vec<_>>()
    };
    // Worker 0: the routed attempt fails (the breaker's one failure), the fallback answers.
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, headers("/v1/chat/completions"), false)
        .unwrap();
    let step = vm.request_body(s, CHAT.as_bytes(), true).unwrap();
    let sent = step.headers().expect("routed").clone();
    assert_eq!(
        header_value(&sent, "x-aigw-upstream").as_deref(),
        Some("openai")
    );
    let resp = vec![
        (":status".to_owned(), b"503".to_vec()),
        ("content-type".to_owned(), b"application/json".to_vec()),
    ];
    vm.response_headers(s, resp, false).unwrap();
    vm.response_body(s, b"{\"error\":{\"message\":\"down\"}}", true)
        .unwrap();
    vm.finish_stream(s).unwrap();
    // Worker 1 reads the shared breaker: its request is routed to the fallback target at once.
    let vm = p.worker(1);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, headers("/v1/chat/completions"), false)
        .unwrap();
    let step = vm.request_body(s, CHAT.as_bytes(), true).unwrap();
    let sent = step.headers().expect("routed").clone();
    assert_eq!(
        header_value(&sent, "x-aigw-upstream").as_deref(),
        Some("claude")
    );
    assert_eq!(
        header_value(&sent, ":path").as_deref(),
        Some("/v1/messages")
    );
}

/// Higress (its build, ABI 0.2.100 marker): the same callout path, to `outbound|port||fqdn`
/// clusters.
#[test]
fn under_higress_a_failed_answer_falls_back_to_the_next_target_by_callout() {
    let env = Env::new();
    let calls = answer_callouts(&env, |_| {
        CalloutOutcome::ok(200, "application/json", CLAUDE)
    });
    let higress = crate::common::higress_wasm("ai_proxy");
    let config = CONFIG
        .replace(
            "\"cluster\": \"openai\"",
            "\"cluster\": \"outbound|443||api.openai.com.dns\"",
        )
        .replace(
            "\"cluster\": \"claude\"",
            "\"cluster\": \"outbound|443||api.anthropic.com.dns\"",
        );
    let spec = PluginSpec::new(higress)
        .config(config)
        .profile(aigw_harness::Profile::Higress);
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", CHAT),
            &mut failing,
        )
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.body_text());
    assert_eq!(out.header("x-aigw-attempts").as_deref(), Some("2"));
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "from claude");
    let calls = calls.lock().unwrap();
    assert_eq!(calls[0].cluster, "outbound|443||api.anthropic.com.dns");
}
