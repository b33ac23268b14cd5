//! Key pools through the filter (mock host, one worker's state and shared data): a key answered
//! with an ejecting status sits out for the answer's `Retry-After`, the others carry the traffic,
//! and the key comes back when its cooldown is over; consumer selection keeps a client on its key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use ai_proxy::Proxy;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Gateway, Outcome, UpstreamReply};

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn config(selection: &str) -> String {
    format!(
        r#"{{"providers": [{{"name": "oai", "type": "openai", "apiKeys": ["sk-a", "sk-b", "sk-c"],
             "keySelection": "{selection}", "keyHealth": {{"ejectOn": [401, 429], "cooldownSeconds": 60}}}}],
            "models": [{{"match": "*", "provider": "oai"}}]}}"#
    )
}

fn key_of(out: &Outcome) -> String {
    let headers = out.upstream_headers.as_ref().expect("reached the provider");
    let auth = headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    auth.trim_start_matches("Bearer ").to_owned()
}

fn send(gw: &mut Gateway<Proxy>, reply: UpstreamReply, client: &str) -> String {
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", CHAT)
            .header("authorization", &format!("Bearer {client}"))
            .reply(reply),
    );
    key_of(&out)
}

fn rate_limited(retry_after: &str) -> UpstreamReply {
    UpstreamReply {
        status: 429,
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("retry-after".into(), retry_after.as_bytes().to_vec()),
        ],
        chunks: vec![br#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#.to_vec()],
    }
}

#[test]
fn a_rate_limited_key_sits_out_for_its_retry_after_and_comes_back() {
    let mut gw = Gateway::<Proxy>::new(&config("roundRobin"), Capabilities::FULL);
    assert_eq!(send(&mut gw, rate_limited("30"), "c"), "sk-a");
    let next: Vec<String> = (0..4)
        .map(|_| send(&mut gw, UpstreamReply::json(ANSWER), "c"))
        .collect();
    assert!(next.iter().all(|k| k != "sk-a"), "{next:?}");
    assert!(next.contains(&"sk-b".to_owned()) && next.contains(&"sk-c".to_owned()));
    gw.advance(Duration::from_secs(31));
    let back: Vec<String> = (0..3)
        .map(|_| send(&mut gw, UpstreamReply::json(ANSWER), "c"))
        .collect();
    assert!(back.contains(&"sk-a".to_owned()), "{back:?}");
}

#[test]
fn a_status_outside_eject_on_keeps_the_key() {
    let mut gw = Gateway::<Proxy>::new(&config("roundRobin"), Capabilities::FULL);
    let error = UpstreamReply {
        status: 503,
        ..rate_limited("30")
    };
    let used: Vec<String> = (0..6).map(|_| send(&mut gw, error.clone(), "c")).collect();
    assert_eq!(used.iter().filter(|k| *k == "sk-a").count(), 2, "{used:?}");
}

#[test]
fn consumer_selection_keeps_a_client_on_one_key_until_it_sits_out() {
    let mut gw = Gateway::<Proxy>::new(&config("consumer"), Capabilities::FULL);
    let first = send(&mut gw, UpstreamReply::json(ANSWER), "client-1");
    for _ in 0..5 {
        assert_eq!(
            send(&mut gw, UpstreamReply::json(ANSWER), "client-1"),
            first
        );
    }
    assert_eq!(send(&mut gw, rate_limited("60"), "client-1"), first);
    let moved = send(&mut gw, UpstreamReply::json(ANSWER), "client-1");
    assert_ne!(moved, first);
    assert_eq!(
        send(&mut gw, UpstreamReply::json(ANSWER), "client-1"),
        moved
    );
}

#[test]
fn the_ejection_is_logged_and_counted_by_hash_never_by_key() {
    let mut gw = Gateway::<Proxy>::new(&config("roundRobin"), Capabilities::FULL);
    let out = gw.run(Exchange::post_json("/v1/chat/completions", CHAT).reply(rate_limited("5")));
    let st = out.host.state.borrow();
    let logs: Vec<&String> = st.logs.iter().map(|(_, m)| m).collect();
    let line = logs
        .iter()
        .find(|l| l.contains("sits out for 5 s after a 429"))
        .unwrap_or_else(|| panic!("{logs:?}"));
    assert!(!line.contains("sk-a"), "{line}");
    assert_eq!(
        st.metrics["aigw.ai_proxy.provider.oai.key_ejections"].value,
        1
    );
}
