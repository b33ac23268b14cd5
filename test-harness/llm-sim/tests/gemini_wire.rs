//! The simulator's Gemini API and Vertex AI bytes compared with the recordings in
//! testdata/providers: field order, `data: …\r\n\r\n` framing and chunk text style of streams,
//! function calls, Google's error shape, key checks and embeddings.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{crlf_payloads, fixture, fixture_edited, fixture_text, Ordered, TestServer};

const GEMINI: &str = "/v1beta/models/gemini-2.0-flash";
const VERTEX: &str =
    "/v1beta1/projects/pydantic-ai/locations/global/publishers/google/models/gemini-2.0-flash";
const KEY: [(&str, &str); 1] = [("x-goog-api-key", "AIza-test")];
const TOKEN: [(&str, &str); 1] = [("authorization", "Bearer ya29.test")];

fn keys(o: &Ordered) -> Vec<String> {
    o.keys().iter().map(|k| k.to_string()).collect()
}

#[test]
fn a_forced_function_call_matches_the_recorded_answer() {
    let sim = TestServer::start();
    let path = format!("{GEMINI}:generateContent");
    let resp = sim.send(
        "POST",
        &path,
        &KEY,
        &fixture("gemini-generatecontent-functioncall.request.json"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text(
        "gemini-generatecontent-functioncall.response.json",
    ));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    assert_eq!(
        keys(&ours),
        ["candidates", "usageMetadata", "modelVersion", "responseId"]
    );
    let v = resp.json();
    let real_v: serde_json::Value = serde_json::from_str(&fixture_text(
        "gemini-generatecontent-functioncall.response.json",
    ))
    .unwrap();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(
        call,
        &real_v["candidates"][0]["content"]["parts"][0]["functionCall"]
    );
    assert!(
        resp.text().starts_with("{\n  \"candidates\": ["),
        "2-space indented"
    );
}

#[test]
fn vertex_generate_content_has_the_recorded_fields() {
    let sim = TestServer::start();
    let path = format!("{VERTEX}:generateContent");
    let resp = sim.send(
        "POST",
        &path,
        &TOKEN,
        &fixture("vertex-generatecontent.request.json"),
    );
    assert_eq!(resp.status, 200);
    let ours = Ordered::parse(&resp.text());
    let real = Ordered::parse(&fixture_text("vertex-generatecontent.response.json"));
    assert_eq!(ours.sorted_shape(), real.sorted_shape());
    let v = resp.json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "sim: What is the capital of France?"
    );
    assert_eq!(v["usageMetadata"]["trafficType"], "ON_DEMAND");
    let time = v["createTime"].as_str().unwrap();
    assert_eq!(
        (time.len(), &time[10..11], &time[26..]),
        (27, "T", "Z"),
        "{time}"
    );
}

#[test]
fn an_sse_stream_has_the_recorded_framing_chunk_layout_and_text_style() {
    let sim = TestServer::start();
    let path = format!("{GEMINI}:streamGenerateContent?alt=sse");
    let resp = sim.send(
        "POST",
        &path,
        &KEY,
        &fixture("gemini-streamgeneratecontent.request.json"),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    for chunk in &resp.chunks {
        let text = std::str::from_utf8(chunk).unwrap();
        assert!(
            text.starts_with("data: {") && text.ends_with("}\r\n\r\n"),
            "{text:?}"
        );
    }
    let ours = crlf_payloads(&resp.text());
    let real = crlf_payloads(&fixture_text("gemini-streamgeneratecontent.sse"));
    let shape = |p: &str| Ordered::parse(p).shape();
    assert_eq!(shape(&ours[0]), shape(&real[0]), "first chunk");
    assert_eq!(
        shape(ours.last().unwrap()),
        shape(real.last().unwrap()),
        "last chunk"
    );
    let prefix = r#"{"candidates": [{"content": {"parts": [{"text": ""#;
    assert!(
        real[0].starts_with(prefix) && ours[0].starts_with(prefix),
        "{}",
        ours[0]
    );
    let text: String = ours
        .iter()
        .map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap())
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, "sim: What is the capital of France?");
}

#[test]
fn a_streamed_function_call_is_one_chunk_like_the_recording() {
    let sim = TestServer::start();
    let body = fixture_edited(
        "gemini-streamgeneratecontent-functioncall.request.json",
        |v| {
            v["toolConfig"] = serde_json::json!({"functionCallingConfig": {"mode": "ANY"}});
        },
    );
    let path = format!("{GEMINI}:streamGenerateContent?alt=sse");
    let ours = crlf_payloads(&sim.send("POST", &path, &KEY, &body).text());
    let real = crlf_payloads(&fixture_text(
        "gemini-streamgeneratecontent-functioncall.sse",
    ));
    assert_eq!(ours.len(), real.len());
    assert_eq!(
        Ordered::parse(&ours[0]).shape(),
        Ordered::parse(&real[0]).shape()
    );
    let v: serde_json::Value = serde_json::from_str(&ours[0]).unwrap();
    let call = &v["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "get_capital");
    assert_eq!(
        call["args"]["country"],
        "What is the temperature of the capital of France"
    );
}

#[test]
fn a_vertex_stream_writes_role_first_and_the_traffic_type() {
    let sim = TestServer::start();
    let path = format!("{VERTEX}:streamGenerateContent?alt=sse");
    let resp = sim.send(
        "POST",
        &path,
        &TOKEN,
        &fixture("vertex-streamgeneratecontent.request.json"),
    );
    let ours = Ordered::parse(&crlf_payloads(&resp.text()).pop().unwrap());
    let real = Ordered::parse(&crlf_payloads(&fixture_text("vertex-streamgeneratecontent.sse"))[0]);
    assert_eq!(keys(&ours), keys(&real));
    let content = |o: &Ordered| match o.get("candidates").unwrap() {
        Ordered::Array(c) => keys(c[0].get("content").unwrap()),
        _ => panic!(),
    };
    assert_eq!(content(&ours), content(&real));
    let mut real_usage = keys(real.get("usageMetadata").unwrap());
    real_usage.retain(|k| k != "thoughtsTokenCount"); // no thinking simulated
    assert_eq!(keys(ours.get("usageMetadata").unwrap()), real_usage);
}

#[test]
fn without_alt_sse_the_stream_is_one_json_array() {
    let sim = TestServer::start();
    let path = format!("{GEMINI}:streamGenerateContent");
    let resp = sim.send(
        "POST",
        &path,
        &KEY,
        &fixture("gemini-streamgeneratecontent.request.json"),
    );
    let v = resp.json();
    let chunks = v.as_array().unwrap();
    assert_eq!(chunks.len(), 7);
    assert_eq!(chunks[6]["candidates"][0]["finishReason"], "STOP");
}

#[test]
fn missing_or_wrong_credentials_and_injected_errors_use_googles_error_shape() {
    let sim = TestServer::with_config(|c| {
        c.credentials.require("gemini", "AIza-good");
    });
    let recorded = Ordered::parse(&fixture_text("gemini-error-404.response.json")).sorted_shape();
    let body = fixture("gemini-error-404.request.json");
    let path = format!("{GEMINI}:generateContent");
    let check = |resp: common::Response, status: u16, name: &str| {
        assert_eq!(resp.status, status);
        assert_eq!(Ordered::parse(&resp.text()).sorted_shape(), recorded);
        assert_eq!(resp.json()["error"]["status"], name);
        assert_eq!(resp.json()["error"]["code"], status);
    };
    check(
        sim.send("POST", &path, &[], &body),
        403,
        "PERMISSION_DENIED",
    );
    check(
        sim.send("POST", &path, &KEY, &body),
        400,
        "INVALID_ARGUMENT",
    );
    let good = format!("{path}?key=AIza-good");
    assert_eq!(sim.send("POST", &good, &[], &body).status, 200);
    check(
        sim.send("POST", &good, &[("x-sim-error-status", "429")], &body),
        429,
        "RESOURCE_EXHAUSTED",
    );
    let vertex = format!("{VERTEX}:generateContent");
    check(
        sim.send("POST", &vertex, &[], &body),
        401,
        "UNAUTHENTICATED",
    );
    check(sim.send("POST", &good, &[], b"{}"), 400, "INVALID_ARGUMENT");
}

#[test]
fn embeddings_are_the_same_unit_vectors_as_openais_for_the_same_text() {
    let sim = TestServer::start();
    let single = sim
        .send(
            "POST",
            "/v1beta/models/text-embedding-004:embedContent",
            &KEY,
            br#"{"content":{"parts":[{"text":"hello world"}]}}"#,
        )
        .json();
    let values = single["embedding"]["values"].as_array().unwrap();
    assert_eq!(values.len(), 16);
    let openai = sim
        .post_json("/v1/embeddings", br#"{"model":"m","input":"hello world"}"#)
        .json();
    assert_eq!(values, openai["data"][0]["embedding"].as_array().unwrap());
    let batch = sim
        .send(
            "POST",
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            &KEY,
            br#"{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]},"outputDimensionality":8},
                {"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]}}]}"#,
        )
        .json();
    let embeddings = batch["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
}

#[test]
fn a_truncated_stream_never_sends_the_finishing_chunk() {
    let sim = TestServer::start();
    let path = format!("{GEMINI}:streamGenerateContent?alt=sse");
    let mut headers = KEY.to_vec();
    headers.push(("x-sim-truncate-after", "100"));
    let resp = sim.send(
        "POST",
        &path,
        &headers,
        &fixture("gemini-streamgeneratecontent.request.json"),
    );
    assert!(!resp.complete);
    let chunks = crlf_payloads(&resp.text());
    assert_eq!(chunks.len(), 6);
    assert!(chunks.iter().all(|c| !c.contains("finishReason")));
}

#[test]
fn the_finishing_chunk_is_paced_like_a_token() {
    let sim = TestServer::start();
    let path = format!("{GEMINI}:streamGenerateContent?alt=sse");
    let mut headers = KEY.to_vec();
    headers.push(("x-sim-tokens-per-second", "20"));
    let resp = sim.send(
        "POST",
        &path,
        &headers,
        &fixture("gemini-streamgeneratecontent.request.json"),
    );
    assert_eq!(resp.chunk_times.len(), 7);
    let spread = resp.chunk_times[6] - resp.chunk_times[0];
    assert!(
        spread >= std::time::Duration::from_millis(280),
        "{spread:?}"
    );
}
