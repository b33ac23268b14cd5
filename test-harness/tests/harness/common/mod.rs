//! Helpers shared by the harness tests: the test guest's path and request builders.
#![allow(dead_code)]

pub mod redis;

use aigw_harness::{headers, wasm_path, Env, Headers, Plugin, PluginSpec, Profile};
use std::path::PathBuf;

/// The built test guest (`cargo build --release --target wasm32-wasip1 -p aigw-test-guest`).
pub fn guest() -> PathBuf {
    wasm_path("aigw_test_guest").unwrap_or_else(|e| panic!("{e}"))
}

/// The Higress build of plugin module `name` (`ai_proxy`), which `make build` puts in
/// `<wasm dir>/higress/`; the test fails, saying so, when it is missing.
pub fn higress_wasm(name: &str) -> PathBuf {
    let standard = wasm_path(name).unwrap_or_else(|e| panic!("{e}"));
    let path = standard
        .parent()
        .map(|dir| dir.join("higress"))
        .unwrap_or_default()
        .join(standard.file_name().unwrap_or_default());
    assert!(
        path.is_file(),
        "{} missing: run `make build` (it builds the Higress variants too)",
        path.display()
    );
    path
}

/// A fixture file under tests/harness/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("harness")
        .join("fixtures")
        .join(name)
}

/// Loads the guest with `config` under `profile`.
pub fn load(env: &Env, config: &str, profile: Profile) -> Plugin {
    Plugin::load(
        env,
        PluginSpec::new(guest()).config(config).profile(profile),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Request headers for `POST /v1/chat/completions` with the given guest ops.
pub fn req(ops: &str) -> Headers {
    let mut h = headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gateway.test"),
        (":scheme", "http"),
    ]);
    h.push(("x-guest-op".into(), ops.as_bytes().to_vec()));
    h
}

/// Adds a header.
pub fn with(mut h: Headers, name: &str, value: &str) -> Headers {
    h.push((name.to_string(), value.as_bytes().to_vec()));
    h
}

/// True if any log line of the plugin contains `needle`.
pub fn logged(p: &Plugin, needle: &str) -> bool {
    p.logs().iter().any(|l| l.message.contains(needle))
}

/// Position of the first log line containing `needle`.
pub fn log_pos(p: &Plugin, needle: &str) -> usize {
    p.logs()
        .iter()
        .position(|l| l.message.contains(needle))
        .unwrap_or_else(|| panic!("no log line contains {needle:?}; logs: {:#?}", p.logs()))
}

/// What the client and the upstream saw in a chain run, in the shared scenario checker's terms.
pub fn observed(out: &aigw_harness::Exchange) -> aigw_shared::scenario::Observed {
    aigw_shared::scenario::Observed {
        local: out
            .local_reply
            .as_ref()
            .map(|_| (out.status, out.body.clone())),
        upstream: out
            .upstream
            .as_ref()
            .map(|u| (u.headers.clone(), u.body.clone())),
        status: out.status,
        response_headers: out.headers.clone(),
        response_body: out.body.clone(),
        stalled: None,
    }
}
