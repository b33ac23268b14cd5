//! The built `ai_proxy.wasm` in the harness. Envoy profile: OpenAI client -> Anthropic backend and
//! Anthropic client -> OpenAI backend, streaming (upstream body re-chunked) and not, translated
//! JSON answers held until complete (502 for an unreadable 200), same-protocol passthrough to
//! OpenAI and Azure (Azure's own Responses API on v1), `/v1/models`, errors in the caller's shape,
//! per-request metrics. Higress profile: the same bytes, and `_rules_` choosing the provider per
//! route. APISIX profile: no trap, `/v1/models` answered, everything else passed unchanged and the
//! limitation logged. The expected client bytes are the plugin's own golden files, so the native
//! and wasm layers check the same thing.

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, LogLevel, MetricValue, PluginSpec, Profile, Request,
    UpstreamRequest, UpstreamResponse,
};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-test"]},
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-openai-test"]},
    {"name": "azure", "type": "azure-openai", "authority": "res.openai.azure.com", "apiKeys": ["az-key"]}
  ],
  "models": [
    {"match": "claude-*", "provider": "claude"},
    {"match": "gpt-4o", "provider": "claude", "target": "claude-haiku-4-5"},
    {"match": "gpt-5-nano", "provider": "oai"},
    {"match": "azure-*", "provider": "azure", "target": "nano-deploy"}
  ]
}"#;

fn plugin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins/ai-proxy/testdata")
}

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn golden(case: &str) -> Vec<u8> {
    std::fs::read(plugin_dir().join(case)).unwrap()
}

/// `created` as the plugin computes it under the harness clock (Unix seconds).
fn env_created() -> u64 {
    Env::new().now_ns() / 1_000_000_000
}

fn chain(env: &Env) -> Chain {
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    Chain::new(env)
        .with(
            PluginSpec::new(wasm)
                .config(CONFIG)
                .headers_stop_iteration(true),
        )
        .unwrap()
}

fn run(req: &Request, reply: UpstreamResponse) -> (Exchange, UpstreamRequest) {
    let env = Env::new();
    let mut c = chain(&env);
    let out = c
        .run(req, &mut |_: &UpstreamRequest| reply.clone())
        .unwrap();
    let up = out
        .upstream
        .clone()
        .expect("the request reached the upstream");
    (out, up)
}

#[test]
fn openai_client_streams_from_anthropic_backend_as_openai_chunks() {
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"temperature":1.5,"max_tokens":50,"stop":"END"}"#;
    let req = Request::post_json("/v1/chat/completions", body)
        .header("authorization", "Bearer client-secret")
        .chunk_size(9);
    for chunk in [1, 7, 64, 4096] {
        let reply = UpstreamResponse::new(200)
            .header("content-type", "text/event-stream")
            .chunk(sample("anthropic-messages-stream.sse"))
            .rechunk(chunk);
        let (out, up) = run(&req, reply);
        assert_eq!(up.header(":path").as_deref(), Some("/v1/messages"));
        assert_eq!(up.header("x-api-key").as_deref(), Some("sk-ant-test"));
        assert_eq!(up.header("x-aigw-upstream").as_deref(), Some("anthropic"));
        assert_eq!(
            up.header("authorization"),
            None,
            "client key must not leak upstream"
        );
        let sent: Value = serde_json::from_slice(&up.body).unwrap();
        assert_eq!(sent["model"], "claude-haiku-4-5");
        assert_eq!(out.status, 200);
        assert_eq!(
            out.header("content-type").as_deref(),
            Some("text/event-stream")
        );
        let want =
            String::from_utf8(golden("openai_anthropic/chat-stream-text/client.sse")).unwrap();
        // The harness clock differs from the mock host's: compare with `created` normalised.
        let created = format!(r#""created":{}"#, env_created());
        assert_eq!(
            out.body_text().replace(&created, r#""created":1700000000"#),
            want,
            "upstream chunks of {chunk}"
        );
    }
}

#[test]
fn anthropic_client_streams_tool_calls_from_openai_backend_as_anthropic_events() {
    let req = Request::post_json(
        "/v1/messages",
        sample("anthropic-messages-stream-tooluse.request.json"),
    )
    .header("x-api-key", "client-secret")
    .chunk_size(100);
    let body = sample("anthropic-messages-stream-tooluse.request.json");
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["model"] = "gpt-5-nano".into();
    let req = Request::post_json("/v1/messages", serde_json::to_vec(&v).unwrap())
        .header("x-api-key", "client-secret")
        .chunk_size(req.chunk_size);
    let reply = UpstreamResponse::new(200)
        .header("content-type", "text/event-stream")
        .chunk(sample("openai-chat-stream-toolcalls-usage.sse"))
        .rechunk(13);
    let (out, up) = run(&req, reply);
    assert_eq!(up.header(":path").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(
        up.header("authorization").as_deref(),
        Some("Bearer sk-openai-test")
    );
    assert_eq!(up.header("x-api-key"), None);
    let text = out.body_text();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains(r#""type":"input_json_delta""#), "{text}");
    assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
}

#[test]
fn openai_to_openai_passes_bytes_through_with_only_model_path_and_auth_changed() {
    let body = r#"{"model":"azure-nano","messages":[{"role":"user","content":"hi"}],"vendor":{"x": 1.50}}"#;
    let reply = UpstreamResponse::json(200, sample("azure-openai-chat.response.json"));
    let (out, up) = run(
        &Request::post_json("/v1/chat/completions", body).header("authorization", "Bearer c"),
        reply,
    );
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/openai/deployments/nano-deploy/chat/completions?api-version=2024-10-21")
    );
    assert_eq!(up.header("api-key").as_deref(), Some("az-key"));
    assert_eq!(
        up.header(":authority").as_deref(),
        Some("res.openai.azure.com")
    );
    assert_eq!(
        up.body_text(),
        r#"{"model":"nano-deploy","messages":[{"role":"user","content":"hi"}],"vendor":{"x": 1.50}}"#
    );
    assert_eq!(out.body, sample("azure-openai-chat.response.json"));
}

#[test]
fn anthropic_errors_reach_openai_clients_in_openai_shape() {
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"hi"}]}"#;
    let reply = UpstreamResponse::json(429, sample("anthropic-error-429.response.json"));
    let (out, _) = run(&Request::post_json("/v1/chat/completions", body), reply);
    assert_eq!(out.status, 429);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[test]
fn models_and_bad_requests_are_answered_locally_without_a_trap() {
    let env = Env::new();
    let mut c = chain(&env);
    let mut never =
        |_: &UpstreamRequest| -> UpstreamResponse { panic!("must not reach the upstream") };
    let out = c.run(&Request::get("/v1/models"), &mut never).unwrap();
    assert_eq!(out.status, 200);
    assert!(
        out.body_text().contains(r#""id":"gpt-5-nano""#),
        "{}",
        out.body_text()
    );
    // An Anthropic client gets Anthropic's shape; an unknown model is its 404.
    let anthropic = |path: &str| {
        Request::get(path)
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
    };
    let out = c.run(&anthropic("/v1/models"), &mut never).unwrap();
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!((out.status, &v["has_more"]), (200, &Value::Bool(false)));
    assert_eq!(v["data"][0]["type"], "model");
    let out = c.run(&anthropic("/v1/models/nope"), &mut never).unwrap();
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        (out.status, &v["error"]["type"]),
        (404, &Value::from("not_found_error"))
    );
    let out = c
        .run(&Request::post_json("/v1/messages", "{not json"), &mut never)
        .unwrap();
    assert_eq!(out.status, 400);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["type"], "error");
    let out = c
        .run(
            &Request::post_json("/v1/chat/completions", r#"{"model":"nope","messages":[]}"#),
            &mut never,
        )
        .unwrap();
    assert_eq!(out.status, 404);
}

fn chat(model: &str, stream: bool) -> Request {
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    Request::post_json("/v1/chat/completions", body).header("authorization", "Bearer client-secret")
}

#[test]
fn a_translated_json_answer_leaves_whole_with_headers_that_match_it() {
    let reply = UpstreamResponse::json(200, sample("anthropic-messages-tooluse.response.json"))
        .header("content-length", "99999")
        .rechunk(50);
    let (out, _) = run(&chat("gpt-4o", false), reply);
    assert_eq!(out.status, 200);
    assert_eq!(out.header("content-length"), None);
    assert_eq!(
        out.header("content-type").as_deref(),
        Some("application/json")
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn an_unreadable_200_for_a_translated_json_request_reaches_the_client_as_502() {
    let reply = UpstreamResponse::json(200, "{\"id\": \"msg\", \"content\": [tru").rechunk(7);
    let (out, _) = run(&chat("gpt-4o", false), reply);
    assert_eq!(out.status, 502, "{}", out.body_text());
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["error"]["type"], "server_error");
}

#[test]
fn per_request_metrics_carry_provider_and_backend_model() {
    let env = Env::new();
    let mut c = chain(&env);
    let reply = UpstreamResponse::json(200, sample("anthropic-messages-tooluse.response.json"));
    c.run(&chat("gpt-4o", false), &mut |_: &UpstreamRequest| {
        reply.clone()
    })
    .unwrap();
    // The harness names the route `test-route` (Envoy's `xds.route_name`).
    let series =
        "aigw.gen_ai.provider.claude.model.claude-haiku-4-5.route.test-route.consumer.unknown";
    assert_eq!(
        env.metric(&format!("{series}.upstream_requests_total")),
        Some(MetricValue::Counter(1))
    );
    assert_eq!(
        env.metric(&format!("{series}.token_type.input.upstream_tokens_total")),
        Some(MetricValue::Counter(656))
    );
    for name in env.metric_names() {
        assert!(!name.contains("sk-ant-test"), "{name}");
    }
}

/// Higress with held headers passed through as HeaderStopIteration, as Higress does for modules
/// that export the ABI 0.2.100 marker (without it Higress' cpp-host turns the held request headers
/// into StopAllIterationAndWatermark and the body never reaches the plugin; see the README).
fn higress(env: &Env, config: &str, route: &str) -> Chain {
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    let spec = PluginSpec::new(wasm)
        .config(config)
        .profile(Profile::Higress)
        .headers_stop_iteration(true)
        .route_name(route);
    Chain::new(env).with(spec).unwrap()
}

#[test]
fn under_higress_a_translated_stream_gives_the_same_client_bytes() {
    let env = Env::new();
    let mut c = higress(&env, CONFIG, "any");
    let reply = UpstreamResponse::new(200)
        .header("content-type", "text/event-stream")
        .chunk(sample("anthropic-messages-stream.sse"))
        .rechunk(5);
    let body = r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"temperature":1.5,"max_tokens":50,"stop":"END"}"#;
    let out = c
        .run(
            &Request::post_json("/v1/chat/completions", body),
            &mut |_: &UpstreamRequest| reply.clone(),
        )
        .unwrap();
    let want = String::from_utf8(golden("openai_anthropic/chat-stream-text/client.sse")).unwrap();
    let created = format!(r#""created":{}"#, env_created());
    assert_eq!(
        out.body_text().replace(&created, r#""created":1700000000"#),
        want
    );
}

#[test]
fn under_higress_rules_choose_the_provider_per_route() {
    let config = r#"{
      "providers": [
        {"name": "claude", "type": "anthropic", "cluster": "outbound|443||api.anthropic.com.dns", "apiKeys": ["sk-ant-test"]},
        {"name": "oai", "type": "openai", "cluster": "outbound|443||api.openai.com.dns", "apiKeys": ["sk-openai-test"]}
      ],
      "defaultProvider": "oai",
      "_rules_": [{"_match_route_": ["claude-route"], "defaultProvider": "claude"}]
    }"#;
    let mut seen = Vec::new();
    for route in ["claude-route", "other-route"] {
        let env = Env::new();
        let mut c = higress(&env, config, route);
        let reply = UpstreamResponse::json(200, "{}");
        let out = c
            .run(&chat("house-model", true), &mut |_: &UpstreamRequest| {
                reply.clone()
            })
            .unwrap();
        let up = out.upstream.unwrap();
        seen.push((
            up.header("x-aigw-upstream").unwrap(),
            up.header(":path").unwrap(),
        ));
    }
    assert_eq!(
        seen,
        [
            (
                "outbound|443||api.anthropic.com.dns".to_owned(),
                "/v1/messages".to_owned()
            ),
            (
                "outbound|443||api.openai.com.dns".to_owned(),
                "/v1/chat/completions".to_owned()
            ),
        ]
    );
}

#[test]
fn under_apisix_the_module_does_not_trap_lists_models_and_passes_requests_unchanged() {
    let env = Env::new();
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    let spec = PluginSpec::new(wasm)
        .config(CONFIG)
        .profile(Profile::Apisix);
    let mut c = Chain::new(&env).with(spec).unwrap();
    let mut never =
        |_: &UpstreamRequest| -> UpstreamResponse { panic!("must not reach the upstream") };
    let out = c.run(&Request::get("/v1/models"), &mut never).unwrap();
    assert_eq!(out.status, 200);
    assert!(
        out.body_text().contains("gpt-5-nano"),
        "{}",
        out.body_text()
    );
    let req = chat("gpt-4o", false);
    let out = c
        .run(&req, &mut |_: &UpstreamRequest| {
            UpstreamResponse::json(200, "{\"ok\":true}")
        })
        .unwrap_or_else(|e| panic!("must not trap under APISIX: {e}"));
    assert_eq!(out.status, 200);
    assert_eq!(out.body_text(), "{\"ok\":true}");
    let up = out.upstream.unwrap();
    assert_eq!(up.body, req.body, "APISIX cannot rewrite bodies: untouched");
    assert_eq!(up.header("x-aigw-upstream"), None);
    let logs = c.plugin(0).unwrap().logs();
    assert!(
        logs.iter()
            .any(|l| l.level >= LogLevel::Warn && l.message.contains("cannot rewrite bodies")),
        "the limitation must be logged: {logs:?}"
    );
}

#[test]
fn count_tokens_goes_to_an_anthropic_provider_and_is_estimated_for_the_others() {
    let body = r#"{"model":"claude-x","messages":[{"role":"user","content":"one two three"}]}"#;
    let req = Request::post_json("/v1/messages/count_tokens", body)
        .header("x-api-key", "client")
        .header("anthropic-version", "2023-06-01");
    let (out, up) = run(&req, UpstreamResponse::json(200, br#"{"input_tokens":7}"#));
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/v1/messages/count_tokens")
    );
    assert_eq!(up.header("x-api-key").as_deref(), Some("sk-ant-test"));
    assert_eq!(
        (out.status, out.body_text()),
        (200, r#"{"input_tokens":7}"#.to_owned())
    );

    let env = Env::new();
    let mut c = chain(&env);
    let mut never =
        |_: &UpstreamRequest| -> UpstreamResponse { panic!("must not reach the upstream") };
    let req = Request::post_json(
        "/v1/messages/count_tokens",
        body.replace("claude-x", "gpt-5-nano"),
    )
    .header("x-api-key", "client");
    let out = c.run(&req, &mut never).unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(
        out.header("x-aigw-token-count").as_deref(),
        Some("estimated")
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() >= 3, "{v}");
}

#[test]
fn responses_input_tokens_are_estimated_for_a_model_off_openai() {
    let env = Env::new();
    let mut c = chain(&env);
    let mut never =
        |_: &UpstreamRequest| -> UpstreamResponse { panic!("must not reach the upstream") };
    let req = Request::post_json(
        "/v1/responses/input_tokens",
        r#"{"model":"claude-x","input":"one two three four"}"#,
    );
    let out = c.run(&req, &mut never).unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(
        out.header("x-aigw-token-count").as_deref(),
        Some("estimated")
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["object"], "response.input_tokens");
    assert!(v["input_tokens"].as_u64().unwrap() >= 4, "{v}");
}

#[test]
fn a_responses_api_request_is_translated_for_anthropic_and_answered_as_a_response() {
    let req = Request::post_json(
        "/v1/responses",
        r#"{"model":"claude-x","instructions":"Be brief.","input":"Hi"}"#,
    );
    let answer = UpstreamResponse::json(200, sample("anthropic-messages-tooluse.response.json"));
    let (out, up) = run(&req, answer);
    assert_eq!(up.header(":path").as_deref(), Some("/v1/messages"));
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(out.status, 200);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["object"], "response");
    assert!(v["output"].as_array().is_some_and(|o| !o.is_empty()), "{v}");
}

#[test]
fn a_streamed_responses_api_request_gets_typed_events_from_anthropics_stream() {
    let req = Request::post_json(
        "/v1/responses",
        r#"{"model":"claude-x","input":"Hi","stream":true}"#,
    );
    let answer = UpstreamResponse::sse([sample("anthropic-messages-stream.sse")]);
    let (out, _) = run(&req, answer);
    let text = out.body_text();
    let first = text.find("event: response.created").unwrap();
    let delta = text.find("event: response.output_text.delta").unwrap();
    let done = text.find("event: response.completed").unwrap();
    assert!(first < delta && delta < done, "{text}");
}

#[test]
fn azure_gets_the_responses_api_natively_on_v1_and_its_usage_is_counted() {
    let env = Env::new();
    let mut c = chain(&env);
    let req = Request::post_json(
        "/v1/responses",
        r#"{"model":"azure-x","input":"What is the capital of France?"}"#,
    )
    .header("authorization", "Bearer client");
    let answer = sample("openai-responses.response.json");
    let mut seen = None;
    let out = c
        .run(&req, &mut |up: &UpstreamRequest| {
            seen = Some(up.clone());
            UpstreamResponse::json(200, answer.clone())
        })
        .unwrap();
    let up = seen.expect("the request reached Azure");
    assert_eq!(up.header(":path").as_deref(), Some("/openai/v1/responses"));
    assert_eq!(
        up.header(":authority").as_deref(),
        Some("res.openai.azure.com")
    );
    assert_eq!(up.header("api-key").as_deref(), Some("az-key"));
    assert_eq!(up.header("authorization"), None);
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(sent["model"], "nano-deploy", "the deployment as the model");
    assert_eq!(sent["input"], "What is the capital of France?");
    assert_eq!((out.status, out.body.clone()), (200, answer));
    let series = "aigw.gen_ai.provider.azure.model.nano-deploy.route.test-route.consumer.unknown";
    assert_eq!(
        env.metric(&format!("{series}.token_type.input.upstream_tokens_total")),
        Some(MetricValue::Counter(14))
    );
    assert_eq!(
        env.metric(&format!("{series}.token_type.output.upstream_tokens_total")),
        Some(MetricValue::Counter(8))
    );
}
