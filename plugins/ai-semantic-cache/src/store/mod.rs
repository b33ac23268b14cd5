//! Vector stores behind one trait, one file per database (Elasticsearch and OpenSearch share
//! one): what to send (collection set-up, top-1
//! query within a partition and unexpired, upsert) and how to read each answer. Requests are
//! plain values ([`StoreCall`]); the filter sends them as callouts, so every backend is tested
//! without a host against its documented REST shapes.
//!
//! Every backend keeps, per cached answer: the vector, the partition (exact match filter), the
//! expiry (unix seconds; expired points are filtered out of queries), and the answer as a
//! document. The similarity reported is cosine similarity (1 is identical).

mod chroma;
mod elasticsearch;
mod milvus;
mod qdrant;

use std::time::Duration;

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::config::ConfigError;
use serde::Deserialize;

use crate::config::RawStore;

pub use chroma::Chroma;
pub use elasticsearch::{Flavor, Search};
pub use milvus::Milvus;
pub use qdrant::Qdrant;

/// Which database.
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StoreKind {
    /// Chroma (REST API v2).
    Chroma,
    /// Qdrant (REST).
    Qdrant,
    /// Milvus (RESTful API v2).
    Milvus,
    /// Elasticsearch 8 kNN search.
    Elasticsearch,
    /// OpenSearch k-NN (Lucene engine).
    Opensearch,
}

/// One HTTP request to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCall {
    /// `POST` or `PUT`.
    pub method: &'static str,
    /// Path (and query).
    pub path: String,
    /// JSON body.
    pub body: Vec<u8>,
}

/// The nearest cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Cosine similarity to the query.
    pub similarity: f32,
    /// The stored document (the entry JSON).
    pub document: String,
}

/// What is stored for one answer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Stable id (the exact key, hex SHA-256).
    pub id: &'a str,
    /// The key text's embedding.
    pub vector: &'a [f32],
    /// The partition hash.
    pub partition: &'a str,
    /// Unix seconds after which it is not returned.
    pub expires: u64,
    /// The entry JSON.
    pub document: &'a str,
}

/// One vector database's REST dialect.
pub trait Backend {
    /// Make sure the collection exists for vectors of `dims` (idempotent).
    fn ensure(&self, dims: usize) -> StoreCall;
    /// Read the answer to [`Backend::ensure`]: the handle later calls use (Chroma's collection
    /// id; the collection name elsewhere).
    fn ensured(&self, status: u16, body: &[u8]) -> Result<String, String>;
    /// The top-1 query within `partition`, unexpired at `now` (unix seconds).
    fn query(&self, handle: &str, vector: &[f32], partition: &str, now: u64) -> StoreCall;
    /// Read the query's answer (`None`: nothing in the partition).
    fn found(&self, status: u16, body: &[u8]) -> Result<Option<Found>, String>;
    /// Insert or replace `record`.
    fn upsert(&self, handle: &str, record: &Record<'_>) -> StoreCall;
    /// Read the upsert's answer.
    fn upserted(&self, status: u16, body: &[u8]) -> Result<(), String>;
}

/// A configured vector store.
#[derive(Debug)]
pub struct VectorStore {
    /// Where calls go.
    pub upstream: Upstream,
    /// Per call.
    pub timeout: Duration,
    /// Extra headers (credentials).
    pub headers: Vec<(String, Vec<u8>)>,
    backend: Box<dyn BackendDebug>,
}

/// [`Backend`] plus `Debug`, for the boxed backend.
pub trait BackendDebug: Backend + std::fmt::Debug {}
impl<T: Backend + std::fmt::Debug> BackendDebug for T {}

impl VectorStore {
    /// Validate a store as written (`raw` at `semantic.vectorStore`; errors are relative).
    pub fn build(
        raw: &RawStore,
        upstream: Upstream,
        timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if raw.collection.len() < 3 || raw.collection.len() > 255 || !raw.collection.chars().all(ok)
        {
            return Err(ConfigError::invalid(
                "collection",
                "must be 3-255 characters of letters, digits, `_` and `-`",
            ));
        }
        let mut headers = Vec::new();
        let backend: Box<dyn BackendDebug> = match raw.kind {
            StoreKind::Chroma => {
                if let Some(k) = &raw.api_key {
                    headers.push(("x-chroma-token".to_owned(), k.clone().into_bytes()));
                }
                Box::new(Chroma::new(&raw.tenant, &raw.database, &raw.collection))
            }
            StoreKind::Qdrant => {
                if let Some(k) = &raw.api_key {
                    headers.push(("api-key".to_owned(), k.clone().into_bytes()));
                }
                Box::new(Qdrant::new(&raw.collection))
            }
            StoreKind::Milvus => {
                if let Some(k) = &raw.api_key {
                    headers.push((
                        "authorization".to_owned(),
                        format!("Bearer {k}").into_bytes(),
                    ));
                }
                Box::new(Milvus::new(&raw.database, &raw.collection))
            }
            StoreKind::Elasticsearch | StoreKind::Opensearch => {
                if let Some(k) = &raw.api_key {
                    // Elasticsearch API keys; OpenSearch basic auth (base64 of `user:password`).
                    let scheme = if raw.kind == StoreKind::Elasticsearch {
                        "ApiKey"
                    } else {
                        "Basic"
                    };
                    headers.push((
                        "authorization".to_owned(),
                        format!("{scheme} {k}").into_bytes(),
                    ));
                }
                let flavor = if raw.kind == StoreKind::Elasticsearch {
                    Flavor::Elasticsearch
                } else {
                    Flavor::OpenSearch
                };
                // Index names are lower case.
                Box::new(Search::new(flavor, &raw.collection.to_ascii_lowercase()))
            }
        };
        Ok(Self {
            upstream,
            timeout,
            headers,
            backend,
        })
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The callout for `call`.
    pub fn request<'a>(&'a self, call: &'a StoreCall) -> CalloutRequest<'a> {
        let mut req = CalloutRequest::post_json(&call.path, &call.body, self.timeout);
        req.method = call.method;
        req.headers
            .extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        req
    }
}

/// A JSON array of floats, written without building a `Value`.
pub(crate) fn push_vector(out: &mut String, vector: &[f32]) {
    use std::fmt::Write;
    out.push('[');
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // NaN / infinities are not JSON: they would make the store refuse the call.
        let x = if x.is_finite() { *x } else { 0.0 };
        let _ = write!(out, "{x}");
    }
    out.push(']');
}

/// A JSON string literal.
pub(crate) fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The start of a body for error messages (never the whole of it).
pub(crate) fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(160).collect()
}

#[cfg(test)]
mod tests;
