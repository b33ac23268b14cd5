//! Anthropic's `POST /v1/messages/count_tokens`: forwarded to an Anthropic provider (model
//! mapped, the provider's key and version), answered by the gateway's estimate for a model whose
//! provider has no counting API (marked `x-aigw-token-count: estimated`), errors in Anthropic's
//! shape. Driven by the real samples in `testdata/providers/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::mock::{Exchange, UpstreamReply};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-pool"]},
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-oai-pool"]},
    {"name": "gem", "type": "gemini", "cluster": "gemini", "apiKeys": ["gem-pool"]},
    {"name": "vtx", "type": "vertex", "cluster": "vertex", "apiKeys": ["vtx-token"],
     "options": {"project": "p1", "location": "us-central1"}}
  ],
  "models": [
    {"match": "claude-sonnet-4-5", "provider": "claude", "target": "claude-sonnet-4-5-20250929"},
    {"match": "claude-*", "provider": "claude"},
    {"match": "gpt-*", "provider": "oai"},
    {"match": "gemini-*", "provider": "gem"},
    {"match": "vertex-flash", "provider": "vtx", "target": "gemini-2.5-flash"}
  ]
}"#;

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn count(body: &[u8]) -> Exchange {
    Exchange::post_json(
        "/v1/messages/count_tokens?beta=true",
        std::str::from_utf8(body).unwrap(),
    )
    .header("x-api-key", "sk-client")
    .header("anthropic-version", "2023-06-01")
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[test]
fn an_anthropic_model_is_counted_by_anthropic_with_the_pool_key() {
    for (request, answer) in [
        (
            "anthropic-messages-count-tokens.request.json",
            "anthropic-messages-count-tokens.response.json",
        ),
        (
            "anthropic-messages-count-tokens-tools.request.json",
            "anthropic-messages-count-tokens-tools.response.json",
        ),
    ] {
        let reply = UpstreamReply {
            status: 200,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            chunks: vec![sample(answer)],
        };
        let out = count(&sample(request)).reply(reply).run::<Proxy>(CONFIG);
        let sent = out.upstream_headers.as_ref().expect("forwarded");
        assert_eq!(header(sent, ":path"), Some("/v1/messages/count_tokens"));
        assert_eq!(header(sent, "x-api-key"), Some("sk-ant-pool"));
        assert_eq!(header(sent, "x-aigw-upstream"), Some("anthropic"));
        assert!(header(sent, "anthropic-version").is_some());
        let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
        let asked: Value = serde_json::from_slice(&sample(request)).unwrap();
        assert_eq!(
            body["messages"], asked["messages"],
            "the rest of the body unchanged"
        );
        assert_eq!(
            out.response_body,
            sample(answer),
            "{request}: the answer passes as is"
        );
    }
    let out = count(&sample("anthropic-messages-count-tokens.request.json"))
        .reply(UpstreamReply {
            status: 200,
            headers: vec![],
            chunks: vec![b"{}".to_vec()],
        })
        .run::<Proxy>(CONFIG);
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5-20250929", "mapped");
}

#[test]
fn a_model_without_a_counting_api_gets_the_gateways_estimate() {
    let short = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
    let long = serde_json::json!({"model": "gpt-4o-mini", "system": "Be brief.",
        "messages": [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. ".repeat(20)}]})
    .to_string();
    let mut counts = Vec::new();
    for body in [&short[..], long.as_bytes()] {
        let out = count(body).run::<Proxy>(CONFIG);
        let local = out
            .local_response
            .as_ref()
            .expect("answered by the gateway");
        assert!(out.upstream_headers.is_none());
        assert_eq!(local.status, 200);
        assert_eq!(
            header(&local.headers, "x-aigw-token-count"),
            Some("estimated")
        );
        let v: Value = serde_json::from_slice(&local.body).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1, "only input_tokens: {v}");
        counts.push(v["input_tokens"].as_u64().unwrap());
    }
    assert!(counts[0] >= 1 && counts[1] > 10 * counts[0], "{counts:?}");
}

#[test]
fn bad_counting_requests_are_answered_in_anthropics_shape() {
    for (body, status) in [
        (&b"{not json"[..], 400),
        (br#"{"model":"nobody-serves-this","messages":[]}"#, 404),
    ] {
        let out = count(body).run::<Proxy>(CONFIG);
        let local = out
            .local_response
            .as_ref()
            .expect("answered by the gateway");
        assert_eq!(local.status, status);
        let v: Value = serde_json::from_slice(&local.body).unwrap();
        assert_eq!(v["type"], "error", "{v}");
    }
}

fn json_reply(status: u16, body: Vec<u8>) -> UpstreamReply {
    UpstreamReply {
        status,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        chunks: vec![body],
    }
}

#[test]
fn a_gemini_model_is_counted_by_count_tokens_and_answered_in_anthropics_shape() {
    let ask = br#"{"model":"gemini-2.0-flash","system":"Be brief.","messages":[{"role":"user","content":"The quick brown fox jumps over the lazydog."}]}"#;
    let out = count(ask)
        .reply(json_reply(200, sample("gemini-counttokens.response.json")))
        .run::<Proxy>(CONFIG);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/v1beta/models/gemini-2.0-flash:countTokens")
    );
    assert_eq!(header(sent, "x-goog-api-key"), Some("gem-pool"));
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    let request = &body["generateContentRequest"];
    assert_eq!(request["model"], "models/gemini-2.0-flash");
    // The real sample's request holds the same contents.
    let real: Value = serde_json::from_slice(&sample("gemini-counttokens.request.json")).unwrap();
    assert_eq!(request["contents"], real["contents"]);
    assert_eq!(
        request["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    assert!(request.get("generationConfig").is_none());
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer, serde_json::json!({"input_tokens": 12}));

    let out = count(ask)
        .reply(json_reply(
            404,
            sample("gemini-counttokens-error-404.response.json"),
        ))
        .run::<Proxy>(CONFIG);
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["error"]["type"], "not_found_error");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("countTokens"));
}

#[test]
fn a_vertex_model_is_counted_by_its_count_tokens_without_the_wrapper() {
    let ask = br#"{"model":"vertex-flash","messages":[{"role":"user","content":"hello there"}]}"#;
    let out = count(ask)
        .reply(json_reply(
            200,
            br#"{"totalTokens": 3, "totalBillableCharacters": 10}"#.to_vec(),
        ))
        .run::<Proxy>(CONFIG);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/v1/projects/p1/locations/us-central1/publishers/google/models/gemini-2.5-flash:countTokens")
    );
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    assert!(body.get("generateContentRequest").is_none());
    assert_eq!(body["contents"][0]["parts"][0]["text"], "hello there");
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer, serde_json::json!({"input_tokens": 3}));
    // An answer without the count is a 502 in Anthropic's shape, not a made-up number.
    let out = count(ask)
        .reply(json_reply(200, b"{}".to_vec()))
        .run::<Proxy>(CONFIG);
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer["type"], "error", "{answer}");
}

#[test]
fn openai_counts_responses_input_tokens_and_the_gateway_estimates_for_other_providers() {
    let ask = sample("openai-responses-input-tokens.request.json");
    let asked: Value = serde_json::from_slice(&ask).unwrap();
    let body = serde_json::to_string(&serde_json::json!({
        "model": "gpt-4.1-mini", "input": asked["input"], "tools": asked["tools"],
        "tool_choice": asked["tool_choice"]}))
    .unwrap();
    let out = Exchange::post_json("/v1/responses/input_tokens", &body)
        .header("authorization", "Bearer client")
        .reply(json_reply(
            200,
            sample("openai-responses-input-tokens.response.json"),
        ))
        .run::<Proxy>(CONFIG);
    let sent = out.upstream_headers.as_ref().expect("forwarded to OpenAI");
    assert_eq!(header(sent, ":path"), Some("/v1/responses/input_tokens"));
    assert_eq!(header(sent, "authorization"), Some("Bearer sk-oai-pool"));
    assert_eq!(
        out.response_body,
        sample("openai-responses-input-tokens.response.json")
    );

    // The same request for a model on Anthropic: estimated here, in OpenAI's shape.
    let claude = body.replace("gpt-4.1-mini", "claude-haiku-4-5");
    let out = Exchange::post_json("/v1/responses/input_tokens", &claude).run::<Proxy>(CONFIG);
    let local = out
        .local_response
        .as_ref()
        .expect("answered by the gateway");
    assert!(out.upstream_headers.is_none());
    assert_eq!(
        header(&local.headers, "x-aigw-token-count"),
        Some("estimated")
    );
    let v: Value = serde_json::from_slice(&local.body).unwrap();
    assert_eq!(v["object"], "response.input_tokens");
    // The real count for this request is 51; the estimate is in its range.
    let n = v["input_tokens"].as_u64().unwrap();
    assert!((20..=120).contains(&n), "{n}");

    let out = Exchange::post_json("/v1/responses/input_tokens", "[1]").run::<Proxy>(CONFIG);
    let local = out.local_response.as_ref().unwrap();
    assert_eq!(local.status, 400);
    let v: Value = serde_json::from_slice(&local.body).unwrap();
    assert!(v["error"]["message"].is_string(), "OpenAI's shape: {v}");
}

// Bedrock CountTokens (`POST /model/{modelId}/count-tokens`). No recorded sample exists: the
// fixtures in `testdata/bedrock/count-tokens/` are built from the AWS Bedrock Runtime API
// reference (CountTokens, CountTokensInput, ConverseTokensRequest, InvokeModelTokensRequest; see
// the README there).

const BEDROCK: &str = r#"{
  "providers": [{"name": "aws", "type": "bedrock", "cluster": "bedrock", "options": {
    "region": "us-east-1", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI",
    "invokeModels": ["us.anthropic.*"]}}],
  "models": [
    {"match": "claude-haiku-4-5", "provider": "aws", "target": "anthropic.claude-haiku-4-5-20251001-v1:0"},
    {"match": "claude-invoke", "provider": "aws", "target": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"}
  ]
}"#;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bedrock/count-tokens")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The upstream request's SigV4 signature checked as Bedrock would (the mock clock).
fn signed_by_bedrock(out: &aigw_shared::mock::Outcome) -> bool {
    use aigw_shared::aws::{verify, AmzDate, Credentials, SignableRequest, VerifyPolicy};
    let headers = out.upstream_headers.as_ref().expect("reached the upstream");
    let text: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
        .collect();
    let find = |name: &str| {
        text.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut req = SignableRequest::new("POST", find(":path").unwrap(), &out.upstream_body)
        .header("host", find(":authority").unwrap());
    for (k, v) in text.iter().filter(|(k, _)| !k.starts_with(':')) {
        req = req.header(k, v);
    }
    let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI");
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(1_700_000_001)),
        region: Some("us-east-1"),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    verify(
        &req,
        |id| (id == "AKIDEXAMPLE").then(|| creds.clone()),
        &policy,
    )
    .is_ok()
}

const FOX: &str = r#"{"model":"claude-haiku-4-5","system":"Be brief.","messages":[{"role":"user","content":"The quick brown fox jumps over the lazy dog"}]}"#;

#[test]
fn a_bedrock_model_is_counted_by_count_tokens_with_a_converse_input_signed_with_sigv4() {
    let out = count(FOX.as_bytes())
        .reply(json_reply(200, fixture("converse.response.json")))
        .run::<Proxy>(BEDROCK);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens")
    );
    assert_eq!(
        header(sent, ":authority"),
        Some("bedrock-runtime.us-east-1.amazonaws.com")
    );
    assert_eq!(header(sent, "x-api-key"), None, "the client's key is gone");
    assert!(signed_by_bedrock(&out), "a valid SigV4 signature");
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    let documented: Value = serde_json::from_slice(&fixture("converse.request.json")).unwrap();
    assert_eq!(body, documented, "the documented CountTokens shape");
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer, serde_json::json!({"input_tokens": 17}));
    let held = out.host.state.borrow().response_headers.clone();
    assert_eq!(header(&held, "x-aigw-token-count"), None);
    assert_eq!(header(&held, ":status"), Some("200"));
}

#[test]
fn the_openai_sdks_input_tokens_for_a_bedrock_model_are_counted_by_count_tokens() {
    let ask = r#"{"model":"claude-haiku-4-5","instructions":"Be brief.","input":[{"role":"user","content":"The quick brown fox jumps over the lazy dog"}]}"#;
    let out = Exchange::post_json("/v1/responses/input_tokens", ask)
        .header("authorization", "Bearer client")
        .reply(json_reply(200, fixture("converse.response.json")))
        .run::<Proxy>(BEDROCK);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens")
    );
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    let documented: Value = serde_json::from_slice(&fixture("converse.request.json")).unwrap();
    assert_eq!(
        body, documented,
        "instructions as system, input as messages"
    );
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"object": "response.input_tokens", "input_tokens": 17})
    );
}

#[test]
fn an_invoke_model_is_counted_with_its_anthropic_body_base64_encoded() {
    use base64::Engine as _;
    let ask = FOX.replace("claude-haiku-4-5", "claude-invoke");
    let out = count(ask.as_bytes())
        .reply(json_reply(200, br#"{"inputTokens": 21}"#.to_vec()))
        .run::<Proxy>(BEDROCK);
    let sent = out.upstream_headers.as_ref().expect("forwarded");
    assert_eq!(
        header(sent, ":path"),
        Some("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens")
    );
    let body: Value = serde_json::from_slice(&out.upstream_body).unwrap();
    let encoded = body["input"]["invokeModel"]["body"].as_str().unwrap();
    let invoke: Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(invoke["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(invoke["system"][0]["text"], "Be brief.");
    assert_eq!(
        invoke["messages"][0]["content"][0]["text"],
        "The quick brown fox jumps over the lazy dog"
    );
    let answer: Value = serde_json::from_slice(&out.response_body).unwrap();
    assert_eq!(answer, serde_json::json!({"input_tokens": 21}));
}

#[test]
fn a_failed_bedrock_count_falls_back_to_the_gateways_estimate_marked_as_one() {
    let bodiless = UpstreamReply {
        status: 503,
        headers: vec![],
        chunks: vec![],
    };
    for (what, reply) in [
        (
            "a ValidationException",
            UpstreamReply {
                status: 400,
                headers: vec![
                    ("content-type".into(), b"application/json".to_vec()),
                    (
                        "x-amzn-errortype".into(),
                        b"ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
                            .to_vec(),
                    ),
                ],
                chunks: vec![fixture("error-400.response.json")],
            },
        ),
        ("a 200 without a count", json_reply(200, b"{}".to_vec())),
        ("a 503 without a body", bodiless),
    ] {
        let out = count(FOX.as_bytes()).reply(reply).run::<Proxy>(BEDROCK);
        assert!(out.upstream_headers.is_some(), "{what}: Bedrock was asked");
        let (status, headers, body) = match &out.local_response {
            Some(l) => (l.status, l.headers.clone(), l.body.clone()),
            None => {
                // The held headers as they finally left (the outcome's are a snapshot).
                let held = out.host.state.borrow().response_headers.clone();
                let status = header(&held, ":status").unwrap().parse().unwrap();
                (status, held, out.response_body.clone())
            }
        };
        assert_eq!(status, 200, "{what}: {:?}", out.warnings());
        assert_eq!(
            header(&headers, "x-aigw-token-count"),
            Some("estimated"),
            "{what}"
        );
        let answer: Value = serde_json::from_slice(&body).unwrap();
        let n = answer["input_tokens"].as_u64().unwrap();
        assert!((5..=40).contains(&n), "{what}: {n}");
        assert_eq!(answer.as_object().unwrap().len(), 1, "{what}: {answer}");
        assert!(
            out.warnings().iter().any(|w| w.contains("could not count")),
            "{what}: logged"
        );
    }
}
