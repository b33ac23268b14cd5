//! Host profiles: APISIX's restrictions and Higress' extra imports; refusing modules whose imports
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.
//! the host does not offer.

use crate::common::*;
use aigw_harness::{Env, HarnessError, MetricValue, Plugin, PluginSpec, Profile, Status};

fn apisix() -> (Env, Plugin) {
    let env = Env::new();
    let p = load(&env, "", Profile::Apisix);
    (env, p)
}

#[test]
fn apisix_never_calls_on_vm_start_and_gives_header_callbacks_zero_headers_and_eos() {
    let (_env, mut p) = apisix();
    assert!(!logged(&p, "vm_start"));
    assert!(logged(&p, "configured: "));
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req(""), false).unwrap();
    assert!(logged(&p, "request headers n=0 eos=true"));
}

#[test]
fn apisix_skips_the_request_body_callback_unless_the_plugin_asked_for_it() {
    let (_env, mut p) = apisix();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req(""), false).unwrap();
    let step = vm.request_body(s, b"abc", true).unwrap();
    assert_eq!(step.body(), b"abc");
    assert!(!logged(&p, "request body size"));
}

#[test]
fn apisix_delivers_the_whole_request_body_once_when_wasm_process_req_body_is_set() {
    let (_env, mut p) = apisix();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("apisix-body"), false).unwrap();
    assert!(vm
        .request_body(s, b"hello ", false)
        .unwrap()
        .forwarded
        .is_empty());
    let step = vm.request_body(s, b"world", true).unwrap();
    assert_eq!(step.body(), b"hello world");
    let calls = p
        .logs()
        .iter()
        .filter(|l| l.message.starts_with("request body size"))
        .count();
    assert_eq!(calls, 1);
    assert!(logged(&p, "request body size=11 eos=true"));
}

#[test]
fn apisix_rejects_set_buffer_bytes_with_12_which_the_sdk_cannot_decode() {
    let (_env, mut p) = apisix();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("apisix-body,set-buffer"), false)
        .unwrap();
    let err = vm.request_body(s, b"abc", true).unwrap_err();
    assert!(err.to_string().contains("unexpected status: 12"), "{err}");
    let bad = vm.undecodable_statuses();
    assert_eq!(bad.len(), 1);
    assert_eq!(
        (bad[0].function, bad[0].status),
        ("proxy_set_buffer_bytes", Status::Unimplemented.code())
    );
}

#[test]
fn apisix_has_no_clock() {
    let (_env, mut p) = apisix();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("time"), true).unwrap_err();
    assert!(err.to_string().contains("unexpected status: 12"), "{err}");
}

#[test]
fn apisix_properties_are_nginx_variables_and_envoy_paths_are_not_found() {
    let (_env, mut p) = apisix();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("props"), true).unwrap();
    assert!(
        logged(&p, "props path=None root=Some(\"aigw-test-guest\")"),
        "{:#?}",
        p.logs()
    );
}

#[test]
fn apisix_refuses_a_module_importing_get_log_level() {
    let spec = PluginSpec::new(fixture("log_level_and_get_metric.wat")).profile(Profile::Apisix);
    let err = Plugin::load(&Env::new(), spec).unwrap_err();
    assert!(matches!(err, HarnessError::Load { .. }));
    assert!(err.to_string().contains("env.proxy_get_log_level"), "{err}");
    assert!(err.to_string().contains("APISIX"), "{err}");
}

#[test]
fn envoy_answers_get_log_level_and_get_metric() {
    let env = Env::new();
    let spec = PluginSpec::new(fixture("log_level_and_get_metric.wat")).log_level(2);
    let p = Plugin::load(&env, spec).unwrap();
    assert_eq!(env.metric("wat_counter"), Some(MetricValue::Counter(7)));
    drop(p);
}

#[test]
fn envoy_refuses_a_module_importing_higress_only_functions() {
    let spec = PluginSpec::new(fixture("higress_extras.wat"));
    let err = Plugin::load(&Env::new(), spec).unwrap_err().to_string();
    assert!(
        err.contains("env.proxy_redis_") && err.contains("Envoy"),
        "{err}"
    );
}

#[test]
fn higress_runs_redis_calls_through_test_code_and_records_the_upstream_override() {
    let env = Env::new();
    env.on_redis(|call| {
        assert_eq!(call.cluster, "redis-cluster");
        Ok(b"+PONG\r\n".to_vec())
    });
    let mut p = Plugin::load(
        &env,
        PluginSpec::new(fixture("higress_extras.wat")).profile(Profile::Higress),
    )
    .unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req(""), true).unwrap();
    assert_eq!(vm.upstream_override(s).as_deref(), Some("10.0.0.7:8000"));
    assert_eq!(env.redis_calls()[0].query, b"*1\r\n$4\r\nPING\r\n");
    assert!(logged(&p, "+PONG"), "{:#?}", p.logs());
}

#[test]
fn higress_offers_route_and_cluster_name_properties() {
    let env = Env::new();
    let spec = PluginSpec::new(guest())
        .profile(Profile::Higress)
        .route_name("r1");
    let mut p = Plugin::load(&env, spec).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("props"), true).unwrap();
    assert!(logged(&p, "props path=Some(\"/v1/chat/completions\")"));
}
