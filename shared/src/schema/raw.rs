//! [`RawObject`]: a JSON object kept as raw field bytes, for patching a body without re-encoding it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Text;

/// One field value: borrowed from the input or replaced by the caller.
#[derive(Debug, Clone)]
enum Slot<'a> {
    Borrowed(&'a RawValue),
    Owned(Box<RawValue>),
}

impl Slot<'_> {
    fn get(&self) -> &RawValue {
        match self {
            Self::Borrowed(v) => v,
            Self::Owned(v) => v,
        }
    }
}

/// A top-level JSON object whose field values stay raw JSON text, in their original order.
///
/// Parsing checks the whole document is valid JSON but builds no values; writing it back copies
/// untouched fields byte for byte (including fields the gateway knows nothing about, number
/// formatting and key order). Parse with `serde_json::from_slice` (values borrow from the input).
#[derive(Debug, Clone, Default)]
pub struct RawObject<'a> {
    fields: Vec<(Cow<'a, str>, Slot<'a>)>,
}

impl<'a> RawObject<'a> {
    /// Parse a JSON object from bytes (values borrow from `bytes`).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The raw value of `key` (the last one if the key repeats, as JSON parsers do).
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.get())
    }

    /// Parse the value of `key` as `T`; `None` when absent.
    pub fn get_as<T: Deserialize<'a>>(&'a self, key: &str) -> Option<Result<T, serde_json::Error>> {
        self.get(key).map(|v| serde_json::from_str(v.get()))
    }

    /// True when `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == key)
    }

    /// Set `key` to a raw JSON value: replaces the first occurrence in place (dropping repeats) or
    /// appends the field.
    pub fn set(&mut self, key: &str, value: Box<RawValue>) {
        let mut slot = Some(Slot::Owned(value));
        self.fields.retain_mut(|(k, v)| {
            if k != key {
                return true;
            }
            match slot.take() {
                Some(new) => {
                    *v = new;
                    true
                }
                None => false,
            }
        });
        if let Some(new) = slot {
            self.fields.push((Cow::Owned(key.to_owned()), new));
        }
    }

    /// Set `key` to the JSON encoding of `value`.
    pub fn set_json<T: serde::Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.set(key, raw);
        Ok(())
    }

    /// Remove every occurrence of `key`; true if there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.fields.len();
        self.fields.retain(|(k, _)| k != key);
        self.fields.len() != before
    }

    /// The field names in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_ref())
    }

    /// Write the object compactly (`{"k":v,...}`), values exactly as held.
    pub fn to_vec(&self) -> Vec<u8> {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, k);
            out.push(b':');
            out.extend_from_slice(v.get().get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// Append `s` as a JSON string literal.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    fields.push((key.0, Slot::Borrowed(value)));
                }
                Ok(RawObject { fields })
            }
        }
        deserializer.deserialize_map(V).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_objects_are_written_back_with_values_byte_for_byte() {
        let body = br#"{"model":"m","temperature":1.50,"x":{"deep":[1, 2]},"messages":[]}"#;
        let obj = RawObject::parse(body).unwrap();
        assert_eq!(
            obj.to_vec(),
            br#"{"model":"m","temperature":1.50,"x":{"deep":[1, 2]},"messages":[]}"#
        );
        assert_eq!(
            obj.keys().collect::<Vec<_>>(),
            ["model", "temperature", "x", "messages"]
        );
    }

    #[test]
    fn set_replaces_in_place_and_remove_drops_fields() {
        let body = br#"{"a":1,"template":"t","b":2,"a":3}"#;
        let mut obj = RawObject::parse(body).unwrap();
        assert_eq!(obj.get("a").unwrap().get(), "3");
        obj.set_json("a", &vec!["x"]).unwrap();
        assert!(obj.remove("template"));
        assert!(!obj.remove("template"));
        obj.set_json("new\"key", &true).unwrap();
        assert_eq!(obj.to_vec(), br#"{"a":["x"],"b":2,"new\"key":true}"#);
        let v: Vec<String> = obj.get_as("a").unwrap().unwrap();
        assert_eq!(v, ["x"]);
    }

    #[test]
    fn non_objects_and_invalid_json_are_rejected() {
        assert!(RawObject::parse(b"[1]").is_err());
        assert!(RawObject::parse(b"{\"a\":}").is_err());
        assert!(RawObject::parse(b"").is_err());
    }
}
