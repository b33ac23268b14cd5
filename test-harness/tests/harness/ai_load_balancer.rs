//! The built `ai_load_balancer.wasm` in the harness, with two worker VMs sharing data: a prompt
//! prefix routed by one worker is found by the other, requests in flight on both spread over the
//! endpoints and are counted out when they end, a load report learned by one steers the other,
//! an answer from another host than the pick (Envoy's retry down the list) cools the pick off;
//! the APISIX profile passes requests through without trapping; bad config is refused at load.

use std::path::PathBuf;

use aigw_harness::{
    header_value, headers, wasm_path, Action, Chain, Env, HarnessError, Plugin, PluginSpec,
    Profile, Request, StreamId, UpstreamRequest, UpstreamResponse,
};

const HEADER: &str = "x-gateway-destination-endpoint";
const PODS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"];

fn wasm() -> PathBuf {
    wasm_path("ai_load_balancer").unwrap_or_else(|e| panic!("{e}"))
}

fn config(extra: &str) -> String {
    format!(
        r#"{{"endpoints": [{{"address": "{}"}}, {{"address": "{}"}}, {{"address": "{}"}}]{extra}}}"#,
        PODS[0], PODS[1], PODS[2]
    )
}

fn spec(config: &str) -> PluginSpec {
    PluginSpec::new(wasm())
        .config(config)
        .headers_stop_iteration(true)
}

fn chat(system: &str, user: &str) -> Vec<u8> {
    serde_json::json!({"model": "m", "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": user}]})
    .to_string()
    .into_bytes()
}

fn long_system() -> String {
    (0..200).map(|i| format!("rule{i} ")).collect()
}

/// Send a chat request's headers and body on worker `w`; the endpoint it was sent to.
fn begin(p: &mut Plugin, w: usize, body: &[u8]) -> (StreamId, String) {
    let vm = p.worker(w);
    let id = vm.create_stream().unwrap();
    let h = headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-type", "application/json"),
    ]);
    let step = vm.request_headers(id, h, false).unwrap();
    // Without prefix hashing the pick is made from the headers alone.
    let at_headers = step.action == Some(Action::Continue);
    let sent_early = step.headers().cloned();
    let step = vm.request_body(id, body, true).unwrap();
    assert!(step.local_reply.is_none(), "{:?}", step.local_reply);
    let sent = if at_headers {
        sent_early.expect("headers passed at once")
    } else {
        step.headers()
            .cloned()
            .expect("headers released with the body")
    };
    let pick = header_value(&sent, HEADER).expect("an endpoint was chosen");
    (id, pick)
}

/// Answer stream `id` with `status` and an optional ORCA report, and end it.
fn complete(p: &mut Plugin, w: usize, id: StreamId, status: &str, orca: Option<&str>) {
    let vm = p.worker(w);
    let mut h = vec![(":status", status), ("content-type", "application/json")];
    if let Some(o) = orca {
        h.push(("endpoint-load-metrics", o));
    }
    let step = vm.response_headers(id, headers(&h), false).unwrap();
    assert_eq!(step.action, Some(Action::Continue), "never held");
    vm.response_body(id, b"{}", true).unwrap();
    vm.finish_stream(id).unwrap();
}

/// Requests in flight to `pod` by the endpoint's shared record: the sum of the workers' entries
/// (version byte, …, the entry count at byte 36, then 16-byte entries: id, count, time).
fn in_flight(env: &Env, pod: &str) -> u32 {
    let Some((rec, _)) = env.shared_data("ai-load-balancer", &format!("aigw.lb.ep.{pod}")) else {
        return 0;
    };
    assert_eq!(rec[0], 1, "record version");
    (0..usize::from(rec[36]))
        .map(|i| u32::from_le_bytes(rec[37 + 16 * i + 4..37 + 16 * i + 8].try_into().unwrap()))
        .sum()
}

/// Workers read the endpoint records at most every `load.refreshMs` (1 ms by default): tests
/// that need a worker to see another's latest move the clock on by more than that.
const REFRESH: std::time::Duration = std::time::Duration::from_millis(5);

#[test]
fn a_prefix_routed_by_one_worker_is_found_by_the_other() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, spec(&config("")), 2).unwrap();
    let (id, first) = begin(&mut p, 0, &chat(&long_system(), "one"));
    complete(&mut p, 0, id, "200", None);
    for (i, q) in ["two", "three", "four", "five"].iter().enumerate() {
        let w = 1 - i % 2;
        let (id, pick) = begin(&mut p, w, &chat(&long_system(), q));
        assert_eq!(pick, first, "worker {w}");
        complete(&mut p, w, id, "200", None);
    }
}

#[test]
fn requests_in_flight_on_both_workers_spread_and_are_counted_out() {
    let env = Env::new();
    let cfg = config(r#", "scorers": {"prefix": 0, "hardware": 0}"#);
    let mut p = Plugin::load_workers(&env, spec(&cfg), 2).unwrap();
    let mut open = Vec::new();
    for i in 0..3 {
        let w = i % 2;
        let (id, pick) = begin(&mut p, w, &chat("s", &format!("q{i}")));
        open.push((w, id, pick));
        env.advance_clock(REFRESH);
    }
    let mut picks: Vec<&str> = open.iter().map(|(_, _, p)| p.as_str()).collect();
    picks.sort_unstable();
    assert_eq!(picks, PODS.to_vec(), "one request in flight per endpoint");
    for pod in PODS {
        assert_eq!(in_flight(&env, pod), 1);
    }
    for (w, id, _) in open {
        complete(&mut p, w, id, "200", None);
    }
    for pod in PODS {
        assert_eq!(in_flight(&env, pod), 0, "{pod}");
    }
}

#[test]
fn a_load_report_learned_by_one_worker_steers_the_other() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, spec(&config("")), 2).unwrap();
    let (id, busy) = begin(&mut p, 0, &chat(&long_system(), "one"));
    complete(
        &mut p,
        0,
        id,
        "200",
        Some("TEXT named_metrics.num_requests_waiting=7, named_metrics.kv_cache_usage_perc=0.3"),
    );
    for q in 0..6 {
        let (id, pick) = begin(&mut p, 1, &chat(&long_system(), &format!("q{q}")));
        assert_ne!(pick, busy, "saturated, though it holds the prefix");
        complete(&mut p, 1, id, "200", None);
    }
}

#[test]
fn an_answer_from_another_host_than_the_pick_cools_the_pick_off() {
    let env = Env::new();
    // The first endpoint is picked (heaviest); Envoy says the second answered.
    let cfg = format!(
        r#"{{"endpoints": [{{"address": "{}", "weight": 5}}, {{"address": "{}"}}, {{"address": "{}"}}],
            "listHeader": "{HEADER}"}}"#,
        PODS[0], PODS[1], PODS[2]
    );
    let spec = spec(&cfg).property(&["upstream", "address"], PODS[1]);
    let mut p = Plugin::load_workers(&env, spec, 2).unwrap();
    let (id, list) = begin(&mut p, 0, &chat("s", "one"));
    assert!(
        list.starts_with(PODS[0]) && list.split(',').count() == 3,
        "{list}"
    );
    complete(&mut p, 0, id, "200", None);
    for q in 0..5 {
        let (id, list) = begin(&mut p, 1, &chat("s", &format!("q{q}")));
        assert!(!list.contains(PODS[0]), "in its cool-off: {list}");
        complete(&mut p, 1, id, "200", None);
    }
}

#[test]
fn all_saturated_is_a_429_with_retry_after_through_the_chain() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(&config(r#", "scorers": {"prefix": 0}"#)))
        .unwrap();
    let req = Request::post_json("/v1/chat/completions", chat("s", "hi"));
    let mut up = |_: &UpstreamRequest| {
        UpstreamResponse::json(200, "{}").header(
            "endpoint-load-metrics",
            "TEXT named_metrics.kv_cache_usage_perc=0.95",
        )
    };
    for _ in 0..3 {
        assert_eq!(chain.run(&req, &mut up).unwrap().status, 200);
    }
    let out = chain.run(&req, &mut up).unwrap();
    assert_eq!(out.status, 429);
    assert!(out.upstream.is_none());
    assert_eq!(out.header("retry-after").as_deref(), Some("1"));
}

#[test]
fn on_apisix_requests_pass_unrouted_and_nothing_traps() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(&config("")).profile(Profile::Apisix))
        .unwrap();
    let out = chain
        .run(
            &Request::post_json("/v1/chat/completions", chat("s", "hi")),
            &mut |_: &UpstreamRequest| UpstreamResponse::json(200, "{}"),
        )
        .unwrap();
    assert_eq!(out.status, 200);
    let sent = out.upstream.unwrap();
    assert_eq!(sent.header(HEADER), None);
}

#[test]
fn bad_config_is_refused_at_load_with_the_field_path() {
    let env = Env::new();
    let err = Plugin::load(&env, spec(r#"{"endpoints": [{"address": "pod-1"}]}"#)).unwrap_err();
    match err {
        HarnessError::ConfigRejected { ref logs, .. } => {
            assert!(
                logs.iter()
                    .any(|l| l.message.contains("endpoints[0].address")),
                "{logs:?}"
            );
        }
        other => panic!("expected ConfigRejected, got {other}"),
    }
}

/// A conversation's messages as a chat body: `[system, user, assistant, user, …]`.
fn conversation(system: &str, turns: &[&str]) -> Vec<u8> {
    let mut messages = vec![serde_json::json!({"role": "system", "content": system})];
    for (i, t) in turns.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": t}));
    }
    serde_json::json!({"model": "m", "messages": messages})
        .to_string()
        .into_bytes()
}

/// Host calls worker 0 of the chain's only filter made while `req` ran, by function.
fn host_calls(
    chain: &mut Chain,
    req: &Request,
    up: &mut dyn aigw_harness::Upstream,
) -> (
    usize,
    std::collections::BTreeMap<&'static str, usize>,
    String,
) {
    let before = chain.plugin(0).unwrap().worker(0).trace().len();
    let out = chain.run(req, up).unwrap();
    assert_eq!(out.status, 200);
    let pick = out.upstream.unwrap().header(HEADER).expect("routed");
    let vm = chain.plugin(0).unwrap().worker(0);
    let mut counts = std::collections::BTreeMap::new();
    for t in &vm.trace()[before..] {
        *counts.entry(t.function).or_insert(0) += 1;
    }
    (vm.trace().len() - before, counts, pick)
}

#[test]
fn a_routed_request_costs_a_small_constant_number_of_host_calls() {
    // Three endpoints reporting their load, a ~1.5 KB system prompt shared by conversations; the
    // measured request is a conversation's second turn (about 2 KB of prompt), the common path
    // of a chat fleet: its first turn went to a pod, the second extends that prefix.
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec(&config(""))).unwrap();
    let system: String = (0..190).map(|i| format!("rule{i:03} ")).collect();
    assert!((1400..1600).contains(&system.len()), "{}", system.len());
    let mut up = |_: &UpstreamRequest| {
        UpstreamResponse::json(200, "{}").header(
            "endpoint-load-metrics",
            "TEXT named_metrics.kv_cache_usage_perc=0.3, named_metrics.num_requests_waiting=1",
        )
    };
    let step = std::time::Duration::from_millis(2);
    // Warm-up: other conversations, so that every pod has reported and metric ids exist.
    for i in 0..6 {
        let req = Request::post_json(
            "/v1/chat/completions",
            conversation(&system, &[&format!("other question {i}")]),
        );
        chain.run(&req, &mut up).unwrap();
        env.advance_clock(step);
    }
    let first = "Please summarise the rules above in three short bullet points for me.";
    let answer = "Rules 0 to 50 concern naming; 51 to 120 concern layout; the rest concern tests and review.";
    let second = "Thanks. Now which of them matter most for a first-time contributor, and why?";
    let answer2 =
        "The naming rules: a newcomer meets them in the first review of the first change.";
    let third = "Good. Give me one example of each naming rule, with a short justification.";
    // Turn 1 after a pause: the worker reads the endpoint records again.
    env.advance_clock(REFRESH * 2);
    let turn1 = Request::post_json("/v1/chat/completions", conversation(&system, &[first]));
    let (_, _, pick1) = host_calls(&mut chain, &turn1, &mut up);
    // Turn 2 0.3 ms later (a busy gateway): the records come from the worker's cache.
    let busy = std::time::Duration::from_micros(300);
    env.advance_clock(busy);
    let body2 = conversation(&system, &[first, answer, second]);
    assert!((1900..2300).contains(&body2.len()), "{}", body2.len());
    let turn2 = Request::post_json("/v1/chat/completions", body2);
    let (cached, counts, pick2) = host_calls(&mut chain, &turn2, &mut up);
    assert_eq!(pick2, pick1, "the second turn follows the first");
    eprintln!("next turn, records cached: {cached} host calls: {counts:?}");
    env.advance_clock(busy);
    let (again, counts_again, _) = host_calls(&mut chain, &turn2, &mut up);
    eprintln!("the same request again, records cached: {again} host calls: {counts_again:?}");
    // Turn 3 after a pause (a quiet gateway): the three records are read again, the pick is
    // published with that read (one write), and so is the end (the worker's last request there:
    // a read and a write).
    env.advance_clock(REFRESH * 2);
    let body3 = conversation(&system, &[first, answer, second, answer2, third]);
    let turn3 = Request::post_json("/v1/chat/completions", body3);
    let (read, counts_read, pick3) = host_calls(&mut chain, &turn3, &mut up);
    assert_eq!(pick3, pick1, "the third turn too");
    eprintln!("next turn, records read: {read} host calls: {counts_read:?}");
    for c in [&counts, &counts_again, &counts_read] {
        assert_eq!(c.get("proxy_define_metric"), None, "ids are made once");
        assert_eq!(c.get("proxy_increment_metric"), None, "counted on the tick");
        assert_eq!(
            c.get("proxy_get_header_map_pairs"),
            Some(&2),
            "one read per header map"
        );
    }
    // 47 and 38 before the state rework (commit f68592b).
    assert!(cached <= 10, "{cached} host calls: {counts:?}");
    assert!(again <= 9, "{again} host calls: {counts_again:?}");
    assert_eq!(
        counts_again.get("proxy_set_shared_data"),
        None,
        "a repeat writes nothing"
    );
    assert!(
        read <= cached + 3 + 1 + 2,
        "{read} host calls: {counts_read:?}"
    );
}

#[test]
fn on_higress_the_pick_is_the_upstream_override_host() {
    let higress = crate::common::higress_wasm("ai_load_balancer");
    let env = Env::new();
    let spec = PluginSpec::new(higress)
        .config(config(""))
        .profile(Profile::Higress);
    let mut p = Plugin::load(&env, spec).unwrap_or_else(|e| panic!("{e}"));
    let vm = p.worker(0);
    let id = vm.create_stream().unwrap();
    let h = headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-type", "application/json"),
    ]);
    vm.request_headers(id, h, false).unwrap();
    let step = vm
        .request_body(id, &chat(&long_system(), "hello"), true)
        .unwrap();
    let picked = step
        .headers()
        .and_then(|h| header_value(h, HEADER))
        .expect("the pick in its header");
    assert!(PODS.contains(&picked.as_str()), "{picked}");
    assert_eq!(
        vm.upstream_override(id).as_deref(),
        Some(picked.as_str()),
        "Higress is told the same host"
    );
}

#[test]
fn on_higress_hosts_the_host_lists_unhealthy_or_busy_are_not_picked() {
    let higress = crate::common::higress_wasm("ai_load_balancer");
    let env = Env::new();
    env.set_upstream_hosts(&[
        (PODS[0], r#"{"health_status":"Unhealthy","metrics":""}"#),
        (
            PODS[1],
            r#"{"health_status":"Healthy","metrics":"vllm:num_requests_waiting{model_name=\"m\"} 40\n"}"#,
        ),
        (PODS[2], r#"{"health_status":"Healthy","metrics":"vllm:num_requests_waiting 0\n"}"#),
    ]);
    let spec = PluginSpec::new(higress)
        .config(config(r#", "scorers": {"prefix": 0}"#))
        .profile(Profile::Higress);
    let mut p = Plugin::load(&env, spec).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..8 {
        let (id, picked) = begin(&mut p, i % 2, &chat("short", &format!("q{i}")));
        assert_eq!(picked, PODS[2], "request {i}");
        assert_eq!(
            p.worker(i % 2).upstream_override(id).as_deref(),
            Some(PODS[2])
        );
    }
}
