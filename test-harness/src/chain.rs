//! The chain runner: plugins in Envoy `http_filters` order in front of an upstream, with request and
//! response bodies streamed in chunks; the response path runs in reverse order.

use crate::abi::{header_value, Headers};
use crate::env::Env;
use crate::error::{HarnessError, Result};
use crate::plugin::{Admission, FailurePolicy, Plugin, PluginSpec};
use crate::stream::{Event, LocalReply, Step, StreamId};
use std::time::Duration;

pub use crate::upstream::{Request, Upstream, UpstreamRequest, UpstreamResponse};

/// What the client got and what the upstream received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Status the client got (0 if the stream was reset before headers).
    pub status: u16,
    /// Response headers the client got (including `:status`).
    pub headers: Headers,
    /// Response body bytes the client got.
    pub body: Vec<u8>,
    /// The body as the client received it, chunk by chunk.
    pub body_chunks: Vec<Vec<u8>>,
    /// What reached the upstream (None if a filter answered locally).
    pub upstream: Option<UpstreamRequest>,
    /// Which filter sent a local reply, and the reply.
    pub local_reply: Option<(usize, LocalReply)>,
    /// The stream was reset (close_stream, or an overflow after headers went out).
    pub reset: bool,
    /// Response trailers the client got, if the response ended with trailers.
    pub trailers: Option<Headers>,
    /// Traps that the failure policy absorbed during this stream (filter index, error text); only
    /// filled with [`Chain::absorb_traps`], otherwise a trap makes `run` return the error.
    pub traps: Vec<(usize, String)>,
}

impl Exchange {
    /// A response header value (first, case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers, name)
    }

    /// The body as lossy UTF-8.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Plugins in `http_filters` order sharing one environment.
#[derive(Debug)]
pub struct Chain {
    env: Env,
    filters: Vec<Plugin>,
    absorb_traps: bool,
}

#[derive(Default)]
struct Run {
    streams: Vec<Option<StreamId>>,
    upstream_headers: Option<Headers>,
    upstream_body: Vec<u8>,
    upstream_trailers: Option<Headers>,
    upstream_done: bool,
    /// Filters left out of this stream (fail open).
    bypass: Vec<bool>,
    request_stopped: bool,
    local_reply: Option<(usize, LocalReply)>,
    client: Exchange,
    client_headers_sent: bool,
    response_done: bool,
}

impl Chain {
    /// An empty chain in `env`.
    pub fn new(env: &Env) -> Chain {
        Chain {
            env: env.clone(),
            filters: Vec::new(),
            absorb_traps: false,
        }
    }

    /// With `true`, a trap in a filter does not make [`Chain::run`] fail: the stream in flight gets
    /// what Envoy gives it (cpp-host `CHECK_FAIL_HTTP` after the call): fail open passes it on
    /// (the filter is skipped from then on), fail closed and fail reload answer 503
    /// `wasm_fail_stream` (or reset the stream if response headers already went out). The trap
    /// text is kept in [`Exchange::traps`]. Off by default, so that a panic surfaces as the error.
    /// Either way the VM stays failed and the plugin's [`FailurePolicy`] applies to later streams.
    pub fn absorb_traps(mut self, on: bool) -> Chain {
        self.absorb_traps = on;
        self
    }

    /// Loads a plugin (one worker) and appends it as the next filter.
    pub fn with(mut self, spec: PluginSpec) -> Result<Chain> {
        self.filters.push(Plugin::load(&self.env, spec)?);
        Ok(self)
    }

    /// Appends an already loaded plugin.
    pub fn push(&mut self, plugin: Plugin) {
        self.filters.push(plugin);
    }

    /// Filter `i` (panics if out of range is avoided: returns None).
    pub fn plugin(&mut self, i: usize) -> Option<&mut Plugin> {
        self.filters.get_mut(i)
    }

    /// The shared environment.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Advances the clock, firing ticks on every filter's workers.
    pub fn advance(&mut self, by: Duration) -> Result<u32> {
        let env = self.env.clone();
        let vms = self.filters.iter_mut().flat_map(Plugin::all_mut).collect();
        crate::plugin::advance_vms(&env, vms, by)
    }

    /// Runs one request through the chain and the upstream.
    pub fn run(&mut self, request: &Request, upstream: &mut dyn Upstream) -> Result<Exchange> {
        let mut run = Run {
            streams: vec![None; self.filters.len()],
            bypass: vec![false; self.filters.len()],
            ..Run::default()
        };
        let ends_with_data = request.trailers.is_none();
        let mut events = vec![Event::Headers(
            request.headers.clone(),
            request.body.is_empty() && ends_with_data,
        )];
        events.extend(chunk_events(
            &request.body,
            request.chunk_size,
            ends_with_data,
        ));
        events.extend(request.trailers.clone().map(Event::Trailers));
        for event in events {
            if run.request_stopped {
                break;
            }
            self.request_event(&mut run, 0, event)?;
        }
        if let Some((k, reply)) = run.local_reply.clone() {
            let events = reply_events(&reply);
            self.respond(&mut run, k, events)?;
        } else if run.upstream_done {
            let req = UpstreamRequest {
                headers: run.upstream_headers.clone().unwrap_or_default(),
                body: run.upstream_body.clone(),
                override_host: self.override_host(&run),
                trailers: run.upstream_trailers.clone(),
            };
            let resp = upstream.handle(&req);
            run.client.upstream = Some(req);
            let ends_with_data = resp.trailers.is_none();
            let mut events = vec![Event::Headers(
                resp.all_headers(),
                resp.chunks.is_empty() && ends_with_data,
            )];
            let n = resp.chunks.len();
            events.extend(
                resp.chunks
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| Event::Data(c, i + 1 == n && ends_with_data)),
            );
            events.extend(resp.trailers.map(Event::Trailers));
            let last = self.filters.len().saturating_sub(1);
            self.respond(&mut run, last, events)?;
        } else if !run.client.reset {
            return Err(self.stalled(&run, "request"));
        }
        if !run.response_done && !run.client.reset {
            return Err(self.stalled(&run, "response"));
        }
        self.finish(&run)?;
        run.client.local_reply = run.local_reply;
        Ok(run.client)
    }

    fn stalled(&self, run: &Run, what: &str) -> HarnessError {
        let started = run.streams.iter().filter(|s| s.is_some()).count();
        HarnessError::Usage(format!(
            "the {what} stalled: a filter paused it and never resumed (filters that saw the request: {started}; \
             upstream reached: {})",
            run.upstream_done
        ))
    }

    fn override_host(&mut self, run: &Run) -> Option<String> {
        let mut host = None;
        for (i, sid) in run.streams.iter().enumerate() {
            if let (Some(sid), Some(p)) = (sid, self.filters.get_mut(i)) {
                host = p.worker(0).upstream_override(*sid).or(host);
            }
        }
        host
    }

    fn finish(&mut self, run: &Run) -> Result<()> {
        for (i, sid) in run.streams.iter().enumerate() {
            if let (Some(sid), Some(p)) = (sid, self.filters.get_mut(i)) {
                // A failed VM is not called again (cpp-host skips on_log/on_done/on_delete).
                if !p.worker(0).is_failed() {
                    p.worker(0).finish_stream(*sid)?;
                }
            }
        }
        Ok(())
    }

    fn request_event(&mut self, run: &mut Run, i: usize, event: Event) -> Result<()> {
        if i >= self.filters.len() {
            return self.push_upstream(run, event);
        }
        if run.bypass.get(i).copied().unwrap_or(false) {
            return self.request_event(run, i + 1, event);
        }
        let sid = match run.streams.get(i).copied().flatten() {
            Some(s) => s,
            None => {
                let Some(plugin) = self.filters.get_mut(i) else {
                    return Ok(());
                };
                match plugin.admit(0)? {
                    Admission::Run => {}
                    Admission::Skip => {
                        if let Some(b) = run.bypass.get_mut(i) {
                            *b = true;
                        }
                        return self.request_event(run, i + 1, event);
                    }
                    Admission::FailClosed => {
                        run.local_reply = Some((i, fail_stream_reply()));
                        run.request_stopped = true;
                        return Ok(());
                    }
                }
                let s = plugin.worker(0).create_stream()?;
                if let Some(slot) = run.streams.get_mut(i) {
                    *slot = Some(s);
                }
                s
            }
        };
        let Some(plugin) = self.filters.get_mut(i) else {
            return Ok(());
        };
        let policy = plugin.spec().failure_policy;
        let vm = plugin.worker(0);
        let result = match event.clone() {
            Event::Headers(h, eos) => vm.request_headers(sid, h, eos),
            Event::Data(d, eos) => vm.request_body(sid, &d, eos),
            Event::Trailers(t) => vm.request_trailers(sid, t),
        };
        let step = match result {
            Ok(step) => step,
            Err(e) if e.is_trap() && self.absorb_traps => {
                run.client.traps.push((i, e.to_string()));
                if let Some(slot) = run.streams.get_mut(i) {
                    *slot = None;
                }
                if policy == FailurePolicy::FailOpen {
                    // CHECK_FAIL_HTTP returns Continue: the event goes on as it was.
                    if let Some(b) = run.bypass.get_mut(i) {
                        *b = true;
                    }
                    return self.request_event(run, i + 1, event);
                }
                run.local_reply = Some((i, fail_stream_reply()));
                run.request_stopped = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let injected = vm.take_injected(sid);
        self.after_request_step(run, i, step, injected)
    }

    fn after_request_step(
        &mut self,
        run: &mut Run,
        i: usize,
        step: Step,
        injected: Vec<(Vec<u8>, bool)>,
    ) -> Result<()> {
        if step.reset {
            run.client.reset = true;
            run.request_stopped = true;
            run.response_done = true;
            return Ok(());
        }
        if let Some(reply) = step.local_reply {
            run.local_reply = Some((i, reply));
            run.request_stopped = true;
            return Ok(());
        }
        let extra = injected.into_iter().map(|(d, eos)| Event::Data(d, eos));
        for ev in step.forwarded.into_iter().chain(extra) {
            if run.request_stopped {
                break;
            }
            self.request_event(run, i + 1, ev)?;
        }
        Ok(())
    }

    fn push_upstream(&mut self, run: &mut Run, event: Event) -> Result<()> {
        match event {
            Event::Headers(h, eos) => {
                run.upstream_headers = Some(h);
                run.upstream_done = eos;
            }
            Event::Data(d, eos) => {
                run.upstream_body.extend_from_slice(&d);
                run.upstream_done |= eos;
            }
            Event::Trailers(t) => {
                run.upstream_trailers = Some(t);
                run.upstream_done = true;
            }
        }
        Ok(())
    }

    /// Runs response events from filter `start` outward to filter 0 and the client.
    fn respond(&mut self, run: &mut Run, start: usize, events: Vec<Event>) -> Result<()> {
        for ev in events {
            if run.response_done && run.client.reset {
                break;
            }
            self.response_event(run, Some(start), ev)?;
        }
        Ok(())
    }

    fn response_event(&mut self, run: &mut Run, i: Option<usize>, event: Event) -> Result<()> {
        let Some(i) = i else {
            self.push_client(run, event);
            return Ok(());
        };
        let sid = run.streams.get(i).copied().flatten();
        let (Some(sid), Some(plugin)) = (sid, self.filters.get_mut(i)) else {
            // Filters that never saw the request do not see its response.
            return self.response_event(run, i.checked_sub(1), event);
        };
        let policy = plugin.spec().failure_policy;
        let vm = plugin.worker(0);
        let result = match event.clone() {
            Event::Headers(h, eos) => vm.response_headers(sid, h, eos),
            Event::Data(d, eos) => vm.response_body(sid, &d, eos),
            Event::Trailers(t) => vm.response_trailers(sid, t),
        };
        let step = match result {
            Ok(step) => step,
            Err(e) if e.is_trap() && self.absorb_traps => {
                run.client.traps.push((i, e.to_string()));
                if let Some(slot) = run.streams.get_mut(i) {
                    *slot = None;
                }
                if policy == FailurePolicy::FailOpen {
                    return self.response_event(run, i.checked_sub(1), event);
                }
                let reply = fail_stream_reply();
                if run.local_reply.is_none() {
                    run.local_reply = Some((i, reply.clone()));
                }
                self.direct_reply(run, &reply);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let injected = vm.take_injected(sid);
        if step.reset {
            run.client.reset = true;
            run.response_done = true;
            return Ok(());
        }
        if let Some(reply) = step.local_reply {
            if run.local_reply.is_none() {
                run.local_reply = Some((i, reply.clone()));
            }
            self.direct_reply(run, &reply);
            return Ok(());
        }
        let extra = injected.into_iter().map(|(d, eos)| Event::Data(d, eos));
        for ev in step.forwarded.into_iter().chain(extra) {
            self.response_event(run, i.checked_sub(1), ev)?;
        }
        Ok(())
    }

    /// A local reply during the response path goes straight to the client (Envoy's
    /// sendDirectLocalReply) unless headers already went out, in which case the stream is reset.
    fn direct_reply(&mut self, run: &mut Run, reply: &LocalReply) {
        if run.client_headers_sent {
            run.client.reset = true;
            run.response_done = true;
            return;
        }
        for ev in reply_events(reply) {
            self.push_client(run, ev);
        }
    }

    fn push_client(&mut self, run: &mut Run, event: Event) {
        if run.response_done {
            return;
        }
        match event {
            Event::Headers(h, eos) => {
                run.client.status = header_value(&h, ":status")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                run.client.headers = h;
                run.client_headers_sent = true;
                run.response_done = eos;
            }
            Event::Data(d, eos) => {
                run.client.body.extend_from_slice(&d);
                if !d.is_empty() {
                    run.client.body_chunks.push(d);
                }
                run.response_done = eos;
            }
            Event::Trailers(t) => {
                run.client.trailers = Some(t);
                run.response_done = true;
            }
        }
    }
}

/// Envoy's answer for a stream on a failed VM (`Context::failStream`): 503 with no body and
/// details `wasm_fail_stream` (the gRPC status UNAVAILABLE only matters for gRPC requests).
fn fail_stream_reply() -> LocalReply {
    LocalReply {
        status: 503,
        headers: Vec::new(),
        body: Vec::new(),
        details: "wasm_fail_stream".to_string(),
        grpc_status: None,
    }
}

fn chunk_events(body: &[u8], chunk: usize, last_ends: bool) -> Vec<Event> {
    if body.is_empty() {
        return Vec::new();
    }
    let chunks: Vec<&[u8]> = body.chunks(chunk.max(1)).collect();
    let n = chunks.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| Event::Data(c.to_vec(), last_ends && i + 1 == n))
        .collect()
}

/// The response events of a local reply, as Envoy builds it.
fn reply_events(reply: &LocalReply) -> Vec<Event> {
    let mut headers: Headers = vec![(":status".to_string(), reply.status.to_string().into_bytes())];
    if !reply.body.is_empty() {
        headers.push((
            "content-length".into(),
            reply.body.len().to_string().into_bytes(),
        ));
        if !reply.headers.iter().any(|(k, _)| k == "content-type") {
            headers.push(("content-type".into(), b"text/plain".to_vec()));
        }
    }
    if let Some(g) = reply.grpc_status {
        headers.push(("grpc-status".into(), g.to_string().into_bytes()));
    }
    for (k, v) in &reply.headers {
        headers.retain(|(hk, _)| hk != k || hk == "set-cookie");
        headers.push((k.clone(), v.clone()));
    }
    let mut events = vec![Event::Headers(headers, reply.body.is_empty())];
    if !reply.body.is_empty() {
        events.push(Event::Data(reply.body.clone(), true));
    }
    events
}
