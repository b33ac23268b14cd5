//! The suite's one naming scheme for GenAI metrics (OpenTelemetry GenAI semantic conventions) as
//! Envoy custom metrics, so every plugin that reports tokens, latency or cost lands in the same
//! Prometheus series.
//!
//! A name is
//!
//! ```text
//! aigw.gen_ai.provider.<p>.model.<m>.route.<r>.consumer.<c>[.<key>.<value>].<metric>
//! ```
//!
//! * `aigw.gen_ai` is a fixed namespace (not a plugin name): the `stats_tags` of
//!   `envoy-configs/` anchor at `wasmcustom.aigw.<one segment>.`, so these names need no new
//!   anchor, and Envoy's Prometheus output shows `aigw_gen_ai_<metric>{…}`.
//! * The four labels come in this order, always all four, so a series is named one way only.
//!   An extra label pair (`token_type`, `error_type`) follows them. Values are made safe with
//!   [`label_value`]: ASCII letters, digits, `-` and `_` only (everything else becomes `_`), at
//!   most [`MAX_LABEL_LEN`] characters, [`UNKNOWN`] when empty. So a value never contains a dot,
//!   and each `stats_tags` regex (one per key, [`stats_tag_regex`]) steps over whole
//!   `key.value.` pairs from the namespace on: a value equal to a key word is not taken for a key.
//! * `<metric>` is snake_case without dots and names its unit (`_ms`, `_us`, `_micro_usd`);
//!   counters end in `_total`.
//!
//! | OpenTelemetry | here (Envoy kind) | unit |
//! |---|---|---|
//! | `gen_ai.client.token.usage` | [`metric::CLIENT_TOKEN_USAGE`] (histogram, `token_type` input/output) and [`metric::TOKENS_TOTAL`] (counter, every token type) | tokens |
//! | `gen_ai.server.request.duration` | [`metric::SERVER_REQUEST_DURATION`] (histogram) | ms |
//! | `gen_ai.server.time_to_first_token` | [`metric::SERVER_TIME_TO_FIRST_TOKEN`] (histogram) | ms |
//! | `gen_ai.server.time_per_output_token` | [`metric::SERVER_TIME_PER_OUTPUT_TOKEN`] (histogram) | µs |
//! | – | [`metric::REQUESTS_TOTAL`], [`metric::ERRORS_TOTAL`] (`error_type`), [`metric::COST_TOTAL`], [`metric::ESTIMATED_TOTAL`] (counters) | requests, µUSD |
//! | – | ai-proxy's view of the provider call: [`metric::UPSTREAM_REQUESTS_TOTAL`], [`metric::UPSTREAM_ERRORS_TOTAL`], [`metric::UPSTREAM_TOKENS_TOTAL`] (counters), [`metric::UPSTREAM_REQUEST_DURATION`] (histogram) | requests, tokens, ms |
//!
//! ai-usage-stats reports the request as the client saw it (its `model` is the model asked for);
//! ai-proxy reports the call it made (`upstream_*`: its `model` is the model sent after mapping,
//! its `consumer` is [`UNKNOWN`], as ai-proxy does not identify callers). Same namespace and
//! labels, so one dashboard filters both by provider, model and route.
//!
//! Example: `wasmcustom.aigw.gen_ai.provider.openai.model.gpt-4o-mini.route.chat.consumer.team-a.token_type.input.tokens_total`
//! is exported as
//! `aigw_gen_ai_tokens_total{provider="openai",model="gpt-4o-mini",route="chat",consumer="team-a",token_type="input"}`.

/// The namespace every name starts with.
pub const PREFIX: &str = "aigw.gen_ai";

/// The longest label value, in characters (longer values are cut).
pub const MAX_LABEL_LEN: usize = 64;

/// The value of a label that is not known (empty model, no route name, nobody identified).
pub const UNKNOWN: &str = "unknown";

/// The value standing for every value past a label's cap (see [`BoundedLabels`]).
pub const OTHER: &str = "other";

/// Metric names (the last segment).
pub mod metric {
    /// Tokens per request, by `token_type` `input` / `output` (histogram; OTel `gen_ai.client.token.usage`).
    pub const CLIENT_TOKEN_USAGE: &str = "client_token_usage";
    /// Tokens, by `token_type` (counter; exact sums for charge-back).
    pub const TOKENS_TOTAL: &str = "tokens_total";
    /// Milliseconds from the request's headers to the end of the response (histogram; OTel
    /// `gen_ai.server.request.duration`, in ms).
    pub const SERVER_REQUEST_DURATION: &str = "server_request_duration_ms";
    /// Milliseconds from the request's headers to the first content token of a streamed answer
    /// (histogram; OTel `gen_ai.server.time_to_first_token`, in ms).
    pub const SERVER_TIME_TO_FIRST_TOKEN: &str = "server_time_to_first_token_ms";
    /// Microseconds per output token after the first, of a streamed answer (histogram; OTel
    /// `gen_ai.server.time_per_output_token`, in µs).
    pub const SERVER_TIME_PER_OUTPUT_TOKEN: &str = "server_time_per_output_token_us";
    /// Requests (counter).
    pub const REQUESTS_TOTAL: &str = "requests_total";
    /// Failed requests, by `error_type` (counter; OTel `error.type`).
    pub const ERRORS_TOTAL: &str = "errors_total";
    /// Cost in micro-dollars (USD × 10⁶) from the configured prices (counter).
    pub const COST_TOTAL: &str = "cost_micro_usd_total";
    /// Requests whose token counts were estimated because the provider reported none (counter).
    pub const ESTIMATED_TOTAL: &str = "usage_estimated_total";
    /// ai-proxy: requests sent to a provider (counter; `model` is the model sent upstream).
    pub const UPSTREAM_REQUESTS_TOTAL: &str = "upstream_requests_total";
    /// ai-proxy: answers with a 4xx or 5xx status for the client, by `error_type` `4xx` / `5xx`
    /// (counter).
    pub const UPSTREAM_ERRORS_TOTAL: &str = "upstream_errors_total";
    /// ai-proxy: tokens the provider reported, by `token_type` `input` / `output` (counter).
    pub const UPSTREAM_TOKENS_TOTAL: &str = "upstream_tokens_total";
    /// ai-proxy: milliseconds from sending the request to the end of the provider's answer
    /// (histogram).
    pub const UPSTREAM_REQUEST_DURATION: &str = "upstream_request_duration_ms";
}

/// Label keys.
pub mod key {
    /// The provider (OTel `gen_ai.provider.name`).
    pub const PROVIDER: &str = "provider";
    /// The model the client asked for (OTel `gen_ai.request.model`).
    pub const MODEL: &str = "model";
    /// The gateway route.
    pub const ROUTE: &str = "route";
    /// The caller.
    pub const CONSUMER: &str = "consumer";
    /// The token type (OTel `gen_ai.token.type`), values in [`super::token_type`].
    pub const TOKEN_TYPE: &str = "token_type";
    /// Why a request failed (OTel `error.type`).
    pub const ERROR_TYPE: &str = "error_type";
    /// Every key, in name order; each needs one `stats_tags` entry ([`super::stats_tag_regex`]).
    pub const ALL: [&str; 6] = [PROVIDER, MODEL, ROUTE, CONSUMER, TOKEN_TYPE, ERROR_TYPE];
}

/// Values of the `token_type` label.
pub mod token_type {
    /// All input tokens (cached ones included).
    pub const INPUT: &str = "input";
    /// All output tokens (reasoning included).
    pub const OUTPUT: &str = "output";
    /// Input tokens read from the provider's prompt cache (a part of `input`).
    pub const CACHED: &str = "cached";
    /// Input tokens written to the provider's prompt cache (Anthropic; a part of `input`).
    pub const CACHE_WRITE: &str = "cache_write";
    /// Hidden reasoning tokens (a part of `output`).
    pub const REASONING: &str = "reasoning";
}

/// The four labels of a series, each already a safe value (see [`label_value`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Route.
    pub route: String,
    /// Consumer.
    pub consumer: String,
}

impl Labels {
    /// Labels from raw values, each made safe with [`label_value`].
    pub fn new(provider: &str, model: &str, route: &str, consumer: &str) -> Self {
        Self {
            provider: label_value(provider),
            model: label_value(model),
            route: label_value(route),
            consumer: label_value(consumer),
        }
    }

    /// `aigw.gen_ai.provider.<p>.model.<m>.route.<r>.consumer.<c>.`: what every name of the
    /// series starts with.
    pub fn prefix(&self) -> String {
        format!(
            "{PREFIX}.{}.{}.{}.{}.{}.{}.{}.{}.",
            key::PROVIDER,
            self.provider,
            key::MODEL,
            self.model,
            key::ROUTE,
            self.route,
            key::CONSUMER,
            self.consumer
        )
    }
}

/// A full name: `prefix` (from [`Labels::prefix`]), an optional extra label pair, the metric.
pub fn name(prefix: &str, extra: Option<(&str, &str)>, metric: &str) -> String {
    match extra {
        Some((k, v)) => format!("{prefix}{k}.{}.{metric}", label_value(v)),
        None => format!("{prefix}{metric}"),
    }
}

/// A label value safe inside a dotted name: ASCII letters, digits, `-` and `_` kept, anything
/// else `_`, cut to [`MAX_LABEL_LEN`] characters; [`UNKNOWN`] when empty.
pub fn label_value(raw: &str) -> String {
    if raw.is_empty() {
        return UNKNOWN.to_owned();
    }
    crate::metrics::label(label_source(raw))
}

/// The part of `raw` that [`label_value`] reads: its first [`MAX_LABEL_LEN`] characters. Values
/// that agree on it get the same label, so a cache keyed by it stays small however long the
/// client's text is.
pub fn label_source(raw: &str) -> &str {
    match raw.char_indices().nth(MAX_LABEL_LEN) {
        Some((i, _)) => &raw[..i],
        None => raw,
    }
}

/// The Envoy `stats_tags` regex that extracts label `key` from these names (and from every
/// `aigw.<plugin>[.<key>.<value>]*.<metric>` name of the suite): `{tag_name: <key>, regex: '<this>'}`.
pub fn stats_tag_regex(key: &str) -> String {
    format!(r"^wasmcustom\.aigw\.[^.]+\.(?:[^.]+\.[^.]+\.)*?({key}\.([^.]+)\.)")
}

/// A label whose values come from requests (models, consumers): at most `max` distinct values
/// per worker, the rest reported as [`OTHER`], so clients cannot grow the metric set without bound.
#[derive(Debug)]
pub struct BoundedLabels {
    seen: std::cell::RefCell<std::collections::HashSet<String>>,
    max: usize,
}

impl BoundedLabels {
    /// A label with at most `max` distinct values.
    pub fn new(max: usize) -> Self {
        Self {
            seen: std::cell::RefCell::default(),
            max,
        }
    }

    /// The label for `raw`: its safe form, or [`OTHER`] once `max` others were handed out.
    /// Empty values are [`UNKNOWN`] and do not count.
    pub fn label(&self, raw: &str) -> String {
        let safe = label_value(raw);
        if raw.is_empty() {
            return safe;
        }
        let mut seen = self.seen.borrow_mut();
        if seen.contains(&safe) {
            return safe;
        }
        if seen.len() >= self.max {
            return OTHER.to_owned();
        }
        seen.insert(safe.clone());
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_put_the_four_labels_in_order_then_the_extra_pair_then_the_metric() {
        let l = Labels::new("openai", "gpt-4o-mini", "chat", "team-a");
        let n = name(
            &l.prefix(),
            Some((key::TOKEN_TYPE, token_type::INPUT)),
            metric::TOKENS_TOTAL,
        );
        assert_eq!(
            n,
            "aigw.gen_ai.provider.openai.model.gpt-4o-mini.route.chat.consumer.team-a.token_type.input.tokens_total"
        );
        assert_eq!(
            name(&l.prefix(), None, metric::REQUESTS_TOTAL),
            "aigw.gen_ai.provider.openai.model.gpt-4o-mini.route.chat.consumer.team-a.requests_total"
        );
    }

    #[test]
    fn every_name_is_the_namespace_then_whole_key_value_pairs_then_one_metric_segment() {
        let l = Labels::new("a.b", "claude 3.5/sonnet", "", "x@y.z");
        let n = name(
            &l.prefix(),
            Some((key::ERROR_TYPE, "429")),
            metric::ERRORS_TOTAL,
        );
        let rest = n.strip_prefix("aigw.gen_ai.").unwrap();
        let segs: Vec<&str> = rest.split('.').collect();
        assert_eq!(segs.len() % 2, 1, "{n}");
        assert!(segs.iter().all(|s| !s.is_empty()), "{n}");
        let keys: Vec<&str> = segs.iter().step_by(2).copied().collect();
        assert_eq!(
            keys,
            [
                "provider",
                "model",
                "route",
                "consumer",
                "error_type",
                "errors_total"
            ]
        );
        assert_eq!(segs[3], "claude_3_5_sonnet");
        assert_eq!(segs[5], UNKNOWN);
    }

    #[test]
    fn label_values_lose_dots_and_are_cut() {
        assert_eq!(
            label_value("amazon.nova-micro-v1:0"),
            "amazon_nova-micro-v1_0"
        );
        let long = "é".repeat(200);
        assert_eq!(label_value(&long).chars().count(), MAX_LABEL_LEN);
        assert_eq!(label_value(""), UNKNOWN);
    }

    #[test]
    fn the_label_source_is_what_the_label_reads() {
        let long = format!("{}x", "é".repeat(MAX_LABEL_LEN));
        assert_eq!(label_source(&long), "é".repeat(MAX_LABEL_LEN));
        assert_eq!(label_value(label_source(&long)), label_value(&long));
        assert_eq!(label_source("gpt-4o"), "gpt-4o");
        assert_eq!(label_source(""), "");
    }

    #[test]
    fn bounded_labels_report_values_past_the_cap_as_other() {
        let b = BoundedLabels::new(2);
        assert_eq!(b.label("m1"), "m1");
        assert_eq!(b.label("m2"), "m2");
        assert_eq!(b.label("m3"), OTHER);
        assert_eq!(b.label("m1"), "m1", "known values stay");
        assert_eq!(b.label(""), UNKNOWN);
    }

    #[test]
    fn the_stats_tag_regex_names_its_key() {
        assert_eq!(
            stats_tag_regex("token_type"),
            r"^wasmcustom\.aigw\.[^.]+\.(?:[^.]+\.[^.]+\.)*?(token_type\.([^.]+)\.)"
        );
        let prefix = Labels::new("p", "m", "r", "c").prefix();
        let mut at = 0;
        for k in &key::ALL[..4] {
            let i = prefix
                .find(&format!(".{k}."))
                .expect("a label key of the prefix");
            assert!(i >= at, "{k} out of order in {prefix}");
            at = i;
        }
        let mut keys = key::ALL.to_vec();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), key::ALL.len(), "every key once");
    }
}
