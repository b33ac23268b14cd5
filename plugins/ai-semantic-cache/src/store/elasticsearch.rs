//! Elasticsearch and OpenSearch kNN (one REST dialect with two mappings and query forms): the
//! index is created with a cosine vector field for the vector length (`dense_vector` with
//! `similarity: cosine` / `knn_vector` with the Lucene engine's `cosinesimil`; 400
//! `resource_already_exists_exception` means it is there); documents carry the partition
//! (`keyword`), the expiry (`long`) and the answer (not indexed); a top-1 kNN search filters on
//! both. Both report cosine as `_score = (1 + cos) / 2`, so the similarity is `2 * _score - 1`.

use serde::Deserialize;

use super::{excerpt, push_vector, quoted, Backend, Found, Record, StoreCall};

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch 8 (`knn` search option, `dense_vector`).
    Elasticsearch,
    /// OpenSearch 2 / 3 (k-NN plugin: `knn` query, `knn_vector`).
    OpenSearch,
}

/// An index.
#[derive(Debug)]
pub struct Search {
    flavor: Flavor,
    index: String,
}

impl Search {
    /// The index `index` on `flavor`.
    pub fn new(flavor: Flavor, index: &str) -> Self {
        Self {
            flavor,
            index: index.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    hits: Hits,
}

#[derive(Deserialize)]
struct Hits {
    #[serde(default)]
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(rename = "_score")]
    score: Option<f32>,
    #[serde(rename = "_source")]
    source: Option<Source>,
}

#[derive(Deserialize)]
struct Source {
    answer: Option<String>,
}

fn ok(status: u16, body: &[u8]) -> Result<(), String> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}: {}", excerpt(body)))
    }
}

impl Backend for Search {
    fn ensure(&self, dims: usize) -> StoreCall {
        let vector = match self.flavor {
            Flavor::Elasticsearch => {
                format!(
                    r#"{{"type":"dense_vector","dims":{dims},"index":true,"similarity":"cosine"}}"#
                )
            }
            Flavor::OpenSearch => format!(
                r#"{{"type":"knn_vector","dimension":{dims},"method":{{"name":"hnsw","engine":"lucene","space_type":"cosinesimil"}}}}"#
            ),
        };
        let settings = match self.flavor {
            Flavor::Elasticsearch => "",
            Flavor::OpenSearch => r#""settings":{"index":{"knn":true}},"#,
        };
        let body = format!(
            r#"{{{settings}"mappings":{{"properties":{{"vector":{vector},"partition":{{"type":"keyword"}},"expires":{{"type":"long"}},"answer":{{"type":"text","index":false}}}}}}}}"#
        );
        StoreCall {
            method: "PUT",
            path: format!("/{}", self.index),
            body: body.into_bytes(),
        }
    }

    fn ensured(&self, status: u16, body: &[u8]) -> Result<String, String> {
        let exists = status == 400
            && String::from_utf8_lossy(body).contains("resource_already_exists_exception");
        if exists {
            return Ok(self.index.clone());
        }
        ok(status, body).map(|()| self.index.clone())
    }

    fn query(&self, handle: &str, vector: &[f32], partition: &str, now: u64) -> StoreCall {
        let filter = format!(
            r#"[{{"term":{{"partition":{}}}}},{{"range":{{"expires":{{"gt":{now}}}}}}}]"#,
            quoted(partition)
        );
        let mut body = String::with_capacity(vector.len() * 12 + 256);
        match self.flavor {
            Flavor::Elasticsearch => {
                body.push_str(
                    r#"{"size":1,"_source":["answer"],"knn":{"field":"vector","query_vector":"#,
                );
                push_vector(&mut body, vector);
                body.push_str(&format!(
                    r#","k":1,"num_candidates":20,"filter":{filter}}}}}"#
                ));
            }
            Flavor::OpenSearch => {
                body.push_str(
                    r#"{"size":1,"_source":["answer"],"query":{"knn":{"vector":{"vector":"#,
                );
                push_vector(&mut body, vector);
                body.push_str(&format!(
                    r#","k":1,"filter":{{"bool":{{"filter":{filter}}}}}}}}}}}}}"#
                ));
            }
        }
        StoreCall {
            method: "POST",
            path: format!("/{handle}/_search"),
            body: body.into_bytes(),
        }
    }

    fn found(&self, status: u16, body: &[u8]) -> Result<Option<Found>, String> {
        ok(status, body)?;
        let a: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let Some(hit) = a.hits.hits.into_iter().next() else {
            return Ok(None);
        };
        let score = hit.score.ok_or("no `_score` in the hit")?;
        let document = hit
            .source
            .and_then(|s| s.answer)
            .ok_or("no `_source.answer` in the hit")?;
        Ok(Some(Found {
            similarity: 2.0 * score - 1.0,
            document,
        }))
    }

    fn upsert(&self, handle: &str, r: &Record<'_>) -> StoreCall {
        let mut body = String::with_capacity(r.vector.len() * 12 + r.document.len() + 128);
        body.push_str(r#"{"vector":"#);
        push_vector(&mut body, r.vector);
        body.push_str(&format!(
            r#","partition":{},"expires":{},"answer":{}}}"#,
            quoted(r.partition),
            r.expires,
            quoted(r.document)
        ));
        StoreCall {
            method: "PUT",
            // The id is hex: safe in a path. `refresh` makes it searchable before the answer ends.
            path: format!("/{handle}/_doc/{}?refresh=true", r.id),
            body: body.into_bytes(),
        }
    }

    fn upserted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        ok(status, body)
    }
}
