//! Numbers that identify people or pay: cards, Chinese resident ids, US SSNs, phone numbers.
//!
//! One pass over the text reads each run of digits that starts a word: digit groups joined by a
//! single space or hyphen (`4111 1111-1111 1111`), an `X` check character after 17 digits, a
//! `+` before it (an international number) or `(` (a North American area code). A run glued
//! to letters, or a decimal / dotted number (`3.14`, `10.0.0.1`), is not read. Each run is
//! then classified once, most specific first:
//!
//! 1. `+` and 8–15 digits: an international phone number (`+86` and a mobile: `cnMobile`);
//! 2. 18 characters without separators, a real birth date and the ISO 7064 MOD 11-2 check
//!    character: a Chinese resident id;
//! 3. 13–19 digits, issuer prefix 2–6, passing Luhn: a payment card;
//! 4. `AAA-GG-SSSS` with area not 000, 666 or 9xx, group not 00, serial not 0000: a US SSN;
//! 5. 11 digits `1[3-9]…` (or grouped 3-4-4): a mainland China mobile;
//! 6. `NXX-NXX-XXXX` or `(NXX) NXX-XXXX` (N = 2–9): a North American phone number.

use super::{before, is_word_byte, Finding, Kind, Kinds};
use aigw_shared::checksum::luhn;

/// Digits of one run (more than 19 is no number we look for).
const MAX_DIGITS: usize = 19;
const MAX_GROUPS: usize = 8;

#[derive(Default)]
struct Run {
    digits: [u8; MAX_DIGITS],
    n: usize,
    groups: [u8; MAX_GROUPS],
    n_groups: usize,
    /// Separators seen between groups (b' ' or b'-'), the first kind only.
    sep: Option<u8>,
    mixed_seps: bool,
    /// An `X` check character ended the run.
    check_x: bool,
}

impl Run {
    fn digits(&self) -> &[u8] {
        self.digits.get(..self.n).unwrap_or_default()
    }

    fn groups(&self) -> &[u8] {
        self.groups.get(..self.n_groups).unwrap_or_default()
    }
}

pub(super) fn find(bytes: &[u8], kinds: Kinds, out: &mut Vec<Finding>) {
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = bytes
            .get(i..)
            .and_then(|rest| rest.iter().position(u8::is_ascii_digit))
        else {
            return;
        };
        let start = i + off;
        let prev = before(bytes, start);
        let glued = prev.is_some_and(is_word_byte)
            || (prev == Some(b'.') && before(bytes, start - 1).is_some_and(|b| b.is_ascii_digit()));
        let (end, run) = read_run(bytes, start);
        i = end.max(start + 1);
        if glued || run.n == 0 {
            continue;
        }
        let next = bytes.get(end).copied();
        let decimal = matches!(next, Some(b'.' | b',' | b':'))
            && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        if next.is_some_and(is_word_byte) || decimal {
            continue;
        }
        if let Some((kind, from)) = classify(bytes, start, prev, &run, kinds) {
            out.push(Finding {
                kind,
                start: from,
                end,
            });
        }
    }
}

/// Read the digit groups from `start`; returns where the run ends and what it holds (`n` 0
/// when it has too many digits or groups).
fn read_run(bytes: &[u8], start: usize) -> (usize, Run) {
    let mut run = Run::default();
    let mut i = start;
    let mut too_long = false;
    loop {
        let group_start = i;
        while let Some(&b) = bytes.get(i) {
            if !b.is_ascii_digit() {
                break;
            }
            if let Some(slot) = run.digits.get_mut(run.n) {
                *slot = b - b'0';
                run.n += 1;
            } else {
                too_long = true;
            }
            i += 1;
        }
        let len = u8::try_from(i - group_start).unwrap_or(u8::MAX);
        match run.groups.get_mut(run.n_groups) {
            Some(slot) => {
                *slot = len;
                run.n_groups += 1;
            }
            None => too_long = true,
        }
        match (bytes.get(i).copied(), bytes.get(i + 1).copied()) {
            (Some(sep @ (b' ' | b'-')), Some(d)) if d.is_ascii_digit() => {
                match run.sep {
                    None => run.sep = Some(sep),
                    Some(s) if s != sep => run.mixed_seps = true,
                    _ => {}
                }
                i += 1;
            }
            (Some(b'X' | b'x'), _) if run.n == 17 && run.n_groups == 1 => {
                run.check_x = true;
                i += 1;
                break;
            }
            _ => break,
        }
    }
    if too_long {
        run.n = 0;
    }
    (i, run)
}

fn classify(
    bytes: &[u8],
    start: usize,
    prev: Option<u8>,
    run: &Run,
    kinds: Kinds,
) -> Option<(Kind, usize)> {
    let digits = run.digits();
    let n = digits.len();
    let plain = run.n_groups == 1;
    if prev == Some(b'+') {
        let from = start - 1;
        if before(bytes, from).is_some_and(is_word_byte) || !(8..=15).contains(&n) {
            return None;
        }
        if kinds.has(Kind::CnMobile)
            && digits.starts_with(&[8, 6])
            && is_cn_mobile(digits.get(2..)?)
        {
            return Some((Kind::CnMobile, from));
        }
        return kinds.has(Kind::Phone).then_some((Kind::Phone, from));
    }
    if run.check_x || (plain && n == 18) {
        return (kinds.has(Kind::CnId) && is_cn_id(digits, run.check_x))
            .then_some((Kind::CnId, start));
    }
    if kinds.has(Kind::CreditCard)
        && (13..=19).contains(&n)
        && !run.mixed_seps
        && matches!(digits.first(), Some(2..=6))
        && luhn(digits)
    {
        return Some((Kind::CreditCard, start));
    }
    let groups = run.groups();
    if kinds.has(Kind::UsSsn) && groups == [3, 2, 4] && run.sep == Some(b'-') && is_ssn(digits) {
        return Some((Kind::UsSsn, start));
    }
    if kinds.has(Kind::CnMobile) && (plain || groups == [3, 4, 4]) && is_cn_mobile(digits) {
        return Some((Kind::CnMobile, start));
    }
    if kinds.has(Kind::Phone) {
        let nanp = |d: &[u8]| matches!(d.first(), Some(2..=9)) && matches!(d.get(3), Some(2..=9));
        if groups == [3, 3, 4] && !run.mixed_seps && nanp(digits) {
            return Some((Kind::Phone, start));
        }
        // `(555) 123-4567`: the run starts after `) `.
        if groups == [3, 4] && prev == Some(b' ') {
            let open = start.checked_sub(6)?;
            let area = bytes.get(open..start - 1)?;
            let paren = area.first() == Some(&b'(')
                && area.get(4) == Some(&b')')
                && area
                    .get(1..4)
                    .is_some_and(|a| a.iter().all(u8::is_ascii_digit))
                && !before(bytes, open).is_some_and(is_word_byte);
            let mut all = [0u8; 10];
            for (slot, d) in all.iter_mut().zip(
                area.get(1..4)
                    .unwrap_or_default()
                    .iter()
                    .map(|b| b.wrapping_sub(b'0'))
                    .chain(digits.iter().copied()),
            ) {
                *slot = d;
            }
            if paren && nanp(&all) {
                return Some((Kind::Phone, open));
            }
        }
    }
    None
}

fn number(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u32::from(d))
    })
}

/// A Chinese resident id: 6-digit region, birth date `YYYYMMDD` (1900–2099), 3-digit sequence,
/// and the MOD 11-2 check character (`X` for 10).
fn is_cn_id(digits: &[u8], check_x: bool) -> bool {
    let body = if check_x {
        if digits.len() != 17 {
            return false;
        }
        digits
    } else {
        match digits.get(..17) {
            Some(b) if digits.len() == 18 => b,
            _ => return false,
        }
    };
    let year = number(body.get(6..10).unwrap_or_default());
    let month = number(body.get(10..12).unwrap_or_default());
    let day = number(body.get(12..14).unwrap_or_default());
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    if matches!(body.first(), None | Some(0 | 9)) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .iter()
        .zip(WEIGHTS)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    let check = (12 - sum % 11) % 11;
    if check_x {
        check == 10
    } else {
        digits.get(17).map(|&d| u32::from(d)) == Some(check)
    }
}

/// A US SSN: area 001–899 but not 666, group 01–99, serial 0001–9999.
fn is_ssn(digits: &[u8]) -> bool {
    let area = number(digits.get(..3).unwrap_or_default());
    let group = number(digits.get(3..5).unwrap_or_default());
    let serial = number(digits.get(5..9).unwrap_or_default());
    digits.len() == 9 && area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// A mainland China mobile: 11 digits, `1` then `3`–`9`.
fn is_cn_mobile(digits: &[u8]) -> bool {
    digits.len() == 11 && digits.first() == Some(&1) && matches!(digits.get(1), Some(3..=9))
}

#[cfg(test)]
mod tests {
    use super::super::tests::found;
    use super::super::Kind;
    use super::*;

    fn kinds_of(text: &str) -> Vec<(Kind, &str)> {
        found(text)
    }

    #[test]
    fn cards_pass_luhn_and_wrong_check_digits_do_not() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "3782 822463 10005",
            "6011111111111117",
            "2221000000000009",
        ] {
            assert_eq!(kinds_of(card), [(Kind::CreditCard, card)], "{card}");
        }
        for not_card in [
            "4111111111111112",
            "4111 1111 1111 1112",
            "1234567812345670", // Luhn-valid, but no issuer starts with 1
            "4111-1111 1111-1111",
            "41111111111111111111111",
            "order 4111111111111111abc",
            "x4111111111111111",
        ] {
            assert!(
                !kinds_of(not_card)
                    .iter()
                    .any(|(k, _)| *k == Kind::CreditCard),
                "{not_card}"
            );
        }
    }

    #[test]
    fn chinese_ids_need_a_real_date_and_the_check_character() {
        assert_eq!(
            kinds_of("身份证 11010519491231002X 谢谢"),
            [(Kind::CnId, "11010519491231002X")]
        );
        assert_eq!(
            kinds_of("id 110101199003074477."),
            [(Kind::CnId, "110101199003074477")]
        );
        // One check character off, a month 13, an X where a digit belongs.
        for wrong in [
            "110101199003074478",
            "110101199013074477",
            "110105194912310021",
        ] {
            assert_eq!(kinds_of(wrong), [], "{wrong}");
        }
        assert!(!is_cn_id(&[1; 17], true));
    }

    #[test]
    fn ssns_must_have_valid_parts() {
        assert_eq!(kinds_of("SSN: 123-45-6789"), [(Kind::UsSsn, "123-45-6789")]);
        for wrong in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert_eq!(kinds_of(wrong), [], "{wrong}");
        }
        assert_eq!(kinds_of("123 45 6789"), [], "only the hyphenated form");
    }

    #[test]
    fn phones_international_chinese_and_north_american() {
        assert_eq!(
            kinds_of("call +1 415 555 2671 now"),
            [(Kind::Phone, "+1 415 555 2671")]
        );
        assert_eq!(
            kinds_of("手机 13812345678"),
            [(Kind::CnMobile, "13812345678")]
        );
        assert_eq!(
            kinds_of("tel 138-1234-5678"),
            [(Kind::CnMobile, "138-1234-5678")]
        );
        assert_eq!(
            kinds_of("+8613812345678"),
            [(Kind::CnMobile, "+8613812345678")]
        );
        assert_eq!(
            kinds_of("(415) 555-2671"),
            [(Kind::Phone, "(415) 555-2671")]
        );
        assert_eq!(kinds_of("415-555-2671"), [(Kind::Phone, "415-555-2671")]);
        for not_phone in [
            "12812345678",
            "+12345",
            "a+14155552671",
            "015-555-2671",
            "(015) 555-2671",
            "3.14159265358979",
            "1,234,567",
        ] {
            assert_eq!(kinds_of(not_phone), [], "{not_phone}");
        }
    }

    #[test]
    fn luhn_matches_the_textbook_example() {
        assert!(luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 4]));
    }
}
