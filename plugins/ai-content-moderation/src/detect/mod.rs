//! PII and secret detectors: hand-written scanners over the raw text, each a `memchr`/`memmem`
//! search for its trigger (`@`, a digit, `sk-`, `-----BEGIN` …) followed by a check of the few
//! bytes around it, with the checksum where the format has one (Luhn, ISO 7064 MOD 11-2,
//! ISO 13616 mod 97). No regex engine, no allocation but the findings list.
//!
//! Offsets are byte offsets into the text and always on character boundaries (every detector
//! starts and ends on ASCII bytes).

mod email;
mod iban;
mod ip;
mod numbers;
mod secrets;

use serde::Deserialize;

/// What a detector found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Kind {
    /// An e-mail address.
    Email,
    /// A phone number: `+` and 8–15 digits (E.164), or a North American `(555) 123-4567` form.
    Phone,
    /// A mainland China mobile number: 11 digits starting `13`–`19`.
    CnMobile,
    /// A payment card number: 13–19 digits passing Luhn, issuer prefix 2–6.
    CreditCard,
    /// A Chinese resident identity card number (18 characters, MOD 11-2 checksum, a real date).
    CnId,
    /// A US social security number in `123-45-6789` form (valid area, group and serial).
    UsSsn,
    /// An IBAN (country length and mod-97 checksum).
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An OpenAI-style secret key (`sk-…`).
    OpenaiKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// A GitHub token (`ghp_…`, `github_pat_…`).
    GithubToken,
    /// A PEM private-key block.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
}

impl Kind {
    /// Every kind, in the order the README lists them.
    pub const ALL: [Kind; 13] = [
        Kind::Email,
        Kind::Phone,
        Kind::CnMobile,
        Kind::CreditCard,
        Kind::CnId,
        Kind::UsSsn,
        Kind::Iban,
        Kind::IpAddress,
        Kind::OpenaiKey,
        Kind::AwsAccessKey,
        Kind::GithubToken,
        Kind::PrivateKey,
        Kind::Jwt,
    ];

    /// The config key and metric label (`creditCard`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::CnMobile => "cnMobile",
            Kind::CreditCard => "creditCard",
            Kind::CnId => "cnId",
            Kind::UsSsn => "usSsn",
            Kind::Iban => "iban",
            Kind::IpAddress => "ipAddress",
            Kind::OpenaiKey => "openaiKey",
            Kind::AwsAccessKey => "awsAccessKey",
            Kind::GithubToken => "githubToken",
            Kind::PrivateKey => "privateKey",
            Kind::Jwt => "jwt",
        }
    }

    /// The label inside a placeholder (`[EMAIL_1]`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Email => "EMAIL",
            Kind::Phone | Kind::CnMobile => "PHONE",
            Kind::CreditCard => "CARD",
            Kind::CnId => "CN_ID",
            Kind::UsSsn => "SSN",
            Kind::Iban => "IBAN",
            Kind::IpAddress => "IP",
            Kind::OpenaiKey | Kind::GithubToken => "API_KEY",
            Kind::AwsAccessKey => "AWS_KEY",
            Kind::PrivateKey => "PRIVATE_KEY",
            Kind::Jwt => "JWT",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of kinds (which detectors run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds(u16);

impl Kinds {
    /// Add `kind`.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= kind.bit();
    }

    /// Whether `kind` is in the set.
    pub fn has(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// True when no detector runs.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn any(self, kinds: &[Kind]) -> bool {
        kinds.iter().any(|k| self.has(*k))
    }
}

/// One detected value: `text[start..end]` is a `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub kind: Kind,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Run the detectors of `kinds` over `text`, appending what they find to `out` sorted by start,
/// overlaps resolved (the earlier finding wins; at the same start, the longer).
pub fn scan(text: &str, kinds: Kinds, out: &mut Vec<Finding>) {
    let first = out.len();
    let bytes = text.as_bytes();
    if kinds.has(Kind::Email) {
        email::find(bytes, out);
    }
    if kinds.any(&[
        Kind::Phone,
        Kind::CnMobile,
        Kind::CreditCard,
        Kind::CnId,
        Kind::UsSsn,
    ]) {
        numbers::find(bytes, kinds, out);
    }
    if kinds.has(Kind::Iban) {
        iban::find(bytes, out);
    }
    if kinds.has(Kind::IpAddress) {
        ip::find(bytes, out);
    }
    if kinds.any(&[
        Kind::OpenaiKey,
        Kind::AwsAccessKey,
        Kind::GithubToken,
        Kind::PrivateKey,
        Kind::Jwt,
    ]) {
        secrets::find(bytes, kinds, out);
    }
    let Some(found) = out.get_mut(first..) else {
        return;
    };
    if found.len() < 2 {
        return;
    }
    found.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut kept: Vec<Finding> = Vec::with_capacity(found.len());
    for f in found.iter() {
        match kept.last() {
            Some(last) if f.start < last.end => {}
            _ => kept.push(*f),
        }
    }
    out.truncate(first);
    out.extend(kept);
}

/// True for bytes that continue a word (ASCII letters and digits, and any byte of a non-ASCII
/// character, so `é4111…` is not a number at a word start).
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80 || b == b'_'
}

/// The byte before `i`, if any.
pub(crate) fn before(bytes: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| bytes.get(j).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn all() -> Kinds {
        let mut k = Kinds::default();
        for kind in Kind::ALL {
            k.insert(kind);
        }
        k
    }

    /// The `(kind, matched text)` pairs `scan` finds with every detector on.
    pub(crate) fn found(text: &str) -> Vec<(Kind, &str)> {
        let mut out = Vec::new();
        scan(text, all(), &mut out);
        out.iter()
            .map(|f| (f.kind, text.get(f.start..f.end).unwrap()))
            .collect()
    }

    #[test]
    fn findings_are_sorted_and_do_not_overlap() {
        let text = "mail a.b@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111, \
                    key AKIAIOSFODNN7EXAMPLE from 10.0.0.1";
        assert_eq!(
            found(text),
            [
                (Kind::Email, "a.b@example.com"),
                (Kind::Phone, "+44 20 7946 0958"),
                (Kind::CreditCard, "4111 1111 1111 1111"),
                (Kind::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
                (Kind::IpAddress, "10.0.0.1"),
            ]
        );
    }

    #[test]
    fn only_the_configured_detectors_run() {
        let mut kinds = Kinds::default();
        kinds.insert(Kind::Email);
        let mut out = Vec::new();
        scan("a@b.io 4111111111111111 10.0.0.1", kinds, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Email);
        assert!(Kinds::default().is_empty());
    }

    #[test]
    fn plain_prose_has_no_findings() {
        let text = "The meeting is at 10:30 on 2024-05-06; bring 3 copies of page 12. \
                    Version 1.2.3 fixed bug #4567. Call me maybe. Price: $1,299.99.";
        assert_eq!(found(text), []);
    }
}
