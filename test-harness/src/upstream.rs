//! Client requests and upstream handlers for the chain runner.

use crate::abi::{header_value, Headers};
use std::net::SocketAddr;

/// A client request: headers plus a body sent in chunks of `chunk_size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Headers including `:method`, `:path`, `:authority`, `:scheme`.
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
    /// Size of each request body chunk.
    pub chunk_size: usize,
    /// Trailers that end the request (then the last data frame has end-of-stream false).
    pub trailers: Option<Headers>,
}

impl Request {
    /// A request with the given method and path, host `gateway.test`, no body.
    pub fn new(method: &str, path: &str) -> Request {
        let headers = crate::abi::headers(&[
            (":method", method),
            (":path", path),
            (":authority", "gateway.test"),
            (":scheme", "http"),
            ("x-request-id", "00000000-0000-0000-0000-000000000001"),
        ]);
        Request {
            headers,
            body: Vec::new(),
            chunk_size: usize::MAX,
            trailers: None,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// `POST path` with a JSON body (content-type and content-length set).
    pub fn post_json(path: &str, body: impl AsRef<[u8]>) -> Request {
        Request::new("POST", path)
            .header("content-type", "application/json")
            .body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body and its content-length.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Request {
        self.body = body.as_ref().to_vec();
        self.headers.retain(|(k, _)| k != "content-length");
        self.headers.push((
            "content-length".into(),
            self.body.len().to_string().into_bytes(),
        ));
        self
    }

    /// Sends the body in chunks of `n` bytes.
    pub fn chunk_size(mut self, n: usize) -> Request {
        self.chunk_size = n.max(1);
        self
    }

    /// Ends the request with these trailers instead of an end-of-stream data frame.
    pub fn trailers(mut self, trailers: Headers) -> Request {
        self.trailers = Some(trailers);
        self
    }
}

/// What reached the upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Headers after every filter.
    pub headers: Headers,
    /// Body after every filter.
    pub body: Vec<u8>,
    /// Host chosen with Higress `proxy_set_upstream_override_host`, if any.
    pub override_host: Option<String>,
    /// Trailers the upstream got, if the request ended with trailers.
    pub trailers: Option<Headers>,
}

impl UpstreamRequest {
    /// A header value (first, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers, name)
    }

    /// The body as lossy UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An upstream's answer: status, headers and the body as a list of chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamResponse {
    /// Status.
    pub status: u16,
    /// Headers (without `:status`).
    pub headers: Headers,
    /// Body chunks in order (empty = headers-only response, unless trailers follow).
    pub chunks: Vec<Vec<u8>>,
    /// Trailers that end the response (then the last chunk has end-of-stream false).
    pub trailers: Option<Headers>,
}

impl UpstreamResponse {
    /// A response with no headers and no body.
    pub fn new(status: u16) -> UpstreamResponse {
        UpstreamResponse {
            status,
            headers: Vec::new(),
            chunks: Vec::new(),
            trailers: None,
        }
    }

    /// A JSON response in one chunk.
    pub fn json(status: u16, body: impl AsRef<[u8]>) -> UpstreamResponse {
        UpstreamResponse::new(status)
            .header("content-type", "application/json")
            .chunk(body)
    }

    /// A `text/event-stream` response, one chunk per element.
    pub fn sse<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(chunks: I) -> UpstreamResponse {
        let mut r = UpstreamResponse::new(200).header("content-type", "text/event-stream");
        r.chunks = chunks.into_iter().map(|c| c.as_ref().to_vec()).collect();
        r
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> UpstreamResponse {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Appends a body chunk.
    pub fn chunk(mut self, data: impl AsRef<[u8]>) -> UpstreamResponse {
        self.chunks.push(data.as_ref().to_vec());
        self
    }

    /// Ends the response with these trailers (e.g. gRPC's `grpc-status`).
    pub fn trailers(mut self, trailers: Headers) -> UpstreamResponse {
        self.trailers = Some(trailers);
        self
    }

    /// Re-splits the body into chunks of `n` bytes.
    pub fn rechunk(mut self, n: usize) -> UpstreamResponse {
        let all: Vec<u8> = self.chunks.concat();
        self.chunks = all.chunks(n.max(1)).map(<[u8]>::to_vec).collect();
        self
    }

    /// Headers with `:status` first.
    pub(crate) fn all_headers(&self) -> Headers {
        let mut h = vec![(":status".to_string(), self.status.to_string().into_bytes())];
        h.extend(self.headers.iter().cloned());
        h
    }
}

/// Test code acting as the upstream. Closures `FnMut(&UpstreamRequest) -> UpstreamResponse` implement it.
pub trait Upstream {
    /// Answers the request that made it through every filter.
    fn handle(&mut self, request: &UpstreamRequest) -> UpstreamResponse;
}

impl<F: FnMut(&UpstreamRequest) -> UpstreamResponse> Upstream for F {
    fn handle(&mut self, request: &UpstreamRequest) -> UpstreamResponse {
        self(request)
    }
}

/// Forwards to a real HTTP/1.1 server (e.g. llm-sim) and re-chunks its body.
#[derive(Debug, Clone)]
pub struct ForwardUpstream {
    /// Server address.
    pub addr: SocketAddr,
    /// Response chunk size handed to the filters.
    pub chunk_size: usize,
}

impl ForwardUpstream {
    /// Forward to `addr`, delivering the response body in `chunk_size` pieces.
    pub fn new(addr: SocketAddr, chunk_size: usize) -> ForwardUpstream {
        ForwardUpstream { addr, chunk_size }
    }
}

impl Upstream for ForwardUpstream {
    fn handle(&mut self, request: &UpstreamRequest) -> UpstreamResponse {
        match crate::http_client::send(self.addr, &request.headers, &request.body, None) {
            Ok(r) => {
                let mut resp = UpstreamResponse {
                    status: r.status,
                    headers: r.headers,
                    chunks: vec![r.body],
                    trailers: None,
                };
                resp.headers.retain(|(k, _)| k != "content-length");
                resp.rechunk(self.chunk_size)
            }
            Err(e) => UpstreamResponse::new(503)
                .header("content-type", "text/plain")
                .chunk(format!(
                    "upstream connect error or disconnect/reset before headers: {e}"
                )),
        }
    }
}
