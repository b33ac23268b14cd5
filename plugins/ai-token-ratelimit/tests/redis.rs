//! The `redis` backend over the mock host (Higress capabilities): the reservation script is
//! sent with one key and one ARGV block per record and waited for, its answer admits or refuses
//! with the usual headers, failures take the failure mode, and the settlement is sent (not
//! waited for) with the difference to the real usage. The scripts themselves run against a real
//! `redis-server` in the harness tests (test-harness/tests/harness/ai_token_ratelimit_redis.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_token_ratelimit::TokenRateLimit;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{CalloutKind, Exchange, Outcome, UpstreamReply};
use aigw_shared::plugin::Reply;
use aigw_shared::resp::{self, Value};

const REDIS: &str = r#"{"backend": "redis", "redis": {"cluster": "redis.dns", "database": 2},
    "rules": [{"name": "team", "keys": ["header:x-team"],
               "limits": [{"tokens": 300, "per": "minute"}, {"requests": 100, "per": "minute"}]}]}"#;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn chat(team: &str) -> Exchange {
    Exchange::post_json("/v1/chat/completions", &fixture("chat.request.json"))
        .header("x-team", team)
        .capabilities(Capabilities::HIGRESS)
        .reply(UpstreamReply::json(&fixture("openai-chat.response.json")))
}

fn header(out: &Outcome, name: &str) -> Option<String> {
    out.response_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// The arguments of a RESP command.
fn args(query: &[u8]) -> Vec<String> {
    match resp::decode(query).unwrap() {
        Value::Array(Some(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                other => panic!("not a bulk string: {other:?}"),
            })
            .collect(),
        other => panic!("not a command: {other:?}"),
    }
}

fn int_array(items: &[i64]) -> Reply {
    let mut out = format!("*{}\r\n", items.len());
    for i in items {
        out.push_str(&format!(":{i}\r\n"));
    }
    Reply::Redis(out.into_bytes())
}

#[test]
fn the_connection_names_the_database_and_commands_the_bare_cluster() {
    // Higress's own SDK connects to `cluster?db=N` and sends every command to `cluster`.
    let mut root = aigw_shared::mock::root::<TokenRateLimit>(REDIS, Capabilities::HIGRESS);
    let host = aigw_shared::mock::MockHost::new(Capabilities::HIGRESS);
    root.start(&host);
    assert_eq!(host.state.borrow().redis_clusters, vec!["redis.dns?db=2"]);
    let out = chat("a")
        .answer(|_| Some(int_array(&[0, 0, 91_000, 99_000])))
        .run::<TokenRateLimit>(REDIS);
    assert_eq!(out.callouts[0].upstream, "redis.dns");
}

#[test]
fn the_reservation_is_one_script_with_a_key_and_an_argv_block_per_record() {
    let out = chat("a")
        .answer(|call| {
            if args(call.body.as_ref().unwrap())[0] != "EVAL" {
                return None;
            }
            // Admitted: 300 - 209 tokens and 100 - 1 requests left (milli-units).
            Some(int_array(&[0, 0, 91_000, 99_000]))
        })
        .run::<TokenRateLimit>(REDIS);
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    assert!(out.upstream_headers.is_some(), "forwarded after the answer");
    let call = &out.callouts[0];
    assert_eq!(call.kind, CalloutKind::Redis);
    assert_eq!(
        call.upstream, "redis.dns",
        "commands go to the bare cluster name (the database is the connection's option, as in \
         Higress's own SDK)"
    );
    let a = args(call.body.as_ref().unwrap());
    assert_eq!(a[0], "EVAL");
    assert!(a[1].contains("reserve"), "the reservation script");
    assert_eq!(a[2], "1", "one record");
    assert_eq!(a[3], "aigw-trl:team:0:a", "the counter key, no slot table");
    // Two limits: 300 tokens a minute (+0 burst) takes 209; 100 requests a minute takes 1.
    assert_eq!(
        &a[4..],
        &["2", "300000", "300000", "60000000", "209000", "100000", "100000", "60000000", "1000"]
    );
    assert_eq!(
        header(&out, "x-ratelimit-remaining-tokens").as_deref(),
        Some("91")
    );
    assert_eq!(
        header(&out, "x-ratelimit-remaining-requests").as_deref(),
        Some("99")
    );
    assert_eq!(
        header(&out, "x-ratelimit-limit-tokens").as_deref(),
        Some("300")
    );
}

#[test]
fn the_answer_s_usage_is_settled_by_a_second_script_not_waited_for() {
    let out = chat("a")
        .answer(|call| {
            let a = args(call.body.as_ref().unwrap());
            if a[1].contains("reserve") {
                Some(int_array(&[0, 0, 91_000, 99_000]))
            } else {
                Some(Reply::Redis(b":1\r\n".to_vec()))
            }
        })
        .run::<TokenRateLimit>(REDIS);
    assert_eq!(out.callouts.len(), 2, "{:?}", out.callouts);
    let a = args(out.callouts[1].body.as_ref().unwrap());
    assert!(a[1].contains("settle"), "the settlement script");
    assert_eq!(a[3], "aigw-trl:team:0:a");
    // The fixture's answer used fewer tokens than the 209 reserved: the rest goes back.
    let usage: serde_json::Value =
        serde_json::from_str(&fixture("openai-chat.response.json")).unwrap();
    let used = usage["usage"]["total_tokens"].as_i64().unwrap();
    // The whole record (both limits): the request limit's delta is 0.
    let back = ((209 - used) * 1000).to_string();
    assert_eq!(
        &a[4..],
        &[
            "2",
            "300000",
            "300000",
            "60000000",
            back.as_str(),
            "100000",
            "100000",
            "60000000",
            "0"
        ]
    );
    assert_eq!(
        out.callouts
            .iter()
            .filter(|c| c.kind == CalloutKind::Redis)
            .count(),
        2
    );
}

#[test]
fn a_refusing_script_answer_is_a_429_with_its_wait_as_retry_after() {
    let out = chat("a")
        // Refused by record 1, 41.8 s to wait; levels after the refill.
        .answer(|_| Some(int_array(&[1, 41_800_000, 0, 99_000])))
        .run::<TokenRateLimit>(REDIS);
    let reply = out.local_response.expect("refused");
    assert!(out.upstream_headers.is_none());
    assert_eq!(reply.status, 429);
    let retry = reply
        .headers
        .iter()
        .find(|(k, _)| k == "retry-after")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(retry.as_deref(), Some("42"));
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.contains("rate limit `team` reached"), "{body}");
    // -1: the request can never fit.
    let never = chat("a")
        .answer(|_| Some(int_array(&[1, -1, 300_000, 100_000])))
        .run::<TokenRateLimit>(REDIS);
    let body = String::from_utf8_lossy(&never.local_response.expect("refused").body).into_owned();
    assert!(body.contains("request too large"), "{body}");
}

#[test]
fn a_failed_or_garbled_redis_answer_takes_the_failure_mode() {
    let answers: [fn() -> Reply; 4] = [
        || Reply::Redis(Vec::new()),
        || Reply::Redis(b"-ERR unknown command\r\n".to_vec()),
        || Reply::Redis(b"*2\r\n:0\r\n:0\r\n".to_vec()),
        || Reply::Redis(b"*9999\r\n:0".to_vec()),
    ];
    for answer in answers {
        let open = chat("a")
            .answer(move |_| Some(answer()))
            .run::<TokenRateLimit>(REDIS);
        assert!(open.local_response.is_none() && open.upstream_headers.is_some());
        assert_eq!(header(&open, "x-ratelimit-remaining-tokens"), None);
        let closed = REDIS.replacen(
            "{\"backend\"",
            "{\"failureMode\": \"closed\", \"backend\"",
            1,
        );
        let out = chat("a")
            .answer(move |_| Some(answer()))
            .run::<TokenRateLimit>(&closed);
        assert_eq!(out.local_response.expect("closed").status, 503);
    }
}

#[test]
fn without_redis_calls_the_host_takes_the_failure_mode_without_asking() {
    let out = chat("a")
        .capabilities(Capabilities::FULL)
        .run::<TokenRateLimit>(REDIS);
    assert!(out.callouts.is_empty());
    assert!(out.local_response.is_none() && out.upstream_headers.is_some());
}

#[test]
fn both_scripts_replicate_their_writes_before_reading_redis_s_clock() {
    // Redis 3.2 and 4 refuse a write after TIME in a script replicated verbatim.
    for script in [
        ai_token_ratelimit::redis::RESERVE_SCRIPT,
        ai_token_ratelimit::redis::SETTLE_SCRIPT,
    ] {
        let switch = script
            .find("redis.replicate_commands()")
            .expect("switches replication");
        let clock = script.find("redis.call('TIME')").unwrap();
        assert!(switch < clock, "{script}");
    }
}

/// A gateway whose one request left while its reservation script was on its way, and the
/// token of that script's call.
fn left_while_reserving() -> (aigw_shared::mock::Gateway<TokenRateLimit>, u32) {
    let mut gw = aigw_shared::mock::Gateway::<TokenRateLimit>::new(REDIS, Capabilities::HIGRESS);
    let gone = gw.run(chat("a").answer(|_| None));
    assert!(gone.upstream_headers.is_none(), "never forwarded");
    (gw, gone.callouts[0].token)
}

#[test]
fn a_reservation_answered_after_its_client_left_is_given_back_by_the_root() {
    let (mut gw, reserve) = left_while_reserving();
    // Another call's answer gives nothing back ...
    gw.reply_to_root(reserve + 4, int_array(&[0, 0, 91_000, 99_000]));
    assert!(gw.root_host().state.borrow().callouts.is_empty());
    // ... the script that took it makes the root send the settlement giving back all of it.
    gw.reply_to_root(reserve, int_array(&[0, 0, 91_000, 99_000]));
    let sent = gw.root_host().state.borrow().callouts.clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].kind, CalloutKind::Redis);
    let a = args(sent[0].body.as_ref().unwrap());
    assert!(a[1].contains("settle"), "the settlement script");
    assert_eq!(a[3], "aigw-trl:team:0:a");
    assert_eq!(
        &a[4..],
        &["2", "300000", "300000", "60000000", "209000", "100000", "100000", "60000000", "1000"]
    );
    // Once: a second answer for the same call finds nothing to give back.
    gw.reply_to_root(reserve, int_array(&[0, 0, 91_000, 99_000]));
    assert_eq!(gw.root_host().state.borrow().callouts.len(), 1);
}

#[test]
fn a_refused_or_failed_reservation_of_a_client_that_left_gives_nothing_back() {
    for reply in [
        // Refused by the first record: nothing was taken.
        Reply::Redis(b"*5\r\n:1\r\n:0\r\n:5000\r\n:0\r\n:99000\r\n".to_vec()),
        Reply::Redis(Vec::new()),
        Reply::Redis(b"-ERR script failed\r\n".to_vec()),
    ] {
        let (mut gw, reserve) = left_while_reserving();
        gw.reply_to_root(reserve, reply);
        assert!(gw.root_host().state.borrow().callouts.is_empty());
    }
}
