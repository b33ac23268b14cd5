//! The filter over the mock host: reservations taken before forwarding, refusals in the caller's
//! protocol with their headers, reconciliation with JSON and streamed usage (or the estimate),
//! reservations released by failures and cancellations, keys and overrides, shadow mode, the
//! virtual clock refilling buckets, and hosts without shared data.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::time::Duration;

use ai_token_ratelimit::TokenRateLimit;
use aigw_shared::host::{Capabilities, MapKind};
use aigw_shared::mock::{self, Exchange, Gateway, MockHost, Outcome, UpstreamReply};
use aigw_shared::plugin::{FilterDriver, Reply, RootDriver};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("../../testdata/providers").join(rest),
        None => root.join("testdata").join(name),
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Limits per `x-team`: 300 tokens and 100 requests a minute; `vip` unlimited, `small-*` 50.
const TEAM: &str = r#"{"rules": [{"name": "team", "keys": ["header:x-team"],
    "limits": [{"tokens": 300, "per": "minute"}, {"requests": 100, "per": "minute"}],
    "overrides": [{"match": "vip", "limits": []},
                  {"match": "regex:small-.*", "limits": [{"tokens": 50, "per": "minute"}]}]}]}"#;

fn chat(team: &str) -> Exchange {
    Exchange::post_json("/v1/chat/completions", &fixture("chat.request.json"))
        .header("x-team", team)
        .chunked(10)
        .reply(UpstreamReply::json(&fixture("openai-chat.response.json")))
}

fn header(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn remaining(out: &Outcome) -> Option<u64> {
    header(&out.response_headers, "x-ratelimit-remaining-tokens").map(|v| v.parse().unwrap())
}

fn sse(body: &str) -> UpstreamReply {
    UpstreamReply {
        status: 200,
        headers: vec![("content-type".into(), b"text/event-stream".to_vec())],
        chunks: body.as_bytes().chunks(37).map(<[u8]>::to_vec).collect(),
    }
}

#[test]
fn a_request_reserves_its_estimate_and_the_answer_gives_back_what_it_did_not_use() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    let first = gw.run(chat("a"));
    assert!(first.local_response.is_none());
    assert_eq!(
        first.upstream_body,
        fixture("chat.request.json").into_bytes(),
        "the body passes untouched"
    );
    // 9 estimated input + 200 max_tokens reserved out of 300.
    assert_eq!(remaining(&first), Some(91));
    let h = &first.response_headers;
    assert_eq!(
        header(h, "x-ratelimit-limit-tokens").as_deref(),
        Some("300")
    );
    // 209 tokens refill at 5 a second: 41.8 s.
    assert_eq!(
        header(h, "x-ratelimit-reset-tokens").as_deref(),
        Some("41.8s")
    );
    assert_eq!(
        header(h, "x-ratelimit-limit-requests").as_deref(),
        Some("100")
    );
    assert_eq!(
        header(h, "x-ratelimit-remaining-requests").as_deref(),
        Some("99")
    );
    assert_eq!(
        first
            .host
            .metric_value("aigw.ai_token_ratelimit.outcome.allowed.requests_total"),
        Some(1)
    );
    assert_eq!(
        first
            .host
            .metric_value("aigw.ai_token_ratelimit.kind.charged.tokens_total"),
        Some(50)
    );
    // The answer used 50: 250 were left, and the next reservation leaves 41.
    let second = gw.run(chat("a"));
    assert_eq!(remaining(&second), Some(41));
    assert_eq!(
        header(&second.response_headers, "x-ratelimit-remaining-requests").as_deref(),
        Some("98")
    );
}

#[test]
fn a_reservation_that_does_not_fit_is_refused_with_429_and_retry_after() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    gw.run(chat("a"));
    gw.run(chat("a"));
    // 200 left; 209 needed: 9 short at 5 a second is 1.8 s.
    let out = gw.run(chat("a"));
    let reply = out.local_response.expect("refused");
    assert!(out.upstream_headers.is_none(), "never forwarded");
    assert_eq!(reply.status, 429);
    assert_eq!(header(&reply.headers, "retry-after").as_deref(), Some("2"));
    assert_eq!(
        header(&reply.headers, "x-ratelimit-remaining-tokens").as_deref(),
        Some("200")
    );
    assert_eq!(
        header(&reply.headers, "x-ratelimit-reset-tokens").as_deref(),
        Some("20s")
    );
    assert_eq!(
        header(&reply.headers, "x-ratelimit-remaining-requests").as_deref(),
        Some("98")
    );
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`team`"));
    // Another team has its own bucket.
    assert!(gw.run(chat("b")).local_response.is_none());
}

#[test]
fn the_virtual_clock_refills_the_bucket() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    gw.run(chat("a"));
    gw.run(chat("a"));
    assert!(gw.run(chat("a")).local_response.is_some());
    gw.advance(Duration::from_secs(2));
    let out = gw.run(chat("a"));
    assert!(out.local_response.is_none(), "10 tokens refilled in 2 s");
    assert_eq!(remaining(&out), Some(1));
    gw.advance(Duration::from_secs(60));
    assert_eq!(remaining(&gw.run(chat("a"))), Some(91), "full again");
}

#[test]
fn anthropic_callers_are_refused_in_anthropic_s_error_shape() {
    let config = r#"{"rules": [{"name": "all", "limits": [{"tokens": 10, "per": "hour"}]}]}"#;
    let body = r#"{"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}"#;
    let out = Exchange::post_json("/v1/messages", body).run::<TokenRateLimit>(config);
    let reply = out.local_response.expect("refused");
    assert_eq!(reply.status, 429);
    assert!(
        header(&reply.headers, "retry-after").is_none(),
        "it never fits"
    );
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error");
    assert_eq!(json["error"]["type"], "rate_limit_error");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("lower max_tokens"));
}

#[test]
fn overrides_pick_other_limits_or_none_and_requests_without_the_key_are_not_limited() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    for _ in 0..3 {
        let vip = gw.run(chat("vip"));
        assert!(vip.local_response.is_none());
        assert_eq!(remaining(&vip), None, "unlimited: no headers");
    }
    let small = gw.run(chat("small-1"));
    assert_eq!(small.local_response.expect("50 < 209").status, 429);
    let anonymous = gw.run(chat("a").without_header("x-team"));
    assert!(anonymous.local_response.is_none());
    assert_eq!(remaining(&anonymous), None);
}

#[test]
fn a_stream_is_charged_its_reported_usage() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    let stream = fixture("providers/openai-chat-stream-usage.sse");
    let out = gw.run(chat("a").reply(sse(&stream)));
    assert_eq!(
        out.response_body,
        stream.as_bytes(),
        "the stream passes untouched"
    );
    // 12 + 100 charged: 188 left, then 209 more cannot fit (21 short: 4.2 s).
    let next = gw.run(chat("a"));
    let reply = next.local_response.expect("refused");
    assert_eq!(
        header(&reply.headers, "x-ratelimit-remaining-tokens").as_deref(),
        Some("188")
    );
    assert_eq!(header(&reply.headers, "retry-after").as_deref(), Some("5"));
}

#[test]
fn an_anthropic_stream_is_charged_its_reported_usage() {
    let config = r#"{"rules": [{"name": "all", "limits": [{"tokens": 1000, "per": "minute"}]}]}"#;
    let mut gw = Gateway::<TokenRateLimit>::new(config, Capabilities::FULL);
    let body = r#"{"model": "claude-haiku-4-5", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
    let ex = || Exchange::post_json("/v1/messages", body);
    gw.run(ex().reply(sse(&fixture("providers/anthropic-messages-stream.sse"))));
    // 11 + 6 charged; the next reservation (1 + 4 framing + 100) leaves 1000 - 17 - 105.
    assert_eq!(remaining(&gw.run(ex())), Some(878));
}

#[test]
fn a_stream_without_usage_is_charged_the_estimate() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    let out = gw.run(chat("a").reply(sse(&fixture("openai-stream-no-usage.sse"))));
    assert_eq!(
        out.host
            .metric_value("aigw.ai_token_ratelimit.usage_estimated_total"),
        Some(1)
    );
    // 9 estimated input + 4 estimated output: 287 left, 78 after the next reservation.
    assert_eq!(remaining(&gw.run(chat("a"))), Some(78));
}

#[test]
fn a_failed_answer_gives_the_whole_reservation_back() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    let failed = UpstreamReply {
        status: 500,
        ..UpstreamReply::json(&fixture("openai-error-500.response.json"))
    };
    let out = gw.run(chat("a").reply(failed));
    assert_eq!(remaining(&out), Some(91));
    let next = gw.run(chat("a"));
    assert_eq!(remaining(&next), Some(91), "all 209 came back");
    assert_eq!(
        header(&next.response_headers, "x-ratelimit-remaining-requests").as_deref(),
        Some("98"),
        "the request still counts"
    );
}

/// A stream driven by hand on its own host sharing `shared` (a second request in flight).
struct InFlight {
    drv: FilterDriver<TokenRateLimit>,
    host: MockHost,
}

fn start(root: &RootDriver<TokenRateLimit>, shared: &MockHost, team: &str) -> InFlight {
    let host = MockHost {
        shared: shared.shared.clone(),
        ..MockHost::new(Capabilities::FULL)
    };
    host.state.borrow_mut().now_nanos = shared.state.borrow().now_nanos;
    let body = fixture("chat.request.json");
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            (":authority", "gw"),
            ("x-team", team),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
        st.gate.open(MapKind::RequestHeaders);
        st.request_body = body.as_bytes().to_vec();
    }
    let mut drv = root.new_stream();
    drv.on_request_headers(&host, false);
    drv.on_request_body(&host, body.len(), true);
    InFlight { drv, host }
}

impl InFlight {
    fn refused(&self) -> bool {
        self.host.state.borrow().local_response.is_some()
    }

    /// Response headers and one chunk that does not end the stream.
    fn answer_part(&mut self, chunk: &str) {
        {
            let mut st = self.host.state.borrow_mut();
            st.response_headers = vec![
                (":status".into(), b"200".to_vec()),
                ("content-type".into(), b"text/event-stream".to_vec()),
            ];
            st.gate.open(MapKind::ResponseHeaders);
        }
        self.drv.on_response_headers(&self.host, false);
        self.host.state.borrow_mut().response_body = chunk.as_bytes().to_vec();
        self.drv.on_response_body(&self.host, chunk.len(), false);
    }
}

#[test]
fn requests_in_flight_hold_their_reservation_and_a_cancelled_one_releases_it() {
    let root = mock::root::<TokenRateLimit>(TEAM, Capabilities::FULL);
    let shared = MockHost::default();
    let mut first = start(&root, &shared, "a");
    assert!(!first.refused());
    let second = start(&root, &shared, "a");
    assert!(second.refused(), "91 left while the first is in flight");
    // The client goes away before any answer: the reservation comes back but for the prompt
    // estimate (9), which the provider received.
    first.drv.on_log(&first.host);
    let mut third = start(&root, &shared, "a");
    assert!(!third.refused());
    // A stream cut after producing text is charged the prompt and what was produced.
    let stream = fixture("openai-stream-no-usage.sse");
    let cut = stream.split("data: [DONE]").next().unwrap();
    third.answer_part(cut);
    third.drv.on_log(&third.host);
    let fourth = start(&root, &shared, "a");
    assert!(!fourth.refused());
    // The rule's one record (a slot: the owner's 8-byte tag, then the bucket).
    let records: Vec<Vec<u8>> = shared
        .shared
        .borrow()
        .iter()
        .filter(|(k, _)| k.starts_with("aigw-trl:team:0:#"))
        .map(|(_, v)| v.0.clone())
        .collect();
    assert_eq!(records.len(), 1);
    let level = i64::from_le_bytes(records[0][8..16].try_into().unwrap());
    assert_eq!(
        level,
        (300 - 9 - 13 - 209) * 1000,
        "9, then 9 + 4 charged, 209 held"
    );
}

#[test]
fn a_client_gone_once_a_stream_started_but_before_its_first_token_is_charged_the_prompt() {
    let root = mock::root::<TokenRateLimit>(TEAM, Capabilities::FULL);
    let shared = MockHost::default();
    let mut first = start(&root, &shared, "a");
    assert!(!first.refused());
    // The 200 headers and the role-only first event, then the client leaves.
    let stream = fixture("openai-stream-no-usage.sse");
    let head = stream.split("\n\n").next().unwrap();
    first.answer_part(&format!("{head}\n\n"));
    first.drv.on_log(&first.host);
    let records: Vec<Vec<u8>> = shared
        .shared
        .borrow()
        .iter()
        .filter(|(k, _)| k.starts_with("aigw-trl:team:0:#"))
        .map(|(_, v)| v.0.clone())
        .collect();
    let level = i64::from_le_bytes(records[0][8..16].try_into().unwrap());
    assert_eq!(
        level,
        (300 - 9) * 1000,
        "the prompt estimate (9) is charged"
    );
}

#[test]
fn shadow_mode_forwards_what_it_would_refuse_and_logs_it() {
    let config = TEAM.replacen("{\"rules\"", "{\"shadow\": true, \"rules\"", 1);
    let mut gw = Gateway::<TokenRateLimit>::new(&config, Capabilities::FULL);
    gw.run(chat("a"));
    gw.run(chat("a"));
    let out = gw.run(chat("a"));
    assert!(out.local_response.is_none());
    assert!(out.upstream_headers.is_some(), "forwarded");
    let logs = out.host.logs_at_least(aigw_shared::host::LogLevel::Info);
    assert!(logs.iter().any(|l| l.contains("shadow mode")), "{logs:?}");
}

#[test]
fn a_cost_limit_weighs_tokens_by_model() {
    let config = r#"{"rules": [{"name": "cost", "keys": ["model"], "limits": [{"cost": 1000, "per": "minute"}]}],
                     "weights": {"gpt-4o*": {"input": 1, "output": 4, "cachedInput": 0.5}}}"#;
    let mut gw = Gateway::<TokenRateLimit>::new(config, Capabilities::FULL);
    let ex = || {
        Exchange::post_json("/v1/chat/completions", &fixture("chat.request.json"))
            .reply(UpstreamReply::json(&fixture("openai-chat.response.json")))
    };
    // Reserved 9 + 200 * 4 = 809; charged 20 + 10 * 0.5 + 20 * 4 = 105.
    assert_eq!(remaining(&gw.run(ex())), Some(191));
    assert_eq!(remaining(&gw.run(ex())), Some(86));
    assert_eq!(gw.run(ex()).local_response.expect("refused").status, 429);
}

#[test]
fn a_body_that_is_not_a_request_is_answered_400_in_the_caller_s_protocol() {
    let out = Exchange::post_json("/v1/chat/completions", r#"{"model": 5, "messages": []}"#)
        .run::<TokenRateLimit>(TEAM.replace("header:x-team", "model").as_str());
    let reply = out.local_response.expect("answered");
    assert_eq!(reply.status, 400);
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["error"]["param"], "model");
}

#[test]
fn other_paths_and_configs_without_rules_pass_untouched() {
    let out = Exchange::get("/v1/models").run::<TokenRateLimit>(TEAM);
    assert!(out.local_response.is_none() && out.upstream_headers.is_some());
    let out = chat("a").run::<TokenRateLimit>("{}");
    assert_eq!(remaining(&out), None);
}

#[test]
fn without_shared_data_the_failure_mode_decides() {
    let open = chat("a")
        .capabilities(Capabilities::APISIX)
        .run::<TokenRateLimit>(TEAM);
    assert!(open.local_response.is_none() && open.upstream_headers.is_some());
    let closed_config = TEAM.replacen("{\"rules\"", "{\"failureMode\": \"closed\", \"rules\"", 1);
    let closed = chat("a")
        .capabilities(Capabilities::APISIX)
        .run::<TokenRateLimit>(&closed_config);
    assert_eq!(closed.local_response.expect("closed").status, 503);
}

// ---- the rls backend: Envoy's RateLimitService over gRPC, answered by the test ----

const RLS: &str = r#"{"backend": "rls", "rls": {"cluster": "ratelimit", "domain": "aigw", "timeoutMs": 150},
    "rules": [{"name": "team", "keys": ["header:x-team"],
               "limits": [{"tokens": 300, "per": "minute"}, {"requests": 100, "per": "minute"}]}]}"#;

fn pb_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn pb_field(out: &mut Vec<u8>, field: u64, wire: u64, value: &[u8]) {
    pb_varint(out, field << 3 | wire);
    if wire == 2 {
        pb_varint(out, value.len() as u64);
        out.extend_from_slice(value);
    } else {
        out.extend_from_slice(value);
    }
}

fn pb_num(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    pb_varint(&mut out, v);
    out
}

/// A `RateLimitResponse`: overall `code`, and per descriptor (code, limit, remaining, reset s).
fn rls_answer(code: u64, statuses: &[(u64, u64, u64, u64)]) -> Reply {
    let mut msg = Vec::new();
    pb_field(&mut msg, 1, 0, &pb_num(code));
    for &(code, limit, remaining, reset) in statuses {
        let mut s = Vec::new();
        pb_field(&mut s, 1, 0, &pb_num(code));
        let mut l = Vec::new();
        pb_field(&mut l, 1, 0, &pb_num(limit));
        pb_field(&mut s, 2, 2, &l);
        pb_field(&mut s, 3, 0, &pb_num(remaining));
        let mut d = Vec::new();
        pb_field(&mut d, 1, 0, &pb_num(reset));
        pb_field(&mut s, 4, 2, &d);
        pb_field(&mut msg, 2, 2, &s);
    }
    Reply::Grpc {
        status: 0,
        message: msg,
    }
}

#[test]
fn the_rls_backend_asks_the_service_with_one_descriptor_per_limit() {
    let out = chat("a")
        .answer(|_| Some(rls_answer(1, &[(1, 300, 91, 30), (1, 100, 99, 1)])))
        .run::<TokenRateLimit>(RLS);
    assert!(out.local_response.is_none());
    assert!(out.upstream_headers.is_some(), "forwarded after the answer");
    let call = &out.callouts[0];
    assert_eq!(call.upstream, "ratelimit");
    assert_eq!(
        call.kind,
        mock::CalloutKind::Grpc {
            service: "envoy.service.ratelimit.v3.RateLimitService".into(),
            method: "ShouldRateLimit".into()
        }
    );
    assert_eq!(call.timeout, Duration::from_millis(150));
    let body = call.body.clone().unwrap();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"\x0a\x04aigw"), "the domain");
    assert!(has(b"\x0a\x04rule\x12\x04team"), "the rule entry");
    assert!(has(b"\x0a\x0dheader:x-team\x12\x01a"), "the key entry");
    // The token descriptor adds 209 hits (0xd1 0x01), the request descriptor 1.
    assert!(has(b"\x1a\x03\x08\xd1\x01"));
    assert!(has(b"\x1a\x02\x08\x01"));
    // 300 per MINUTE as the descriptor's limit override.
    assert!(has(b"\x12\x05\x08\xac\x02\x10\x02"));
    assert_eq!(remaining(&out), Some(91));
    assert_eq!(
        header(&out.response_headers, "x-ratelimit-reset-tokens").as_deref(),
        Some("30s")
    );
    assert_eq!(
        header(&out.response_headers, "x-ratelimit-remaining-requests").as_deref(),
        Some("99")
    );
}

#[test]
fn an_over_limit_answer_is_a_429_with_the_service_s_reset_as_retry_after() {
    let out = chat("a")
        .answer(|_| Some(rls_answer(2, &[(2, 300, 0, 12), (1, 100, 99, 1)])))
        .run::<TokenRateLimit>(RLS);
    let reply = out.local_response.expect("refused");
    assert!(out.upstream_headers.is_none());
    assert_eq!(reply.status, 429);
    assert_eq!(header(&reply.headers, "retry-after").as_deref(), Some("12"));
    assert_eq!(
        header(&reply.headers, "x-ratelimit-remaining-tokens").as_deref(),
        Some("0")
    );
}

#[test]
fn an_unreachable_service_fails_open_or_closed_as_configured() {
    let unavailable = || Reply::Grpc {
        status: 14,
        message: Vec::new(),
    };
    let open = chat("a")
        .answer(move |_| Some(unavailable()))
        .run::<TokenRateLimit>(RLS);
    assert!(open.local_response.is_none() && open.upstream_headers.is_some());
    assert_eq!(remaining(&open), None, "nothing counted, no headers");
    let closed = RLS.replacen(
        "{\"backend\"",
        "{\"failureMode\": \"closed\", \"backend\"",
        1,
    );
    let out = chat("a")
        .answer(move |_| Some(unavailable()))
        .run::<TokenRateLimit>(&closed);
    assert_eq!(out.local_response.expect("closed").status, 503);
    // An answer that is not a RateLimitResponse counts as a failure too.
    let garbage = chat("a")
        .answer(|_| {
            Some(Reply::Grpc {
                status: 0,
                message: b"\xff\xff".to_vec(),
            })
        })
        .run::<TokenRateLimit>(&closed);
    assert_eq!(garbage.local_response.expect("closed").status, 503);
}

// ---- quotas: a budget per consumer that never refills, set through the admin endpoint ----

fn quota_config() -> String {
    let admin = aigw_shared::consumer::key_hash_hex("admin-key");
    format!(r#"{{"consumer": {{"header": "x-consumer"}}, "quota": {{"adminKeys": ["{admin}"]}}}}"#)
}

fn consumer_chat(consumer: &str) -> Exchange {
    Exchange::post_json("/v1/chat/completions", &fixture("chat.request.json"))
        .header("x-consumer", consumer)
        .reply(UpstreamReply::json(&fixture("openai-chat.response.json")))
}

fn admin_post(body: &str, key: &str) -> Exchange {
    Exchange::post_json("/aigw/quota", body).header("authorization", &format!("Bearer {key}"))
}

fn admin_answer(out: &Outcome) -> Value {
    let reply = out.local_response.as_ref().expect("answered by the plugin");
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert!(out.upstream_headers.is_none(), "never forwarded");
    serde_json::from_slice(&reply.body).unwrap()
}

#[test]
fn a_quota_is_set_and_read_by_an_admin_and_spent_by_requests() {
    let mut gw = Gateway::<TokenRateLimit>::new(&quota_config(), Capabilities::FULL);
    let none = gw.run(consumer_chat("team"));
    let reply = none.local_response.expect("no quota yet");
    assert_eq!(reply.status, 429);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert!(header(&reply.headers, "retry-after").is_none());

    let set = gw.run(admin_post(r#"{"key": "team", "set": 300}"#, "admin-key"));
    assert_eq!(
        admin_answer(&set),
        serde_json::json!({"key": "team", "remaining": 300})
    );
    // 209 reserved, 50 used: 250 left.
    assert!(gw.run(consumer_chat("team")).local_response.is_none());
    let get = Exchange::get("/aigw/quota?key=team").header("x-api-key", "admin-key");
    assert_eq!(admin_answer(&gw.run(get))["remaining"], 250);
    let add = gw.run(admin_post(r#"{"key": "team", "add": -100}"#, "admin-key"));
    assert_eq!(admin_answer(&add)["remaining"], 150);
    assert_eq!(
        gw.run(consumer_chat("team"))
            .local_response
            .expect("150 < 209")
            .status,
        429
    );
    // Another consumer has its own (empty) quota; requests without a consumer are not counted.
    assert!(gw.run(consumer_chat("other")).local_response.is_some());
    let anonymous = gw.run(chat("a"));
    assert!(anonymous.local_response.is_none());
}

#[test]
fn the_admin_endpoint_needs_an_admin_key_and_a_valid_write() {
    let mut gw = Gateway::<TokenRateLimit>::new(&quota_config(), Capabilities::FULL);
    let status = |out: Outcome| out.local_response.expect("answered").status;
    let write = r#"{"key": "team", "set": 5}"#;
    assert_eq!(status(gw.run(admin_post(write, "wrong"))), 401);
    assert_eq!(
        status(gw.run(Exchange::post_json("/aigw/quota", write))),
        401
    );
    assert_eq!(
        status(gw.run(admin_post(r#"{"key": "team"}"#, "admin-key"))),
        400
    );
    assert_eq!(status(gw.run(admin_post("[1]", "admin-key"))), 400);
    let get = Exchange::get("/aigw/quota").header("x-api-key", "admin-key");
    assert_eq!(status(gw.run(get)), 400, "no ?key=");
    let get = Exchange::get("/aigw/quota?key=team").header("x-api-key", "admin-key");
    assert_eq!(admin_answer(&gw.run(get))["remaining"], 0);
}

#[test]
fn the_admin_reads_a_key_value_percent_decoded_and_logs_it_escaped() {
    let mut gw = Gateway::<TokenRateLimit>::new(&quota_config(), Capabilities::FULL);
    let set = gw.run(admin_post(
        r#"{"key": "team a\nforged line", "set": 7}"#,
        "admin-key",
    ));
    assert_eq!(admin_answer(&set)["remaining"], 7);
    let logs: Vec<String> = set
        .host
        .state
        .borrow()
        .logs
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    let logs = logs.join("\n");
    assert!(
        logs.contains(r#"quota of "team a\nforged line" set to 7"#),
        "{logs}"
    );
    let get = Exchange::get("/aigw/quota?key=team%20a%0Aforged%20line")
        .header("authorization", "bearer admin-key");
    assert_eq!(admin_answer(&gw.run(get))["remaining"], 7);
    let bad = Exchange::get("/aigw/quota?key=%FF").header("x-api-key", "admin-key");
    assert_eq!(gw.run(bad).local_response.expect("answered").status, 400);
}

#[test]
fn an_answer_too_large_to_read_is_charged_its_reservation_not_nothing() {
    let config = TEAM.replacen('{', r#"{"maxResponseBodyBytes": 16, "#, 1);
    let mut gw = Gateway::<TokenRateLimit>::new(&config, Capabilities::FULL);
    let big = UpstreamReply::json(&fixture("openai-chat.response.json"));
    let out = gw.run(chat("a").reply(big));
    assert_eq!(remaining(&out), Some(91));
    // The 209 reserved stay charged: the next reservation of 209 no longer fits in 300.
    let next = gw.run(chat("a"));
    assert_eq!(next.local_response.map(|r| r.status), Some(429));
}

#[test]
fn the_responses_api_is_limited_and_charged_like_chat() {
    let mut gw = Gateway::<TokenRateLimit>::new(TEAM, Capabilities::FULL);
    let body =
        r#"{"model":"gpt-4o","input":"What is the capital of France?","max_output_tokens":250}"#;
    let ask = || {
        Exchange::post_json("/v1/responses", body)
            .header("x-team", "r")
            .reply(UpstreamReply::json(&fixture(
                "providers/openai-responses.response.json",
            )))
    };
    let first = gw.run(ask());
    assert!(first.local_response.is_none());
    let reserved = 300 - remaining(&first).unwrap();
    assert!(
        reserved > 250,
        "the estimate plus max_output_tokens: {reserved}"
    );
    assert_eq!(
        first
            .host
            .metric_value("aigw.ai_token_ratelimit.kind.charged.tokens_total"),
        Some(22),
        "the answer's usage: 14 in, 8 out"
    );
    // 278 left: the second reservation (over 250) fits, 256 are left after it, the third does not.
    assert!(gw.run(ask()).local_response.is_none());
    let refused = gw.run(ask()).local_response.expect("over the limit");
    assert_eq!(refused.status, 429);
    let err: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(err["error"]["type"], "rate_limit_error", "{err}");
}
