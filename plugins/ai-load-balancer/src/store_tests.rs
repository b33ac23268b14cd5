//! Shared records over the mock host: two "workers" share one store; load reports age out; the
//! prefix table finds routed prefixes, forgets what an endpoint has since evicted, and writes
//! nothing for a prefix that is already fresh; sessions bind and expire.

use super::*;
use crate::config::Config;
use aigw_shared::mock::MockHost;

fn config(extra: &str) -> Config {
    let json = format!(
        r#"{{"endpoints": [{{"address": "10.0.0.1:8000"}}, {{"address": "10.0.0.2:8000"}}]{extra}}}"#
    );
    Config::from_json(&serde_json::from_str(&json).unwrap()).unwrap()
}

fn two_workers() -> (MockHost, MockHost) {
    let a = MockHost::default();
    let b = MockHost {
        shared: a.shared.clone(),
        ..MockHost::default()
    };
    (a, b)
}

#[test]
fn a_load_report_written_by_one_worker_is_read_by_the_other_until_it_is_stale() {
    let c = config("");
    let (a, b) = two_workers();
    let r = LoadReport {
        kv_cache: Some(0.42),
        waiting: Some(3),
        running: None,
    };
    put_load(&a, &c.keys.load[1], &r, 1_000);
    let got = get_load(&b, &c.keys.load[1], 1_500, 1_000);
    assert_eq!(got.waiting, Some(3));
    assert_eq!(got.running, None);
    assert!((got.kv_cache.unwrap() - 0.42).abs() < 1e-9);
    assert!(
        get_load(&b, &c.keys.load[1], 2_001, 1_000).is_empty(),
        "stale"
    );
    assert!(
        get_load(&b, &c.keys.load[0], 0, 1_000).is_empty(),
        "never reported"
    );
}

#[test]
fn in_flight_counts_across_workers_and_never_reads_negative() {
    let c = config("");
    let (a, b) = two_workers();
    add_in_flight(&a, &c.keys.in_flight[0], 1).unwrap();
    add_in_flight(&b, &c.keys.in_flight[0], 1).unwrap();
    assert_eq!(in_flight(&a, &c.keys.in_flight[0]), 2);
    add_in_flight(&b, &c.keys.in_flight[0], -3).unwrap();
    assert_eq!(in_flight(&a, &c.keys.in_flight[0]), 0);
}

#[test]
fn a_cool_off_ends_at_its_deadline_or_when_the_endpoint_answers() {
    let c = config("");
    let h = MockHost::default();
    let k = &c.keys.health[0];
    assert!(healthy(&h, k, 5));
    mark_down(&h, k, 100);
    assert!(!healthy(&h, k, 99));
    assert!(healthy(&h, k, 100));
    mark_up(&h, k);
    assert!(healthy(&h, k, 0));
}

#[test]
fn the_prefix_table_finds_the_endpoint_a_prefix_was_routed_to() {
    let c = config("");
    let (a, b) = two_workers();
    let hashes = [11u64, 22, 33, 44];
    let mut t = PrefixTable::new(&a, &c, &c.keys);
    let found = t.lookup(&hashes);
    assert_eq!(found.matched, vec![0, 0]);
    t.record(1, &hashes, &found);
    // Another worker, a request sharing the first three blocks.
    let mut t = PrefixTable::new(&b, &c, &c.keys);
    let found = t.lookup(&[11, 22, 33, 99, 100]);
    assert_eq!(found.matched, vec![0, 3]);
}

#[test]
fn a_fresh_prefix_is_not_written_again() {
    let c = config("");
    let h = MockHost::default();
    let hashes: Vec<u64> = (1..=20).collect();
    let mut t = PrefixTable::new(&h, &c, &c.keys);
    let found = t.lookup(&hashes);
    t.record(0, &hashes, &found);
    let versions: Vec<_> = h.shared.borrow().values().map(|(_, cas)| *cas).collect();
    let found = t.lookup(&hashes);
    assert_eq!(found.matched[0], 20);
    t.record(0, &hashes, &found);
    let after: Vec<_> = h.shared.borrow().values().map(|(_, cas)| *cas).collect();
    assert_eq!(versions, after, "nothing rewritten, not even the sequence");
}

#[test]
fn blocks_older_than_the_capacity_count_as_evicted() {
    let c = config(r#", "prefix": {"capacityBlocks": 8}"#);
    let h = MockHost::default();
    let mut t = PrefixTable::new(&h, &c, &c.keys);
    let first: Vec<u64> = (1..=4).collect();
    let found = t.lookup(&first);
    t.record(0, &first, &found);
    assert_eq!(t.lookup(&first).matched[0], 4);
    // Ten other blocks go to endpoint 0: its cache of 8 has pushed the first prompt out.
    let other: Vec<u64> = (100..110).collect();
    let found = t.lookup(&other);
    t.record(0, &other, &found);
    assert_eq!(t.lookup(&first).matched[0], 0);
    assert_eq!(t.lookup(&other).matched[0], 10);
}

#[test]
fn sessions_bind_expire_and_keep_ids_out_of_the_store() {
    let c = config(r#", "session": {"ttlSeconds": 10}"#);
    let h = MockHost::default();
    let mut s = Sessions::new(&h, &c, &c.keys);
    let id = session_hash(b"user-42");
    assert_eq!(s.get(id, 0), None);
    s.bind(id, 1, 1_000);
    assert_eq!(s.get(id, 2_000).map(|x| x.0), Some(1));
    assert_eq!(s.get(id, 1_000 + 10_000_000_000), None, "expired");
    assert_eq!(s.get(session_hash(b"user-43"), 2_000), None);
    let stored = h.shared.borrow();
    assert!(stored
        .values()
        .all(|(v, _)| !v.windows(7).any(|w| w == b"user-42")));
}

#[test]
fn blocks_sharing_a_slot_do_not_evict_each_other() {
    // One slot for the whole table: every block collides.
    let c = config(r#", "prefix": {"tableSlots": 1}"#);
    let h = MockHost::default();
    let mut t = PrefixTable::new(&h, &c, &c.keys);
    for (e, hash) in [(0, 11u64), (1, 22), (0, 33), (1, 44)] {
        let found = t.lookup(&[hash]);
        t.record(e, &[hash], &found);
    }
    assert_eq!(t.lookup(&[11]).matched, vec![1, 0]);
    assert_eq!(t.lookup(&[44]).matched, vec![0, 1]);
    // A fifth hash evicts the least recently written.
    let found = t.lookup(&[55]);
    t.record(0, &[55], &found);
    assert_eq!(t.lookup(&[11]).matched, vec![0, 0]);
    assert_eq!(t.lookup(&[22]).matched, vec![0, 1]);
}

#[test]
fn long_prompts_are_matched_to_the_exact_block_on_each_endpoint() {
    let c = config("");
    let h = MockHost::default();
    let mut t = PrefixTable::new(&h, &c, &c.keys);
    let long: Vec<u64> = (1..=200).collect();
    let found = t.lookup(&long);
    t.record(0, &long, &found);
    let short: Vec<u64> = (1..=40).collect();
    let found = t.lookup(&short);
    t.record(1, &short, &found);
    // 150 shared blocks, then the request goes its own way.
    let mut request: Vec<u64> = (1..=150).collect();
    request.extend(1000..1050);
    assert_eq!(t.lookup(&request).matched, vec![150, 40]);
    assert_eq!(t.lookup(&long).matched, vec![200, 40]);
    assert_eq!(
        t.lookup(&[5000, 5001, 5002]).matched,
        vec![0, 0],
        "never routed"
    );
}
