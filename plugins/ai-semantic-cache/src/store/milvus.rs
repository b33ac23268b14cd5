//! Milvus, RESTful API v2 (`/v2/vectordb/...`): the collection is made by the quick set-up
//! (`dimension`, `metricType: COSINE`, a VarChar primary key `id`, vector field `vector`,
//! dynamic fields on), which also indexes and loads it; creating it again answers `code: 0`.
//! Partition, expiry and answer are dynamic fields; a search filters with a boolean expression.
//! Milvus answers HTTP 200 with a non-zero `code` on errors; for COSINE its `distance` is the
//! similarity.

use serde::Deserialize;

use super::{excerpt, push_vector, quoted, Backend, Found, Record, StoreCall};

/// A Milvus collection.
#[derive(Debug)]
pub struct Milvus {
    db: String,
    name: String,
}

impl Milvus {
    /// The collection `name` in database `db` (`default_database` means Milvus' `default`).
    pub fn new(db: &str, name: &str) -> Self {
        let db = if db == "default_database" {
            "default"
        } else {
            db
        };
        Self {
            db: db.to_owned(),
            name: name.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

fn read(status: u16, body: &[u8]) -> Result<Answer, String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", excerpt(body)));
    }
    let a: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if a.code != 0 {
        return Err(format!(
            "code {}: {}",
            a.code,
            a.message.as_deref().unwrap_or("")
        ));
    }
    Ok(a)
}

impl Backend for Milvus {
    fn ensure(&self, dims: usize) -> StoreCall {
        StoreCall {
            method: "POST",
            path: "/v2/vectordb/collections/create".into(),
            body: format!(
                r#"{{"dbName":{},"collectionName":{},"dimension":{dims},"metricType":"COSINE","idType":"VarChar","primaryFieldName":"id","vectorFieldName":"vector","params":{{"max_length":64,"enableDynamicField":true}}}}"#,
                quoted(&self.db),
                quoted(&self.name)
            )
            .into_bytes(),
        }
    }

    fn ensured(&self, status: u16, body: &[u8]) -> Result<String, String> {
        read(status, body).map(|_| self.name.clone())
    }

    fn query(&self, handle: &str, vector: &[f32], partition: &str, now: u64) -> StoreCall {
        let mut body = String::with_capacity(vector.len() * 12 + 256);
        body.push_str(&format!(
            r#"{{"dbName":{},"collectionName":{},"data":["#,
            quoted(&self.db),
            quoted(handle)
        ));
        push_vector(&mut body, vector);
        // The partition is hex: nothing to escape inside the expression's string literal.
        let filter = format!("cache_partition == \"{partition}\" and expires > {now}");
        body.push_str(&format!(
            r#"],"annsField":"vector","filter":{},"limit":1,"outputFields":["answer"]}}"#,
            quoted(&filter)
        ));
        StoreCall {
            method: "POST",
            path: "/v2/vectordb/entities/search".into(),
            body: body.into_bytes(),
        }
    }

    fn found(&self, status: u16, body: &[u8]) -> Result<Option<Found>, String> {
        let a = read(status, body)?;
        let first = a
            .data
            .as_ref()
            .and_then(|d| d.as_array())
            .and_then(|rows| rows.first());
        let Some(row) = first else {
            return Ok(None);
        };
        let similarity = row
            .get("distance")
            .and_then(serde_json::Value::as_f64)
            .ok_or("no `distance` in the hit")?;
        let document = row
            .get("answer")
            .and_then(serde_json::Value::as_str)
            .ok_or("no `answer` in the hit")?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(Some(Found {
            similarity: similarity as f32,
            document: document.to_owned(),
        }))
    }

    fn upsert(&self, handle: &str, r: &Record<'_>) -> StoreCall {
        let mut body = String::with_capacity(r.vector.len() * 12 + r.document.len() + 256);
        body.push_str(&format!(
            r#"{{"dbName":{},"collectionName":{},"data":[{{"id":{},"vector":"#,
            quoted(&self.db),
            quoted(handle),
            quoted(r.id)
        ));
        push_vector(&mut body, r.vector);
        body.push_str(&format!(
            r#","cache_partition":{},"expires":{},"answer":{}}}]}}"#,
            quoted(r.partition),
            r.expires,
            quoted(r.document)
        ));
        StoreCall {
            method: "POST",
            path: "/v2/vectordb/entities/upsert".into(),
            body: body.into_bytes(),
        }
    }

    fn upserted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        read(status, body).map(|_| ())
    }
}
