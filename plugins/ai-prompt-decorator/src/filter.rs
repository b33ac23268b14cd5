//! The per-request state machine: decide in the headers whether this request is ours, ask the
//! driver for the whole body (it enforces the size limit and answers 413 in the caller's
//! protocol), rewrite the body once it is complete, or answer with an error.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol};
use aigw_shared::host::{Action, BufferKind, Direction, Host, LogLevel};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{Ctx, FilterEnv, HttpFilter, WholeBody};
use aigw_shared::reply::send_error;

use crate::config::{Config, Policy};
use crate::decorate::{decorate, Dialect};
use crate::State;

/// Metric names (Envoy shows them as `wasmcustom.<name>`).
pub mod metric {
    /// Requests whose body was rewritten.
    pub const DECORATED: &str = "aigw.prompt_decorator.decorated";
    /// Chat requests left unchanged (nothing to do, not JSON, too large, or a host without body writes).
    pub const PASSED: &str = "aigw.prompt_decorator.passed_through";
    /// Requests answered with an error.
    pub const REJECTED: &str = "aigw.prompt_decorator.rejected";
}

/// Where the request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not a request this plugin touches (or it gave up on it): everything passes.
    PassThrough,
    /// A chat request whose body is being collected.
    Buffering(Dialect),
    /// The body was handled (rewritten or answered).
    Done,
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    env: FilterEnv,
    phase: Phase,
    protocol: ClientProtocol,
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            env,
            phase: Phase::PassThrough,
            protocol: ClientProtocol::OpenAi,
        }
    }

    fn reject(&mut self, host: &dyn Host, error: ClientError) -> Action {
        send_error(host, "ai-prompt-decorator", self.protocol, &error);
        self.state.metrics.count(host, metric::REJECTED, 1);
        self.phase = Phase::Done;
        Action::Pause
    }

    fn pass(&mut self, host: &dyn Host) -> Action {
        self.state.metrics.count(host, metric::PASSED, 1);
        self.phase = Phase::PassThrough;
        Action::Continue
    }

    /// What to do with a body over the limit (the driver answers 413 when the policy rejects).
    fn body_limit(&self) -> WholeBody {
        let limit = WholeBody::up_to(self.config.max_body_bytes).rewriting();
        match self.config.on_oversize {
            Policy::PassThrough => limit.pass_oversize(),
            Policy::Reject => limit,
        }
    }
}

/// The chat dialect of a request, from its method and path (see [`Api::from_path`]).
pub fn dialect_of(method: &[u8], path: &[u8]) -> Option<Dialect> {
    let method = std::str::from_utf8(method).ok()?;
    let path = std::str::from_utf8(path).ok()?;
    match Api::from_path(method, path) {
        Api::ChatCompletions => Some(Dialect::OpenAiChat),
        Api::AnthropicMessages => Some(Dialect::AnthropicMessages),
        Api::Responses => Some(Dialect::Responses),
        _ => None,
    }
}

impl HttpFilter for Filter {
    type Call = ();

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        let host = cx.host;
        let method = host
            .request_header(":method")
            .ok()
            .flatten()
            .unwrap_or_default();
        let path = host
            .request_header(":path")
            .ok()
            .flatten()
            .unwrap_or_default();
        let Some(dialect) = dialect_of(&method, &path) else {
            return Action::Continue;
        };
        self.protocol = match dialect {
            Dialect::OpenAiChat | Dialect::Responses => ClientProtocol::OpenAi,
            Dialect::AnthropicMessages => ClientProtocol::Anthropic,
        };
        if end_of_stream {
            return Action::Continue;
        }
        let content_type = host
            .request_header("content-type")
            .ok()
            .flatten()
            .unwrap_or_default();
        if !content_type.is_empty()
            && !content_type
                .windows(4)
                .any(|w| w.eq_ignore_ascii_case(b"json"))
        {
            return self.pass(host);
        }
        if !self.env.capabilities.body_write {
            host.log(
                LogLevel::Debug,
                "ai-prompt-decorator: this host cannot rewrite bodies; passing through",
            );
            return self.pass(host);
        }
        self.phase = Phase::Buffering(dialect);
        cx.read_whole_request(self.body_limit());
        Action::Continue
    }

    fn on_body_too_large(&mut self, cx: &mut Ctx<'_, ()>, _direction: Direction) {
        if self.config.on_oversize == Policy::PassThrough {
            self.pass(cx.host);
        }
    }

    fn on_error_reply(&mut self, cx: &mut Ctx<'_, ()>, _error: &ClientError) {
        self.state.metrics.count(cx.host, metric::REJECTED, 1);
        self.phase = Phase::Done;
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        let host = cx.host;
        let Phase::Buffering(dialect) = self.phase else {
            return Action::Continue;
        };
        match decorate(&self.config, dialect, body) {
            Ok(None) => self.pass(host),
            Ok(Some(new_body)) => {
                let written = host.replace_body(BufferKind::RequestBody, body.len(), &new_body);
                if !cx.check(written, "cannot rewrite the body") {
                    return self.pass(host);
                }
                self.state.metrics.count(host, metric::DECORATED, 1);
                self.phase = Phase::Done;
                Action::Continue
            }
            Err(e) if e.is_unparseable() && self.config.on_invalid_body == Policy::PassThrough => {
                self.pass(host)
            }
            Err(e) => {
                let param = e.param();
                self.reject(
                    host,
                    ClientError::invalid_request(e.to_string()).with_param(param),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chat_posts_are_ours() {
        assert_eq!(
            dialect_of(b"POST", b"/v1/chat/completions"),
            Some(Dialect::OpenAiChat)
        );
        assert_eq!(
            dialect_of(b"POST", b"/openai/v1/chat/completions?x=1"),
            Some(Dialect::OpenAiChat)
        );
        assert_eq!(
            dialect_of(b"POST", b"/v1/messages/"),
            Some(Dialect::AnthropicMessages)
        );
        assert_eq!(dialect_of(b"GET", b"/v1/chat/completions"), None);
        assert_eq!(dialect_of(b"POST", b"/v1/embeddings"), None);
        assert_eq!(dialect_of(b"POST", b"/v1/messages/count_tokens"), None);
    }
}
