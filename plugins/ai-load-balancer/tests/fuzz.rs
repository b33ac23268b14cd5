//! Bounded mutation fuzzing: mutated request bodies (chat, messages, completions, embeddings)
//! cut into random chunks, mutated load reports and failing answers never make the plugin panic
//! or stall a stream; every request is forwarded to one of the pool's endpoints or answered 429;
//! the in-flight counters end at zero. `AIGW_FUZZ_ROUNDS` sets the rounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_load_balancer::LoadBalancer;
use aigw_shared::host::Capabilities;
use aigw_shared::mock::fuzz::{chunks, mutate, rounds, Rng};
use aigw_shared::mock::{Exchange, Gateway, UpstreamReply};

const PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"",
    b",",
    b"=",
    b":",
    b"named_metrics.",
    b"kv_cache_usage_perc",
    b"num_requests_waiting",
    b"NaN",
    b"-1",
    b"99999999999999999999",
    b"\\u00",
    b"\xff",
];

const PODS: [&str; 3] = ["10.0.0.1:8000", "10.0.0.2:8000", "[::1]:8000"];

fn fixture(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("../../testdata/providers").join(rest),
        None => root.join("testdata").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn mutated_requests_and_load_reports_never_panic_stall_or_leak_in_flight_counts() {
    let cases: [(&str, &str); 4] = [
        ("/v1/chat/completions", "chat.request.json"),
        (
            "/v1/chat/completions",
            "providers/openai-chat-stream-usage.request.json",
        ),
        (
            "/v1/messages",
            "providers/anthropic-messages-tooluse.request.json",
        ),
        ("/v1/embeddings", "providers/openai-embeddings.request.json"),
    ];
    let reports: [&[u8]; 4] = [
        b"TEXT named_metrics.kv_cache_usage_perc=0.4, named_metrics.num_requests_waiting=3",
        b"JSON {\"named_metrics\":{\"kv_cache_usage_perc\":0.9,\"num_requests_waiting\":0}}",
        b"TEXT named_metrics.num_requests_waiting=7",
        b"BIN AAAA",
    ];
    let config = format!(
        r#"{{"endpoints": [{{"address": "{}"}}, {{"address": "{}", "weight": 2}},
            {{"address": "{}", "loraAdapters": ["m"]}}],
            "listHeader": "x-list", "maxRequestBodyBytes": 4096, "prefix": {{"tableSlots": 64}},
            "load": {{"queueHeader": "x-queue"}}}}"#,
        PODS[0], PODS[1], PODS[2]
    );
    let mut gw = Gateway::<LoadBalancer>::new(&config, Capabilities::FULL);
    let mut rng = Rng::new(0x10ad_ba1a);
    let (mut forwarded, mut shed) = (0, 0);
    for round in 0..rounds(300) {
        let (path, req) = cases[round % cases.len()];
        let mut body = fixture(req);
        if rng.below(2) == 0 {
            body = mutate(&mut rng, &body, PIECES);
        }
        let mut report = reports[rng.below(reports.len())].to_vec();
        if rng.below(2) == 0 {
            report = mutate(&mut rng, &report, PIECES);
        }
        let reply = UpstreamReply {
            status: [200, 200, 200, 503, 502][rng.below(5)],
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("endpoint-load-metrics".into(), report),
                ("x-queue".into(), mutate(&mut rng, b"2", PIECES)),
            ],
            chunks: chunks(&mut rng, b"{\"choices\":[]}", 8),
        };
        let ex = Exchange::post_json(path, &String::from_utf8_lossy(&body))
            .header("x-session-id", ["s1", "s2", ""][rng.below(3)])
            .chunked(1 + rng.below(512))
            .reply(reply);
        let out = gw.run(ex);
        assert_eq!(out.stalled, None, "round {round}");
        match &out.local_response {
            Some(local) => {
                assert_eq!(local.status, 429, "round {round}: {}", local.body_text());
                shed += 1;
            }
            None => {
                let pick = out.upstream_header("x-gateway-destination-endpoint");
                assert!(
                    pick.as_deref().is_some_and(|p| PODS.contains(&p)),
                    "round {round}: {pick:?}"
                );
                forwarded += 1;
            }
        }
        if round % 40 == 39 {
            gw.advance(std::time::Duration::from_secs(3));
        }
    }
    assert!(forwarded > 0, "{forwarded} forwarded, {shed} shed");
    // Nothing in flight: not in the worker's view, not in the store once the tick published it.
    gw.advance(ai_load_balancer::fleet::TICK);
    let now = gw.now_nanos();
    for (s, pod) in PODS.iter().enumerate() {
        assert_eq!(
            gw.state().fleet.seen(s, now, u64::MAX).in_flight,
            0,
            "{pod}"
        );
        let key = format!("aigw.lb.ep.{pod}");
        let (rec, _) = ai_load_balancer::store::read_endpoint(gw.root_host(), &key).unwrap();
        assert_eq!(rec.in_flight_of_others(0, now), 0, "{pod}: {rec:?}");
    }
}
