//! The filter on the mock host: the pick lands in the request header, the same prompt prefix
//! sticks to one endpoint, load reports and failures steer later requests away, sessions stick,
//! saturation sheds in the caller's protocol, and requests in flight are counted out at the end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use ai_load_balancer::{fleet, store, LoadBalancer};
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Gateway, Outcome, UpstreamReply};
use serde_json::Value;

const HEADER: &str = "x-gateway-destination-endpoint";
const PODS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

fn config(extra: &str) -> String {
    format!(
        r#"{{"endpoints": [{{"address": "{}"}}, {{"address": "{}"}}, {{"address": "{}"}}]{extra}}}"#,
        PODS[0], PODS[1], PODS[2]
    )
}

fn fixture(name: &str) -> String {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fixture's conversation with another last user message.
fn chat(user: &str) -> String {
    let mut v: Value = serde_json::from_str(&fixture("chat.request.json")).unwrap();
    v["messages"][1]["content"] = Value::String(user.to_owned());
    v.to_string()
}

fn reply(status: u16, orca: Option<&str>) -> UpstreamReply {
    let mut r = UpstreamReply::json(r#"{"choices":[]}"#);
    r.status = status;
    if let Some(o) = orca {
        r.headers
            .push(("endpoint-load-metrics".into(), o.as_bytes().to_vec()));
    }
    r
}

fn picked(out: &Outcome) -> String {
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    out.upstream_header(HEADER).expect("an endpoint was chosen")
}

fn gateway(extra: &str) -> Gateway<LoadBalancer> {
    Gateway::new(&config(extra), Capabilities::FULL)
}

#[test]
fn the_chosen_address_goes_into_the_header_and_the_load_report_is_asked_for() {
    let mut gw = gateway("");
    let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat("hi")));
    assert!(PODS.contains(&picked(&out).as_str()));
    assert_eq!(
        out.upstream_header("endpoint-load-metrics-format")
            .as_deref(),
        Some("TEXT")
    );
    assert_eq!(
        out.upstream_body,
        chat("hi").as_bytes(),
        "the body passes untouched"
    );
}

#[test]
fn requests_sharing_a_prompt_prefix_stick_to_one_endpoint() {
    let mut gw = gateway("");
    let first = picked(&gw.run(Exchange::post_json("/v1/chat/completions", &chat("one"))));
    for q in [
        "two",
        "three",
        "a much longer question about the plans and their prices",
    ] {
        let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat(q)));
        assert_eq!(picked(&out), first, "{q}");
    }
    // Decisions and picks are counted on the worker and added to the counters on its tick.
    let prefix = "aigw.ai_load_balancer.decision.prefix.requests_total";
    assert_eq!(gw.root_host().metric_value(prefix), None);
    gw.tick();
    let host = gw.root_host();
    assert_eq!(host.metric_value(prefix), Some(3));
    assert_eq!(
        host.metric_value("aigw.ai_load_balancer.decision.load.requests_total"),
        Some(1),
        "the first: nothing held anywhere"
    );
    let blocks = |what: &str| {
        host.metric_value(&format!("aigw.ai_load_balancer.prefix.{what}_blocks_total"))
            .unwrap()
    };
    assert!(
        blocks("matched") > 0 && blocks("matched") < blocks("prompt"),
        "{} of {}",
        blocks("matched"),
        blocks("prompt")
    );
    let label = first.replace(['.', ':'], "_");
    let picks = format!("aigw.ai_load_balancer.endpoint.{label}.picks_total");
    assert_eq!(host.metric_value(&picks), Some(4));
}

#[test]
fn a_client_cannot_choose_the_endpoint_itself() {
    let mut gw = gateway("");
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("hi")).header(HEADER, "192.168.1.1:22"),
    );
    assert!(PODS.contains(&picked(&out).as_str()));
}

#[test]
fn a_saturated_endpoint_is_avoided_until_its_report_is_stale() {
    let mut gw = gateway(r#", "load": {"maxAgeMs": 1000}"#);
    let first = picked(&gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("one")).reply(reply(
            200,
            Some(
                "TEXT named_metrics.num_requests_waiting=9, named_metrics.kv_cache_usage_perc=0.5",
            ),
        )),
    ));
    for q in ["two", "three", "four"] {
        let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat(q)));
        assert_ne!(picked(&out), first, "saturated: queue 9 over 5");
    }
}

#[test]
fn a_stale_report_no_longer_counts() {
    let mut gw =
        gateway(r#", "load": {"maxAgeMs": 1000}, "scorers": {"prefix": 0, "hardware": 0}"#);
    let first = picked(&gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("one")).reply(reply(
            200,
            Some("TEXT named_metrics.num_requests_waiting=9"),
        )),
    ));
    gw.advance(Duration::from_millis(1500));
    let mut seen = false;
    for i in 0..30 {
        seen |= picked(&gw.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("q{i}")),
        ))) == first;
    }
    assert!(seen, "read as idle again");
}

#[test]
fn an_endpoint_that_failed_is_skipped_for_its_cool_off() {
    let mut gw = gateway(r#", "unhealthyCoolOffMs": 5000, "scorers": {"prefix": 0}"#);
    let first =
        gw.run(Exchange::post_json("/v1/chat/completions", &chat("one")).reply(reply(503, None)));
    let dead = picked(&first);
    for i in 0..12 {
        let out = gw.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("q{i}")),
        ));
        assert_ne!(picked(&out), dead);
    }
    let metric = format!(
        "aigw.ai_load_balancer.endpoint.{}.marked_down_total",
        dead.replace(['.', ':'], "_")
    );
    assert_eq!(first.host.metric_value(&metric), Some(1), "{metric}");
    gw.advance(Duration::from_secs(6));
    let mut back = false;
    for i in 0..30 {
        back |= picked(&gw.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("r{i}")),
        ))) == dead;
    }
    assert!(back, "after the cool-off it is picked again");
}

#[test]
fn a_503_with_a_load_report_is_the_server_speaking_not_a_dead_endpoint() {
    let mut gw = gateway(r#", "scorers": {"prefix": 0, "queue": 0, "kvCache": 0}"#);
    let first = picked(&gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("one")).reply(reply(
            503,
            Some("TEXT named_metrics.num_requests_waiting=1"),
        )),
    ));
    let mut seen = false;
    for i in 0..30 {
        seen |= picked(&gw.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("q{i}")),
        ))) == first;
    }
    assert!(seen);
}

#[test]
fn a_session_sticks_to_its_endpoint_whatever_the_prompt() {
    let mut gw = gateway("");
    let first = picked(&gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("one")).header("x-session-id", "s-1"),
    ));
    for i in 0..10 {
        let body = format!(
            r#"{{"model":"sim-chat","messages":[{{"role":"user","content":"unrelated {i}"}}]}}"#
        );
        let out = gw
            .run(Exchange::post_json("/v1/chat/completions", &body).header("x-session-id", "s-1"));
        assert_eq!(picked(&out), first);
    }
}

#[test]
fn all_endpoints_saturated_is_a_429_in_the_callers_protocol() {
    let mut gw = gateway(r#", "scorers": {"prefix": 0}"#);
    // Each request goes to an endpoint not known to be saturated, which then reports 0.9.
    for _ in 0..3 {
        let _ = gw.run(
            Exchange::post_json("/v1/chat/completions", &chat("x")).reply(reply(
                200,
                Some("TEXT named_metrics.kv_cache_usage_perc=0.9"),
            )),
        );
    }
    let body = r#"{"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let out = gw.run(Exchange::post_json("/v1/messages", body));
    let reply = out.local_response.expect("shed");
    assert_eq!(reply.status, 429);
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| k == "retry-after" && v == b"1"));
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["type"], "error", "Anthropic's shape");
    assert_eq!(
        out.host
            .metric_value("aigw.ai_load_balancer.outcome.shed.requests_total"),
        Some(1)
    );
}

/// Requests in flight to `pod` as its shared endpoint record says (every live worker's entry;
/// worker ids start at 1), or `None` when no record was written.
fn shared_in_flight(gw: &Gateway<LoadBalancer>, pod: &str) -> Option<u32> {
    let key = format!("aigw.lb.ep.{pod}");
    let (record, cas) = store::read_endpoint(gw.root_host(), &key).unwrap();
    cas.map(|_| record.in_flight_of_others(0, gw.now_nanos()))
}

#[test]
fn requests_in_flight_are_counted_out_when_they_end() {
    let mut gw = gateway(r#", "scorers": {"prefix": 0}"#);
    let mut used = Vec::new();
    for i in 0..5 {
        let out = gw.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("{i}")),
        ));
        used.push(picked(&out));
        // The worker's own view is exact at once.
        for s in 0..3 {
            assert_eq!(
                gw.state().fleet.seen(s, gw.now_nanos(), u64::MAX).in_flight,
                0
            );
        }
    }
    // The store too: the first request published its pick with the read it made, and its end
    // (the worker's last request there) at once.
    // (A pick made within the cache period is published with the next batch; its end came
    // first, so nothing needed writing for it.)
    let written: Vec<u32> = used
        .iter()
        .filter_map(|pod| shared_in_flight(&gw, pod))
        .collect();
    assert!(!written.is_empty(), "the first pick was published");
    assert!(written.iter().all(|&n| n == 0), "{written:?}");
}

#[test]
fn a_dead_workers_requests_in_flight_expire() {
    let mut gw = gateway(r#", "scorers": {"prefix": 0, "hardware": 0, "queue": 0, "kvCache": 0}"#);
    // Another worker's VM died with 40 requests counted to the first pod.
    let key = format!("aigw.lb.ep.{}", PODS[0]);
    let dead = store::Publish {
        worker: 999,
        in_flight: 40,
        ..store::Publish::default()
    };
    store::publish_endpoint(gw.root_host(), &key, None, &dead, gw.now_nanos()).unwrap();
    let mut open = Vec::new();
    for i in 0..6 {
        let out = gw.run(
            Exchange::post_json("/v1/chat/completions", &chat(&format!("a{i}")))
                .reply(reply(200, None)),
        );
        open.push(picked(&out));
    }
    assert!(
        !open.contains(&PODS[0].to_owned()),
        "over its bound: {open:?}"
    );
    gw.advance(Duration::from_nanos(store::WORKER_TTL_NS));
    let mut seen = false;
    for i in 0..12 {
        let out = gw.run(
            Exchange::post_json("/v1/chat/completions", &chat(&format!("b{i}"))).reply(reply(
                200,
                Some("TEXT named_metrics.num_requests_waiting=0"),
            )),
        );
        seen |= picked(&out) == PODS[0];
    }
    assert!(seen, "the dead worker's count expired");
    gw.advance(fleet::TICK);
    assert!(
        !gw.root_host().shared.borrow()[&key]
            .0
            .windows(4)
            .any(|w| w == 999u32.to_le_bytes()),
        "and its entry was dropped by the next write"
    );
}

#[test]
fn the_list_header_orders_every_usable_endpoint_for_override_host() {
    let mut gw = gateway(r#", "listHeader": "x-gateway-destination-endpoint-list""#);
    let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat("hi")));
    let list = out
        .upstream_header("x-gateway-destination-endpoint-list")
        .unwrap();
    let parts: Vec<&str> = list.split(',').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], picked(&out));
}

#[test]
fn lora_requests_go_to_the_endpoints_serving_the_adapter() {
    let cfg = format!(
        r#"{{"endpoints": [{{"address": "{}"}}, {{"address": "{}", "loraAdapters": ["sql-lora"]}}],
            "scorers": {{"lora": 5}}}}"#,
        PODS[0], PODS[1]
    );
    let mut gw: Gateway<LoadBalancer> = Gateway::new(&cfg, Capabilities::FULL);
    for i in 0..10 {
        let body =
            format!(r#"{{"model":"sql-lora","messages":[{{"role":"user","content":"q{i}"}}]}}"#);
        assert_eq!(
            picked(&gw.run(Exchange::post_json("/v1/chat/completions", &body))),
            PODS[1]
        );
    }
}

#[test]
fn without_endpoints_or_shared_data_requests_pass_untouched() {
    let mut gw: Gateway<LoadBalancer> = Gateway::new("{}", Capabilities::FULL);
    let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat("hi")));
    assert_eq!(out.upstream_header(HEADER), None);
    let mut gw: Gateway<LoadBalancer> = Gateway::new(&config(""), Capabilities::APISIX);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("hi")).capabilities(Capabilities::APISIX),
    );
    assert_eq!(out.upstream_header(HEADER), None);
    assert!(out.local_response.is_none());
}

#[test]
fn a_body_that_is_not_json_is_routed_by_load_alone() {
    let mut gw = gateway("");
    let out = gw.run(Exchange::post_json("/v1/chat/completions", "{not json"));
    assert!(PODS.contains(&picked(&out).as_str()));
}

#[test]
fn a_body_over_the_limit_is_routed_unhashed() {
    let mut gw = gateway(r#", "maxRequestBodyBytes": 100"#);
    let out = gw.run(Exchange::post_json("/v1/chat/completions", &chat("hi")).chunked(50));
    assert!(PODS.contains(&picked(&out).as_str()));
    assert_eq!(out.upstream_body, chat("hi").as_bytes());
}

#[test]
fn get_requests_are_routed_without_reading_a_body() {
    let mut gw = gateway("");
    let out = gw.run(Exchange::get("/v1/models"));
    assert!(PODS.contains(&picked(&out).as_str()));
}

#[test]
fn with_a_match_only_requests_carrying_the_header_value_are_routed() {
    let mut gw = gateway(r#", "match": {"header": "x-aigw-upstream", "values": ["fleet"]}"#);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("hi"))
            .header("x-aigw-upstream", "openai"),
    );
    assert_eq!(
        out.upstream_header(HEADER),
        None,
        "another provider's request passes untouched"
    );
    assert_eq!(out.upstream_header("endpoint-load-metrics-format"), None);
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", &chat("hi")).header("x-aigw-upstream", "fleet"),
    );
    assert!(PODS.contains(&picked(&out).as_str()));
}

#[test]
fn on_higress_hosts_it_holds_unhealthy_or_busy_in_its_scrapes_are_avoided() {
    let mut gw: Gateway<LoadBalancer> = Gateway::new(
        &config(r#", "scorers": {"prefix": 0}"#),
        Capabilities::HIGRESS,
    );
    let listed = [
        (PODS[0], r#"{"health_status":"Unhealthy"}"#),
        (
            PODS[1],
            r#"{"health_status":"Healthy","metrics":"vllm:num_requests_waiting{model_name=\"m\"} 40\n"}"#,
        ),
        (PODS[2], r#"{"health_status":"Healthy","metrics":""}"#),
    ];
    for i in 0..12 {
        let out = gw.run(
            Exchange::post_json("/v1/chat/completions", &chat(&format!("h{i}")))
                .capabilities(Capabilities::HIGRESS)
                .upstream_hosts(&listed),
        );
        assert_eq!(picked(&out), PODS[2], "request {i}");
    }
    // On stock Envoy the host lists nothing: the same requests spread over all three.
    let mut envoy = gateway(r#", "scorers": {"prefix": 0}"#);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..30 {
        seen.insert(picked(&envoy.run(Exchange::post_json(
            "/v1/chat/completions",
            &chat(&format!("e{i}")),
        ))));
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn the_hosts_list_is_read_once_per_refresh_period() {
    let mut gw: Gateway<LoadBalancer> = Gateway::new(
        &config(r#", "scorers": {"prefix": 0}, "load": {"upstreamHostsMs": 1000}"#),
        Capabilities::HIGRESS,
    );
    let down = [(PODS[0], r#"{"health_status":"Unhealthy"}"#)];
    let run = |gw: &mut Gateway<LoadBalancer>, i: usize, listed: &[(&str, &str)]| {
        picked(
            &gw.run(
                Exchange::post_json("/v1/chat/completions", &chat(&format!("r{i}")))
                    .capabilities(Capabilities::HIGRESS)
                    .upstream_hosts(listed),
            ),
        )
    };
    // Read on the first request: pod 0 is held unhealthy ...
    assert_ne!(run(&mut gw, 0, &down), PODS[0]);
    // ... and stays so within the period, although the host would now say otherwise.
    for i in 1..20 {
        assert_ne!(run(&mut gw, i, &[]), PODS[0], "request {i}");
    }
    gw.advance(Duration::from_millis(1001));
    let mut back = false;
    for i in 20..50 {
        back |= run(&mut gw, i, &[]) == PODS[0];
    }
    assert!(
        back,
        "read again after the period: nothing listed, pod 0 takes requests"
    );
}

#[test]
fn the_hosts_scraped_load_ages_like_a_report_while_its_health_holds_for_the_period() {
    let mut gw: Gateway<LoadBalancer> = Gateway::new(
        &config(
            r#", "scorers": {"prefix": 0}, "load": {"upstreamHostsMs": 10000, "maxAgeMs": 2000}"#,
        ),
        Capabilities::HIGRESS,
    );
    let listed = [
        (PODS[0], r#"{"health_status":"Unhealthy"}"#),
        (
            PODS[1],
            r#"{"health_status":"Healthy","metrics":"vllm:num_requests_waiting 40\n"}"#,
        ),
    ];
    let run = |gw: &mut Gateway<LoadBalancer>, i: usize| {
        picked(
            &gw.run(
                Exchange::post_json("/v1/chat/completions", &chat(&format!("s{i}")))
                    .capabilities(Capabilities::HIGRESS)
                    .upstream_hosts(&listed),
            ),
        )
    };
    for i in 0..10 {
        assert_eq!(run(&mut gw, i), PODS[2], "request {i}");
    }
    // Three seconds on, the view (read ten seconds apart) still holds pod 0 unhealthy, but its
    // queue count for pod 1 is older than maxAgeMs: pod 1 takes requests again.
    gw.advance(Duration::from_secs(3));
    let mut seen = std::collections::BTreeSet::new();
    for i in 10..40 {
        seen.insert(run(&mut gw, i));
    }
    assert!(!seen.contains(PODS[0]));
    assert!(seen.contains(PODS[1]), "{seen:?}");
}
