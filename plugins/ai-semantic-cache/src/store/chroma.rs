//! Chroma, REST API v2 (`chroma run`): the collection is got-or-created by name with the cosine
//! space and addressed by its id afterwards; a point's partition and expiry are metadata
//! (`where` with `$and` / `$gt`), the answer its document. Chroma reports cosine *distance*
//! (1 - similarity).

use serde::Deserialize;

use super::{excerpt, push_vector, quoted, Backend, Found, Record, StoreCall};

/// A Chroma collection.
#[derive(Debug)]
pub struct Chroma {
    collections: String,
    name: String,
}

impl Chroma {
    /// The collection `name` in `tenant` / `database`.
    pub fn new(tenant: &str, database: &str, name: &str) -> Self {
        Self {
            collections: format!("/api/v2/tenants/{tenant}/databases/{database}/collections"),
            name: name.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct QueryResult {
    #[serde(default)]
    distances: Option<Vec<Option<Vec<Option<f32>>>>>,
    #[serde(default)]
    documents: Option<Vec<Option<Vec<Option<String>>>>>,
}

/// The first value of the first row of a Chroma result column.
fn first<T>(column: Option<Vec<Option<Vec<Option<T>>>>>) -> Option<T> {
    column
        .and_then(|rows| rows.into_iter().next().flatten())
        .and_then(|row| row.into_iter().next().flatten())
}

fn ok(status: u16, body: &[u8]) -> Result<(), String> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", excerpt(body)))
    }
}

impl Backend for Chroma {
    fn ensure(&self, _dims: usize) -> StoreCall {
        let body = format!(
            r#"{{"name":{},"get_or_create":true,"configuration":{{"hnsw":{{"space":"cosine"}}}}}}"#,
            quoted(&self.name)
        );
        StoreCall {
            method: "POST",
            path: self.collections.clone(),
            body: body.into_bytes(),
        }
    }

    fn ensured(&self, status: u16, body: &[u8]) -> Result<String, String> {
        ok(status, body)?;
        let c: Created = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let safe = !c.id.is_empty()
            && c.id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
        if !safe {
            return Err("the collection id is not a UUID".into());
        }
        Ok(c.id)
    }

    fn query(&self, handle: &str, vector: &[f32], partition: &str, now: u64) -> StoreCall {
        let mut body = String::with_capacity(vector.len() * 12 + 256);
        body.push_str(r#"{"query_embeddings":["#);
        push_vector(&mut body, vector);
        body.push_str(&format!(
            r#"],"n_results":1,"where":{{"$and":[{{"partition":{}}},{{"expires":{{"$gt":{now}}}}}]}},"include":["documents","distances"]}}"#,
            quoted(partition)
        ));
        StoreCall {
            method: "POST",
            path: format!("{}/{handle}/query", self.collections),
            body: body.into_bytes(),
        }
    }

    fn found(&self, status: u16, body: &[u8]) -> Result<Option<Found>, String> {
        ok(status, body)?;
        let r: QueryResult = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let distance: Option<f32> = first(r.distances);
        let document: Option<String> = first(r.documents);
        match (distance, document) {
            (Some(d), Some(document)) => Ok(Some(Found {
                similarity: 1.0 - d,
                document,
            })),
            _ => Ok(None),
        }
    }

    fn upsert(&self, handle: &str, r: &Record<'_>) -> StoreCall {
        let mut body = String::with_capacity(r.vector.len() * 12 + r.document.len() + 256);
        body.push_str(&format!(r#"{{"ids":[{}],"embeddings":["#, quoted(r.id)));
        push_vector(&mut body, r.vector);
        body.push_str(&format!(
            r#"],"documents":[{}],"metadatas":[{{"partition":{},"expires":{}}}]}}"#,
            quoted(r.document),
            quoted(r.partition),
            r.expires
        ));
        StoreCall {
            method: "POST",
            path: format!("{}/{handle}/upsert", self.collections),
            body: body.into_bytes(),
        }
    }

    fn upserted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        ok(status, body)
    }
}
