//! The worker's metric series, named by `aigw_shared::genai`: one [`Series`] per provider ×
//! model × route × consumer, its names formatted and ids defined once per worker, kept in a
//! bounded cache; and the recording of one finished request.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use aigw_shared::genai::{self, key, metric, token_type, Labels};
use aigw_shared::host::{Host, MetricKind};
use aigw_shared::metrics::Metrics;

use crate::record::{Timings, Tokens};

/// The most series a worker keeps made; past it a request's series is made for it alone (its
/// labels are bounded, so the metric names are too).
pub const MAX_CACHED_SERIES: usize = 1024;

/// The most distinct `error_type` values one series counts; the rest count as `other`.
const MAX_ERROR_TYPES: usize = 16;

/// One metric: its full name, and its id once defined.
#[derive(Debug)]
struct Slot {
    name: String,
    kind: MetricKind,
    id: Cell<Option<u32>>,
}

impl Slot {
    fn new(name: String, kind: MetricKind) -> Self {
        Self {
            name,
            kind,
            id: Cell::new(None),
        }
    }

    fn id(&self, metrics: &Metrics, host: &dyn Host) -> Option<u32> {
        if let Some(id) = self.id.get() {
            return Some(id);
        }
        let id = metrics.id(host, self.kind, &self.name);
        self.id.set(id);
        id
    }

    fn count(&self, metrics: &Metrics, host: &dyn Host, delta: u64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(metrics, host) {
            let _ = host.increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
        }
    }

    fn observe(&self, metrics: &Metrics, host: &dyn Host, value: u64) {
        if let Some(id) = self.id(metrics, host) {
            let _ = host.record_metric(id, value);
        }
    }
}

/// The metrics of one label set.
#[derive(Debug)]
pub struct Series {
    prefix: String,
    requests: Slot,
    estimated: Slot,
    cost: Slot,
    tokens_input: Slot,
    tokens_output: Slot,
    tokens_cached: Slot,
    tokens_cache_write: Slot,
    tokens_reasoning: Slot,
    usage_input: Slot,
    usage_output: Slot,
    duration: Slot,
    ttft: Slot,
    tpot: Slot,
    errors: RefCell<HashMap<String, Rc<Slot>>>,
    /// Pico-dollars not yet counted (below one micro-dollar).
    carry_pico: Cell<u64>,
}

impl Series {
    /// The series of `labels`.
    pub fn new(labels: &Labels) -> Self {
        let prefix = labels.prefix();
        let plain = |m: &str, kind| Slot::new(genai::name(&prefix, None, m), kind);
        let typed = |t: &str, m: &str, kind| {
            Slot::new(genai::name(&prefix, Some((key::TOKEN_TYPE, t)), m), kind)
        };
        use MetricKind::{Counter, Histogram};
        Self {
            requests: plain(metric::REQUESTS_TOTAL, Counter),
            estimated: plain(metric::ESTIMATED_TOTAL, Counter),
            cost: plain(metric::COST_TOTAL, Counter),
            tokens_input: typed(token_type::INPUT, metric::TOKENS_TOTAL, Counter),
            tokens_output: typed(token_type::OUTPUT, metric::TOKENS_TOTAL, Counter),
            tokens_cached: typed(token_type::CACHED, metric::TOKENS_TOTAL, Counter),
            tokens_cache_write: typed(token_type::CACHE_WRITE, metric::TOKENS_TOTAL, Counter),
            tokens_reasoning: typed(token_type::REASONING, metric::TOKENS_TOTAL, Counter),
            usage_input: typed(token_type::INPUT, metric::CLIENT_TOKEN_USAGE, Histogram),
            usage_output: typed(token_type::OUTPUT, metric::CLIENT_TOKEN_USAGE, Histogram),
            duration: plain(metric::SERVER_REQUEST_DURATION, Histogram),
            ttft: plain(metric::SERVER_TIME_TO_FIRST_TOKEN, Histogram),
            tpot: plain(metric::SERVER_TIME_PER_OUTPUT_TOKEN, Histogram),
            errors: RefCell::default(),
            carry_pico: Cell::new(0),
            prefix,
        }
    }

    /// The full name of a metric of this series (for tests and docs).
    pub fn name(&self, extra: Option<(&str, &str)>, metric: &str) -> String {
        genai::name(&self.prefix, extra, metric)
    }

    fn error_slot(&self, error_type: &str) -> Rc<Slot> {
        let mut errors = self.errors.borrow_mut();
        if let Some(s) = errors.get(error_type) {
            return Rc::clone(s);
        }
        let value = if errors.len() >= MAX_ERROR_TYPES {
            genai::OTHER
        } else {
            error_type
        };
        let slot = Rc::new(Slot::new(
            genai::name(
                &self.prefix,
                Some((key::ERROR_TYPE, value)),
                metric::ERRORS_TOTAL,
            ),
            MetricKind::Counter,
        ));
        if errors.len() < MAX_ERROR_TYPES {
            errors.insert(error_type.to_owned(), Rc::clone(&slot));
        }
        slot
    }

    /// Record one finished request.
    pub fn record(&self, metrics: &Metrics, host: &dyn Host, done: &Finished<'_>) {
        self.requests.count(metrics, host, 1);
        let t = &done.tokens;
        self.tokens_input.count(metrics, host, t.input);
        self.tokens_output.count(metrics, host, t.output);
        self.tokens_cached.count(metrics, host, t.cached);
        self.tokens_cache_write.count(metrics, host, t.cache_write);
        self.tokens_reasoning.count(metrics, host, t.reasoning);
        if t.estimated {
            self.estimated.count(metrics, host, 1);
        }
        if let Some(pico) = done.cost_pico {
            let total = self.carry_pico.get().saturating_add(pico);
            self.carry_pico.set(total % 1_000_000);
            self.cost.count(metrics, host, total / 1_000_000);
        }
        match done.error_type {
            Some(e) => self.error_slot(e).count(metrics, host, 1),
            None => {
                self.usage_input.observe(metrics, host, t.input);
                self.usage_output.observe(metrics, host, t.output);
            }
        }
        let tm = &done.timings;
        if let Some(v) = tm.duration_ms {
            self.duration.observe(metrics, host, v);
        }
        if let Some(v) = tm.ttft_ms {
            self.ttft.observe(metrics, host, v);
        }
        if let Some(v) = tm.tpot_us {
            self.tpot.observe(metrics, host, v);
        }
    }
}

/// What a finished request adds to its series.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// Tokens.
    pub tokens: Tokens,
    /// Timings.
    pub timings: Timings,
    /// Cost in pico-dollars, when priced.
    pub cost_pico: Option<u64>,
    /// Why it failed, if it did.
    pub error_type: Option<&'a str>,
}

/// A worker's series by raw provider, model, route and consumer.
#[derive(Debug, Default)]
pub struct SeriesCache {
    by_key: RefCell<HashMap<String, Rc<Series>>>,
}

impl SeriesCache {
    /// The series for these raw values; `labels` makes the (bounded) label set on a miss.
    /// Each value is keyed by the part its label reads ([`genai::label_source`]), so a client's
    /// megabyte-long model name is not kept (up to [`MAX_CACHED_SERIES`] times) in the key.
    pub fn get(&self, raw: [&str; 4], labels: impl FnOnce() -> Labels) -> Rc<Series> {
        let key = raw.map(genai::label_source).join("\u{0}");
        if let Some(s) = self.by_key.borrow().get(&key) {
            return Rc::clone(s);
        }
        let series = Rc::new(Series::new(&labels()));
        let mut map = self.by_key.borrow_mut();
        if map.len() < MAX_CACHED_SERIES {
            map.insert(key, Rc::clone(&series));
        }
        series
    }

    /// Series made so far.
    pub fn len(&self) -> usize {
        self.by_key.borrow().len()
    }

    /// True when none was made.
    pub fn is_empty(&self) -> bool {
        self.by_key.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_shared::mock::MockHost;

    fn labels() -> Labels {
        Labels::new("openai", "gpt-4o-mini", "chat", "team-a")
    }

    fn finished(cost_pico: Option<u64>, error_type: Option<&str>) -> Finished<'_> {
        Finished {
            tokens: Tokens {
                input: 10,
                output: 5,
                total: 15,
                cached: 4,
                cache_write: 0,
                reasoning: 0,
                estimated: false,
            },
            timings: Timings {
                duration_ms: Some(120),
                ttft_ms: Some(30),
                tpot_us: Some(2500),
            },
            cost_pico,
            error_type,
        }
    }

    #[test]
    fn a_request_adds_to_every_metric_of_its_series() {
        let host = MockHost::default();
        let m = Metrics::new();
        let s = Series::new(&labels());
        s.record(&m, &host, &finished(Some(2_500_000), None));
        let p = "aigw.gen_ai.provider.openai.model.gpt-4o-mini.route.chat.consumer.team-a.";
        let v = |n: &str| host.metric_value(&format!("{p}{n}"));
        assert_eq!(v("requests_total"), Some(1));
        assert_eq!(v("token_type.input.tokens_total"), Some(10));
        assert_eq!(v("token_type.output.tokens_total"), Some(5));
        assert_eq!(v("token_type.cached.tokens_total"), Some(4));
        assert_eq!(
            v("token_type.reasoning.tokens_total"),
            None,
            "zero: untouched"
        );
        assert_eq!(v("cost_micro_usd_total"), Some(2));
        let st = host.state.borrow();
        let samples = |n: &str| st.metrics[&format!("{p}{n}")].samples.clone();
        assert_eq!(samples("token_type.input.client_token_usage"), [10]);
        assert_eq!(samples("token_type.output.client_token_usage"), [5]);
        assert_eq!(samples("server_request_duration_ms"), [120]);
        assert_eq!(samples("server_time_to_first_token_ms"), [30]);
        assert_eq!(samples("server_time_per_output_token_us"), [2500]);
    }

    #[test]
    fn fractions_of_a_micro_dollar_are_carried_to_the_next_request() {
        let host = MockHost::default();
        let m = Metrics::new();
        let s = Series::new(&labels());
        for _ in 0..4 {
            s.record(&m, &host, &finished(Some(400_000), None));
        }
        let name = s.name(None, metric::COST_TOTAL);
        assert_eq!(host.metric_value(&name), Some(1), "1.6 µUSD counted as 1");
        assert_eq!(s.carry_pico.get(), 600_000);
    }

    #[test]
    fn errors_are_counted_by_type_and_bounded() {
        let host = MockHost::default();
        let m = Metrics::new();
        let s = Series::new(&labels());
        s.record(&m, &host, &finished(None, Some("429")));
        s.record(&m, &host, &finished(None, Some("429")));
        let name = s.name(Some((key::ERROR_TYPE, "429")), metric::ERRORS_TOTAL);
        assert_eq!(host.metric_value(&name), Some(2));
        for i in 0..MAX_ERROR_TYPES + 5 {
            s.record(&m, &host, &finished(None, Some(&format!("e{i}"))));
        }
        let other = s.name(Some((key::ERROR_TYPE, "other")), metric::ERRORS_TOTAL);
        assert_eq!(host.metric_value(&other), Some(6));
        let usage = s.name(
            Some((key::TOKEN_TYPE, token_type::INPUT)),
            metric::CLIENT_TOKEN_USAGE,
        );
        assert!(
            !host.state.borrow().metrics.contains_key(&usage),
            "failed requests record no token usage sample"
        );
    }

    #[test]
    fn the_cache_makes_each_series_once_and_stays_bounded() {
        let cache = SeriesCache::default();
        let a = cache.get(["p", "m", "r", "c"], labels);
        let b = cache.get(["p", "m", "r", "c"], || panic!("cached"));
        assert!(Rc::ptr_eq(&a, &b));
        for i in 0..MAX_CACHED_SERIES + 10 {
            cache.get(["p", &format!("m{i}"), "r", "c"], labels);
        }
        assert_eq!(cache.len(), MAX_CACHED_SERIES);
    }

    #[test]
    fn the_cache_keeps_no_more_of_a_long_value_than_its_label_reads() {
        let cache = SeriesCache::default();
        let long = |tail: &str| format!("{}{tail}", "m".repeat(1 << 20));
        let a = cache.get(["p", &long("a"), "r", "c"], labels);
        let b = cache.get(["p", &long("b"), "r", "c"], || panic!("same label: cached"));
        assert!(Rc::ptr_eq(&a, &b));
        let key_bytes: usize = cache.by_key.borrow().keys().map(String::len).sum();
        assert!(key_bytes < 4 * genai::MAX_LABEL_LEN + 3, "{key_bytes}");
    }
}
