//! Shared records over the mock host: two "workers" share one store; an endpoint record merges
//! each worker's in-flight count, reports and cool-offs under compare-and-swap, and forgets a dead
//! worker's count; the prefix table finds routed prefixes to the block, forgets what an endpoint
//! has since evicted, and writes nothing for a prefix that is already fresh; sessions bind and
//! expire.

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

fn publish(host: &MockHost, key: &str, p: Publish, now: u64) -> EndpointRecord {
    publish_endpoint(host, key, None, &p, now).unwrap()
}

fn read(host: &MockHost, key: &str) -> EndpointRecord {
    read_endpoint(host, key).unwrap().0
}

const S: u64 = 1_000_000_000;

#[test]
fn an_endpoint_record_round_trips_and_a_foreign_one_reads_as_empty() {
    let r = EndpointRecord {
        down_until: 7,
        load: LoadReport {
            kv_cache: Some(0.42),
            waiting: Some(3),
            running: None,
        },
        load_at: 9,
        seq: 1 << 40,
        workers: vec![
            WorkerCount {
                id: 1,
                in_flight: 2,
                at: 5,
            },
            WorkerCount {
                id: 9,
                in_flight: 1,
                at: 6,
            },
        ],
    };
    assert_eq!(EndpointRecord::decode(&r.encode()), r);
    assert_eq!(
        EndpointRecord::decode(b"\x02garbage"),
        EndpointRecord::default()
    );
    assert_eq!(EndpointRecord::decode(&[]), EndpointRecord::default());
    let mut cut = r.encode();
    cut.truncate(cut.len() - 3);
    assert_eq!(EndpointRecord::decode(&cut), EndpointRecord::default());
}

#[test]
fn a_load_report_published_by_one_worker_is_read_by_the_other_until_it_is_stale() {
    let c = config("");
    let (a, b) = two_workers();
    let k = &c.keys.endpoint[1];
    let report = LoadReport {
        kv_cache: Some(0.42),
        waiting: Some(3),
        running: None,
    };
    let p = Publish {
        worker: 1,
        report: Some((report, 1_000)),
        ..Publish::default()
    };
    publish(&a, k, p, 1_000);
    let got = read(&b, k).fresh_load(1_500, 1_000);
    assert_eq!(got.waiting, Some(3));
    assert_eq!(got.running, None);
    assert!((got.kv_cache.unwrap() - 0.42).abs() < 1e-9);
    assert!(read(&b, k).fresh_load(2_001, 1_000).is_empty(), "stale");
    assert!(read(&b, &c.keys.endpoint[0])
        .fresh_load(0, 1_000)
        .is_empty());
    // An older report arriving later does not replace a newer one.
    let old = Publish {
        worker: 2,
        report: Some((LoadReport::default(), 900)),
        ..Publish::default()
    };
    publish(&b, k, old, 1_100);
    assert_eq!(read(&a, k).load_at, 1_000);
}

#[test]
fn in_flight_is_the_sum_of_the_live_workers_entries() {
    let c = config("");
    let (a, b) = two_workers();
    let k = &c.keys.endpoint[0];
    let count = |w, n| Publish {
        worker: w,
        in_flight: n,
        ..Publish::default()
    };
    publish(&a, k, count(1, 2), S);
    publish(&b, k, count(2, 3), S);
    let r = read(&a, k);
    assert_eq!(r.in_flight_of_others(1, S), 3, "worker 1 sees worker 2's");
    assert_eq!(r.in_flight_of_others(0, S), 5, "an outsider sees both");
    // Worker 1 finishes its requests: its entry goes (a count, not a delta: never below 0).
    publish(&a, k, count(1, 0), 2 * S);
    assert_eq!(read(&b, k).workers.len(), 1);
    assert_eq!(read(&b, k).in_flight_of_others(0, 2 * S), 3);
}

#[test]
fn a_dead_workers_requests_in_flight_stop_counting_after_the_ttl() {
    let c = config("");
    let (a, b) = two_workers();
    let k = &c.keys.endpoint[0];
    let p = Publish {
        worker: 7,
        in_flight: 4,
        ..Publish::default()
    };
    publish(&a, k, p, S);
    // Worker 7's VM dies with four requests counted; nothing counts them out.
    let r = read(&b, k);
    assert_eq!(r.in_flight_of_others(1, S + WORKER_TTL_NS - 1), 4);
    assert_eq!(r.in_flight_of_others(1, S + WORKER_TTL_NS), 0, "expired");
    // The next worker that writes drops the dead entry.
    let q = Publish {
        worker: 8,
        in_flight: 1,
        ..Publish::default()
    };
    let after = publish(&b, k, q, S + WORKER_TTL_NS);
    assert_eq!(
        after.workers.iter().map(|w| w.id).collect::<Vec<_>>(),
        vec![8]
    );
}

#[test]
fn stamps_far_in_the_future_are_not_believed() {
    let c = config("");
    let (a, b) = two_workers();
    let k = &c.keys.endpoint[0];
    let now = 10 * S;
    let ahead = now + FUTURE_SLACK_NS + 1;
    // A garbled record: a worker entry and a load report stamped past the slack.
    let garbled = Publish {
        worker: 5,
        in_flight: 9,
        report: Some((
            LoadReport {
                waiting: Some(50),
                ..LoadReport::default()
            },
            ahead,
        )),
        ..Publish::default()
    };
    publish(&a, k, garbled, ahead);
    let r = read(&b, k);
    assert_eq!(
        r.in_flight_of_others(1, now),
        0,
        "the entry never expires if believed"
    );
    assert!(
        r.fresh_load(now, S).is_empty(),
        "the report would never go stale"
    );
    // Within the slack both count (another worker read the clock a moment later).
    assert_eq!(r.in_flight_of_others(1, ahead - 1), 9);
    assert_eq!(r.fresh_load(ahead - 1, S).waiting, Some(50));
    // A real report replaces the garbled one although it is "older"; the entry is dropped.
    let real = Publish {
        worker: 1,
        report: Some((
            LoadReport {
                waiting: Some(2),
                ..LoadReport::default()
            },
            now,
        )),
        ..Publish::default()
    };
    let after = publish(&b, k, real, now);
    assert_eq!(after.fresh_load(now, S).waiting, Some(2));
    assert!(after.workers.is_empty());
    // A cool-off deadline beyond any configurable cool-off is replaced, not kept as the later.
    let far = now + MAX_COOL_OFF_MS * 1_000_000 + FUTURE_SLACK_NS + 1;
    let down = |until| Publish {
        worker: 1,
        health: Health::DownUntil(until),
        ..Publish::default()
    };
    assert_eq!(publish(&a, k, down(far), now).down_until, far);
    assert!(!believable_deadline(far, now));
    assert_eq!(publish(&b, k, down(now + S), now).down_until, now + S);
    assert_eq!(
        publish(&a, k, down(now + 2), now).down_until,
        now + S,
        "the later one"
    );
}

#[test]
fn a_publish_with_a_stale_version_retries_and_keeps_the_other_workers_entry() {
    let c = config("");
    let (a, b) = two_workers();
    let k = &c.keys.endpoint[0];
    let (seen, cas) = read_endpoint(&a, k).unwrap();
    // Worker 2 writes between worker 1's read and its write.
    let p2 = Publish {
        worker: 2,
        in_flight: 1,
        seq_delta: 10,
        ..Publish::default()
    };
    publish(&b, k, p2, S);
    let p1 = Publish {
        worker: 1,
        in_flight: 2,
        seq_delta: 5,
        ..Publish::default()
    };
    let stored = publish_endpoint(&a, k, Some((&seen, kv::write_cas(cas))), &p1, S).unwrap();
    assert_eq!(
        stored.in_flight_of_others(0, S),
        3,
        "worker 2 created the record since worker 1's read: a conflict, then a merge"
    );
    assert_eq!(stored.seq, 15);
    let (seen, cas) = read_endpoint(&a, k).unwrap();
    publish(&b, k, p2, 2 * S);
    let p3 = Publish {
        worker: 1,
        in_flight: 3,
        seq_delta: 1,
        ..Publish::default()
    };
    let stored = publish_endpoint(&a, k, Some((&seen, cas.unwrap())), &p3, 2 * S).unwrap();
    assert_eq!(
        stored.in_flight_of_others(0, 2 * S),
        4,
        "1 from worker 2, 3 from worker 1"
    );
    assert_eq!(read(&b, k), stored);
}

#[test]
fn a_cool_off_keeps_the_later_deadline_and_ends_when_the_endpoint_answers() {
    let c = config("");
    let h = MockHost::default();
    let k = &c.keys.endpoint[0];
    let down = |until| Publish {
        worker: 1,
        health: Health::DownUntil(until),
        ..Publish::default()
    };
    publish(&h, k, down(100), 1);
    publish(&h, k, down(50), 2);
    assert_eq!(read(&h, k).down_until, 100);
    let up = Publish {
        worker: 1,
        health: Health::Up,
        ..Publish::default()
    };
    publish(&h, k, up, 3);
    assert_eq!(read(&h, k).down_until, 0);
}

/// One request routed to `e` through a fresh table (as the filter does): look up, move `e`'s
/// sequence on by the blocks it lacked, record. The lookup's matches.
fn route(h: &MockHost, c: &Config, seqs: &mut [u64], e: usize, hashes: &[u64]) -> Vec<usize> {
    let mut t = PrefixTable::new(h, c, &c.keys);
    let found = t.lookup(hashes, seqs);
    seqs[e] += (hashes.len() - found.matched[e]) as u64;
    t.record(e, hashes, &found, seqs[e]);
    found.matched
}

fn matched(h: &MockHost, c: &Config, seqs: &[u64], hashes: &[u64]) -> Vec<usize> {
    PrefixTable::new(h, c, &c.keys).lookup(hashes, seqs).matched
}

#[test]
fn the_prefix_table_finds_the_endpoint_a_prefix_was_routed_to_to_the_block() {
    let c = config("");
    let (a, b) = two_workers();
    let mut seqs = vec![0, 0];
    let hashes: Vec<u64> = (11..=30).collect();
    assert_eq!(route(&a, &c, &mut seqs, 1, &hashes), vec![0, 0]);
    // Another worker, a request sharing the first 13 blocks (inside the second chunk).
    let mut other: Vec<u64> = (11..=23).collect();
    other.extend([99, 100, 101]);
    assert_eq!(
        matched(&b, &c, &seqs, &other),
        vec![0, 9],
        "the chunk's first block is proven, not the rest"
    );
    // A request extending the routed one: every block of it, exactly.
    let mut longer = hashes.clone();
    longer.extend(500..520);
    assert_eq!(matched(&b, &c, &seqs, &longer), vec![0, 20]);
    // A shorter one ending inside a routed chunk: its first block of that chunk.
    assert_eq!(matched(&b, &c, &seqs, &hashes[..12]), vec![0, 9]);
    assert_eq!(
        matched(&b, &c, &seqs, &hashes[..16]),
        vec![0, 16],
        "whole chunks"
    );
}

#[test]
fn a_conversations_next_turn_is_matched_exactly_and_costs_at_most_two_writes() {
    let c = config("");
    let h = MockHost::default();
    let mut seqs = vec![0, 0];
    let turn1: Vec<u64> = (1..=27).collect();
    route(&h, &c, &mut seqs, 0, &turn1);
    let mut turn2 = turn1.clone();
    turn2.extend(100..108);
    let versions = |h: &MockHost| -> std::collections::BTreeMap<String, u32> {
        h.shared
            .borrow()
            .iter()
            .map(|(k, (_, v))| (k.clone(), *v))
            .collect()
    };
    let before = versions(&h);
    assert_eq!(route(&h, &c, &mut seqs, 0, &turn2), vec![27, 0]);
    let after = versions(&h);
    let written = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .count();
    assert!(written <= 2, "{written} slots written");
    assert_eq!(matched(&h, &c, &seqs, &turn2), vec![35, 0]);
}

#[test]
fn a_fresh_prefix_is_not_written_again() {
    let c = config("");
    let h = MockHost::default();
    let hashes: Vec<u64> = (1..=20).collect();
    let mut seqs = vec![0, 0];
    route(&h, &c, &mut seqs, 0, &hashes);
    let versions: Vec<_> = h.shared.borrow().values().map(|(_, cas)| *cas).collect();
    assert_eq!(route(&h, &c, &mut seqs, 0, &hashes)[0], 20);
    let after: Vec<_> = h.shared.borrow().values().map(|(_, cas)| *cas).collect();
    assert_eq!(versions, after, "nothing rewritten");
    assert_eq!(seqs[0], 20, "and nothing new loaded");
}

#[test]
fn blocks_older_than_the_capacity_count_as_evicted() {
    let c = config(r#", "prefix": {"capacityBlocks": 8}"#);
    let h = MockHost::default();
    let mut seqs = vec![0, 0];
    let first: Vec<u64> = (1..=4).collect();
    route(&h, &c, &mut seqs, 0, &first);
    assert_eq!(matched(&h, &c, &seqs, &first)[0], 4);
    // Ten other blocks go to endpoint 0: its cache of 8 has pushed the first prompt out.
    let other: Vec<u64> = (100..110).collect();
    route(&h, &c, &mut seqs, 0, &other);
    assert_eq!(matched(&h, &c, &seqs, &first)[0], 0);
    assert_eq!(matched(&h, &c, &seqs, &other)[0], 10);
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
fn chunks_sharing_a_slot_do_not_evict_each_other() {
    // One slot for the whole table: every chunk collides.
    let c = config(r#", "prefix": {"tableSlots": 1}"#);
    let h = MockHost::default();
    let mut seqs = vec![0, 0];
    for (e, hash) in [(0, 11u64), (1, 22), (0, 33), (1, 44)] {
        route(&h, &c, &mut seqs, e, &[hash]);
    }
    assert_eq!(matched(&h, &c, &seqs, &[11]), vec![1, 0]);
    assert_eq!(matched(&h, &c, &seqs, &[44]), vec![0, 1]);
    // A fifth chunk evicts the least recently written.
    route(&h, &c, &mut seqs, 0, &[55]);
    assert_eq!(matched(&h, &c, &seqs, &[11]), vec![0, 0]);
    assert_eq!(matched(&h, &c, &seqs, &[22]), vec![0, 1]);
}

#[test]
fn long_prompts_are_matched_to_the_exact_block_on_each_endpoint() {
    let c = config("");
    let h = MockHost::default();
    let mut seqs = vec![0, 0];
    let long: Vec<u64> = (1..=200).collect();
    route(&h, &c, &mut seqs, 0, &long);
    let short: Vec<u64> = (1..=44).collect();
    route(&h, &c, &mut seqs, 1, &short);
    // 150 shared blocks, then the request goes its own way (inside a chunk: its first block).
    let mut request: Vec<u64> = (1..=150).collect();
    request.extend(1000..1050);
    assert_eq!(matched(&h, &c, &seqs, &request), vec![145, 44]);
    assert_eq!(matched(&h, &c, &seqs, &long), vec![200, 44]);
    assert_eq!(
        matched(&h, &c, &seqs, &[5000, 5001, 5002]),
        vec![0, 0],
        "never routed"
    );
}

#[test]
fn a_long_prompt_costs_a_few_reads() {
    let c = config("");
    let h = MockHost::default();
    let mut seqs = vec![0, 0];
    let long: Vec<u64> = (1..=256).collect();
    route(&h, &c, &mut seqs, 0, &long);
    let mut t = PrefixTable::new(&h, &c, &c.keys);
    let mut next = long[..250].to_vec();
    next.extend(900..906);
    let found = t.lookup(&next, &seqs);
    assert_eq!(
        found.matched,
        vec![249, 0],
        "diverged inside a chunk: its first block"
    );
    assert!(t.reads.len() <= 7, "{} slots read", t.reads.len());
}
