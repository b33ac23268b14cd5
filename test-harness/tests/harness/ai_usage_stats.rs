//! The built `ai_usage_stats.wasm` in the harness: exact metric values after known requests (JSON
//! and streamed, timings on the virtual clock), the audit record as a log line and as filter
//! state, bodies passed on untouched and never held, two workers adding to the same series,
//! the Higress and APISIX profiles, and bad config refused at load.

use std::path::PathBuf;
use std::time::Duration;

use aigw_harness::{
    headers, wasm_path, Action, Chain, Env, Event, LogLevel, MetricValue, Plugin, PluginSpec,
    Profile, Request, UpstreamRequest, UpstreamResponse,
};
use serde_json::{json, Value};

const PRICED: &str = r#"{"prices": {"gpt-4o-mini*": {"input": 0.15, "output": 0.6, "cachedInput": 0.075}},
                         "providers": {"openai": "openai", "outbound|443||api.openai.com": "openai"},
                         "consumer": {"header": "x-aigw-consumer"}}"#;

fn wasm() -> PathBuf {
    wasm_path("ai_usage_stats").unwrap_or_else(|e| panic!("{e}"))
}

fn fixture(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("testdata/providers").join(rest),
        None => root.join("plugins/ai-usage-stats/testdata").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Under the Envoy profile: route `chat`, upstream cluster `openai` (Envoy's `xds.*` properties).
fn spec(config: &str) -> PluginSpec {
    PluginSpec::new(wasm())
        .config(config)
        .property(&["xds", "route_name"], "chat")
        .property(&["xds", "cluster_name"], "openai")
}

/// `aigw.gen_ai.provider.<p>.model.<m>.route.<r>.consumer.<c>.<suffix>` from `"p/m/r/c"`.
fn name(labels: &str, suffix: &str) -> String {
    let v: Vec<&str> = labels.split('/').collect();
    format!(
        "aigw.gen_ai.provider.{}.model.{}.route.{}.consumer.{}.{suffix}",
        v[0], v[1], v[2], v[3]
    )
}

fn counter(env: &Env, labels: &str, suffix: &str) -> Option<u64> {
    match env.metric(&name(labels, suffix)) {
        Some(MetricValue::Counter(v)) => Some(v),
        None => None,
        other => panic!("{suffix}: not a counter: {other:?}"),
    }
}

fn samples(env: &Env, labels: &str, suffix: &str) -> Vec<u64> {
    match env.metric(&name(labels, suffix)) {
        Some(MetricValue::Histogram(v)) => v,
        None => Vec::new(),
        other => panic!("{suffix}: not a histogram: {other:?}"),
    }
}

fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello to the world"}]})
        .to_string()
}

fn audit_lines(p: &Plugin) -> Vec<Value> {
    p.logs()
        .iter()
        .filter(|l| l.level == LogLevel::Info)
        .filter_map(|l| l.message.strip_prefix("ai-usage-stats: "))
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

#[test]
fn a_json_answer_adds_exact_token_cost_and_request_counts() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec(PRICED)).unwrap();
    let answer = fixture("openai-chat-cached.response.json");
    let req = Request::post_json("/v1/chat/completions", chat("gpt-4o-mini", false))
        .header("x-aigw-consumer", "team-a")
        .chunk_size(9);
    for _ in 0..2 {
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::json(200, &answer)
            })
            .unwrap();
        assert_eq!(out.status, 200);
        assert_eq!(out.body, answer, "the answer passes untouched");
        assert_eq!(
            out.upstream.unwrap().body,
            chat("gpt-4o-mini", false).into_bytes(),
            "the request passes untouched"
        );
    }
    let l = "openai/gpt-4o-mini/chat/team-a";
    assert_eq!(counter(&env, l, "requests_total"), Some(2));
    assert_eq!(
        counter(&env, l, "token_type.input.tokens_total"),
        Some(2000)
    );
    assert_eq!(counter(&env, l, "token_type.output.tokens_total"), Some(80));
    assert_eq!(
        counter(&env, l, "token_type.cached.tokens_total"),
        Some(1200)
    );
    assert_eq!(
        counter(&env, l, "token_type.reasoning.tokens_total"),
        Some(50)
    );
    assert_eq!(counter(&env, l, "cost_micro_usd_total"), Some(258));
    assert_eq!(
        samples(&env, l, "token_type.input.client_token_usage"),
        [1000, 1000]
    );
    assert_eq!(samples(&env, l, "server_request_duration_ms"), [0, 0]);
    assert_eq!(env.metric(&name(l, "usage_estimated_total")), None);
}

#[test]
fn the_responses_api_is_counted_from_its_answer_json_and_streamed() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec(PRICED)).unwrap();
    let answer = fixture("providers/openai-responses.response.json");
    let stream = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/llm/responses-stream-text.sse"),
    )
    .unwrap();
    for (body, reply) in [
        (
            r#"{"model":"gpt-4o","input":"What is the capital of France?"}"#,
            UpstreamResponse::json(200, &answer),
        ),
        (
            r#"{"model":"gpt-4o","input":"What is the capital of France?","stream":true}"#,
            UpstreamResponse::sse(vec![stream.clone()]),
        ),
    ] {
        let req = Request::post_json("/v1/responses", body)
            .header("x-aigw-consumer", "team-r")
            .chunk_size(11);
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| reply.clone())
            .unwrap();
        assert_eq!(out.status, 200);
    }
    let l = "openai/gpt-4o/chat/team-r";
    assert_eq!(counter(&env, l, "requests_total"), Some(2));
    assert_eq!(counter(&env, l, "token_type.input.tokens_total"), Some(28));
    assert_eq!(counter(&env, l, "token_type.output.tokens_total"), Some(16));
    assert_eq!(counter(&env, l, "token_type.cached.tokens_total"), Some(4));
    assert_eq!(env.metric(&name(l, "usage_estimated_total")), None);
}

/// One request driven phase by phase on worker 0 with the clock moved between events; returns
/// the filter state the plugin set (read before the stream is finished).
fn streamed(p: &mut Plugin, env: &Env, body: &str, sse: &[u8], gap: Duration) -> Option<Vec<u8>> {
    let vm = p.worker(0);
    let id = vm.create_stream().unwrap();
    let h = headers(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "gw"),
        ("content-type", "application/json"),
        ("x-aigw-consumer", "team-a"),
    ]);
    let step = vm.request_headers(id, h, false).unwrap();
    assert_eq!(step.action, Some(Action::Continue), "never holds");
    let chunks: Vec<&[u8]> = body.as_bytes().chunks(5).collect();
    for (i, c) in chunks.iter().enumerate() {
        let step = vm.request_body(id, c, i + 1 == chunks.len()).unwrap();
        assert_eq!(step.action, Some(Action::Continue), "never holds");
        assert_eq!(step.body(), *c, "passed on as it came");
    }
    env.advance_clock(Duration::from_millis(100));
    let rh = headers(&[(":status", "200"), ("content-type", "text/event-stream")]);
    assert_eq!(
        vm.response_headers(id, rh, false).unwrap().action,
        Some(Action::Continue)
    );
    let text = String::from_utf8_lossy(sse).into_owned();
    let events: Vec<&str> = text.split_inclusive("\n\n").collect();
    for (i, e) in events.iter().enumerate() {
        env.advance_clock(gap);
        let eos = i + 1 == events.len();
        let step = vm.response_body(id, e.as_bytes(), eos).unwrap();
        assert_eq!(step.action, Some(Action::Continue), "never holds");
        assert_eq!(step.forwarded, [Event::Data(e.as_bytes().to_vec(), eos)]);
    }
    let state = vm.stream_property(id, &["aigw_usage_stats"]);
    vm.finish_stream(id).unwrap();
    state
}

#[test]
fn a_stream_is_timed_on_the_virtual_clock_from_its_first_content_token() {
    let env = Env::new();
    let mut p = Plugin::load(&env, spec(PRICED)).unwrap();
    let body = chat("gpt-4o-mini", true);
    let state = streamed(
        &mut p,
        &env,
        &body,
        &fixture("openai-stream-no-usage.sse"),
        Duration::from_millis(10),
    );
    let l = "openai/gpt-4o-mini/chat/team-a";
    // Headers at 100 ms, events every 10 ms: the first content ("Hello") at 120 ms, [DONE] at 150.
    assert_eq!(samples(&env, l, "server_time_to_first_token_ms"), [120]);
    assert_eq!(samples(&env, l, "server_request_duration_ms"), [150]);
    assert_eq!(
        samples(&env, l, "server_time_per_output_token_us"),
        [15_000]
    );
    assert_eq!(counter(&env, l, "token_type.output.tokens_total"), Some(3));
    assert_eq!(counter(&env, l, "usage_estimated_total"), Some(1));
    let logged = audit_lines(&p);
    assert_eq!(logged.len(), 1);
    let state: Value = serde_json::from_slice(&state.expect("filter state set")).unwrap();
    assert_eq!(
        state, logged[0],
        "the same record in the log and in filter state"
    );
    assert_eq!(
        state["timings"],
        json!({"durationMs": 150, "ttftMs": 120, "tpotUs": 15000})
    );
    assert_eq!(state["usage"]["estimated"], true);
    assert_eq!(state["consumer"], "team-a");
    assert_eq!(state["provider"], "openai");
    assert_eq!(state["route"], "chat");
}

#[test]
fn a_recorded_stream_split_anywhere_gives_the_same_numbers() {
    let sse = fixture("providers/openai-chat-stream-usage.sse");
    let body = fixture("providers/openai-chat-stream-usage.request.json");
    for size in [1, 7, 64, 100_000] {
        let env = Env::new();
        let mut chain = Chain::new(&env).with(spec("{}")).unwrap();
        let req = Request::post_json("/v1/chat/completions", &body).chunk_size(size);
        let out = chain
            .run(&req, &mut |_: &UpstreamRequest| {
                UpstreamResponse::sse([&sse]).rechunk(size)
            })
            .unwrap();
        assert_eq!(out.body, sse, "chunks of {size}: untouched");
        let l = "openai/gpt-5-nano/chat/unknown";
        assert_eq!(
            counter(&env, l, "token_type.input.tokens_total"),
            Some(12),
            "{size}"
        );
        assert_eq!(
            counter(&env, l, "token_type.output.tokens_total"),
            Some(100),
            "{size}"
        );
        assert_eq!(
            counter(&env, l, "token_type.reasoning.tokens_total"),
            Some(100),
            "{size}"
        );
        assert_eq!(
            env.metric(&name(l, "usage_estimated_total")),
            None,
            "{size}"
        );
    }
}

#[test]
fn errors_are_counted_by_type() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec("{}")).unwrap();
    let req = Request::post_json("/v1/chat/completions", chat("m", false));
    let e429 = fixture("openai-error-429.response.json");
    chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(429, &e429)
        })
        .unwrap();
    let cut = fixture("openai-stream-cut.sse");
    chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::sse([&cut])
        })
        .unwrap();
    let l = "openai/m/chat/unknown";
    assert_eq!(counter(&env, l, "requests_total"), Some(2));
    assert_eq!(counter(&env, l, "error_type.429.errors_total"), Some(1));
    assert_eq!(
        counter(&env, l, "error_type.incomplete.errors_total"),
        Some(1)
    );
}

#[test]
fn two_workers_add_to_the_same_series() {
    let env = Env::new();
    let mut plugin = Plugin::load_workers(&env, spec(PRICED), 2).unwrap();
    let answer = fixture("openai-chat-cached.response.json");
    let body = chat("gpt-4o-mini", false);
    for w in 0..2 {
        let vm = plugin.worker(w);
        let id = vm.create_stream().unwrap();
        let h = headers(&[(":method", "POST"), (":path", "/v1/chat/completions")]);
        vm.request_headers(id, h, false).unwrap();
        vm.request_body(id, body.as_bytes(), true).unwrap();
        let rh = headers(&[(":status", "200"), ("content-type", "application/json")]);
        vm.response_headers(id, rh, false).unwrap();
        vm.response_body(id, &answer, true).unwrap();
        vm.finish_stream(id).unwrap();
    }
    let l = "openai/gpt-4o-mini/chat/unknown";
    assert_eq!(counter(&env, l, "requests_total"), Some(2));
    assert_eq!(counter(&env, l, "cost_micro_usd_total"), Some(258));
}

#[test]
fn under_higress_the_cluster_name_is_mapped_to_a_provider() {
    let env = Env::new();
    let s = PluginSpec::new(wasm())
        .config(PRICED)
        .profile(Profile::Higress)
        .cluster_name("outbound|443||api.openai.com")
        .route_name("ai-route");
    let mut chain = Chain::new(&env).with(s).unwrap();
    let answer = fixture("openai-chat-cached.response.json");
    let req = Request::post_json("/v1/chat/completions", chat("gpt-4o-mini", false));
    chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, &answer)
        })
        .unwrap();
    assert_eq!(
        counter(
            &env,
            "openai/gpt-4o-mini/ai-route/unknown",
            "requests_total"
        ),
        Some(1)
    );
}

#[test]
fn the_higress_build_counts_the_same_under_higress() {
    let path = crate::common::higress_wasm("ai_usage_stats");
    let env = Env::new();
    let s = PluginSpec::new(path)
        .config(PRICED)
        .profile(Profile::Higress)
        .cluster_name("outbound|443||api.openai.com")
        .route_name("ai-route");
    let mut chain = Chain::new(&env).with(s).unwrap();
    let sse = fixture("providers/openai-chat-stream-usage.sse");
    let req = Request::post_json("/v1/chat/completions", chat("gpt-4o-mini", true))
        .header("x-aigw-consumer", "team-h");
    let out = chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::sse([&sse]).rechunk(50)
        })
        .unwrap();
    assert_eq!(out.body, sse);
    let l = "openai/gpt-4o-mini/ai-route/team-h";
    assert_eq!(
        counter(&env, l, "token_type.output.tokens_total"),
        Some(100)
    );
    assert_eq!(
        counter(&env, l, "token_type.reasoning.tokens_total"),
        Some(100)
    );
}

#[test]
fn under_apisix_nothing_traps_and_the_audit_line_still_counts_tokens() {
    let env = Env::new();
    let s = PluginSpec::new(wasm())
        .config(PRICED)
        .profile(Profile::Apisix);
    let mut chain = Chain::new(&env).with(s).unwrap();
    let sse = fixture("openai-stream-no-usage.sse");
    let req = Request::post_json("/v1/chat/completions", chat("gpt-4o-mini", true));
    let out = chain
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::sse([&sse]).rechunk(11)
        })
        .unwrap_or_else(|e| panic!("must not trap under APISIX: {e}"));
    assert_eq!(out.body, sse);
    // APISIX's metrics are no-ops (nothing is defined) and it has no Envoy properties and no
    // clock: the audit log line is what it gets, with tokens and without timings.
    assert!(env.metric_names().is_empty());
    let p = chain.plugin(0).unwrap();
    assert!(
        p.logs().iter().any(|l| l.message.contains("no clock")),
        "the limitation is logged at configure time"
    );
    let rec = &audit_lines(p)[0];
    assert_eq!(rec["usage"]["output"], 3);
    assert_eq!(rec["provider"], "unknown");
    assert_eq!(rec["errorType"], Value::Null);
    assert_eq!(rec["timings"]["durationMs"], Value::Null);
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_named() {
    let env = Env::new();
    for (config, path) in [
        (r#"{"audit": {"sampleRate": 2}}"#, "audit.sampleRate"),
        (r#"{"prices": {"m": {"input": -1}}}"#, "prices.m.input"),
        (r#"{"unknownField": 1}"#, "unknownField"),
    ] {
        let err = Plugin::load(&env, spec(config)).unwrap_err().to_string();
        assert!(err.contains(path), "{config}: {err}");
    }
}

#[test]
fn a_request_costs_a_bounded_number_of_host_calls() {
    let env = Env::new();
    let mut chain = Chain::new(&env).with(spec(PRICED)).unwrap();
    let answer = fixture("openai-chat-cached.response.json");
    let req = Request::post_json("/v1/chat/completions", chat("gpt-4o-mini", false));
    let mut up = |_: &UpstreamRequest| UpstreamResponse::json(200, &answer);
    chain.run(&req, &mut up).unwrap(); // warm-up: metric ids defined once per worker
    let before = chain.plugin(0).unwrap().worker(0).trace().len();
    chain.run(&req, &mut up).unwrap();
    let vm = chain.plugin(0).unwrap().worker(0);
    let calls: Vec<&str> = vm.trace()[before..].iter().map(|t| t.function).collect();
    let mut counts = std::collections::BTreeMap::new();
    for c in &calls {
        *counts.entry(*c).or_insert(0) += 1;
    }
    eprintln!("{} host calls: {counts:?}", calls.len());
    assert_eq!(counts.get("proxy_define_metric"), None, "ids are cached");
    assert_eq!(
        counts.get("proxy_get_header_map_value"),
        None,
        "headers read once per direction"
    );
    assert!(calls.len() <= 19, "{} host calls: {counts:?}", calls.len());
}
