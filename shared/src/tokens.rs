//! Cheap token estimates for when a provider reports no usage; always flagged as estimated.
//!
//! The estimate needs no vocabulary, so it costs one pass over the text and no memory:
//!
//! * ≈ 4 characters per token for text that is not CJK (OpenAI's rule of thumb for English),
//! * but at least one token per word (short words, code and numbers tokenise worse than 4 chars),
//! * plus one token per CJK ideograph, kana or hangul syllable (such scripts average about one token
//!   per character with current BPE vocabularies),
//! * rounded up, so any non-empty text is at least one token.
//!
//! `estimate = max(ceil(other_chars / 4), words) + cjk_chars`. It is typically within ±25 % of a real
//! tokenizer for prose; use it for limits and dashboards, never for billing. [`TokenEstimator`] does
//! the same incrementally over text deltas (a word split across two deltas is counted once).

/// A token count and whether it was estimated rather than reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCount {
    /// The number of tokens.
    pub tokens: u64,
    /// True when computed by [`estimate`] / [`TokenEstimator`], false when reported by the provider.
    pub estimated: bool,
}

impl TokenCount {
    /// A count reported by the provider.
    pub fn reported(tokens: u64) -> Self {
        Self {
            tokens,
            estimated: false,
        }
    }

    /// The sum of two counts; estimated if either is.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            tokens: self.tokens.saturating_add(other.tokens),
            estimated: self.estimated || other.estimated,
        }
    }
}

/// Estimate the tokens of one text.
pub fn estimate(text: &str) -> TokenCount {
    let mut e = TokenEstimator::new();
    e.push(text);
    e.estimate()
}

/// An incremental estimator: push text pieces, read the estimate at any time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenEstimator {
    other_chars: u64,
    cjk_chars: u64,
    words: u64,
    in_word: bool,
}

impl TokenEstimator {
    /// An empty estimator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a piece of text (continuing the previous piece: a word may span pieces).
    pub fn push(&mut self, text: &str) {
        for c in text.chars() {
            if is_cjk(c) {
                self.cjk_chars += 1;
                self.in_word = false;
            } else if c.is_whitespace() {
                self.other_chars += 1;
                self.in_word = false;
            } else {
                self.other_chars += 1;
                if !self.in_word {
                    self.words += 1;
                    self.in_word = true;
                }
            }
        }
    }

    /// Mark a boundary between texts (so the next piece starts a new word).
    pub fn break_word(&mut self) {
        self.in_word = false;
    }

    /// Characters seen so far.
    pub fn chars(&self) -> u64 {
        self.other_chars + self.cjk_chars
    }

    /// The estimate for everything pushed so far.
    pub fn estimate(&self) -> TokenCount {
        let by_chars = self.other_chars.div_ceil(4);
        TokenCount {
            tokens: by_chars.max(self.words) + self.cjk_chars,
            estimated: true,
        }
    }
}

/// CJK ideographs, kana, hangul and CJK punctuation.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x30FF      // CJK punctuation, hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF    // half/full-width forms
        | 0x20000..=0x2FA1F) // CJK extensions B..
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_zero_tokens_but_still_estimated() {
        assert_eq!(
            estimate(""),
            TokenCount {
                tokens: 0,
                estimated: true
            }
        );
    }

    #[test]
    fn english_prose_is_about_four_characters_per_token() {
        // 44 characters, 9 words: max(11, 9) = 11 (a real tokenizer says 10).
        assert_eq!(
            estimate("The quick brown fox jumps over the lazy dog.").tokens,
            11
        );
    }

    #[test]
    fn many_short_words_count_at_least_one_token_each() {
        assert_eq!(estimate("a b c d e f g h").tokens, 8);
    }

    #[test]
    fn cjk_characters_count_one_token_each() {
        assert_eq!(estimate("你好世界").tokens, 4);
        assert_eq!(estimate("hi 你好").tokens, 1 + 2);
    }

    #[test]
    fn pieces_give_the_same_estimate_as_the_whole_text() {
        let mut e = TokenEstimator::new();
        for piece in ["Hel", "lo", " wor", "ld", "!"] {
            e.push(piece);
        }
        assert_eq!(e.estimate(), estimate("Hello world!"));
        assert_eq!(e.chars(), 12);
    }

    #[test]
    fn sums_are_estimated_if_any_part_is() {
        let sum = TokenCount::reported(10).plus(estimate("abcd"));
        assert_eq!(
            sum,
            TokenCount {
                tokens: 11,
                estimated: true
            }
        );
        assert!(
            !TokenCount::reported(1)
                .plus(TokenCount::reported(2))
                .estimated
        );
    }
}
