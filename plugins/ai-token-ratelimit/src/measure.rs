//! What a limit counts, and how much of it a request is: tokens (input, output, total), a
//! weighted cost (per-model weights for input, output and cached input tokens) or requests.
//! Amounts are in milli-units ([`crate::bucket::MILLI`]).

use std::collections::HashMap;

use crate::bucket::MILLI;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Input (prompt) tokens, cached ones included.
    Input,
    /// Output (completion) tokens, reasoning included.
    Output,
    /// Input + output tokens.
    Total,
    /// Weighted tokens: `input * w.input + cached * w.cachedInput + output * w.output`.
    Cost,
    /// Requests.
    Requests,
}

impl Measure {
    /// True for everything but requests (their numbers go in the `-tokens` headers).
    pub fn is_token_family(self) -> bool {
        self != Self::Requests
    }
}

/// Token counts of one request (reserved or real).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Of which read from a prompt cache.
    pub cached: u64,
    /// Output tokens.
    pub output: u64,
}

/// Cost weights in milli-units per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weights {
    /// Per uncached input token.
    pub input: u64,
    /// Per output token.
    pub output: u64,
    /// Per cached input token.
    pub cached_input: u64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            input: 1000,
            output: 1000,
            cached_input: 1000,
        }
    }
}

/// Weights by model: exact names, then the longest matching `prefix*`; 1 per token otherwise.
#[derive(Debug, Clone, Default)]
pub struct WeightTable {
    exact: HashMap<String, Weights>,
    /// Longest prefix first.
    prefixes: Vec<(String, Weights)>,
}

impl WeightTable {
    /// Add `pattern` (a model name, or a prefix ending in `*`).
    pub fn insert(&mut self, pattern: &str, weights: Weights) {
        match pattern.strip_suffix('*') {
            Some(prefix) => {
                self.prefixes.push((prefix.to_owned(), weights));
                self.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
            }
            None => {
                self.exact.insert(pattern.to_owned(), weights);
            }
        }
    }

    /// The weights of `model`.
    pub fn lookup(&self, model: &str) -> Weights {
        if let Some(w) = self.exact.get(model) {
            return *w;
        }
        self.prefixes
            .iter()
            .find(|(p, _)| model.starts_with(p.as_str()))
            .map_or_else(Weights::default, |(_, w)| *w)
    }
}

fn milli(tokens: u64) -> i64 {
    i64::try_from(tokens.saturating_mul(MILLI as u64)).unwrap_or(i64::MAX)
}

/// The amount of `measure` in `tokens` (milli-units); a request is one unit.
pub fn amount(measure: Measure, tokens: &Tokens, weights: &Weights) -> i64 {
    match measure {
        Measure::Input => milli(tokens.input),
        Measure::Output => milli(tokens.output),
        Measure::Total => milli(tokens.input.saturating_add(tokens.output)),
        Measure::Cost => {
            let cached = tokens.cached.min(tokens.input);
            let cost = (tokens.input - cached)
                .saturating_mul(weights.input)
                .saturating_add(cached.saturating_mul(weights.cached_input))
                .saturating_add(tokens.output.saturating_mul(weights.output));
            i64::try_from(cost).unwrap_or(i64::MAX)
        }
        Measure::Requests => MILLI,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_measure_counts_its_part_in_milli_units() {
        let t = Tokens {
            input: 100,
            cached: 40,
            output: 10,
        };
        let w = Weights {
            input: 1000,
            output: 4000,
            cached_input: 500,
        };
        assert_eq!(amount(Measure::Input, &t, &w), 100_000);
        assert_eq!(amount(Measure::Output, &t, &w), 10_000);
        assert_eq!(amount(Measure::Total, &t, &w), 110_000);
        // 60 uncached * 1 + 40 cached * 0.5 + 10 out * 4 = 120 units.
        assert_eq!(amount(Measure::Cost, &t, &w), 120_000);
        assert_eq!(amount(Measure::Requests, &t, &w), 1000);
    }

    #[test]
    fn weights_are_found_exactly_then_by_longest_prefix_then_default() {
        let mut table = WeightTable::default();
        let w = |i| Weights {
            input: i,
            output: i,
            cached_input: i,
        };
        table.insert("gpt-*", w(1));
        table.insert("gpt-4o*", w(2));
        table.insert("gpt-4o-mini", w(3));
        assert_eq!(table.lookup("gpt-4o-mini").input, 3);
        assert_eq!(table.lookup("gpt-4o-2024").input, 2);
        assert_eq!(table.lookup("gpt-5").input, 1);
        assert_eq!(table.lookup("claude"), Weights::default());
    }
}
