//! A one-request runner over [`MockHost`]: headers, body in chunks, trailers, an upstream reply,
//! the response path and `on_log`, with Envoy's buffering (Pause from a body callback buffers),
//! local replies, and callouts answered after the callback that started them returns.

use crate::host::{Action, Capabilities, Direction, LogLevel, MapKind};
use crate::plugin::{FilterDriver, Plugin, Reply};

use super::{effective, Callout, Gateway, LocalResponse, MockHost};

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

/// How a test answers callouts: `None` leaves the call unanswered.
pub type Answerer = dyn FnMut(&Callout) -> Option<Reply>;

/// One request to push through a plugin.
pub struct Exchange {
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunk: usize,
    trailers: Option<Vec<(String, Vec<u8>)>>,
    reply: UpstreamReply,
    reply_trailers: Option<Vec<(String, Vec<u8>)>>,
    caps: Capabilities,
    upstream_hosts: Vec<(String, String)>,
    pub(crate) answer: Option<Box<Answerer>>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("reply", &self.reply.status)
            .finish_non_exhaustive()
    }
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
    /// Request trailers as the upstream got them.
    pub upstream_trailers: Option<Vec<(String, Vec<u8>)>>,
    /// Response headers as the client got them (when the upstream answered).
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// The response body as the client got it.
    pub response_body: Vec<u8>,
    /// Response trailers as the client got them.
    pub response_trailers: Option<Vec<(String, Vec<u8>)>>,
    /// Callouts the plugin started during the request, in order.
    pub callouts: Vec<Callout>,
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
            trailers: None,
            reply: UpstreamReply::json("{}"),
            reply_trailers: None,
            caps: Capabilities::FULL,
            upstream_hosts: Vec::new(),
            answer: None,
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

    /// Remove a request header.
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self
    }

    /// Deliver the request body in chunks of `size` bytes (0: one chunk).
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk = size;
        self
    }

    /// End the request with these trailers (HTTP/2 or gRPC style) instead of an end-of-stream
    /// body chunk.
    pub fn trailers(mut self, trailers: &[(&str, &str)]) -> Self {
        self.trailers = Some(pairs(trailers));
        self
    }

    /// What the upstream answers.
    pub fn reply(mut self, reply: UpstreamReply) -> Self {
        self.reply = reply;
        self
    }

    /// End the upstream's answer with these trailers.
    pub fn reply_trailers(mut self, trailers: &[(&str, &str)]) -> Self {
        self.reply_trailers = Some(pairs(trailers));
        self
    }

    /// Answer the plugin's callouts with `answer` (`None` leaves a call pending).
    pub fn answer(mut self, answer: impl FnMut(&Callout) -> Option<Reply> + 'static) -> Self {
        self.answer = Some(Box::new(answer));
        self
    }

    /// What the host lists as the routed cluster's hosts (Higress `proxy_get_upstream_hosts`):
    /// `(address, JSON)` pairs.
    pub fn upstream_hosts(mut self, hosts: &[(&str, &str)]) -> Self {
        self.upstream_hosts = hosts
            .iter()
            .map(|(a, j)| ((*a).to_owned(), (*j).to_owned()))
            .collect();
        self
    }

    /// Run on a host with these capabilities (e.g. [`Capabilities::APISIX`]).
    pub fn capabilities(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self
    }

    /// The capabilities this exchange runs with.
    pub fn caps(&self) -> Capabilities {
        self.caps
    }

    /// Push the request through plugin `P` configured with `config_json`, on a fresh worker.
    pub fn run<P: Plugin>(self, config_json: &str) -> Outcome {
        Gateway::<P>::new(config_json, self.caps).run(self)
    }

    /// Push the request through `drv` on `host`; `answer` answers callouts.
    pub(crate) fn run_on<P: Plugin>(
        mut self,
        mut drv: FilterDriver<P>,
        host: MockHost,
        fallback: &mut Answerer,
    ) -> Outcome {
        host.state.borrow_mut().upstream_hosts = std::mem::take(&mut self.upstream_hosts);
        let mut own = self.answer.take();
        let answer: &mut Answerer = match own.as_mut() {
            Some(a) => a.as_mut(),
            None => fallback,
        };
        let mut run = Run {
            drv: &mut drv,
            answer,
            answered: 0,
            out: Outcome {
                host,
                local_response: None,
                upstream_headers: None,
                upstream_body: Vec::new(),
                upstream_trailers: None,
                response_headers: Vec::new(),
                response_body: Vec::new(),
                response_trailers: None,
                callouts: Vec::new(),
                stalled: None,
            },
        };
        if run.request_path(&self) {
            run.response_path(&self);
        }
        let Run { mut out, .. } = run;
        drv.on_log(&out.host);
        out.local_response = out.host.state.borrow().local_response.clone();
        out.callouts = out.host.state.borrow().callouts.clone();
        out
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

struct Run<'a, P: Plugin> {
    drv: &'a mut FilterDriver<P>,
    answer: &'a mut Answerer,
    answered: usize,
    out: Outcome,
}

impl<P: Plugin> Run<'_, P> {
    /// After a callback: answer the callouts it started (Envoy delivers them once the callback
    /// returned); a resume of `direction` turns a Pause into Continue.
    fn settle(&mut self, action: Action, direction: Direction) -> Action {
        let host = &self.out.host;
        host.state.borrow_mut().resumed.clear();
        loop {
            let call = host.state.borrow().callouts.get(self.answered).cloned();
            let Some(call) = call else { break };
            self.answered += 1;
            if let Some(reply) = (self.answer)(&call) {
                self.drv.on_reply(host, call.token, reply);
            }
        }
        let resumed = host.state.borrow().resumed.contains(&direction);
        let action = if resumed { Action::Continue } else { action };
        effective(host, action)
    }

    fn replied(&self) -> bool {
        self.out.host.state.borrow().local_response.is_some()
    }

    /// The held request headers leave (once).
    fn release_request_headers(&mut self) {
        if self.out.upstream_headers.is_none() {
            let mut st = self.out.host.state.borrow_mut();
            st.gate.release(Direction::Request);
            self.out.upstream_headers = Some(st.request_headers.clone());
        }
    }

    /// Returns true when the request reached the upstream.
    fn request_path(&mut self, ex: &Exchange) -> bool {
        {
            let mut st = self.out.host.state.borrow_mut();
            st.request_headers = ex.headers.clone();
            st.gate.open(MapKind::RequestHeaders);
        }
        let no_body = ex.body.is_empty() && ex.trailers.is_none();
        let action = self.drv.on_request_headers(&self.out.host, no_body);
        let action = self.settle(action, Direction::Request);
        if self.replied() {
            return false;
        }
        // Headers held with Pause keep flowing body to this filter (Envoy with
        // `allow_on_headers_stop_iteration: true`, Higress HeaderStopIteration) and leave with it.
        if action == Action::Pause && no_body {
            self.out.stalled = Some("request headers paused with nothing to resume them");
            return false;
        }
        if action == Action::Continue {
            self.release_request_headers();
        }
        let size = if ex.chunk == 0 {
            ex.body.len().max(1)
        } else {
            ex.chunk
        };
        let chunks: Vec<&[u8]> = ex.body.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let eos = i + 1 == chunks.len() && ex.trailers.is_none();
            let held = {
                let mut st = self.out.host.state.borrow_mut();
                st.request_body.extend_from_slice(chunk);
                st.request_body.len()
            };
            let action = self.drv.on_request_body(&self.out.host, held, eos);
            let action = self.settle(action, Direction::Request);
            if self.replied() {
                self.out.upstream_headers = None;
                return false;
            }
            if action == Action::Continue {
                self.release_request_headers();
                let flushed = std::mem::take(&mut self.out.host.state.borrow_mut().request_body);
                self.out.upstream_body.extend_from_slice(&flushed);
            } else if eos {
                self.out.stalled = Some("request body paused at end of stream");
                return false;
            }
        }
        if let Some(trailers) = &ex.trailers {
            {
                let mut st = self.out.host.state.borrow_mut();
                st.request_trailers = trailers.clone();
                st.gate.open(MapKind::RequestTrailers);
            }
            let action = self.drv.on_request_trailers(&self.out.host);
            let action = self.settle(action, Direction::Request);
            if self.replied() {
                self.out.upstream_headers = None;
                return false;
            }
            if action != Action::Continue {
                self.out.stalled = Some("request trailers paused with nothing to resume them");
                return false;
            }
            self.release_request_headers();
            let mut st = self.out.host.state.borrow_mut();
            let flushed = std::mem::take(&mut st.request_body);
            self.out.upstream_body.extend_from_slice(&flushed);
            self.out.upstream_trailers = Some(st.request_trailers.clone());
            st.gate.release(Direction::Request);
        }
        true
    }

    fn response_path(&mut self, ex: &Exchange) {
        {
            let mut st = self.out.host.state.borrow_mut();
            st.response_headers =
                vec![(":status".into(), ex.reply.status.to_string().into_bytes())];
            st.response_headers.extend(ex.reply.headers.iter().cloned());
            st.gate.open(MapKind::ResponseHeaders);
        }
        let no_body = ex.reply.chunks.is_empty() && ex.reply_trailers.is_none();
        let action = self.drv.on_response_headers(&self.out.host, no_body);
        let action = self.settle(action, Direction::Response);
        {
            let mut st = self.out.host.state.borrow_mut();
            st.gate.after_headers(Direction::Response, action);
            self.out.response_headers = st.response_headers.clone();
        }
        for (i, chunk) in ex.reply.chunks.iter().enumerate() {
            let eos = i + 1 == ex.reply.chunks.len() && ex.reply_trailers.is_none();
            let held = {
                let mut st = self.out.host.state.borrow_mut();
                st.response_body.extend_from_slice(chunk);
                st.response_body.len()
            };
            let action = self.drv.on_response_body(&self.out.host, held, eos);
            let action = self.settle(action, Direction::Response);
            if action == Action::Continue {
                let flushed = std::mem::take(&mut self.out.host.state.borrow_mut().response_body);
                self.out.response_body.extend_from_slice(&flushed);
            } else if eos {
                self.out.stalled = Some("response body paused at end of stream");
            }
        }
        if let Some(trailers) = &ex.reply_trailers {
            {
                let mut st = self.out.host.state.borrow_mut();
                st.response_trailers = trailers.clone();
                st.gate.open(MapKind::ResponseTrailers);
            }
            let action = self.drv.on_response_trailers(&self.out.host);
            let action = self.settle(action, Direction::Response);
            if action != Action::Continue {
                self.out.stalled = Some("response trailers paused with nothing to resume them");
                return;
            }
            let mut st = self.out.host.state.borrow_mut();
            let flushed = std::mem::take(&mut st.response_body);
            self.out.response_body.extend_from_slice(&flushed);
            self.out.response_trailers = Some(st.response_trailers.clone());
        }
    }
}
