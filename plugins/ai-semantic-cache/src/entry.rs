//! A cached answer: the answer text, the model that wrote it, the usage it cost, and when it was
//! made. Stored as compact JSON: in local shared data (behind an 8-byte expiry) and as the
//! vector store's document.

use serde::{Deserialize, Serialize};

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The model that answered (as the provider named it).
    pub model: String,
    /// The answer text.
    pub text: String,
    /// Input tokens the original request cost.
    #[serde(rename = "in")]
    pub input_tokens: u64,
    /// Output tokens of the answer.
    #[serde(rename = "out")]
    pub output_tokens: u64,
    /// True when the provider reported no usage and the numbers are estimates.
    #[serde(default, rename = "est", skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    /// Unix seconds when the answer was made.
    pub at: u64,
}

impl Entry {
    /// The JSON stored.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Read a stored entry; `None` when it is not one.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The local shared-data record: expiry (unix nanoseconds, little-endian u64), the exact key
    /// it answers (hex, 64 bytes: slots are shared by keys), then the JSON.
    pub fn to_record(&self, expires_ns: u64, key: &str) -> Vec<u8> {
        let json = self.to_json();
        let mut out = Vec::with_capacity(8 + key.len() + json.len());
        out.extend_from_slice(&expires_ns.to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// Read a local record for `key` still valid at `now_ns` (`None`: expired, another key's, or
    /// not a record).
    pub fn from_record(bytes: &[u8], now_ns: u64, key: &str) -> Option<Self> {
        let (head, rest) = bytes.split_first_chunk::<8>()?;
        if u64::from_le_bytes(*head) <= now_ns {
            return None;
        }
        let json = rest.strip_prefix(key.as_bytes())?;
        Self::from_json(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            model: "gpt-4o-mini".into(),
            text: "Paris.".into(),
            input_tokens: 12,
            output_tokens: 2,
            estimated: false,
            at: 1_700_000_000,
        }
    }

    #[test]
    fn a_record_reads_back_for_its_key_until_it_expires() {
        let r = entry().to_record(2_000, "k1");
        assert_eq!(Entry::from_record(&r, 1_999, "k1"), Some(entry()));
        assert_eq!(Entry::from_record(&r, 2_000, "k1"), None);
        assert_eq!(
            Entry::from_record(&r, 1_999, "k2"),
            None,
            "another key in the slot"
        );
        assert_eq!(Entry::from_record(b"short", 0, "k1"), None);
        assert_eq!(Entry::from_record(&[0xff; 12], 0, ""), None, "not JSON");
    }

    #[test]
    fn the_json_is_compact_and_marks_estimates_only_when_estimated() {
        let json = String::from_utf8(entry().to_json()).unwrap();
        assert!(!json.contains("est"), "{json}");
        let est = Entry {
            estimated: true,
            ..entry()
        };
        assert!(String::from_utf8(est.to_json())
            .unwrap()
            .contains("\"est\":true"));
    }
}
