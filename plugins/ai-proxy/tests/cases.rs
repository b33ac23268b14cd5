//! Replays every scenario under `testdata/<from>_<to>/<case>/case.json` through the plugin on the
//! mock host: the upstream request is checked, the upstream answer (often a real provider sample
//! from the workspace `testdata/providers/`) is fed back, and the client's response is compared
//! with the golden file. Streams are re-split at every byte boundary and must give the same bytes.
//!
//! `AIGW_UPDATE_GOLDEN=1 cargo test -p ai-proxy --test cases` rewrites the golden client files.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use ai_proxy::Proxy;
use aigw_shared::mock::{Exchange, Outcome, UpstreamReply};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// A file named in a case: `providers:<name>` is a workspace provider sample, else case-relative.
fn resolve(dir: &Path, name: &str) -> PathBuf {
    match name.strip_prefix("providers:") {
        Some(n) => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/providers")
            .join(n),
        None => dir.join(name),
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    let p = resolve(dir, name);
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
            let file = dir.join("case.json");
            if !file.exists() {
                continue;
            }
            let spec: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let config = match spec.get("config") {
                Some(c) => c.to_string(),
                None => pair_config.clone().expect("config.json beside the cases"),
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
    assert!(
        out.len() >= 20,
        "expected the scenario folders, found {}",
        out.len()
    );
    out
}

fn request_body(c: &Case) -> Vec<u8> {
    if let Some(f) = c.spec.get("requestFile").and_then(Value::as_str) {
        return read(&c.dir, f);
    }
    if let Some(t) = c.spec.get("requestText").and_then(Value::as_str) {
        return t.as_bytes().to_vec();
    }
    c.spec
        .get("request")
        .map(|r| r.to_string().into_bytes())
        .unwrap_or_default()
}

fn upstream_body(c: &Case) -> Vec<u8> {
    let up = &c.spec["upstream"];
    if let Some(f) = up.get("bodyFile").and_then(Value::as_str) {
        let mut b = read(&c.dir, f);
        if let Some(n) = up.get("truncateAt").and_then(Value::as_u64) {
            b.truncate(n as usize);
        }
        return b;
    }
    match up.get("body") {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v) => v.to_string().into_bytes(),
        None => Vec::new(),
    }
}

fn run(c: &Case, split: &[usize]) -> Outcome {
    let path = c.spec["path"].as_str().unwrap();
    let body = request_body(c);
    let mut ex = if c.spec.get("method").and_then(Value::as_str) == Some("GET") {
        Exchange::get(path)
    } else {
        Exchange::post_json(path, std::str::from_utf8(&body).unwrap())
    };
    for (k, v) in c
        .spec
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        ex = ex.header(k, v.as_str().unwrap());
    }
    if let Some(up) = c.spec.get("upstream") {
        let full = upstream_body(c);
        let mut chunks = Vec::new();
        let mut at = 0;
        for &s in split {
            if s > at && s < full.len() {
                chunks.push(full[at..s].to_vec());
                at = s;
            }
        }
        chunks.push(full[at..].to_vec());
        let ct = up
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/json");
        ex = ex.reply(UpstreamReply {
            status: up.get("status").and_then(Value::as_u64).unwrap_or(200) as u16,
            headers: vec![
                ("content-type".into(), ct.as_bytes().to_vec()),
                ("content-length".into(), full.len().to_string().into_bytes()),
            ],
            chunks,
        });
    }
    ex.run::<Proxy>(&c.config)
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

fn check_local(c: &Case, out: &Outcome, expect: &Value) {
    let n = &c.name;
    let reply = out
        .local_response
        .as_ref()
        .unwrap_or_else(|| panic!("{n}: expected a local reply"));
    assert_eq!(
        u64::from(reply.status),
        expect["localStatus"].as_u64().unwrap(),
        "{n}: {}",
        reply.body_text()
    );
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    if let Some(want) = expect.get("localJson") {
        assert_eq!(&json, want, "{n}");
        return;
    }
    let err = if c.spec["path"].as_str().unwrap().ends_with("/v1/messages") {
        assert_eq!(json["type"], "error", "{n}: Anthropic error shape");
        &json["error"]
    } else {
        &json["error"]
    };
    let msg = err["message"].as_str().unwrap();
    let want = expect["errorContains"].as_str().unwrap();
    assert!(msg.contains(want), "{n}: {msg:?} lacks {want:?}");
    assert!(
        out.upstream_headers.is_none(),
        "{n}: must not reach the upstream"
    );
}

fn check_upstream(c: &Case, out: &Outcome, expect: &Value) {
    let n = &c.name;
    assert!(
        out.local_response.is_none(),
        "{n}: unexpected reply {:?}",
        out.local_response
    );
    if let Some(p) = expect.get("upstreamPath") {
        assert_eq!(
            out.upstream_header(":path").as_deref(),
            p.as_str(),
            "{n}: path"
        );
    }
    for (k, v) in expect
        .get("upstreamHeaders")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        assert_eq!(
            out.upstream_header(k).as_deref(),
            v.as_str(),
            "{n}: header {k}"
        );
    }
    for k in expect
        .get("upstreamHeadersAbsent")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let k = k.as_str().unwrap();
        assert_eq!(out.upstream_header(k), None, "{n}: header {k} must be gone");
    }
    if let Some(want) = expect.get("upstreamJson") {
        assert_eq!(&out.upstream_json(), want, "{n}: upstream body");
    }
    if let Some(f) = expect.get("upstreamJsonFile").and_then(Value::as_str) {
        if std::env::var_os("AIGW_UPDATE_GOLDEN").is_some() {
            let pretty = serde_json::to_string_pretty(&out.upstream_json()).unwrap() + "\n";
            std::fs::write(resolve(&c.dir, f), pretty).unwrap();
        }
        let want: Value = serde_json::from_slice(&read(&c.dir, f)).unwrap();
        assert_eq!(out.upstream_json(), want, "{n}: upstream body");
    }
    if let Some(patched) = expect.get("upstreamModelOnly").and_then(Value::as_str) {
        let original = String::from_utf8(request_body(c)).unwrap();
        let got = String::from_utf8(out.upstream_body.clone()).unwrap();
        let mut want: Value = serde_json::from_str(&original).unwrap();
        want["model"] = Value::String(patched.into());
        assert_eq!(out.upstream_json(), want, "{n}: only model may change");
        if original.contains(&format!("\"model\":\"{patched}\"")) || !original.contains("\"model\"")
        {
            assert_eq!(got, original, "{n}: bytes untouched");
        }
    }
}

fn check_client(c: &Case, out: &Outcome, expect: &Value) {
    let n = &c.name;
    // Headers the plugin held (Pause) may change until the body is complete: read the final map.
    let final_headers = out.host.state.borrow().response_headers.clone();
    let status = header(&final_headers, ":status").map(|s| String::from_utf8_lossy(s).into_owned());
    let want_status = expect
        .get("status")
        .and_then(Value::as_u64)
        .unwrap_or(200)
        .to_string();
    assert_eq!(status.as_deref(), Some(want_status.as_str()), "{n}: status");
    if let Some(ct) = expect.get("contentType").and_then(Value::as_str) {
        assert_eq!(
            header(&final_headers, "content-type"),
            Some(ct.as_bytes()),
            "{n}"
        );
    }
    if let Some(want) = expect.get("clientJson") {
        let got: Value = serde_json::from_slice(&out.response_body).unwrap_or_else(|e| {
            panic!(
                "{n}: client body not JSON ({e}): {}",
                String::from_utf8_lossy(&out.response_body)
            )
        });
        assert_eq!(&got, want, "{n}: client body");
    }
    if let Some(f) = expect.get("clientFile").and_then(Value::as_str) {
        let path = resolve(&c.dir, f);
        if std::env::var_os("AIGW_UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &out.response_body).unwrap();
        }
        let want = read(&c.dir, f);
        assert_eq!(
            String::from_utf8_lossy(&out.response_body),
            String::from_utf8_lossy(&want),
            "{n}: client body differs from {f}"
        );
    }
    if expect.get("clientUntouched") == Some(&Value::Bool(true)) {
        assert_eq!(
            out.response_body,
            upstream_body(c),
            "{n}: response must pass untouched"
        );
    }
}

fn check(c: &Case, out: &Outcome) {
    assert_eq!(out.stalled, None, "{}: stalled", c.name);
    let expect = &c.spec["expect"];
    if expect.get("localStatus").is_some() {
        check_local(c, out, expect);
        return;
    }
    check_upstream(c, out, expect);
    check_client(c, out, expect);
}

#[test]
fn every_scenario_gives_the_expected_upstream_request_and_client_response() {
    for c in cases() {
        check(&c, &run(&c, &[]));
    }
}

#[test]
fn every_upstream_body_split_at_any_byte_gives_the_same_client_bytes() {
    for c in cases() {
        if c.spec.get("upstream").is_none() {
            continue;
        }
        let whole = run(&c, &[]);
        let len = upstream_body(&c).len();
        for at in 1..len {
            let out = run(&c, &[at]);
            assert_eq!(
                out.response_body, whole.response_body,
                "{}: split at {at}",
                c.name
            );
        }
        let bytes: Vec<usize> = (1..len).collect();
        let out = run(&c, &bytes);
        assert_eq!(
            out.response_body, whole.response_body,
            "{}: one byte at a time",
            c.name
        );
    }
}
