//! ai-semantic-cache: answer a repeated or rephrased question without calling the model.
//!
//! A chat (OpenAI) or messages (Anthropic) request is keyed by its last user message, every user
//! message or the whole conversation, in a partition of route, model, optionally consumer, and
//! the system prompt's hash. The exact tier (local shared data with a TTL) is asked first, then
//! the semantic tier: the key text is embedded by an OpenAI-compatible embeddings service and
//! the nearest cached answer of the partition is looked up in a vector store (Chroma, Qdrant,
//! Milvus); at or above the similarity threshold it is a hit. A hit is answered locally in the
//! caller's protocol, streamed when a stream was asked for. A miss goes to the model; its answer
//! is stored only when it is a complete, normal HTTP 200 answer. Every embedding or vector store
//! failure fails open (the request goes to the model) with a log line and a metric.
//!
//! The proxy-wasm entry point is the one `export_plugin!` line below; everything else is
//! host-independent and tested natively.

pub mod capture;
pub mod config;
pub mod embed;
pub mod entry;
pub mod exact;
pub mod filter;
pub mod key;
pub mod replay;
pub mod store;

use std::cell::RefCell;
use std::rc::Rc;

use aigw_shared::config::ConfigError;
use aigw_shared::host::Capabilities;
use aigw_shared::metrics::Metrics;
use aigw_shared::plugin::{Ctx, FilterEnv, Plugin, PluginConfig};

pub use config::Config;
pub use filter::Filter;

/// Metric names (Envoy shows them as `wasmcustom.<name>`; `outcome`, `reason` and `token_type`
/// become labels with the stats tags shipped in `envoy-configs/`).
pub mod metric {
    /// Requests answered from the exact tier.
    pub const HIT_EXACT: &str = "aigw.semantic_cache.outcome.hit_exact.requests";
    /// Requests answered from the semantic tier.
    pub const HIT_SEMANTIC: &str = "aigw.semantic_cache.outcome.hit_semantic.requests";
    /// Requests looked up and sent to the model.
    pub const MISS: &str = "aigw.semantic_cache.outcome.miss.requests";
    /// Requests not cached by a skip rule (see `reason` in [`skipped`]).
    pub const SKIP: &str = "aigw.semantic_cache.outcome.skip.requests";
    /// Requests that bypassed the cache (`Cache-Control`, the bypass header).
    pub const BYPASS: &str = "aigw.semantic_cache.outcome.bypass.requests";
    /// Histogram: the similarity (percent) of the nearest cached answer of each semantic lookup.
    pub const NEAREST: &str = "aigw.semantic_cache.nearest_similarity_percent";
    /// Answers stored.
    pub const STORED: &str = "aigw.semantic_cache.answers_stored";
    /// Answers of misses not stored (error, cut, tool calls, too large, …).
    pub const NOT_STORED: &str = "aigw.semantic_cache.answers_not_stored";
    /// Input tokens a hit did not send to the model.
    pub const SAVED_INPUT: &str = "aigw.semantic_cache.token_type.input.tokens_saved";
    /// Output tokens a hit did not make the model generate.
    pub const SAVED_OUTPUT: &str = "aigw.semantic_cache.token_type.output.tokens_saved";
    /// Embedding failures (fail-open).
    pub const ERR_EMBEDDING: &str = "aigw.semantic_cache.reason.embedding.errors";
    /// Vector store collection set-up failures.
    pub const ERR_SETUP: &str = "aigw.semantic_cache.reason.vector_setup.errors";
    /// Vector store query failures.
    pub const ERR_QUERY: &str = "aigw.semantic_cache.reason.vector_query.errors";
    /// Vector store upsert failures.
    pub const ERR_STORE: &str = "aigw.semantic_cache.reason.vector_store.errors";
    /// Local shared-data failures.
    pub const ERR_LOCAL: &str = "aigw.semantic_cache.reason.shared_data.errors";
    /// Redis failures (the exact tier on Higress).
    pub const ERR_REDIS: &str = "aigw.semantic_cache.reason.redis.errors";
    /// Requests whose body was not a valid request (answered 400).
    pub const INVALID: &str = "aigw.semantic_cache.reason.invalid_body.errors";

    /// `aigw.semantic_cache.reason.<reason>.skipped`.
    pub fn skipped(reason: &str) -> String {
        format!("aigw.semantic_cache.reason.{reason}.skipped")
    }
}

/// What one worker keeps: metric ids and the vector store's collection handle.
#[derive(Debug, Default)]
pub struct State {
    /// Metric ids by name.
    pub metrics: Metrics,
    /// The vector store's handle (Chroma's collection id), once set up.
    pub handle: RefCell<Option<String>>,
    /// Skip metric names, made once.
    pub skip_names: [String; 4],
}

impl State {
    fn new() -> Self {
        use key::Skip;
        Self {
            metrics: Metrics::new(),
            handle: RefCell::new(None),
            skip_names: Skip::ALL.map(|s| metric::skipped(s.as_str())),
        }
    }
}

/// The plugin.
#[derive(Debug)]
pub struct SemanticCache;

impl Plugin for SemanticCache {
    const NAME: &'static str = "ai-semantic-cache";
    type Config = Config;
    type State = State;
    type RootCall = ();
    type Filter = Filter;

    fn build_config(value: &serde_json::Value) -> Result<Config, ConfigError> {
        Config::build(value)
    }

    fn new_state(_config: &PluginConfig<Self>, _env: &FilterEnv) -> State {
        State::new()
    }

    fn new_filter(config: Rc<Config>, state: Rc<State>, env: &FilterEnv) -> Filter {
        Filter::new(config, state, *env)
    }

    fn on_start(config: &PluginConfig<Self>, _state: &State, cx: &mut Ctx<'_, ()>) {
        aigw_shared::redis::connect(
            cx.host,
            Self::NAME,
            config.all().filter_map(|c| c.redis.as_ref()),
        );
    }

    fn host_limitations(config: &Config, caps: Capabilities) -> Vec<String> {
        if !(caps.shared_data && caps.clock) {
            return vec![
                "ai-semantic-cache: this host has no shared data or clock, so nothing is cached: \
                 every request goes to the model"
                    .into(),
            ];
        }
        if config.redis.is_some() && !caps.redis {
            return vec![
                "ai-semantic-cache: `redis` is set but this build has no Redis calls (the \
                 Higress build has): the exact tier stays in this gateway's shared data"
                    .into(),
            ];
        }
        Vec::new()
    }
}

aigw_shared::export_plugin!(SemanticCache);
