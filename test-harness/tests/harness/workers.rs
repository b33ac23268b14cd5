//! Several worker VMs of one plugin: shared data with CAS, shared queues and ticks on a virtual clock.
// Test code: helpers outside #[test] functions may unwrap and panic like the tests do.

use crate::common::*;
use aigw_harness::{Env, Plugin, PluginSpec};
use std::time::Duration;

#[test]
fn two_workers_see_each_others_shared_data() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, PluginSpec::new(guest()), 2).unwrap();
    let vm0 = p.worker(0);
    let s = vm0.create_stream().unwrap();
    vm0.request_headers(s, with(req("shared"), "x-shared-value", "from-0"), true)
        .unwrap();
    let vm1 = p.worker(1);
    let s = vm1.create_stream().unwrap();
    vm1.request_headers(s, with(req("shared"), "x-shared-value", "from-1"), true)
        .unwrap();
    let w1: Vec<String> = p
        .logs()
        .into_iter()
        .filter(|l| l.worker == 1)
        .map(|l| l.message)
        .collect();
    assert!(w1.contains(&"shared counter: 2".to_string()), "{w1:#?}");
    assert_eq!(
        env.shared_data("aigw-test-guest", "k").map(|v| v.0),
        Some(b"from-1".to_vec())
    );
}

#[test]
fn a_stale_cas_is_rejected_with_cas_mismatch() {
    let env = Env::new();
    let mut p = load(&env, "", aigw_harness::Profile::Envoy);
    let vm = p.worker(0);
    let s = vm.create_stream().unwrap();
    vm.request_headers(s, with(req("shared"), "x-shared-value", "v1"), true)
        .unwrap();
    assert!(logged(&p, "shared set: Ok(())"));
    assert!(logged(&p, "shared stale cas: Err(CasMismatch)"));
    assert!(logged(&p, "shared now: Some(\"v1\")"));
}

#[test]
fn an_enqueued_item_reaches_the_worker_that_registered_the_queue() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, PluginSpec::new(guest()).config("queue"), 2).unwrap();
    let vm0 = p.worker(0);
    let s = vm0.create_stream().unwrap();
    vm0.request_headers(s, with(req("queue"), "x-queue-value", "hello"), true)
        .unwrap();
    assert!(
        logged(&p, "enqueue to Some(1): Some(Ok(()))"),
        "{:#?}",
        p.logs()
    );
    p.deliver_queue_notifications().unwrap();
    let got: Vec<_> = p
        .logs()
        .into_iter()
        .filter(|l| l.message == "queue item: hello")
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].worker, 1, "the last registration owns the queue");
    assert!(logged(&p, "dequeue unknown queue: NotFound"));
}

#[test]
fn advancing_the_clock_fires_each_workers_tick_once_per_period() {
    let env = Env::new();
    let mut p = Plugin::load_workers(&env, PluginSpec::new(guest()).config("tick=100"), 2).unwrap();
    assert_eq!(p.advance(Duration::from_millis(99)).unwrap(), 0);
    assert!(!logged(&p, "tick 1"));
    assert_eq!(p.advance(Duration::from_millis(251)).unwrap(), 6);
    assert_eq!(
        env.shared_data("aigw-test-guest", "ticks").map(|v| v.0),
        Some(b"6".to_vec())
    );
    let start_ms = aigw_harness::CLOCK_START_NS / 1_000_000;
    assert!(
        logged(&p, &format!("tick 3 at {}", start_ms + 300)),
        "{:#?}",
        p.logs()
    );
}
