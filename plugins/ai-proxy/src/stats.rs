//! Metrics: plugin-wide counters and per-request series labelled by provider and model.
//!
//! Per-request names follow `aigw_shared::metrics`' convention,
//! `aigw.ai_proxy.provider.<provider>.model.<model>.<metric>`, so the `stats_tags` in
//! `envoy-configs/` turn them into the `provider` and `model` Prometheus labels. The model label is
//! the backend model (after mapping). Label values come from the config (provider names) and from
//! routed requests (model names); a VM keeps at most [`MAX_MODEL_LABELS`] distinct model labels and
//! reports the rest as `other`, so clients cannot grow the metric set without bound. Credentials
//! never appear in names.

use std::cell::RefCell;
use std::collections::BTreeSet;

use aigw_shared::host::Host;
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

/// Token counts a response reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

/// The metric series of one routed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestStats {
    prefix: String,
    sent_ns: Option<u64>,
    tokens: Option<Tokens>,
    done: bool,
}

impl RequestStats {
    /// Series for a request to `provider` for `model` (a label from [`ModelLabels`]), sent at
    /// `sent_ns` (when the host has a clock).
    pub fn new(provider: &str, model_label: &str, sent_ns: Option<u64>) -> Self {
        Self {
            prefix: format!(
                "aigw.ai_proxy.provider.{}.model.{model_label}.",
                label(provider)
            ),
            sent_ns,
            tokens: None,
            done: false,
        }
    }

    /// The full name of a series (`metric` from [`series`]).
    pub fn name(&self, metric: &str) -> String {
        format!("{}{metric}", self.prefix)
    }

    /// Count the request.
    pub fn sent(&self, metrics: &Metrics, host: &dyn Host) {
        metrics.count(host, &self.name(series::REQUESTS), 1);
    }

    /// Count an error status (4xx or 5xx) the client gets; other statuses count nothing.
    pub fn status(&self, metrics: &Metrics, host: &dyn Host, status: u16) {
        let class = match status {
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => return,
        };
        let name = format!("{}status.{class}.{}", self.prefix, series::ERRORS);
        metrics.count(host, &name, 1);
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
            metrics.count(host, &self.name(series::INPUT_TOKENS), t.input);
            metrics.count(host, &self.name(series::OUTPUT_TOKENS), t.output);
        }
        if let (Some(start), Some(now)) = (self.sent_ns, host.now_nanos()) {
            let ms = now.saturating_sub(start) / 1_000_000;
            metrics.observe(host, &self.name(series::DURATION), ms);
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
}
