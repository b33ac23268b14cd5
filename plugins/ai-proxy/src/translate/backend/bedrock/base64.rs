//! Standard base64 (RFC 4648, `+/`, `=` padding), both ways, for the `bytes` field of
//! InvokeModelWithResponseStream chunks and OpenAI's `encoding_format: base64` embeddings.
//! Small and strict: the decoder rejects characters outside the alphabet and bad padding.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why base64 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base64Error {
    /// A character outside the alphabet (its byte offset).
    #[error("invalid base64 character at offset {0}")]
    Character(usize),
    /// The length or the padding is wrong.
    #[error("invalid base64 length or padding")]
    Length,
}

// `c` lies in the matched range, so each difference is at most 25 and each sum below 64.
#[allow(clippy::arithmetic_side_effects)]
fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decode padded (or unpadded) standard base64.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let data = text.trim_end_matches('=');
    let padding = text.len().saturating_sub(data.len());
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return Err(Base64Error::Length);
    }
    let mut out = Vec::with_capacity((data.len() / 4).saturating_mul(3).saturating_add(2));
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in data.bytes().enumerate() {
        let v = value(c).ok_or(Base64Error::Character(i))?;
        acc = (acc << 6) | v;
        // `bits` stays below 14: 6 are added, 8 taken away once it reaches 8.
        bits = bits.saturating_add(6);
        if bits >= 8 {
            bits = bits.saturating_sub(8);
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    Ok(out)
}

fn symbol(index: u32) -> char {
    char::from(ALPHABET.get((index & 63) as usize).copied().unwrap_or(b'A'))
}

/// Encode as padded standard base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for group in bytes.chunks(3) {
        let mut n = 0u32;
        // A group has 1 to 3 bytes: the shifts below stay within 0..=18.
        for (b, shift) in group.iter().zip([16u32, 8, 0]) {
            n |= u32::from(*b) << shift;
        }
        let symbols = group.len().saturating_add(1);
        for (k, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if k < symbols {
                out.push(symbol(n >> shift));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{decode, encode, Base64Error};

    #[test]
    fn rfc_4648_vectors_round_trip() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
    }

    #[test]
    fn bad_characters_and_padding_are_errors() {
        assert_eq!(decode("Zm9v!A=="), Err(Base64Error::Character(4)));
        assert_eq!(decode("Z"), Err(Base64Error::Length));
        assert_eq!(decode("Zg="), Err(Base64Error::Length));
        assert_eq!(decode("Zg==="), Err(Base64Error::Length));
    }
}
