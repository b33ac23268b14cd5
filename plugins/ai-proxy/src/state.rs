//! What one worker (VM) keeps across requests: metric handles, the bounded model labels, the
//! round-robin position of every key pool and the OAuth token cache of every provider that
//! fetches tokens. Keyed by provider name, so `_rules_` entries naming the same provider share
//! them. The config itself stays immutable.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use aigw_shared::metrics::Metrics;

use crate::config::Config;
use crate::provider::auth::TokenCache;
use crate::provider::Provider;
use crate::stats::{ModelLabels, SeriesCache};

/// How often the worker looks at its tokens (refreshing those near expiry in the background).
pub const TOKEN_TICK: Duration = Duration::from_secs(5);

/// A provider whose tokens the worker refreshes: the config it came from and its index there.
#[derive(Debug, Clone)]
pub struct TokenProvider {
    /// The config holding the provider.
    pub config: Rc<Config>,
    /// The provider's index in `config.providers`.
    pub index: usize,
}

impl TokenProvider {
    /// The provider.
    pub fn provider(&self) -> Option<&Provider> {
        self.config.providers.get(self.index)
    }
}

/// The worker's state.
#[derive(Debug, Default)]
pub struct State {
    /// Metric ids by name.
    pub metrics: Metrics,
    /// Model labels handed out to per-request metrics (bounded).
    pub model_labels: ModelLabels,
    /// Per-request metric series by provider and model, made once.
    pub series: SeriesCache,
    turns: RefCell<HashMap<String, usize>>,
    tokens: RefCell<HashMap<String, TokenCache>>,
    /// Providers that fetch tokens, one per name (refreshed on the tick).
    pub token_providers: Vec<TokenProvider>,
}

impl State {
    /// State for a worker whose configs are `configs` (the global one and each rule's).
    pub fn new<'a>(configs: impl Iterator<Item = &'a Rc<Config>>) -> Self {
        let mut token_providers: Vec<TokenProvider> = Vec::new();
        for config in configs {
            for (index, p) in config.providers.iter().enumerate() {
                let known = token_providers
                    .iter()
                    .any(|t| t.provider().is_some_and(|q| q.name == p.name));
                if p.fetches_tokens() && !known {
                    token_providers.push(TokenProvider {
                        config: Rc::clone(config),
                        index,
                    });
                }
            }
        }
        Self {
            token_providers,
            ..Self::default()
        }
    }

    /// The next key of `provider`'s pool (round robin per worker).
    pub fn next_key<'p>(&self, provider: &'p Provider) -> Option<&'p str> {
        if !provider.has_keys() {
            return None;
        }
        let mut turns = self.turns.borrow_mut();
        let turn = match turns.get_mut(&provider.name) {
            Some(t) => t,
            None => turns.entry(provider.name.clone()).or_default(),
        };
        let key = provider.key(*turn);
        *turn = turn.wrapping_add(1);
        key
    }

    /// Run `f` on `provider`'s token cache.
    pub fn with_tokens<R>(&self, provider: &str, f: impl FnOnce(&mut TokenCache) -> R) -> R {
        let mut tokens = self.tokens.borrow_mut();
        match tokens.get_mut(provider) {
            Some(cache) => f(cache),
            None => f(tokens.entry(provider.to_owned()).or_default()),
        }
    }

    /// `provider`'s access token, while usable at `now_unix`.
    pub fn access_token(&self, provider: &str, now_unix: i64) -> Option<String> {
        self.tokens
            .borrow()
            .get(provider)
            .and_then(|c| c.usable(now_unix))
            .map(str::to_owned)
    }
}
