//! The simulator's Bedrock Converse bytes compared with the recorded captures in
//! testdata/providers: compact JSON with keys in byte order, event-stream frames (headers, event
//! sequence, payload layout, both CRCs), tool use, the error shape with `x-amzn-errortype`, and
//! SigV4 verification.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use aigw_shared::aws::{sign, AmzDate, Credentials, PathMode, SignableRequest, SigningParams};
use common::{
    assert_keys_sorted, aws_frames, fixture, fixture_b64, fixture_edited, fixture_text, AwsFrame,
    Ordered, TestServer,
};
use llm_sim::auth::AwsKey;

const CONVERSE: &str = "/model/us.amazon.nova-micro-v1%3A0/converse";
const STREAM: &str = "/model/us.amazon.nova-micro-v1%3A0/converse-stream";

/// Event types with runs collapsed.
fn sequence(frames: &[AwsFrame]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in frames {
        if out.last().map(String::as_str) != Some(f.event_type()) {
            out.push(f.event_type().to_string());
        }
    }
    out
}

fn payload_shape(frames: &[AwsFrame], pick: impl Fn(&AwsFrame) -> bool) -> String {
    Ordered::parse(&frames.iter().find(|f| pick(f)).unwrap().payload).shape()
}

fn with_tool_choice_any(name: &str) -> Vec<u8> {
    fixture_edited(name, |v| {
        v["toolConfig"]["toolChoice"] = serde_json::json!({"any": {}});
    })
}

#[test]
fn converse_answers_compact_json_with_the_recorded_fields_in_byte_order() {
    let sim = TestServer::start();
    let resp = sim.post_json(CONVERSE, &fixture("bedrock-converse.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("x-amzn-requestid").is_some());
    assert!(!resp.text().contains('\n'), "compact JSON");
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("bedrock-converse.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    assert_keys_sorted(&ours);
    let v = resp.json();
    assert_eq!(v["output"]["message"]["content"][0]["text"], "sim: Hello!");
    assert_eq!(v["stopReason"], "end_turn");
    assert_eq!(v["usage"]["totalTokens"], 7);
}

#[test]
fn a_forced_tool_choice_gets_a_tool_use_block_shaped_like_the_recording() {
    let sim = TestServer::start();
    let body = with_tool_choice_any("bedrock-converse-tooluse.request.json");
    let v = sim.post_json(CONVERSE, &body).json();
    assert_eq!(v["stopReason"], "tool_use");
    let real: serde_json::Value =
        serde_json::from_str(&fixture_text("bedrock-converse-tooluse.response.json")).unwrap();
    let ours = &v["output"]["message"]["content"][0];
    let shape = |x: &serde_json::Value| Ordered::parse(&x.to_string()).sorted_shape();
    assert_eq!(shape(ours), shape(&real["output"]["message"]["content"][1]));
    assert_eq!(ours["toolUse"]["name"], "country_source");
    assert_eq!(ours["toolUse"]["input"], serde_json::json!({}));
}

#[test]
fn converse_stream_frames_match_the_recorded_headers_sequence_and_payloads() {
    let sim = TestServer::start();
    let resp = sim.post_json(STREAM, &fixture("bedrock-conversestream-nova.request.json"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    assert!(resp.complete);
    let ours = aws_frames(&resp.body);
    assert_eq!(resp.chunks.len(), ours.len(), "one frame per HTTP chunk");
    for name in [
        "bedrock-conversestream.b64",
        "bedrock-conversestream-nova.b64",
    ] {
        let real = aws_frames(&fixture_b64(name));
        assert_eq!(sequence(&ours), sequence(&real), "{name}");
        let names = |f: &AwsFrame| f.headers.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours[0]), names(&real[0]));
        assert_eq!(ours[0].headers[1].1, "application/json");
        assert_eq!(ours[0].headers[2].1, "event");
        for event in sequence(&real) {
            if event == "metadata" && name == "bedrock-conversestream.b64" {
                continue; // the older capture predates usage.serverToolUsage
            }
            let pick = |f: &AwsFrame| f.event_type() == event;
            assert_eq!(
                payload_shape(&ours, pick),
                payload_shape(&real, pick),
                "{name} {event}"
            );
        }
    }
    let text: String = ours
        .iter()
        .filter(|f| f.event_type() == "contentBlockDelta")
        .map(|f| serde_json::from_str::<serde_json::Value>(&f.payload).unwrap())
        .map(|p| p["delta"]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "sim: What is the capital of France?");
    let meta: serde_json::Value = serde_json::from_str(&ours.last().unwrap().payload).unwrap();
    assert_eq!(meta["usage"]["outputTokens"], 7);
}

#[test]
fn a_streamed_tool_call_has_the_recorded_tool_use_frames() {
    let sim = TestServer::start();
    let body = with_tool_choice_any("bedrock-conversestream-tooluse.request.json");
    let ours = aws_frames(&sim.post_json(STREAM, &body).body);
    let real = aws_frames(&fixture_b64("bedrock-conversestream-tooluse.b64"));
    assert_eq!(
        sequence(&ours),
        [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    let tool_delta =
        |f: &AwsFrame| f.event_type() == "contentBlockDelta" && f.payload.contains("toolUse");
    assert_eq!(
        payload_shape(&ours, tool_delta),
        payload_shape(&real, tool_delta)
    );
    for event in ["contentBlockStart", "messageStop"] {
        let pick = |f: &AwsFrame| f.event_type() == event;
        assert_eq!(
            payload_shape(&ours, pick),
            payload_shape(&real, pick),
            "{event}"
        );
    }
    let inputs: Vec<String> = ours
        .iter()
        .filter(|f| tool_delta(f))
        .map(|f| serde_json::from_str::<serde_json::Value>(&f.payload).unwrap())
        .map(|p| p["delta"]["toolUse"]["input"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inputs[0], "", "the first input delta is empty, as recorded");
    assert_eq!(inputs.concat(), r#"{"x":7}"#);
    let stop = ours
        .iter()
        .find(|f| f.event_type() == "messageStop")
        .unwrap();
    assert!(stop.payload.contains(r#""stopReason":"tool_use""#));
}

#[test]
fn errors_are_a_message_body_with_the_type_in_x_amzn_errortype() {
    let sim = TestServer::start();
    let recorded =
        Ordered::parse(&fixture_text("bedrock-converse-error-400.response.json")).shape();
    let invalid = sim.post_json(CONVERSE, b"{}");
    assert_eq!(invalid.status, 400);
    assert_eq!(Ordered::parse(&invalid.text()).shape(), recorded);
    let errortype = invalid.header("x-amzn-errortype").unwrap();
    assert_eq!(errortype.split(':').next(), Some("ValidationException"));
    let throttled = sim.send(
        "POST",
        CONVERSE,
        &[("x-sim-error-status", "429")],
        &fixture("bedrock-converse.request.json"),
    );
    assert_eq!(throttled.status, 429);
    assert_eq!(Ordered::parse(&throttled.text()).shape(), recorded);
    assert!(throttled
        .header("x-amzn-errortype")
        .unwrap()
        .starts_with("ThrottlingException:"));
    let unknown = sim.post_json("/model/x/invoke-nothing", b"{}");
    assert_eq!(unknown.status, 404);
    assert_eq!(Ordered::parse(&unknown.text()).shape(), recorded);
}

#[test]
fn a_truncated_stream_ends_on_a_frame_boundary_without_metadata() {
    let sim = TestServer::start();
    let resp = sim.send(
        "POST",
        STREAM,
        &[("x-sim-truncate-after", "100")],
        &fixture("bedrock-converse.request.json"),
    );
    assert!(!resp.complete);
    let frames = aws_frames(&resp.body);
    assert_eq!(frames.last().unwrap().event_type(), "messageStop");
}

fn signed_headers(body: &[u8], path: &str, secret: &str) -> Vec<(&'static str, String)> {
    let creds = Credentials::new("AKIDSIMTEST", secret);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = SignableRequest::new("POST", path, body)
        .header("host", "llm-sim.test")
        .header("content-type", "application/json");
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "bedrock",
        time: AmzDate::from_unix_seconds(i64::try_from(now).unwrap()),
        content_sha256_header: false,
        path_mode: PathMode::Normalized,
    };
    let mut headers = vec![("content-type", "application/json".to_string())];
    headers.extend(sign(&request, &params).unwrap().headers);
    headers
}

#[test]
fn with_aws_keys_configured_only_correctly_signed_requests_pass() {
    let sim = TestServer::with_config(|c| {
        c.credentials.aws = Some(AwsKey {
            access_key_id: "AKIDSIMTEST".into(),
            secret_access_key: "sim-secret".into(),
        })
    });
    let body = fixture("bedrock-converse.request.json");
    let send = |headers: &[(&'static str, String)], body: &[u8]| {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        sim.send("POST", CONVERSE, &h, body)
    };
    let good = signed_headers(&body, CONVERSE, "sim-secret");
    assert_eq!(send(&good, &body).status, 200);
    let errortype = |r: &common::Response| {
        r.header("x-amzn-errortype")
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let tampered = send(&good, b"{\"messages\":[]}");
    assert_eq!(tampered.status, 403);
    assert_eq!(errortype(&tampered), "InvalidSignatureException");
    let wrong_secret = send(&signed_headers(&body, CONVERSE, "other"), &body);
    assert_eq!(errortype(&wrong_secret), "InvalidSignatureException");
    let unsigned = send(&[("content-type", "application/json".to_string())], &body);
    assert_eq!(errortype(&unsigned), "MissingAuthenticationTokenException");
    let mut other_key = good.clone();
    for (name, value) in &mut other_key {
        if *name == "authorization" {
            *value = value.replace("AKIDSIMTEST", "AKIDOTHER");
        }
    }
    assert_eq!(
        errortype(&send(&other_key, &body)),
        "UnrecognizedClientException"
    );
}

// CountTokens: no recorded capture exists; the request and answer shapes are the AWS Bedrock
// Runtime API reference's (CountTokens, CountTokensInput, ConverseTokensRequest,
// InvokeModelTokensRequest), as in plugins/ai-proxy/testdata/bedrock/count-tokens/.
const COUNT: &str = "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/count-tokens";

#[test]
fn count_tokens_counts_a_converse_input_as_converse_reports_its_input_tokens() {
    let sim = TestServer::start();
    let converse = serde_json::json!({
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "The quick brown fox jumps over the lazy dog"}]}]});
    let resp = sim.post_json(
        COUNT,
        serde_json::json!({"input": {"converse": converse}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), r#"{"inputTokens":11}"#);
    assert!(resp.header("x-amzn-requestid").is_some());
    // The same input through Converse reports the same input tokens.
    let mut asked = converse.clone();
    asked["inferenceConfig"] = serde_json::json!({"maxTokens": 5});
    let resp = sim.post_json(
        "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse",
        asked.to_string().as_bytes(),
    );
    assert_eq!(resp.json()["usage"]["inputTokens"], 11);
}

#[test]
fn count_tokens_reads_a_base64_invoke_model_body_and_refuses_malformed_input() {
    use base64::Engine as _;
    let sim = TestServer::start();
    let invoke = serde_json::json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "one two three"}]}]});
    let encoded = base64::engine::general_purpose::STANDARD.encode(invoke.to_string());
    let resp = sim.post_json(
        COUNT,
        serde_json::json!({"input": {"invokeModel": {"body": encoded}}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["inputTokens"], 3);
    for bad in [
        r#"{"input": {}}"#,
        r#"{"nothing": 1}"#,
        r#"{"input": {"invokeModel": {"body": "not base64!"}}}"#,
        "not json",
    ] {
        let resp = sim.post_json(COUNT, bad.as_bytes());
        assert_eq!(resp.status, 400, "{bad}");
        assert!(resp
            .header("x-amzn-errortype")
            .unwrap()
            .starts_with("ValidationException:"));
        assert!(resp.json()["message"].is_string());
    }
}
