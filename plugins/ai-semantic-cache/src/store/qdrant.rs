//! Qdrant, REST API: the collection is created with the cosine distance for the vector length
//! (409 Conflict, or 400 "already exists" before Qdrant 1.8, means it is there); points carry the
//! partition, expiry and answer as payload; a search filters on both (`must`: `match` and
//! `range.gt`). Point ids must be UUIDs: the exact key's first 128 bits as one. Qdrant's score
//! for the cosine distance is the similarity.

use serde::Deserialize;

use super::{excerpt, push_vector, quoted, Backend, Found, Record, StoreCall};

/// A Qdrant collection.
#[derive(Debug)]
pub struct Qdrant {
    name: String,
}

impl Qdrant {
    /// The collection `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
}

#[derive(Deserialize)]
struct SearchAnswer {
    #[serde(default)]
    result: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    score: f32,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    answer: Option<String>,
}

/// The UUID form of a hex key (its first 32 digits).
pub fn uuid(id: &str) -> String {
    let h: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(32)
        .collect();
    let h = format!("{h:0<32}");
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

impl Backend for Qdrant {
    fn ensure(&self, dims: usize) -> StoreCall {
        StoreCall {
            method: "PUT",
            path: format!("/collections/{}", self.name),
            body: format!(r#"{{"vectors":{{"size":{dims},"distance":"Cosine"}}}}"#).into_bytes(),
        }
    }

    fn ensured(&self, status: u16, body: &[u8]) -> Result<String, String> {
        let exists = status == 409
            || (status == 400 && String::from_utf8_lossy(body).contains("already exists"));
        if (200..300).contains(&status) || exists {
            Ok(self.name.clone())
        } else {
            Err(format!("HTTP {status}: {}", excerpt(body)))
        }
    }

    fn query(&self, handle: &str, vector: &[f32], partition: &str, now: u64) -> StoreCall {
        let mut body = String::with_capacity(vector.len() * 12 + 256);
        body.push_str(r#"{"vector":"#);
        push_vector(&mut body, vector);
        body.push_str(&format!(
            r#","limit":1,"with_payload":["answer"],"filter":{{"must":[{{"key":"partition","match":{{"value":{}}}}},{{"key":"expires","range":{{"gt":{now}}}}}]}}}}"#,
            quoted(partition)
        ));
        StoreCall {
            method: "POST",
            path: format!("/collections/{handle}/points/search"),
            body: body.into_bytes(),
        }
    }

    fn found(&self, status: u16, body: &[u8]) -> Result<Option<Found>, String> {
        if !(200..300).contains(&status) {
            return Err(format!("HTTP {status}: {}", excerpt(body)));
        }
        let a: SearchAnswer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(a.result.into_iter().next().and_then(|p| {
            let document = p.payload?.answer?;
            Some(Found {
                similarity: p.score,
                document,
            })
        }))
    }

    fn upsert(&self, handle: &str, r: &Record<'_>) -> StoreCall {
        let mut body = String::with_capacity(r.vector.len() * 12 + r.document.len() + 256);
        body.push_str(&format!(
            r#"{{"points":[{{"id":{},"vector":"#,
            quoted(&uuid(r.id))
        ));
        push_vector(&mut body, r.vector);
        body.push_str(&format!(
            r#","payload":{{"partition":{},"expires":{},"answer":{}}}}}]}}"#,
            quoted(r.partition),
            r.expires,
            quoted(r.document)
        ));
        StoreCall {
            method: "PUT",
            path: format!("/collections/{handle}/points?wait=true"),
            body: body.into_bytes(),
        }
    }

    fn upserted(&self, status: u16, body: &[u8]) -> Result<(), String> {
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}: {}", excerpt(body)))
        }
    }
}
