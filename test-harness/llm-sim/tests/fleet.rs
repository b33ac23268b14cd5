//! Fleet mode over real TCP: pods on their own ports answer chat requests (JSON and SSE) with
//! ORCA load headers in both forms, a repeated prompt prefix hits the pod's KV cache and starts
//! faster, a forced load is reported until cleared, the stats and the reset work, and the
//! `llm-sim --fleet` binary writes its ports and stops on SIGTERM.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::Client;
use llm_sim::fleet::{Fleet, FleetConfig, PodSpec};

/// A fleet on a background runtime; stopped on drop.
struct TestFleet {
    addrs: Vec<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestFleet {
    fn start(n: usize, spec: PodSpec) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = FleetConfig::uniform("127.0.0.1:0".parse().unwrap(), n, &spec, &[]);
                let fleet = Fleet::start(config).await.unwrap();
                addr_tx.send(fleet.addrs().to_vec()).unwrap();
                let _ = stop_rx.await;
                fleet.shutdown().await;
            });
        });
        let addrs = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            addrs,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn send(
        &self,
        pod: usize,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> common::Response {
        Client::connect(self.addrs[pod])
            .send(method, path, headers, body)
            .unwrap()
    }

    fn chat(&self, pod: usize, body: &str) -> common::Response {
        self.send(
            pod,
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spec() -> PodSpec {
    PodSpec {
        prefill_us_per_token: 2_000,
        decode_us_per_token: 100,
        base_us: 0,
        block_tokens: 4,
        ..PodSpec::default()
    }
}

fn conversation(user: &str) -> String {
    let system: Vec<String> = (0..100).map(|i| format!("rule{i}")).collect();
    serde_json::json!({"model": "sim-chat", "max_tokens": 4, "messages": [
        {"role": "system", "content": system.join(" ")},
        {"role": "user", "content": user}]})
    .to_string()
}

#[test]
fn each_pod_answers_on_its_own_port_with_its_name_and_a_load_report() {
    let fleet = TestFleet::start(3, spec());
    assert_eq!(fleet.addrs.len(), 3);
    for pod in 0..3 {
        let r = fleet.chat(pod, &conversation("hello there"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-sim-pod"), Some(format!("pod-{pod}").as_str()));
        let orca = r.header("endpoint-load-metrics").unwrap();
        assert!(
            orca.starts_with("TEXT named_metrics.kv_cache_usage_perc="),
            "{orca}"
        );
        assert!(
            orca.contains("named_metrics.num_requests_running=1"),
            "{orca}"
        );
        let v = r.json();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["usage"]["completion_tokens"], 4);
    }
}

#[test]
fn a_repeated_prefix_hits_the_cache_and_reaches_the_first_token_sooner() {
    let fleet = TestFleet::start(1, spec());
    let cold = fleet.chat(0, &conversation("first question"));
    let warm = fleet.chat(0, &conversation("second question"));
    assert_eq!(cold.header("x-sim-cached-tokens"), Some("0"));
    let cached: u64 = warm.header("x-sim-cached-tokens").unwrap().parse().unwrap();
    assert!(cached >= 100, "the system prompt's blocks: {cached}");
    assert_eq!(
        warm.json()["usage"]["prompt_tokens_details"]["cached_tokens"],
        cached
    );
    // ~104 uncached tokens at 2 ms each against a handful.
    assert!(
        cold.head_time > warm.head_time + Duration::from_millis(100),
        "{:?} vs {:?}",
        cold.head_time,
        warm.head_time
    );
    let stats = fleet.send(0, "GET", "/_sim/fleet", &[], b"").json();
    assert_eq!(stats["stats"]["requests"], 2);
    assert_eq!(stats["stats"]["cached_tokens"], cached);
    fleet.send(0, "POST", "/_sim/fleet/reset", &[], b"");
    let after = fleet.chat(0, &conversation("third question"));
    assert_eq!(
        after.header("x-sim-cached-tokens"),
        Some("0"),
        "the reset emptied the cache"
    );
}

#[test]
fn streams_carry_the_load_header_and_usage_when_asked() {
    let fleet = TestFleet::start(1, spec());
    let body = serde_json::json!({"model": "m", "stream": true, "max_tokens": 3,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "one two"}]});
    let r = fleet.send(
        0,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("endpoint-load-metrics-format", "JSON"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r
        .header("endpoint-load-metrics")
        .unwrap()
        .starts_with("JSON {\"named_metrics\""));
    let text = r.text();
    assert!(text.contains("\"usage\":"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(text.matches("\"content\"").count(), 3);
}

#[test]
fn a_forced_load_is_reported_until_cleared() {
    let fleet = TestFleet::start(1, spec());
    fleet.send(0, "POST", "/_sim/fleet/load?waiting=9&kv=0.95", &[], b"");
    let r = fleet.chat(0, &conversation("x"));
    let orca = r.header("endpoint-load-metrics").unwrap();
    assert!(
        orca.contains("num_requests_waiting=9") && orca.contains("kv_cache_usage_perc=0.95"),
        "{orca}"
    );
    fleet.send(0, "DELETE", "/_sim/fleet/load", &[], b"");
    let r = fleet.chat(0, &conversation("x"));
    assert!(r
        .header("endpoint-load-metrics")
        .unwrap()
        .contains("num_requests_waiting=0"));
}

#[test]
fn bad_requests_get_openai_errors_with_the_load_header() {
    let fleet = TestFleet::start(1, spec());
    let r = fleet.chat(0, "{not json");
    assert_eq!(r.status, 400);
    assert!(r.header("endpoint-load-metrics").is_some());
    assert_eq!(fleet.send(0, "GET", "/v1/nothing", &[], b"").status, 404);
}

#[test]
fn spread_pods_share_one_port_on_consecutive_loopback_addresses() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut config = FleetConfig::uniform("127.0.0.1:0".parse().unwrap(), 3, &spec(), &[]);
            config.spread_addresses = true;
            let fleet = Fleet::start(config).await.unwrap();
            tx.send(fleet.addrs().to_vec()).unwrap();
            let _ = stop_rx.await;
            fleet.shutdown().await;
        });
    });
    let addrs = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let port = addrs[0].port();
    for (i, addr) in addrs.iter().enumerate() {
        assert_eq!(addr.to_string(), format!("127.0.0.{}:{port}", i + 1));
        let r = Client::connect(*addr)
            .send("GET", "/_sim/fleet", &[], b"")
            .unwrap();
        assert_eq!(r.json()["pod"], format!("pod-{i}"));
    }
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn the_fleet_binary_writes_its_ports_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("llm-sim-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ports = dir.join("ports");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llm-sim"))
        .args(["--fleet", "2", "--quiet", "--port-file"])
        .arg(&ports)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(t) = std::fs::read_to_string(&ports) {
            text = t;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let list: Vec<u16> = text.split(',').map(|p| p.parse().unwrap()).collect();
    assert_eq!(list.len(), 2, "{text}");
    let r = Client::connect(SocketAddr::from(([127, 0, 0, 1], list[1])))
        .send("GET", "/_sim/fleet", &[], b"")
        .unwrap();
    assert_eq!(r.json()["pod"], "pod-1");
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
