//! The simulator's view of one received request, and the journal of requests that
//! `GET /_sim/requests` reports.

use std::sync::Mutex;

use bytes::Bytes;
use hyper::HeaderMap;
use serde_json::{Map, Value};

/// A fully read request.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string without `?` (empty when absent).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Bytes,
    /// Values of `{...}` placeholders of the matched route, in order.
    pub params: Vec<String>,
}

impl SimRequest {
    /// The body parsed as JSON, or the parser's message.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }

    /// The journal entry for this request: `{"method","path","query","headers","body"}`.
    pub fn to_record(&self) -> Value {
        let mut headers = Map::new();
        for name in self.headers.keys() {
            let joined = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            headers.insert(name.as_str().to_string(), Value::String(joined));
        }
        let body = match self.json() {
            Ok(v) => v,
            Err(_) => Value::String(String::from_utf8_lossy(&self.body).into_owned()),
        };
        let mut rec = Map::new();
        rec.insert("method".into(), Value::String(self.method.clone()));
        rec.insert("path".into(), Value::String(self.path.clone()));
        rec.insert("query".into(), Value::String(self.query.clone()));
        rec.insert("headers".into(), Value::Object(headers));
        rec.insert("body".into(), body);
        Value::Object(rec)
    }
}

/// The requests received since start or the last clear.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<Vec<Value>>,
}

impl Journal {
    /// Appends one request.
    pub fn push(&self, req: &SimRequest) {
        let rec = req.to_record();
        match self.entries.lock() {
            Ok(mut entries) => entries.push(rec),
            Err(poisoned) => poisoned.into_inner().push(rec),
        }
    }

    /// All entries as a JSON array.
    pub fn snapshot(&self) -> Value {
        let entries = match self.entries.lock() {
            Ok(entries) => entries.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Value::Array(entries)
    }

    /// Forgets all entries.
    pub fn clear(&self) {
        match self.entries.lock() {
            Ok(mut entries) => entries.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }
}
