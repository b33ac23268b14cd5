//! The per-stream API: feed one filter request/response headers and body chunks and see what it
//! did, following Envoy's phase rules (or APISIX's, under that profile).

use crate::abi::{Action, Headers};
use crate::error::{HarnessError, Result};
use crate::host::state::{AfterAction, Direction, StreamState};
use crate::profile::Profile;
use crate::vm::Vm;

/// A stream (HTTP context) id inside one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub u32);

/// A local reply a filter sent (`send_http_response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (lowercased keys).
    pub headers: Headers,
    /// Body.
    pub body: Vec<u8>,
    /// Details (spaces replaced by `_`).
    pub details: String,
    /// gRPC status, if one in 0..=16 was given.
    pub grpc_status: Option<u32>,
}

/// Something a filter passes on to the next filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Headers and end-of-stream.
    Headers(Headers, bool),
    /// A body chunk and end-of-stream.
    Data(Vec<u8>, bool),
    /// Trailers; they end the stream (the data before them had end-of-stream false).
    Trailers(Headers),
}

/// What one call into the per-stream API caused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// The action the guest callback returned (None if the callback was not invoked).
    pub action: Option<Action>,
    /// Everything the filter passed on during this call (including data released by a resume).
    pub forwarded: Vec<Event>,
    /// A local reply the filter sent (applied after the callback; it forces Stop).
    pub local_reply: Option<LocalReply>,
    /// The filter reset the stream (`close_stream`).
    pub reset: bool,
}

impl Step {
    /// The forwarded headers, if any.
    pub fn headers(&self) -> Option<&Headers> {
        self.forwarded.iter().find_map(|e| match e {
            Event::Headers(h, _) => Some(h),
            _ => None,
        })
    }

    /// The forwarded trailers, if any.
    pub fn trailers(&self) -> Option<&Headers> {
        self.forwarded.iter().find_map(|e| match e {
            Event::Trailers(t) => Some(t),
            _ => None,
        })
    }

    /// All forwarded body bytes concatenated.
    pub fn body(&self) -> Vec<u8> {
        self.forwarded
            .iter()
            .flat_map(|e| match e {
                Event::Data(d, _) => d.as_slice(),
                _ => &[],
            })
            .copied()
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum HeaderState {
    #[default]
    NotSeen,
    Paused,
    Done,
}

/// Host-side flow control of one direction of one stream.
#[derive(Debug, Default)]
pub(crate) struct DirFlow {
    headers: HeaderState,
    buffering: bool,
    held: Vec<u8>,
    held_eos: Option<bool>,
    eos_seen: bool,
    stopped: bool,
    /// Trailers that arrived while the headers were held (StopAll).
    held_trailers: Option<Headers>,
    /// The trailers callback ran and the trailers have not been passed on yet.
    trailers_paused: bool,
    /// Trailers arrived: the stream has ended.
    trailers_seen: bool,
}

/// Flow control of both directions.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    request: DirFlow,
    response: DirFlow,
}

impl Flow {
    fn dir(&mut self, d: Direction) -> &mut DirFlow {
        match d {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }
}

fn export(d: Direction, body: bool) -> &'static str {
    match (d, body) {
        (Direction::Request, false) => "proxy_on_request_headers",
        (Direction::Request, true) => "proxy_on_request_body",
        (Direction::Response, false) => "proxy_on_response_headers",
        (Direction::Response, true) => "proxy_on_response_body",
    }
}

fn trailers_export(d: Direction) -> &'static str {
    match d {
        Direction::Request => "proxy_on_request_trailers",
        Direction::Response => "proxy_on_response_trailers",
    }
}

impl Vm {
    /// Creates an HTTP stream context (`proxy_on_context_create(id, root)`).
    pub fn create_stream(&mut self) -> Result<StreamId> {
        let st = self.store.data_mut();
        let id = st.allocate_ctx();
        st.streams.insert(id, StreamState::default());
        self.flows.insert(id, Flow::default());
        let root = self.store.data().root_ctx as i32;
        self.call("proxy_on_context_create", &[id as i32, root])?;
        self.settle()?;
        Ok(StreamId(id))
    }

    /// Delivers request headers.
    pub fn request_headers(
        &mut self,
        id: StreamId,
        headers: Headers,
        end_of_stream: bool,
    ) -> Result<Step> {
        self.headers(id, Direction::Request, headers, end_of_stream)
    }

    /// Delivers a request body chunk.
    pub fn request_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Step> {
        self.data(id, Direction::Request, chunk, end_of_stream)
    }

    /// Delivers response headers (include `:status`).
    pub fn response_headers(
        &mut self,
        id: StreamId,
        headers: Headers,
        end_of_stream: bool,
    ) -> Result<Step> {
        self.headers(id, Direction::Response, headers, end_of_stream)
    }

    /// Delivers a response body chunk.
    pub fn response_body(
        &mut self,
        id: StreamId,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Step> {
        self.data(id, Direction::Response, chunk, end_of_stream)
    }

    /// Delivers request trailers (`proxy_on_request_trailers(ctx, n)`); they end the request.
    /// Map 1 (HTTP_REQUEST_TRAILERS) is readable and writable during the callback, and a body
    /// buffered by an earlier Pause stays readable and replaceable through buffer 0, as in Envoy
    /// (`getBuffer` returns the decoding buffer while buffering).
    pub fn request_trailers(&mut self, id: StreamId, trailers: Headers) -> Result<Step> {
        self.trailers(id, Direction::Request, trailers)
    }

    /// Delivers response trailers (`proxy_on_response_trailers(ctx, n)`); they end the response.
    pub fn response_trailers(&mut self, id: StreamId, trailers: Headers) -> Result<Step> {
        self.trailers(id, Direction::Response, trailers)
    }

    /// Applies actions that arrived outside a stream call (e.g. a resume from `on_tick`).
    pub fn poll(&mut self, id: StreamId) -> Result<Step> {
        self.settle()?;
        let mut step = Step::default();
        for d in [Direction::Request, Direction::Response] {
            self.apply_actions(id, d, &mut step, None)?;
        }
        Ok(step)
    }

    /// Ends the stream: `proxy_on_log` (headers readable), `proxy_on_done`, `proxy_on_delete`.
    pub fn finish_stream(&mut self, id: StreamId) -> Result<()> {
        let response_trailers = self
            .flows
            .get(&id.0)
            .is_some_and(|f| f.response.trailers_seen);
        if let Some(s) = self.store.data_mut().streams.get_mut(&id.0) {
            s.request.headers_live = true;
            s.response.headers_live = s.response.seen_headers;
            // Envoy's access-log phase has the response trailers but not the request trailers.
            s.request.trailers_live = false;
            s.response.trailers_live = response_trailers;
        }
        let ctx = id.0 as i32;
        self.call("proxy_on_log", &[ctx])?;
        self.call("proxy_on_done", &[ctx])?;
        self.call("proxy_on_delete", &[ctx])?;
        self.settle()?;
        self.store.data_mut().streams.remove(&id.0);
        self.flows.remove(&id.0);
        Ok(())
    }

    /// The request headers as the filter left them.
    pub fn stream_request_headers(&self, id: StreamId) -> Option<Headers> {
        self.store
            .data()
            .streams
            .get(&id.0)
            .map(|s| s.request.headers.clone())
    }

    /// The host set by Higress `proxy_set_upstream_override_host`.
    pub fn upstream_override(&self, id: StreamId) -> Option<String> {
        self.store
            .data()
            .streams
            .get(&id.0)
            .and_then(|s| s.upstream_override.clone())
    }

    /// A property the guest set on the stream (path segments).
    pub fn stream_property(&self, id: StreamId, path: &[&str]) -> Option<Vec<u8>> {
        self.store
            .data()
            .streams
            .get(&id.0)
            .and_then(|s| s.props.get(&path.join("\0")).cloned())
    }

    /// Data injected with Higress `proxy_inject_encoded_data_to_filter_chain`, drained.
    pub fn take_injected(&mut self, id: StreamId) -> Vec<(Vec<u8>, bool)> {
        self.store
            .data_mut()
            .streams
            .get_mut(&id.0)
            .map(|s| std::mem::take(&mut s.injected))
            .unwrap_or_default()
    }

    fn maps(&mut self, id: StreamId) -> Result<&mut StreamState> {
        self.store
            .data_mut()
            .streams
            .get_mut(&id.0)
            .ok_or_else(|| HarnessError::Usage(format!("unknown stream {}", id.0)))
    }

    fn flow(&mut self, id: StreamId, d: Direction) -> Result<&mut DirFlow> {
        self.flows
            .get_mut(&id.0)
            .map(|f| f.dir(d))
            .ok_or_else(|| HarnessError::Usage(format!("unknown stream {}", id.0)))
    }

    fn apisix(&self) -> bool {
        self.store.data().profile == Profile::Apisix
    }

    fn headers(&mut self, id: StreamId, d: Direction, headers: Headers, eos: bool) -> Result<Step> {
        let mut step = Step::default();
        if self.flow(id, d)?.stopped {
            return Ok(step);
        }
        let n = headers.len() as i32;
        let m = self.maps(id)?;
        m.in_response = d == Direction::Response;
        let maps = m.dir_mut(d);
        (maps.headers, maps.headers_live, maps.seen_headers) = (headers, true, true);
        self.flow(id, d)?.eos_seen = eos;
        let args = if self.apisix() {
            [id.0 as i32, 0, 1]
        } else {
            [id.0 as i32, n, i32::from(eos)]
        };
        let raw = self.call(export(d, false), &args)?.unwrap_or(0);
        step.action = Some(Action::from_raw(raw));
        self.settle()?;
        let proceed = raw == 0 || self.apisix();
        self.apply_actions(id, d, &mut step, Some(proceed))?;
        Ok(step)
    }

    fn data(&mut self, id: StreamId, d: Direction, chunk: &[u8], eos: bool) -> Result<Step> {
        let mut step = Step::default();
        let stop_iteration = self.headers_stop_iteration && !self.apisix();
        let flow = self.flow(id, d)?;
        if flow.stopped {
            return Ok(step);
        }
        if flow.trailers_seen {
            return Err(HarnessError::Usage("body after trailers".into()));
        }
        match flow.headers {
            HeaderState::NotSeen => return Err(HarnessError::Usage("body before headers".into())),
            HeaderState::Paused if stop_iteration => {}
            HeaderState::Paused => {
                flow.held.extend_from_slice(chunk);
                flow.held_eos = Some(eos);
                let held = flow.held.len();
                if held > self.limit(id, d) {
                    self.overflow(id, d, &mut step)?;
                }
                return Ok(step);
            }
            HeaderState::Done => {}
        }
        self.body_callback(id, d, chunk, eos, &mut step)?;
        Ok(step)
    }

    fn trailers(&mut self, id: StreamId, d: Direction, trailers: Headers) -> Result<Step> {
        let mut step = Step::default();
        let stop_iteration = self.headers_stop_iteration && !self.apisix();
        let flow = self.flow(id, d)?;
        if flow.stopped {
            return Ok(step);
        }
        if flow.trailers_seen || flow.eos_seen {
            return Err(HarnessError::Usage(
                "trailers after the end of the stream".into(),
            ));
        }
        match flow.headers {
            HeaderState::NotSeen => {
                return Err(HarnessError::Usage("trailers before headers".into()))
            }
            HeaderState::Paused if !stop_iteration => {
                // StopAllIteration holds the trailers with the headers and any data.
                flow.held_trailers = Some(trailers);
                flow.trailers_seen = true;
                return Ok(step);
            }
            _ => {}
        }
        self.trailers_callback(id, d, trailers, &mut step)?;
        Ok(step)
    }

    fn trailers_callback(
        &mut self,
        id: StreamId,
        d: Direction,
        trailers: Headers,
        step: &mut Step,
    ) -> Result<()> {
        let n = trailers.len() as i32;
        let maps = self.maps(id)?.dir_mut(d);
        (maps.trailers, maps.trailers_live) = (trailers, true);
        let flow = self.flow(id, d)?;
        flow.trailers_seen = true;
        // Held until the callback continues (Envoy: StopIteration keeps the trailers pointer).
        flow.trailers_paused = true;
        if self.apisix() {
            // wasm-nginx-module never calls a trailers callback.
            return self.release_trailers(id, d, step);
        }
        let raw = self
            .call(trailers_export(d), &[id.0 as i32, n])?
            .unwrap_or(0);
        step.action = Some(Action::from_raw(raw));
        self.settle()?;
        self.apply_actions(id, d, step, Some(raw == 0))
    }

    /// Passes on (held headers,) a buffered body with end-of-stream false, then the trailers.
    fn release_trailers(&mut self, id: StreamId, d: Direction, step: &mut Step) -> Result<()> {
        let flow = self.flow(id, d)?;
        flow.trailers_paused = false;
        let headers_held = flow.headers != HeaderState::Done;
        flow.headers = HeaderState::Done;
        let buffering = std::mem::take(&mut flow.buffering);
        let maps = self.maps(id)?.dir_mut(d);
        if headers_held {
            // allow_on_headers_stop_iteration: the held headers leave with the trailers.
            maps.headers_live = false;
            step.forwarded
                .push(Event::Headers(maps.headers.clone(), false));
        }
        if buffering || !maps.body.is_empty() {
            let body = std::mem::take(&mut maps.body);
            step.forwarded.push(Event::Data(body, false));
        }
        maps.body_live = false;
        maps.trailers_live = false;
        step.forwarded
            .push(Event::Trailers(std::mem::take(&mut maps.trailers)));
        Ok(())
    }

    fn limit(&self, id: StreamId, d: Direction) -> usize {
        let s = self.store.data().streams.get(&id.0);
        let custom = s.and_then(|s| match d {
            Direction::Request => s.buffer_limit_request,
            Direction::Response => s.buffer_limit_response,
        });
        custom.unwrap_or(self.buffer_limit)
    }

    fn overflow(&mut self, id: StreamId, d: Direction, step: &mut Step) -> Result<()> {
        let (status, details, text) = match d {
            Direction::Request => (413, "request_payload_too_large", "Payload Too Large"),
            Direction::Response => (500, "response_payload_too_large", "Internal Server Error"),
        };
        step.local_reply = Some(LocalReply {
            status,
            headers: vec![("content-type".into(), b"text/plain".to_vec())],
            body: text.as_bytes().to_vec(),
            details: details.to_string(),
            grpc_status: None,
        });
        self.flow(id, d)?.stopped = true;
        let maps = self.maps(id)?.dir_mut(d);
        maps.body_live = false;
        Ok(())
    }

    fn body_callback(
        &mut self,
        id: StreamId,
        d: Direction,
        chunk: &[u8],
        eos: bool,
        step: &mut Step,
    ) -> Result<()> {
        if self.apisix() {
            return self.apisix_body(id, d, chunk, eos, step);
        }
        let buffering = self.flow(id, d)?.buffering;
        self.flow(id, d)?.eos_seen = eos;
        let maps = self.maps(id)?.dir_mut(d);
        if !buffering {
            maps.body.clear();
        }
        maps.body.extend_from_slice(chunk);
        maps.body_live = true;
        let len = maps.body.len();
        if buffering && len > self.limit(id, d) {
            return self.overflow(id, d, step);
        }
        let raw = self
            .call(export(d, true), &[id.0 as i32, len as i32, i32::from(eos)])?
            .unwrap_or(0);
        step.action = Some(Action::from_raw(raw));
        self.settle()?;
        let before = step.forwarded.len();
        self.apply_actions(id, d, step, Some(raw == 0))?;
        let forwarded = step
            .forwarded
            .iter()
            .skip(before)
            .any(|e| matches!(e, Event::Data(..)));
        if !self.flow(id, d)?.stopped && !forwarded {
            // Pause: Envoy keeps buffering (StopIterationAndBuffer); the buffer stays readable.
            self.flow(id, d)?.buffering = true;
        }
        Ok(())
    }

    fn apisix_body(
        &mut self,
        id: StreamId,
        d: Direction,
        chunk: &[u8],
        eos: bool,
        step: &mut Step,
    ) -> Result<()> {
        let flag = match d {
            Direction::Request => "wasm_process_req_body",
            Direction::Response => "wasm_process_resp_body",
        };
        let wanted = self
            .maps(id)?
            .props
            .get(flag)
            .is_some_and(|v| !v.is_empty());
        if !wanted {
            step.forwarded.push(Event::Data(chunk.to_vec(), eos));
            return Ok(());
        }
        let flow = self.flow(id, d)?;
        flow.held.extend_from_slice(chunk);
        if d == Direction::Request && !eos {
            return Ok(()); // APISIX reads the whole request body first
        }
        let body = std::mem::take(&mut flow.held);
        let maps = self.maps(id)?.dir_mut(d);
        (maps.body, maps.body_live) = (body.clone(), true);
        let raw = self.call(
            export(d, true),
            &[id.0 as i32, body.len() as i32, i32::from(eos)],
        )?;
        step.action = raw.map(Action::from_raw);
        self.settle()?;
        self.maps(id)?.dir_mut(d).body_live = false;
        self.apply_actions(id, d, step, None)?;
        if !self.flow(id, d)?.stopped {
            step.forwarded.push(Event::Data(body, eos));
        }
        Ok(())
    }

    /// Applies deferred actions for this stream, then (if `proceed` is Some) the callback result.
    fn apply_actions(
        &mut self,
        id: StreamId,
        d: Direction,
        step: &mut Step,
        proceed: Option<bool>,
    ) -> Result<()> {
        let mine: Vec<AfterAction> = {
            let (mine, rest) =
                std::mem::take(&mut self.actions)
                    .into_iter()
                    .partition(|a| match a {
                        AfterAction::LocalReply(c, _)
                        | AfterAction::Continue(c, _)
                        | AfterAction::Close(c) => *c == id.0,
                    });
            self.actions = rest;
            mine
        };
        let mut resumed = Vec::new();
        for action in mine {
            match action {
                AfterAction::LocalReply(_, reply) => {
                    let dir = if self.maps(id)?.in_response {
                        Direction::Response
                    } else {
                        Direction::Request
                    };
                    self.flow(id, dir)?.stopped = true;
                    step.local_reply = Some(reply);
                }
                AfterAction::Close(..) => {
                    step.reset = true;
                    self.flow(id, Direction::Request)?.stopped = true;
                    self.flow(id, Direction::Response)?.stopped = true;
                }
                AfterAction::Continue(_, dir) => resumed.push(dir),
            }
        }
        if let Some(go) = proceed {
            if !self.flow(id, d)?.stopped {
                if go || resumed.contains(&d) {
                    resumed.retain(|r| *r != d);
                    self.proceed(id, d, step)?;
                } else if self.flow(id, d)?.headers != HeaderState::Done {
                    self.flow(id, d)?.headers = HeaderState::Paused;
                }
            }
        }
        for dir in resumed {
            if !self.flow(id, dir)?.stopped {
                self.resume(id, dir, step)?;
            }
        }
        Ok(())
    }

    /// The callback returned Continue (or was resumed inside its own after-call work).
    fn proceed(&mut self, id: StreamId, d: Direction, step: &mut Step) -> Result<()> {
        if self.flow(id, d)?.trailers_paused {
            return self.release_trailers(id, d, step);
        }
        if self.flow(id, d)?.headers != HeaderState::Done {
            self.release_headers(id, d, step)?;
            // With headers_stop_iteration the body callback already saw the data: it leaves now.
            // (`continue_stream` already dropped the pointers, `body_live`, but not the data.)
            let maps = self.maps(id)?.dir_mut(d);
            let body_seen = maps.body_live || !maps.body.is_empty();
            if !(self.headers_stop_iteration && body_seen) {
                return Ok(());
            }
        }
        let eos = self.flow(id, d)?.eos_seen;
        let maps = self.maps(id)?.dir_mut(d);
        let body = std::mem::take(&mut maps.body);
        maps.body_live = false;
        self.flow(id, d)?.buffering = false;
        step.forwarded.push(Event::Data(body, eos));
        Ok(())
    }

    /// `continue_stream` after a Pause: release held headers (and data) or a buffered body.
    fn resume(&mut self, id: StreamId, d: Direction, step: &mut Step) -> Result<()> {
        let (headers, buffering, trailers_paused) = {
            let f = self.flow(id, d)?;
            (f.headers, f.buffering, f.trailers_paused)
        };
        if trailers_paused {
            return self.release_trailers(id, d, step);
        }
        match headers {
            // Envoy's continueDecoding/continueEncoding releases the held headers and then the
            // data the body callback buffered meanwhile (with headers_stop_iteration).
            HeaderState::Paused => self.proceed(id, d, step),
            HeaderState::Done if buffering => self.proceed(id, d, step),
            _ => Ok(()),
        }
    }

    fn release_headers(&mut self, id: StreamId, d: Direction, step: &mut Step) -> Result<()> {
        let apisix_request = self.apisix() && d == Direction::Request;
        let maps = self.maps(id)?.dir_mut(d);
        maps.headers_live = apisix_request;
        let headers = maps.headers.clone();
        let body_seen = maps.body_live || !maps.body.is_empty();
        let flow = self.flow(id, d)?;
        flow.headers = HeaderState::Done;
        let (held, held_eos) = (std::mem::take(&mut flow.held), flow.held_eos.take());
        let held_trailers = flow.held_trailers.take();
        let eos = flow.eos_seen && !(self.headers_stop_iteration && body_seen);
        step.forwarded.push(Event::Headers(headers, eos));
        if let Some(held_eos) = held_eos {
            self.body_callback(id, d, &held, held_eos, step)?;
        }
        if let Some(trailers) = held_trailers {
            if !self.flow(id, d)?.stopped {
                self.trailers_callback(id, d, trailers, step)?;
            }
        }
        Ok(())
    }
}
