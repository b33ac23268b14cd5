//! Envoy phase rules: late header edits, body writes, buffering limits, local replies, resets and
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.
//! callouts delivered after the callback returns.

use crate::common::*;
use aigw_harness::{Action, CalloutOutcome, Env, Event, Plugin, PluginSpec, Profile, Status};

fn stream(p: &mut Plugin) -> aigw_harness::StreamId {
    p.worker(0).create_stream().unwrap()
}

#[test]
fn a_request_header_edit_after_headers_continued_traps_with_unexpected_status_2() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    assert_eq!(
        vm.request_headers(s, req("late-header-edit"), false)
            .unwrap()
            .action,
        Some(Action::Continue)
    );
    let err = vm.request_body(s, b"{}", true).unwrap_err();
    assert_eq!(
        err.panic_message()
            .map(|m| m.contains("unexpected status: 2")),
        Some(true),
        "{err}"
    );
    assert!(vm
        .trace()
        .iter()
        .any(|t| t.function == "proxy_replace_header_map_value" && t.status == 2));
}

#[test]
fn a_response_header_edit_from_the_body_callback_traps() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("late-response-edit"), true)
        .unwrap();
    vm.response_headers(s, aigw_harness::headers(&[(":status", "200")]), false)
        .unwrap();
    let err = vm.response_body(s, b"x", true).unwrap_err();
    assert!(err.to_string().contains("unexpected status: 2"), "{err}");
}

#[test]
fn pausing_the_body_buffers_it_and_the_guest_rewrites_it_at_end_of_stream() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("buffer-body"), false).unwrap();
    let first = vm.request_body(s, b"hello ", false).unwrap();
    assert_eq!(first.action, Some(Action::Pause));
    assert!(first.forwarded.is_empty());
    let last = vm.request_body(s, b"world", true).unwrap();
    assert_eq!(
        last.forwarded,
        vec![Event::Data(b"HELLO WORLD!".to_vec(), true)]
    );
    assert!(logged(&p, "request body size=6 eos=false"));
    assert!(logged(&p, "request body size=11 eos=true"));
}

#[test]
fn a_body_write_in_the_middle_of_the_buffer_is_bad_argument_and_traps() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("bad-body-write"), false).unwrap();
    let err = vm.request_body(s, b"abc", true).unwrap_err();
    assert!(err.to_string().contains("unexpected status: 2"), "{err}");
    assert!(vm
        .trace()
        .iter()
        .any(|t| t.function == "proxy_set_buffer_bytes" && t.status == Status::BadArgument.code()));
}

#[test]
fn a_buffered_request_body_over_the_limit_gets_413() {
    let env = Env::new();
    let spec = PluginSpec::new(guest()).buffer_limit(10);
    let mut p = Plugin::load(&env, spec).unwrap();
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("buffer-body"), false).unwrap();
    assert!(vm
        .request_body(s, b"123456", false)
        .unwrap()
        .local_reply
        .is_none());
    let step = vm.request_body(s, b"7890ab", false).unwrap();
    let reply = step.local_reply.unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (413, "request_payload_too_large")
    );
    assert!(vm
        .request_body(s, b"more", true)
        .unwrap()
        .forwarded
        .is_empty());
}

#[test]
fn a_buffered_response_body_over_the_limit_gets_500() {
    let env = Env::new();
    let mut p = Plugin::load(&env, PluginSpec::new(guest()).buffer_limit(4)).unwrap();
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("buffer-response"), true).unwrap();
    vm.response_headers(s, aigw_harness::headers(&[(":status", "200")]), false)
        .unwrap();
    vm.response_body(s, b"abc", false).unwrap();
    let reply = vm
        .response_body(s, b"def", true)
        .unwrap()
        .local_reply
        .unwrap();
    assert_eq!(reply.status, 500);
}

#[test]
fn a_local_reply_forces_stop_even_when_the_guest_returns_continue() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    let step = vm.request_headers(s, req("local"), true).unwrap();
    assert_eq!(step.action, Some(Action::Continue));
    assert!(step.forwarded.is_empty());
    let reply = step.local_reply.unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"denied by guest");
    assert_eq!(
        aigw_harness::header_value(&reply.headers, "x-guest-denied").as_deref(),
        Some("1")
    );
}

#[test]
fn close_stream_resets_the_stream() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p.worker(0).request_headers(s, req("close"), true).unwrap();
    assert!(step.reset);
    assert!(step.forwarded.is_empty());
}

#[test]
fn a_callout_response_arrives_after_the_headers_callback_returned_and_resumes_the_request() {
    let env = Env::new();
    env.on_callout(|r: &aigw_harness::CalloutRequest| {
        assert_eq!(r.header(":path").as_deref(), Some("/check"));
        CalloutOutcome::ok(200, "text/plain", r.body.clone())
    });
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p
        .worker(0)
        .request_headers(s, with(req("call"), "x-call-body", "ping"), true)
        .unwrap();
    assert_eq!(step.action, Some(Action::Pause));
    let out = step.headers().expect("resumed by the callout callback");
    assert_eq!(
        aigw_harness::header_value(out, "x-call-status").as_deref(),
        Some("200")
    );
    assert!(log_pos(&p, "request headers returning Pause") < log_pos(&p, "call response token=4"));
    assert!(logged(&p, "call status=200 body=Some(\"ping\")"));
    let calls = env.callouts();
    assert_eq!(
        (calls.len(), calls[0].token, calls[0].cluster.as_str()),
        (1, 4, "upstream-svc")
    );
}

#[test]
fn a_callout_from_the_last_body_chunk_releases_the_buffered_body_when_it_resumes() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::ok(200, "text/plain", "ok"));
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let vm = p.worker(0);
    vm.request_headers(s, req("buffer-body,call-at-eos"), false)
        .unwrap();
    assert_eq!(
        vm.request_body(s, b"ab", false).unwrap().action,
        Some(Action::Pause)
    );
    let step = vm.request_body(s, b"c", true).unwrap();
    assert_eq!(step.action, Some(Action::Pause));
    assert_eq!(step.forwarded, vec![Event::Data(b"ABC!".to_vec(), true)]);
}

#[test]
fn a_timed_out_callout_is_delivered_as_a_synthesised_504() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::Timeout);
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    p.worker(0).request_headers(s, req("call"), true).unwrap();
    assert!(logged(
        &p,
        "call status=504 body=Some(\"upstream request timeout\")"
    ));
}

#[test]
fn a_reset_callout_has_no_headers_and_get_status_reports_11_reset() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::Reset);
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p.worker(0).request_headers(s, req("call"), true).unwrap();
    assert!(logged(&p, "call response token=4 headers=0 body=0"));
    assert!(logged(&p, "call failed: status=11 message=Some(\"reset\")"));
    assert!(step.headers().is_some());
}

#[test]
fn a_callout_to_an_undeclared_cluster_is_bad_argument() {
    let env = Env::new();
    env.declare_cluster("known");
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p
        .worker(0)
        .request_headers(s, with(req("call"), "x-call-cluster", "unknown"), true)
        .unwrap();
    assert!(logged(&p, "dispatched: Err(BadArgument)"));
    assert_eq!(step.action, Some(Action::Continue));
}

#[test]
fn a_callout_can_answer_with_a_local_reply_from_its_callback() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::ok(403, "text/plain", "no"));
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p.worker(0).request_headers(s, req("call"), true).unwrap();
    assert_eq!(
        step.local_reply.map(|r| r.body),
        Some(b"callout denied".to_vec())
    );
    assert!(step.forwarded.is_empty());
}

#[test]
fn grpc_calls_are_answered_as_unavailable_after_the_callback() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let s = stream(&mut p);
    let step = p.worker(0).request_headers(s, req("grpc"), true).unwrap();
    assert!(logged(&p, "grpc call: Ok(5)"), "{:#?}", p.logs());
    assert!(logged(&p, "grpc stream: Ok(10)"));
    assert!(logged(
        &p,
        "grpc response token=5 status=14 size=0 get_status=(14,Some(\"unavailable\"))"
    ));
    assert!(logged(&p, "grpc stream closed token=10 status=14"));
    assert!(step.headers().is_some());
}

#[test]
fn a_callout_dispatched_from_on_configure_is_delivered_to_the_root_context() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::ok(200, "text/plain", "cfg"));
    let p = load(&env, "configure-call", Profile::Envoy);
    assert!(logged(&p, "configure dispatched: Ok(4)"));
    assert!(
        logged(&p, "root got call response token=4 headers=2 body=3"),
        "{:#?}",
        p.logs()
    );
}
