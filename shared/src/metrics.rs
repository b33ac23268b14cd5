//! Metrics with stable names: defined once per name, recorded by id, failures logged not raised.
//!
//! Naming convention (Envoy shows these as `wasmcustom.<name>`; `envoy-configs/` ships the stats
//! tag regexes that turn the `.key.value` pairs into Prometheus labels):
//! `aigw.<plugin>.<metric>` or `aigw.<plugin>.<key>.<value>.<metric>` with label values free of dots.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::host::{Host, LogLevel, MetricKind};

/// A cache of metric ids by full name, kept per VM (on the root or in a thread-local).
#[derive(Debug, Default)]
pub struct Metrics {
    ids: RefCell<HashMap<String, u32>>,
}

impl Metrics {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of metric `name` (defined on first use); `None` when the host refuses it (logged
    /// at debug). Callers that record one name often keep the id.
    pub fn id(&self, host: &dyn Host, kind: MetricKind, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.borrow().get(name) {
            return Some(*id);
        }
        match host.define_metric(kind, name) {
            Ok(id) => {
                self.ids.borrow_mut().insert(name.to_owned(), id);
                Some(id)
            }
            Err(e) => {
                host.log(LogLevel::Debug, &format!("metric {name} unavailable: {e}"));
                None
            }
        }
    }

    /// Add `delta` (> 0) to a counter.
    pub fn count(&self, host: &dyn Host, name: &str, delta: u64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(host, MetricKind::Counter, name) {
            let _ = host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
        }
    }

    /// Record a histogram sample.
    pub fn observe(&self, host: &dyn Host, name: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Histogram, name) {
            let _ = host.record_metric(id, value);
        }
    }

    /// Set a gauge.
    pub fn gauge(&self, host: &dyn Host, name: &str, value: u64) {
        if let Some(id) = self.id(host, MetricKind::Gauge, name) {
            let _ = host.record_metric(id, value);
        }
    }
}

/// Make a label value safe inside a dotted metric name (dots and spaces become `_`).
pub fn label(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    #[test]
    fn counters_are_defined_once_and_accumulate() {
        let host = MockHost::default();
        let m = Metrics::new();
        m.count(&host, "aigw.x.requests", 1);
        m.count(&host, "aigw.x.requests", 2);
        m.count(&host, "aigw.x.requests", 0);
        assert_eq!(host.metric_value("aigw.x.requests"), Some(3));
        assert_eq!(host.state.borrow().metrics.len(), 1);
    }

    #[test]
    fn labels_lose_their_dots() {
        assert_eq!(label("gpt-4o.mini v2"), "gpt-4o_mini_v2");
    }
}
