//! Two workers' views over one mock store: a worker sees its own changes at once and another
//! worker's within the cache period; an idle worker's changes go out on its tick; a worker whose
//! requests outlive the in-flight TTL keeps its entry alive; a publish after a read is one write.

use super::*;
use aigw_shared::mock::MockHost;

const MS: u64 = 1_000_000;

fn config() -> Rc<Config> {
    let json = r#"{"endpoints": [{"address": "10.0.0.1:8000"}, {"address": "10.0.0.2:8000"}]}"#;
    Rc::new(Config::from_json(&serde_json::from_str(json).unwrap()).unwrap())
}

fn two_workers() -> (MockHost, MockHost) {
    let a = MockHost::default();
    let b = MockHost {
        shared: a.shared.clone(),
        ..MockHost::default()
    };
    (a, b)
}

/// A worker: its view and the slots of `c`'s endpoints.
fn worker(c: &Rc<Config>) -> (Fleet, Rc<[usize]>) {
    let f = Fleet::new([c]);
    let s = f.slots(c);
    (f, s)
}

/// `n` requests on worker `f` at `now`, all to `slot`: read, pick, publish with the read.
fn send(f: &Fleet, h: &MockHost, slots: &[usize], now: u64, slot: usize, n: usize) {
    let read = f.refresh(h, now, slots, 5 * MS);
    for _ in 0..n {
        f.picked(slot, 0);
    }
    f.publish_read(h, now, slots, read);
}

/// What a request on worker `f` at `now` would see of endpoint 0 (refreshing as the filter does).
fn in_flight_seen(f: &Fleet, h: &MockHost, slots: &[usize], now: u64) -> u32 {
    f.refresh(h, now, slots, 5 * MS);
    f.seen(slots[0], now, u64::MAX).in_flight
}

#[test]
fn own_changes_count_at_once_another_workers_within_the_cache_period() {
    let c = config();
    let (ha, hb) = two_workers();
    let (a, sa) = worker(&c);
    let (b, sb) = worker(&c);
    let t0 = 1_000 * MS;
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0), 0, "b has read the record");
    // A request on a: read, pick, publish with the read.
    let read = a.refresh(&ha, t0, &sa, 5 * MS);
    a.picked(sa[0], 10);
    assert_eq!(
        a.seen(sa[0], t0, u64::MAX).in_flight,
        1,
        "a's own pick, at once"
    );
    a.publish_read(&ha, t0, &sa, read);
    // b's cache is younger than 5 ms: it does not see it yet...
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 4 * MS), 0);
    // ...and does once the period is over.
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 5 * MS), 1);
    assert_eq!(
        b.seen(sb[0], t0 + 5 * MS, u64::MAX).seq,
        10,
        "the blocks too"
    );
    // a's second pick within its cache period is not published...
    a.refresh(&ha, t0 + MS, &sa, 5 * MS);
    a.picked(sa[0], 0);
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 11 * MS), 1);
    // ...until a's tick.
    a.on_tick(&ha, t0 + 12 * MS);
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 17 * MS), 2);
}

#[test]
fn an_end_is_published_when_the_store_would_count_too_many() {
    let c = config();
    let (ha, hb) = two_workers();
    let (a, sa) = worker(&c);
    let (b, sb) = worker(&c);
    let t0 = 1_000 * MS;
    send(&a, &ha, &sa, t0, sa[0], 3);
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0), 3);
    // A pick within a's cache period is not published, so the end after it needs no write...
    a.refresh(&ha, t0 + MS, &sa, 5 * MS);
    a.picked(sa[0], 0);
    a.finished(&ha, sa[0], t0 + 2 * MS);
    assert_eq!(
        in_flight_seen(&b, &hb, &sb, t0 + 5 * MS),
        3,
        "3 in flight, 3 counted"
    );
    // ...but one more end would leave the store counting too many: written at once.
    a.finished(&ha, sa[0], t0 + 6 * MS);
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 10 * MS), 2);
    a.finished(&ha, sa[0], t0 + 7 * MS);
    a.finished(&ha, sa[0], t0 + 8 * MS);
    assert_eq!(in_flight_seen(&b, &hb, &sb, t0 + 15 * MS), 0);
    // A request that never got an answer (reset) still counts out.
    send(&a, &ha, &sa, t0 + 20 * MS, sa[1], 1);
    a.finished(&ha, sa[1], 0);
    b.refresh(&hb, t0 + 25 * MS, &sb, 5 * MS);
    assert_eq!(b.seen(sb[1], t0 + 25 * MS, u64::MAX).in_flight, 0);
}

#[test]
fn a_busy_endpoints_ends_are_batched_within_an_eighth() {
    let c = config();
    let (ha, hb) = two_workers();
    let (a, sa) = worker(&c);
    let (b, sb) = worker(&c);
    let t0 = 1_000 * MS;
    send(&a, &ha, &sa, t0, sa[0], 40);
    let version = |h: &MockHost| h.shared.borrow()[&c.keys.endpoint[0]].1;
    let mut writes = 0;
    for i in 0..40u64 {
        let before = version(&ha);
        a.finished(&ha, sa[0], t0 + (i + 1) * MS / 10);
        writes += usize::from(version(&ha) != before);
        // b's cache expired: it sees what a last published.
        let counted = in_flight_seen(&b, &hb, &sb, t0 + (i + 1) * 5 * MS);
        let real = a.seen(sa[0], t0, u64::MAX).in_flight;
        assert!(counted >= real, "{counted} counted, {real} in flight");
        assert!(
            counted - real <= counted / 8,
            "{counted} counted, {real} in flight"
        );
    }
    assert_eq!(a.seen(sa[0], t0, u64::MAX).in_flight, 0);
    assert!(writes <= 20, "{writes} writes for 40 ends");
    assert!(writes >= 8, "{writes} writes for 40 ends");
}

#[test]
fn an_idle_workers_report_goes_out_on_its_tick() {
    let c = config();
    let (ha, hb) = two_workers();
    let (a, sa) = worker(&c);
    let (b, sb) = worker(&c);
    let t0 = 1_000 * MS;
    let report = LoadReport {
        kv_cache: None,
        waiting: Some(7),
        running: None,
    };
    a.learned(sa[1], report, t0);
    assert_eq!(
        a.seen(sa[1], t0, 2_000 * MS).load.waiting,
        Some(7),
        "a's own, at once"
    );
    b.refresh(&hb, t0 + 10 * MS, &sb, 5 * MS);
    assert_eq!(b.seen(sb[1], t0 + 10 * MS, 2_000 * MS).load.waiting, None);
    a.on_tick(&ha, t0 + 100 * MS);
    b.refresh(&hb, t0 + 110 * MS, &sb, 5 * MS);
    assert_eq!(
        b.seen(sb[1], t0 + 110 * MS, 2_000 * MS).load.waiting,
        Some(7)
    );
}

#[test]
fn a_live_workers_long_requests_do_not_expire() {
    let c = config();
    let (ha, hb) = two_workers();
    let (a, sa) = worker(&c);
    let (b, sb) = worker(&c);
    let t0 = 1_000 * MS;
    send(&a, &ha, &sa, t0, sa[0], 1);
    // Ten minutes of ticks, no other request: the entry is rewritten before it expires.
    let tick = u64::try_from(TICK.as_nanos()).unwrap();
    let mut now = t0;
    while now < t0 + 600_000 * MS {
        now += tick;
        a.on_tick(&ha, now);
        assert_eq!(
            in_flight_seen(&b, &hb, &sb, now),
            1,
            "at {} ms",
            (now - t0) / MS
        );
    }
    let writes = a.own_entry(sa[0]).map(|w| w.at);
    assert!(writes.is_some_and(|at| now - at < WORKER_TTL_NS / 4 + tick));
}

#[test]
fn a_publish_right_after_a_read_is_one_write() {
    let c = config();
    let h = MockHost::default();
    let (a, sa) = worker(&c);
    let t0 = 1_000 * MS;
    // Take the worker id first (a shared counter, once per worker).
    let read = a.refresh(&h, t0, &sa, 5 * MS);
    a.picked(sa[0], 3);
    a.publish_read(&h, t0, &sa, read);
    let version = |h: &MockHost| h.shared.borrow()[&c.keys.endpoint[0]].1;
    let before = version(&h);
    let read = a.refresh(&h, t0 + 5 * MS, &sa, 5 * MS);
    assert_eq!(read, 0b11, "both records read again");
    a.picked(sa[0], 2);
    a.publish_read(&h, t0 + 5 * MS, &sa, read);
    assert_eq!(version(&h), before + 1, "one write, no conflict, no retry");
    assert_eq!(
        store::read_endpoint(&h, &c.keys.endpoint[0]).unwrap().0.seq,
        5
    );
    // Nothing changed on the second endpoint: not written.
    assert!(!h.shared.borrow().contains_key(&c.keys.endpoint[1]));
}

#[test]
fn a_cool_off_deadline_beyond_any_configurable_one_does_not_keep_the_endpoint_out() {
    let c = config();
    let h = MockHost::default();
    let (f, s) = worker(&c);
    let now = 10_000 * MS;
    let down = |until| store::Publish {
        worker: 9,
        health: Health::DownUntil(until),
        ..store::Publish::default()
    };
    let key = &c.keys.endpoint[0];
    store::publish_endpoint(&h, key, None, &down(now + 5_000 * MS), now).unwrap();
    f.refresh(&h, now, &s, 0);
    assert!(
        !f.seen(s[0], now, u64::MAX).healthy,
        "a real cool-off holds"
    );
    let garbled = now + (store::MAX_COOL_OFF_MS + 2_000) * MS;
    let h2 = MockHost::default();
    store::publish_endpoint(&h2, key, None, &down(garbled), now).unwrap();
    let (f2, s2) = worker(&c);
    f2.refresh(&h2, now, &s2, 0);
    assert!(f2.seen(s2[0], now, u64::MAX).healthy);
}
