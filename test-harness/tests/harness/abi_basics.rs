//! Start-up, logging, configuration, header maps, properties, metrics and trap reporting.
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.

use crate::common::*;
use aigw_harness::{
    Action, Env, HarnessError, LogLevel, MetricValue, Plugin, PluginSpec, Profile, Status,
};

#[test]
fn start_up_runs_vm_start_and_configure_with_their_buffers() {
    let env = Env::new();
    let spec = PluginSpec::new(guest())
        .config("alpha=1")
        .vm_config("vm-cfg");
    let p = Plugin::load(&env, spec).unwrap();
    assert!(logged(&p, "vm_start vm_config=vm-cfg"));
    assert!(logged(&p, "configured: alpha=1"));
}

#[test]
fn configure_returning_false_is_an_error_carrying_the_guest_logs() {
    let err = Plugin::load(&Env::new(), PluginSpec::new(guest()).config("reject")).unwrap_err();
    assert!(matches!(err, HarnessError::ConfigRejected { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("rejecting configuration: reject flag set"),
        "{err}"
    );
}

#[test]
fn every_log_level_is_captured_with_its_level() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("log"), true).unwrap();
    for (level, text) in [
        (LogLevel::Trace, "trace line"),
        (LogLevel::Debug, "debug line"),
        (LogLevel::Info, "info line"),
        (LogLevel::Warn, "warn line"),
        (LogLevel::Error, "error line"),
    ] {
        assert!(
            vm.log_messages(level).iter().any(|m| m == text),
            "{level:?}"
        );
    }
}

#[test]
fn guest_time_is_the_virtual_clock() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    env.advance_clock(std::time::Duration::from_millis(1500));
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("time"), true).unwrap();
    let expected = aigw_harness::CLOCK_START_NS + 1_500_000_000;
    assert!(logged(&p, &format!("time={expected}")));
}

#[test]
fn request_header_edits_in_the_headers_callback_reach_the_next_filter() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let h = with(
        with(with(req("headers"), "x-remove-me", "1"), "x-replace", "old"),
        "x-empty",
        "",
    );
    let step = vm.request_headers(s, h, true).unwrap();
    assert_eq!(step.action, Some(Action::Continue));
    let out = step.headers().unwrap();
    let values = |n: &str| {
        out.iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(values("x-guest-set"), ["1"]);
    assert_eq!(values("x-guest-added"), ["a", "b"]);
    assert!(values("x-remove-me").is_empty());
    assert_eq!(values("x-replace"), ["new"]);
    assert!(logged(
        &p,
        "path=Some(\"/v1/chat/completions\") missing=None empty=Some(\"\")"
    ));
}

#[test]
fn set_header_map_pairs_replaces_the_whole_map() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let step = vm.request_headers(s, req("pairs"), true).unwrap();
    let out = step.headers().unwrap();
    assert_eq!(
        aigw_harness::header_value(out, "x-pairs").as_deref(),
        Some("yes")
    );
    assert_eq!(out.len(), req("pairs").len() + 1);
}

#[test]
fn properties_follow_envoy_paths_and_reject_dotted_segments() {
    let env = Env::new();
    let mut p = Plugin::load(&env, PluginSpec::new(guest()).root_id("my-root")).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("props"), true).unwrap();
    assert!(
        logged(&p, "props path=Some(\"/v1/chat/completions\") root=Some(\"my-root\") dotted=None mark=Some(\"yes\")"),
        "{:#?}",
        p.logs()
    );
}

#[test]
fn metrics_follow_envoy_semantics_and_are_queryable_by_name() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("metrics"), true).unwrap();
    assert_eq!(env.metric("guest_requests"), Some(MetricValue::Counter(3)));
    assert_eq!(env.metric("guest_active"), Some(MetricValue::Gauge(3)));
    assert_eq!(
        env.metric("guest_body_size"),
        Some(MetricValue::Histogram(vec![42]))
    );
    assert!(logged(&p, "histogram increment: Err(BadArgument)"));
    assert!(logged(&p, "unknown metric: Err(NotFound)"));
    assert!(env.metric_names().contains(&"guest_requests".to_string()));
}

#[test]
fn counter_increment_by_zero_is_bad_argument_and_the_guest_panic_is_reported() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("metric-zero"), true).unwrap_err();
    assert!(err.is_trap());
    assert!(err.to_string().contains("BadArgument"), "{err}");
    assert!(vm
        .trace()
        .iter()
        .any(|t| t.function == "proxy_increment_metric" && t.status == Status::BadArgument.code()));
    assert!(vm.is_failed());
    assert!(matches!(vm.create_stream(), Err(HarnessError::VmFailed(_))));
}

#[test]
fn a_guest_panic_is_an_error_whose_display_shows_the_panic_message() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("panic"), true).unwrap_err();
    assert!(err
        .panic_message()
        .unwrap()
        .contains("guest panic on purpose"));
    assert!(err.to_string().contains("guest panic on purpose"), "{err}");
    assert!(
        err.to_string().contains("proxy_on_request_headers"),
        "{err}"
    );
}

#[test]
fn effective_context_accepts_known_ids_and_rejects_unknown_ones() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("effective"), true).unwrap();
    assert!(logged(&p, "effective self: Ok(())"));
    assert!(logged(&p, "effective unknown: Err(BadArgument)"));
}

#[test]
fn foreign_functions_are_answered_by_test_code_or_not_found() {
    let env = Env::new();
    env.foreign_function("echo", |args| Ok([args, b"!"].concat()));
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("foreign"), true).unwrap();
    assert!(
        logged(&p, "foreign echo: Ok(Some([97, 98, 99, 33]))"),
        "{:#?}",
        p.logs()
    );
    assert!(logged(&p, "foreign missing: Err(NotFound)"));
}

#[test]
fn proxy_done_outside_a_pending_root_is_not_found_and_traps() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("done"), true).unwrap_err();
    assert!(err.to_string().contains("unexpected status: 1"), "{err}");
}

#[test]
fn a_deferred_root_done_completes_when_the_guest_calls_proxy_done_on_tick() {
    let env = Env::new();
    let mut p = load(&env, "defer-done;done-on-tick;tick=100", Profile::Envoy);
    assert!(!p.worker(0).shutdown().unwrap());
    assert!(!p.worker(0).root_done());
    p.advance(std::time::Duration::from_millis(100)).unwrap();
    assert!(p.worker(0).root_done());
}

#[test]
fn on_log_reads_request_headers_after_they_were_forwarded() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req(""), true).unwrap();
    vm.finish_stream(s).unwrap();
    assert!(logged(&p, "on_log path=/v1/chat/completions"));
    assert!(logged(&p, "stream 2 done"));
}

#[test]
fn a_missing_module_names_the_build_command() {
    let err = aigw_harness::wasm_path("no-such-plugin")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cargo build --release --target wasm32-wasip1 -p no-such-plugin"),
        "{err}"
    );
}
