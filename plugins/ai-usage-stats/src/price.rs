//! The price table: per model (exact name or `prefix*`), integer pico-dollars per token, and the
//! cost of one request's tokens.
//!
//! Prices are configured in USD per million tokens; one pico-dollar (10⁻¹² USD) per token is
//! 10⁻⁶ USD per million tokens, so every price with up to six decimals is exact and a request's
//! cost is an integer sum. The cost counter is in micro-dollars; the remainder below one
//! micro-dollar is carried per series ([`crate::stats`]), so many small requests add up exactly.

use std::collections::HashMap;

/// Prices of one model in pico-dollars per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Input tokens not read from the cache.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cached_input: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write_input: u64,
}

/// Token counts a cost is computed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// Of which read from the cache.
    pub cached: u64,
    /// Of which written to the cache.
    pub cache_write: u64,
    /// Output tokens.
    pub output: u64,
}

impl Rates {
    /// The cost of `t` in pico-dollars (saturating).
    pub fn cost_pico(&self, t: Billed) -> u64 {
        let cached = t.cached.min(t.input);
        let written = t.cache_write.min(t.input - cached);
        let fresh = t.input - cached - written;
        let part = |n: u64, rate: u64| u128::from(n).saturating_mul(u128::from(rate));
        let sum = part(fresh, self.input)
            .saturating_add(part(cached, self.cached_input))
            .saturating_add(part(written, self.cache_write_input))
            .saturating_add(part(t.output, self.output));
        u64::try_from(sum).unwrap_or(u64::MAX)
    }
}

/// Prices by model: exact names first, else the longest matching `prefix*`.
#[derive(Debug, Default)]
pub struct PriceTable {
    exact: HashMap<String, Rates>,
    /// Longest prefix first.
    prefixes: Vec<(String, Rates)>,
}

impl PriceTable {
    /// Add `pattern` (a name, or a prefix ending in `*`).
    pub fn insert(&mut self, pattern: &str, rates: Rates) {
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.push((prefix.to_owned(), rates));
                self.prefixes
                    .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
            }
            None => {
                self.exact.insert(pattern.to_owned(), rates);
            }
        }
    }

    /// True when no price is configured.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// The prices of `model`, if any pattern matches.
    pub fn lookup(&self, model: &str) -> Option<Rates> {
        if let Some(r) = self.exact.get(model) {
            return Some(*r);
        }
        self.prefixes
            .iter()
            .find(|(p, _)| model.starts_with(p.as_str()))
            .map(|(_, r)| *r)
    }

    /// The prices for a request: the model that answered, else the one asked for.
    pub fn for_request(&self, response_model: Option<&str>, request_model: &str) -> Option<Rates> {
        response_model
            .and_then(|m| self.lookup(m))
            .or_else(|| self.lookup(request_model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(input: u64) -> Rates {
        Rates {
            input,
            output: 2 * input,
            cached_input: input / 2,
            cache_write_input: input * 2,
        }
    }

    #[test]
    fn exact_names_win_then_the_longest_prefix() {
        let mut t = PriceTable::default();
        t.insert("gpt-*", rates(1));
        t.insert("gpt-4o*", rates(2));
        t.insert("gpt-4o-mini", rates(3));
        assert_eq!(t.lookup("gpt-4o-mini").unwrap().input, 3);
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").unwrap().input, 2);
        assert_eq!(t.lookup("gpt-3.5").unwrap().input, 1);
        assert_eq!(t.lookup("claude"), None);
        assert_eq!(
            t.for_request(Some("claude"), "gpt-4o-mini").unwrap().input,
            3,
            "an unpriced response model falls back to the requested one"
        );
    }

    #[test]
    fn cached_input_is_priced_apart_from_fresh_input() {
        let r = Rates {
            input: 150_000,
            output: 600_000,
            cached_input: 75_000,
            cache_write_input: 187_500,
        };
        let t = Billed {
            input: 1000,
            cached: 400,
            cache_write: 100,
            output: 10,
        };
        assert_eq!(
            r.cost_pico(t),
            500 * 150_000 + 400 * 75_000 + 100 * 187_500 + 10 * 600_000
        );
        let over = Billed {
            input: 1,
            cached: 5,
            cache_write: 5,
            output: 0,
        };
        assert_eq!(r.cost_pico(over), 75_000, "cached never exceeds input");
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let r = Rates {
            input: u64::MAX,
            output: u64::MAX,
            cached_input: 0,
            cache_write_input: 0,
        };
        let t = Billed {
            input: u64::MAX,
            cached: 0,
            cache_write: 0,
            output: u64::MAX,
        };
        assert_eq!(r.cost_pico(t), u64::MAX);
    }
}
