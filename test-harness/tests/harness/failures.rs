//! Faults with Envoy's rules: per-call time and per-VM memory limits, `failure_policy`
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.
//! (FAIL_CLOSED, FAIL_OPEN, FAIL_RELOAD with its backoff) and header values with CR, LF or NUL.

use crate::common::*;
use aigw_harness::{
    header_value, Admission, Chain, Env, FailurePolicy, HarnessError, Limit, Plugin, PluginSpec,
    ReloadStats, Request, UpstreamRequest, UpstreamResponse,
};
use std::time::{Duration, Instant};

fn ok_upstream(_: &UpstreamRequest) -> UpstreamResponse {
    UpstreamResponse::json(200, "{\"ok\":true}")
}

fn panicking(p: FailurePolicy) -> PluginSpec {
    PluginSpec::new(guest()).failure_policy(p)
}

fn trap_request() -> Request {
    Request::get("/").header("x-guest-op", "panic")
}

// ---- limits ----

#[test]
fn a_runaway_loop_hits_the_time_limit_instead_of_hanging() {
    let env = Env::new();
    let spec = PluginSpec::new(guest()).call_time_limit(Duration::from_millis(200));
    let mut p = Plugin::load(&env, spec).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let started = Instant::now();
    let err = vm.request_headers(s, req("spin"), true).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        err.limit(),
        Some(Limit::Time {
            budget: Duration::from_millis(200)
        }),
        "{err}"
    );
    assert!(err.is_trap());
    assert!(err.to_string().contains("time limit"), "{err}");
    assert!(
        err.to_string().contains("proxy_on_request_headers"),
        "{err}"
    );
    assert!(vm.is_failed());
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let env = Env::new();
    let cap = 32 << 20;
    let spec = PluginSpec::new(guest()).memory_limit(cap);
    let mut p = Plugin::load(&env, spec).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("hog"), true).unwrap_err();
    match err.limit() {
        Some(Limit::Memory { cap: c, requested }) => {
            assert_eq!(c, cap as u64);
            assert!(requested > c);
        }
        other => panic!("expected the memory limit, got {other:?}: {err}"),
    }
    assert!(err.to_string().contains("memory limit"), "{err}");
}

#[test]
fn the_default_limits_are_generous_and_ordinary_calls_stay_within_them() {
    let spec = PluginSpec::new(guest());
    assert_eq!(spec.call_time_limit, Duration::from_secs(10));
    assert_eq!(spec.memory_limit, 1 << 30);
    assert_eq!(spec.failure_policy, FailurePolicy::FailClosed);
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let out = chain
        .run(
            &Request::post_json("/", "{}").header("x-guest-op", "log"),
            &mut ok_upstream,
        )
        .unwrap();
    assert_eq!(out.status, 200);
}

// ---- failure_policy ----

#[test]
fn fail_closed_answers_503_to_every_later_stream() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(panicking(FailurePolicy::FailClosed))
        .unwrap();
    let err = chain.run(&trap_request(), &mut ok_upstream).unwrap_err();
    assert!(err.is_trap(), "{err}");
    for _ in 0..2 {
        let mut reached = false;
        let out = chain
            .run(&Request::get("/"), &mut |_: &UpstreamRequest| {
                reached = true;
                UpstreamResponse::json(200, "{}")
            })
            .unwrap();
        assert_eq!(out.status, 503);
        assert!(!reached && out.upstream.is_none());
        let (filter, reply) = out.local_reply.unwrap();
        assert_eq!((filter, reply.details.as_str()), (0, "wasm_fail_stream"));
    }
    assert_eq!(
        chain.plugin(0).unwrap().admit(0).unwrap(),
        Admission::FailClosed
    );
}

#[test]
fn fail_open_skips_the_filter_so_what_it_blocked_now_reaches_the_upstream() {
    // The filter denies every request (403) ...
    let env = Env::new();
    let spec = panicking(FailurePolicy::FailOpen).config("ops=local");
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let blocked = chain
        .run(
            &Request::post_json("/admin", "{\"drop\":\"tables\"}"),
            &mut ok_upstream,
        )
        .unwrap();
    assert_eq!(blocked.status, 403);
    assert!(blocked.upstream.is_none());
    // ... until a client finds a request that makes it trap.
    assert!(chain
        .run(&trap_request(), &mut ok_upstream)
        .unwrap_err()
        .is_trap());
    // From then on the filter is left out: the same request passes through unmodified.
    let request = Request::post_json("/admin", "{\"drop\":\"tables\"}").header("x-secret", "1");
    let out = chain.run(&request, &mut ok_upstream).unwrap();
    assert_eq!(out.status, 200);
    let up = out.upstream.unwrap();
    assert_eq!(up.headers, request.headers);
    assert_eq!(up.body, request.body);
    assert!(out.local_reply.is_none());
}

#[test]
fn absorbed_traps_give_the_stream_in_flight_what_envoy_gives_it() {
    // Fail closed: the trapping stream itself gets the 503.
    let env = Env::new();
    let mut closed = Chain::new(&env)
        .with(panicking(FailurePolicy::FailClosed).config("ops=panic"))
        .unwrap()
        .absorb_traps(true);
    let out = closed.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!(out.status, 503);
    assert_eq!(out.traps.len(), 1);
    assert!(
        out.traps[0].1.contains("guest panic on purpose"),
        "{:?}",
        out.traps
    );

    // Fail open: the trapping stream goes on as if the callback had continued.
    let mut open = Chain::new(&env)
        .with(panicking(FailurePolicy::FailOpen).config("ops=panic"))
        .unwrap()
        .with(PluginSpec::new(guest()).config("ops=headers"))
        .unwrap()
        .absorb_traps(true);
    let out = open
        .run(&Request::get("/").header("x-mark", "m"), &mut ok_upstream)
        .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.traps.len(), 1);
    let up = out.upstream.unwrap();
    assert_eq!(header_value(&up.headers, "x-mark").as_deref(), Some("m"));
    // The second (healthy) filter still ran.
    assert_eq!(
        header_value(&up.headers, "x-guest-set").as_deref(),
        Some("1")
    );
}

#[test]
fn fail_reload_builds_a_fresh_vm_once_the_backoff_has_passed() {
    let env = Env::new();
    let spec = panicking(FailurePolicy::FailReload).reload_backoff(Duration::from_secs(1));
    let mut chain = Chain::new(&env).with(spec).unwrap();
    assert!(chain
        .run(&trap_request(), &mut ok_upstream)
        .unwrap_err()
        .is_trap());
    // The VM was loaded less than the backoff (>= 1 s) ago: fail closed, counted as a backoff.
    let out = chain.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!(out.status, 503);
    assert_eq!(
        chain.plugin(0).unwrap().reload_stats(),
        ReloadStats {
            backoff: 1,
            ..ReloadStats::default()
        }
    );
    // The jittered interval is below 1.5 s: after that a new VM serves the stream.
    chain.advance(Duration::from_millis(1500)).unwrap();
    let out = chain.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!(out.status, 200);
    let plugin = chain.plugin(0).unwrap();
    assert_eq!(plugin.reload_stats().success, 1);
    let vm = plugin.worker(0);
    assert!(!vm.is_failed());
    // A fresh VM: its own logs hold one full start-up sequence and nothing of the old VM.
    let count = |needle: &str| {
        vm.logs()
            .iter()
            .filter(|l| l.message.contains(needle))
            .count()
    };
    assert_eq!(
        (count("vm_start"), count("configured:")),
        (1, 1),
        "{:?}",
        vm.logs()
    );
    assert_eq!(count("panic"), 0);
}

#[test]
fn the_reload_backoff_counts_from_the_last_load_not_from_the_trap() {
    let env = Env::new();
    let spec = panicking(FailurePolicy::FailReload).reload_backoff(Duration::from_secs(1));
    let mut chain = Chain::new(&env).with(spec).unwrap();
    // Envoy compares `now - last_load`: a VM that ran for 2 s before trapping reloads at once.
    chain.advance(Duration::from_secs(2)).unwrap();
    assert!(chain
        .run(&trap_request(), &mut ok_upstream)
        .unwrap_err()
        .is_trap());
    let out = chain.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!(out.status, 200);
    // ... and a trap right after that reload waits for the backoff again.
    assert!(chain
        .run(&trap_request(), &mut ok_upstream)
        .unwrap_err()
        .is_trap());
    let out = chain.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!(out.status, 503);
    assert_eq!(
        chain.plugin(0).unwrap().reload_stats(),
        ReloadStats {
            success: 1,
            failure: 0,
            backoff: 1
        }
    );
}

// ---- header values with CR, LF or NUL ----

#[test]
fn header_values_with_crlf_or_nul_are_accepted_with_ok_and_recorded() {
    let env = Env::new();
    let mut p = Plugin::load(&env, PluginSpec::new(guest())).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let step = vm.request_headers(s, req("bad-header"), true).unwrap();
    // Envoy returns OK and keeps the value verbatim (release builds).
    for f in [
        "proxy_replace_header_map_value",
        "proxy_add_header_map_value",
    ] {
        assert!(
            vm.trace().iter().any(|t| t.function == f && t.status == 0),
            "{f}"
        );
    }
    let forwarded = step.headers().unwrap();
    assert_eq!(
        header_value(forwarded, "x-bad").as_deref(),
        Some("a\r\nx-injected: 1")
    );
    let writes = vm.invalid_header_writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0].function, "proxy_replace_header_map_value");
    assert_eq!(writes[1].value, b"a\0b".to_vec());
}

#[test]
fn local_reply_headers_with_crlf_are_recorded_too() {
    let env = Env::new();
    let mut p = Plugin::load(&env, PluginSpec::new(guest())).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let step = vm.request_headers(s, req("bad-local"), true).unwrap();
    assert_eq!(step.local_reply.unwrap().status, 400);
    assert_eq!(
        vm.invalid_header_writes()[0].function,
        "proxy_send_local_response"
    );
}

#[test]
fn strict_header_values_trap_like_an_envoy_debug_build() {
    let env = Env::new();
    let spec = PluginSpec::new(guest()).strict_header_values(true);
    let mut p = Plugin::load(&env, spec).unwrap();
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let err = vm.request_headers(s, req("bad-header"), true).unwrap_err();
    assert!(matches!(err, HarnessError::Trap(_)), "{err}");
    assert!(err.to_string().contains("invalid header"), "{err}");
}

#[test]
fn an_absorbed_trap_after_the_response_headers_went_out_resets_the_stream() {
    let env = Env::new();
    let spec = PluginSpec::new(guest()).config("ops=late-response-edit");
    let mut chain = Chain::new(&env).with(spec).unwrap().absorb_traps(true);
    let out = chain
        .run(&Request::get("/"), &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, "{}")
        })
        .unwrap();
    assert_eq!(out.status, 200);
    assert!(out.reset, "{out:?}");
    assert_eq!(out.traps.len(), 1);
    assert!(
        out.traps[0].1.contains("unexpected status: 2"),
        "{:?}",
        out.traps
    );
    // The next stream is failed closed before any header left.
    let out = chain.run(&Request::get("/"), &mut ok_upstream).unwrap();
    assert_eq!((out.status, out.reset), (503, false));
}
