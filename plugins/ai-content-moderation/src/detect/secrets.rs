//! Secrets: API keys and tokens by their documented prefixes and shapes, PEM private keys, JWTs.
//!
//! * OpenAI-style keys: `sk-` then at least 20 of `A-Za-z0-9_-` (`sk-proj-…`, `sk-svcacct-…`).
//! * AWS access key ids: `AKIA`, `ASIA`, `ABIA` or `ACCA` then 16 of `A-Z0-9`.
//! * GitHub tokens: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` then at least 36 of `A-Za-z0-9`, or
//!   `github_pat_` then at least 22 of `A-Za-z0-9_`.
//! * Private keys: from `-----BEGIN … PRIVATE KEY-----` to its `-----END … PRIVATE KEY-----`
//!   (to the end of the text when the end line is missing).
//! * JWTs: `eyJ` then three base64url parts joined by dots (header and payload at least 10
//!   characters each; the signature may be empty, as for `alg: none`).
//!
//! Each must stand as its own word (not glued to letters or digits before or after).

use memchr::memmem;

use super::{before, Finding, Kind, Kinds};

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn run_end(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while bytes.get(i).copied().is_some_and(&pred) {
        i += 1;
    }
    i
}

fn starts_word(bytes: &[u8], at: usize) -> bool {
    !before(bytes, at).is_some_and(is_key_char)
}

pub(super) fn find(bytes: &[u8], kinds: Kinds, out: &mut Vec<Finding>) {
    if kinds.has(Kind::OpenaiKey) {
        // `starts_word` first: inside a run (`sk-sk-sk-…`) no match scans the rest of it again.
        for at in memmem::find_iter(bytes, b"sk-").filter(|&at| starts_word(bytes, at)) {
            let end = run_end(bytes, at + 3, is_key_char);
            if end - at - 3 >= 20 {
                out.push(Finding {
                    kind: Kind::OpenaiKey,
                    start: at,
                    end,
                });
            }
        }
    }
    if kinds.has(Kind::AwsAccessKey) {
        for prefix in [b"AKIA", b"ASIA", b"ABIA", b"ACCA"] {
            for at in memmem::find_iter(bytes, prefix).filter(|&at| starts_word(bytes, at)) {
                let end = run_end(bytes, at + 4, |b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit()
                });
                let glued = bytes.get(end).copied().is_some_and(is_key_char);
                if end - at == 20 && !glued {
                    out.push(Finding {
                        kind: Kind::AwsAccessKey,
                        start: at,
                        end,
                    });
                }
            }
        }
    }
    if kinds.has(Kind::GithubToken) {
        github(bytes, out);
    }
    if kinds.has(Kind::PrivateKey) {
        private_keys(bytes, out);
    }
    if kinds.has(Kind::Jwt) {
        jwts(bytes, out);
    }
}

fn github(bytes: &[u8], out: &mut Vec<Finding>) {
    for at in memmem::find_iter(bytes, b"gh") {
        let Some(&[third, underscore]) = bytes.get(at + 2..at + 4) else {
            continue;
        };
        if underscore != b'_' || !b"pousr".contains(&third) || !starts_word(bytes, at) {
            continue;
        }
        let end = run_end(bytes, at + 4, |b| b.is_ascii_alphanumeric());
        if end - at - 4 >= 36 && !bytes.get(end).copied().is_some_and(is_key_char) {
            out.push(Finding {
                kind: Kind::GithubToken,
                start: at,
                end,
            });
        }
    }
    for at in memmem::find_iter(bytes, b"github_pat_").filter(|&at| starts_word(bytes, at)) {
        let end = run_end(bytes, at + 11, |b| b.is_ascii_alphanumeric() || b == b'_');
        if end - at - 11 >= 22 {
            out.push(Finding {
                kind: Kind::GithubToken,
                start: at,
                end,
            });
        }
    }
}

fn private_keys(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut from = 0;
    while let Some(off) = bytes
        .get(from..)
        .and_then(|r| memmem::find(r, b"-----BEGIN "))
    {
        let at = from + off;
        from = at + 11;
        let Some(line_end) = bytes.get(from..).and_then(|r| memmem::find(r, b"-----")) else {
            return;
        };
        let label = bytes.get(from..from + line_end).unwrap_or_default();
        if !label.ends_with(b"PRIVATE KEY") || label.len() > 40 {
            continue;
        }
        let after_begin = from + line_end + 5;
        let end = bytes
            .get(after_begin..)
            .and_then(|r| memmem::find(r, b"-----END "))
            .and_then(|e| {
                let end_line = after_begin + e + 9;
                bytes
                    .get(end_line..)
                    .and_then(|r| memmem::find(r, b"-----"))
                    .map(|x| end_line + x + 5)
            })
            .unwrap_or(bytes.len());
        out.push(Finding {
            kind: Kind::PrivateKey,
            start: at,
            end,
        });
        from = end;
    }
}

fn jwts(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut skip_to = 0;
    for at in memmem::find_iter(bytes, b"eyJ") {
        if at < skip_to || !starts_word(bytes, at) {
            continue;
        }
        let p1 = run_end(bytes, at, is_b64url);
        if p1 - at < 10 || bytes.get(p1) != Some(&b'.') {
            continue;
        }
        let p2 = run_end(bytes, p1 + 1, is_b64url);
        if p2 - p1 - 1 < 10 || bytes.get(p2) != Some(&b'.') {
            continue;
        }
        let end = run_end(bytes, p2 + 1, is_b64url);
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).copied().is_some_and(is_b64url) {
            continue;
        }
        out.push(Finding {
            kind: Kind::Jwt,
            start: at,
            end,
        });
        skip_to = end;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::found;
    use super::super::Kind;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[test]
    fn keys_and_tokens_are_found_by_prefix_and_shape() {
        let gh = format!("ghp_{}", "a1B2".repeat(9));
        let pat = format!("github_pat_{}", "11ABCDEFG0123456789_xyz");
        let text = format!(
            "openai sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234 aws AKIAIOSFODNN7EXAMPLE gh {gh} pat {pat} jwt {JWT}."
        );
        assert_eq!(
            found(&text),
            [
                (Kind::OpenaiKey, "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"),
                (Kind::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
                (Kind::GithubToken, gh.as_str()),
                (Kind::GithubToken, pat.as_str()),
                (Kind::Jwt, JWT),
            ]
        );
    }

    #[test]
    fn private_key_blocks_are_found_whole() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc=\n-----END RSA PRIVATE KEY-----";
        let text = format!("my key:\n{block}\nthanks");
        assert_eq!(found(&text), [(Kind::PrivateKey, block)]);
        let cut = "-----BEGIN PRIVATE KEY-----\nMIIEv";
        assert_eq!(found(cut), [(Kind::PrivateKey, cut)]);
        assert_eq!(
            found("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"),
            []
        );
    }

    #[test]
    fn lookalikes_are_not_secrets() {
        for text in [
            "sk-short",
            "task-AbCdEfGhIjKlMnOpQrStUvWx",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEX",
            "xAKIAIOSFODNN7EXAMPLE",
            "ghp_tooShort123",
            "the right light at night",
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9.short.sig",
        ] {
            assert_eq!(found(text), [], "{text}");
        }
    }
}
