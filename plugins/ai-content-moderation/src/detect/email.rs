//! E-mail addresses: found at each `@`, the local part read leftwards and the domain rightwards.
//!
//! Local part: ASCII letters, digits and `.!#$%&'*+/=?^_`{|}~-`, not starting or ending with a
//! dot. Domain: labels of letters, digits and `-` (not at a label's ends) joined by dots, at least
//! two labels, the last one (the TLD) at least two letters. A dot after the domain ends the
//! sentence, not the address.

use super::{Finding, Kind};

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

pub(super) fn find(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut last_end = 0;
    for at in memchr::memchr_iter(b'@', bytes) {
        if at < last_end {
            continue;
        }
        let mut start = at;
        while start > last_end && super::before(bytes, start).is_some_and(is_local) {
            start -= 1;
        }
        // Leading dots (and quote-like marks) are punctuation, not the address.
        while bytes.get(start).is_some_and(|b| b"._'`{|~".contains(b)) && start < at {
            start += 1;
        }
        if start == at || super::before(bytes, at) == Some(b'.') {
            continue;
        }
        let Some(end) = domain_end(bytes, at + 1) else {
            continue;
        };
        out.push(Finding {
            kind: Kind::Email,
            start,
            end,
        });
        last_end = end;
    }
}

/// The end of a valid domain starting at `from`, if there is one.
fn domain_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut end = from;
    while bytes.get(end).copied().is_some_and(is_domain) {
        end += 1;
    }
    let mut domain = bytes.get(from..end)?;
    // A trailing dot or hyphen ends the sentence.
    while let Some((&last, rest)) = domain.split_last() {
        if last == b'.' || last == b'-' {
            domain = rest;
        } else {
            break;
        }
    }
    let mut labels = 0;
    let mut tld_ok = false;
    for label in domain.split(|b| *b == b'.') {
        let ok = !label.is_empty()
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && label.len() <= 63;
        if !ok {
            return None;
        }
        labels += 1;
        tld_ok = label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic);
    }
    (labels >= 2 && tld_ok).then_some(from + domain.len())
}

#[cfg(test)]
mod tests {
    use super::super::tests::found;
    use super::super::Kind;

    fn emails(text: &str) -> Vec<&str> {
        found(text)
            .into_iter()
            .filter(|(k, _)| *k == Kind::Email)
            .map(|(_, s)| s)
            .collect()
    }

    #[test]
    fn addresses_are_found_without_the_punctuation_around_them() {
        assert_eq!(
            emails("Write to bob.smith+tag@mail.example.co.uk. Or (alice@x.org)!"),
            ["bob.smith+tag@mail.example.co.uk", "alice@x.org"]
        );
        assert_eq!(emails("mail:jo@ex-ample.com,"), ["jo@ex-ample.com"]);
        assert_eq!(
            emails("用户邮箱 zhang.san@example.cn 谢谢"),
            ["zhang.san@example.cn"]
        );
    }

    #[test]
    fn things_with_an_at_sign_that_are_not_addresses_are_left() {
        for text in [
            "@channel hello",
            "user@localhost",
            "a@b",
            "x@-bad.com",
            "x@bad-.com",
            "x@a..com",
            "x@site.c0m",
            "x@site.c",
            "me@ and you",
            "price @ 5.00",
            ".@example.com",
            "decorator @dataclass",
        ] {
            assert_eq!(emails(text), Vec::<&str>::new(), "{text}");
        }
    }
}
