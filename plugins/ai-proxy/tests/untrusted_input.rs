//! Regressions from the "untrusted input" issue: what a client (or an upstream) sends must not
//! grow the metric set, reach a header, leak a secret or slip past validation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ai_proxy::Proxy;
use aigw_shared::host::{Action, Capabilities, Direction, LogLevel, MapKind};
use aigw_shared::mock::{Exchange, Gateway, MockHost, Outcome, UpstreamReply};

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

// ---- malformed errors and held answers (filter/response.rs) ----

const METRICS_CONFIG: &str = include_str!("../testdata/metrics/config.json");
/// Routed to Anthropic (translated).
const TRANSLATED: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
const TRANSLATED_STREAM: &str =
    r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
/// Routed to OpenAI (same protocol).
const SAME: &str = r#"{"model":"gpt-5-nano","messages":[{"role":"user","content":"hi"}]}"#;

fn upstream(status: u16, content_type: &str, chunks: Vec<Vec<u8>>) -> UpstreamReply {
    UpstreamReply {
        status,
        headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
        chunks,
    }
}

fn status_of(out: &Outcome) -> u16 {
    if let Some(r) = &out.local_response {
        return r.status;
    }
    // Held headers may change after the headers callback: read them as they finally are.
    let st = out.host.state.borrow();
    let h = st.response_headers.iter().find(|(k, _)| k == ":status");
    String::from_utf8_lossy(&h.unwrap().1).parse().unwrap()
}

fn body_of(out: &Outcome) -> Vec<u8> {
    match &out.local_response {
        Some(r) => r.body.clone(),
        None => out.response_body.clone(),
    }
}

fn json_of(out: &Outcome) -> serde_json::Value {
    let body = body_of(out);
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)))
}

#[test]
fn an_upstream_error_without_a_body_gets_an_error_body_in_the_callers_shape() {
    for (body, anthropic) in [
        (TRANSLATED, false),
        (SAME, false),
        (
            r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#,
            true,
        ),
    ] {
        let path = if anthropic {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        let out = Exchange::post_json(path, body)
            .reply(upstream(503, "application/json", vec![]))
            .run::<Proxy>(METRICS_CONFIG);
        assert_eq!(status_of(&out), 503, "{body}");
        let v = json_of(&out);
        if anthropic {
            assert_eq!(v["type"], "error", "{v}");
        } else {
            assert!(v["error"]["message"].is_string(), "{v}");
        }
    }
}

#[test]
fn an_empty_200_on_a_translated_stream_ends_with_an_error_event() {
    let out = Exchange::post_json("/v1/chat/completions", TRANSLATED_STREAM)
        .reply(upstream(200, "text/event-stream", vec![Vec::new()]))
        .run::<Proxy>(METRICS_CONFIG);
    let text = String::from_utf8_lossy(&body_of(&out)).into_owned();
    assert!(text.contains("\"error\""), "{text:?}");
    // Nothing at all (headers ended the stream): a local 502 with a JSON error.
    let out = Exchange::post_json("/v1/chat/completions", TRANSLATED_STREAM)
        .reply(upstream(200, "text/event-stream", vec![]))
        .run::<Proxy>(METRICS_CONFIG);
    assert_eq!(status_of(&out), 502);
    assert!(json_of(&out)["error"].is_object());
}

#[test]
fn a_3xx_on_a_translated_request_becomes_a_502_in_status_and_body() {
    let out = Exchange::post_json("/v1/chat/completions", TRANSLATED)
        .reply(upstream(
            302,
            "text/html",
            vec![b"<html>moved</html>".to_vec()],
        ))
        .run::<Proxy>(METRICS_CONFIG);
    assert_eq!(status_of(&out), 502);
    assert!(json_of(&out)["error"].is_object());
}

#[test]
fn a_same_protocol_json_error_over_1_mib_stays_valid_json() {
    let big = serde_json::json!({"error": {"message": "x".repeat(3 << 20), "type": "invalid_request_error"}})
        .to_string()
        .into_bytes();
    let chunks: Vec<Vec<u8>> = big.chunks(64 << 10).map(<[u8]>::to_vec).collect();
    let out = Exchange::post_json("/v1/chat/completions", SAME)
        .reply(upstream(400, "application/json", chunks))
        .run::<Proxy>(METRICS_CONFIG);
    let v = json_of(&out);
    assert!(v["error"]["message"].is_string(), "{v}");
    assert_eq!(status_of(&out), 502);
}

#[test]
fn a_held_json_answer_ended_by_trailers_is_still_translated() {
    let answer = std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/providers/anthropic-messages-tooluse.response.json"),
    )
    .unwrap();
    let (a, b) = answer.split_at(answer.len() / 2);
    let out = Exchange::post_json("/v1/chat/completions", TRANSLATED)
        .reply(upstream(
            200,
            "application/json",
            vec![a.to_vec(), b.to_vec()],
        ))
        .reply_trailers(&[("grpc-status", "0")])
        .run::<Proxy>(METRICS_CONFIG);
    assert_eq!(out.stalled, None);
    assert_eq!(status_of(&out), 200);
    assert_eq!(json_of(&out)["object"], "chat.completion");
}

#[test]
fn a_translated_stream_ended_by_trailers_still_closes_properly() {
    // The upstream's own ending (`message_stop`) closes the client's stream when it is read, so
    // the closing events go out with the last data chunk: trailers carry no body bytes.
    let mut sse = std::fs::read(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/providers/anthropic-messages-stream.sse"),
    )
    .unwrap();
    // The recorded sample lost the blank line after its last event; the wire has it.
    sse.extend_from_slice(b"\n\n");
    let (a, b) = sse.split_at(sse.len() / 2);
    let out = Exchange::post_json("/v1/chat/completions", TRANSLATED_STREAM)
        .reply(upstream(
            200,
            "text/event-stream",
            vec![a.to_vec(), b.to_vec()],
        ))
        .reply_trailers(&[("grpc-status", "0")])
        .run::<Proxy>(METRICS_CONFIG);
    assert_eq!(out.stalled, None);
    let text = String::from_utf8(body_of(&out)).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("\"finish_reason\":\"stop\""), "{text}");
}

// ---- secrets ----

fn config_error(json: &str) -> String {
    match aigw_shared::plugin::PluginConfig::<Proxy>::parse(json.as_bytes()) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_config_value_of_the_wrong_type_is_never_quoted() {
    let e = config_error(
        r#"{"providers": [{"name": "o", "type": "openai", "apiKeys": "sk-live-SECRET-123"}]}"#,
    );
    assert!(!e.contains("SECRET"), "{e}");
    assert!(e.contains("apiKeys"), "{e}");
}

#[test]
fn config_strings_that_become_headers_must_not_hold_line_breaks() {
    for (json, field) in [
        (
            r#"{"providers": [{"name": "o", "type": "openai", "apiKeys": ["sk-SECRET\n"]}]}"#,
            "providers[0].apiKeys[0]",
        ),
        (
            r#"{"providers": [{"name": "o", "type": "openai", "authority": "a\r\nx: y"}]}"#,
            "providers[0].authority",
        ),
        (
            r#"{"providers": [{"name": "o", "type": "openai", "options": {"organization": "org\u0000"}}]}"#,
            "providers[0].options.organization",
        ),
        (
            r#"{"providers": [{"name": "b", "type": "bedrock", "options": {"region": "us-east-1", "accessKeyId": "AKIA", "secretAccessKey": "SECRET\n"}}]}"#,
            "providers[0].options.secretAccessKey",
        ),
        (
            r#"{"providers": [{"name": "a", "type": "anthropic", "options": {"anthropicBeta": "x\ny"}}]}"#,
            "providers[0].options.anthropicBeta",
        ),
    ] {
        let e = config_error(json);
        assert!(e.starts_with(field), "{field}: {e}");
        assert!(!e.contains("SECRET"), "{e}");
    }
}

#[test]
fn aws_secrets_and_a_passed_through_client_key_are_redacted_from_upstream_errors() {
    let bedrock = r#"{"providers": [{"name": "b", "type": "bedrock", "options": {"region": "us-east-1",
        "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "wJalr/XUtnFEMI+K7MDENG", "sessionToken": "FwoGZXIvYXdzEJr//SESSION=="}}]}"#;
    let quoted =
        r#"{"message":"bad signature for wJalr/XUtnFEMI+K7MDENG with FwoGZXIvYXdzEJr//SESSION=="}"#;
    let out = Exchange::post_json("/v1/chat/completions", &chat("amazon.nova-micro-v1:0"))
        .reply(upstream(
            403,
            "application/json",
            vec![quoted.as_bytes().to_vec()],
        ))
        .run::<Proxy>(bedrock);
    let text = String::from_utf8_lossy(&body_of(&out)).into_owned();
    assert!(text.contains("[redacted]"), "{text}");
    assert!(
        !text.contains("wJalr") && !text.contains("SESSION"),
        "{text}"
    );

    let pass =
        r#"{"providers": [{"name": "o", "type": "openai"}], "clientCredential": "passThrough"}"#;
    let quoted = r#"{"error":{"message":"Incorrect API key provided: sk-client-OWN-KEY-42.","type":"invalid_request_error"}}"#;
    let out = Exchange::post_json("/v1/chat/completions", &chat("gpt-4o"))
        .header("authorization", "Bearer sk-client-OWN-KEY-42")
        .reply(upstream(
            401,
            "application/json",
            vec![quoted.as_bytes().to_vec()],
        ))
        .run::<Proxy>(pass);
    assert_eq!(
        out.upstream_header("authorization").as_deref(),
        Some("Bearer sk-client-OWN-KEY-42")
    );
    let text = String::from_utf8_lossy(&body_of(&out)).into_owned();
    assert!(!text.contains("OWN-KEY"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

// ---- nesting depth on every route ----

fn deep(levels: usize) -> String {
    format!(
        r#"{{"model":"MODEL","messages":[{{"role":"user","content":"hi"}}],"metadata":{}1{}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    )
}

#[test]
fn a_deeply_nested_body_is_the_same_400_on_every_route() {
    for (path, model) in [
        ("/v1/chat/completions", "gpt-5-nano"), // OpenAI -> OpenAI
        ("/v1/messages", "claude-x"),           // Anthropic -> Anthropic
        ("/v1/chat/completions", "gpt-4o"),     // OpenAI -> Anthropic
        ("/v1/embeddings", "gpt-5-nano"),       // embeddings, forwarded
    ] {
        let body = deep(10_000).replace("MODEL", model);
        let out = Exchange::post_json(path, &body).run::<Proxy>(METRICS_CONFIG);
        let r = out
            .local_response
            .as_ref()
            .unwrap_or_else(|| panic!("{path} {model}: forwarded"));
        assert_eq!(r.status, 400, "{path} {model}");
        assert!(
            String::from_utf8_lossy(&r.body).contains("recursion limit"),
            "{path} {model}"
        );
    }
    // 100 levels (with strings full of brackets) still pass.
    let body = deep(100)
        .replace("MODEL", "gpt-5-nano")
        .replace(r#""hi""#, r#""[[[[{{{{\"[[[""#);
    let out = Exchange::post_json("/v1/chat/completions", &body).run::<Proxy>(METRICS_CONFIG);
    assert!(out.local_response.is_none(), "{:?}", out.local_response);
    assert_eq!(out.upstream_body, body.as_bytes());
}

// ---- a provider `cluster` Envoy does not have (filter/response.rs) ----

const GHOST_CONFIG: &str = r#"{"providers": [
    {"name": "ghost", "type": "openai", "cluster": "no-such-cluster", "apiKeys": ["sk-ghost"]},
    {"name": "ghost-claude", "type": "anthropic", "cluster": "no-such-claude", "apiKeys": ["sk-ghost"]}],
  "models": [{"match": "gpt-*", "provider": "ghost"}, {"match": "claude-*", "provider": "ghost-claude"}]}"#;

/// One request through ai-proxy whose upstream answers `status` with headers only, on a host
/// whose `response.code_details` is `details` (driven by hand: `Exchange` cannot set
/// properties). Returns the host after `on_log`.
fn bodiless_answer(path: &str, body: &str, status: u16, details: Option<&str>) -> MockHost {
    let mut drv = aigw_shared::mock::driver::<Proxy>(GHOST_CONFIG, Capabilities::FULL);
    let host = MockHost::new(Capabilities::FULL);
    {
        let mut st = host.state.borrow_mut();
        st.request_headers = [
            (":method", "POST"),
            (":path", path),
            (":authority", "gateway.local"),
            ("content-type", "application/json"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
        st.gate.open(MapKind::RequestHeaders);
    }
    assert_eq!(drv.on_request_headers(&host, false), Action::Pause);
    host.state.borrow_mut().request_body = body.as_bytes().to_vec();
    drv.on_request_body(&host, body.len(), true);
    {
        let mut st = host.state.borrow_mut();
        assert!(st.local_response.is_none(), "{:?}", st.local_response);
        st.gate.release(Direction::Request);
        st.response_headers = vec![(":status".into(), status.to_string().into_bytes())];
        st.gate.open(MapKind::ResponseHeaders);
        if let Some(d) = details {
            let key = vec!["response".to_owned(), "code_details".to_owned()];
            st.properties.insert(key, d.as_bytes().to_vec());
        }
    }
    drv.on_response_headers(&host, true);
    drv.on_log(&host);
    host
}

#[test]
fn envoys_cluster_not_found_reply_names_the_cluster_in_the_callers_shape() {
    for (path, body, cluster, provider, anthropic) in [
        // same protocol, translated, and an Anthropic client
        (
            "/v1/chat/completions",
            chat("gpt-4o"),
            "no-such-cluster",
            "ghost",
            false,
        ),
        (
            "/v1/chat/completions",
            chat("claude-x"),
            "no-such-claude",
            "ghost-claude",
            false,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#
                .to_owned(),
            "no-such-claude",
            "ghost-claude",
            true,
        ),
    ] {
        let host = bodiless_answer(path, &body, 503, Some("cluster_not_found"));
        let reply = host.state.borrow().local_response.clone().unwrap();
        assert_eq!(reply.status, 503, "{path} {body}");
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("cluster `{cluster}`"))
                && message.contains(&format!("provider `{provider}`")),
            "{v}"
        );
        if anthropic {
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["error"]["type"], "api_error", "{v}");
        } else {
            assert_eq!(v["error"]["code"], "cluster_not_found", "{v}");
            assert_eq!(v["error"]["type"], "server_error", "{v}");
        }
        // One warning, naming the cluster; not the generic one.
        let warnings = host.logs_at_least(LogLevel::Warn);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(cluster), "{warnings:?}");
    }
    // Envoy's route may answer a missing cluster with another status: it is kept.
    let host = bodiless_answer(
        "/v1/chat/completions",
        &chat("gpt-4o"),
        404,
        Some("cluster_not_found"),
    );
    let reply = host.state.borrow().local_response.clone().unwrap();
    assert_eq!(reply.status, 404);
    assert!(reply.body_text().contains("no-such-cluster"), "{reply:?}");
}

#[test]
fn a_providers_own_bodiless_error_does_not_blame_a_cluster() {
    for details in [None, Some("via_upstream")] {
        let host = bodiless_answer("/v1/chat/completions", &chat("gpt-4o"), 503, details);
        let reply = host.state.borrow().local_response.clone().unwrap();
        assert_eq!(reply.status, 503);
        let text = reply.body_text();
        assert!(
            text.contains("empty body") && !text.contains("cluster"),
            "{text}"
        );
        let warnings = host.logs_at_least(LogLevel::Warn);
        assert!(
            warnings.iter().all(|w| !w.contains("cluster")),
            "{warnings:?}"
        );
    }
}
