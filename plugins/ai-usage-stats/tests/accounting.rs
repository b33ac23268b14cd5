//! The accounting of whole requests on a mock worker: exact metric values, timings on a virtual
//! clock, the audit record, and configuration refused with the field's path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use ai_usage_stats::UsageStats;
use aigw_shared::host::Capabilities;
use aigw_shared::llm::{Api, RequestView};
use aigw_shared::plugin::PluginConfig;
use common::{fixture, Call, Worker};
use serde_json::json;

const PRICED: &str = r#"{"prices": {"gpt-4o-mini*": {"input": 0.15, "output": 0.6, "cachedInput": 0.075},
                                     "claude-*": {"input": 3, "output": 15}}}"#;
const MS: Duration = Duration::from_millis(1);

fn chat(model: &str, stream: bool) -> Vec<u8> {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Say hello to the world"}]})
        .to_string()
        .into_bytes()
}

fn input_estimate(body: &[u8]) -> u64 {
    RequestView::parse(Api::ChatCompletions, body)
        .unwrap()
        .estimate_input_tokens()
        .tokens
}

#[test]
fn a_json_answer_counts_reported_tokens_cost_and_duration() {
    let mut w = Worker::new(PRICED);
    let body = chat("gpt-4o-mini", false);
    w.run(&Call::chat(&body).json(200, &fixture("openai-chat-cached.response.json")));
    let l = "openai/gpt-4o-mini/chat/unknown";
    assert_eq!(w.counter(l, "requests_total"), Some(1));
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(1000));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(40));
    assert_eq!(w.counter(l, "token_type.cached.tokens_total"), Some(600));
    assert_eq!(w.counter(l, "token_type.reasoning.tokens_total"), Some(25));
    // 400 fresh × 0.15 + 600 cached × 0.075 + 40 × 0.6 USD per million = 129 µUSD.
    assert_eq!(w.counter(l, "cost_micro_usd_total"), Some(129));
    assert_eq!(w.counter(l, "usage_estimated_total"), None);
    assert_eq!(w.samples(l, "server_request_duration_ms"), [100]);
    assert_eq!(w.samples(l, "token_type.input.client_token_usage"), [1000]);
    assert_eq!(w.samples(l, "token_type.output.client_token_usage"), [40]);
    assert!(
        w.samples(l, "server_time_to_first_token_ms").is_empty(),
        "a JSON answer has no time to first token"
    );
    let rec = &w.audit_lines()[0];
    assert_eq!(
        rec["usage"],
        json!({"input": 1000, "output": 40, "total": 1040, "cached": 600, "cacheWrite": 0, "reasoning": 25, "estimated": false})
    );
    assert_eq!(rec["responseModel"], "gpt-4o-mini-2024-07-18");
    assert_eq!(rec["originalModel"], "gpt-4o-mini");
    assert_eq!(rec["finishReason"], "stop");
    assert_eq!(rec["costUsd"], 0.000129);
    assert_eq!(rec["status"], 200);
    assert_eq!(
        rec["timings"],
        json!({"durationMs": 100, "ttftMs": null, "tpotUs": null})
    );
}

#[test]
fn a_stream_without_usage_is_estimated_and_timed_from_its_first_content_token() {
    let mut w = Worker::new(PRICED);
    let body = chat("gpt-4o-mini", true);
    // Headers at 100 ms; events every 10 ms: role-only chunk (110), "Hello" (120), " world"
    // (130), "!" (140), [DONE] (150).
    w.run(&Call::chat(&body).sse(&fixture("openai-stream-no-usage.sse"), 10 * MS));
    let l = "openai/gpt-4o-mini/chat/unknown";
    let input = input_estimate(&body);
    assert_eq!(
        w.counter(l, "token_type.input.tokens_total"),
        Some(input as i64)
    );
    assert_eq!(
        w.counter(l, "token_type.output.tokens_total"),
        Some(3),
        "\"Hello world!\""
    );
    assert_eq!(w.counter(l, "usage_estimated_total"), Some(1));
    assert_eq!(w.samples(l, "server_time_to_first_token_ms"), [120]);
    assert_eq!(w.samples(l, "server_request_duration_ms"), [150]);
    // (150 - 120) ms over 3 - 1 tokens.
    assert_eq!(w.samples(l, "server_time_per_output_token_us"), [15_000]);
    let rec = &w.audit_lines()[0];
    assert_eq!(rec["usage"]["estimated"], true);
    assert_eq!(rec["stream"], true);
    assert_eq!(
        rec["timings"],
        json!({"durationMs": 150, "ttftMs": 120, "tpotUs": 15000})
    );
}

#[test]
fn a_recorded_openai_stream_takes_usage_from_its_final_usage_chunk() {
    let mut w = Worker::new("{}");
    let body = fixture("providers/openai-chat-stream-usage.request.json");
    w.run(&Call::chat(&body).sse(&fixture("providers/openai-chat-stream-usage.sse"), MS));
    let l = "openai/gpt-5-nano/chat/unknown";
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(12));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(100));
    assert_eq!(w.counter(l, "token_type.reasoning.tokens_total"), Some(100));
    assert_eq!(w.counter(l, "usage_estimated_total"), None);
    assert_eq!(w.counter(l, "cost_micro_usd_total"), None, "no price");
    assert_eq!(w.counter(l, "errors_total"), None);
}

#[test]
fn a_recorded_anthropic_stream_is_read_from_message_start_and_message_delta() {
    let mut w = Worker::new(PRICED);
    let body = json!({"model": "claude-3-opus-latest", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "Hi"}]})
    .to_string();
    let call = Call::chat(body.as_bytes())
        .path("/v1/messages")
        .cluster(Some("anthropic"))
        .sse(&fixture("providers/anthropic-messages-stream.sse"), 5 * MS);
    w.run(&call);
    let l = "anthropic/claude-3-opus-latest/chat/unknown";
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(11));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(6));
    // 11 × 3 + 6 × 15 USD per million = 123 µUSD.
    assert_eq!(w.counter(l, "cost_micro_usd_total"), Some(123));
    // message_start (105), content_block_start (110), ping (115), "Hello" (120).
    assert_eq!(w.samples(l, "server_time_to_first_token_ms"), [120]);
    assert_eq!(w.audit_lines()[0]["api"], "messages");
    assert_eq!(w.audit_lines()[0]["finishReason"], "stop");
}

#[test]
fn an_error_status_counts_an_error_by_status_and_no_tokens() {
    let mut w = Worker::new(PRICED);
    w.run(
        &Call::chat(&chat("gpt-4o-mini", false))
            .json(429, &fixture("openai-error-429.response.json")),
    );
    let l = "openai/gpt-4o-mini/chat/unknown";
    assert_eq!(w.counter(l, "requests_total"), Some(1));
    assert_eq!(w.counter(l, "error_type.429.errors_total"), Some(1));
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), None);
    assert_eq!(
        w.counter(l, "cost_micro_usd_total"),
        None,
        "zero cost is not counted"
    );
    assert!(w
        .samples(l, "token_type.input.client_token_usage")
        .is_empty());
    assert_eq!(
        w.samples(l, "server_request_duration_ms"),
        [100],
        "errors are timed too"
    );
    assert_eq!(w.audit_lines()[0]["errorType"], "429");
}

#[test]
fn in_band_errors_cut_streams_and_abandoned_requests_are_errors_too() {
    let mut w = Worker::new("{}");
    let body = chat("m", true);
    w.run(&Call::chat(&body).sse(&fixture("openai-stream-error-event.sse"), MS));
    w.run(&Call::chat(&body).sse(&fixture("openai-stream-cut.sse"), MS));
    w.run(
        &Call::chat(&body)
            .sse(&fixture("openai-stream-no-usage.sse"), MS)
            .unfinished(),
    );
    let l = "openai/m/chat/unknown";
    assert_eq!(w.counter(l, "requests_total"), Some(3));
    assert_eq!(
        w.counter(l, "error_type.upstream_error.errors_total"),
        Some(1)
    );
    assert_eq!(w.counter(l, "error_type.incomplete.errors_total"), Some(2));
    let types: Vec<_> = w
        .audit_lines()
        .iter()
        .map(|r| r["errorType"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("upstream_error"),
            json!("incomplete"),
            json!("incomplete")
        ]
    );
}

#[test]
fn other_paths_are_not_observed() {
    let mut w = Worker::new("{}");
    w.run(
        &Call::chat(b"{}")
            .path("/v1/models")
            .json(200, b"{\"data\":[]}"),
    );
    w.run(&Call::chat(b"{}").path("/healthz").json(200, b"{}"));
    assert!(w.host.state.borrow().metrics.is_empty());
    assert!(w.audit_lines().is_empty());
}

#[test]
fn consumers_come_from_the_configured_header_or_the_key_map() {
    let hash = aigw_shared::consumer::key_hash_hex("sk-team-b");
    let cfg = format!(
        r#"{{"consumer": {{"header": "x-aigw-consumer", "keys": {{"{hash}": "team-b"}}}}}}"#
    );
    let mut w = Worker::new(&cfg);
    let ok = fixture("openai-chat-cached.response.json");
    let body = chat("m", false);
    w.run(
        &Call::chat(&body)
            .header("x-aigw-consumer", "team-a")
            .json(200, &ok),
    );
    w.run(
        &Call::chat(&body)
            .header("authorization", "Bearer sk-team-b")
            .json(200, &ok),
    );
    w.run(
        &Call::chat(&body)
            .header("authorization", "Bearer sk-nobody")
            .json(200, &ok),
    );
    for c in ["team-a", "team-b", "unknown"] {
        assert_eq!(
            w.counter(&format!("openai/m/chat/{c}"), "requests_total"),
            Some(1),
            "{c}"
        );
    }
    assert_eq!(w.audit_lines()[1]["consumer"], "team-b");
}

#[test]
fn providers_are_named_by_the_cluster_map_and_routes_by_the_route_name() {
    let mut w = Worker::new(r#"{"providers": {"outbound|443||api.openai.com": "openai"}}"#);
    let ok = fixture("openai-chat-cached.response.json");
    let body = chat("m", false);
    w.run(
        &Call::chat(&body)
            .cluster(Some("outbound|443||api.openai.com"))
            .json(200, &ok),
    );
    w.run(
        &Call::chat(&body)
            .cluster(Some("vllm.pool"))
            .route(Some("r.1"))
            .json(200, &ok),
    );
    w.run(&Call::chat(&body).cluster(None).route(None).json(200, &ok));
    assert_eq!(
        w.counter("openai/m/chat/unknown", "requests_total"),
        Some(1)
    );
    assert_eq!(
        w.counter("vllm_pool/m/r_1/unknown", "requests_total"),
        Some(1)
    );
    assert_eq!(
        w.counter("unknown/m/unknown/unknown", "requests_total"),
        Some(1)
    );
    let recs = w.audit_lines();
    let picked: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r["provider"].clone(),
                r["cluster"].clone(),
                r["route"].clone(),
            )
        })
        .collect();
    assert_eq!(
        picked,
        [
            (
                json!("openai"),
                json!("outbound|443||api.openai.com"),
                json!("chat")
            ),
            (json!("vllm_pool"), json!("vllm.pool"), json!("r.1")),
            (json!("unknown"), json!("unknown"), json!("unknown")),
        ]
    );
}

#[test]
fn model_labels_are_bounded_per_worker_and_oversized_requests_have_no_model() {
    let mut w = Worker::new(r#"{"maxModelLabels": 2, "maxRequestBodyBytes": 200}"#);
    let ok = fixture("openai-chat-cached.response.json");
    for m in ["a", "b", "c", "d"] {
        w.run(&Call::chat(&chat(m, false)).json(200, &ok));
    }
    let long = json!({"model": "a", "messages": [{"role": "user", "content": "x".repeat(300)}]})
        .to_string();
    w.run(&Call::chat(long.as_bytes()).json(200, &ok));
    assert_eq!(
        w.counter("openai/a/chat/unknown", "requests_total"),
        Some(1)
    );
    assert_eq!(
        w.counter("openai/b/chat/unknown", "requests_total"),
        Some(1)
    );
    assert_eq!(
        w.counter("openai/other/chat/unknown", "requests_total"),
        Some(2)
    );
    assert_eq!(
        w.counter("openai/unknown/chat/unknown", "requests_total"),
        Some(1)
    );
    assert_eq!(w.root.state().series_count(), 5);
}

#[test]
fn audit_records_are_sampled_and_stored_as_filter_state() {
    let mut w = Worker::new(r#"{"audit": {"sampleRate": 0.5}}"#);
    let ok = fixture("openai-chat-cached.response.json");
    for _ in 0..4 {
        w.run(
            &Call::chat(&chat("m", false))
                .header("x-request-id", "req-7")
                .json(200, &ok),
        );
    }
    let lines = w.audit_lines();
    assert_eq!(lines.len(), 2);
    let state = w
        .filter_state("aigw_usage_stats")
        .expect("the last request was sampled");
    assert_eq!(state, lines[1]);
    assert_eq!(state["requestId"], "req-7");
    assert_eq!(
        w.counter("openai/m/chat/unknown", "requests_total"),
        Some(4),
        "metrics are not sampled"
    );
}

#[test]
fn captured_prompts_and_answers_are_redacted_and_cut() {
    let cfg = r#"{"audit": {"capturePrompt": true, "captureAnswer": true, "maxCaptureBytes": 60}}"#;
    let mut w = Worker::new(cfg);
    let body = fixture("pii-chat.request.json");
    w.run(&Call::chat(&body).sse(&fixture("openai-stream-no-usage.sse"), MS));
    let rec = &w.audit_lines()[0];
    assert_eq!(
        rec["prompt"],
        "My mail is [EMAIL], my card [CARD] and my key [KEY]. What is"
    );
    assert_eq!(rec["promptTruncated"], true);
    assert_eq!(rec["answer"], "Hello world!");
    assert_eq!(rec["answerTruncated"], false);
    let mut off = Worker::new("{}");
    off.run(&Call::chat(&body).sse(&fixture("openai-stream-no-usage.sse"), MS));
    let rec = &off.audit_lines()[0];
    assert!(
        rec.get("prompt").is_none() && rec.get("answer").is_none(),
        "off by default"
    );
}

#[test]
fn without_a_clock_tokens_are_still_counted_but_nothing_is_timed() {
    let mut w = Worker::with_caps("{}", Capabilities::APISIX);
    let body = chat("m", true);
    w.run(&Call::chat(&body).sse(&fixture("openai-stream-no-usage.sse"), MS));
    let l = "openai/m/chat/unknown";
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(3));
    assert!(w.samples(l, "server_request_duration_ms").is_empty());
    assert!(w.samples(l, "server_time_to_first_token_ms").is_empty());
    assert_eq!(
        w.audit_lines()[0]["timings"],
        json!({"durationMs": null, "ttftMs": null, "tpotUs": null})
    );
}

#[test]
fn embeddings_count_input_tokens() {
    let mut w = Worker::new("{}");
    let body = fixture("providers/openai-embeddings.request.json");
    let call = Call::chat(&body)
        .path("/v1/embeddings")
        .json(200, &fixture("providers/openai-embeddings.response.json"));
    w.run(&call);
    let l = "openai/text-embedding-3-small/chat/unknown";
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(7));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), None);
}

#[test]
fn cost_below_a_micro_dollar_adds_up_over_requests() {
    let mut w = Worker::new(r#"{"prices": {"m": {"input": 0.1, "output": 0.1}}}"#);
    let ok = fixture("openai-chat-cached.response.json");
    // 1040 tokens × 0.1 USD per million = 104 µUSD per request: exact.
    for _ in 0..3 {
        w.run(&Call::chat(&chat("m", false)).json(200, &ok));
    }
    assert_eq!(
        w.counter("openai/m/chat/unknown", "cost_micro_usd_total"),
        Some(312)
    );
    let mut small = Worker::new(r#"{"prices": {"m": {"input": 0.0004}}}"#);
    for _ in 0..10 {
        small.run(&Call::chat(&chat("m", false)).json(200, &ok));
    }
    // 1000 input tokens × 0.0004 = 0.4 µUSD each: 4 µUSD after ten.
    assert_eq!(
        small.counter("openai/m/chat/unknown", "cost_micro_usd_total"),
        Some(4)
    );
}

#[test]
fn bad_configurations_are_refused_with_the_fields_path() {
    let cases: Vec<serde_json::Value> =
        serde_json::from_slice(&fixture("bad-configs.json")).unwrap();
    for case in cases {
        let raw = case["config"].to_string();
        let err = match PluginConfig::<UsageStats>::parse(raw.as_bytes()) {
            Ok(_) => panic!("accepted: {raw}"),
            Err(e) => e,
        };
        let want = case["path"].as_str().unwrap();
        assert!(
            err.path().starts_with(want),
            "{raw}: path {:?}, want {want:?} ({err})",
            err.path()
        );
    }
}

#[test]
fn a_good_configuration_with_rules_is_accepted() {
    let raw = r#"{"prices": {"gpt-*": {"input": 1, "output": 2}},
                 "providers": {"openai": "openai"},
                 "consumer": {"header": "x-aigw-consumer"},
                 "audit": {"sampleRate": 0.1, "capturePrompt": true, "filterState": null},
                 "_rules_": [{"_match_route_": ["internal"], "audit": {"enabled": false}}]}"#;
    assert!(PluginConfig::<UsageStats>::parse(raw.as_bytes()).is_ok());
}

#[test]
fn request_bodies_count_in_the_vms_body_budget_and_are_let_go_at_their_end() {
    use aigw_shared::plugin::budget;
    let mut w = Worker::new("{}");
    let ok = fixture("openai-chat-cached.response.json");
    budget::set_budget(100);
    let long = json!({"model": "big", "messages": [{"role": "user", "content": "x".repeat(300)}]})
        .to_string();
    w.run(&Call::chat(long.as_bytes()).json(200, &ok));
    budget::set_budget(budget::DEFAULT_BUDGET);
    assert_eq!(
        w.counter("openai/unknown/chat/unknown", "requests_total"),
        Some(1),
        "over the budget the model is not read"
    );
    w.run(&Call::chat(&chat("m", true)).sse(&fixture("openai-stream-no-usage.sse"), MS));
    assert_eq!(budget::held(), 0, "nothing is held once requests ended");
}

#[test]
fn an_answer_that_unexpectedly_lacks_usage_estimates_input_from_the_request_size() {
    let mut w = Worker::new("{}");
    let body = chat("m", false);
    let answer = br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello world!"},"finish_reason":"stop"}]}"#;
    w.run(&Call::chat(&body).json(200, answer));
    let l = "openai/m/chat/unknown";
    assert_eq!(
        w.counter(l, "token_type.input.tokens_total"),
        Some(body.len().div_ceil(4) as i64)
    );
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(3));
    assert_eq!(w.counter(l, "usage_estimated_total"), Some(1));
}

#[test]
fn anthropic_cache_reads_and_writes_are_counted_and_priced_apart() {
    let mut w = Worker::new(
        r#"{"prices": {"claude-*": {"input": 3, "output": 15, "cachedInput": 0.3, "cacheWriteInput": 3.75}}}"#,
    );
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "Capital of France?"}]})
    .to_string();
    let call = Call::chat(body.as_bytes())
        .path("/v1/messages")
        .cluster(Some("anthropic"))
        .json(200, &fixture("anthropic-cached.response.json"));
    w.run(&call);
    let l = "anthropic/claude-haiku-4-5/chat/unknown";
    // input = 20 + 100 written to the cache + 880 read from it.
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(1000));
    assert_eq!(w.counter(l, "token_type.cached.tokens_total"), Some(880));
    assert_eq!(
        w.counter(l, "token_type.cache_write.tokens_total"),
        Some(100)
    );
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(12));
    // 20 × 3 + 880 × 0.3 + 100 × 3.75 + 12 × 15 = 60 + 264 + 375 + 180 = 879 µUSD.
    assert_eq!(w.counter(l, "cost_micro_usd_total"), Some(879));
    let rec = &w.audit_lines()[0];
    assert_eq!(rec["responseModel"], "claude-haiku-4-5-20251001");
    assert_eq!(rec["usage"]["total"], 1012);
}

#[test]
fn client_text_in_a_model_name_stays_inside_its_label_and_its_record_field() {
    let mut w = Worker::new(r#"{"maxRequestBodyBytes": 4194304}"#);
    let ok = fixture("openai-chat-cached.response.json");
    let long = "m".repeat(1 << 20);
    for tail in ["a", "b"] {
        let mut call = Call::chat(&chat(&format!("{long}{tail}"), false)).json(200, &ok);
        call.request_chunk = 1 << 16;
        w.run(&call);
    }
    let evil = "gpt\r\nx-evil: 1/../a.b";
    w.run(&Call::chat(&chat(evil, false)).json(200, &ok));
    let cut = "m".repeat(64);
    assert_eq!(
        w.counter(&format!("openai/{cut}/chat/unknown"), "requests_total"),
        Some(2),
        "a label reads the first 64 characters"
    );
    assert_eq!(
        w.counter(
            "openai/gpt__x-evil__1____a_b/chat/unknown",
            "requests_total"
        ),
        Some(1)
    );
    assert_eq!(
        w.root.state().series_count(),
        2,
        "names that share a label share a series"
    );
    let st = w.host.state.borrow();
    assert!(st
        .logs
        .iter()
        .all(|(_, m)| !m.contains('\n') && !m.contains('\r')));
    drop(st);
    assert_eq!(w.audit_lines()[2]["originalModel"], evil);
}

#[test]
fn a_json_answer_in_chunks_is_timed_to_its_last_chunk() {
    let mut w = Worker::new("{}");
    let ok = fixture("openai-chat-cached.response.json");
    let mut call = Call::chat(&chat("m", false)).json(200, &ok);
    call.chunks = ok
        .chunks(ok.len().div_ceil(3))
        .map(|c| (10 * MS, c.to_vec()))
        .collect();
    w.run(&call);
    let l = "openai/m/chat/unknown";
    assert_eq!(w.samples(l, "server_request_duration_ms"), [130]);
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(40));
}

#[test]
fn a_stream_that_ends_with_trailers_is_recorded_once_complete_and_timed_to_them() {
    let mut w = Worker::new("{}");
    let body = fixture("providers/openai-chat-stream-usage.request.json");
    let sse = fixture("providers/openai-chat-stream-usage.sse");
    w.run(&Call::chat(&body).sse(&sse, MS));
    w.run(&Call::chat(&body).sse(&sse, MS).with_trailers());
    let l = "openai/gpt-5-nano/chat/unknown";
    assert_eq!(w.counter(l, "requests_total"), Some(2));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(200));
    assert_eq!(w.counter(l, "errors_total"), None);
    let d = w.samples(l, "server_request_duration_ms");
    assert_eq!(d.len(), 2);
    assert_eq!(
        d[1],
        d[0] + 100,
        "the trailers came 100 ms after the last chunk"
    );
    let lines = w.audit_lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["errorType"], serde_json::Value::Null);
    assert_eq!(lines[1]["usage"], lines[0]["usage"]);
}

#[test]
fn a_json_answer_over_its_limit_or_the_body_budget_is_counted_estimated_and_let_go() {
    use aigw_shared::plugin::budget;
    let ok = fixture("openai-chat-cached.response.json");
    let mut call = Call::chat(&chat("m", false)).json(200, &ok);
    call.chunks = ok.chunks(64).map(|c| (MS, c.to_vec())).collect();
    let mut w = Worker::new(r#"{"maxResponseBodyBytes": 100}"#);
    w.run(&call);
    budget::set_budget(budget::DEFAULT_BUDGET);
    let held_before = budget::held();
    let mut v = Worker::new("{}");
    budget::set_budget(held_before + 300);
    v.run(&call);
    budget::set_budget(budget::DEFAULT_BUDGET);
    for w in [&w, &v] {
        let l = "openai/m/chat/unknown";
        assert_eq!(w.counter(l, "requests_total"), Some(1));
        assert_eq!(w.counter(l, "usage_estimated_total"), Some(1));
        assert_eq!(w.counter(l, "errors_total"), None);
        assert_eq!(w.audit_lines()[0]["usage"]["estimated"], true);
    }
    assert_eq!(budget::held(), held_before, "nothing stays held");
}

#[test]
fn json_nested_ten_thousand_deep_is_counted_without_usage_and_overflows_nothing() {
    let mut w = Worker::new(r#"{"audit": {"capturePrompt": true, "captureAnswer": true}}"#);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(r#"{{"model": "m", "stream": true, "messages": {deep}}}"#);
    let mut call =
        Call::chat(body.as_bytes()).json(200, format!(r#"{{"usage": {deep}}}"#).as_bytes());
    call.request_chunk = 4096;
    w.run(&call);
    let sse = format!("data: {{\"choices\": {deep}}}\n\ndata: [DONE]\n\n");
    w.run(&Call::chat(body.as_bytes()).sse(sse.as_bytes(), MS));
    let l = "openai/m/chat/unknown";
    assert_eq!(w.counter(l, "requests_total"), Some(2));
    assert_eq!(
        w.counter(l, "usage_estimated_total"),
        Some(2),
        "no usage read from either answer"
    );
    assert_eq!(w.audit_lines().len(), 2);
}

#[test]
fn once_the_answer_capture_is_full_the_rest_of_the_stream_is_still_counted_the_same() {
    let body = fixture("providers/openai-chat-stream.request.json");
    let stream = fixture("providers/openai-chat-stream.sse");
    let mut capturing = Worker::new(r#"{"audit": {"captureAnswer": true, "maxCaptureBytes": 8}}"#);
    capturing.run(&Call::chat(&body).sse(&stream, MS));
    let mut plain = Worker::new("{}");
    plain.run(&Call::chat(&body).sse(&stream, MS));
    let rec = &capturing.audit_lines()[0];
    assert_eq!(rec["answerTruncated"], true);
    let answer = rec["answer"].as_str().unwrap();
    assert!(!answer.is_empty() && answer.len() <= 8 + 3, "{answer}");
    let (a, b) = (
        &capturing.audit_lines()[0]["usage"],
        &plain.audit_lines()[0]["usage"],
    );
    assert_eq!(a, b, "the same usage whether the text is captured or not");
    assert!(a["output"].as_u64().unwrap() > 1, "{a}");
}

#[test]
fn the_chains_response_annotations_reach_the_record() {
    let mut w = Worker::new("{}");
    let body = chat("auto", false);
    let answer = fixture("openai-chat-cached.response.json");
    w.run(
        &Call::chat(&body)
            .json(200, &answer)
            .response_header("x-aigw-upstream-model", "gpt-4o-mini")
            .response_header("x-aigw-cache", "miss")
            .response_header("x-aigw-attempts", "2"),
    );
    let rec = &w.audit_lines()[0];
    assert_eq!(rec["originalModel"], "auto");
    assert_eq!(rec["requestModel"], "gpt-4o-mini");
    assert_eq!(rec["cache"], "miss");
    assert_eq!(rec["attempts"], 2);
    // Without them: the client's model, and no cache or attempts fields.
    let mut plain = Worker::new("{}");
    plain.run(&Call::chat(&body).json(200, &answer));
    let rec = &plain.audit_lines()[0];
    assert_eq!(rec["requestModel"], "auto");
    assert!(rec.get("cache").is_none() && rec.get("attempts").is_none());
    // A hostile value is cut, a non-number ignored.
    let mut hostile = Worker::new("{}");
    hostile.run(
        &Call::chat(&body)
            .json(200, &answer)
            .response_header("x-aigw-cache", &"h".repeat(10_000))
            .response_header("x-aigw-attempts", "lots"),
    );
    let rec = &hostile.audit_lines()[0];
    assert_eq!(rec["cache"].as_str().unwrap().len(), 64);
    assert!(rec.get("attempts").is_none());
}

#[test]
fn the_responses_api_is_counted_from_its_json_answer_and_its_event_stream() {
    let mut w = Worker::new(PRICED);
    let body = fixture("providers/openai-responses.request.json");
    w.run(
        &Call::chat(&body)
            .path("/v1/responses")
            .json(200, &fixture("providers/openai-responses.response.json")),
    );
    let l = "openai/gpt-4o/chat/unknown";
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(14));
    assert_eq!(w.counter(l, "token_type.output.tokens_total"), Some(8));
    assert_eq!(w.counter(l, "usage_estimated_total"), None);
    let rec = &w.audit_lines()[0];
    assert_eq!(rec["api"], "responses");
    assert_eq!(rec["finishReason"], "stop");
    assert_eq!(rec["responseModel"], "gpt-4o-2024-08-06");

    let stream = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/testdata/llm/responses-stream-text.sse"),
    )
    .unwrap();
    let body = br#"{"model":"gpt-4o","input":"What is the capital of France?","stream":true}"#;
    w.run(&Call::chat(body).path("/v1/responses").sse(&stream, MS));
    assert_eq!(w.counter(l, "token_type.input.tokens_total"), Some(28));
    assert_eq!(w.counter(l, "token_type.cached.tokens_total"), Some(4));
    assert_eq!(
        w.samples(l, "server_time_to_first_token_ms").len(),
        1,
        "the first output_text delta times the first token"
    );
}
