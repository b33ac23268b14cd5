//! Which file URIs a request may hand to Vertex AI.
//!
//! Vertex reads a `fileData.fileUri` itself: an `http(s)://` URL is fetched from the internet,
//! but a Cloud Storage `gs://` URI is read with the identity of the gateway's Google Cloud
//! project, so any client could have the model read (and repeat) private objects the gateway's
//! project can see. A `gs://` URI (in any casing) is therefore refused with a 400 unless it
//! starts with one of the configured `allowedFileUriPrefixes` (`gs://bucket/` or
//! `gs://bucket/folder/`; none by default) and has no `.`/`..` segment after the prefix; any
//! other scheme than `http(s)` is refused too.
//!
//! The check runs on the final upstream body, whatever client protocol and content part the URI
//! came from (OpenAI `image_url`/`file` parts, Anthropic image and document URL sources), under
//! either field name Vertex's JSON parser accepts (`fileUri`, `file_uri`).

use aigw_shared::config::ConfigError;
use aigw_shared::error::{ClientError, ErrorKind};
use serde_json::Value;

/// The `gs://` prefixes a request may name (validated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileUriPolicy {
    allowed: Vec<String>,
}

impl FileUriPolicy {
    /// Validate `allowedFileUriPrefixes`: each `gs://<bucket>/…`, the bucket ended by a `/` so
    /// that `gs://data/` never admits `gs://data-private/`.
    pub fn new(prefixes: Vec<String>) -> Result<Self, ConfigError> {
        for (i, p) in prefixes.iter().enumerate() {
            let bucket = p
                .strip_prefix("gs://")
                .and_then(|rest| rest.split_once('/'))
                .map(|(bucket, _)| bucket);
            let ok = bucket.is_some_and(|b| !b.is_empty()) && !has_dot_segment(p);
            if !ok {
                return Err(ConfigError::invalid(
                    format!("allowedFileUriPrefixes[{i}]"),
                    format!("{p:?} is not a gs://<bucket>/ prefix (the bucket must end with /)"),
                ));
            }
        }
        Ok(Self { allowed: prefixes })
    }

    /// Check every file URI of an upstream body (serialized by the translator, so keys are
    /// written without escapes and a body without either key name holds no file URI).
    pub fn check_body(&self, body: &[u8]) -> Result<(), ClientError> {
        if !contains(body, b"fileUri") && !contains(body, b"file_uri") {
            return Ok(());
        }
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return Err(ClientError::new(
                ErrorKind::Internal,
                "vertex: the upstream body could not be checked for file URIs",
            ));
        };
        let mut pending = vec![&json];
        while let Some(v) = pending.pop() {
            match v {
                Value::Object(o) => {
                    for (k, item) in o {
                        if k == "fileUri" || k == "file_uri" {
                            self.check_uri(item)?;
                        }
                        pending.push(item);
                    }
                }
                Value::Array(a) => pending.extend(a),
                _ => {}
            }
        }
        Ok(())
    }

    fn check_uri(&self, uri: &Value) -> Result<(), ClientError> {
        let Some(uri) = uri.as_str() else {
            // Not a URI at all: Vertex rejects it itself.
            return Ok(());
        };
        let lower = uri.trim_start().to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            return Ok(());
        }
        let allowed = self
            .allowed
            .iter()
            .any(|p| uri.starts_with(p.as_str()) && !has_dot_segment(uri));
        if allowed {
            return Ok(());
        }
        let why = if lower.starts_with("gs:") {
            "Cloud Storage URIs are read with the gateway's identity and this one is outside the \
             buckets the gateway allows"
        } else {
            "only http(s) URLs and allowed Cloud Storage URIs can be sent"
        };
        Err(
            ClientError::invalid_request(format!("file URI {uri:?} is not allowed: {why}"))
                .with_code("file_uri_not_allowed"),
        )
    }
}

/// Whether a path has a `.` or `..` segment (also percent-encoded).
fn has_dot_segment(uri: &str) -> bool {
    let path = uri.strip_prefix("gs://").unwrap_or(uri);
    path.split(['/', '\\']).any(|seg| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests;
