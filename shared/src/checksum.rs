//! Check digits of numbers found in text (the PII detectors of ai-content-moderation and the
//! audit redaction of ai-usage-stats share them).

/// The Luhn check over decimal digits (values 0–9, most significant first): payment cards.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u64 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u64::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::luhn;

    #[test]
    fn valid_card_numbers_pass_and_a_changed_digit_fails() {
        let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<u8>>();
        assert!(luhn(&digits("4111111111111111")));
        assert!(luhn(&digits("79927398713")));
        assert!(!luhn(&digits("4111111111111112")));
        assert!(!luhn(&digits("79927398710")));
    }
}
