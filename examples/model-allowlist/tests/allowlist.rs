//! The worked example on a mock worker: the first request fetches the model list itself and
//! waits for it, later requests use the worker's list, the tick refreshes it from the root, and
//! unlisted models get a 404 in the caller's protocol.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aigw_example_allowlist::Allowlist;
use aigw_shared::host::{Action, CallResponse, Capabilities, MapKind};
use aigw_shared::mock::{Exchange, Gateway, MockHost};
use aigw_shared::plugin::{budget, FilterDriver, Reply};

const CONFIG: &str = r#"{"modelsCluster": "models", "refreshSeconds": 10}"#;

fn list(ids: &[&str]) -> Reply {
    let data: Vec<_> = ids.iter().map(|id| serde_json::json!({"id": id})).collect();
    Reply::Http(CallResponse {
        status: Some(200),
        headers: Vec::new(),
        body: serde_json::json!({"object": "list", "data": data})
            .to_string()
            .into_bytes(),
    })
}

fn chat(model: &str) -> Exchange {
    Exchange::post_json(
        "/v1/chat/completions",
        &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#),
    )
}

/// A worker whose model service lists `a` at first and `a`, `b` from the second call on.
fn worker(calls: Rc<Cell<u32>>) -> Gateway<Allowlist> {
    Gateway::new(CONFIG, Capabilities::FULL).answer(move |c| {
        assert_eq!(c.upstream, "models");
        calls.set(calls.get() + 1);
        Some(if calls.get() == 1 {
            list(&["a"])
        } else {
            list(&["a", "b"])
        })
    })
}

#[test]
fn the_first_request_waits_for_the_list_and_later_ones_use_the_workers_copy() {
    let calls = Rc::new(Cell::new(0));
    let mut gw = worker(Rc::clone(&calls));
    let first = gw.run(chat("a"));
    assert!(first.local_response.is_none(), "{:?}", first.local_response);
    assert_eq!(first.upstream_json()["model"], "a", "the held body went on");
    assert_eq!(calls.get(), 1);
    let second = gw.run(chat("a"));
    assert!(second.upstream_headers.is_some());
    assert_eq!(calls.get(), 1, "no callout once the worker has the list");
}

#[test]
fn unlisted_models_get_a_404_in_the_callers_protocol_until_the_tick_learns_them() {
    let calls = Rc::new(Cell::new(0));
    let mut gw = worker(Rc::clone(&calls));
    let refused = gw.run(Exchange::post_json(
        "/v1/messages",
        r#"{"model":"b","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
    ));
    let reply = refused.local_response.unwrap();
    assert_eq!(reply.status, 404);
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error", "Anthropic shape: {json}");
    assert!(refused.upstream_headers.is_none());

    assert_eq!(gw.advance(Duration::from_secs(10)), 1, "one tick");
    assert_eq!(
        calls.get(),
        2,
        "the tick listed the models again from the root"
    );
    let allowed = gw.run(chat("b"));
    assert_eq!(allowed.upstream_json()["model"], "b");
}

#[test]
fn an_unusable_list_is_a_503_and_the_request_never_leaves() {
    let mut gw = Gateway::<Allowlist>::new(CONFIG, Capabilities::FULL).answer(|_| {
        Some(Reply::Http(CallResponse {
            status: Some(500),
            ..CallResponse::default()
        }))
    });
    let out = gw.run(chat("a"));
    assert_eq!(out.local_response.unwrap().status, 503);
    assert!(out.upstream_headers.is_none());
}

#[test]
fn bodies_over_the_limit_are_refused_by_the_driver_with_a_413() {
    let mut gw = worker(Rc::new(Cell::new(0)));
    let big = "x".repeat(2 << 20);
    let out = gw.run(chat(&big));
    assert_eq!(out.local_response.unwrap().status, 413);
}

#[test]
fn trailers_end_the_body_like_end_of_stream() {
    let mut gw = worker(Rc::new(Cell::new(0)));
    let out = gw.run(chat("a").chunked(7).trailers(&[("x-checksum", "1")]));
    assert!(out.stalled.is_none(), "{:?}", out.stalled);
    assert_eq!(out.upstream_json()["model"], "a");
    assert!(out.upstream_trailers.is_some());
}

/// A chat request whose headers arrived on its own host, with no `content-length`.
fn started(
    root: &aigw_shared::plugin::RootDriver<Allowlist>,
) -> (FilterDriver<Allowlist>, MockHost) {
    let host = MockHost::default();
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/v1/chat/completions".to_vec()),
        ];
        st.gate.open(MapKind::RequestHeaders);
    }
    let mut drv = root.new_stream();
    assert_eq!(drv.on_request_headers(&host, false), Action::Pause);
    (drv, host)
}

fn feed(drv: &mut FilterDriver<Allowlist>, host: &MockHost, bytes: usize) -> Action {
    let size = {
        let mut st = host.state.borrow_mut();
        st.request_body.extend(std::iter::repeat_n(b' ', bytes));
        st.request_body.len()
    };
    drv.on_request_body(host, size, false)
}

#[test]
fn the_stream_that_would_take_the_vm_over_its_body_budget_is_refused_and_the_others_go_on() {
    budget::set_budget(1000);
    let root = aigw_shared::mock::root::<Allowlist>(CONFIG, Capabilities::FULL);
    let (mut a, host_a) = started(&root);
    let (mut b, host_b) = started(&root);
    assert_eq!(feed(&mut a, &host_a, 600), Action::Pause);
    assert_eq!(budget::held(), 600);
    feed(&mut b, &host_b, 600);
    let refused = host_b.state.borrow().local_response.clone().unwrap();
    assert_eq!(refused.status, 413);
    assert!(
        refused.body_text().contains("memory budget"),
        "{}",
        refused.body_text()
    );
    assert_eq!(
        budget::held(),
        600,
        "the refused stream let go of its bytes"
    );
    assert_eq!(
        feed(&mut a, &host_a, 300),
        Action::Pause,
        "the first stream goes on"
    );
    assert!(host_a.state.borrow().local_response.is_none());
    a.on_log(&host_a);
    b.on_log(&host_b);
    assert_eq!(budget::held(), 0, "ended streams hold nothing");
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_any_body_arrives() {
    let root = aigw_shared::mock::root::<Allowlist>(CONFIG, Capabilities::FULL);
    let host = MockHost::default();
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), b"/v1/messages".to_vec()),
            (
                "content-length".into(),
                (2u32 << 20).to_string().into_bytes(),
            ),
        ];
        st.gate.open(MapKind::RequestHeaders);
    }
    let mut drv = root.new_stream();
    assert_eq!(drv.on_request_headers(&host, false), Action::Pause);
    let reply = host.state.borrow().local_response.clone().unwrap();
    assert_eq!(reply.status, 413);
    assert!(
        reply.body_text().contains("\"type\":\"error\""),
        "Anthropic shape: {}",
        reply.body_text()
    );
}

#[test]
fn a_query_string_or_a_trailing_slash_does_not_skip_the_check() {
    let mut gw = worker(Rc::new(Cell::new(0)));
    for path in ["/v1/chat/completions?x=1", "/v1/chat/completions/"] {
        let out = gw.run(Exchange::post_json(
            path,
            r#"{"model":"b","messages":[{"role":"user","content":"hi"}]}"#,
        ));
        assert_eq!(out.local_response.map(|r| r.status), Some(404), "{path}");
        assert!(out.upstream_headers.is_none(), "{path}");
    }
}
