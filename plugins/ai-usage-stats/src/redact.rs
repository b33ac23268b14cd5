//! Captured text for the audit record: PII redacted, then cut to a byte limit.
//!
//! A simple, dependency-free redaction (no regex engine in the `.wasm`):
//!
//! * card numbers: 13 to 19 digits, optionally grouped by single spaces or dashes, passing the
//!   Luhn check → `[CARD]`;
//! * e-mail addresses: a word (punctuation around it stripped) with a non-empty local part, `@`,
//!   and a domain with a dot → `[EMAIL]`;
//! * API keys and secrets: a word that starts with a well-known key prefix (`sk-`, `sk_`, `pk_`,
//!   `rk_`, `ghp_`, `gho_`, `xoxb-`, `xoxp-`, `AKIA`, `AIza`) and is at least 16 characters, or
//!   any run of at least 32 letters, digits, `-`, `_` with both letters and digits → `[KEY]`.
//!
//! It is a best effort for audit logs, not a data-loss-prevention filter.

use aigw_shared::checksum::luhn;

/// The bytes of text [`capture`] looks at for a limit of `max_bytes`: what may be kept, plus a
/// margin so a secret cut at the limit is still recognised as one. Collecting more is wasted.
pub fn window(max_bytes: usize) -> usize {
    max_bytes.saturating_add(64)
}

/// Redact (when `redact`) and cut `text` to at most `max_bytes` bytes on a character boundary.
/// Returns the text and whether it was cut.
pub fn capture(text: &str, max_bytes: usize, redact: bool) -> (String, bool) {
    let window = cut(text, window(max_bytes));
    let redacted = if redact {
        redact_pii(window)
    } else {
        window.to_owned()
    };
    let kept = cut(&redacted, max_bytes);
    let truncated = kept.len() < redacted.len() || window.len() < text.len();
    (kept.to_owned(), truncated)
}

/// The longest prefix of `s` of at most `max` bytes ending on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// Replace card numbers, e-mail addresses and key-like words.
pub fn redact_pii(text: &str) -> String {
    let cards = redact_cards(text);
    let mut out = String::with_capacity(cards.len());
    let mut word_start: Option<usize> = None;
    for (i, c) in cards
        .char_indices()
        .chain(std::iter::once((cards.len(), ' ')))
    {
        if c.is_whitespace() {
            if let Some(s) = word_start.take() {
                out.push_str(&redact_word(cards.get(s..i).unwrap_or_default()));
            }
            if i < cards.len() {
                out.push(c);
            }
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    out
}

fn redact_word(word: &str) -> String {
    let trim = |c: char| !(c.is_alphanumeric() || c == '-' || c == '_' || c == '@' || c == '.');
    let core = word.trim_matches(trim);
    let core = core.trim_end_matches('.');
    if core.is_empty() {
        return word.to_owned();
    }
    let label = if is_email(core) {
        "[EMAIL]"
    } else if is_key(core) {
        "[KEY]"
    } else {
        return word.to_owned();
    };
    word.replacen(core, label, 1)
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

const KEY_PREFIXES: [&str; 10] = [
    "sk-", "sk_", "pk_", "rk_", "ghp_", "gho_", "xoxb-", "xoxp-", "AKIA", "AIza",
];

fn is_key(s: &str) -> bool {
    let charset = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !charset {
        return false;
    }
    if s.len() >= 16 && KEY_PREFIXES.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    s.len() >= 32
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// Replace digit runs (single spaces or dashes between groups) of 13–19 digits that pass Luhn.
fn redact_cards(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let starts_run = bytes.get(i).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !bytes.get(i - 1).is_some_and(u8::is_ascii_alphanumeric));
        if !starts_run {
            i += 1;
            continue;
        }
        // Extend over digits and single separators followed by a digit.
        let mut end = i;
        let mut digits = Vec::new();
        while let Some(&b) = bytes.get(end) {
            if b.is_ascii_digit() {
                digits.push(b - b'0');
                end += 1;
            } else if (b == b' ' || b == b'-') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        let bounded = !bytes.get(end).is_some_and(u8::is_ascii_alphanumeric);
        if bounded && (13..=19).contains(&digits.len()) && luhn(&digits) {
            out.push_str(text.get(copied..i).unwrap_or_default());
            out.push_str("[CARD]");
            copied = end;
        }
        i = end.max(i + 1);
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keys_and_cards_are_redacted_and_the_rest_kept() {
        let text = "Mail bob.smith@example.co.uk, key sk-proj-abcdefghijklmnop1234, \
                    card 4111 1111 1111 1111 or 4111-1111-1111-1111; order 1234567890123 stays.";
        assert_eq!(
            redact_pii(text),
            "Mail [EMAIL], key [KEY], card [CARD] or [CARD]; order 1234567890123 stays."
        );
    }

    #[test]
    fn long_mixed_tokens_are_keys_but_words_and_numbers_are_not() {
        assert_eq!(
            redact_pii("token abcdefghijklmnopqrstuvwxyz0123456789 ok"),
            "token [KEY] ok"
        );
        assert_eq!(
            redact_pii("supercalifragilisticexpialidocious-and-more-words"),
            "supercalifragilisticexpialidocious-and-more-words"
        );
        assert_eq!(redact_pii("a@b is not mail"), "a@b is not mail");
        assert_eq!(redact_pii("AKIAIOSFODNN7EXAMPLE"), "[KEY]");
    }

    #[test]
    fn capture_cuts_on_a_character_boundary_after_redacting() {
        let (t, cut_) = capture("héllo wörld", 3, false);
        assert_eq!((t.as_str(), cut_), ("hé", true));
        let (t, cut_) = capture("mail a@b.io now", 100, true);
        assert_eq!((t.as_str(), cut_), ("mail [EMAIL] now", false));
        let (t, cut_) = capture("mail a@b.io now", 100, false);
        assert_eq!((t.as_str(), cut_), ("mail a@b.io now", false));
    }

    #[test]
    fn a_secret_at_the_limit_is_still_recognised() {
        let key = "sk-abcdefghijklmnopqrstuvwxyz";
        let (t, cut_) = capture(&format!("x {key}"), 10, true);
        assert_eq!((t.as_str(), cut_), ("x [KEY]", false));
    }
}
