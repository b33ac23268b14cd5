//! Every ai-proxy scenario (`plugins/ai-proxy/testdata/<from>_<to>/<case>/case.json`) replayed
//! against the BUILT `ai_proxy.wasm` under the Envoy profile (with `allow_on_headers_stop_iteration`,
//! as the Envoy configs set it), the upstream body delivered whole and in small chunks: the same
//! upstream request and the same client bytes as the native run on the mock host
//! (`plugins/ai-proxy/tests/cases.rs`, which owns the golden files).
//!
//! The harness clock starts later than the mock's, so `"created":<seconds>` is normalised to the
//! mock's value and time-dependent headers (SigV4's `authorization`, `x-amz-date`) are not compared.

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, PluginSpec, Request, UpstreamRequest, UpstreamResponse,
};
use aigw_shared::scenario::{CheckOptions, Scenario};

use crate::common::observed;

const MOCK_CREATED: &str = r#""created":1700000000"#;
/// Signatures over the harness clock differ from the mock's.
const TIME_HEADERS: &[&str] = &["authorization", "x-amz-date"];

fn cases() -> Vec<Scenario> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/ai-proxy/testdata");
    let out = Scenario::load_tree(&root);
    assert!(out.len() >= 20, "found {} cases", out.len());
    out
}

fn request(c: &Scenario) -> Request {
    let mut req = if c.is_get() {
        Request::get(c.path())
    } else {
        Request::post_json(c.path(), c.request_body())
    };
    req.headers.retain(|(name, _)| name != ":authority");
    req.headers
        .push((":authority".into(), b"gateway.local".to_vec()));
    for (k, v) in c.headers() {
        req.headers.retain(|(name, _)| *name != k);
        req.headers.push((k, v.into_bytes()));
    }
    req
}

fn reply(c: &Scenario, chunk: usize) -> UpstreamResponse {
    let body = c.upstream_body();
    let mut r = UpstreamResponse::new(c.upstream_status())
        .header("content-type", c.upstream_content_type());
    if !body.is_empty() {
        r = r.chunk(body).rechunk(chunk);
    }
    r
}

fn run(c: &Scenario, chunk: usize) -> Exchange {
    let env = Env::new();
    let spec = PluginSpec::new(wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}")))
        .config(&c.config)
        .headers_stop_iteration(true);
    let mut chain = Chain::new(&env)
        .with(spec)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let created = format!(r#""created":{}"#, env.now_ns() / 1_000_000_000);
    let answer = c.has_upstream().then(|| reply(c, chunk));
    let mut up = |_: &UpstreamRequest| answer.clone().unwrap_or_else(|| UpstreamResponse::new(599));
    let mut out = chain
        .run(&request(c), &mut up)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let text = String::from_utf8_lossy(&out.body).replace(&created, MOCK_CREATED);
    out.body = text.into_bytes();
    out
}

#[test]
fn every_ai_proxy_scenario_behaves_the_same_in_the_built_module() {
    let opts = CheckOptions {
        skip_headers: TIME_HEADERS,
        update_golden: false,
    };
    for c in cases() {
        for chunk in [usize::MAX, 7] {
            c.check(&observed(&run(&c, chunk)), opts);
        }
    }
}
