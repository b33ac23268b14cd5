//! Who is calling: a consumer name from a header an auth filter set, or from the suite's own API-key
//! map (keys stored only as SHA-256 hashes).
//!
//! Config (camelCase, unknown fields rejected):
//!
//! ```json
//! {"header": "x-mse-consumer",
//!  "keys": {"<sha256 hex of the key>": "team-a"},
//!  "keySources": ["bearer", "apiKey", {"header": "x-llm-key"}]}
//! ```
//!
//! [`ConsumerConfig::compile`] validates it into a [`ConsumerIdentifier`]; its
//! [`identify`](ConsumerIdentifier::identify) first trusts `header` (Higress sets `x-mse-consumer`
//! after its own key/JWT auth), then hashes the key found in the first present key source and looks
//! the hash up. The lookup compares hashes, never keys, so the plain key is never stored and timing
//! reveals nothing about it.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

/// Where an API key may be found in a request.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySource {
    /// `Authorization: Bearer <key>` (OpenAI clients).
    Bearer,
    /// `x-api-key: <key>` (Anthropic clients).
    ApiKey,
    /// Any named header carrying the key as its whole value.
    Header(String),
}

fn default_sources() -> Vec<KeySource> {
    vec![KeySource::Bearer, KeySource::ApiKey]
}

/// Consumer identification settings, as they appear in plugin config.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerConfig {
    /// A header whose value is the consumer name (e.g. `x-mse-consumer`), set by an auth filter
    /// in front of this plugin. Only configure it when that filter overwrites client values.
    #[serde(default)]
    pub header: Option<String>,
    /// SHA-256 (hex) of each API key -> consumer name.
    #[serde(default)]
    pub keys: HashMap<String, String>,
    /// Where to look for the key, in order (default: bearer, then `x-api-key`).
    #[serde(default = "default_sources")]
    pub key_sources: Vec<KeySource>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            header: None,
            keys: HashMap::new(),
            key_sources: default_sources(),
        }
    }
}

/// How the consumer was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerSource {
    /// From the configured consumer header.
    Header,
    /// From an API key in the map.
    ApiKey,
}

/// An identified caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Consumer {
    /// The consumer name.
    pub name: String,
    /// How it was found.
    pub source: ConsumerSource,
}

/// A validated [`ConsumerConfig`], ready to identify requests.
#[derive(Debug, Clone, Default)]
pub struct ConsumerIdentifier {
    header: Option<String>,
    keys: HashMap<[u8; 32], String>,
    sources: Vec<KeySource>,
}

impl ConsumerConfig {
    /// Validate (hashes must be 64 hex digits, names non-empty, header names lower-case and
    /// non-empty) and build the identifier. Error paths are relative to this object.
    pub fn compile(&self) -> Result<ConsumerIdentifier, ConfigError> {
        let header = match &self.header {
            Some(h) => Some(header_name(h, "header")?),
            None => None,
        };
        let mut keys = HashMap::with_capacity(self.keys.len());
        for (hash, name) in &self.keys {
            let path = format!("keys.{hash}");
            let digest = parse_sha256_hex(hash).ok_or_else(|| {
                ConfigError::invalid(
                    path.clone(),
                    "must be the SHA-256 of the key as 64 hex digits",
                )
            })?;
            if name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    path,
                    "consumer name must not be empty",
                ));
            }
            keys.insert(digest, name.clone());
        }
        let mut sources = Vec::with_capacity(self.key_sources.len());
        for (i, source) in self.key_sources.iter().enumerate() {
            sources.push(match source {
                KeySource::Header(h) => {
                    KeySource::Header(header_name(h, &format!("keySources[{i}].header"))?)
                }
                other => other.clone(),
            });
        }
        Ok(ConsumerIdentifier {
            header,
            keys,
            sources,
        })
    }
}

fn header_name(name: &str, path: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(ConfigError::invalid(path, "must be a header name"));
    }
    Ok(name.to_ascii_lowercase())
}

fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *slot = (hex_digit(*hi)? << 4) | hex_digit(*lo)?;
    }
    Some(out)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The SHA-256 of `key` as lower-case hex: what to put in `keys`.
pub fn key_hash_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Trim ASCII whitespace from both ends.
fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, blanks trimmed).
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let v = trim(authorization);
    if !v.get(..7)?.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(trim(v.get(7..)?))
}

impl ConsumerIdentifier {
    /// True when nothing is configured (no header, no keys), so identification always fails.
    pub fn is_empty(&self) -> bool {
        self.header.is_none() && self.keys.is_empty()
    }

    /// The key the request presents, from the first configured source that is present.
    pub fn presented_key<'h>(
        &self,
        get_header: impl Fn(&str) -> Option<&'h [u8]>,
    ) -> Option<&'h [u8]> {
        self.sources.iter().find_map(|source| {
            let key = match source {
                KeySource::Bearer => bearer_token(get_header("authorization")?)?,
                KeySource::ApiKey => trim(get_header("x-api-key")?),
                KeySource::Header(name) => trim(get_header(name)?),
            };
            (!key.is_empty()).then_some(key)
        })
    }

    /// Identify the caller. `get_header` takes a lower-case header name and returns its raw value.
    pub fn identify<'h>(&self, get_header: impl Fn(&str) -> Option<&'h [u8]>) -> Option<Consumer> {
        if let Some(header) = &self.header {
            if let Some(value) = get_header(header).map(trim).filter(|v| !v.is_empty()) {
                return Some(Consumer {
                    name: String::from_utf8_lossy(value).into_owned(),
                    source: ConsumerSource::Header,
                });
            }
        }
        if self.keys.is_empty() {
            return None;
        }
        let key = self.presented_key(&get_header)?;
        let digest: [u8; 32] = Sha256::digest(key).into();
        self.keys.get(&digest).map(|name| Consumer {
            name: name.clone(),
            source: ConsumerSource::ApiKey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_json;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a [u8]> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes())
        }
    }

    fn identifier(json: &str) -> ConsumerIdentifier {
        parse_json::<ConsumerConfig>(json.as_bytes())
            .unwrap()
            .compile()
            .unwrap()
    }

    #[test]
    fn keys_are_matched_by_their_sha256_from_bearer_or_x_api_key() {
        let hash = key_hash_hex("sk-team-a");
        let id = identifier(&format!(r#"{{"keys":{{"{hash}":"team-a"}}}}"#));
        let want = Some(Consumer {
            name: "team-a".into(),
            source: ConsumerSource::ApiKey,
        });
        assert_eq!(
            id.identify(headers(&[("authorization", "Bearer sk-team-a")])),
            want
        );
        assert_eq!(
            id.identify(headers(&[("authorization", "bearer   sk-team-a ")])),
            want
        );
        assert_eq!(id.identify(headers(&[("x-api-key", "sk-team-a")])), want);
        assert_eq!(
            id.identify(headers(&[("authorization", "Basic sk-team-a")])),
            None
        );
        assert_eq!(
            id.identify(headers(&[("authorization", "Bearer sk-other")])),
            None
        );
        assert_eq!(id.identify(headers(&[])), None);
    }

    #[test]
    fn the_consumer_header_wins_over_keys() {
        let hash = key_hash_hex("k");
        let id = identifier(&format!(
            r#"{{"header":"X-MSE-Consumer","keys":{{"{hash}":"by-key"}}}}"#
        ));
        let got = id
            .identify(headers(&[
                ("x-mse-consumer", "by-header"),
                ("x-api-key", "k"),
            ]))
            .unwrap();
        assert_eq!(
            (got.name.as_str(), got.source),
            ("by-header", ConsumerSource::Header)
        );
        let got = id
            .identify(headers(&[("x-mse-consumer", " "), ("x-api-key", "k")]))
            .unwrap();
        assert_eq!(got.name, "by-key");
    }

    #[test]
    fn key_sources_are_tried_in_order_and_named_headers_work() {
        let hash = key_hash_hex("k2");
        let id = identifier(&format!(
            r#"{{"keys":{{"{}":"c"}},"keySources":[{{"header":"X-LLM-Key"}}]}}"#,
            hash.to_uppercase()
        ));
        assert_eq!(
            id.identify(headers(&[("x-llm-key", "k2")])).unwrap().name,
            "c"
        );
        assert_eq!(
            id.identify(headers(&[("authorization", "Bearer k2")])),
            None
        );
    }

    #[test]
    fn bad_hashes_names_and_headers_are_config_errors() {
        let bad = [
            (r#"{"keys":{"abc":"x"}}"#, "keys.abc"),
            (
                &format!(r#"{{"keys":{{"{}":" "}}}}"#, key_hash_hex("a")),
                "keys.",
            ),
            (r#"{"header":""}"#, "header"),
            (
                r#"{"keySources":[{"header":"a b"}]}"#,
                "keySources[0].header",
            ),
        ];
        for (json, path) in bad {
            let err = parse_json::<ConsumerConfig>(json.as_bytes())
                .unwrap()
                .compile()
                .unwrap_err();
            assert!(err.path().starts_with(path), "{json}: {err}");
        }
        assert!(parse_json::<ConsumerConfig>(br#"{"keySources":["cookie"]}"#).is_err());
        assert!(parse_json::<ConsumerConfig>(br#"{"other":1}"#).is_err());
    }

    #[test]
    fn an_empty_config_identifies_nobody() {
        let id = ConsumerConfig::default().compile().unwrap();
        assert!(id.is_empty());
        assert_eq!(id.identify(headers(&[("authorization", "Bearer x")])), None);
        assert_eq!(
            id.presented_key(headers(&[("authorization", "Bearer x")])),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn the_hash_helper_matches_a_known_sha256() {
        assert_eq!(
            key_hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
