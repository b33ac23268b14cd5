//! Test support: an in-process llm-sim on a background runtime, a small hand-written HTTP/1.1
//! client over real TCP, an order-preserving JSON shape, and fixture loading.

#![allow(dead_code)]
// Test support code: failing loudly is the point (clippy.toml only relaxes these inside #[test] fns).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use llm_sim::{Config, Defaults, Server};

mod framing;
#[allow(unused_imports)]
pub use framing::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A server running on its own thread; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::with_defaults(Defaults::default())
    }

    pub fn with_defaults(defaults: Defaults) -> Self {
        Self::with_config(move |c| c.defaults = defaults)
    }

    /// A server whose config `adjust` edits (defaults, credentials).
    pub fn with_config(adjust: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config = Config::new("127.0.0.1:0".parse().unwrap());
                adjust(&mut config);
                let server = Server::start(config).await.unwrap();
                addr_tx.send(server.addr()).unwrap();
                let _ = stop_rx.await;
                server.shutdown().await;
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TestServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.connect().send(method, path, headers, body).unwrap()
    }

    pub fn post_json(&self, path: &str, body: &[u8]) -> Response {
        self.send("POST", path, &[("content-type", "application/json")], body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Chunk payloads as framed by the server (chunked responses only).
    pub chunks: Vec<Vec<u8>>,
    /// Arrival time of each chunk, from when the request was sent.
    pub chunk_times: Vec<Duration>,
    /// Whether the body ended properly (terminating chunk or full content-length).
    pub complete: bool,
    /// Time from sending the request to reading the status line.
    pub head_time: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// What went wrong reading a response.
#[derive(Debug)]
pub enum ClientError {
    /// The server closed or reset the connection before a status line.
    NoResponse(std::io::Error),
    Io(std::io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: llm-sim.test\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        let started = Instant::now();
        self.reader
            .get_mut()
            .write_all(&bytes)
            .map_err(ClientError::Io)?;
        self.read_response(started)
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read_response(&mut self, started: Instant) -> Result<Response, ClientError> {
        let status_line = self.read_line().map_err(ClientError::NoResponse)?;
        let head_time = started.elapsed();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.read_line().map_err(ClientError::Io)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
            chunks: Vec::new(),
            chunk_times: Vec::new(),
            complete: false,
            head_time,
        };
        if resp.header("transfer-encoding") == Some("chunked") {
            self.read_chunked(&mut resp, started);
        } else {
            let len: usize = resp
                .header("content-length")
                .unwrap_or("0")
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).map_err(ClientError::Io)?;
            resp.body = body;
            resp.complete = true;
        }
        Ok(resp)
    }

    /// Reads chunks until the terminating chunk, or until the connection ends (incomplete).
    fn read_chunked(&mut self, resp: &mut Response, started: Instant) {
        loop {
            let Ok(size_line) = self.read_line() else {
                return;
            };
            let size =
                usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16).unwrap();
            if size == 0 {
                let _ = self.read_line(); // empty trailer line
                resp.complete = true;
                return;
            }
            let mut chunk = vec![0; size + 2];
            if self.reader.read_exact(&mut chunk).is_err() {
                return;
            }
            assert_eq!(&chunk[size..], b"\r\n", "chunk not followed by CRLF");
            chunk.truncate(size);
            resp.chunk_times.push(started.elapsed());
            resp.body.extend_from_slice(&chunk);
            resp.chunks.push(chunk);
        }
    }
}

/// JSON that remembers object key order (serde_json's `Value` sorts keys here).
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar(serde_json::Value),
}

impl Ordered {
    pub fn parse(text: &str) -> Ordered {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
    }

    pub fn keys(&self) -> Vec<&str> {
        match self {
            Ordered::Object(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The structure without values: objects keep their keys (in order), arrays the shape of
    /// their first element, scalars their JSON type.
    pub fn shape(&self) -> String {
        match self {
            Ordered::Object(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.shape()))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Ordered::Array(items) => match items.first() {
                Some(first) => format!("[{}]", first.shape()),
                None => "[]".to_string(),
            },
            Ordered::Scalar(v) => match v {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                _ => unreachable!(),
            }
            .to_string(),
        }
    }

    /// Same as [`Ordered::shape`] but with object keys sorted (for files whose recorder sorted them).
    pub fn sorted_shape(&self) -> String {
        match self {
            Ordered::Object(fields) => {
                let mut inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", v.sorted_shape()))
                    .collect();
                inner.sort();
                format!("{{{}}}", inner.join(","))
            }
            Ordered::Array(items) => match items.first() {
                Some(first) => format!("[{}]", first.sorted_shape()),
                None => "[]".to_string(),
            },
            other => other.shape(),
        }
    }

    /// A copy without the named top-level keys.
    pub fn without(&self, drop: &[&str]) -> Ordered {
        match self {
            Ordered::Object(fields) => Ordered::Object(
                fields
                    .iter()
                    .filter(|(k, _)| !drop.contains(&k.as_str()))
                    .cloned()
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(v.into()))
    }
    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Scalar(serde_json::Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Ordered::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
            fields.push((k, v));
        }
        Ok(Ordered::Object(fields))
    }
}

/// Path of a provider fixture.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}

/// Splits an SSE body into its `data:` payloads, asserting the `data: ...\n\n` framing.
pub fn sse_payloads(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line"
    );
    let events: Vec<&str> = body.strip_suffix("\n\n").unwrap().split("\n\n").collect();
    events
        .iter()
        .map(|e| {
            assert!(!e.contains('\n'), "one line per event expected: {e:?}");
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("event without `data: `: {e:?}"))
                .to_string()
        })
        .collect()
}
