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
use crate::keys::{self, Ejections, Pick};
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
    rng: std::cell::Cell<u64>,
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

    /// The key of `provider`'s pool for this request: its index and value, by the pool's
    /// selection, skipping the keys in `ejections` at `now_unix`; `consumer` is the client key's
    /// hash (for `consumer` selection).
    pub fn next_key<'p>(
        &self,
        provider: &'p Provider,
        ejections: &Ejections,
        consumer: Option<u64>,
        now_unix: i64,
    ) -> Option<(usize, &'p str)> {
        if !provider.has_keys() {
            return None;
        }
        let mut turns = self.turns.borrow_mut();
        let turn = match turns.get_mut(&provider.name) {
            Some(t) => t,
            None => turns.entry(provider.name.clone()).or_default(),
        };
        let how = Pick {
            turn: *turn,
            random: self.random(now_unix),
            consumer,
        };
        *turn = turn.wrapping_add(1);
        let index = keys::pick(
            provider.key_hashes(),
            provider.selection,
            ejections,
            now_unix,
            how,
        )?;
        Some((index, provider.key(index)?))
    }

    /// A random number (xorshift per worker, seeded from the clock at its first use: spread,
    /// not secrecy).
    pub(crate) fn random(&self, now_unix: i64) -> u64 {
        let mut x = self.rng.get();
        if x == 0 {
            x = now_unix.unsigned_abs() ^ 0x9E37_79B9_7F4A_7C15;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
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
