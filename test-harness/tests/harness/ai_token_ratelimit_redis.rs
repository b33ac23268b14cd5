//! The Higress build of `ai_token_ratelimit.wasm` with `backend: redis`, its Redis calls served
//! by a real `redis-server`: two simulated gateways (two workers each, no shared data between
//! the gateways) hammer one key and never admit more than the bucket; the answer's usage is
//! settled so unused reservations come back; refusals carry their headers; records expire when
//! full again; an unreachable Redis takes the failure mode. This runs our Lua scripts on Redis.

use std::path::PathBuf;

use aigw_harness::{headers, Env, MetricValue, Plugin, PluginSpec, Profile, StreamId};
use aigw_shared::resp::Value;

use crate::ai_token_ratelimit::{begin_or_refusal as begin, complete};
use crate::common::redis::RedisServer;

fn higress_wasm() -> PathBuf {
    crate::common::higress_wasm("ai_token_ratelimit")
}

/// 2000 tokens a day (the refill, ~0.02 tokens a second on Redis's real clock, is below one
/// token over the test) and 1000 requests a minute, per `x-team`.
fn config(failure_mode: &str) -> String {
    format!(
        r#"{{"backend": "redis", "failureMode": "{failure_mode}",
            "redis": {{"cluster": "outbound|6379||redis.default.svc.cluster.local", "timeoutMs": 500}},
            "rules": [{{"name": "team", "keys": ["header:x-team"],
              "limits": [{{"tokens": 2000, "per": "day"}}, {{"requests": 1000, "per": "minute"}}]}}]}}"#
    )
}

/// A gateway: the Higress build with two workers, its Redis calls sent to `redis`.
fn gateway(redis: &RedisServer, failure_mode: &str) -> (Env, Plugin) {
    let env = Env::new();
    redis.serve(&env);
    let spec = PluginSpec::new(higress_wasm())
        .config(config(failure_mode))
        .profile(Profile::Higress);
    let p = Plugin::load_workers(&env, spec, 2).unwrap_or_else(|e| panic!("{e}"));
    (env, p)
}

fn header(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn counter(env: &Env, name: &str) -> u64 {
    match env.metric(name) {
        Some(MetricValue::Counter(v)) => v,
        _ => 0,
    }
}

#[test]
fn two_gateways_sharing_redis_never_admit_more_than_the_bucket() {
    let redis = RedisServer::start();
    let (env_a, mut a) = gateway(&redis, "closed");
    let (env_b, mut b) = gateway(&redis, "closed");
    let mut charged = 0u64;
    let mut admitted = 0u64;
    let mut refusal = None;
    for round in 0u64.. {
        // Eight requests in flight at once, spread over the four workers of the two gateways.
        let mut in_flight = Vec::new();
        for i in 0..8usize {
            let gw = if i % 2 == 0 { &mut a } else { &mut b };
            match begin(gw, i / 2 % 2, "x") {
                Ok(id) => in_flight.push((i, id)),
                Err(r) => refusal = Some(r),
            }
        }
        assert!(
            charged + 209 * in_flight.len() as u64 <= 2000,
            "round {round}: {} reservations of 209 in flight with {charged} charged",
            in_flight.len()
        );
        if in_flight.is_empty() {
            break;
        }
        for (k, (i, id)) in in_flight.into_iter().enumerate() {
            let output = (round * 37 + k as u64 * 53) % 201;
            let gw = if i % 2 == 0 { &mut a } else { &mut b };
            complete(gw, i / 2 % 2, id, 9, output);
            charged += 9 + output;
            admitted += 1;
        }
        assert!(charged <= 2000, "round {round}: {charged} tokens charged");
    }
    // Settled usage came back: the bucket was used up to less than one reservation.
    assert!(charged > 2000 - 209, "only {charged} of 2000 admitted");
    let allowed = "aigw.ai_token_ratelimit.outcome.allowed.requests_total";
    assert_eq!(
        counter(&env_a, allowed) + counter(&env_b, allowed),
        admitted
    );
    assert!(
        counter(&env_a, allowed) > 0 && counter(&env_b, allowed) > 0,
        "both gateways admitted"
    );
    let errors = "aigw.ai_token_ratelimit.outcome.backend_error.requests_total";
    assert_eq!(counter(&env_a, errors) + counter(&env_b, errors), 0);
    // The refusal: a 429 with the wait and the bucket's state.
    let (status, refused) = refusal.expect("a request was refused");
    assert_eq!(status, 429);
    let wait: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!(wait > 60, "the day's refill is slow: {wait} s");
    assert_eq!(
        header(&refused, "x-ratelimit-limit-tokens").as_deref(),
        Some("2000")
    );
    let left: u64 = header(&refused, "x-ratelimit-remaining-tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(left, 2000 - charged, "what Redis holds is what was charged");
    // The record is in Redis, and expires once the buckets would be full again (~ a day).
    let ttl = redis
        .command(&["PTTL", "aigw-trl:team:0:x"])
        .unwrap()
        .as_int()
        .unwrap();
    assert!(ttl > 60_000 && ttl <= 86_400_000 + 1_000, "PTTL {ttl}");
}

#[test]
fn an_unused_reservation_comes_back_and_a_team_s_record_is_its_own() {
    let redis = RedisServer::start();
    let (_env, mut gw) = gateway(&redis, "closed");
    let first = begin(&mut gw, 0, "y").unwrap();
    complete(&mut gw, 0, first, 9, 0);
    // 9 tokens used of the 209 reserved: 1991 left for the next reservation's headers.
    let id = begin(&mut gw, 1, "y").unwrap();
    let step = vm_response(&mut gw, 1, id);
    assert_eq!(
        header(&step, "x-ratelimit-remaining-tokens").as_deref(),
        Some("1782")
    );
    let other = begin(&mut gw, 0, "z").unwrap();
    let step = vm_response(&mut gw, 0, other);
    assert_eq!(
        header(&step, "x-ratelimit-remaining-tokens").as_deref(),
        Some("1791")
    );
    let record = redis.command(&["GET", "aigw-trl:team:0:y"]).unwrap();
    assert!(matches!(record, Value::Bulk(Some(_))), "{record:?}");
}

/// Response headers for stream `id` on worker `w` as the plugin set them.
fn vm_response(p: &mut Plugin, w: usize, id: StreamId) -> Vec<(String, Vec<u8>)> {
    let rh = headers(&[(":status", "200"), ("content-type", "application/json")]);
    let step = p.worker(w).response_headers(id, rh, false).unwrap();
    step.headers().cloned().unwrap_or_default()
}

#[test]
fn an_unreachable_redis_fails_open_or_closed_as_configured() {
    let redis = RedisServer::start();
    let (env_open, mut open) = gateway(&redis, "open");
    let (_env_closed, mut closed) = gateway(&redis, "closed");
    drop(redis);
    let id = begin(&mut open, 0, "x").expect("forwarded unlimited");
    complete(&mut open, 0, id, 9, 1);
    assert_eq!(
        counter(
            &env_open,
            "aigw.ai_token_ratelimit.outcome.backend_error.requests_total"
        ),
        1
    );
    let (status, _) = begin(&mut closed, 0, "x").expect_err("refused");
    assert_eq!(status, 503);
}

#[test]
fn a_redis_not_reachable_at_configure_time_is_connected_by_the_first_request() {
    // The cluster is not there yet when the configuration comes (Higress: the Redis service's
    // cluster arrives after the plugin), so the connection made at start fails.
    let redis = RedisServer::start();
    let env = Env::new();
    let spec = PluginSpec::new(higress_wasm())
        .config(config("closed"))
        .profile(Profile::Higress);
    let mut gw = Plugin::load_workers(&env, spec, 1).unwrap_or_else(|e| panic!("{e}"));
    redis.serve(&env);
    let id = begin(&mut gw, 0, "x").expect("connected and reserved at the first request");
    complete(&mut gw, 0, id, 9, 1);
    let errors = "aigw.ai_token_ratelimit.outcome.backend_error.requests_total";
    assert_eq!(counter(&env, errors), 0);
}

#[test]
fn a_debt_centuries_long_is_still_a_record_redis_accepts() {
    // Charged after the answer: an answer of ten trillion tokens against 2000 a day is a debt
    // that would take billions of years to refill. The expiry is capped (ten years) and written
    // as an integer: Lua printed it as 4.32e+17, which Redis refuses, and the settlement was lost.
    let redis = RedisServer::start();
    let env = Env::new();
    redis.serve(&env);
    let after = config("closed").replace(
        r#""name": "team", "keys""#,
        r#""name": "team", "chargeAfterResponse": true, "keys""#,
    );
    let spec = PluginSpec::new(higress_wasm())
        .config(after)
        .profile(Profile::Higress);
    let mut p = Plugin::load_workers(&env, spec, 1).unwrap_or_else(|e| panic!("{e}"));
    let id = begin(&mut p, 0, "big").unwrap();
    complete(&mut p, 0, id, 9, 10_000_000_000_000);
    let errors = "aigw.ai_token_ratelimit.outcome.backend_error.requests_total";
    assert_eq!(counter(&env, errors), 0, "the settlement was accepted");
    let ttl = redis
        .command(&["PTTL", "aigw-trl:team:0:big"])
        .unwrap()
        .as_int()
        .unwrap();
    assert!(
        ttl > 315_000_000_000 && ttl <= 315_360_001_000,
        "PTTL {ttl}"
    );
    // In debt: the next request is refused.
    let (status, _) = begin(&mut p, 0, "big").expect_err("refused");
    assert_eq!(status, 429);
}

#[test]
fn a_reservation_whose_client_left_before_redis_answered_is_given_back() {
    let redis = RedisServer::start();
    let (env, mut gw) = gateway(&redis, "closed");
    env.hold_redis(true);
    let vm = gw.worker(0);
    let id = vm.create_stream().unwrap();
    vm.request_headers(id, crate::ai_token_ratelimit::chat_headers("gone"), false)
        .unwrap();
    let step = vm
        .request_body(
            id,
            &crate::ai_token_ratelimit::fixture("chat.request.json"),
            true,
        )
        .unwrap();
    assert!(
        step.headers().is_none(),
        "waiting for the reservation script"
    );
    // The client leaves; then Redis runs the script (it takes the reservation) and answers.
    vm.finish_stream(id).unwrap();
    vm.release_redis().unwrap();
    env.hold_redis(false);
    let taken = redis.command(&["GET", "aigw-trl:team:0:gone"]).unwrap();
    assert!(
        matches!(taken, Value::Bulk(Some(_))),
        "the script ran: {taken:?}"
    );
    // Everything came back: the next request sees the full bucket less its own reservation.
    let next = begin(&mut gw, 1, "gone").unwrap();
    let step = vm_response(&mut gw, 1, next);
    assert_eq!(
        header(&step, "x-ratelimit-remaining-tokens").as_deref(),
        Some("1791")
    );
}
