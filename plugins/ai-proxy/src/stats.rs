//! Metrics: plugin-wide counters and per-request series labelled by provider, model and route.
//!
//! Per-request names follow the suite's GenAI scheme ([`aigw_shared::genai`]),
//! `aigw.gen_ai.provider.<p>.model.<m>.route.<r>.consumer.unknown[.<key>.<value>].upstream_<metric>`,
//! the same namespace and labels as ai-usage-stats' series, so one dashboard reads both. Here the
//! model label is the backend model (after mapping), the route is Envoy's route name, and the
//! consumer is always `unknown` (ai-proxy does not identify callers; ai-usage-stats does). Label
//! values come from the config (provider names), Envoy (route names) and routed requests (model
//! names); a VM keeps at most [`MAX_MODEL_LABELS`] distinct model labels and reports the rest as
//! `other`, so clients cannot grow the metric set without bound. Credentials never appear in names.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use aigw_shared::genai::{self, key, token_type, Labels, OTHER, UNKNOWN};
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
            UNKNOWN.to_owned()
        } else {
            label(model).chars().take(MAX_LABEL_LEN).collect()
        };
        let mut seen = self.seen.borrow_mut();
        if seen.contains(&safe) {
            return safe;
        }
        if seen.len() >= MAX_MODEL_LABELS {
            return OTHER.to_owned();
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
    fn new(prefix: &str, extra: Option<(&str, &str)>, metric: &str) -> Self {
        Self {
            name: genai::name(prefix, extra, metric),
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

/// The per-request series of one provider × model × route: names formatted and ids defined once
/// per worker, not per request.
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
    /// The series of `provider`, `model_label` (a label from [`ModelLabels`]) and `route`
    /// (Envoy's route name; empty: `unknown`).
    pub fn new(provider: &str, model_label: &str, route: &str) -> Self {
        let prefix = Labels {
            provider: genai::label_value(provider),
            model: model_label.to_owned(),
            route: genai::label_value(route),
            consumer: UNKNOWN.to_owned(),
        }
        .prefix();
        use genai::metric::{
            UPSTREAM_ERRORS_TOTAL, UPSTREAM_REQUESTS_TOTAL, UPSTREAM_REQUEST_DURATION,
            UPSTREAM_TOKENS_TOTAL,
        };
        Self {
            requests: Slot::new(&prefix, None, UPSTREAM_REQUESTS_TOTAL),
            errors_4xx: Slot::new(
                &prefix,
                Some((key::ERROR_TYPE, "4xx")),
                UPSTREAM_ERRORS_TOTAL,
            ),
            errors_5xx: Slot::new(
                &prefix,
                Some((key::ERROR_TYPE, "5xx")),
                UPSTREAM_ERRORS_TOTAL,
            ),
            input: Slot::new(
                &prefix,
                Some((key::TOKEN_TYPE, token_type::INPUT)),
                UPSTREAM_TOKENS_TOTAL,
            ),
            output: Slot::new(
                &prefix,
                Some((key::TOKEN_TYPE, token_type::OUTPUT)),
                UPSTREAM_TOKENS_TOTAL,
            ),
            duration: Slot::new(&prefix, None, UPSTREAM_REQUEST_DURATION),
            prefix,
        }
    }

    /// The full name of one of this series' metrics (for tests and docs).
    pub fn name(&self, extra: Option<(&str, &str)>, metric: &str) -> String {
        genai::name(&self.prefix, extra, metric)
    }
}

/// The most provider × model × route series a worker keeps made; past it, a request's series is
/// made for it alone (the model labels are bounded, but the raw model names that map to `other`
/// are not).
pub const MAX_CACHED_SERIES: usize = 256;

/// Series by a key level (provider, then route, then backend model): looked up with `&str`
/// keys, so a cache hit allocates nothing.
type Level<T> = HashMap<String, T>;

/// A worker's [`Series`] by provider, route and backend model.
#[derive(Debug, Default)]
pub struct SeriesCache {
    by_provider: RefCell<Level<Level<Level<Rc<Series>>>>>,
    size: Cell<usize>,
}

impl SeriesCache {
    /// The series for `provider`, `route` and `model`, the model labelled through `labels`.
    pub fn get(
        &self,
        labels: &ModelLabels,
        provider: &str,
        route: &str,
        model: &str,
    ) -> Rc<Series> {
        let route = genai::label_source(route);
        if let Some(s) = self
            .by_provider
            .borrow()
            .get(provider)
            .and_then(|m| m.get(route))
            .and_then(|m| m.get(model))
        {
            return Rc::clone(s);
        }
        let series = Rc::new(Series::new(provider, &labels.label(model), route));
        if self.size.get() < MAX_CACHED_SERIES {
            self.size.set(self.size.get().saturating_add(1));
            self.by_provider
                .borrow_mut()
                .entry(provider.to_owned())
                .or_default()
                .entry(route.to_owned())
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
    /// Series for a request to `provider` for `model` (a label from [`ModelLabels`]) on `route`,
    /// sent at `sent_ns` (when the host has a clock).
    pub fn new(provider: &str, model_label: &str, route: &str, sent_ns: Option<u64>) -> Self {
        Self::with_series(Rc::new(Series::new(provider, model_label, route)), sent_ns)
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

    /// The full name of one of the request's metrics.
    pub fn name(&self, extra: Option<(&str, &str)>, metric: &str) -> String {
        self.series.name(extra, metric)
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
    use aigw_shared::genai::metric::{
        UPSTREAM_ERRORS_TOTAL, UPSTREAM_REQUESTS_TOTAL, UPSTREAM_REQUEST_DURATION,
        UPSTREAM_TOKENS_TOTAL,
    };
    use aigw_shared::mock::MockHost;

    const P: &str = "aigw.gen_ai.provider.p.model.m.route.chat.consumer.unknown.";

    #[test]
    fn series_names_follow_the_genai_scheme_with_safe_labels() {
        let labels = ModelLabels::default();
        let s = RequestStats::new(
            "aws.east",
            &labels.label("amazon.nova-micro-v1:0"),
            "",
            None,
        );
        assert_eq!(
            s.name(None, UPSTREAM_REQUESTS_TOTAL),
            "aigw.gen_ai.provider.aws_east.model.amazon_nova-micro-v1_0.route.unknown\
             .consumer.unknown.upstream_requests_total"
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
        let mut s = RequestStats::new("p", "m", "chat", host.now_nanos());
        s.status(&m, &host, 200);
        s.status(&m, &host, 429);
        s.status(&m, &host, 503);
        s.usage(Tokens {
            input: 7,
            output: 3,
        });
        s.finish(&m, &host);
        s.finish(&m, &host);
        let v = |n: &str| host.metric_value(&format!("{P}{n}"));
        assert_eq!(
            v(&format!("error_type.4xx.{UPSTREAM_ERRORS_TOTAL}")),
            Some(1)
        );
        assert_eq!(
            v(&format!("error_type.5xx.{UPSTREAM_ERRORS_TOTAL}")),
            Some(1)
        );
        assert_eq!(
            v(&format!("token_type.input.{UPSTREAM_TOKENS_TOTAL}")),
            Some(7)
        );
        assert_eq!(
            v(&format!("token_type.output.{UPSTREAM_TOKENS_TOTAL}")),
            Some(3)
        );
        let st = host.state.borrow();
        assert_eq!(
            st.metrics[&format!("{P}{UPSTREAM_REQUEST_DURATION}")].samples,
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
        let a = cache.get(&labels, "p", "chat", "m");
        let b = cache.get(&labels, "p", "chat", "m");
        assert!(Rc::ptr_eq(&a, &b), "the same series object");
        let other_route = cache.get(&labels, "p", "messages", "m");
        assert!(
            !Rc::ptr_eq(&a, &other_route),
            "routes have their own series"
        );
        for _ in 0..3 {
            RequestStats::with_series(Rc::clone(&a), None).sent(&m, &host);
        }
        assert_eq!(
            host.metric_value(&format!("{P}{UPSTREAM_REQUESTS_TOTAL}")),
            Some(3)
        );
        for i in 0..2 * MAX_CACHED_SERIES {
            cache.get(&labels, "p", "chat", &format!("m{i}"));
        }
        assert_eq!(cache.size.get(), MAX_CACHED_SERIES);
        let other = cache.get(&labels, "p", "chat", "not-cached");
        assert!(other.prefix.contains(".model.other."), "{}", other.prefix);
    }
}
