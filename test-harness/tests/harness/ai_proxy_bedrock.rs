//! The built `ai_proxy.wasm` with an Amazon Bedrock provider (Envoy profile): the simulated
//! upstream accepts a request only when its SigV4 signature verifies with the shared verifier
//! (session token included, time from the harness clock), and recorded Bedrock event streams
//! (ConverseStream and InvokeModelWithResponseStream) reach OpenAI clients as OpenAI SSE and
//! Anthropic clients as Anthropic SSE, identically at several upstream chunk sizes; token counts
//! (Anthropic `count_tokens`, OpenAI `input_tokens`) go to a signed `CountTokens` call, and a
//! refused one is answered by the marked estimate.

use std::path::PathBuf;

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, PluginSpec, Request, UpstreamRequest, UpstreamResponse,
};
use aigw_shared::aws::{verify, AmzDate, Credentials, SignableRequest, VerifyPolicy};
use serde_json::Value;

const CONFIG: &str = r#"{
  "providers": [
    {"name": "aws", "type": "bedrock", "cluster": "bedrock", "options": {
      "region": "eu-west-1", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "harness-secret",
      "sessionToken": "harness-session", "invokeModels": ["claude-invoke*"]}}
  ],
  "models": [
    {"match": "nova", "provider": "aws", "target": "us.amazon.nova-micro-v1:0"},
    {"match": "claude-invoke", "provider": "aws", "target": "claude-invoke-test"},
    {"match": "*", "provider": "aws"}
  ]
}"#;

fn sample(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/providers")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Standard padded base64 (the `.b64` samples hold binary event streams).
fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim().bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn event_stream(name: &str) -> Vec<u8> {
    decode_base64(std::str::from_utf8(&sample(name)).unwrap())
}

/// Bedrock's check: the signature must verify for the path, host and body as received.
fn check_signature(env: &Env, up: &UpstreamRequest) -> Result<(), String> {
    let path = up.header(":path").ok_or(":path missing")?;
    let host = up.header(":authority").ok_or(":authority missing")?;
    let headers: Vec<(String, String)> = up
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with(':'))
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let mut req = SignableRequest::new("POST", &path, &up.body).header("host", &host);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    let creds =
        Credentials::new("AKIDEXAMPLE", "harness-secret").with_session_token("harness-session");
    let now = i64::try_from(env.now_ns() / 1_000_000_000).unwrap();
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(now)),
        region: Some("eu-west-1"),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    verify(
        &req,
        |id| (id == "AKIDEXAMPLE").then(|| creds.clone()),
        &policy,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Run one request; the upstream answers `reply` only to a correctly signed request.
fn run(req: &Request, reply: UpstreamResponse) -> (Exchange, UpstreamRequest) {
    let env = Env::new();
    let wasm = wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}"));
    let mut chain = Chain::new(&env)
        .with(
            PluginSpec::new(wasm)
                .config(CONFIG)
                .headers_stop_iteration(true),
        )
        .unwrap();
    let mut verdict = Err("the upstream was not called".to_owned());
    let out = chain
        .run(req, &mut |up: &UpstreamRequest| {
            verdict = check_signature(&env, up);
            match &verdict {
                Ok(()) => reply.clone(),
                Err(e) => UpstreamResponse::json(403, format!(r#"{{"message":"{e}"}}"#)),
            }
        })
        .unwrap();
    assert_eq!(verdict, Ok(()), "signature check");
    let up = out
        .upstream
        .clone()
        .expect("the request reached the upstream");
    (out, up)
}

fn stream_reply(body: &[u8], chunk: usize) -> UpstreamResponse {
    UpstreamResponse::new(200)
        .header("content-type", "application/vnd.amazon.eventstream")
        .chunk(body)
        .rechunk(chunk)
}

#[test]
fn a_signed_converse_call_answers_an_openai_client_with_a_chat_completion() {
    let body = r#"{"model":"nova","messages":[{"role":"system","content":"You are a chatbot."},{"role":"user","content":"Hello!"}]}"#;
    let req = Request::post_json("/v1/chat/completions", body)
        .header("authorization", "Bearer client-secret")
        .chunk_size(11);
    let reply = UpstreamResponse::json(200, sample("bedrock-converse.response.json"));
    let (out, up) = run(&req, reply);
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/model/us.amazon.nova-micro-v1%3A0/converse")
    );
    assert_eq!(
        up.header(":authority").as_deref(),
        Some("bedrock-runtime.eu-west-1.amazonaws.com")
    );
    assert_eq!(up.header("x-aigw-upstream").as_deref(), Some("bedrock"));
    assert_eq!(
        up.header("x-amz-security-token").as_deref(),
        Some("harness-session")
    );
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    // The recorded body also has an empty `inferenceConfig`, which the plugin leaves out.
    let mut recorded: Value =
        serde_json::from_slice(&sample("bedrock-converse.request.json")).unwrap();
    recorded.as_object_mut().unwrap().remove("inferenceConfig");
    assert_eq!(sent, recorded);
    assert_eq!(out.status, 200);
    let json: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["usage"]["total_tokens"], 37);
}

#[test]
fn a_converse_event_stream_reaches_an_openai_client_as_the_same_sse_at_any_chunking() {
    let body = r#"{"model":"nova","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello!"}]}"#;
    let req = Request::post_json("/v1/chat/completions", body);
    let stream = event_stream("bedrock-conversestream-nova.b64");
    let mut first: Option<Vec<u8>> = None;
    for chunk in [1, 7, 64, 4096] {
        let (out, up) = run(&req, stream_reply(&stream, chunk));
        assert!(up.header(":path").unwrap().ends_with("/converse-stream"));
        assert_eq!(out.status, 200);
        assert_eq!(
            out.header("content-type").as_deref(),
            Some("text/event-stream")
        );
        let text = String::from_utf8(out.body.clone()).unwrap();
        assert!(text.starts_with("data: {"), "{text}");
        assert!(text.contains(r#""finish_reason":"stop""#), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        match &first {
            None => first = Some(out.body),
            Some(f) => assert_eq!(&out.body, f, "upstream chunks of {chunk}"),
        }
    }
}

#[test]
fn a_converse_event_stream_reaches_an_anthropic_client_as_anthropic_sse_at_any_chunking() {
    let body = r#"{"model":"nova","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello!"}]}"#;
    let req = Request::post_json("/v1/messages", body).header("x-api-key", "client-secret");
    let stream = event_stream("bedrock-conversestream-tooluse.b64");
    let mut first: Option<Vec<u8>> = None;
    for chunk in [1, 13, 256, 4096] {
        let (out, up) = run(&req, stream_reply(&stream, chunk));
        assert_eq!(up.header("x-api-key"), None, "client key must not leak");
        assert_eq!(out.status, 200);
        let text = String::from_utf8(out.body.clone()).unwrap();
        assert!(text.starts_with("event: message_start\n"), "{text}");
        assert!(text.contains(r#""type":"tool_use""#), "{text}");
        assert!(text.contains(r#""stop_reason":"tool_use""#), "{text}");
        assert!(
            text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{text}"
        );
        match &first {
            None => first = Some(out.body),
            Some(f) => assert_eq!(&out.body, f, "upstream chunks of {chunk}"),
        }
    }
}

#[test]
fn an_invoke_model_stream_reaches_openai_and_anthropic_clients_at_any_chunking() {
    let stream = event_stream("bedrock-invoke-anthropic-stream.b64");
    let openai = Request::post_json(
        "/v1/chat/completions",
        r#"{"model":"claude-invoke","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
    );
    let anthropic = Request::post_json(
        "/v1/messages",
        r#"{"model":"claude-invoke","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hi"}]}"#,
    );
    let mut first: Vec<Option<Vec<u8>>> = vec![None, None];
    for chunk in [1, 9, 300, 4096] {
        for (i, req) in [&openai, &anthropic].into_iter().enumerate() {
            let (out, up) = run(req, stream_reply(&stream, chunk));
            assert_eq!(
                up.header(":path").as_deref(),
                Some("/model/claude-invoke-test/invoke-with-response-stream")
            );
            let sent: Value = serde_json::from_slice(&up.body).unwrap();
            assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
            assert!(sent.get("model").is_none() && sent.get("stream").is_none());
            assert_eq!(out.status, 200);
            let text = String::from_utf8(out.body.clone()).unwrap();
            if i == 0 {
                assert!(text.contains(r#""content":"Hi""#), "{text}");
                assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            } else {
                assert!(text.starts_with("event: message_start\n"), "{text}");
                assert!(text.contains(r#""text":" are you doing today?""#), "{text}");
            }
            match &first[i] {
                None => first[i] = Some(out.body),
                Some(f) => assert_eq!(&out.body, f, "upstream chunks of {chunk}"),
            }
        }
    }
}

// Bedrock CountTokens: built from the AWS Bedrock Runtime API reference (no recorded sample; see
// plugins/ai-proxy/testdata/bedrock/count-tokens/README.md).

fn documented(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/ai-proxy/testdata/bedrock/count-tokens")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const FOX: &str = r#"{"model":"nova","system":"Be brief.","messages":[{"role":"user","content":"The quick brown fox jumps over the lazy dog"}]}"#;

#[test]
fn anthropic_count_tokens_and_openai_input_tokens_go_to_a_signed_count_tokens_call() {
    let reply = UpstreamResponse::json(200, documented("converse.response.json"));
    let req = Request::post_json("/v1/messages/count_tokens", FOX)
        .header("x-api-key", "client")
        .header("anthropic-version", "2023-06-01");
    let (out, up) = run(&req, reply.clone());
    assert_eq!(
        up.header(":path").as_deref(),
        Some("/model/us.amazon.nova-micro-v1%3A0/count-tokens")
    );
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    let shape: Value = serde_json::from_slice(&documented("converse.request.json")).unwrap();
    assert_eq!(sent, shape);
    assert_eq!(out.status, 200);
    assert_eq!(out.body_text(), r#"{"input_tokens":17}"#);
    assert_eq!(out.header("x-aigw-token-count"), None);

    let req = Request::post_json(
        "/v1/responses/input_tokens",
        r#"{"model":"nova","instructions":"Be brief.","input":"The quick brown fox jumps over the lazy dog"}"#,
    );
    let (out, up) = run(&req, reply);
    let sent: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(sent, shape);
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"object": "response.input_tokens", "input_tokens": 17})
    );
}

#[test]
fn a_refused_count_tokens_call_is_answered_by_the_marked_estimate() {
    let req = Request::post_json("/v1/messages/count_tokens", FOX).header("x-api-key", "client");
    let refusal = UpstreamResponse::new(400)
        .header("content-type", "application/json")
        .header(
            "x-amzn-errortype",
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        )
        .chunk(documented("error-400.response.json"));
    let (out, _) = run(&req, refusal);
    assert_eq!(out.status, 200, "{}", out.body_text());
    assert_eq!(
        out.header("x-aigw-token-count").as_deref(),
        Some("estimated")
    );
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() >= 9, "{v}");
}
