//! Every ai-proxy scenario (`plugins/ai-proxy/testdata/<from>_<to>/<case>/case.json`) replayed
//! against the BUILT `ai_proxy.wasm` under the Envoy profile (with `allow_on_headers_stop_iteration`,
//! as the Envoy configs set it), the upstream body delivered whole and in small chunks: the same
//! upstream request and the same client bytes as the native run on the mock host
//! (`plugins/ai-proxy/tests/cases.rs`, which owns the golden files).
//!
//! The harness clock starts later than the mock's, so `"created":<seconds>` is normalised to the
//! mock's value and time-dependent headers (SigV4's `authorization`, `x-amz-date`) are not compared.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, PluginSpec, Request, UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

const MOCK_CREATED: &str = r#""created":1700000000"#;
const TIME_HEADERS: &[&str] = &["authorization", "x-amz-date"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/ai-proxy/testdata")
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    let p = match name.strip_prefix("providers:") {
        Some(n) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/providers")
            .join(n),
        None => dir.join(name),
    };
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

struct Case {
    name: String,
    dir: PathBuf,
    spec: Value,
    config: String,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for pair in std::fs::read_dir(root()).unwrap() {
        let pair = pair.unwrap().path();
        if !pair.is_dir() {
            continue;
        }
        let pair_config = std::fs::read_to_string(pair.join("config.json")).ok();
        for case in std::fs::read_dir(&pair).unwrap() {
            let dir = case.unwrap().path();
            let Ok(text) = std::fs::read_to_string(dir.join("case.json")) else {
                continue;
            };
            let spec: Value = serde_json::from_str(&text).unwrap();
            let config = match spec.get("config") {
                Some(c) => c.to_string(),
                None => pair_config.clone().unwrap(),
            };
            let name = format!(
                "{}/{}",
                pair.file_name().unwrap().to_string_lossy(),
                dir.file_name().unwrap().to_string_lossy()
            );
            out.push(Case {
                name,
                dir,
                spec,
                config,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 20, "found {} cases", out.len());
    out
}

fn request(c: &Case) -> Request {
    let path = c.spec["path"].as_str().unwrap();
    let body = if let Some(f) = c.spec.get("requestFile").and_then(Value::as_str) {
        read(&c.dir, f)
    } else if let Some(t) = c.spec.get("requestText").and_then(Value::as_str) {
        t.as_bytes().to_vec()
    } else {
        c.spec
            .get("request")
            .map(|r| r.to_string().into_bytes())
            .unwrap_or_default()
    };
    let mut req = if c.spec.get("method").and_then(Value::as_str) == Some("GET") {
        Request::get(path)
    } else {
        Request::post_json(path, body)
    };
    // The mock runner's authority, so expectations about a kept `:authority` hold in both layers.
    req.headers.retain(|(name, _)| name != ":authority");
    req.headers
        .push((":authority".into(), b"gateway.local".to_vec()));
    for (k, v) in c
        .spec
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        req.headers.retain(|(name, _)| name != k);
        req.headers
            .push((k.clone(), v.as_str().unwrap().as_bytes().to_vec()));
    }
    req
}

fn reply(c: &Case, chunk: usize) -> UpstreamResponse {
    let up = &c.spec["upstream"];
    let mut body = match (up.get("bodyFile").and_then(Value::as_str), up.get("body")) {
        (Some(f), _) => read(&c.dir, f),
        (None, Some(Value::String(s))) => s.as_bytes().to_vec(),
        (None, Some(v)) => v.to_string().into_bytes(),
        (None, None) => Vec::new(),
    };
    if let Some(n) = up.get("truncateAt").and_then(Value::as_u64) {
        body.truncate(n as usize);
    }
    let ct = up
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    let status = up.get("status").and_then(Value::as_u64).unwrap_or(200) as u16;
    let mut r = UpstreamResponse::new(status).header("content-type", ct);
    if !body.is_empty() {
        r = r.chunk(body).rechunk(chunk);
    }
    r
}

fn run(c: &Case, chunk: usize) -> Exchange {
    let env = Env::new();
    let spec = PluginSpec::new(wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}")))
        .config(&c.config)
        .headers_stop_iteration(true);
    let mut chain = Chain::new(&env)
        .with(spec)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let created = format!(r#""created":{}"#, env.now_ns() / 1_000_000_000);
    let answer = if c.spec.get("upstream").is_some() {
        Some(reply(c, chunk))
    } else {
        None
    };
    let mut up = |_: &UpstreamRequest| answer.clone().unwrap_or_else(|| UpstreamResponse::new(599));
    let mut out = chain
        .run(&request(c), &mut up)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let text = String::from_utf8_lossy(&out.body).replace(&created, MOCK_CREATED);
    out.body = text.into_bytes();
    out
}

fn check(c: &Case, out: &Exchange) {
    let (n, expect) = (&c.name, &c.spec["expect"]);
    if let Some(status) = expect.get("localStatus") {
        assert_eq!(
            u64::from(out.status),
            status.as_u64().unwrap(),
            "{n}: {}",
            out.body_text()
        );
        assert!(out.upstream.is_none(), "{n}: must not reach the upstream");
        return;
    }
    let upstream = out
        .upstream
        .as_ref()
        .unwrap_or_else(|| panic!("{n}: no upstream request; got {}", out.body_text()));
    if let Some(p) = expect.get("upstreamPath") {
        assert_eq!(upstream.header(":path").as_deref(), p.as_str(), "{n}: path");
    }
    for (k, v) in expect
        .get("upstreamHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !TIME_HEADERS.contains(&k.as_str()) {
            assert_eq!(upstream.header(k).as_deref(), v.as_str(), "{n}: header {k}");
        }
    }
    for k in expect
        .get("upstreamHeadersAbsent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert_eq!(
            upstream.header(k.as_str().unwrap()),
            None,
            "{n}: header {k} must be gone"
        );
    }
    let sent: Value = serde_json::from_slice(&upstream.body).unwrap_or(Value::Null);
    if let Some(want) = expect.get("upstreamJson") {
        assert_eq!(&sent, want, "{n}: upstream body");
    }
    if let Some(f) = expect.get("upstreamJsonFile").and_then(Value::as_str) {
        let want: Value = serde_json::from_slice(&read(&c.dir, f)).unwrap();
        assert_eq!(sent, want, "{n}: upstream body");
    }
    let want_status = expect.get("status").and_then(Value::as_u64).unwrap_or(200);
    assert_eq!(
        u64::from(out.status),
        want_status,
        "{n}: status; body {}",
        out.body_text()
    );
    if let Some(want) = expect.get("clientJson") {
        let got: Value = serde_json::from_slice(&out.body)
            .unwrap_or_else(|e| panic!("{n}: {e}: {}", out.body_text()));
        assert_eq!(&got, want, "{n}: client body");
    }
    if let Some(f) = expect.get("clientFile").and_then(Value::as_str) {
        let want = String::from_utf8(read(&c.dir, f)).unwrap();
        assert_eq!(out.body_text(), want, "{n}: client body differs from {f}");
    }
}

#[test]
fn every_ai_proxy_scenario_behaves_the_same_in_the_built_module() {
    for c in cases() {
        for chunk in [usize::MAX, 7] {
            check(&c, &run(&c, chunk));
        }
    }
}
