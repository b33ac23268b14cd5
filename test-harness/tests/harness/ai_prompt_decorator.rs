//! The built `ai_prompt_decorator.wasm` in the harness: every scenario file of the plugin under the
//! Envoy profile (body whole and in small chunks), Higress `_rules_` by route name, the APISIX
//! profile (no trap, requests pass through, the limitation is logged), bad config, metrics, workers.

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, LogLevel, MetricValue, Plugin, PluginSpec, Profile, Request,
    UpstreamRequest, UpstreamResponse,
};
use aigw_shared::scenario::{CheckOptions, Scenario};

use crate::common::observed;
use serde_json::Value;

const SIM_REPLY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"sim: ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

fn wasm() -> PathBuf {
    wasm_path("ai_prompt_decorator").unwrap_or_else(|e| panic!("{e}"))
}

fn cases() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/ai-prompt-decorator/testdata/cases");
    let out = Scenario::load_files(&dir);
    assert!(out.len() >= 15);
    out
}

fn request(case: &Scenario, chunk: usize) -> Request {
    let mut req = Request::post_json(case.path(), case.request_body()).chunk_size(chunk);
    for (k, v) in case.headers() {
        req.headers.retain(|(name, _)| *name != k);
        req.headers.push((k, v.into_bytes()));
    }
    req
}

fn run_case(profile: Profile, case: &Scenario, chunk: usize) -> Exchange {
    let env = Env::new();
    let spec = PluginSpec::new(wasm())
        .config(&case.config)
        .profile(profile);
    let mut chain = Chain::new(&env)
        .with(spec)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut upstream = |_: &UpstreamRequest| UpstreamResponse::json(200, SIM_REPLY);
    chain
        .run(&request(case, chunk), &mut upstream)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

fn upstream_body(out: &Exchange) -> String {
    out.upstream
        .as_ref()
        .map(|u| String::from_utf8_lossy(&u.body).into_owned())
        .unwrap_or_default()
}

fn check(case: &Scenario, out: &Exchange) {
    case.check(&observed(out), CheckOptions::default());
    if case.expect().get("localStatus").is_none() {
        assert_eq!(
            out.body_text(),
            SIM_REPLY,
            "{}: the response passes back untouched",
            case.name
        );
    } else {
        assert_eq!(
            out.header("content-type").as_deref(),
            Some("application/json"),
            "{}",
            case.name
        );
    }
}

#[test]
fn every_scenario_behaves_in_the_built_module_as_natively_under_envoy() {
    for case in cases() {
        for chunk in [usize::MAX, 5] {
            check(&case, &run_case(Profile::Envoy, &case, chunk));
        }
    }
}

#[test]
fn every_scenario_behaves_the_same_under_higress() {
    for case in cases() {
        check(&case, &run_case(Profile::Higress, &case, 64));
    }
}

#[test]
fn every_scenario_behaves_the_same_when_trailers_end_the_request() {
    for case in cases() {
        let env = Env::new();
        let spec = PluginSpec::new(wasm()).config(&case.config);
        let mut chain = Chain::new(&env).with(spec).unwrap();
        let req = request(&case, 7).trailers(vec![("x-checksum".into(), b"0".to_vec())]);
        let mut upstream = |_: &UpstreamRequest| UpstreamResponse::json(200, SIM_REPLY);
        let out = chain
            .run(&req, &mut upstream)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        check(&case, &out);
    }
}

/// Higress names the route `route_name`; stock Envoy only `xds.route_name` (Envoy 1.40 has no
/// plain `route_name`): a route rule picks its route under both.
#[test]
fn route_rules_pick_the_config_by_route_name_on_higress_and_envoy() {
    let env = Env::new();
    let config = r#"{"prepend":[{"role":"system","content":"global"}],
        "_rules_":[{"_match_route_":["support"],"prepend":[{"role":"system","content":"support desk"}]}]}"#;
    for profile in [Profile::Higress, Profile::Envoy] {
        let mut contents = Vec::new();
        for route in ["support", "other"] {
            let spec = PluginSpec::new(wasm())
                .config(config)
                .profile(profile)
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
        assert_eq!(contents, ["support desk", "global"], "{profile:?}");
    }
}

#[test]
fn under_apisix_the_module_does_not_trap_passes_requests_through_and_says_why() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "openai-prepend-append")
        .unwrap();
    let env = Env::new();
    let spec = PluginSpec::new(wasm())
        .config(&case.config)
        .profile(Profile::Apisix);
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let body = String::from_utf8(case.request_body()).unwrap();
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
