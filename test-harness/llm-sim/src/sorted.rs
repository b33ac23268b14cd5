//! Serializes a JSON value with the keys of every object in byte order, whatever map type
//! `serde_json` was built with. Azure OpenAI and Bedrock send their JSON keys in that order.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// A borrowed value that serializes with sorted keys.
#[derive(Debug, Clone, Copy)]
pub struct Sorted<'a>(pub &'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serializer.serialize_map(Some(keys.len()))?;
                for key in keys {
                    if let Some(v) = map.get(key) {
                        out.serialize_entry(key, &Sorted(v))?;
                    }
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// For `#[serde(serialize_with = "crate::sorted::serialize")]` on `Value` fields.
pub fn serialize<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    Sorted(value).serialize(serializer)
}

/// Compact JSON text of `value` with sorted keys.
pub fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&Sorted(value)).unwrap_or_default()
}

/// Compact JSON string of `value` with sorted keys.
pub fn to_string(value: &Value) -> String {
    String::from_utf8(to_vec(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_out_sorted_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": [{"z": null, "c": true}]});
        assert_eq!(to_string(&v), r#"{"a":[{"c":true,"z":null}],"b":1}"#);
    }
}
