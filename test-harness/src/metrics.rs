//! Metrics with Envoy semantics (counter, gauge, histogram), shared by every worker.

use crate::abi::Status;
use std::collections::BTreeMap;

/// Metric kinds (`proxy_metric_type_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// COUNTER (0).
    Counter,
    /// GAUGE (1).
    Gauge,
    /// HISTOGRAM (2).
    Histogram,
}

impl MetricKind {
    /// Decodes the ABI value.
    pub fn from_raw(raw: i32) -> Option<MetricKind> {
        match raw {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }

    fn tag(self) -> u32 {
        match self {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        }
    }
}

/// One metric's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    /// Counter total.
    Counter(u64),
    /// Gauge value.
    Gauge(i64),
    /// Every recorded histogram sample in order.
    Histogram(Vec<u64>),
}

/// The metric store: values by name (shared) and ids per VM (cpp-host numbering).
#[derive(Debug, Default)]
pub(crate) struct MetricStore {
    values: BTreeMap<String, MetricValue>,
}

impl MetricStore {
    pub(crate) fn define(&mut self, kind: MetricKind, name: &str) {
        self.values.entry(name.to_string()).or_insert(match kind {
            MetricKind::Counter => MetricValue::Counter(0),
            MetricKind::Gauge => MetricValue::Gauge(0),
            MetricKind::Histogram => MetricValue::Histogram(Vec::new()),
        });
    }

    pub(crate) fn increment(&mut self, name: &str, delta: i64) -> Status {
        match self.values.get_mut(name) {
            Some(MetricValue::Counter(v)) if delta > 0 => {
                *v = v.saturating_add(delta as u64);
                Status::Ok
            }
            Some(MetricValue::Counter(_)) | Some(MetricValue::Histogram(_)) => Status::BadArgument,
            Some(MetricValue::Gauge(v)) => {
                *v = v.saturating_add(delta);
                Status::Ok
            }
            None => Status::NotFound,
        }
    }

    pub(crate) fn record(&mut self, name: &str, value: u64) -> Status {
        match self.values.get_mut(name) {
            Some(MetricValue::Counter(v)) => *v = v.saturating_add(value),
            Some(MetricValue::Gauge(v)) => *v = value as i64,
            Some(MetricValue::Histogram(s)) => s.push(value),
            None => return Status::NotFound,
        }
        Status::Ok
    }

    pub(crate) fn get(&self, name: &str) -> Result<u64, Status> {
        match self.values.get(name) {
            Some(MetricValue::Counter(v)) => Ok(*v),
            Some(MetricValue::Gauge(v)) => Ok(*v as u64),
            Some(MetricValue::Histogram(_)) => Err(Status::BadArgument),
            None => Err(Status::NotFound),
        }
    }

    pub(crate) fn value(&self, name: &str) -> Option<MetricValue> {
        self.values.get(name).cloned()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }
}

/// Per-VM metric ids: steps of 4 per kind with the kind in the low two bits (4, 8, ... / 5, 9, ...).
#[derive(Debug, Default)]
pub(crate) struct MetricIds {
    next_counter: u32,
    next_gauge: u32,
    next_histogram: u32,
    by_id: BTreeMap<u32, (MetricKind, String)>,
}

impl MetricIds {
    pub(crate) fn allocate(&mut self, kind: MetricKind, name: &str) -> u32 {
        let slot = match kind {
            MetricKind::Counter => &mut self.next_counter,
            MetricKind::Gauge => &mut self.next_gauge,
            MetricKind::Histogram => &mut self.next_histogram,
        };
        *slot += 4;
        let id = *slot + kind.tag();
        self.by_id.insert(id, (kind, name.to_string()));
        id
    }

    pub(crate) fn name(&self, id: u32) -> Option<&str> {
        self.by_id.get(&id).map(|(_, n)| n.as_str())
    }
}
