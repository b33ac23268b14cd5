//! [`FilterDriver`]: drives one request through a plugin's filter: picks the route's config, makes
//! the filter, reads whole bodies for it, resumes the stream after callouts, answers driver-level
//! errors in the caller's protocol, and cancels pending callouts when the stream ends.

use std::rc::Rc;

use crate::error::{ClientError, ErrorKind};
use crate::host::{Action, BufferKind, Direction, Host, LogLevel, MapKind};
use crate::reply::send_error;

use super::{
    budget, route_info, Calls, Ctx, FilterEnv, HttpFilter, Next, Oversize, Plugin, PluginConfig,
    Reply, Wants, WholeBody,
};

type CallOf<P> = <<P as Plugin>::Filter as HttpFilter>::Call;

/// A whole-body read under way for one direction.
#[derive(Debug, Default, Clone, Copy)]
struct BodyRead {
    plan: Option<WholeBody>,
    size: usize,
    /// Bytes reserved in the VM's budget ([`super::budget`]).
    reserved: usize,
}

/// Drives one request through plugin `P`.
pub struct FilterDriver<P: Plugin> {
    config: Rc<PluginConfig<P>>,
    state: Rc<P::State>,
    env: FilterEnv,
    filter: Option<P::Filter>,
    calls: Calls<CallOf<P>>,
    request: BodyRead,
    response: BodyRead,
}

fn kind_of(direction: Direction) -> (BufferKind, MapKind) {
    match direction {
        Direction::Request => (BufferKind::RequestBody, MapKind::RequestHeaders),
        Direction::Response => (BufferKind::ResponseBody, MapKind::ResponseHeaders),
    }
}

impl<P: Plugin> FilterDriver<P> {
    /// A driver for a new request.
    pub fn new(config: Rc<PluginConfig<P>>, state: Rc<P::State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            env,
            filter: None,
            calls: Calls::default(),
            request: BodyRead::default(),
            response: BodyRead::default(),
        }
    }

    /// Run `hook` on the filter with a fresh context; returns its result and the wishes it made.
    fn hook<R>(
        &mut self,
        host: &dyn Host,
        direction: Option<Direction>,
        default: R,
        hook: impl FnOnce(&mut P::Filter, &mut Ctx<'_, CallOf<P>>) -> R,
    ) -> (R, Wants) {
        let mut wants = Wants::default();
        let Some(filter) = self.filter.as_mut() else {
            return (default, wants);
        };
        let mut cx = Ctx::new(host, &mut self.calls, &mut wants, direction, P::NAME);
        (hook(filter, &mut cx), wants)
    }

    fn read(&mut self, direction: Direction) -> &mut BodyRead {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    /// Answer the client with `error` in the filter's protocol and tell the filter.
    fn fail(&mut self, host: &dyn Host, direction: Option<Direction>, error: &ClientError) {
        send_error(host, P::NAME, self.protocol(), error);
        self.hook(host, direction, (), |f, cx| f.on_error_reply(cx, error));
    }

    /// The read ends (delivered, refused or abandoned): its bytes leave the budget.
    fn end_read(&mut self, direction: Direction) -> BodyRead {
        let read = std::mem::take(self.read(direction));
        budget::release(read.reserved);
        read
    }

    fn too_large(&mut self, host: &dyn Host, direction: Direction, plan: WholeBody) -> Action {
        self.end_read(direction);
        self.hook(host, Some(direction), (), |f, cx| {
            f.on_body_too_large(cx, direction);
        });
        match plan.oversize {
            Oversize::PassThrough => Action::Continue,
            Oversize::Reject => {
                let error = match direction {
                    Direction::Request => ClientError::new(
                        ErrorKind::RequestTooLarge,
                        format!("request body is larger than {} bytes", plan.max_bytes),
                    ),
                    Direction::Response => ClientError::new(
                        ErrorKind::BadGateway,
                        format!("upstream response is larger than {} bytes", plan.max_bytes),
                    ),
                };
                self.fail(host, Some(direction), &error);
                Action::Pause
            }
        }
    }

    /// After a headers hook: start a whole-body read if the filter asked for one.
    fn after_headers(
        &mut self,
        host: &dyn Host,
        direction: Direction,
        plan: Option<WholeBody>,
        action: Action,
        end_of_stream: bool,
    ) -> Action {
        let Some(plan) = plan else {
            return action;
        };
        if end_of_stream {
            return action;
        }
        let (_, map) = kind_of(direction);
        let declared = plan.declared.unwrap_or_else(|| {
            host.header(map, "content-length")
                .ok()
                .flatten()
                .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<usize>().ok())
        });
        if declared.is_some_and(|n| n > plan.max_bytes) {
            return self.too_large(host, direction, plan);
        }
        if plan.rewrites && declared.is_some() {
            if let Err(e) = host.remove_header(map, "content-length") {
                host.log(
                    LogLevel::Warn,
                    &format!("{}: cannot remove content-length: {e}", P::NAME),
                );
            }
        }
        self.end_read(direction);
        *self.read(direction) = BodyRead {
            plan: Some(plan),
            ..BodyRead::default()
        };
        if plan.hold_headers {
            Action::Pause
        } else {
            action
        }
    }

    /// A body chunk while a whole-body read may be under way.
    fn body(&mut self, host: &dyn Host, direction: Direction, size: usize, eos: bool) -> Action {
        let read = self.read(direction);
        let Some(plan) = read.plan else {
            return match direction {
                Direction::Request => {
                    self.hook(host, Some(direction), Action::Continue, |f, cx| {
                        f.on_request_body(cx, size, eos)
                    })
                    .0
                }
                Direction::Response => {
                    self.hook(host, Some(direction), Action::Continue, |f, cx| {
                        f.on_response_body(cx, size, eos)
                    })
                    .0
                }
            };
        };
        read.size = size;
        if size > plan.max_bytes {
            return self.too_large(host, direction, plan);
        }
        if !budget::grow(read.reserved, size) {
            return self.over_budget(host, direction);
        }
        read.reserved = read.reserved.max(size);
        if !eos {
            return Action::Pause;
        }
        self.deliver(host, direction)
    }

    /// Holding this body would take the VM over its memory budget: this stream is answered,
    /// the others go on.
    fn over_budget(&mut self, host: &dyn Host, direction: Direction) -> Action {
        self.end_read(direction);
        host.log(
            LogLevel::Warn,
            &format!(
                "{}: the VM holds {} bytes of bodies; one more is refused",
                P::NAME,
                budget::held()
            ),
        );
        let (kind, what) = match direction {
            Direction::Request => (ErrorKind::RequestTooLarge, "request"),
            Direction::Response => (ErrorKind::BadGateway, "upstream response"),
        };
        let msg = format!(
            "the gateway cannot hold this {what} body now: its memory budget for bodies is in use"
        );
        self.fail(host, Some(direction), &ClientError::new(kind, msg));
        Action::Pause
    }

    /// The body is complete: read it and hand it to the filter.
    fn deliver(&mut self, host: &dyn Host, direction: Direction) -> Action {
        let read = self.end_read(direction);
        let (kind, _) = kind_of(direction);
        let body = match host.whole_body(kind, read.size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                let error =
                    ClientError::new(ErrorKind::Internal, format!("cannot read the body: {e}"));
                self.fail(host, Some(direction), &error);
                return Action::Pause;
            }
        };
        self.hook(
            host,
            Some(direction),
            Action::Continue,
            |f, cx| match direction {
                Direction::Request => f.on_request_whole(cx, &body),
                Direction::Response => f.on_response_whole(cx, &body),
            },
        )
        .0
    }

    fn trailers(&mut self, host: &dyn Host, direction: Direction) -> Action {
        if self.read(direction).plan.is_some() {
            return self.deliver(host, direction);
        }
        self.hook(
            host,
            Some(direction),
            Action::Continue,
            |f, cx| match direction {
                Direction::Request => f.on_request_trailers(cx),
                Direction::Response => f.on_response_trailers(cx),
            },
        )
        .0
    }

    /// Request headers: pick the route's config, create the filter, run its hook.
    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let chosen = if self.config.is_global_only() {
            Rc::clone(self.config.global())
        } else {
            Rc::clone(self.config.select(&route_info(host)))
        };
        self.filter = Some(P::new_filter(chosen, Rc::clone(&self.state), &self.env));
        let (action, wants) =
            self.hook(host, Some(Direction::Request), Action::Continue, |f, cx| {
                f.on_request_headers(cx, end_of_stream)
            });
        self.after_headers(
            host,
            Direction::Request,
            wants.request,
            action,
            end_of_stream,
        )
    }

    /// Request body chunk.
    pub fn on_request_body(&mut self, host: &dyn Host, body_size: usize, eos: bool) -> Action {
        self.body(host, Direction::Request, body_size, eos)
    }

    /// Request trailers: they end a whole-body read.
    pub fn on_request_trailers(&mut self, host: &dyn Host) -> Action {
        self.trailers(host, Direction::Request)
    }

    /// Response headers.
    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let (action, wants) = self.hook(
            host,
            Some(Direction::Response),
            Action::Continue,
            |f, cx| f.on_response_headers(cx, end_of_stream),
        );
        self.after_headers(
            host,
            Direction::Response,
            wants.response,
            action,
            end_of_stream,
        )
    }

    /// Response body chunk.
    pub fn on_response_body(&mut self, host: &dyn Host, body_size: usize, eos: bool) -> Action {
        self.body(host, Direction::Response, body_size, eos)
    }

    /// Response trailers: they end a whole-body read.
    pub fn on_response_trailers(&mut self, host: &dyn Host) -> Action {
        self.trailers(host, Direction::Response)
    }

    /// A callout of this stream answered: hand it to the filter and do what it says.
    pub fn on_reply(&mut self, host: &dyn Host, token: u32, reply: Reply) {
        let Some((call, direction)) = self.calls.take(token) else {
            host.log(
                LogLevel::Debug,
                &format!("{}: answer for unknown callout {token} ignored", P::NAME),
            );
            return;
        };
        let (next, _) = self.hook(host, direction, Next::Hold, |f, cx| {
            f.on_reply(cx, call, reply)
        });
        match next {
            Next::Hold => {}
            Next::Resume => {
                if let Some(d) = direction.filter(|d| !self.calls.holds(*d)) {
                    if let Err(e) = host.resume(d) {
                        host.log(
                            LogLevel::Error,
                            &format!("{}: cannot resume the stream: {e}", P::NAME),
                        );
                    }
                }
            }
            Next::Fail(error) => self.fail(host, direction, &error),
        }
    }

    /// Callouts of this stream still pending.
    pub fn pending_calls(&self) -> usize {
        self.calls.len()
    }

    /// The request headers are held until the body arrives (a whole-body read holding the
    /// headers, no callout pending): only a body callback can move this stream on.
    pub fn awaits_request_body(&self) -> bool {
        self.request.plan.is_some_and(|p| p.hold_headers) && self.calls.is_empty()
    }

    /// The caller's protocol as the filter knows it (the default before the request headers).
    pub fn protocol(&self) -> crate::error::ClientProtocol {
        self.filter
            .as_ref()
            .map(HttpFilter::protocol)
            .unwrap_or_default()
    }

    /// The stream ended: pending callouts are cancelled (the host drops them) and held body
    /// bytes leave the VM's budget.
    pub fn on_done(&mut self) {
        self.end_read(Direction::Request);
        self.end_read(Direction::Response);
        let cancelled = self.calls.drain();
        if let Some(filter) = self.filter.as_mut() {
            for call in cancelled {
                filter.on_call_cancelled(call);
            }
        }
    }

    /// The stream is complete.
    pub fn on_log(&mut self, host: &dyn Host) {
        self.on_done();
        self.hook(host, None, (), |f, cx| f.on_log(cx));
    }
}
