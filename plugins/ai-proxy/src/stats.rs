//! Metrics: plugin-wide counters and per-request series labelled by provider and model.
//!
//! Per-request names follow `aigw_shared::metrics`' convention,
//! `aigw.ai_proxy.provider.<provider>.model.<model>.<metric>`, so the `stats_tags` in
//! `envoy-configs/` turn them into the `provider` and `model` Prometheus labels. The model label is
//! the backend model (after mapping). Label values come from the config (provider names) and from
//! routed requests (model names); a VM keeps at most [`MAX_MODEL_LABELS`] distinct model labels and
//! reports the rest as `other`, so clients cannot grow the metric set without bound. Credentials
//! never appear in names.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use aigw_shared::host::{Host, MetricKind};
use aigw_shared::metrics::{label, Metrics};

/// Plugin-wide counter names (Envoy shows them as `wasmcustom.<name>`).
pub mod metric {
    /// Requests sent upstream unchanged in protocol (model/path/auth rewritten only).
    pub const FORWARDED: &str = "aigw.ai_proxy.forwarded";
    /// Requests translated between protocols.
    pub const TRANSLATED: &str = "aigw.ai_proxy.translated";
    /// Requests answered locally with an error.
    pub const REJECTED: &str = "aigw.ai_proxy.rejected";
    /// `GET /v1/models` answered from config.
    pub const MODELS: &str = "aigw.ai_proxy.models_listed";
    /// Upstream error responses rewritten into the caller's shape.
    pub const UPSTREAM_ERRORS: &str = "aigw.ai_proxy.upstream_errors";
    /// Upstream bodies that ended early or could not be translated.
    pub const BROKEN_STREAMS: &str = "aigw.ai_proxy.broken_streams";
}

/// Per-request metric names after the `provider.<p>.model.<m>.` labels.
pub mod series {
    /// Requests sent to the provider (counter).
    pub const REQUESTS: &str = "requests_total";
    /// Responses with status 4xx or 5xx, after `status.<class>.` (counter).
    pub const ERRORS: &str = "errors_total";
    /// Input (prompt) tokens the provider reported (counter).
    pub const INPUT_TOKENS: &str = "input_tokens_total";
    /// Output (completion) tokens the provider reported (counter).
    pub const OUTPUT_TOKENS: &str = "output_tokens_total";
    /// Milliseconds from sending the request to the end of the response body (histogram).
    pub const DURATION: &str = "upstream_duration_ms";
}

/// The most distinct model labels one VM reports; later models count as `other`.
pub const MAX_MODEL_LABELS: usize = 64;

/// The longest model label (its safe form is cut here); the model itself is at most
/// [`MAX_MODEL_LEN`](crate::prepare::MAX_MODEL_LEN) bytes.
pub const MAX_LABEL_LEN: usize = 64;

/// The model labels handed out so far (one set per config, i.e. per VM and route rule).
#[derive(Debug, Default)]
pub struct ModelLabels {
    seen: RefCell<BTreeSet<String>>,
}

impl ModelLabels {
    /// The label for `model`: its safe form cut to [`MAX_LABEL_LEN`] characters, or `other`
    /// once the set is full.
    pub fn label(&self, model: &str) -> String {
        let safe = if model.is_empty() {
            "none".to_owned()
        } else {
            label(model).chars().take(MAX_LABEL_LEN).collect()
        };
        let mut seen = self.seen.borrow_mut();
        if seen.contains(&safe) {
            return safe;
        }
        if seen.len() >= MAX_MODEL_LABELS {
            return "other".to_owned();
        }
        seen.insert(safe.clone());
        safe
    }
}

/// One metric of a [`Series`]: its full name, and its id once defined.
#[derive(Debug)]
struct Slot {
    name: String,
    id: Cell<Option<u32>>,
}

impl Slot {
    fn new(prefix: &str, metric: &str) -> Self {
        Self {
            name: format!("{prefix}{metric}"),
            id: Cell::new(None),
        }
    }

    fn id(&self, metrics: &Metrics, host: &dyn Host, kind: MetricKind) -> Option<u32> {
        if let Some(id) = self.id.get() {
            return Some(id);
        }
        let id = metrics.id(host, kind, &self.name);
        self.id.set(id);
        id
    }

    fn count(&self, metrics: &Metrics, host: &dyn Host, delta: u64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(metrics, host, MetricKind::Counter) {
            let _ = host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
        }
    }

    fn observe(&self, metrics: &Metrics, host: &dyn Host, value: u64) {
        if let Some(id) = self.id(metrics, host, MetricKind::Histogram) {
            let _ = host.record_metric(id, value);
        }
    }
}

/// The per-request series of one provider × model: names formatted and ids defined once per
/// worker, not per request.
#[derive(Debug)]
pub struct Series {
    prefix: String,
    requests: Slot,
    errors_4xx: Slot,
    errors_5xx: Slot,
    input: Slot,
    output: Slot,
    duration: Slot,
}

impl Series {
    /// The series of `provider` and `model_label` (a label from [`ModelLabels`]).
    pub fn new(provider: &str, model_label: &str) -> Self {
        let prefix = format!(
            "aigw.ai_proxy.provider.{}.model.{model_label}.",
            label(provider)
        );
        Self {
            requests: Slot::new(&prefix, series::REQUESTS),
            errors_4xx: Slot::new(&prefix, &format!("status.4xx.{}", series::ERRORS)),
            errors_5xx: Slot::new(&prefix, &format!("status.5xx.{}", series::ERRORS)),
            input: Slot::new(&prefix, series::INPUT_TOKENS),
            output: Slot::new(&prefix, series::OUTPUT_TOKENS),
            duration: Slot::new(&prefix, series::DURATION),
            prefix,
        }
    }
}

/// The most provider × model series a worker keeps made; past it, a request's series is made for
/// it alone (the model labels are bounded, but the raw model names that map to `other` are not).
pub const MAX_CACHED_SERIES: usize = 256;

/// A worker's [`Series`] by provider and backend model.
#[derive(Debug, Default)]
pub struct SeriesCache {
    by_provider: RefCell<HashMap<String, HashMap<String, Rc<Series>>>>,
    size: Cell<usize>,
}

impl SeriesCache {
    /// The series for `provider` and `model`, labelled through `labels`.
    pub fn get(&self, labels: &ModelLabels, provider: &str, model: &str) -> Rc<Series> {
        if let Some(s) = self
            .by_provider
            .borrow()
            .get(provider)
            .and_then(|m| m.get(model))
        {
            return Rc::clone(s);
        }
        let series = Rc::new(Series::new(provider, &labels.label(model)));
        if self.size.get() < MAX_CACHED_SERIES {
            self.size.set(self.size.get().saturating_add(1));
            self.by_provider
                .borrow_mut()
                .entry(provider.to_owned())
                .or_default()
                .insert(model.to_owned(), Rc::clone(&series));
        }
        series
    }
}

/// Token counts a response reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

/// The metric series of one routed request.
#[derive(Debug, Clone)]
pub struct RequestStats {
    series: Rc<Series>,
    sent_ns: Option<u64>,
    tokens: Option<Tokens>,
    done: bool,
}

impl RequestStats {
    /// Series for a request to `provider` for `model` (a label from [`ModelLabels`]), sent at
    /// `sent_ns` (when the host has a clock).
    pub fn new(provider: &str, model_label: &str, sent_ns: Option<u64>) -> Self {
        Self::with_series(Rc::new(Series::new(provider, model_label)), sent_ns)
    }

    /// Stats on a worker's cached `series`.
    pub fn with_series(series: Rc<Series>, sent_ns: Option<u64>) -> Self {
        Self {
            series,
            sent_ns,
            tokens: None,
            done: false,
        }
    }

    /// The full name of a series (`metric` from [`series`]).
    pub fn name(&self, metric: &str) -> String {
        format!("{}{metric}", self.series.prefix)
    }

    /// Count the request.
    pub fn sent(&self, metrics: &Metrics, host: &dyn Host) {
        self.series.requests.count(metrics, host, 1);
    }

    /// Count an error status (4xx or 5xx) the client gets; other statuses count nothing.
    pub fn status(&self, metrics: &Metrics, host: &dyn Host, status: u16) {
        let slot = match status {
            400..=499 => &self.series.errors_4xx,
            500..=599 => &self.series.errors_5xx,
            _ => return,
        };
        slot.count(metrics, host, 1);
    }

    /// Remember the usage the response reported (the last report wins).
    pub fn usage(&mut self, tokens: Tokens) {
        self.tokens = Some(tokens);
    }

    /// The response ended: record tokens and the duration (once).
    pub fn finish(&mut self, metrics: &Metrics, host: &dyn Host) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(t) = self.tokens {
            self.series.input.count(metrics, host, t.input);
            self.series.output.count(metrics, host, t.output);
        }
        if let (Some(start), Some(now)) = (self.sent_ns, host.now_nanos()) {
            let ms = now.saturating_sub(start) / 1_000_000;
            self.series.duration.observe(metrics, host, ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::mock::MockHost;

    #[test]
    fn series_names_carry_safe_provider_and_model_labels() {
        let labels = ModelLabels::default();
        let s = RequestStats::new("aws.east", &labels.label("amazon.nova-micro-v1:0"), None);
        assert_eq!(
            s.name(series::REQUESTS),
            "aigw.ai_proxy.provider.aws_east.model.amazon_nova-micro-v1_0.requests_total"
        );
    }

    #[test]
    fn model_labels_stop_growing_at_the_cap() {
        let labels = ModelLabels::default();
        for i in 0..MAX_MODEL_LABELS {
            assert_eq!(labels.label(&format!("m{i}")), format!("m{i}"));
        }
        assert_eq!(labels.label("one-more"), "other");
        assert_eq!(labels.label("m3"), "m3", "known labels stay");
        assert_eq!(labels.label(""), "other");
    }

    #[test]
    fn model_labels_are_cut_to_a_bounded_length() {
        let labels = ModelLabels::default();
        let long = format!("{}ü/..", "a".repeat(300));
        let l = labels.label(&long);
        assert_eq!(l.len(), MAX_LABEL_LEN);
        assert!(l
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
    }

    #[test]
    fn errors_are_counted_by_status_class_and_tokens_once() {
        let host = MockHost::default();
        let m = Metrics::new();
        let mut s = RequestStats::new("p", "m", host.now_nanos());
        s.status(&m, &host, 200);
        s.status(&m, &host, 429);
        s.status(&m, &host, 503);
        s.usage(Tokens {
            input: 7,
            output: 3,
        });
        s.finish(&m, &host);
        s.finish(&m, &host);
        let v = |n: &str| host.metric_value(&format!("aigw.ai_proxy.provider.p.model.m.{n}"));
        assert_eq!(v("status.4xx.errors_total"), Some(1));
        assert_eq!(v("status.5xx.errors_total"), Some(1));
        assert_eq!(v("input_tokens_total"), Some(7));
        assert_eq!(v("output_tokens_total"), Some(3));
        let st = host.state.borrow();
        assert_eq!(
            st.metrics["aigw.ai_proxy.provider.p.model.m.upstream_duration_ms"].samples,
            vec![0]
        );
    }

    #[test]
    fn a_worker_makes_each_series_once_and_bounds_the_cache() {
        let host = MockHost::default();
        let (m, labels, cache) = (
            Metrics::new(),
            ModelLabels::default(),
            SeriesCache::default(),
        );
        let a = cache.get(&labels, "p", "gpt-4o");
        let b = cache.get(&labels, "p", "gpt-4o");
        assert!(Rc::ptr_eq(&a, &b), "the same series object");
        for _ in 0..3 {
            RequestStats::with_series(Rc::clone(&a), None).sent(&m, &host);
        }
        assert_eq!(
            host.metric_value("aigw.ai_proxy.provider.p.model.gpt-4o.requests_total"),
            Some(3)
        );
        for i in 0..2 * MAX_CACHED_SERIES {
            cache.get(&labels, "p", &format!("m{i}"));
        }
        assert_eq!(cache.size.get(), MAX_CACHED_SERIES);
        let other = cache.get(&labels, "p", "not-cached");
        assert!(other.prefix.ends_with(".model.other."), "{}", other.prefix);
    }
}
