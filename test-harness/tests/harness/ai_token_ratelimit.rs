//! The built `ai_token_ratelimit.wasm` in the harness: two worker VMs sharing data hammer one
//! key with requests in flight at once (admitted tokens never exceed the bucket), the virtual
//! clock refilling it, refusals in both protocols with their headers, streamed usage charged,
//! metrics, the APISIX profile (nothing traps), and bad config refused at load.

use std::path::PathBuf;
use std::time::Duration;

use aigw_harness::{
    header_value, headers, wasm_path, Action, Chain, Env, Headers, MetricValue, Plugin, PluginSpec,
    Profile, Request, StreamId, UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

fn wasm() -> PathBuf {
    wasm_path("ai_token_ratelimit").unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("testdata/providers").join(rest),
        None => root.join("plugins/ai-token-ratelimit/testdata").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The plugin holds the request headers until the body is read, as Envoy allows with
/// `allow_on_headers_stop_iteration: true`.
fn spec(config: &str) -> PluginSpec {
    PluginSpec::new(wasm())
        .config(config)
        .headers_stop_iteration(true)
}

fn team_config(limit: u64, per: &str) -> String {
    format!(
        r#"{{"rules": [{{"name": "team", "keys": ["header:x-team"],
             "limits": [{{"tokens": {limit}, "per": "{per}"}}, {{"requests": 1000, "per": "minute"}}]}}]}}"#
    )
}

fn counter(env: &Env, name: &str) -> Option<u64> {
    match env.metric(name) {
        Some(MetricValue::Counter(v)) => Some(v),
        None => None,
        other => panic!("{name}: not a counter: {other:?}"),
    }
}

/// An OpenAI answer reporting `input` and `output` tokens.
fn answer(input: u64, output: u64) -> String {
    format!(
        r#"{{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{input},"completion_tokens":{output},"total_tokens":{}}}}}"#,
        input + output
    )
}

/// Start a chat request (reserving 9 + 200 tokens) on worker `w`; `Some(id)` when admitted.
fn begin(p: &mut Plugin, w: usize, team: &str) -> Option<StreamId> {
    match begin_or_refusal(p, w, team) {
        Ok(id) => Some(id),
        Err((status, _)) => {
            assert_eq!(status, 429);
            None
        }
    }
}

/// A chat request's headers for team `team` (`x-team`).
pub(crate) fn chat_headers(team: &str) -> Headers {
    headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-type", "application/json"),
        ("x-team", team),
    ])
}

/// Start a chat request (reserving 9 + 200 tokens) on worker `w`; `Ok(id)` when admitted,
/// `Err` with the local reply's status and headers otherwise (the stream then ended).
pub(crate) fn begin_or_refusal(
    p: &mut Plugin,
    w: usize,
    team: &str,
) -> Result<StreamId, (u16, Headers)> {
    let vm = p.worker(w);
    let id = vm.create_stream().unwrap();
    let step = vm.request_headers(id, chat_headers(team), false).unwrap();
    assert_eq!(
        step.action,
        Some(Action::Pause),
        "held until the body is read"
    );
    let step = vm
        .request_body(id, &fixture("chat.request.json"), true)
        .unwrap();
    match step.local_reply {
        Some(reply) => {
            vm.finish_stream(id).unwrap();
            Err((reply.status, reply.headers))
        }
        None => {
            assert!(step.headers().is_some(), "headers released with the body");
            Ok(id)
        }
    }
}

/// Answer stream `id` on worker `w` with usage `input`/`output`, and end it.
pub(crate) fn complete(p: &mut Plugin, w: usize, id: StreamId, input: u64, output: u64) {
    let vm = p.worker(w);
    let rh = headers(&[(":status", "200"), ("content-type", "application/json")]);
    let step = vm.response_headers(id, rh, false).unwrap();
    assert_eq!(step.action, Some(Action::Continue), "never held");
    let body = answer(input, output);
    let step = vm.response_body(id, body.as_bytes(), true).unwrap();
    assert_eq!(step.body(), body.as_bytes(), "passed as it came");
    vm.finish_stream(id).unwrap();
}

#[test]
fn two_workers_hammering_one_key_never_admit_more_than_the_bucket() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, spec(&team_config(2000, "hour")), 2).unwrap();
    // With the clock standing still nothing refills: everything admitted comes out of 2000.
    let mut charged = 0u64;
    let mut admitted = 0;
    let mut round = 0u64;
    loop {
        // Six requests in flight at once, alternating between the workers.
        let started: Vec<(usize, Option<StreamId>)> =
            (0..6).map(|i| (i % 2, begin(&mut p, i % 2, "a"))).collect();
        let in_flight: Vec<(usize, StreamId)> = started
            .iter()
            .filter_map(|(w, id)| id.map(|id| (*w, id)))
            .collect();
        assert!(
            charged + 209 * in_flight.len() as u64 <= 2000,
            "round {round}: {} reservations of 209 in flight with {charged} charged",
            in_flight.len()
        );
        if in_flight.is_empty() {
            break;
        }
        for (k, (w, id)) in in_flight.into_iter().enumerate() {
            // Real usage up to the reservation (9 in + 200 out): varied per request.
            let output = (round * 37 + k as u64 * 53) % 201;
            complete(&mut p, w, id, 9, output);
            charged += 9 + output;
            admitted += 1;
        }
        assert!(charged <= 2000, "round {round}: {charged} tokens charged");
        round += 1;
    }
    // The bucket was used up to less than one reservation.
    assert!(charged > 2000 - 209, "only {charged} of 2000 admitted");
    assert_eq!(
        counter(
            &env,
            "aigw.ai_token_ratelimit.outcome.allowed.requests_total"
        ),
        Some(admitted)
    );
    assert_eq!(
        counter(&env, "aigw.ai_token_ratelimit.kind.charged.tokens_total"),
        Some(charged)
    );
    assert!(
        counter(
            &env,
            "aigw.ai_token_ratelimit.outcome.refused.requests_total"
        ) >= Some(6)
    );
    assert!(
        counter(&env, "aigw.ai_token_ratelimit.rule.team.refused_total") >= Some(6),
        "{:?}",
        env.metric_names()
    );
}

#[test]
fn on_the_virtual_clock_admitted_tokens_stay_within_capacity_plus_refill() {
    let env = Env::new();
    // 600 a minute refills 10 tokens a second.
    let mut p = Plugin::load_workers(&env, spec(&team_config(600, "minute")), 2).unwrap();
    let mut charged = 0u64;
    let mut refused = 0;
    for second in 1..=40u64 {
        env.advance_clock(Duration::from_secs(1));
        let ids: Vec<(usize, Option<StreamId>)> =
            (0..3).map(|i| (i % 2, begin(&mut p, i % 2, "a"))).collect();
        for (w, id) in ids {
            match id {
                Some(id) => {
                    complete(&mut p, w, id, 9, 200);
                    charged += 209;
                }
                None => refused += 1,
            }
        }
        assert!(
            charged <= 600 + 10 * second,
            "after {second} s: {charged} charged"
        );
    }
    assert!(refused > 0, "the limit acted");
    assert!(
        charged >= 600 + 10 * 40 - 2 * 209,
        "{charged}: the refill is used"
    );
}

#[test]
fn a_refusal_carries_retry_after_and_the_rate_limit_headers() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(&team_config(300, "minute")))
        .unwrap();
    let req = Request::post_json("/v1/chat/completions", fixture("chat.request.json"))
        .header("x-team", "a")
        .chunk_size(11);
    let json = fixture("openai-chat.response.json");
    let mut up = |_: &UpstreamRequest| UpstreamResponse::json(200, &json);
    let first = chain.run(&req, &mut up).unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.body, json, "the answer passes untouched");
    assert_eq!(
        first.header("x-ratelimit-limit-tokens").as_deref(),
        Some("300")
    );
    assert_eq!(
        first.header("x-ratelimit-remaining-tokens").as_deref(),
        Some("91")
    );
    assert_eq!(
        first.header("x-ratelimit-remaining-requests").as_deref(),
        Some("999")
    );
    chain.run(&req, &mut up).unwrap();
    let third = chain.run(&req, &mut up).unwrap();
    assert_eq!(third.status, 429);
    assert!(third.upstream.is_none());
    assert_eq!(third.header("retry-after").as_deref(), Some("2"));
    assert_eq!(
        third.header("x-ratelimit-remaining-tokens").as_deref(),
        Some("200")
    );
    assert_eq!(
        third.header("x-ratelimit-reset-tokens").as_deref(),
        Some("20s")
    );
    let body: Value = serde_json::from_slice(&third.body).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Anthropic callers get Anthropic's shape.
    let msg = br#"{"model": "claude-haiku-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "one two three four"}]}"#;
    let req = Request::post_json("/v1/messages", msg).header("x-team", "a");
    let out = chain.run(&req, &mut up).unwrap();
    assert_eq!(out.status, 429);
    let body: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[test]
fn a_streamed_answer_is_charged_its_usage_split_anywhere() {
    let sse = fixture("providers/openai-chat-stream-usage.sse");
    for size in [1, 9, 100_000] {
        let env = Env::new();
        let mut chain = Chain::new(&env)
            .with(spec(&team_config(1000, "hour")))
            .unwrap();
        let req = Request::post_json("/v1/chat/completions", fixture("chat.request.json"))
            .header("x-team", "s");
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::sse([&sse]).rechunk(size)
            })
            .unwrap();
        assert_eq!(out.body, sse, "chunks of {size}: untouched");
        assert_eq!(
            counter(&env, "aigw.ai_token_ratelimit.kind.charged.tokens_total"),
            Some(112),
            "chunks of {size}"
        );
        // 12 + 100 charged: the next reservation leaves 1000 - 112 - 209.
        let json = fixture("openai-chat.response.json");
        let next = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::json(200, &json)
            })
            .unwrap();
        assert_eq!(
            next.header("x-ratelimit-remaining-tokens").as_deref(),
            Some("679")
        );
    }
}

#[test]
fn key_values_chosen_by_clients_stay_within_the_rules_slot_table() {
    let env = Env::new();
    let config = r#"{"rules": [{"name": "team", "keys": ["header:x-team"], "maxKeys": 4,
        "limits": [{"tokens": 100000, "per": "hour"}]}]}"#;
    let mut p = Plugin::load_workers(&env, spec(config), 2).unwrap();
    for i in 0..60 {
        let id = begin(&mut p, i % 2, &format!("team-{i}")).expect("admitted");
        complete(&mut p, i % 2, id, 9, 20);
    }
    let vm = "ai-token-ratelimit";
    let slots: Vec<bool> = (0..6)
        .map(|n| {
            env.shared_data(vm, &format!("aigw-trl:team:0:#{n}"))
                .is_some()
        })
        .collect();
    assert_eq!(
        slots,
        [true, true, true, true, false, false],
        "four slots, no more"
    );
    assert!(
        env.shared_data(vm, "aigw-trl:team:0:team-7").is_none(),
        "no record per value"
    );
}

#[test]
fn a_client_that_leaves_before_the_answer_gets_all_but_the_prompt_estimate_back() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, spec(&team_config(300, "hour")), 2).unwrap();
    let first = begin(&mut p, 0, "a").expect("admitted");
    assert!(begin(&mut p, 1, "a").is_none(), "91 left while in flight");
    p.worker(0).finish_stream(first).unwrap();
    let again = begin(&mut p, 1, "a").expect("the reservation came back");
    complete(&mut p, 1, again, 9, 200);
}

#[test]
fn under_apisix_nothing_traps_and_requests_pass_unlimited() {
    let env = Env::new();
    let s = PluginSpec::new(wasm())
        .config(team_config(10, "hour"))
        .profile(Profile::Apisix);
    let mut chain = Chain::new(&env).with(s).unwrap();
    let req = Request::post_json("/v1/chat/completions", fixture("chat.request.json"))
        .header("x-team", "a");
    let json = fixture("openai-chat.response.json");
    for _ in 0..3 {
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::json(200, &json)
            })
            .unwrap_or_else(|e| panic!("must not trap under APISIX: {e}"));
        assert_eq!(out.status, 200, "fail open: no shared data to count with");
        assert_eq!(out.body, json);
    }
    let p = chain.plugin(0).unwrap();
    assert!(
        p.logs()
            .iter()
            .any(|l| l.message.contains("no shared data")),
        "the limitation is logged at configure time"
    );
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_named() {
    let env = Env::new();
    for (config, path) in [
        (
            r#"{"rules": [{"name": "a", "limits": [{"tokens": 0, "per": "minute"}]}]}"#,
            "rules[0].limits[0].tokens",
        ),
        (
            r#"{"rules": [{"name": "a", "keys": ["who"], "limits": [{"tokens": 1, "per": "minute"}]}]}"#,
            "rules[0].keys[0]",
        ),
        (r#"{"unknownField": 1}"#, "unknownField"),
    ] {
        let err = Plugin::load(&env, spec(config)).unwrap_err().to_string();
        assert!(err.contains(path), "{config}: {err}");
    }
}

#[test]
fn an_admitted_request_costs_a_bounded_number_of_host_calls() {
    let env = Env::new();
    let mut chain = Chain::new(&env)
        .with(spec(&team_config(1_000_000, "minute")))
        .unwrap();
    let req = Request::post_json("/v1/chat/completions", fixture("chat.request.json"))
        .header("x-team", "a");
    let json = fixture("openai-chat.response.json");
    let mut up = |_: &UpstreamRequest| UpstreamResponse::json(200, &json);
    chain.run(&req, &mut up).unwrap(); // warm-up: metric ids defined once per worker
    let before = chain.plugin(0).unwrap().worker(0).trace().len();
    let out = chain.run(&req, &mut up).unwrap();
    assert_eq!(out.status, 200);
    let vm = chain.plugin(0).unwrap().worker(0);
    let calls: Vec<&str> = vm.trace()[before..].iter().map(|t| t.function).collect();
    let mut counts = std::collections::BTreeMap::new();
    for c in &calls {
        *counts.entry(*c).or_insert(0) += 1;
    }
    eprintln!("{} host calls: {counts:?}", calls.len());
    assert_eq!(counts.get("proxy_define_metric"), None, "ids are cached");
    assert_eq!(
        counts.get("proxy_get_shared_data"),
        Some(&2),
        "one read to reserve, one to settle"
    );
    assert!(calls.len() <= 30, "{} host calls: {counts:?}", calls.len());
    assert!(header_value(&out.headers, "x-ratelimit-remaining-tokens").is_some());
}

#[test]
fn charging_after_the_response_instead_overshoots_with_requests_in_flight() {
    let env = Env::new();
    // Six requests in flight on two workers against 300 tokens, each using 209.
    let in_flight = |p: &mut Plugin| -> Vec<(usize, StreamId)> {
        (0..6)
            .filter_map(|i| begin(p, i % 2, "a").map(|id| (i % 2, id)))
            .collect()
    };
    let mut reserving = Plugin::load_workers(&env, spec(&team_config(300, "hour")), 2).unwrap();
    let admitted = in_flight(&mut reserving);
    assert_eq!(admitted.len(), 1, "one reservation of 209 fits in 300");
    let after = r#"{"rules": [{"name": "after", "keys": ["header:x-team"], "chargeAfterResponse": true,
                     "limits": [{"tokens": 300, "per": "hour"}]}]}"#;
    let mut charging = Plugin::load_workers(&env, spec(after), 2).unwrap();
    let admitted = in_flight(&mut charging);
    assert_eq!(
        admitted.len(),
        6,
        "nothing is charged before the answers: all pass"
    );
    for (w, id) in admitted {
        complete(&mut charging, w, id, 9, 200);
    }
    // 1254 tokens charged against 300; only now does the limit refuse.
    assert!(begin(&mut charging, 0, "a").is_none());
    assert_eq!(
        counter(&env, "aigw.ai_token_ratelimit.kind.charged.tokens_total"),
        Some(6 * 209)
    );
}

#[test]
fn a_quota_set_by_an_admin_on_one_worker_is_spent_on_the_other() {
    let env = Env::new();
    let admin = aigw_shared::consumer::key_hash_hex("admin-key");
    let config = format!(r#"{{"quota": {{"key": "header:x-team", "adminKeys": ["{admin}"]}}}}"#);
    let mut p = Plugin::load_workers(&env, spec(&config), 2).unwrap();
    assert!(begin(&mut p, 1, "a").is_none(), "no quota yet");
    let vm = p.worker(0);
    let id = vm.create_stream().unwrap();
    let h = headers(&[
        (":method", "POST"),
        (":path", "/aigw/quota"),
        (":authority", "gw"),
        ("authorization", "Bearer admin-key"),
    ]);
    vm.request_headers(id, h, false).unwrap();
    let step = vm
        .request_body(id, br#"{"key": "a", "set": 300}"#, true)
        .unwrap();
    let reply = step.local_reply.expect("answered by the plugin");
    assert_eq!(reply.status, 200);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["remaining"], 300);
    vm.finish_stream(id).unwrap();
    // 300 hold one reservation of 209, on either worker.
    let admitted = begin(&mut p, 1, "a").expect("the quota is seen by worker 1");
    assert!(begin(&mut p, 0, "a").is_none(), "91 left");
    complete(&mut p, 1, admitted, 9, 41);
    // 50 used: 250 left, one more fits.
    assert!(begin(&mut p, 0, "a").is_some());
}

#[test]
fn responses_api_requests_are_reserved_charged_and_refused_in_the_built_module() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, spec(&team_config(300, "hour")), 1).unwrap();
    let body =
        br#"{"model":"gpt-4o","input":"What is the capital of France?","max_output_tokens":250}"#;
    let answer = fixture("providers/openai-responses.response.json");
    let mut refused = None;
    for round in 0..3 {
        let vm = p.worker(0);
        let id = vm.create_stream().unwrap();
        let h = headers(&[
            (":method", "POST"),
            (":path", "/v1/responses"),
            (":authority", "gw"),
            ("content-type", "application/json"),
            ("x-team", "r"),
        ]);
        vm.request_headers(id, h, false).unwrap();
        let step = vm.request_body(id, body, true).unwrap();
        if let Some(reply) = step.local_reply {
            refused = Some((round, reply.status));
            vm.finish_stream(id).unwrap();
            break;
        }
        let rh = headers(&[(":status", "200"), ("content-type", "application/json")]);
        vm.response_headers(id, rh, false).unwrap();
        vm.response_body(id, &answer, true).unwrap();
        vm.finish_stream(id).unwrap();
    }
    // Each answer is charged its usage (22 of the ~260 reserved): the third reservation no
    // longer fits in what is left.
    assert_eq!(refused, Some((2, 429)));
    assert_eq!(
        counter(&env, "aigw.ai_token_ratelimit.kind.charged.tokens_total"),
        Some(44)
    );
}
