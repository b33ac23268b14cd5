//! The plugins' per-request work timed natively with `std::time::Instant` (x86-64, release), on
//! the bodies of `make bench` and the plugin configurations of `envoy-configs/`. Each step is
//! what the guest does between host calls; "whole filter" runs the plugin's real driver through
//! the in-memory mock host (`aigw_shared::mock::Gateway`), so it includes the mock's own work
//! (header vectors cloned, RefCells): an upper bound for the guest side. V8's optimising tier
//! runs this code slower than native (typically 1.5-3x); compare the steps with each other.
//!
//! `CARGO_TARGET_DIR=target/native-profile cargo run --release --manifest-path bench/native-profile/Cargo.toml`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bodies;

use std::hint::black_box;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use ai_prompt_decorator::decorate::{decorate, Dialect};
use ai_prompt_decorator::PromptDecorator;
use ai_proxy::hub::HubEvent;
use ai_proxy::prepare::{prepare, Incoming};
use ai_proxy::state::State;
use ai_proxy::stats::{ModelLabels, RequestStats};
use ai_proxy::translate::client::openai::OpenAiEncoder;
use ai_proxy::translate::{self, passthrough, ClientEncoder, ResponseHead, Schema};
use ai_proxy::Proxy;
use aigw_shared::host::Capabilities;
use aigw_shared::llm::{Api, ResponseFormat, ResponseObserver};
use aigw_shared::metrics::Metrics;
use aigw_shared::mock::{Exchange, Gateway, MockHost, UpstreamReply};
use bodies::{anthropic_json, anthropic_sse, chat_request, check_sizes, openai_json, openai_sse};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The JSON `configuration.value` of filter `name` in an `envoy-configs/` file.
fn envoy_config(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(workspace().join("envoy-configs").join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("name: {name}"))
        .unwrap();
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

/// Median (and minimum) µs per call of `f` over 9 batches of about 20 ms each.
fn time(mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..200 {
        f();
    }
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed().as_millis() < 20 {
        f();
        n += 1;
    }
    let n = n.max(10);
    let mut per: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    per.sort_by(f64::total_cmp);
    (per[per.len() / 2], per[0])
}

fn row(name: &str, (med, min): (f64, f64)) {
    println!("| {name} | {med:.2} | {min:.2} |");
}

fn sse_headers() -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".into(), b"text/event-stream".to_vec()),
        ("cache-control".into(), b"no-cache".to_vec()),
    ]
}

fn json_headers(len: usize) -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".into(), b"application/json".to_vec()),
        ("content-length".into(), len.to_string().into_bytes()),
    ]
}

fn reply(body: String, sse: bool) -> UpstreamReply {
    UpstreamReply {
        status: 200,
        headers: if sse {
            sse_headers()
        } else {
            json_headers(body.len())
        },
        chunks: vec![body.into_bytes()],
    }
}

fn exchange(body: &str, answer: UpstreamReply) -> Exchange {
    Exchange::post_json("/v1/chat/completions", body)
        .header("authorization", "Bearer sk-bench-client")
        .header("x-forwarded-proto", "http")
        .reply(answer)
}

fn main() {
    check_sizes();
    let dec_json = envoy_config("ai-prompt-decorator.yaml", "ai-prompt-decorator");
    let proxy_json = envoy_config("ai-proxy.yaml", "ai-proxy");
    let dec_cfg =
        ai_prompt_decorator::config::Config::build(&serde_json::from_str(&dec_json).unwrap())
            .unwrap();
    let proxy_cfg = Rc::new(
        ai_proxy::config::Config::build(&serde_json::from_str(&proxy_json).unwrap()).unwrap(),
    );
    let state = State::new(std::iter::once(&proxy_cfg));

    let oai_chat = chat_request("gpt-4o-mini", false);
    let oai_stream = chat_request("gpt-4o-mini", true);
    let ant_chat = chat_request("claude-haiku-4-5", false);
    let ant_stream = chat_request("claude-haiku-4-5", true);
    let incoming = Incoming {
        api: Api::ChatCompletions,
        suffix: "/chat/completions".into(),
        json: true,
        client_key: Some(ai_proxy::prepare::Secret("sk-bench-client".into())),
        now_ns: 1_764_700_000_000_000_000,
    };

    println!("## Native time per step, µs per call (median and minimum of 9 batches)\n");
    println!("| step | median µs | min µs |");
    println!("|---|---:|---:|");

    // ---- baselines: what one parse of these bodies costs
    row(
        "baseline: `serde_json::from_slice::<Value>` of the 895 B request",
        time(|| {
            black_box(
                serde_json::from_slice::<serde_json::Value>(black_box(oai_chat.as_bytes()))
                    .unwrap(),
            );
        }),
    );
    let sse = openai_sse();
    row(
        "baseline: `serde_json::from_str::<Value>` of each of the 23 JSON events of the OpenAI SSE answer",
        time(|| {
            for line in black_box(&sse).lines() {
                if let Some(d) = line.strip_prefix("data: {") {
                    let _ = d;
                    black_box(
                        serde_json::from_str::<serde_json::Value>(&line[6..]).unwrap(),
                    );
                }
            }
        }),
    );

    // ---- ai-prompt-decorator
    row(
        "decorator: `decorate::decorate` (OpenAI chat, 895 B → 1.2 KB)",
        time(|| {
            black_box(
                decorate(
                    &dec_cfg,
                    Dialect::OpenAiChat,
                    black_box(oai_chat.as_bytes()),
                )
                .unwrap(),
            );
        }),
    );

    // ---- ai-proxy: request side
    row(
        "ai-proxy: `passthrough::peek` (model, stream)",
        time(|| {
            black_box(passthrough::peek(black_box(oai_chat.as_bytes())).unwrap());
        }),
    );
    row(
        "ai-proxy: `passthrough::patch_model`",
        time(|| {
            black_box(
                passthrough::patch_model(black_box(oai_chat.as_bytes()), "gpt-4o-mini").unwrap(),
            );
        }),
    );
    row(
        "ai-proxy: `prepare::prepare`, OpenAI→OpenAI (peek + route + patch_model + auth)",
        time(|| {
            black_box(
                prepare(&proxy_cfg, &state, &incoming, black_box(oai_chat.as_bytes()), &|_| Default::default())
                .unwrap(),
            );
        }),
    );
    row(
        "ai-proxy: `prepare::prepare`, OpenAI→Anthropic (peek + hub parse + Anthropic encode + auth)",
        time(|| {
            black_box(prepare(&proxy_cfg, &state, &incoming, black_box(ant_chat.as_bytes()), &|_| Default::default()).unwrap());
        }),
    );
    row(
        "ai-proxy: `prepare::prepare`, OpenAI→Anthropic stream",
        time(|| {
            black_box(
                prepare(&proxy_cfg, &state, &incoming, black_box(ant_stream.as_bytes()), &|_| Default::default())
                .unwrap(),
            );
        }),
    );
    let labels = ModelLabels::default();
    let metrics_host = MockHost::default();
    let metrics = Metrics::new();
    row(
        "ai-proxy: stats per request (`ModelLabels::label`, `RequestStats::new`, 5 names formatted, 5 id look-ups + mock host calls)",
        time(|| {
            let label = labels.label("gpt-4o-mini");
            let mut s = RequestStats::new("openai", &label, "chat", Some(1));
            s.sent(&metrics, &metrics_host);
            s.status(&metrics, &metrics_host, 200);
            s.usage(ai_proxy::stats::Tokens { input: 230, output: 20 });
            s.finish(&metrics, &metrics_host);
            black_box(s.name(None, aigw_shared::genai::metric::UPSTREAM_REQUESTS_TOTAL));
        }),
    );
    let mock_only = MockHost::default();
    row(
        "   (of which: the 4 mock-host metric calls alone)",
        time(|| {
            use aigw_shared::host::Host;
            for _ in 0..3 {
                let _ = mock_only.increment_metric(1, 1);
            }
            let _ = mock_only.record_metric(1, 1);
        }),
    );

    // ---- ai-proxy: response side
    let oj = openai_json();
    row(
        "ai-proxy: OpenAI JSON answer (447 B) through `ResponseObserver` (usage for metrics)",
        time(|| {
            let mut o = ResponseObserver::new(Api::ChatCompletions, ResponseFormat::Json);
            o.feed_quiet(black_box(oj.as_bytes()), 1);
            black_box(o.finish(2, |_| {}).usage);
        }),
    );
    row(
        "ai-proxy: OpenAI SSE answer (5626 B, 24 events) through `ResponseObserver`",
        time(|| {
            let mut o = ResponseObserver::new(Api::ChatCompletions, ResponseFormat::Sse);
            o.feed_quiet(black_box(sse.as_bytes()), 1);
            black_box(o.finish(2, |_| {}).usage);
        }),
    );
    row(
        "   split: `SseDecoder::feed` alone on the 5626 B (events framed, data copied, nothing parsed)",
        time(|| {
            let mut d = aigw_shared::stream::sse::SseDecoder::new();
            let mut n = 0usize;
            d.feed(black_box(sse.as_bytes()), |e| n += e.data.len()).unwrap();
            black_box(n);
        }),
    );
    row(
        "   split: typed `schema::openai::Response` parse of the 23 JSON events alone",
        time(|| {
            for line in black_box(&sse).lines() {
                if let Some(d) = line.strip_prefix("data: ") {
                    if d.starts_with('{') {
                        black_box(
                            serde_json::from_str::<aigw_shared::schema::openai::Response<'_>>(d)
                                .unwrap(),
                        );
                    }
                }
            }
        }),
    );
    row(
        "   alternative: frame events, parse only those whose data holds `\"usage\":{` (1 of 24)",
        time(|| {
            let mut d = aigw_shared::stream::sse::SseDecoder::new();
            let mut usage = None;
            d.feed(black_box(sse.as_bytes()), |e| {
                if e.data.contains("\"usage\":{") {
                    usage =
                        serde_json::from_str::<aigw_shared::schema::openai::Response<'_>>(e.data)
                            .ok()
                            .and_then(|r| r.usage.map(|u| u.prompt_tokens));
                }
            })
            .unwrap();
            black_box(usage);
        }),
    );
    let aj = anthropic_json();
    let asse = anthropic_sse();
    let translate_all = |body: &str, stream: bool| {
        let head = ResponseHead {
            status: 200,
            content_type: if stream {
                "text/event-stream"
            } else {
                "application/json"
            }
            .into(),
            stream,
            model: "claude-haiku-4-5".into(),
            created: 1_764_700_000,
        };
        let mut tr = translate::backend(Schema::Anthropic).response_translator(&head);
        let mut enc = OpenAiEncoder::new(stream, false);
        let mut events: Vec<HubEvent> = Vec::new();
        tr.feed(body.as_bytes(), &mut events).unwrap();
        tr.finish(&mut events).unwrap();
        let mut out = Vec::new();
        for ev in events {
            enc.encode(ev, &mut out);
        }
        enc.finish(None, &mut out);
        out
    };
    let out_json = translate_all(&aj, false);
    let out_sse = translate_all(&asse, true);
    row(
        &format!(
            "ai-proxy: Anthropic JSON answer (339 B) → OpenAI ({} B): translator + `OpenAiEncoder`",
            out_json.len()
        ),
        time(|| {
            black_box(translate_all(black_box(&aj), false));
        }),
    );
    let asse2 = asse.clone();
    row(
        "   split: the Anthropic stream translator alone (`feed` + `finish`, hub events, no encoding)",
        time(|| {
            let head = ResponseHead {
                status: 200,
                content_type: "text/event-stream".into(),
                stream: true,
                model: "claude-haiku-4-5".into(),
                created: 1_764_700_000,
            };
            let mut tr = translate::backend(Schema::Anthropic).response_translator(&head);
            let mut events: Vec<HubEvent> = Vec::new();
            tr.feed(black_box(asse2.as_bytes()), &mut events).unwrap();
            tr.finish(&mut events).unwrap();
            black_box(events);
        }),
    );
    row(
        &format!(
            "ai-proxy: Anthropic SSE answer (3085 B, 26 events) → OpenAI chunks ({} B)",
            out_sse.len()
        ),
        time(|| {
            black_box(translate_all(black_box(&asse), true));
        }),
    );

    // ---- whole filters through the mock host (driver + filter + mock host)
    println!("\n## Whole filter through the mock host (`mock::Gateway::run`: driver, filter, mock host), µs per request\n");
    println!("| configuration | median µs | min µs |");
    println!("|---|---:|---:|");
    let mut empty = Gateway::<PromptDecorator>::new("{}", Capabilities::FULL);
    row(
        "reference: ai-prompt-decorator with an empty config (headers read, body read whole, nothing to do)",
        time(|| {
            black_box(empty.run(exchange(&oai_chat, reply(openai_json(), false))));
        }),
    );
    for (name, body, sse) in [
        ("ai-prompt-decorator, chat", &oai_chat, false),
        ("ai-prompt-decorator, stream", &oai_stream, true),
    ] {
        let mut g = Gateway::<PromptDecorator>::new(&dec_json, Capabilities::FULL);
        let answer = if sse { openai_sse() } else { openai_json() };
        row(
            name,
            time(|| {
                black_box(g.run(exchange(body, reply(answer.clone(), sse))));
            }),
        );
    }
    for (name, body, answer, sse) in [
        (
            "ai-proxy OpenAI→OpenAI, chat",
            &oai_chat,
            openai_json(),
            false,
        ),
        (
            "ai-proxy OpenAI→OpenAI, stream",
            &oai_stream,
            openai_sse(),
            true,
        ),
        (
            "ai-proxy OpenAI→Anthropic, chat",
            &ant_chat,
            anthropic_json(),
            false,
        ),
        (
            "ai-proxy OpenAI→Anthropic, stream",
            &ant_stream,
            anthropic_sse(),
            true,
        ),
    ] {
        let mut g = Gateway::<Proxy>::new(&proxy_json, Capabilities::FULL);
        let out = g.run(exchange(body, reply(answer.clone(), sse)));
        assert!(
            out.local_response.is_none(),
            "{name}: {:?}",
            out.local_response
        );
        row(
            name,
            time(|| {
                black_box(g.run(exchange(body, reply(answer.clone(), sse))));
            }),
        );
    }
    row(
        "   (mock overhead: building the `Exchange` and reply alone)",
        time(|| {
            black_box(exchange(&oai_stream, reply(openai_sse(), true)));
        }),
    );
}
