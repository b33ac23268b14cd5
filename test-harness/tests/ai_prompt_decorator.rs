//! The built `ai_prompt_decorator.wasm` in the harness: every scenario file of the plugin under the
//! Envoy profile (body whole and in small chunks), Higress `_rules_` by route name, the APISIX
//! profile (no trap, requests pass through, the limitation is logged), bad config, metrics, workers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, LogLevel, MetricValue, Plugin, PluginSpec, Profile, Request,
    UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

const SIM_REPLY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"sim: ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

fn wasm() -> PathBuf {
    wasm_path("ai_prompt_decorator").unwrap_or_else(|e| panic!("{e}"))
}

fn cases() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/ai-prompt-decorator/testdata/cases");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 15);
    out
}

fn body_of(case: &Value) -> String {
    match case.get("requestText") {
        Some(Value::String(s)) => s.clone(),
        _ => serde_json::to_string(&case["request"]).unwrap(),
    }
}

fn request(case: &Value, chunk: usize) -> Request {
    let mut req =
        Request::post_json(case["path"].as_str().unwrap(), body_of(case)).chunk_size(chunk);
    for (k, v) in case
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

fn run_case(profile: Profile, case: &Value, chunk: usize) -> (Exchange, Plugin) {
    let env = Env::new();
    let spec = PluginSpec::new(wasm())
        .config(serde_json::to_string(&case["config"]).unwrap())
        .profile(profile);
    let plugin = Plugin::load(&env, spec).unwrap_or_else(|e| panic!("{e}"));
    let mut chain = Chain::new(&env);
    chain.push(plugin);
    let mut upstream = |_: &UpstreamRequest| UpstreamResponse::json(200, SIM_REPLY);
    let out = chain
        .run(&request(case, chunk), &mut upstream)
        .unwrap_or_else(|e| panic!("{e}"));
    let plugin = Plugin::load(&env, PluginSpec::new(wasm()).profile(profile)).unwrap();
    (out, plugin)
}

fn upstream_body(out: &Exchange) -> String {
    out.upstream
        .as_ref()
        .map(|u| String::from_utf8_lossy(&u.body).into_owned())
        .unwrap_or_default()
}

fn check(name: &str, case: &Value, out: &Exchange, body: &str) {
    if let Some(status) = case.get("expectStatus") {
        assert_eq!(
            u64::from(out.status),
            status.as_u64().unwrap(),
            "{name}: {}",
            out.body_text()
        );
        assert!(
            out.upstream.is_none(),
            "{name}: must not reach the upstream"
        );
        let json: Value = serde_json::from_slice(&out.body).unwrap();
        let error = &json["error"];
        if case["expectProtocol"] == "anthropic" {
            assert_eq!(json["type"], "error", "{name}");
        }
        let wanted = case["expectErrorContains"].as_str().unwrap();
        assert!(
            error["message"].as_str().unwrap().contains(wanted),
            "{name}: {json}"
        );
        assert_eq!(
            out.header("content-type").as_deref(),
            Some("application/json"),
            "{name}"
        );
        return;
    }
    assert_eq!(out.status, 200, "{name}: {}", out.body_text());
    assert_eq!(
        out.body_text(),
        SIM_REPLY,
        "{name}: the response passes back untouched"
    );
    let got = upstream_body(out);
    if case.get("expectUntouched") == Some(&Value::Bool(true)) {
        assert_eq!(got, body, "{name}");
        return;
    }
    let json: Value = serde_json::from_str(&got).unwrap_or(Value::Null);
    assert_eq!(&json, &case["expectUpstream"], "{name}: {got}");
    for piece in case
        .get("expectUpstreamContains")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        assert!(
            got.contains(piece.as_str().unwrap()),
            "{name}: {got} lacks {piece}"
        );
    }
    let upstream = out.upstream.as_ref().unwrap();
    assert_eq!(
        upstream.header("content-length"),
        None,
        "{name}: stale content-length"
    );
}

#[test]
fn every_scenario_behaves_in_the_built_module_as_natively_under_envoy() {
    for (name, case) in cases() {
        for chunk in [usize::MAX, 5] {
            let (out, _) = run_case(Profile::Envoy, &case, chunk);
            check(
                &format!("{name} (chunk {chunk})"),
                &case,
                &out,
                &body_of(&case),
            );
        }
    }
}

#[test]
fn every_scenario_behaves_the_same_under_higress() {
    for (name, case) in cases() {
        let (out, _) = run_case(Profile::Higress, &case, 64);
        check(&name, &case, &out, &body_of(&case));
    }
}

#[test]
fn higress_rules_pick_the_config_by_route_name() {
    let env = Env::new();
    let config = r#"{"prepend":[{"role":"system","content":"global"}],
        "_rules_":[{"_match_route_":["support"],"prepend":[{"role":"system","content":"support desk"}]}]}"#;
    let mut contents = Vec::new();
    for route in ["support", "other"] {
        let spec = PluginSpec::new(wasm())
            .config(config)
            .profile(Profile::Higress)
            .route_name(route);
        let mut chain = Chain::new(&env).with(spec).unwrap();
        let req = Request::post_json("/v1/chat/completions", r#"{"model":"m","messages":[]}"#);
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::json(200, "{}")
            })
            .unwrap();
        let json: Value = serde_json::from_str(&upstream_body(&out)).unwrap();
        contents.push(json["messages"][0]["content"].as_str().unwrap().to_owned());
    }
    assert_eq!(contents, ["support desk", "global"]);
}

#[test]
fn under_apisix_the_module_does_not_trap_passes_requests_through_and_says_why() {
    let case = cases()
        .into_iter()
        .find(|(n, _)| n == "openai-prepend-append")
        .unwrap()
        .1;
    let env = Env::new();
    let spec = PluginSpec::new(wasm())
        .config(serde_json::to_string(&case["config"]).unwrap())
        .profile(Profile::Apisix);
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let body = body_of(&case);
    let out = chain
        .run(&request(&case, usize::MAX), &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, SIM_REPLY)
        })
        .unwrap_or_else(|e| panic!("must not trap under APISIX: {e}"));
    assert_eq!(out.status, 200);
    assert_eq!(
        upstream_body(&out),
        body,
        "APISIX cannot rewrite bodies: untouched"
    );
    let logs = chain.plugin(0).unwrap().logs();
    assert!(
        logs.iter()
            .any(|l| l.level >= LogLevel::Warn
                && l.message.contains("cannot rewrite request bodies")),
        "the limitation must be logged: {logs:?}"
    );
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_named() {
    let env = Env::new();
    let spec = PluginSpec::new(wasm()).config(r#"{"prepend":[{"role":"robot","content":"x"}]}"#);
    let err = Plugin::load(&env, spec).unwrap_err().to_string();
    assert!(err.contains("prepend[0].role"), "{err}");
}

#[test]
fn counters_count_decorated_rejected_and_passed_requests_across_workers() {
    let env = Env::new();
    let config = r#"{"prepend":[{"role":"system","content":"s"}],"maxBodyBytes":100,"onOversize":"passThrough"}"#;
    let mut chain = Chain::new(&env);
    chain.push(Plugin::load_workers(&env, PluginSpec::new(wasm()).config(config), 2).unwrap());
    let mut up = |_: &UpstreamRequest| UpstreamResponse::json(200, "{}");
    let ok = Request::post_json("/v1/chat/completions", r#"{"messages":[]}"#);
    chain.run(&ok, &mut up).unwrap();
    chain.run(&ok, &mut up).unwrap();
    chain
        .run(&Request::post_json("/v1/chat/completions", "{"), &mut up)
        .unwrap();
    let big = format!(r#"{{"messages":[],"pad":"{}"}}"#, "x".repeat(200));
    chain
        .run(&Request::post_json("/v1/chat/completions", big), &mut up)
        .unwrap();
    assert_eq!(
        env.metric("aigw.prompt_decorator.decorated"),
        Some(MetricValue::Counter(2))
    );
    assert_eq!(
        env.metric("aigw.prompt_decorator.rejected"),
        Some(MetricValue::Counter(1))
    );
    assert_eq!(
        env.metric("aigw.prompt_decorator.passed_through"),
        Some(MetricValue::Counter(1))
    );
}
