//! The built `ai_semantic_cache.wasm` in the harness, its callouts forwarded to a real Chroma
//! (`chroma run`) and a real embedding model (`scripts/embedder.py`, all-MiniLM-L6-v2), both from
//! the project's `.venv` (`make deps`) and started and stopped here: a question asked, then
//! rephrased, is answered from the cache (JSON and streams, OpenAI and Anthropic callers) without
//! reaching the model; a different question goes to the model; the embedding service down fails
//! open; the labelled pairs in `plugins/ai-semantic-cache/testdata/labelled-pairs.json` give the
//! hit and false-hit rates at the default threshold; APISIX loads it and passes through.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aigw_harness::{
    wasm_path, Chain, Env, Exchange, Plugin, PluginSpec, Profile, Request, UpstreamRequest,
    UpstreamResponse,
};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn venv_bin(name: &str) -> PathBuf {
    let p = root().join(".venv").join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make deps` (chromadb and the embedding model are installed there)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `chroma run` on a free port (tried again on another if one was taken meanwhile).
fn start_chroma(data: &Path) -> (Child, SocketAddr) {
    venv_bin("chroma"); // installed, or say `make deps`
    for _ in 0..3 {
        let port = free_port();
        // Through a wrapper that makes Chroma die with this test even if the runner is killed.
        let mut chroma = Command::new(venv_bin("python"))
            .arg(root().join("scripts").join("semantic_services.py"))
            .args([
                "chroma",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--path",
            ])
            .arg(data.join("chroma"))
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chroma run");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = chroma.try_wait() {
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return (chroma, addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = chroma.kill();
        let _ = chroma.wait();
    }
    panic!("chroma did not start on any of 3 ports");
}

fn wait_for(addr: SocketAddr, what: &str, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {addr} within 60 s");
}

/// Chroma and the embedder, stopped (by pid) when dropped.
struct Services {
    chroma: Child,
    embedder: Child,
    chroma_addr: SocketAddr,
    embedder_addr: SocketAddr,
    _data: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Services {
    fn start() -> Services {
        let data = std::env::temp_dir().join(format!(
            "aigw-semcache-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&data).unwrap();
        // The embedder picks its own port and writes it down: no race with parallel tests.
        let port_file = data.join("embedder.port");
        let mut embedder = Command::new(venv_bin("python"))
            .arg(root().join("scripts").join("embedder.py"))
            .args(["--port", "0", "--port-file"])
            .arg(&port_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("embedder");
        let (chroma, chroma_addr) = start_chroma(&data);
        let start = Instant::now();
        let embedder_port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok())
            {
                break p;
            }
            if let Ok(Some(status)) = embedder.try_wait() {
                panic!("the embedder exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the embedder did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let embedder_addr: SocketAddr = format!("127.0.0.1:{embedder_port}").parse().unwrap();
        wait_for(embedder_addr, "the embedder", &mut embedder);
        Services {
            chroma,
            embedder,
            chroma_addr,
            embedder_addr,
            _data: TempDir(data),
        }
    }

    /// An environment whose callouts to `embedder` and `chroma` reach the real servers.
    fn env(&self) -> Env {
        let env = Env::new();
        env.route_cluster("embedder", self.embedder_addr);
        env.route_cluster("chroma", self.chroma_addr);
        env
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for child in [&mut self.chroma, &mut self.embedder] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(threshold: Option<f64>) -> String {
    let mut semantic = json!({
        "embedding": {"cluster": "embedder", "authority": "embedder.local", "model": "all-MiniLM-L6-v2",
                      "timeoutMs": 5000},
        "vectorStore": {"kind": "chroma", "cluster": "chroma", "authority": "chroma.local",
                        "collection": "aigw_harness", "timeoutMs": 5000}
    });
    if let Some(t) = threshold {
        semantic["threshold"] = json!(t);
    }
    json!({"semantic": semantic}).to_string()
}

fn chain(env: &Env, config: &str, profile: Profile) -> Chain {
    let wasm = wasm_path("ai_semantic_cache").unwrap_or_else(|e| panic!("{e}"));
    let spec = PluginSpec::new(wasm)
        .config(config)
        .profile(profile)
        .headers_stop_iteration(true);
    Chain::new(env).with(spec).unwrap_or_else(|e| panic!("{e}"))
}

fn chat(model: &str, text: &str, stream: bool) -> Request {
    let body = json!({"model": model, "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": text}]});
    Request::post_json("/v1/chat/completions", body.to_string())
}

fn messages(model: &str, text: &str, stream: bool) -> Request {
    let body = json!({"model": model, "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": text}]});
    Request::post_json("/v1/messages", body.to_string())
}

/// The simulated model: answers "Answer to: <question>" (OpenAI JSON), counting calls.
fn model(calls: &mut u32) -> impl FnMut(&UpstreamRequest) -> UpstreamResponse + '_ {
    move |req: &UpstreamRequest| {
        *calls += 1;
        let v: Value = serde_json::from_slice(&req.body).unwrap();
        let q = v["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if req.header(":path").as_deref() == Some("/v1/messages") {
            let body = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": [{"type": "text", "text": format!("Answer to: {q}")}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 6}});
            return UpstreamResponse::json(200, body.to_string());
        }
        let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Answer to: {q}")},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}});
        UpstreamResponse::json(200, body.to_string()).rechunk(17)
    }
}

fn stream_text(out: &Exchange) -> String {
    let mut text = String::new();
    for event in out.body_text().split("\n\n") {
        let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
        if let Some(t) = v["delta"]["text"].as_str() {
            text.push_str(t);
        }
    }
    text
}

#[test]
fn a_rephrased_question_is_answered_from_real_chroma_without_reaching_the_model() {
    let services = Services::start();
    let env = services.env();
    let mut chain = chain(&env, &config(None), Profile::Envoy);
    let mut calls = 0;
    let first = chain
        .run(
            &chat("gpt-4o-mini", "How do I reset my password?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!((first.status, calls), (200, 1));
    assert_eq!(first.header("x-aigw-cache").as_deref(), Some("miss"));

    let again = chain
        .run(
            &chat(
                "gpt-4o-mini",
                "What are the steps to reset my password?",
                false,
            ),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1, "the rephrased question did not reach the model");
    assert_eq!(again.header("x-aigw-cache").as_deref(), Some("hit"));
    assert_eq!(
        again.header("x-aigw-cache-tier").as_deref(),
        Some("semantic")
    );
    let similarity: f64 = again
        .header("x-aigw-cache-similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.88..1.0).contains(&similarity), "{similarity}");
    let v: Value = serde_json::from_slice(&again.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Answer to: How do I reset my password?"
    );
    assert_eq!(v["usage"]["completion_tokens"], 6);

    // Streamed, and to an Anthropic caller, the same cached answer.
    let streamed = chain
        .run(
            &chat("gpt-4o-mini", "How can I reset my password?", true),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(
        streamed.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert!(streamed.body_text().ends_with("data: [DONE]\n\n"));
    assert_eq!(
        stream_text(&streamed),
        "Answer to: How do I reset my password?"
    );

    // Another model is another partition: a miss.
    let other = chain
        .run(
            &chat("gpt-4o", "How do I reset my password?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(
        (calls, other.header("x-aigw-cache").as_deref()),
        (2, Some("miss"))
    );

    // A different question in the same partition: a miss, its nearest neighbour's similarity said.
    let different = chain
        .run(
            &chat(
                "gpt-4o-mini",
                "What is the tallest mountain in the world?",
                false,
            ),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(
        (calls, different.header("x-aigw-cache").as_deref()),
        (3, Some("miss"))
    );
    assert!(different.header("x-aigw-cache-similarity").is_some());
    let p = chain.plugin(0).unwrap();
    assert!(
        p.logs().iter().all(|l| !l.message.contains("failed")),
        "{:#?}",
        p.logs()
    );
}

#[test]
fn anthropic_callers_get_the_cached_answer_as_an_event_stream() {
    let services = Services::start();
    let env = services.env();
    let mut chain = chain(&env, &config(None), Profile::Envoy);
    let mut calls = 0;
    chain
        .run(
            &messages("claude-x", "Who wrote Pride and Prejudice?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    let hit = chain
        .run(
            &messages(
                "claude-x",
                "Who is the author of Pride and Prejudice?",
                true,
            ),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1);
    let body = hit.body_text();
    assert!(
        body.starts_with("event: message_start\n") && body.contains("event: message_stop\n"),
        "{body}"
    );
    assert_eq!(
        stream_text(&hit),
        "Answer to: Who wrote Pride and Prejudice?"
    );
}

#[test]
fn the_embedding_service_down_fails_open_to_the_model() {
    let env = Env::new();
    // Nothing listens there: the callout fails to connect.
    let closed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    env.route_cluster("embedder", closed);
    env.route_cluster("chroma", closed);
    let mut chain = chain(&env, &config(None), Profile::Envoy);
    let mut calls = 0;
    for _ in 0..2 {
        let out = chain
            .run(
                &chat("m", "How do I reset my password?", false),
                &mut model(&mut calls),
            )
            .unwrap();
        assert_eq!(out.status, 200);
    }
    // The second is an exact hit: the local tier works without the semantic one.
    assert_eq!(calls, 1);
    let p = chain.plugin(0).unwrap();
    assert!(
        p.logs()
            .iter()
            .any(|l| l.message.contains("the embedding failed")),
        "{:#?}",
        p.logs()
    );
}

#[test]
fn the_labelled_pairs_give_the_documented_hit_and_false_hit_rates() {
    let path = root().join("plugins/ai-semantic-cache/testdata/labelled-pairs.json");
    let set: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let pairs = set["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 60);
    let services = Services::start();
    let env = services.env();
    let mut chain = chain(&env, &config(None), Profile::Envoy);
    let (mut hits, mut same, mut false_hits, mut different) = (0, 0, 0, 0);
    let mut lines = Vec::new();
    // Per language: (hits, paraphrases, false hits, look-alikes).
    let mut by_lang: std::collections::BTreeMap<String, [u32; 4]> = Default::default();
    for (i, pair) in pairs.iter().enumerate() {
        // Each pair in its own partition (the model is part of it).
        let model_name = format!("eval-{i}");
        let mut calls = 0;
        let a = pair["a"].as_str().unwrap();
        let b = pair["b"].as_str().unwrap();
        chain
            .run(&chat(&model_name, a, false), &mut model(&mut calls))
            .unwrap();
        let out = chain
            .run(&chat(&model_name, b, false), &mut model(&mut calls))
            .unwrap();
        let hit = out.header("x-aigw-cache").as_deref() == Some("hit");
        assert_eq!(hit, calls == 1, "a hit never reaches the model");
        let sim = out.header("x-aigw-cache-similarity").unwrap_or_default();
        let lang = by_lang
            .entry(pair["lang"].as_str().unwrap().to_owned())
            .or_default();
        if pair["same"].as_bool().unwrap() {
            same += 1;
            hits += usize::from(hit);
            lang[0] += u32::from(hit);
            lang[1] += 1;
        } else {
            different += 1;
            false_hits += usize::from(hit);
            lang[2] += u32::from(hit);
            lang[3] += 1;
        }
        lines.push(format!(
            "{} {} {sim} {b}",
            pair["lang"],
            if hit { "hit " } else { "miss" }
        ));
    }
    let hit_rate = hits as f64 / same as f64;
    let false_rate = false_hits as f64 / different as f64;
    eprintln!("{}", lines.join("\n"));
    for (lang, [h, s, f, d]) in &by_lang {
        eprintln!("{lang}: hits {h}/{s}, false hits {f}/{d}");
    }
    eprintln!(
        "labelled pairs at the default threshold: hit rate {hits}/{same} = {:.1} %, false-hit rate {false_hits}/{different} = {:.1} %",
        hit_rate * 100.0,
        false_rate * 100.0
    );
    // The README states these; a model or threshold change that moves them must update it.
    assert!(hit_rate >= 0.65, "hit rate {hit_rate}");
    assert!(false_rate <= 0.25, "false-hit rate {false_rate}");
}

#[test]
fn apisix_loads_it_and_passes_requests_through() {
    let env = Env::new();
    let mut chain = chain(&env, &config(None), Profile::Apisix);
    let mut calls = 0;
    for _ in 0..2 {
        chain
            .run(
                &chat("m", "How do I reset my password?", false),
                &mut model(&mut calls),
            )
            .unwrap();
    }
    assert_eq!(calls, 2, "nothing is cached without shared data");
    assert!(env.callouts().is_empty());
    let p: &Plugin = chain.plugin(0).unwrap();
    assert!(
        p.logs()
            .iter()
            .any(|l| l.message.contains("nothing is cached")),
        "{:#?}",
        p.logs()
    );
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_named() {
    let env = Env::new();
    let wasm = wasm_path("ai_semantic_cache").unwrap_or_else(|e| panic!("{e}"));
    for (config, path) in [
        (r#"{"ttlSeconds": 0}"#, "ttlSeconds"),
        (r#"{"key": {"mode": "everything"}}"#, "key.mode"),
        (
            r#"{"semantic": {"threshold": 2, "embedding": {"cluster": "e", "authority": "e", "model": "m"},
                "vectorStore": {"kind": "chroma", "cluster": "c", "authority": "c"}}}"#,
            "semantic.threshold",
        ),
        (
            r#"{"semantic": {"embedding": {"cluster": "e", "authority": "e", "model": "m"},
                "vectorStore": {"kind": "redis", "cluster": "c", "authority": "c"}}}"#,
            "semantic.vectorStore.kind",
        ),
        (
            r#"{"_rules_": [{"_match_domain_": ["a"], "exactSlot": 3}]}"#,
            "exactSlot",
        ),
    ] {
        let spec = PluginSpec::new(wasm.clone()).config(config);
        let err = Plugin::load(&env, spec).unwrap_err().to_string();
        assert!(err.contains(path), "{config}: {err}");
    }
}

#[test]
fn an_answer_stored_by_one_worker_is_a_hit_on_another() {
    // Two VMs on one Env share its shared data, as Envoy's workers do.
    let env = Env::new();
    let mut first = chain(&env, r#"{"ttlSeconds": 60}"#, Profile::Envoy);
    let mut second = chain(&env, r#"{"ttlSeconds": 60}"#, Profile::Envoy);
    let mut calls = 0;
    first
        .run(
            &chat("m", "What is the capital of France?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    let hit = second
        .run(
            &chat("m", "What is the capital of France?", true),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(hit.header("x-aigw-cache-tier").as_deref(), Some("exact"));
    assert_eq!(
        stream_text(&hit),
        "Answer to: What is the capital of France?"
    );
    // Past the TTL (the virtual clock), it is gone for both.
    env.advance_clock(Duration::from_secs(61));
    second
        .run(
            &chat("m", "What is the capital of France?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 2);
}

#[test]
fn the_higress_build_answers_a_rephrased_question_under_the_higress_profile() {
    let wasm = crate::common::higress_wasm("ai_semantic_cache");
    let services = Services::start();
    let env = services.env();
    // No allow_on_headers_stop_iteration here: the Higress ABI marker does that job.
    let spec = PluginSpec::new(wasm)
        .config(config(None))
        .profile(Profile::Higress);
    let mut chain = Chain::new(&env)
        .with(spec)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut calls = 0;
    chain
        .run(
            &chat("qwen-max", "How do I install Docker on Ubuntu?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    let hit = chain
        .run(
            &chat("qwen-max", "How to install Docker on Ubuntu?", false),
            &mut model(&mut calls),
        )
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(hit.header("x-aigw-cache-tier").as_deref(), Some("semantic"));
}
