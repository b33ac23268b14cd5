//! The chain runner: filter order, streamed bodies, local replies seen by outer filters, reverse
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.
//! response order, callouts, stalls, traps and forwarding to real local servers.

use crate::common::*;
use aigw_harness::{
    CalloutOutcome, Chain, Env, ForwardUpstream, HarnessError, PluginSpec, Request,
    UpstreamRequest, UpstreamResponse,
};
use std::io::{Read, Write};
use std::net::TcpListener;

fn spec(ops: &str) -> PluginSpec {
    PluginSpec::new(guest()).config(format!("ops={ops}"))
}

fn echo_upstream(req: &UpstreamRequest) -> UpstreamResponse {
    UpstreamResponse::json(200, req.body.clone())
}

#[test]
fn a_chunked_request_body_is_buffered_rewritten_and_reaches_the_upstream() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec("buffer-body"))
        .unwrap()
        .with(spec("headers"))
        .unwrap();
    let request = Request::post_json("/v1/chat/completions", "hello world").chunk_size(3);
    let out = chain.run(&request, &mut echo_upstream).unwrap();
    let upstream = out.upstream.clone().unwrap();
    assert_eq!(upstream.body_text(), "HELLO WORLD!");
    assert_eq!(upstream.header("x-guest-set").as_deref(), Some("1"));
    assert_eq!(
        (out.status, out.body_text().as_str()),
        (200, "HELLO WORLD!")
    );
    assert!(chain
        .plugin(0)
        .unwrap()
        .logs()
        .iter()
        .any(|l| l.message == "request body size=3 eos=false"));
}

#[test]
fn response_chunks_stream_through_unbuffered_filters_unchanged() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("")).unwrap();
    let chunks = [
        "data: {\"a\":1}\n\n",
        "data: {\"a\":2}\n\n",
        "data: [DONE]\n\n",
    ];
    let out = chain
        .run(&Request::get("/stream"), &mut |_: &UpstreamRequest| {
            UpstreamResponse::sse(chunks)
        })
        .unwrap();
    assert_eq!(
        out.body_chunks,
        chunks
            .iter()
            .map(|c| c.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        out.header("content-type").as_deref(),
        Some("text/event-stream")
    );
}

#[test]
fn a_local_reply_skips_the_upstream_and_inner_filters_but_outer_filters_see_it() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec("response-header"))
        .unwrap()
        .with(spec("local"))
        .unwrap()
        .with(spec("headers"))
        .unwrap();
    let out = chain.run(&Request::get("/x"), &mut echo_upstream).unwrap();
    assert!(out.upstream.is_none());
    assert_eq!(
        (out.status, out.body_text().as_str()),
        (403, "denied by guest")
    );
    assert_eq!(
        out.header("x-guest-response").as_deref(),
        Some("1"),
        "the outer filter edited the reply"
    );
    assert_eq!(out.header("x-guest-denied").as_deref(), Some("1"));
    assert_eq!(out.local_reply.as_ref().map(|r| r.0), Some(1));
    assert!(chain
        .plugin(1)
        .unwrap()
        .logs()
        .iter()
        .any(|l| l.message.contains("status=403")));
    assert!(
        chain.plugin(2).unwrap().logs().is_empty()
            || !logged(chain.plugin(2).unwrap(), "request headers")
    );
}

#[test]
fn the_response_path_runs_in_reverse_order_and_a_response_local_reply_goes_straight_to_the_client()
{
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec("response-local"))
        .unwrap()
        .with(spec("response-header"))
        .unwrap();
    let out = chain.run(&Request::get("/x"), &mut echo_upstream).unwrap();
    assert!(logged(
        chain.plugin(1).unwrap(),
        "response headers n=2 eos=false status=200"
    ));
    assert_eq!(
        (out.status, out.body_text().as_str()),
        (502, "rewritten by guest")
    );
    assert_eq!(out.header("x-guest-response"), None);
}

#[test]
fn a_buffered_response_is_rewritten_by_the_filter() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("buffer-response")).unwrap();
    let upstream = |_: &UpstreamRequest| UpstreamResponse::new(200).chunk("ab").chunk("cd");
    let out = chain.run(&Request::get("/x"), &mut { upstream }).unwrap();
    assert_eq!(out.body_text(), "ABCD!");
}

#[test]
fn a_callout_made_by_a_filter_completes_before_the_request_moves_on() {
    let env = Env::new();
    env.on_callout(|_: &aigw_harness::CalloutRequest| CalloutOutcome::ok(200, "text/plain", "ok"));
    let mut chain = Chain::new(&env).with(spec("call")).unwrap();
    let out = chain.run(&Request::get("/x"), &mut echo_upstream).unwrap();
    assert_eq!(
        out.upstream.unwrap().header("x-call-status").as_deref(),
        Some("200")
    );
}

#[test]
fn a_filter_that_pauses_and_never_resumes_is_reported_as_a_stall() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("pause-headers")).unwrap();
    let err = chain
        .run(&Request::get("/x"), &mut echo_upstream)
        .unwrap_err();
    assert!(matches!(err, HarnessError::Usage(_)));
    assert!(err.to_string().contains("stalled"), "{err}");
}

#[test]
fn a_trap_inside_a_chain_is_an_error_with_the_panic_message() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(""))
        .unwrap()
        .with(spec("panic"))
        .unwrap();
    let err = chain
        .run(&Request::get("/x"), &mut echo_upstream)
        .unwrap_err();
    assert!(err.to_string().contains("guest panic on purpose"), "{err}");
}

/// A one-shot HTTP/1.1 server on 127.0.0.1 answering with `reply`; returns its address.
fn one_shot_server(reply: &'static str) -> (std::net::SocketAddr, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        loop {
            let n = conn.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap_or(0);
                if got.len() >= end + 4 + len || n == 0 {
                    break;
                }
            }
        }
        conn.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&got).to_string()
    });
    (addr, handle)
}

#[test]
fn callouts_and_the_upstream_can_be_forwarded_to_real_local_servers() {
    let (callout_addr, callout_seen) =
        one_shot_server("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    let (upstream_addr, upstream_seen) = one_shot_server(
        "HTTP/1.1 201 Created\r\ncontent-length: 10\r\ncontent-type: text/plain\r\n\r\n0123456789",
    );
    let env = Env::new();
    env.route_cluster("upstream-svc", callout_addr);
    let mut chain = Chain::new(&env).with(spec("call")).unwrap();
    let request = Request::post_json("/v1/x", "{}").header("x-call-body", "ping");
    let out = chain
        .run(&request, &mut ForwardUpstream::new(upstream_addr, 4))
        .unwrap();
    assert_eq!((out.status, out.body_text().as_str()), (201, "0123456789"));
    assert_eq!(out.body_chunks.len(), 3);
    assert!(logged(
        chain.plugin(0).unwrap(),
        "call status=200 body=Some(\"abc\")"
    ));
    let seen = callout_seen.join().unwrap();
    assert!(
        seen.starts_with("POST /check HTTP/1.1\r\n") && seen.ends_with("ping"),
        "{seen}"
    );
    assert!(upstream_seen.join().unwrap().contains("x-call-status: 200"));
}
