//! Per-request metrics labelled by provider and model, and the promise that a configured API key
//! never reaches a log line, a metric name or a client response, whatever the upstream answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::host::LogLevel;
use aigw_shared::mock::{Exchange, Outcome, UpstreamReply};

const KEYS: [&str; 2] = ["sk-ant-SECRET-0123456789", "sk-oai-SECRET-9876543210"];
const CHAT_GPT4O: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

fn here(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/metrics")
        .join(name)
}

fn config() -> String {
    std::fs::read_to_string(here("config.json")).unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn reply(status: u16, content_type: &str, body: Vec<u8>) -> UpstreamReply {
    UpstreamReply {
        status,
        headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
        chunks: vec![body],
    }
}

fn counter(out: &Outcome, name: &str) -> Option<i64> {
    out.host.metric_value(&format!("aigw.gen_ai.{name}"))
}

#[test]
fn a_translated_answer_counts_the_request_and_its_tokens_under_provider_and_backend_model() {
    let out = Exchange::post_json("/v1/chat/completions", CHAT_GPT4O)
        .reply(reply(
            200,
            "application/json",
            sample("anthropic-messages-tooluse.response.json"),
        ))
        .run::<Proxy>(&config());
    let series = "provider.claude.model.claude-haiku-4-5.route.unknown.consumer.unknown";
    assert_eq!(
        counter(&out, &format!("{series}.upstream_requests_total")),
        Some(1)
    );
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.input.upstream_tokens_total")
        ),
        Some(656)
    );
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.output.upstream_tokens_total")
        ),
        Some(74)
    );
    let st = out.host.state.borrow();
    let hist = &st.metrics[&format!("aigw.gen_ai.{series}.upstream_request_duration_ms")];
    assert_eq!(hist.samples.len(), 1, "one duration sample per request");
}

#[test]
fn a_passthrough_stream_is_observed_for_its_usage_without_being_changed() {
    let body = sample("openai-chat-stream-usage.request.json");
    let upstream = sample("openai-chat-stream-usage.sse");
    let out = Exchange::post_json("/v1/chat/completions", std::str::from_utf8(&body).unwrap())
        .reply(reply(200, "text/event-stream", upstream.clone()))
        .run::<Proxy>(&config());
    assert_eq!(out.response_body, upstream);
    let series = "provider.oai.model.gpt-5-nano.route.unknown.consumer.unknown";
    assert_eq!(
        counter(&out, &format!("{series}.upstream_requests_total")),
        Some(1)
    );
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.input.upstream_tokens_total")
        ),
        Some(12)
    );
    assert_eq!(
        counter(
            &out,
            &format!("{series}.token_type.output.upstream_tokens_total")
        ),
        Some(100)
    );
}

#[test]
fn upstream_errors_are_counted_by_status_class() {
    let out = Exchange::post_json("/v1/chat/completions", CHAT_GPT4O)
        .reply(reply(
            429,
            "application/json",
            sample("anthropic-error-429.response.json"),
        ))
        .run::<Proxy>(&config());
    let series = "provider.claude.model.claude-haiku-4-5.route.unknown.consumer.unknown";
    assert_eq!(
        counter(
            &out,
            &format!("{series}.error_type.4xx.upstream_errors_total")
        ),
        Some(1)
    );
    let out = Exchange::post_json("/v1/chat/completions", CHAT_GPT4O)
        .reply(reply(200, "application/json", b"{broken".to_vec()))
        .run::<Proxy>(&config());
    assert_eq!(
        counter(
            &out,
            &format!("{series}.error_type.5xx.upstream_errors_total")
        ),
        Some(1),
        "an untranslatable 200 is a 502 for the client and counts as one"
    );
}

fn everything_visible(out: &Outcome) -> String {
    let st = out.host.state.borrow();
    let mut all = String::new();
    for (_, line) in &st.logs {
        all.push_str(line);
        all.push('\n');
    }
    for name in st.metrics.keys() {
        all.push_str(name);
        all.push('\n');
    }
    for (k, v) in &st.response_headers {
        all.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v)));
    }
    all.push_str(&String::from_utf8_lossy(&out.response_body));
    if let Some(local) = &st.local_response {
        all.push_str(&local.body_text());
        for (k, v) in &local.headers {
            all.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v)));
        }
    }
    all
}

#[test]
fn configured_keys_never_reach_logs_metrics_or_responses() {
    let echo = std::fs::read(here("upstream-401-echoing-key.json")).unwrap();
    let anthropic_client =
        r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let runs = vec![
        // Translated answer, translated error that quotes the key, same-protocol error that
        // quotes it, an untranslatable body, local rejections, the model list.
        Exchange::post_json("/v1/chat/completions", CHAT_GPT4O).reply(reply(
            200,
            "application/json",
            sample("anthropic-messages-tooluse.response.json"),
        )),
        Exchange::post_json("/v1/chat/completions", CHAT_GPT4O).reply(reply(
            401,
            "application/json",
            echo.clone(),
        )),
        Exchange::post_json("/v1/messages", anthropic_client)
            .header("x-api-key", "client-key")
            .reply(reply(401, "application/json", echo.clone())),
        Exchange::post_json("/v1/chat/completions", CHAT_GPT4O).reply(reply(
            200,
            "application/json",
            b"<html>".to_vec(),
        )),
        Exchange::post_json("/v1/chat/completions", r#"{"model":"nope","messages":[]}"#),
        Exchange::post_json("/v1/chat/completions", "{not json"),
        Exchange::get("/v1/models"),
    ];
    for (i, ex) in runs.into_iter().enumerate() {
        let out = ex.run::<Proxy>(&config());
        let seen = everything_visible(&out);
        for key in KEYS {
            assert!(!seen.contains(key), "run {i}: key visible in\n{seen}");
        }
        assert!(
            out.host.logs_at_least(LogLevel::Critical).is_empty(),
            "run {i}: {seen}"
        );
    }
}

#[test]
fn a_quoted_key_is_redacted_but_the_error_keeps_its_shape_and_status() {
    let echo = std::fs::read(here("upstream-401-echoing-key.json")).unwrap();
    let anthropic_client =
        r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let out = Exchange::post_json("/v1/messages", anthropic_client)
        .reply(reply(401, "application/json", echo))
        .run::<Proxy>(&config());
    let body: serde_json::Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        body["error"]["message"], "invalid x-api-key: [redacted].",
        "{body}"
    );
    assert_eq!(body["error"]["type"], "authentication_error");
    let st = out.host.state.borrow();
    let status = st.response_headers.iter().find(|(k, _)| k == ":status");
    assert_eq!(status.map(|(_, v)| v.as_slice()), Some(&b"401"[..]));
}

#[test]
fn the_config_debug_output_names_no_key() {
    let value: serde_json::Value = serde_json::from_str(&config()).unwrap();
    let cfg = ai_proxy::config::Config::build(&value).unwrap();
    let debug = format!("{cfg:?}");
    for key in KEYS {
        assert!(!debug.contains(key), "{debug}");
    }
}

#[test]
fn a_mapped_model_is_named_in_the_upstream_model_response_header() {
    let header = |out: &Outcome| {
        out.response_headers
            .iter()
            .find(|(k, _)| k == "x-aigw-upstream-model")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let mapped = Exchange::post_json("/v1/chat/completions", CHAT_GPT4O)
        .reply(reply(
            200,
            "application/json",
            sample("anthropic-messages-tooluse.response.json"),
        ))
        .run::<Proxy>(&config());
    assert_eq!(header(&mapped).as_deref(), Some("claude-haiku-4-5"));
    let body = sample("openai-chat-stream-usage.request.json");
    let unmapped = Exchange::post_json("/v1/chat/completions", std::str::from_utf8(&body).unwrap())
        .reply(reply(
            200,
            "text/event-stream",
            sample("openai-chat-stream-usage.sse"),
        ))
        .run::<Proxy>(&config());
    assert_eq!(header(&unmapped), None, "the client's own model: no header");
}
