//! The watchdog for held request headers, against the built modules (Envoy profile): without
//! Envoy's `allow_on_headers_stop_iteration`, a plugin that holds the request headers for the
//! body never receives it; the request gets a 500 in its caller's shape naming the option, and
//! the log says it, instead of a silent hang. With the option, a slow body is never cut.

use std::time::Duration;

use aigw_harness::{wasm_path, Env, LogLevel, Plugin, PluginSpec};

const CONFIG: &str = r#"{"providers": [{"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-test"]}],
  "models": [{"match": "*", "provider": "claude"}]}"#;

const BODY: &[u8] =
    br#"{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;

fn headers(path: &str) -> Vec<(String, Vec<u8>)> {
    [
        (":method", "POST"),
        (":path", path),
        (":authority", "gw"),
        ("content-type", "application/json"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
    .collect()
}

fn load(env: &Env, module: &str, config: &str, stop_iteration: bool) -> Plugin {
    let wasm = wasm_path(module).unwrap_or_else(|e| panic!("{e}"));
    Plugin::load(
        env,
        PluginSpec::new(wasm)
            .config(config)
            .headers_stop_iteration(stop_iteration),
    )
    .unwrap()
}

#[test]
fn without_the_envoy_option_a_held_request_gets_a_500_naming_it_in_its_own_shape() {
    let env = Env::new();
    let mut p = load(&env, "ai_proxy", CONFIG, false);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, headers("/v1/messages"), false)
        .unwrap();
    let step = vm.request_body(s, BODY, true).unwrap();
    assert!(step.action.is_none(), "the body never reaches the plugin");
    p.advance(Duration::from_secs(9)).unwrap();
    assert!(
        p.worker(0).poll(s).unwrap().local_reply.is_none(),
        "not yet"
    );
    p.advance(Duration::from_secs(2)).unwrap();
    let reply = p.worker(0).poll(s).unwrap().local_reply.expect("answered");
    assert_eq!(reply.status, 500);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["type"], "error", "Anthropic shape: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("allow_on_headers_stop_iteration: true"),
        "{message}"
    );
    let logged = p.worker(0).log_messages(LogLevel::Error);
    assert!(
        logged
            .iter()
            .any(|l| l.contains("allow_on_headers_stop_iteration")),
        "{logged:?}"
    );
    p.worker(0).finish_stream(s).unwrap();
}

#[test]
fn a_plugin_that_does_not_hold_the_headers_is_not_watched() {
    // The decorator rewrites the body but lets the headers go on: it needs no option, and a
    // body that comes late is still decorated.
    let env = Env::new();
    let config = r#"{"prepend": [{"role": "system", "content": "Be brief."}]}"#;
    let mut p = load(&env, "ai_prompt_decorator", config, false);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, headers("/v1/chat/completions"), false)
        .unwrap();
    p.advance(Duration::from_secs(11)).unwrap();
    assert!(p.worker(0).poll(s).unwrap().local_reply.is_none());
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let step = p.worker(0).request_body(s, body, true).unwrap();
    assert!(step.local_reply.is_none());
    assert!(String::from_utf8_lossy(&step.body()).contains("Be brief."));
}

#[test]
fn with_the_option_a_slow_body_is_never_cut() {
    let env = Env::new();
    let mut p = load(&env, "ai_proxy", CONFIG, true);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, headers("/v1/messages"), false)
        .unwrap();
    p.advance(Duration::from_secs(5)).unwrap();
    let (a, b) = BODY.split_at(20);
    assert!(p
        .worker(0)
        .request_body(s, a, false)
        .unwrap()
        .local_reply
        .is_none());
    // The first chunk proved bodies arrive: no later wait is cut, on this stream or another.
    p.advance(Duration::from_secs(30)).unwrap();
    assert!(p.worker(0).poll(s).unwrap().local_reply.is_none());
    let other = p.worker(0).create_stream().unwrap();
    p.worker(0)
        .request_headers(other, headers("/v1/messages"), false)
        .unwrap();
    p.advance(Duration::from_secs(30)).unwrap();
    assert!(p.worker(0).poll(other).unwrap().local_reply.is_none());
    let step = p.worker(0).request_body(s, b, true).unwrap();
    assert!(step.headers().is_some(), "the request went on upstream");
    assert!(step.local_reply.is_none());
}
