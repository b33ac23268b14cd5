//! Replays every scenario in `testdata/cases/` through the plugin on the mock host, delivering the
//! request body whole and in small chunks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_prompt_decorator::PromptDecorator;
use aigw_shared::mock::{Exchange, Outcome};
use serde_json::Value;

fn cases() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/cases");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 15,
        "expected the scenario files, found {}",
        out.len()
    );
    out
}

fn request_body(case: &Value) -> String {
    match case.get("requestText") {
        Some(Value::String(s)) => s.clone(),
        _ => serde_json::to_string(&case["request"]).unwrap(),
    }
}

fn run(case: &Value, chunk: usize) -> (Outcome, String) {
    let body = request_body(case);
    let mut ex = Exchange::post_json(case["path"].as_str().unwrap(), &body).chunked(chunk);
    if let Some(headers) = case.get("headers").and_then(Value::as_object) {
        for (k, v) in headers {
            ex = ex.header(k, v.as_str().unwrap());
        }
    }
    let config = serde_json::to_string(&case["config"]).unwrap();
    (ex.run::<PromptDecorator>(&config), body)
}

fn check(name: &str, case: &Value, out: &Outcome, body: &str) {
    assert_eq!(out.stalled, None, "{name}: stalled");
    if let Some(status) = case.get("expectStatus") {
        let reply = out
            .local_response
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: expected a local reply"));
        assert_eq!(u64::from(reply.status), status.as_u64().unwrap(), "{name}");
        let json: Value = serde_json::from_slice(&reply.body).unwrap();
        let error = match case["expectProtocol"].as_str() {
            Some("anthropic") => {
                assert_eq!(json["type"], "error", "{name}: anthropic shape");
                &json["error"]
            }
            _ => &json["error"],
        };
        if let Some(t) = case.get("expectErrorType") {
            assert_eq!(&error["type"], t, "{name}");
        }
        let message = error["message"].as_str().unwrap();
        let wanted = case["expectErrorContains"].as_str().unwrap();
        assert!(
            message.contains(wanted),
            "{name}: {message:?} lacks {wanted:?}"
        );
        assert!(
            out.upstream_headers.is_none(),
            "{name}: request must not reach the upstream"
        );
        return;
    }
    assert!(
        out.local_response.is_none(),
        "{name}: unexpected reply {:?}",
        out.local_response
    );
    let got = String::from_utf8(out.upstream_body.clone()).unwrap();
    if case.get("expectUntouched") == Some(&Value::Bool(true)) {
        assert_eq!(got, body, "{name}: body must be untouched");
        return;
    }
    let want = &case["expectUpstream"];
    assert_eq!(&out.upstream_json(), want, "{name}: upstream body\n{got}");
    for piece in case
        .get("expectUpstreamContains")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let piece = piece.as_str().unwrap();
        assert!(got.contains(piece), "{name}: {got} lacks verbatim {piece}");
    }
    assert_eq!(
        out.upstream_header("content-length"),
        None,
        "{name}: stale content-length left"
    );
}

#[test]
fn every_scenario_gives_the_expected_upstream_body_or_error() {
    for (name, case) in cases() {
        let (out, body) = run(&case, 0);
        check(&name, &case, &out, &body);
    }
}

#[test]
fn every_scenario_gives_the_same_result_when_the_body_arrives_in_small_chunks() {
    for (name, case) in cases() {
        for chunk in [1, 3, 16] {
            let (out, body) = run(&case, chunk);
            check(&format!("{name} (chunks of {chunk})"), &case, &out, &body);
        }
    }
}
