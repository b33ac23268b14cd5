//! The plugin contract's worked example (`examples/model-allowlist`) as a built `.wasm`: per-worker
//! state, a root-level callout on the tick, a request-level callout that holds the whole body,
//! and errors in the caller's protocol, all through the real proxy-wasm adapter.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aigw_harness::{
    wasm_path, CalloutOutcome, CalloutRequest, Chain, Env, PluginSpec, Request, UpstreamRequest,
    UpstreamResponse,
};

const OK: &str = r#"{"id":"c","object":"chat.completion","choices":[]}"#;

fn chain(env: &Env) -> Chain {
    let spec =
        PluginSpec::new(wasm_path("aigw_example_allowlist").unwrap_or_else(|e| panic!("{e}")))
            .config(r#"{"modelsCluster": "models", "refreshSeconds": 10}"#)
            .headers_stop_iteration(true);
    Chain::new(env).with(spec).unwrap()
}

/// The model service lists `a` on its first answer and `a`, `b` afterwards.
fn model_service(env: &Env) -> Arc<AtomicU32> {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    env.declare_cluster("models");
    env.on_callout(move |r: &CalloutRequest| {
        assert_eq!(r.header(":path").as_deref(), Some("/v1/models"));
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let ids = if n == 1 {
            r#"[{"id":"a"}]"#
        } else {
            r#"[{"id":"a"},{"id":"b"}]"#
        };
        CalloutOutcome::ok(200, "application/json", format!(r#"{{"data":{ids}}}"#))
    });
    calls
}

fn chat(model: &str) -> Request {
    Request::post_json(
        "/v1/chat/completions",
        format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
    )
    .chunk_size(5)
}

fn upstream(req: &UpstreamRequest) -> UpstreamResponse {
    assert!(!req.body.is_empty());
    UpstreamResponse::json(200, OK)
}

#[test]
fn a_cold_worker_fetches_the_list_for_the_first_request_and_keeps_it() {
    let env = Env::new();
    let calls = model_service(&env);
    let mut chain = chain(&env);
    let first = chain.run(&chat("a"), &mut upstream).unwrap();
    assert_eq!(first.status, 200, "{}", first.body_text());
    let sent = first.upstream.unwrap();
    assert!(String::from_utf8_lossy(&sent.body).contains(r#""model":"a""#));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let second = chain.run(&chat("a"), &mut upstream).unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the worker's state keeps the list"
    );
}

#[test]
fn the_tick_refreshes_the_list_from_the_root_and_unlisted_models_get_an_openai_404() {
    let env = Env::new();
    let calls = model_service(&env);
    let mut chain = chain(&env);
    let refused = chain.run(&chat("b"), &mut upstream).unwrap();
    assert_eq!(refused.status, 404, "{}", refused.body_text());
    let json: serde_json::Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(json["error"]["param"], "model", "OpenAI shape: {json}");
    assert!(refused.upstream.is_none());

    chain.advance(Duration::from_secs(10)).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the tick listed the models again"
    );
    let allowed = chain.run(&chat("b"), &mut upstream).unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body_text());
}

#[test]
fn an_oversized_body_is_refused_with_a_413_by_the_driver() {
    let env = Env::new();
    model_service(&env);
    let mut chain = chain(&env);
    let big = "x".repeat(2 << 20);
    let out = chain
        .run(&chat(&big).chunk_size(64 << 10), &mut upstream)
        .unwrap();
    assert_eq!(out.status, 413, "{}", out.body_text());
    let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than 1048576 bytes"),
        "the plugin's own 413 in the OpenAI shape, not the host's: {json}"
    );
}

#[test]
fn an_error_reply_sent_from_a_callout_answer_reaches_the_client() {
    // The reply is sent from `on_http_call_response` (the driver's `Next::Fail`), outside any
    // stream callback, and must still reach the client whole.
    let env = Env::new();
    env.declare_cluster("models");
    env.on_callout(|_: &CalloutRequest| CalloutOutcome::ok(500, "text/plain", "down"));
    let mut chain = chain(&env);
    let out = chain.run(&chat("a"), &mut upstream).unwrap();
    assert_eq!(out.status, 503, "{}", out.body_text());
    let json: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("model list unavailable"));
    assert!(out.upstream.is_none());
}
