//! Native scanning throughput of the local rules and detectors, in MB/s of message text.
//!
//! `cargo run --release -p ai-content-moderation --example scan_throughput`
//!
//! Builds chat bodies of about 1 MiB of mixed prose (English and Chinese, markdown, numbers,
//! an occasional e-mail address, phone number or key) and runs the request check over them
//! with: the PII detectors alone, the deny words / regex / injection rules alone, and
//! everything together (masking included). A measurement, not a test: it asserts nothing.

use std::time::{Duration, Instant};

use ai_content_moderation::request::{check, Scratch};
use ai_content_moderation::vault::Vault;
use ai_content_moderation::Config;
use serde_json::json;

const PROSE: &[&str] = &[
    "The quarterly report shows revenue grew 12.5% to $4.2 million, driven by new customers in Europe. ",
    "Please summarise the attached meeting notes from 2024-05-06 and list three action items. ",
    "我们需要在下周三之前完成项目的第一阶段，请安排相关人员参加会议。 ",
    "In Rust, `Vec::with_capacity(1024)` avoids reallocations; see section 4.3 of the guide. ",
    "Version 1.2.3 fixed bug #4567, and the build on 10:30 passed all 312 tests. ",
    "## Heading\n- item one\n- item two with [a link](https://example.com/docs)\n",
];

const PII: &[&str] = &[
    "Contact jane.doe@example.com for details. ",
    "Call +44 20 7946 0958 or 13812345678 tomorrow. ",
    "Use key AKIAIOSFODNN7EXAMPLE carefully. ",
];

fn body(target: usize, with_pii: bool) -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < target / 8 {
        text.push_str(PROSE.get(i % PROSE.len()).copied().unwrap_or_default());
        if with_pii && i % 40 == 39 {
            text.push_str(PII.get((i / 40) % PII.len()).copied().unwrap_or_default());
        }
        i += 1;
    }
    let messages: Vec<_> = (0..8u32)
        .map(|n| json!({"role": if n.is_multiple_of(2) { "user" } else { "assistant" }, "content": text}))
        .collect();
    serde_json::to_vec(&json!({"model": "m", "messages": messages})).unwrap_or_default()
}

fn measure(name: &str, config: &Config, body: &[u8]) {
    let mut scratch = Scratch::default();
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < Duration::from_millis(1500) || runs < 3 {
        let mut vault = Vault::default();
        let out = check(config, body, &mut vault, &mut scratch);
        std::hint::black_box(&out);
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = body.len() as f64 * f64::from(runs) / 1e6;
    println!(
        "{name:<40} {:>8.1} MB/s  ({runs} runs of {} bytes)",
        mb / secs,
        body.len()
    );
}

fn main() {
    let detectors = Config::build(&json!({"pii": {
        "email": "mask", "phone": "mask", "cnMobile": "mask", "creditCard": "mask", "cnId": "mask",
        "usSsn": "mask", "iban": "mask", "ipAddress": "mask", "openaiKey": "mask",
        "awsAccessKey": "mask", "githubToken": "mask", "privateKey": "mask", "jwt": "mask"
    }}));
    let rules = Config::build(&json!({
        "denyWords": [{"name": "demo", "words": ["forbidden-word", "napalm recipe", "credit card dump",
            "wire the money", "炸弹", "secret sauce", "jailbreak", "kill switch"]},
            {"name": "sub", "words": ["xx-internal-xx"], "match": "substring"}],
        "regexRules": [{"name": "ticket", "pattern": "TICKET-[0-9]{6}"},
                       {"name": "codename", "pattern": "(?i)project (falcon|osprey)"}],
        "injection": {}
    }));
    let (Ok(detectors), Ok(rules)) = (detectors, rules) else {
        eprintln!("config error");
        return;
    };
    let all = Config::build(&json!({
        "denyWords": [{"name": "demo", "words": ["forbidden-word", "jailbreak"]}],
        "regexRules": [{"name": "ticket", "pattern": "TICKET-[0-9]{6}"}],
        "injection": {},
        "pii": {"email": "mask", "phone": "mask", "cnMobile": "mask", "creditCard": "block",
                "awsAccessKey": "hash", "openaiKey": "block", "jwt": "mask", "ipAddress": "log"}
    }));
    let Ok(all) = all else {
        eprintln!("config error");
        return;
    };
    let clean = body(1 << 20, false);
    let mixed = body(1 << 20, true);
    println!("request check over ~1 MiB chat bodies (8 messages), one core:");
    measure("all 13 detectors, clean text", &detectors, &clean);
    measure("all 13 detectors, text with PII", &detectors, &mixed);
    measure("deny words + 2 regex + injection", &rules, &clean);
    for (name, v) in [
        (
            "deny words (9)",
            json!({"denyWords": [{"name": "demo", "words": ["forbidden-word", "napalm recipe", "credit card dump",
            "wire the money", "炸弹", "secret sauce", "jailbreak", "kill switch"]},
            {"name": "sub", "words": ["xx-internal-xx"], "match": "substring"}]}),
        ),
        (
            "2 regex rules",
            json!({"regexRules": [{"name": "ticket", "pattern": "TICKET-[0-9]{6}"},
                       {"name": "codename", "pattern": "(?i)project (falcon|osprey)"}]}),
        ),
        ("injection heuristics", json!({"injection": {}})),
    ] {
        if let Ok(c) = Config::build(&v) {
            measure(name, &c, &clean);
        }
    }
    measure("typical mix (rules + 8 detectors)", &all, &mixed);
}
