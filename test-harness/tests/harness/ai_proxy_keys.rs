//! ai-proxy's key pools against the built module on two Envoy workers: a key that one worker's
//! request got a 429 for sits out on the other worker too (shared data), and comes back when
//! the `Retry-After` is over (virtual clock).

use std::time::Duration;

use aigw_harness::{header_value, wasm_path, Env, Plugin, PluginSpec};

const CONFIG: &str = r#"{"providers": [{"name": "oai", "type": "openai", "cluster": "openai",
  "apiKeys": ["sk-a", "sk-b"]}], "models": [{"match": "*", "provider": "oai"}]}"#;
const CHAT: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &[u8] = br#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// One request on `worker`, answered with `status` (and `retry-after` when given); returns the
/// key it was sent with.
fn exchange(p: &mut Plugin, worker: usize, status: &str, retry_after: Option<&str>) -> String {
    let vm = p.worker(worker);
    let s = vm.create_stream().unwrap();
    let req = pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-type", "application/json"),
    ]);
    vm.request_headers(s, req, false).unwrap();
    let step = vm.request_body(s, CHAT, true).unwrap();
    let sent = step.headers().expect("went upstream").clone();
    let key = header_value(&sent, "authorization").unwrap();
    let mut resp = vec![(":status", status), ("content-type", "application/json")];
    if let Some(r) = retry_after {
        resp.push(("retry-after", r));
    }
    vm.response_headers(s, pairs(&resp), false).unwrap();
    let body: &[u8] = if status == "200" {
        ANSWER
    } else {
        br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#
    };
    vm.response_body(s, body, true).unwrap();
    vm.finish_stream(s).unwrap();
    key
}

#[test]
fn a_key_rate_limited_on_one_worker_sits_out_on_the_other_until_its_retry_after() {
    let env = Env::new();
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    let spec = PluginSpec::new(wasm)
        .config(CONFIG)
        .headers_stop_iteration(true);
    let mut p = Plugin::load_workers(&env, spec, 2).unwrap();
    assert_eq!(exchange(&mut p, 0, "429", Some("20")), "Bearer sk-a");
    // Worker 1 would start its round robin with sk-a: the shared record sends it to sk-b.
    for _ in 0..3 {
        assert_eq!(exchange(&mut p, 1, "200", None), "Bearer sk-b");
    }
    p.advance(Duration::from_secs(21)).unwrap();
    let back: Vec<String> = (0..2).map(|_| exchange(&mut p, 1, "200", None)).collect();
    assert!(back.contains(&"Bearer sk-a".to_owned()), "{back:?}");
}

/// `apiKeysFromEnv`: the built module reads its keys from the VM's environment (WASI `environ_get`;
/// Envoy fills it from `vm_config.environment_variables`), and refuses its config, naming the
/// field, when a listed variable is not there.
#[test]
fn keys_come_from_the_vm_environment_and_a_missing_variable_refuses_the_config() {
    const FROM_ENV: &str = r#"{"providers": [{"name": "oai", "type": "openai", "cluster": "openai",
      "apiKeysFromEnv": ["OPENAI_API_KEY"]}], "models": [{"match": "*", "provider": "oai"}]}"#;
    let env = Env::new();
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    let mut spec = PluginSpec::new(&wasm)
        .config(FROM_ENV)
        .headers_stop_iteration(true);
    spec.env_vars = vec![("OPENAI_API_KEY".to_owned(), "sk-from-env".to_owned())];
    let mut p = Plugin::load(&env, spec).unwrap();
    assert_eq!(exchange(&mut p, 0, "200", None), "Bearer sk-from-env");

    let bare = PluginSpec::new(&wasm).config(FROM_ENV);
    let err = Plugin::load(&env, bare).unwrap_err().to_string();
    assert!(
        err.contains("apiKeysFromEnv[0]") && err.contains("OPENAI_API_KEY"),
        "{err}"
    );
}
