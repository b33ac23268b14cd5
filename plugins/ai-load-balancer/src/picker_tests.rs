//! The pick over snapshots: each scorer moves the choice the way it should, filters drop what
//! they should, ties are broken by the draw and only by it.

use super::*;
use crate::config::Config;

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"endpoints": [
            {{"address": "10.0.0.1:8000"}},
            {{"address": "10.0.0.2:8000"}},
            {{"address": "10.0.0.3:8000", "weight": 2, "labels": {{"gpu": "H100"}}}}
        ]{extra}}}"#
    );
    Config::from_json(&serde_json::from_str(&json).unwrap()).unwrap()
}

fn idle() -> EndpointView {
    EndpointView {
        healthy: true,
        ..EndpointView::default()
    }
}

fn winner(d: &Decision) -> usize {
    match d {
        Decision::Route { order, .. } => order[0],
        Decision::Shed => panic!("shed"),
    }
}

const NO_LORA: [bool; 3] = [false; 3];

#[test]
fn the_endpoint_holding_the_longest_prefix_wins() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    v[1].prefix_blocks = 10;
    v[2].prefix_blocks = 4;
    let d = pick(&c, &v, 10, &NO_LORA, 7);
    assert_eq!(winner(&d), 1);
    assert!(matches!(
        d,
        Decision::Route {
            reason: Reason::Prefix,
            ..
        }
    ));
}

#[test]
fn heavier_hardware_wins_among_equals() {
    let c = config("");
    let d = pick(&c, &[idle(); 3], 0, &NO_LORA, 1);
    assert_eq!(winner(&d), 2, "weight 2 against 1");
    assert!(matches!(
        d,
        Decision::Route {
            reason: Reason::Load,
            ..
        }
    ));
}

#[test]
fn a_deeper_queue_and_fuller_kv_cache_lose() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    v[0].load.waiting = Some(3);
    v[1].load.kv_cache = Some(0.7);
    assert_eq!(winner(&pick(&c, &v, 0, &NO_LORA, 0)), 2);
}

#[test]
fn requests_in_flight_spread_the_load() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    v[0].in_flight = 2;
    v[2].in_flight = 1;
    assert_eq!(winner(&pick(&c, &v, 0, &NO_LORA, 0)), 1);
}

#[test]
fn a_saturated_endpoint_is_avoided_even_with_the_whole_prefix() {
    let c = config("");
    let mut v = [idle(); 3];
    v[2].prefix_blocks = 8;
    v[2].load.waiting = Some(5);
    let d = pick(&c, &v, 8, &NO_LORA, 3);
    let Decision::Route { order, .. } = d else {
        panic!("routed")
    };
    assert_ne!(order[0], 2);
    assert_eq!(
        order[2], 2,
        "saturated endpoints come last in the fallback list"
    );
}

#[test]
fn all_saturated_sheds_or_deprioritizes_as_configured() {
    let mut v = [idle(); 3];
    for e in &mut v {
        e.load.kv_cache = Some(0.95);
    }
    assert_eq!(pick(&config(""), &v, 0, &NO_LORA, 0), Decision::Shed);
    let keep = config(r#", "saturation": {"policy": "deprioritize"}"#);
    assert_eq!(winner(&pick(&keep, &v, 0, &NO_LORA, 0)), 2);
}

#[test]
fn unhealthy_endpoints_are_skipped_unless_all_are() {
    let c = config("");
    let mut v = [idle(); 3];
    v[2].healthy = false;
    let Decision::Route { order, .. } = pick(&c, &v, 0, &NO_LORA, 0) else {
        panic!("routed")
    };
    assert_eq!(order.len(), 2);
    assert!(!order.contains(&2));
    for e in &mut v {
        e.healthy = false;
    }
    assert_eq!(
        winner(&pick(&c, &v, 0, &NO_LORA, 0)),
        2,
        "all down: try them all"
    );
}

#[test]
fn the_session_binding_outweighs_a_prefix_elsewhere() {
    let c = config("");
    let mut v = [idle(); 3];
    v[0].session = true;
    v[2].prefix_blocks = 10;
    let d = pick(&c, &v, 10, &NO_LORA, 0);
    assert_eq!(winner(&d), 0);
    assert!(matches!(
        d,
        Decision::Route {
            reason: Reason::Session,
            ..
        }
    ));
}

#[test]
fn lora_affinity_prefers_endpoints_serving_the_adapter() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    assert_eq!(
        winner(&pick(&c, &[idle(); 3], 0, &[false, true, false], 9)),
        1
    );
}

#[test]
fn ties_are_broken_by_the_draw_and_every_endpoint_can_win() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut seen = [0u32; 3];
    for draw in 0..300u64 {
        let d1 = pick(&c, &[idle(); 3], 0, &NO_LORA, draw);
        let d2 = pick(&c, &[idle(); 3], 0, &NO_LORA, draw);
        assert_eq!(d1, d2, "the same draw, the same pick");
        seen[winner(&d1)] += 1;
    }
    assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
}

#[test]
fn scores_stay_within_the_sum_of_the_weights() {
    let c = config("");
    let mut v = idle();
    v.prefix_blocks = 99;
    v.session = true;
    let s = score(
        &c,
        2,
        &v,
        PrefixBase {
            total: 10,
            common: 0,
        },
        true,
    );
    let w = c.weights;
    let max = w.prefix + w.queue + w.kv_cache + w.in_flight + w.session + w.lora + w.hardware;
    assert!((s - max).abs() < 1e-9, "{s} vs {max}");
}

#[test]
fn affinity_yields_once_an_endpoint_holds_more_than_its_bounded_share_in_flight() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    v[0].prefix_blocks = 10;
    // Weights 1, 1, 2. Two in flight there, none elsewhere: with this one 3 in all, its bound is
    // ceil(1.25 × 3 × 1/4) = 1.
    v[0].in_flight = 2;
    assert_ne!(winner(&pick(&c, &v, 10, &NO_LORA, 0)), 0);
    // The others busy too: 7 in all, bound ceil(1.25 × 7 / 4) = 3.
    v[1].in_flight = 2;
    v[2].in_flight = 2;
    assert_eq!(
        winner(&pick(&c, &v, 10, &NO_LORA, 0)),
        0,
        "within the bound: affinity"
    );
    let unbounded = config(r#", "scorers": {"hardware": 0}, "boundedLoad": 0"#);
    v[0].in_flight = 9;
    assert_eq!(winner(&pick(&unbounded, &v, 10, &NO_LORA, 0)), 0);
}

#[test]
fn the_bound_follows_the_hardware_weights() {
    // Weights 1, 1, 2: the heavy endpoint's share is half of what is in flight.
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    v[2].prefix_blocks = 10;
    v[2].in_flight = 3;
    v[0].in_flight = 1;
    // 5 in all with this one: bound ceil(1.25 × 5 × 2 / 4) = 4 > 3.
    assert_eq!(winner(&pick(&c, &v, 10, &NO_LORA, 0)), 2);
    // 10 in all with this one: bound ceil(1.25 × 10 × 2 / 4) = 7.
    v[2].in_flight = 8;
    assert_ne!(winner(&pick(&c, &v, 10, &NO_LORA, 0)), 2);
}

#[test]
fn a_prefix_every_endpoint_holds_decides_nothing_and_the_rest_counts_in_full() {
    let c = config(r#", "scorers": {"hardware": 0}"#);
    let mut v = [idle(); 3];
    // A 40-block system prompt everywhere; endpoint 1 also holds the conversation's 10 blocks.
    v[0].prefix_blocks = 40;
    v[1].prefix_blocks = 50;
    v[2].prefix_blocks = 40;
    let base = PrefixBase {
        total: 52,
        common: 40,
    };
    let home = score(&c, 1, &v[1], base, false);
    let other = score(&c, 0, &v[0], base, false);
    assert!(
        (home - other - 3.0 * 10.0 / 12.0).abs() < 1e-9,
        "{home} {other}"
    );
    // Busier, it still keeps the conversation: the history outweighs a short queue.
    v[1].load.waiting = Some(3);
    v[1].load.kv_cache = Some(0.3);
    assert_eq!(winner(&pick(&c, &v, 52, &NO_LORA, 0)), 1);
    let same = [v[0]; 3];
    assert!(matches!(
        pick(&c, &same, 52, &NO_LORA, 0),
        Decision::Route {
            reason: Reason::Load,
            ..
        }
    ));
}
