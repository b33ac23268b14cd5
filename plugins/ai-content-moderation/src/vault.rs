//! The values masked in one request, and how they are put back.
//!
//! A masked value becomes `[LABEL_n]`: `n` counts per label within the request, and the same
//! value gets the same placeholder each time it occurs (so the model sees one person as one
//! placeholder). A number whose placeholder already occurs in the request body is skipped, so a
//! user who writes `[EMAIL_1]` does not get a real address back in its place.

use std::borrow::Cow;
use std::collections::HashMap;

use memchr::memmem;

use crate::detect::Kind;
use crate::json;

/// One masked value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    /// `[EMAIL_1]`.
    pub placeholder: String,
    /// What it stands for.
    pub original: String,
}

/// The masked values of one request.
#[derive(Debug, Default)]
pub struct Vault {
    entries: Vec<Masked>,
    /// Per label: the last number given, and whether the body holds `[LABEL_` at all (looked up
    /// once, so a body with thousands of values is not searched once per value).
    counters: Vec<(&'static str, u32, bool)>,
    longest: usize,
    /// Entry by placeholder, and by (label, value).
    by_placeholder: HashMap<String, usize>,
    by_value: HashMap<(&'static str, String), usize>,
}

impl Vault {
    /// The placeholder for `original` of `kind`, made on first use.
    pub fn placeholder(&mut self, kind: Kind, original: &str, body: &[u8]) -> &str {
        let found = self
            .by_value
            .get(&(kind.label(), original.to_owned()))
            .copied();
        let index = match found {
            Some(i) => i,
            None => {
                let label = kind.label();
                let counter = match self.counters.iter().position(|(l, _, _)| *l == label) {
                    Some(i) => i,
                    None => {
                        let prefix = format!("[{label}_");
                        let in_body = memmem::find(body, prefix.as_bytes()).is_some();
                        self.counters.push((label, 0, in_body));
                        self.counters.len() - 1
                    }
                };
                let placeholder = loop {
                    let Some((_, n, in_body)) = self.counters.get_mut(counter) else {
                        break format!("[{label}_0]");
                    };
                    *n += 1;
                    let p = format!("[{label}_{n}]");
                    if !*in_body || memmem::find(body, p.as_bytes()).is_none() {
                        break p;
                    }
                };
                self.longest = self.longest.max(placeholder.len());
                let index = self.entries.len();
                self.by_placeholder.insert(placeholder.clone(), index);
                self.by_value.insert((label, original.to_owned()), index);
                self.entries.push(Masked {
                    placeholder,
                    original: original.to_owned(),
                });
                index
            }
        };
        self.entries
            .get(index)
            .map(|e| e.placeholder.as_str())
            .unwrap_or_default()
    }

    /// Nothing was masked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The masked values.
    pub fn entries(&self) -> &[Masked] {
        &self.entries
    }

    /// The longest placeholder, in bytes.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// The entry whose placeholder starts `text`.
    fn at(&self, text: &str) -> Option<&Masked> {
        // Bytes, not a str slice: a limit inside a multi-byte character must not widen the
        // search to the whole rest of the text (quadratic over an answer of `[é[é[é…`).
        let bytes = text.as_bytes();
        let head = bytes.get(..bytes.len().min(self.longest)).unwrap_or(bytes);
        let close = memchr::memchr(b']', head)?;
        let key = text.get(..=close)?;
        self.by_placeholder
            .get(key)
            .and_then(|&i| self.entries.get(i))
    }

    /// Whether `tail` (starting with `[`, no `]` yet) may grow into a placeholder.
    pub fn may_start(&self, tail: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.placeholder.len() > tail.len() && e.placeholder.starts_with(tail))
    }

    /// `text` with every placeholder replaced by its value (`json_inner`: the value escaped as
    /// the content of a JSON string, for text that is itself JSON such as tool arguments).
    /// Returns the text and how many values were put back.
    pub fn restore<'t>(&self, text: &'t str, json_inner: bool) -> (Cow<'t, str>, usize) {
        if self.entries.is_empty() || !text.contains('[') {
            return (Cow::Borrowed(text), 0);
        }
        let mut out = String::new();
        let mut copied = 0;
        let mut count = 0;
        for at in memchr::memchr_iter(b'[', text.as_bytes()) {
            if at < copied {
                continue;
            }
            let Some(e) = text.get(at..).and_then(|rest| self.at(rest)) else {
                continue;
            };
            out.push_str(text.get(copied..at).unwrap_or_default());
            if json_inner && json::needs_escape(&e.original) {
                let mut esc = Vec::new();
                json::escape_into(&mut esc, &e.original);
                out.push_str(&String::from_utf8_lossy(&esc));
            } else {
                out.push_str(&e.original);
            }
            copied = at + e.placeholder.len();
            count += 1;
        }
        if count == 0 {
            return (Cow::Borrowed(text), 0);
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        (Cow::Owned(out), count)
    }

    /// Where text may be released up to `limit` without cutting a placeholder in two: `limit`,
    /// or the `[` of a placeholder that starts before it and may end after it.
    pub fn safe_cut(&self, text: &str, limit: usize) -> usize {
        if self.entries.is_empty() {
            return limit;
        }
        let head = text.get(..limit).unwrap_or(text);
        let Some(open) = memchr::memrchr(b'[', head.as_bytes()) else {
            return limit;
        };
        let tail = text.get(open..).unwrap_or_default();
        let reach = open + self.longest;
        if reach <= limit {
            return limit;
        }
        // A complete placeholder that ends before the limit is released whole.
        if let Some(e) = self.at(tail) {
            if open + e.placeholder.len() <= limit {
                return limit;
            }
            return open;
        }
        if self.may_start(tail) {
            open
        } else {
            limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_value_gets_the_same_placeholder_and_numbers_count_per_label() {
        let mut v = Vault::default();
        assert_eq!(v.placeholder(Kind::Email, "a@x.io", b""), "[EMAIL_1]");
        assert_eq!(v.placeholder(Kind::Email, "b@x.io", b""), "[EMAIL_2]");
        assert_eq!(v.placeholder(Kind::Email, "a@x.io", b""), "[EMAIL_1]");
        assert_eq!(v.placeholder(Kind::Phone, "+4420", b""), "[PHONE_1]");
        assert_eq!(v.entries().len(), 3);
    }

    #[test]
    fn a_placeholder_the_user_wrote_is_not_reused() {
        let mut v = Vault::default();
        let body = br#"{"messages":[{"content":"[EMAIL_1] is a@x.io"}]}"#;
        assert_eq!(v.placeholder(Kind::Email, "a@x.io", body), "[EMAIL_2]");
    }

    #[test]
    fn thousands_of_values_get_distinct_placeholders() {
        let mut v = Vault::default();
        let body = b"{\"messages\":[]}";
        for i in 0..3000 {
            let p = v
                .placeholder(Kind::Email, &format!("u{i}@x.io"), body)
                .to_owned();
            assert_eq!(p, format!("[EMAIL_{}]", i + 1));
        }
        assert_eq!(v.entries().len(), 3000);
        let (t, n) = v.restore("[EMAIL_2999] [EMAIL_3000]", false);
        assert_eq!((t.as_ref(), n), ("u2998@x.io u2999@x.io", 2));
    }

    #[test]
    fn restore_puts_values_back_escaped_inside_json_text() {
        let mut v = Vault::default();
        v.placeholder(Kind::Email, "a@x.io", b"");
        v.placeholder(Kind::PrivateKey, "-----BEGIN\nX", b"");
        let (t, n) = v.restore("to [EMAIL_1] and [EMAIL_9] [PRIVATE_KEY_1]", false);
        assert_eq!(
            (t.as_ref(), n),
            ("to a@x.io and [EMAIL_9] -----BEGIN\nX", 2)
        );
        let (t, _) = v.restore(r#"{"k":"[PRIVATE_KEY_1]"}"#, true);
        assert_eq!(t, r#"{"k":"-----BEGIN\nX"}"#);
        assert!(matches!(v.restore("plain", false).0, Cow::Borrowed(_)));
    }

    #[test]
    fn cuts_never_split_a_placeholder() {
        let mut v = Vault::default();
        v.placeholder(Kind::Email, "a@x.io", b"");
        let text = "hi [EMAIL_1] ok";
        for limit in 0..=text.len() {
            let cut = v.safe_cut(text, limit);
            assert!(cut <= limit);
            assert!(cut <= 3 || cut >= 12, "limit {limit} cut {cut}");
            if !(4..12).contains(&limit) {
                assert_eq!(cut, limit);
            }
        }
        assert_eq!(v.safe_cut("a [x] b", 4), 4, "not a placeholder prefix");
        assert_eq!(v.safe_cut("a [EM", 5), 2);
    }
}
