//! Regressions from the "untrusted input" issue: what a client (or an upstream) sends must not
//! grow the metric set, reach a header, leak a secret or slip past validation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ai_proxy::Proxy;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::{Exchange, Gateway, Outcome, UpstreamReply};

const OPENAI_ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

fn wildcard_config() -> &'static str {
    r#"{"providers": [{"name": "oai", "type": "openai", "apiKeys": ["sk-oai-SECRET-1"]}],
        "models": [{"match": "*", "provider": "oai"}]}"#
}

fn chat(model: &str) -> String {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string()
}

fn metric_names(out: &Outcome) -> Vec<String> {
    out.host.state.borrow().metrics.keys().cloned().collect()
}

#[test]
fn model_labels_are_bounded_in_length_and_count() {
    let mut gw = Gateway::<Proxy>::new(wildcard_config(), Capabilities::FULL);
    let long = format!("m-{}", "x".repeat(250));
    let out = gw.run(
        Exchange::post_json("/v1/chat/completions", &chat(&long))
            .reply(UpstreamReply::json(OPENAI_ANSWER)),
    );
    assert!(out.upstream_headers.is_some(), "a 252-byte model is served");
    let names = metric_names(&out);
    let series: Vec<&String> = names.iter().filter(|n| n.contains(".model.")).collect();
    assert!(!series.is_empty());
    for n in &series {
        let label = n
            .split(".model.")
            .nth(1)
            .unwrap()
            .split('.')
            .next()
            .unwrap();
        assert!(label.len() <= 64, "label of {} bytes: {n}", label.len());
    }
    for i in 0..100 {
        gw.run(
            Exchange::post_json("/v1/chat/completions", &chat(&format!("{i}-{long}")))
                .reply(UpstreamReply::json(OPENAI_ANSWER)),
        );
    }
    // The worker's label set is full: a new model counts as `other`, known ones keep theirs.
    let labels = &gw.state().model_labels;
    assert_eq!(labels.label("a-new-model"), "other");
    assert_eq!(labels.label(&long).len(), 64);
}

#[test]
fn a_model_over_256_bytes_is_a_400_and_makes_no_label() {
    let out = Exchange::post_json("/v1/chat/completions", &chat(&"y".repeat(257)))
        .run::<Proxy>(wildcard_config());
    assert_eq!(out.local_response.as_ref().map(|r| r.status), Some(400));
    assert!(!metric_names(&out).iter().any(|n| n.contains(".model.")));
}
