//! Replays every scenario in `testdata/cases/` (the shared scenario format,
//! `aigw_shared::scenario`) through the plugin on the mock host, delivering the request body
//! whole, in small chunks, and ended by HTTP/2 trailers.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

use ai_prompt_decorator::PromptDecorator;
use aigw_shared::mock::Exchange;
use aigw_shared::scenario::{CheckOptions, Observed, Scenario};

fn cases() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/cases");
    let out = Scenario::load_files(&dir);
    assert!(
        out.len() >= 15,
        "expected the scenario files, found {}",
        out.len()
    );
    out
}

fn exchange(case: &Scenario, chunk: usize) -> Exchange {
    let body = String::from_utf8(case.request_body()).unwrap();
    let mut ex = Exchange::post_json(case.path(), &body).chunked(chunk);
    for (k, v) in case.headers() {
        ex = ex.header(&k, &v);
    }
    ex
}

fn check(case: &Scenario, ex: Exchange) {
    let out = ex.run::<PromptDecorator>(&case.config);
    case.check(&Observed::from(&out), CheckOptions::default());
}

#[test]
fn every_scenario_gives_the_expected_upstream_body_or_error() {
    for case in cases() {
        check(&case, exchange(&case, 0));
    }
}

#[test]
fn every_scenario_gives_the_same_result_when_the_body_arrives_in_small_chunks() {
    for case in cases() {
        for chunk in [1, 3, 16] {
            check(&case, exchange(&case, chunk));
        }
    }
}

#[test]
fn every_scenario_gives_the_same_result_when_trailers_end_the_body() {
    for case in cases() {
        check(&case, exchange(&case, 5).trailers(&[("x-checksum", "0")]));
    }
}
