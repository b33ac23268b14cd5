//! Host calls per request, by ABI function and by callback, for every configuration of `make bench`,
//! against the built `.wasm` files (`target/wasm32-wasip1/release`, or `$AIGW_WASM_DIR`), with the
//! bench's ~1 KB OpenAI chat request and the bench upstream's answers (`scripts/bench_upstream.py`,
//! rebuilt here byte for byte; the sizes are checked). The plugin configurations are read from
//! `envoy-configs/*.yaml`, as the bench renders them. Written for `bench/profile.md`.
//!
//! ```sh
//! cargo run -p aigw-harness --example host_calls            # tables
//! cargo run -p aigw-harness --example host_calls -- --time  # + guest time per callback (relative)
//! ```
//!
//! What is counted: every `env.proxy_*` import the guest calls (the harness's `Vm::trace()`), per
//! request in the steady state (after warm-up requests, so that once-per-worker work such as the
//! first `define_metric` of a name is not counted; the first request's extra calls are listed
//! separately). WASI imports are not traced by the harness. The body frames are the minimum Envoy
//! can deliver for these HTTP/1.1 exchanges: one data frame with end-of-stream per direction;
//! `--eos-frame` sends the body with end-of-stream false and then an empty end-of-stream frame
//! (what Envoy's HTTP/1 codec does when the end of the message is parsed after the data was
//! dispatched), which adds one body callback per direction.
//!
//! Timing (`--time`): wall time of each guest callback through the harness (wasmtime, Cranelift at
//! `OptLevel::None`, the harness's host functions in a debug build): compare configurations with
//! each other and with the empty filter, not with Envoy's µs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aigw_harness::{
    header_value, headers, wasm_path, Chain, Env, Event, Headers, LogLevel, Plugin, PluginSpec,
    Request, Step, StreamId, UpstreamRequest, UpstreamResponse, Vm,
};

#[path = "../../bench/native-profile/src/bodies.rs"]
mod bodies;
use bodies::{anthropic_json, anthropic_sse, chat_request, check_sizes, openai_json, openai_sse};

/// The bench upstream (nginx + Lua): Anthropic shapes for `/v1/messages`, OpenAI's otherwise; SSE
/// when the body says `"stream": true`.
fn upstream_answer(path: &str, body: &[u8]) -> (Headers, Vec<u8>) {
    let text = String::from_utf8_lossy(body);
    let stream = text.contains(r#""stream":true"#) || text.contains(r#""stream": true"#);
    let anthropic = path.contains("/v1/messages");
    let b = match (anthropic, stream) {
        (false, false) => openai_json(),
        (false, true) => openai_sse(),
        (true, false) => anthropic_json(),
        (true, true) => anthropic_sse(),
    };
    let mut h = vec![
        (":status", "200".to_string()),
        ("server", "nginx/1.22.1".to_string()),
        ("date", "Thu, 03 Dec 2026 08:42:00 GMT".to_string()),
    ];
    if stream {
        h.push(("content-type", "text/event-stream".into()));
        h.push(("cache-control", "no-cache".into()));
    } else {
        h.push(("content-type", "application/json".into()));
        h.push(("content-length", b.len().to_string()));
    }
    h.push(("x-envoy-upstream-service-time", "0".into()));
    (headers(&h), b.into_bytes())
}

/// The request headers Envoy hands the first filter for wrk's request.
fn request_headers(body_len: usize) -> Headers {
    headers(&[
        (":authority", "127.0.0.1:10000".to_string()),
        (":path", "/v1/chat/completions".into()),
        (":method", "POST".into()),
        (":scheme", "http".into()),
        ("content-length", body_len.to_string()),
        ("content-type", "application/json".into()),
        ("authorization", "Bearer sk-bench-client".into()),
        ("x-forwarded-proto", "http".into()),
        (
            "x-request-id",
            "7b1f0c2e-9a55-4c1e-8f3b-3f8f2d8b9c11".into(),
        ),
    ])
}

// ------------------------------------------------------------------ configs from envoy-configs

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The JSON `configuration.value` of filter `name` in an `envoy-configs/` file.
fn envoy_config(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(workspace().join("envoy-configs").join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("name: {name}"))
        .unwrap_or_else(|| panic!("{file}: no filter {name}"));
    let value = (start..lines.len())
        .find(|&i| lines[i].trim() == "value: |")
        .unwrap();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(lines[value]);
    lines[value + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn decorator_spec() -> PluginSpec {
    PluginSpec::new(wasm_path("ai_prompt_decorator").unwrap())
        .config(envoy_config(
            "ai-prompt-decorator.yaml",
            "ai-prompt-decorator",
        ))
        .root_id("ai-prompt-decorator")
        .vm_id("ai-prompt-decorator")
        // `make bench` runs Envoy with `--log-level warn`: proxy_get_log_level answers warn.
        .log_level(3)
}

fn usage_spec() -> PluginSpec {
    PluginSpec::new(wasm_path("ai_usage_stats").unwrap())
        .config(envoy_config("ai-usage-stats.yaml", "ai-usage-stats"))
        .root_id("ai-usage-stats")
        .vm_id("ai-usage-stats")
        .log_level(3)
}

fn proxy_spec(file: &str) -> PluginSpec {
    PluginSpec::new(wasm_path("ai_proxy").unwrap())
        .config(envoy_config(file, "ai-proxy"))
        .root_id("ai-proxy")
        .vm_id("ai-proxy")
        .headers_stop_iteration(true)
        .log_level(3)
}

fn empty_spec() -> Option<PluginSpec> {
    let p = workspace().join("target/bench/wasm32-wasip1/release/aigw_bench_empty_filter.wasm");
    p.exists()
        .then(|| PluginSpec::new(p).config("").log_level(3))
}

// ------------------------------------------------------------------ driving one VM

/// Counts of one callback (or of a whole request).
#[derive(Default, Clone)]
struct Tally {
    calls: BTreeMap<&'static str, u32>,
    logs: BTreeMap<String, u32>,
    time: Duration,
    invocations: u32,
}

impl Tally {
    fn total(&self) -> u32 {
        self.calls.values().sum()
    }
    fn add(&mut self, o: &Tally) {
        for (k, v) in &o.calls {
            *self.calls.entry(k).or_default() += v;
        }
        for (k, v) in &o.logs {
            *self.logs.entry(k.clone()).or_default() += v;
        }
        self.time += o.time;
        self.invocations += o.invocations;
    }
}

const CALLBACKS: [&str; 7] = [
    "on_context_create",
    "on_request_headers",
    "on_request_body",
    "on_response_headers",
    "on_response_body",
    "on_log+on_done+on_delete",
    "(total)",
];

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::Critical => "critical",
    }
}

/// Runs `f` on the VM and records the host calls and logs it caused.
fn step<T>(vm: &mut Vm, t: &mut Tally, f: impl FnOnce(&mut Vm) -> T) -> T {
    let (n0, l0) = (vm.trace().len(), vm.logs().len());
    let start = Instant::now();
    let out = f(vm);
    t.time += start.elapsed();
    t.invocations += 1;
    for e in &vm.trace()[n0..] {
        *t.calls.entry(e.function).or_default() += 1;
    }
    for l in &vm.logs()[l0..] {
        let short: String = l.message.chars().take(70).collect();
        *t.logs
            .entry(format!("{} {short}", level_name(l.level)))
            .or_default() += 1;
    }
    out
}

fn collect(events: &mut Vec<Event>, s: &Step) {
    events.extend(s.forwarded.iter().cloned());
}

/// One request through one VM, callback by callback (Envoy's order for a filter that holds the
/// request headers until the body is complete). Returns per-callback tallies.
fn drive(vm: &mut Vm, req: &[u8], eos_frame: bool) -> Vec<Tally> {
    let mut t = vec![Tally::default(); 6];
    let id: StreamId = step(vm, &mut t[0], |vm| vm.create_stream().unwrap());
    let mut up: Vec<Event> = Vec::new();
    let s = step(vm, &mut t[1], |vm| {
        vm.request_headers(id, request_headers(req.len()), false)
            .unwrap()
    });
    collect(&mut up, &s);
    let s = step(vm, &mut t[2], |vm| {
        vm.request_body(id, req, !eos_frame).unwrap()
    });
    collect(&mut up, &s);
    if eos_frame {
        let s = step(vm, &mut t[2], |vm| vm.request_body(id, b"", true).unwrap());
        collect(&mut up, &s);
    }
    let up_headers = up
        .iter()
        .find_map(|e| match e {
            Event::Headers(h, _) => Some(h.clone()),
            _ => None,
        })
        .expect("request headers reached the upstream");
    let up_body: Vec<u8> = up
        .iter()
        .flat_map(|e| match e {
            Event::Data(d, _) => d.clone(),
            _ => Vec::new(),
        })
        .collect();
    let path = header_value(&up_headers, ":path").unwrap_or_default();
    let (rh, rb) = upstream_answer(&path, &up_body);
    let mut down: Vec<Event> = Vec::new();
    let s = step(vm, &mut t[3], |vm| {
        vm.response_headers(id, rh, false).unwrap()
    });
    collect(&mut down, &s);
    let s = step(vm, &mut t[4], |vm| {
        vm.response_body(id, &rb, !eos_frame).unwrap()
    });
    collect(&mut down, &s);
    if eos_frame {
        let s = step(vm, &mut t[4], |vm| vm.response_body(id, b"", true).unwrap());
        collect(&mut down, &s);
    }
    assert!(
        down.iter().any(|e| matches!(e, Event::Headers(..))),
        "response headers reached the client"
    );
    step(vm, &mut t[5], |vm| vm.finish_stream(id).unwrap());
    t
}

fn sum(ts: &[Tally]) -> Tally {
    let mut all = Tally::default();
    for t in ts {
        all.add(t);
    }
    all
}

// ------------------------------------------------------------------ the configurations

struct Case {
    key: &'static str,
    label: &'static str,
    spec: fn() -> PluginSpec,
    model: &'static str,
    stream: bool,
}

fn guest_spec() -> PluginSpec {
    PluginSpec::new(wasm_path("aigw_test_guest").unwrap())
        .config("")
        .log_level(3)
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for stream in [false, true] {
        v.push(Case {
            key: if stream { "guest/stream" } else { "guest/chat" },
            label: "test guest (bench calibration)",
            spec: guest_spec,
            model: "gpt-4o-mini",
            stream,
        });
        v.push(Case {
            key: if stream {
                "decorator/stream"
            } else {
                "decorator/chat"
            },
            label: "ai-prompt-decorator",
            spec: decorator_spec,
            model: "gpt-4o-mini",
            stream,
        });
        v.push(Case {
            key: if stream {
                "proxy-oai/stream"
            } else {
                "proxy-oai/chat"
            },
            label: "ai-proxy OpenAI→OpenAI",
            spec: || proxy_spec("ai-proxy.yaml"),
            model: "gpt-4o-mini",
            stream,
        });
        v.push(Case {
            key: if stream {
                "proxy-ant/stream"
            } else {
                "proxy-ant/chat"
            },
            label: "ai-proxy OpenAI→Anthropic",
            spec: || proxy_spec("ai-proxy.yaml"),
            model: "claude-haiku-4-5",
            stream,
        });
        v.push(Case {
            key: if stream { "usage/stream" } else { "usage/chat" },
            label: "ai-usage-stats",
            spec: usage_spec,
            model: "gpt-4o-mini",
            stream,
        });
    }
    v
}

const WARMUP: usize = 3;

fn print_calls(title: &str, steady: &[(String, Tally)], first: &[(String, Tally)]) {
    let mut fns: Vec<&'static str> = steady
        .iter()
        .chain(first.iter())
        .flat_map(|(_, t)| t.calls.keys().copied())
        .collect();
    fns.sort_unstable();
    fns.dedup();
    println!("\n### {title}\n");
    print!("| host call |");
    for (k, _) in steady {
        print!(" {k} |");
    }
    println!();
    print!("|---|");
    for _ in steady {
        print!("---:|");
    }
    println!();
    for f in &fns {
        print!("| `{}` |", f.trim_start_matches("proxy_"));
        for (_, t) in steady {
            print!(" {} |", t.calls.get(f).copied().unwrap_or(0));
        }
        println!();
    }
    print!("| **total** |");
    for (_, t) in steady {
        print!(" **{}** |", t.total());
    }
    println!();
    print!("| first request: extra calls |");
    for ((_, s), (_, f)) in steady.iter().zip(first) {
        let extra: Vec<String> = f
            .calls
            .iter()
            .filter_map(|(k, v)| {
                let d = i64::from(*v) - i64::from(s.calls.get(k).copied().unwrap_or(0));
                (d != 0).then(|| format!("{}{d:+}", k.trim_start_matches("proxy_")))
            })
            .collect();
        print!(
            " {} |",
            if extra.is_empty() {
                "–".to_string()
            } else {
                extra.join(", ")
            }
        );
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let time = args.iter().any(|a| a == "--time");
    let eos_frame = args.iter().any(|a| a == "--eos-frame");
    let iters: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--iters=")?.parse().ok())
        .unwrap_or(300);

    // The bodies are the bench's, byte for byte (sizes from bench/results.md).
    check_sizes();

    println!(
        "# host calls per request (harness trace; body frames: {})",
        if eos_frame {
            "data + empty end-of-stream frame"
        } else {
            "one data frame with end-of-stream"
        }
    );
    let env = Env::new();

    // ---- single plugins, callback by callback
    let mut steady_all: Vec<(String, Tally)> = Vec::new();
    let mut first_all: Vec<(String, Tally)> = Vec::new();
    let mut per_callback: Vec<(String, Vec<Tally>)> = Vec::new();
    for case in cases() {
        let mut plugin = Plugin::load(&env, (case.spec)()).unwrap();
        let vm = plugin.worker(0);
        let req = chat_request(case.model, case.stream).into_bytes();
        let first = drive(vm, &req, eos_frame);
        for _ in 1..WARMUP {
            drive(vm, &req, eos_frame);
        }
        let steady = drive(vm, &req, eos_frame);
        first_all.push((case.key.to_string(), sum(&first)));
        steady_all.push((case.key.to_string(), sum(&steady)));
        per_callback.push((format!("{} ({})", case.key, case.label), steady));
        assert!(!vm.is_failed());
    }

    // ---- the `make run` chain (decorator + ai-proxy, envoy-configs/full-chain.yaml)
    let mut chain_rows: Vec<(String, Tally)> = Vec::new();
    let mut chain_first: Vec<(String, Tally)> = Vec::new();
    for stream in [false, true] {
        let mut chain = Chain::new(&env)
            .with(
                PluginSpec::new(wasm_path("ai_prompt_decorator").unwrap())
                    .config(envoy_config("full-chain.yaml", "ai-prompt-decorator"))
                    .log_level(3),
            )
            .unwrap()
            .with(proxy_spec("full-chain.yaml"))
            .unwrap();
        let body = chat_request("gpt-4o-mini", stream);
        let mut req = Request::post_json("/v1/chat/completions", &body)
            .header("authorization", "Bearer sk-bench-client")
            .header("x-forwarded-proto", "http");
        if eos_frame {
            // Chain::run ends the request with the last chunk; no separate empty frame.
            req = req.chunk_size(usize::MAX);
        }
        let mut upstream = |r: &UpstreamRequest| {
            let path = r.header(":path").unwrap_or_default();
            let (h, b) = upstream_answer(&path, &r.body);
            let mut resp = UpstreamResponse::new(200);
            resp.headers = h.into_iter().filter(|(k, _)| k != ":status").collect();
            resp.chunk(b)
        };
        for round in 0..=WARMUP {
            let marks: Vec<(usize, usize)> = (0..2)
                .map(|i| {
                    let vm = chain.plugin(i).unwrap().worker(0);
                    (vm.trace().len(), vm.logs().len())
                })
                .collect();
            let out = chain.run(&req, &mut upstream).unwrap();
            assert_eq!(out.status, 200, "{}", out.body_text());
            if round != 0 && round != WARMUP {
                continue;
            }
            for (i, name) in ["decorator", "proxy"].iter().enumerate() {
                let vm = chain.plugin(i).unwrap().worker(0);
                let mut t = Tally::default();
                for e in &vm.trace()[marks[i].0..] {
                    *t.calls.entry(e.function).or_default() += 1;
                }
                for l in &vm.logs()[marks[i].1..] {
                    let short: String = l.message.chars().take(70).collect();
                    *t.logs
                        .entry(format!("{} {short}", level_name(l.level)))
                        .or_default() += 1;
                }
                let key = format!("chain/{}: {name}", if stream { "stream" } else { "chat" });
                if round == 0 {
                    chain_first.push((key, t));
                } else {
                    chain_rows.push((key, t));
                }
            }
        }
    }

    print_calls(
        "Per request, steady state, by ABI function (single plugin)",
        &steady_all,
        &first_all,
    );
    print_calls(
        "Per request, the `make run` chain (full-chain.yaml), per filter",
        &chain_rows,
        &chain_first,
    );

    println!("\n### By callback (steady state; host calls, then the functions)\n");
    for (key, ts) in &per_callback {
        println!("- **{key}**");
        for (i, t) in ts.iter().enumerate() {
            if t.total() == 0 {
                continue;
            }
            let list: Vec<String> = t
                .calls
                .iter()
                .map(|(k, v)| format!("{}×{v}", k.trim_start_matches("proxy_")))
                .collect();
            println!("  - {} ({}): {}", CALLBACKS[i], t.total(), list.join(", "));
        }
    }

    println!("\n### Log lines per request (steady state; Envoy at --log-level warn drops those below warn after the call)\n");
    for (key, t) in steady_all.iter().chain(chain_rows.iter()) {
        if t.logs.is_empty() {
            println!("- {key}: none");
        } else {
            for (m, n) in &t.logs {
                println!("- {key}: {n}× `{m}`");
            }
        }
    }

    if !time {
        return;
    }
    // ---- guest time per callback (relative: debug harness, Cranelift OptLevel::None)
    println!(
        "\n### Harness time per request, µs (median of {iters} after warm-up; relative only)\n"
    );
    print!("| configuration |");
    for c in &CALLBACKS[..6] {
        print!(" {c} |");
    }
    println!(" total | − empty filter |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<(String, [f64; 7])> = Vec::new();
    let mut timed: Vec<(String, PluginSpec, String)> = Vec::new();
    if let Some(s) = empty_spec() {
        for stream in [false, true] {
            timed.push((
                format!("empty filter/{}", if stream { "stream" } else { "chat" }),
                s.clone(),
                chat_request("gpt-4o-mini", stream),
            ));
        }
    }
    for case in cases() {
        timed.push((
            case.key.to_string(),
            (case.spec)(),
            chat_request(case.model, case.stream),
        ));
    }
    // Every configuration gets its own VM; the requests are interleaved (one of each per round)
    // so that the machine's noise is shared.
    let mut plugins: Vec<(String, Plugin, Vec<u8>)> = timed
        .into_iter()
        .map(|(key, spec, body)| (key, Plugin::load(&env, spec).unwrap(), body.into_bytes()))
        .collect();
    for (_, plugin, req) in &mut plugins {
        for _ in 0..20 {
            drive(plugin.worker(0), req, eos_frame);
        }
    }
    let mut samples: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 7]; plugins.len()];
    for _ in 0..iters {
        for (p, (_, plugin, req)) in plugins.iter_mut().enumerate() {
            let ts = drive(plugin.worker(0), req, eos_frame);
            let mut total = 0.0;
            for (i, t) in ts.iter().enumerate() {
                let us = t.time.as_secs_f64() * 1e6;
                samples[p][i].push(us);
                total += us;
            }
            samples[p][6].push(total);
        }
    }
    for ((key, _, _), mut s) in plugins.into_iter().zip(samples) {
        let mut med = [0.0; 7];
        for (i, v) in s.iter_mut().enumerate() {
            v.sort_by(f64::total_cmp);
            med[i] = v[v.len() / 2];
        }
        rows.push((key, med));
    }
    let empty = |stream: bool| {
        rows.iter()
            .find(|(k, _)| {
                k == if stream {
                    "empty filter/stream"
                } else {
                    "empty filter/chat"
                }
            })
            .map_or(0.0, |(_, m)| m[6])
    };
    let (e_chat, e_stream) = (empty(false), empty(true));
    for (key, med) in &rows {
        print!("| {key} |");
        for v in &med[..6] {
            print!(" {v:.1} |");
        }
        let base = if key.ends_with("stream") {
            e_stream
        } else {
            e_chat
        };
        println!(" {:.1} | {:+.1} |", med[6], med[6] - base);
    }
}
