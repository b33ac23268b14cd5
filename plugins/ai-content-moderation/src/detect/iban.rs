//! IBANs: two capital letters (the country), two check digits, then the account (capital letters
//! and digits), written as one word or in groups of four joined by single spaces. The length
//! must be the country's (for the countries in the table; 15–34 otherwise) and the ISO 13616
//! mod-97 check must give 1.

use super::{before, is_word_byte, Finding, Kind};

/// IBAN lengths of common countries (SWIFT's IBAN registry).
const LENGTHS: [(&[u8; 2], usize); 34] = [
    (b"AD", 24),
    (b"AE", 23),
    (b"AT", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IS", 26),
    (b"IT", 27),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"RO", 24),
    (b"SE", 24),
    (b"SK", 24),
];

const MAX: usize = 34;

pub(super) fn find(bytes: &[u8], out: &mut Vec<Finding>) {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let candidate = b.is_ascii_uppercase()
            && bytes.get(i + 1).is_some_and(u8::is_ascii_uppercase)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_digit)
            && bytes.get(i + 3).is_some_and(u8::is_ascii_digit)
            && !before(bytes, i).is_some_and(is_word_byte);
        if candidate {
            if let Some(end) = read(bytes, i) {
                out.push(Finding {
                    kind: Kind::Iban,
                    start: i,
                    end,
                });
                i = end;
                continue;
            }
        }
        i += 1;
    }
}

/// Read an IBAN starting at `start`; its end when valid. When the full run of groups is not
/// one (a capitalised word after it), the run cut at an earlier group boundary is tried.
fn read(bytes: &[u8], start: usize) -> Option<usize> {
    let mut chars = [0u8; MAX];
    let mut n = 0;
    let mut i = start;
    let mut group = 0;
    // (characters, end) at each space that may end the IBAN.
    let mut cuts: [(usize, usize); 9] = [(0, 0); 9];
    let mut n_cuts = 0;
    loop {
        match bytes.get(i).copied() {
            Some(b) if b.is_ascii_uppercase() || b.is_ascii_digit() => {
                *chars.get_mut(n)? = b;
                n += 1;
                group += 1;
                i += 1;
            }
            // A space continues the IBAN only after a full group of four.
            Some(b' ')
                if group == 4
                    && bytes
                        .get(i + 1)
                        .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
            {
                if let Some(slot) = cuts.get_mut(n_cuts) {
                    *slot = (n, i);
                    n_cuts += 1;
                }
                group = 0;
                i += 1;
            }
            _ => break,
        }
    }
    let whole = (!bytes.get(i).copied().is_some_and(is_word_byte)).then_some((n, i));
    let earlier = cuts.get(..n_cuts).unwrap_or_default().iter().rev().copied();
    whole
        .into_iter()
        .chain(earlier)
        .find(|&(n, _)| chars.get(..n).is_some_and(valid))
        .map(|(_, end)| end)
}

fn valid(iban: &[u8]) -> bool {
    let n = iban.len();
    let Some(country) = iban.get(..2) else {
        return false;
    };
    let want = LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == country)
        .map(|(_, len)| *len);
    let ok_len = match want {
        Some(len) => n == len,
        None => (15..=MAX).contains(&n),
    };
    ok_len && mod97(iban) == 1
}

/// The IBAN's remainder mod 97: the first four characters moved to the end, letters as 10–35.
fn mod97(iban: &[u8]) -> u32 {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    let mut rem = 0u32;
    for &b in tail.iter().chain(head) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem
}

#[cfg(test)]
mod tests {
    use super::super::tests::found;
    use super::super::Kind;

    #[test]
    fn valid_ibans_are_found_grouped_or_not() {
        for iban in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
        ] {
            let text = format!("pay to {iban}, thanks");
            assert_eq!(found(&text), [(Kind::Iban, iban)], "{iban}");
        }
    }

    #[test]
    fn wrong_check_digits_lengths_and_glued_words_are_not_ibans() {
        for text in [
            "DE88370400440532013000",
            "DE8937040044053201300",
            "GB82 WEST 1234 5698 7654 33",
            "xDE89370400440532013000",
            "DE89370400440532013000x",
            "AB12 ticket",
            "US12345",
        ] {
            assert!(!found(text).iter().any(|(k, _)| *k == Kind::Iban), "{text}");
        }
    }

    #[test]
    fn the_group_after_a_short_one_is_not_swallowed() {
        assert_eq!(
            found("DE89 3704 0044 0532 0130 00 AND MORE"),
            [(Kind::Iban, "DE89 3704 0044 0532 0130 00")]
        );
        assert_eq!(
            found("BE68 5390 0754 7034 OK then"),
            [(Kind::Iban, "BE68 5390 0754 7034")]
        );
    }
}
