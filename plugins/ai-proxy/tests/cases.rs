//! Replays every scenario under `testdata/<from>_<to>/<case>/case.json` (the shared scenario
//! format, `aigw_shared::scenario`) through the plugin on the mock host: the upstream request is
//! checked, the upstream answer (often a real provider sample from the workspace
//! `testdata/providers/`) is fed back, and the client's response is compared with the golden
//! file. Streams are re-split at every byte boundary and must give the same bytes; request bodies
//! ended by trailers must give the same result.
//!
//! `AIGW_UPDATE_GOLDEN=1 cargo test -p ai-proxy --test cases` rewrites the golden client files;
//! `AIGW_CASES=openai_openai/` replays only the scenarios whose name holds that text.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;

use ai_proxy::Proxy;
use aigw_shared::mock::{Exchange, Outcome, UpstreamReply};
use aigw_shared::scenario::{CheckOptions, Observed, Scenario};

/// Every scenario, or (with `AIGW_CASES=<part of a name>`) those whose name holds it.
fn cases() -> Vec<Scenario> {
    let out = Scenario::load_tree(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata"));
    assert!(
        out.len() >= 20,
        "expected the scenario folders, found {}",
        out.len()
    );
    match std::env::var("AIGW_CASES") {
        Ok(part) if !part.is_empty() => {
            out.into_iter().filter(|c| c.name.contains(&part)).collect()
        }
        _ => out,
    }
}

fn exchange(c: &Scenario, split: &[usize]) -> Exchange {
    let body = c.request_body();
    let mut ex = if c.is_get() {
        Exchange::get(c.path())
    } else {
        Exchange::post_json(c.path(), std::str::from_utf8(&body).unwrap())
    };
    for (k, v) in c.headers() {
        ex = ex.header(&k, &v);
    }
    if c.has_upstream() {
        let full = c.upstream_body();
        let mut chunks = Vec::new();
        let mut at = 0;
        for &s in split {
            if s > at && s < full.len() {
                chunks.push(full[at..s].to_vec());
                at = s;
            }
        }
        chunks.push(full[at..].to_vec());
        ex = ex.reply(UpstreamReply {
            status: c.upstream_status(),
            headers: vec![
                (
                    "content-type".into(),
                    c.upstream_content_type().as_bytes().to_vec(),
                ),
                ("content-length".into(), full.len().to_string().into_bytes()),
            ],
            chunks,
        });
    }
    ex
}

fn run(c: &Scenario, split: &[usize]) -> Outcome {
    exchange(c, split).run::<Proxy>(&c.config)
}

fn options() -> CheckOptions<'static> {
    CheckOptions {
        skip_headers: &[],
        update_golden: std::env::var_os("AIGW_UPDATE_GOLDEN").is_some(),
    }
}

#[test]
fn every_scenario_gives_the_expected_upstream_request_and_client_response() {
    for c in cases() {
        c.check(&Observed::from(&run(&c, &[])), options());
    }
}

#[test]
fn request_bodies_ended_by_trailers_give_the_same_result() {
    for c in cases().iter().filter(|c| !c.is_get()) {
        let out = exchange(c, &[])
            .chunked(9)
            .trailers(&[("x-trace", "1")])
            .run::<Proxy>(&c.config);
        c.check(&Observed::from(&out), CheckOptions::default());
    }
}

#[test]
fn every_upstream_body_split_at_any_byte_gives_the_same_client_bytes() {
    for c in cases() {
        if !c.has_upstream() {
            continue;
        }
        let whole = run(&c, &[]);
        let len = c.upstream_body().len();
        for at in 1..len {
            let out = run(&c, &[at]);
            assert_eq!(
                out.response_body, whole.response_body,
                "{}: split at {at}",
                c.name
            );
        }
        let bytes: Vec<usize> = (1..len).collect();
        let out = run(&c, &bytes);
        assert_eq!(
            out.response_body, whole.response_body,
            "{}: one byte at a time",
            c.name
        );
    }
}
