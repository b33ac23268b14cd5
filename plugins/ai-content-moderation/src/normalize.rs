//! The form deny words and injection phrases are matched in: Unicode-folded, case-folded text.
//!
//! Each character is mapped once, without tables beyond what `std` has:
//!
//! * format characters that hide inside words are dropped: soft hyphen, zero-width space /
//!   joiners, word joiner, BOM, Mongolian vowel separator;
//! * full-width ASCII (`ＩＧＮＯＲＥ`) becomes ASCII, the ideographic space a space, every other
//!   Unicode space or line break a space;
//! * Latin letters with diacritics (`é`, `Ñ`, `ł`) lose them; Cyrillic and Greek letters that look
//!   like Latin ones (`а`, `е`, `о`, `р`, `с`, `х`, `ο`) become those Latin letters;
//! * the result is lower-cased (`char::to_lowercase`, full Unicode).
//!
//! This is what NFKC plus case folding plus a confusables skeleton would do for the characters
//! people use to slip a word past a filter, at a fraction of the code size. Pure ASCII text takes
//! a fast path (ASCII lower-casing, ASCII white space to spaces).

/// Fold `text` into `out` (cleared first).
pub fn fold_into(text: &str, out: &mut String) {
    out.clear();
    if text.is_ascii() {
        out.extend(text.bytes().map(|b| {
            if b.is_ascii_whitespace() {
                ' '
            } else {
                char::from(b.to_ascii_lowercase())
            }
        }));
        return;
    }
    out.reserve(text.len());
    for c in text.chars() {
        let Some(c) = fold_char(c) else {
            continue;
        };
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// The folded form of `text`.
pub fn fold(text: &str) -> String {
    let mut out = String::new();
    fold_into(text, &mut out);
    out
}

fn fold_char(c: char) -> Option<char> {
    let u = u32::from(c);
    Some(match u {
        0x00AD | 0x180E | 0x200B..=0x200D | 0x2060..=0x2064 | 0xFEFF => return None,
        0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        0x00C0..=0x017F => strip_latin(c),
        _ if c.is_whitespace() => ' ',
        _ => confusable(c).unwrap_or(c),
    })
}

/// Latin-1 Supplement and Latin Extended-A letters without their marks.
fn strip_latin(c: char) -> char {
    match c {
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => 'A',
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'Ç' | 'Ć' | 'Ĉ' | 'Ċ' | 'Č' => 'C',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'Ď' | 'Đ' | 'Ð' => 'D',
        'ď' | 'đ' => 'd',
        'È'..='Ë' | 'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => 'G',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'Ĥ' | 'Ħ' => 'H',
        'ĥ' | 'ħ' => 'h',
        'Ì'..='Ï' | 'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => 'I',
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
        'Ĵ' => 'J',
        'ĵ' => 'j',
        'Ķ' => 'K',
        'ķ' | 'ĸ' => 'k',
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => 'L',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'Ñ' | 'Ń' | 'Ņ' | 'Ň' => 'N',
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' => 'n',
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ŏ' | 'Ő' => 'O',
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
        'Ŕ' | 'Ŗ' | 'Ř' => 'R',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'Ś' | 'Ŝ' | 'Ş' | 'Š' => 'S',
        'ś' | 'ŝ' | 'ş' | 'š' => 's',
        'Ţ' | 'Ť' | 'Ŧ' => 'T',
        'ţ' | 'ť' | 'ŧ' => 't',
        'Ù'..='Ü' | 'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => 'U',
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'Ŵ' => 'W',
        'ŵ' => 'w',
        'Ý' | 'Ŷ' | 'Ÿ' => 'Y',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'Ź' | 'Ż' | 'Ž' => 'Z',
        'ź' | 'ż' | 'ž' => 'z',
        _ => c,
    }
}

/// Cyrillic and Greek letters drawn like Latin ones.
fn confusable(c: char) -> Option<char> {
    Some(match c {
        'а' | 'А' | 'α' | 'Α' => 'a',
        'в' | 'В' | 'β' | 'Β' => 'b',
        'с' | 'С' => 'c',
        'е' | 'Е' | 'ε' | 'Ε' => 'e',
        'н' | 'Н' | 'Η' => 'h',
        'і' | 'І' | 'ι' | 'Ι' => 'i',
        'ј' | 'Ј' => 'j',
        'к' | 'К' | 'κ' | 'Κ' => 'k',
        'м' | 'М' | 'Μ' => 'm',
        'о' | 'О' | 'ο' | 'Ο' => 'o',
        'р' | 'Р' | 'ρ' | 'Ρ' => 'p',
        'ѕ' | 'Ѕ' => 's',
        'т' | 'Т' | 'τ' | 'Τ' => 't',
        'у' | 'У' | 'υ' => 'y',
        'х' | 'Х' | 'χ' | 'Χ' => 'x',
        'ν' => 'v',
        'Ν' => 'n',
        _ => return None,
    })
}

/// True for characters that continue a word in the folded text.
pub fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_marks_hidden_characters_and_lookalikes_fold_away() {
        assert_eq!(fold("IGNORE"), "ignore");
        assert_eq!(fold("ＩＧＮＯＲＥ ａｌｌ"), "ignore all");
        assert_eq!(fold("ig\u{200b}no\u{00ad}re"), "ignore");
        assert_eq!(fold("Ígnörè"), "ignore");
        assert_eq!(fold("іgnоrе"), "ignore", "Cyrillic і, о, е");
        assert_eq!(fold("a\u{3000}b\u{2003}c\nd"), "a b c d");
        assert_eq!(fold("Straße ÉCOLE"), "straße ecole");
        assert_eq!(fold("中文不变"), "中文不变");
    }
}
