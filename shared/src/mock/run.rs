//! A one-request runner over [`MockHost`]: headers, body in chunks, an upstream reply, the response
//! path and `on_log`, with Envoy's buffering (Pause from a body callback buffers) and local replies.

use crate::host::{Action, Capabilities, Direction, LogLevel, MapKind};
use crate::plugin::{FilterDriver, Plugin};

use super::{driver, effective, LocalResponse, MockHost};

/// What the simulated upstream answers.
#[derive(Debug, Clone)]
pub struct UpstreamReply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (without `:status`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body as it arrives, chunk by chunk.
    pub chunks: Vec<Vec<u8>>,
}

impl UpstreamReply {
    /// A 200 JSON reply in one chunk.
    pub fn json(body: &str) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), b"application/json".to_vec())],
            chunks: vec![body.as_bytes().to_vec()],
        }
    }
}

/// One request to push through a plugin.
#[derive(Debug, Clone)]
pub struct Exchange {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunk: usize,
    reply: UpstreamReply,
    caps: Capabilities,
}

/// What happened to the request.
#[derive(Debug)]
pub struct Outcome {
    /// The host, for logs, metrics and shared data.
    pub host: MockHost,
    /// The local reply, when the plugin answered itself.
    pub local_response: Option<LocalResponse>,
    /// Request headers as the upstream got them (`None` if the request never left).
    pub upstream_headers: Option<Vec<(String, Vec<u8>)>>,
    /// The request body as the upstream got it.
    pub upstream_body: Vec<u8>,
    /// Response headers as the client got them (when the upstream answered).
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// The response body as the client got it.
    pub response_body: Vec<u8>,
    /// Set when the plugin paused without a way to continue (a bug in the plugin or the test).
    pub stalled: Option<&'static str>,
}

impl Outcome {
    /// The upstream's request body parsed as JSON (`Null` when it is not JSON).
    pub fn upstream_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.upstream_body).unwrap_or(serde_json::Value::Null)
    }

    /// A request header as the upstream got it.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        let headers = self.upstream_headers.as_ref()?;
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Warnings and errors the plugin logged.
    pub fn warnings(&self) -> Vec<String> {
        self.host.logs_at_least(LogLevel::Warn)
    }
}

impl Exchange {
    /// A JSON POST to `path` with `body`.
    pub fn post_json(path: &str, body: &str) -> Self {
        let headers = vec![
            (":method".into(), b"POST".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
            (":authority".into(), b"gateway.local".to_vec()),
            ("content-type".into(), b"application/json".to_vec()),
            ("content-length".into(), body.len().to_string().into_bytes()),
        ];
        Self {
            headers,
            body: body.as_bytes().to_vec(),
            chunk: 0,
            reply: UpstreamReply::json("{}"),
            caps: Capabilities::FULL,
        }
    }

    /// A bodiless GET to `path`.
    pub fn get(path: &str) -> Self {
        let mut ex = Self::post_json(path, "");
        ex.headers
            .retain(|(k, _)| k != "content-length" && k != "content-type");
        if let Some(m) = ex.headers.iter_mut().find(|(k, _)| k == ":method") {
            m.1 = b"GET".to_vec();
        }
        ex
    }

    /// Set (replace) a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    /// Deliver the request body in chunks of `size` bytes (0: one chunk).
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk = size;
        self
    }

    /// What the upstream answers.
    pub fn reply(mut self, reply: UpstreamReply) -> Self {
        self.reply = reply;
        self
    }

    /// Run on a host with these capabilities (e.g. [`Capabilities::APISIX`]).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// Push the request through plugin `P` configured with `config_json`.
    pub fn run<P: Plugin>(self, config_json: &str) -> Outcome {
        let mut drv = driver::<P>(config_json, self.caps);
        let host = MockHost::new(self.caps);
        let mut out = Outcome {
            host,
            local_response: None,
            upstream_headers: None,
            upstream_body: Vec::new(),
            response_headers: Vec::new(),
            response_body: Vec::new(),
            stalled: None,
        };
        if self.request_path(&mut drv, &mut out) {
            self.response_path(&mut drv, &mut out);
        }
        drv.on_log(&out.host);
        out.local_response = out.host.state.borrow().local_response.clone();
        out
    }

    /// Returns true when the request reached the upstream.
    fn request_path<P: Plugin>(&self, drv: &mut FilterDriver<P>, out: &mut Outcome) -> bool {
        let host = &out.host;
        {
            let mut st = host.state.borrow_mut();
            st.request_headers = self.headers.clone();
            st.gate.open(MapKind::RequestHeaders);
        }
        let no_body = self.body.is_empty();
        let action = effective(host, drv.on_request_headers(host, no_body));
        if host.state.borrow().local_response.is_some() {
            return false;
        }
        // Headers held with Pause keep flowing body to this filter (Envoy with
        // `allow_on_headers_stop_iteration: true`, Higress HeaderStopIteration) and leave with it.
        let headers_held = action == Action::Pause;
        if headers_held && (no_body || !host.state.borrow().callouts.is_empty()) {
            out.stalled = Some("request headers paused with nothing to resume them");
            return false;
        }
        if !headers_held {
            host.state
                .borrow_mut()
                .gate
                .after_headers(Direction::Request, action);
            out.upstream_headers = Some(host.state.borrow().request_headers.clone());
        }
        let size = if self.chunk == 0 {
            self.body.len().max(1)
        } else {
            self.chunk
        };
        let chunks: Vec<&[u8]> = self.body.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let eos = i + 1 == chunks.len();
            let held = {
                let mut st = host.state.borrow_mut();
                st.request_body.extend_from_slice(chunk);
                st.request_body.len()
            };
            let action = effective(host, drv.on_request_body(host, held, eos));
            if host.state.borrow().local_response.is_some() {
                out.upstream_headers = None;
                return false;
            }
            if action == Action::Continue {
                if out.upstream_headers.is_none() {
                    host.state.borrow_mut().gate.release(Direction::Request);
                    out.upstream_headers = Some(host.state.borrow().request_headers.clone());
                }
                let flushed = std::mem::take(&mut host.state.borrow_mut().request_body);
                out.upstream_body.extend_from_slice(&flushed);
            } else if eos {
                out.stalled = Some("request body paused at end of stream");
                return false;
            }
        }
        true
    }

    fn response_path<P: Plugin>(&self, drv: &mut FilterDriver<P>, out: &mut Outcome) {
        let host = &out.host;
        {
            let mut st = host.state.borrow_mut();
            st.response_headers =
                vec![(":status".into(), self.reply.status.to_string().into_bytes())];
            st.response_headers
                .extend(self.reply.headers.iter().cloned());
            st.gate.open(MapKind::ResponseHeaders);
        }
        let no_body = self.reply.chunks.is_empty();
        let action = effective(host, drv.on_response_headers(host, no_body));
        host.state
            .borrow_mut()
            .gate
            .after_headers(Direction::Response, action);
        out.response_headers = host.state.borrow().response_headers.clone();
        for (i, chunk) in self.reply.chunks.iter().enumerate() {
            let eos = i + 1 == self.reply.chunks.len();
            let held = {
                let mut st = host.state.borrow_mut();
                st.response_body.extend_from_slice(chunk);
                st.response_body.len()
            };
            let action = effective(host, drv.on_response_body(host, held, eos));
            if action == Action::Continue {
                let flushed = std::mem::take(&mut host.state.borrow_mut().response_body);
                out.response_body.extend_from_slice(&flushed);
            } else if eos {
                out.stalled = Some("response body paused at end of stream");
            }
        }
    }
}
