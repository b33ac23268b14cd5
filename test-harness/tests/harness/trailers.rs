//! Request and response trailers: the trailers callbacks, maps 1 and 3, a buffered body seen from
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.
//! the trailers callback, Pause from trailers, and trailers through the chain runner.

use crate::common::*;
use aigw_harness::{
    headers, Action, CalloutOutcome, Chain, Env, Event, HarnessError, PluginSpec, Profile, Request,
    UpstreamRequest, UpstreamResponse,
};

fn spec(ops: &str) -> PluginSpec {
    PluginSpec::new(guest()).config(format!("ops={ops}"))
}

#[test]
fn request_trailers_reach_the_guest_and_its_edits_are_passed_on() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("trailers-edit"), false).unwrap();
    let data = vm.request_body(s, b"abc", false).unwrap();
    assert_eq!(data.forwarded, vec![Event::Data(b"abc".to_vec(), false)]);
    let step = vm
        .request_trailers(
            s,
            headers(&[("x-client-trailer", "t"), ("x-remove-trailer", "gone")]),
        )
        .unwrap();
    assert_eq!(step.action, Some(Action::Continue));
    assert_eq!(
        step.forwarded,
        vec![Event::Trailers(headers(&[
            ("x-client-trailer", "t"),
            ("x-guest-trailer", "1")
        ]))]
    );
    assert!(logged(&p, "request trailers n=2 x-client-trailer=t"));
}

#[test]
fn a_body_buffered_by_pause_is_readable_and_replaceable_in_the_trailers_callback() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("buffer-body,trailers-body"), false)
        .unwrap();
    // The body callbacks before trailers have end_of_stream false, so the guest keeps pausing.
    assert!(vm
        .request_body(s, b"hello ", false)
        .unwrap()
        .forwarded
        .is_empty());
    assert!(vm
        .request_body(s, b"world", false)
        .unwrap()
        .forwarded
        .is_empty());
    let step = vm
        .request_trailers(s, headers(&[("x-client-trailer", "t")]))
        .unwrap();
    assert_eq!(
        step.forwarded,
        vec![
            Event::Data(b"HELLO WORLD".to_vec(), false),
            Event::Trailers(headers(&[("x-client-trailer", "t")]))
        ]
    );
    assert!(logged(&p, "request body size=11 eos=false"));
    assert!(logged(&p, "trailers see buffered body \"hello world\""));
    assert!(!logged(&p, "eos=true"));
}

#[test]
fn pause_from_the_trailers_callback_holds_body_and_trailers_until_resume() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::ok(200, "text/plain", "ok"));
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);

    // Never resumed: nothing leaves.
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("buffer-body,pause-trailers"), false)
        .unwrap();
    vm.request_body(s, b"abc", false).unwrap();
    let held = vm.request_trailers(s, headers(&[("t", "1")])).unwrap();
    assert_eq!(held.action, Some(Action::Pause));
    assert!(held.forwarded.is_empty(), "{:?}", held.forwarded);
    assert!(vm.poll(s).unwrap().forwarded.is_empty());

    // Resumed by the callout response: the buffered body, then the trailers.
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("buffer-body,call-at-trailers"), false)
        .unwrap();
    vm.request_body(s, b"abc", false).unwrap();
    let step = vm.request_trailers(s, headers(&[("t", "1")])).unwrap();
    assert_eq!(step.action, Some(Action::Pause));
    assert_eq!(
        step.forwarded,
        vec![
            Event::Data(b"abc".to_vec(), false),
            Event::Trailers(headers(&[("t", "1")]))
        ]
    );
    assert!(log_pos(&p, "dispatched: Ok") < log_pos(&p, "call status=200"));
}

#[test]
fn trailers_that_arrive_while_the_headers_are_paused_are_held_with_them() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    let h = vm.request_headers(s, req("pause-headers"), false).unwrap();
    assert_eq!(h.action, Some(Action::Pause));
    assert!(vm
        .request_body(s, b"x", false)
        .unwrap()
        .forwarded
        .is_empty());
    let t = vm.request_trailers(s, headers(&[("t", "1")])).unwrap();
    assert!(t.forwarded.is_empty());
    assert!(
        !logged(&p, "request trailers"),
        "the trailers callback must wait for the headers"
    );
}

#[test]
fn body_or_trailers_after_the_trailers_is_a_usage_error() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req(""), false).unwrap();
    vm.request_trailers(s, headers(&[("t", "1")])).unwrap();
    assert!(matches!(
        vm.request_body(s, b"x", false),
        Err(HarnessError::Usage(_))
    ));
    assert!(matches!(
        vm.request_trailers(s, headers(&[("t", "2")])),
        Err(HarnessError::Usage(_))
    ));
}

#[test]
fn a_panic_in_the_trailers_callback_is_a_trap() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("trailers-panic"), false).unwrap();
    let err = vm.request_trailers(s, headers(&[("t", "1")])).unwrap_err();
    assert_eq!(
        err.panic_message()
            .map(|m| m.contains("guest panic in request trailers")),
        Some(true),
        "{err}"
    );
}

#[test]
fn the_chain_carries_request_trailers_to_the_upstream() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec("trailers-edit"))
        .unwrap()
        .with(spec(""))
        .unwrap();
    let request = Request::post_json("/grpc", "payload")
        .chunk_size(3)
        .trailers(headers(&[("x-client-trailer", "c")]));
    let mut seen = None;
    let out = chain
        .run(&request, &mut |r: &UpstreamRequest| {
            seen = Some(r.clone());
            UpstreamResponse::json(200, "{}")
        })
        .unwrap();
    assert_eq!(out.status, 200);
    let up = seen.unwrap();
    assert_eq!(up.body_text(), "payload");
    assert_eq!(
        up.trailers,
        Some(headers(&[
            ("x-client-trailer", "c"),
            ("x-guest-trailer", "1")
        ]))
    );
    assert_eq!(out.upstream.unwrap().trailers, up.trailers);
    // The inner filter saw the trailers as the outer one left them.
    let inner = chain.plugin(1).unwrap();
    assert!(logged(inner, "request trailers n=2 x-client-trailer=c"));
}

#[test]
fn the_chain_delivers_response_trailers_to_the_client_after_the_body() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(
            "buffer-response|response-trailers-edit|response-trailers-body",
        ))
        .unwrap();
    let out = chain
        .run(&Request::get("/grpc"), &mut |_: &UpstreamRequest| {
            UpstreamResponse::new(200)
                .header("content-type", "application/grpc")
                .chunk("ab")
                .chunk("cd")
                .trailers(headers(&[("grpc-status", "0")]))
        })
        .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.body_text(), "ABCD");
    assert_eq!(
        out.trailers,
        Some(headers(&[
            ("grpc-status", "0"),
            ("x-guest-response-trailer", "1")
        ]))
    );
    assert!(logged(
        chain.plugin(0).unwrap(),
        "response trailers n=1 grpc-status=0"
    ));
}

#[test]
fn a_request_without_trailers_still_ends_with_an_end_of_stream_data_frame() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("")).unwrap();
    let out = chain
        .run(
            &Request::post_json("/x", "{}"),
            &mut |_: &UpstreamRequest| UpstreamResponse::json(200, "{}"),
        )
        .unwrap();
    assert_eq!(out.trailers, None);
    assert_eq!(out.upstream.unwrap().trailers, None);
    assert!(!logged(chain.plugin(0).unwrap(), "request trailers"));
}

#[test]
fn a_filter_that_pauses_the_trailers_and_never_resumes_stalls_the_chain() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("pause-trailers")).unwrap();
    let request = Request::post_json("/x", "{}").trailers(headers(&[("t", "1")]));
    let err = chain
        .run(&request, &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, "{}")
        })
        .unwrap_err();
    assert!(err.to_string().contains("stalled"), "{err}");
}

#[test]
fn apisix_never_calls_the_trailers_callback_and_passes_trailers_on() {
    let env = Env::new();
    let mut p = load(&env, "", Profile::Apisix);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, req("trailers-edit"), false).unwrap();
    let step = vm.request_trailers(s, headers(&[("t", "1")])).unwrap();
    assert_eq!(step.action, None);
    assert_eq!(
        step.forwarded,
        vec![Event::Trailers(headers(&[("t", "1")]))]
    );
    assert!(!logged(&p, "request trailers"));
}
