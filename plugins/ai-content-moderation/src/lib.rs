//! ai-content-moderation: input and output guardrails for LLM traffic.
//!
//! Requests (OpenAI chat completions, Anthropic messages): every message text, tool results
//! included, is checked once against local rules compiled at configure time (deny words,
//! regex rules, prompt-injection heuristics, a size limit) and PII / secret detectors whose
//! values are blocked, masked with placeholders, hashed or only counted. A blocked request is
//! answered in the caller's protocol (an error, or an assistant refusal). Answers: masked
//! values are put back for the caller, JSON and streams alike, and output rules are checked on
//! streams in windows, ending a stream properly in the caller's protocol when one matches.
//!
//! The proxy-wasm entry point is the one `export_plugin!` line below; everything else is
//! host-independent and tested natively.

pub mod answer;
pub mod config;
pub mod detect;
pub mod filter;
pub mod json;
pub mod normalize;
pub mod output;
pub mod request;
pub mod rules;
pub mod service;
pub mod stream;
pub mod vault;

use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::Capabilities;
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{FilterEnv, Plugin, PluginConfig};

pub use config::Config;
pub use filter::Filter;

/// Metric names (Envoy shows them as `wasmcustom.<name>`; `reason` and `kind` become labels).
pub mod metric {
    /// Prefix of every metric.
    pub const PREFIX: &str = "aigw.content_moderation";
    /// Requests whose texts were checked.
    pub const CHECKED: &str = "aigw.content_moderation.requests_checked";
    /// Values put back into answers.
    pub const RESTORED: &str = "aigw.content_moderation.values_restored";
    /// Suffix: requests refused (per `reason`).
    pub const BLOCKED: &str = "requests_blocked";
    /// Suffix: log-only matches (per `reason`).
    pub const LOGGED: &str = "matches_logged";
    /// Suffix: answers cut (per `reason`).
    pub const CUT: &str = "answers_cut";
    /// Suffix: calls to an external service that failed (per `reason`: `service_<name>`).
    pub const SERVICE_ERRORS: &str = "service_errors";
    /// Suffix: PII values masked (per `kind`).
    pub const MASKED: &str = "values_masked";
    /// Suffix: PII values hashed (per `kind`).
    pub const HASHED: &str = "values_hashed";
    /// Suffix: PII values seen and let through (per `kind`).
    pub const SEEN: &str = "values_logged";
    /// Suffix: PII values masked in answers (per `kind`).
    pub const ANSWER_MASKED: &str = "answer_values_masked";
    /// Suffix: PII values hashed in answers (per `kind`).
    pub const ANSWER_HASHED: &str = "answer_values_hashed";
    /// Suffix: PII values seen in answers and let through (per `kind`).
    pub const ANSWER_SEEN: &str = "answer_values_logged";
    /// Reason label: a request body over `limits.maxBodyBytes`.
    pub const SIZE_BODY: &str = "aigw.content_moderation.reason.size_body.requests_blocked";
    /// Reason label: message text over `limits.maxInputChars`.
    pub const SIZE_CHARS: &str = "aigw.content_moderation.reason.size_input_chars.requests_blocked";
    /// Reason label: a body that is not a JSON object.
    pub const INVALID: &str = "aigw.content_moderation.reason.invalid_body.requests_blocked";

    /// `aigw.content_moderation.reason.<label>.<what>`.
    pub fn reason(label: &str, what: &str) -> String {
        format!("{PREFIX}.reason.{label}.{what}")
    }

    /// `aigw.content_moderation.kind.<kind>.<what>`.
    pub fn kind(kind: &str, what: &str) -> String {
        format!("{PREFIX}.kind.{kind}.{what}")
    }
}

/// Metric names of one PII kind, formatted once per worker.
#[derive(Debug)]
pub struct KindMetrics {
    /// Requests refused for it.
    pub blocked: String,
    /// Values masked.
    pub masked: String,
    /// Values hashed.
    pub hashed: String,
    /// Values only counted.
    pub seen: String,
    /// Answers cut for it (`output.pii` action `block`).
    pub cut: String,
    /// Values masked in answers.
    pub answer_masked: String,
    /// Values hashed in answers.
    pub answer_hashed: String,
    /// Values only counted in answers.
    pub answer_seen: String,
}

/// What one worker keeps: metric ids and the per-kind metric names.
#[derive(Debug)]
pub struct State {
    /// Metric ids by name.
    pub metrics: Metrics,
    /// Per PII kind, in `Kind::ALL` order.
    pub kinds: Vec<KindMetrics>,
}

impl Default for State {
    fn default() -> Self {
        let kinds = detect::Kind::ALL
            .iter()
            .map(|k| KindMetrics {
                blocked: metric::reason(&format!("pii_{}", k.name()), metric::BLOCKED),
                masked: metric::kind(k.name(), metric::MASKED),
                hashed: metric::kind(k.name(), metric::HASHED),
                seen: metric::kind(k.name(), metric::SEEN),
                cut: metric::reason(&format!("pii_{}", k.name()), metric::CUT),
                answer_masked: metric::kind(k.name(), metric::ANSWER_MASKED),
                answer_hashed: metric::kind(k.name(), metric::ANSWER_HASHED),
                answer_seen: metric::kind(k.name(), metric::ANSWER_SEEN),
            })
            .collect();
        Self {
            metrics: Metrics::new(),
            kinds,
        }
    }
}

impl State {
    /// The metric names of `kind`.
    pub fn kind(&self, kind: detect::Kind) -> Option<&KindMetrics> {
        self.kinds.get(kind as usize)
    }
}

/// The plugin.
#[derive(Debug)]
pub struct ContentModeration;

impl Plugin for ContentModeration {
    const NAME: &'static str = "ai-content-moderation";
    type Config = Config;
    type State = State;
    type RootCall = ();
    type Filter = Filter;

    fn build_config(value: &serde_json::Value) -> Result<Config, ConfigError> {
        Config::build(value)
    }

    fn new_state(_config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::default()
    }

    fn new_filter(config: Rc<Config>, state: Rc<State>, env: &FilterEnv) -> Filter {
        Filter::new(config, state, *env)
    }

    fn host_limitations(_config: &Config, caps: Capabilities) -> Vec<String> {
        if caps.body_write {
            Vec::new()
        } else {
            vec![
                "ai-content-moderation: this host cannot rewrite request or response bodies, so \
                 requests and answers pass unchecked (nothing is blocked, masked or restored)"
                    .into(),
            ]
        }
    }
}

aigw_shared::export_plugin!(ContentModeration);
