//! Transport behaviour over real TCP (keep-alive, chunked streams, resets, truncation), the timing
//! and error knobs, the request journal, and the `llm-sim` binary's CLI lifecycle.

// Helpers outside #[test] fns fail loudly too (clippy.toml only relaxes these inside tests).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{sse_payloads, ClientError, TestServer};
use llm_sim::Defaults;

const CHAT: &str = "/v1/chat/completions";
const STREAM_BODY: &[u8] =
    br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"one two three"}]}"#;
const PLAIN_BODY: &[u8] =
    br#"{"model":"m","messages":[{"role":"user","content":"one two three"}]}"#;

#[test]
fn one_keep_alive_connection_serves_a_stream_then_plain_requests() {
    let sim = TestServer::start();
    let mut conn = sim.connect();
    let first = conn.send("POST", CHAT, &[], STREAM_BODY).unwrap();
    assert!(first.complete, "stream must end with the terminating chunk");
    assert!(first.text().ends_with("data: [DONE]\n\n"));
    let second = conn.send("POST", CHAT, &[], PLAIN_BODY).unwrap();
    assert_eq!(
        second.json()["choices"][0]["message"]["content"],
        "sim: one two three"
    );
    let third = conn.send("GET", "/_sim/health", &[], b"").unwrap();
    assert_eq!((third.status, third.text().as_str()), (200, "ok"));
    assert_eq!(
        first.header("connection"),
        None,
        "server must not announce close"
    );
}

#[test]
fn latency_header_delays_the_response_head() {
    let sim = TestServer::start();
    let resp = sim.send("POST", CHAT, &[("x-sim-latency-ms", "200")], PLAIN_BODY);
    assert_eq!(resp.status, 200);
    assert!(
        resp.head_time >= Duration::from_millis(200),
        "{:?}",
        resp.head_time
    );
}

#[test]
fn cli_default_latency_applies_when_no_header_overrides_it() {
    let sim = TestServer::with_defaults(Defaults {
        latency_ms: 400,
        ..Defaults::default()
    });
    let slow = sim.post_json(CHAT, PLAIN_BODY);
    assert!(
        slow.head_time >= Duration::from_millis(400),
        "{:?}",
        slow.head_time
    );
    let fast = sim.send("POST", CHAT, &[("x-sim-latency-ms", "0")], PLAIN_BODY);
    assert!(
        fast.head_time < Duration::from_millis(400),
        "{:?}",
        fast.head_time
    );
}

#[test]
fn stream_waits_ttft_then_paces_tokens_at_the_requested_speed() {
    let sim = TestServer::start();
    let headers = [("x-sim-ttft-ms", "400"), ("x-sim-tokens-per-second", "20")];
    let resp = sim.send("POST", CHAT, &headers, STREAM_BODY);
    assert!(
        resp.head_time < Duration::from_millis(400),
        "head comes before the first token"
    );
    // chunks: role, 4 tokens ("sim:", " one", " two", " three"), finish, [DONE]
    assert_eq!(resp.chunks.len(), 7);
    let first_token = resp.chunk_times[1];
    let last_token = resp.chunk_times[4];
    assert!(
        first_token >= Duration::from_millis(400),
        "ttft {first_token:?}"
    );
    // 3 gaps of 50 ms between 4 tokens
    assert!(
        last_token - first_token >= Duration::from_millis(150),
        "{:?}",
        last_token - first_token
    );
}

#[test]
fn non_streamed_answers_take_ttft_plus_generation_time() {
    let sim = TestServer::start();
    let headers = [("x-sim-ttft-ms", "50"), ("x-sim-tokens-per-second", "20")];
    let resp = sim.send("POST", CHAT, &headers, PLAIN_BODY);
    assert!(
        resp.head_time >= Duration::from_millis(250),
        "{:?}",
        resp.head_time
    );
}

#[test]
fn injected_errors_use_the_openai_shape_or_the_given_body() {
    let sim = TestServer::start();
    let resp = sim.send("POST", CHAT, &[("x-sim-error-status", "429")], PLAIN_BODY);
    assert_eq!(resp.status, 429);
    let v = resp.json();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "requests");
    let body = r#"{"error":{"message":"custom"}}"#;
    let custom = sim.send(
        "POST",
        CHAT,
        &[("x-sim-error-status", "503"), ("x-sim-error-body", body)],
        PLAIN_BODY,
    );
    assert_eq!((custom.status, custom.text()), (503, body.to_string()));
    let streamed = sim.send("POST", CHAT, &[("x-sim-error-status", "500")], STREAM_BODY);
    assert_eq!(streamed.json()["error"]["type"], "server_error");
}

#[test]
fn invalid_knob_headers_are_400s_that_name_the_header() {
    let sim = TestServer::start();
    let resp = sim.send("POST", CHAT, &[("x-sim-ttft-ms", "soon")], PLAIN_BODY);
    assert_eq!(resp.status, 400);
    assert!(resp.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-sim-ttft-ms"));
}

#[test]
fn reset_header_closes_the_connection_without_any_response() {
    let sim = TestServer::start();
    let mut conn = sim.connect();
    match conn.send("POST", CHAT, &[("x-sim-reset", "1")], PLAIN_BODY) {
        Err(ClientError::NoResponse(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        ),
        other => panic!("expected no response, got {other:?}"),
    }
    // The server itself keeps serving.
    assert_eq!(sim.post_json(CHAT, PLAIN_BODY).status, 200);
}

#[test]
fn truncate_header_stops_the_stream_after_n_events_without_done() {
    let sim = TestServer::start();
    let resp = sim.send("POST", CHAT, &[("x-sim-truncate-after", "3")], STREAM_BODY);
    assert_eq!(resp.status, 200);
    assert!(!resp.complete, "the chunked body must not be terminated");
    let payloads = sse_payloads(&resp.text());
    assert_eq!(payloads.len(), 3);
    assert!(!resp.text().contains("[DONE]"));
}

#[test]
fn truncate_beyond_the_last_event_still_withholds_done() {
    let sim = TestServer::start();
    let resp = sim.send(
        "POST",
        CHAT,
        &[("x-sim-truncate-after", "100")],
        STREAM_BODY,
    );
    assert!(!resp.complete);
    let payloads = sse_payloads(&resp.text());
    assert_eq!(payloads.len(), 6, "role, 4 tokens, finish");
    assert!(payloads.iter().all(|p| p != "[DONE]"));
}

#[test]
fn end_after_ends_the_body_cleanly_after_n_events_without_done() {
    let sim = TestServer::start();
    let resp = sim.send("POST", CHAT, &[("x-sim-end-after", "3")], STREAM_BODY);
    assert_eq!(resp.status, 200);
    assert!(resp.complete, "the chunked body is terminated normally");
    let payloads = sse_payloads(&resp.text());
    assert_eq!(payloads.len(), 3);
    assert!(!resp.text().contains("[DONE]"));
}

/// Everything the server sends on a fresh connection for one request, until it closes it, and
/// how it closed (`None`: a clean end of file, `Some(kind)`: a read error such as a reset).
fn raw_exchange(
    sim: &common::TestServer,
    headers: &str,
    body: &[u8],
) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(sim.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {CHAT} HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).unwrap();
    tcp.write_all(body).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return (got, None),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Some(e.kind())),
        }
    }
}

#[test]
fn reset_after_bytes_sends_the_head_and_part_of_a_whole_body_then_resets() {
    let sim = TestServer::start();
    let whole = sim.post_json(CHAT, PLAIN_BODY);
    let full_len = whole.body.len();
    let (got, end) = raw_exchange(&sim, "x-sim-reset-after-bytes: 10\r\n", PLAIN_BODY);
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The declared length is the whole answer's; only its first 10 bytes come.
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {full_len}")),
        "{head}"
    );
    assert_eq!(body.as_bytes(), &whole.body[..10]);
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset), "{text}");
    // The server keeps serving.
    assert_eq!(sim.post_json(CHAT, PLAIN_BODY).status, 200);
}

#[test]
fn reset_after_bytes_cuts_a_stream_too() {
    let sim = TestServer::start();
    let (got, end) = raw_exchange(&sim, "x-sim-reset-after-bytes: 40\r\n", STREAM_BODY);
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(
        !body.contains("[DONE]") && !body.ends_with("0\r\n\r\n"),
        "{body}"
    );
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset), "{text}");
}

#[test]
fn journal_records_requests_and_clears_without_recording_itself() {
    let sim = TestServer::start();
    sim.send(
        "POST",
        "/v1/chat/completions?api-version=1",
        &[("Content-Type", "application/json"), ("X-Custom", "Yes")],
        PLAIN_BODY,
    );
    sim.send("POST", "/v1/embeddings", &[], b"not json");
    sim.send("GET", "/_sim/health", &[], b"");
    let list = sim.send("GET", "/_sim/requests", &[], b"").json();
    let entries = list.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{list}");
    let first = &entries[0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/v1/chat/completions");
    assert_eq!(first["query"], "api-version=1");
    assert_eq!(first["headers"]["x-custom"], "Yes");
    assert_eq!(first["headers"]["content-type"], "application/json");
    assert_eq!(first["body"]["messages"][0]["content"], "one two three");
    assert_eq!(entries[1]["body"], "not json");
    let cleared = sim.send("DELETE", "/_sim/requests", &[], b"");
    assert_eq!(cleared.status, 200);
    assert_eq!(
        sim.send("GET", "/_sim/requests", &[], b"").json(),
        serde_json::json!([])
    );
}

#[test]
fn binary_writes_its_port_serves_and_exits_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("llm-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-sim"))
        .args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.trim().parse().unwrap();
        }
        assert!(Instant::now() < deadline, "port file never appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let resp = common::Client::connect(addr)
        .send("GET", "/_sim/health", &[], b"")
        .unwrap();
    assert_eq!(resp.status, 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("GET /_sim/health -> 200"),
        "one log line per request: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
