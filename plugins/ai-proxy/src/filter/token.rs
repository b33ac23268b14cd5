//! Credentials fetched over HTTP before a request goes upstream (Vertex AI service accounts).
//!
//! The worker refreshes every such provider's token on its tick, from the root context, so a
//! refresh never depends on a client staying connected (see [`crate::Proxy`]'s `on_tick`). A
//! request that finds no usable token (a cold worker, or a failed refresh) holds its complete
//! body (phase `AwaitingToken`) and fetches one itself, through the driver's callout table; the
//! answer fills the worker's token cache, then the request is prepared, sent and resumed by the
//! driver. A failed fetch answers 503 in the client's shape. If the client goes away first, the
//! fetch is marked cancelled so the next request or tick fetches again at once.

use std::time::Duration;

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel};
use aigw_shared::plugin::{Ctx, Next, Reply};

use super::{Filter, Phase};
use crate::prepare::{prepare, routed_provider, Incoming};
use crate::provider::{Provider, TokenNeed};

/// How long a token callout may take.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A token callout in flight for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCall {
    /// The provider's index in the request's config.
    pub provider: usize,
}

/// The host clock in Unix seconds (0 without a clock).
pub fn unix_now(host: &dyn Host) -> i64 {
    host.now_nanos()
        .map_or(0, |n| i64::try_from(n / 1_000_000_000).unwrap_or(0))
}

/// The callout that fetches a token.
pub fn token_request(need: &TokenNeed) -> (Upstream, CalloutRequest<'_>) {
    let request = CalloutRequest {
        method: "POST",
        path: &need.fetch.path,
        headers: vec![("content-type", need.fetch.content_type.as_bytes())],
        body: Some(need.fetch.body.as_bytes()),
        timeout: TOKEN_TIMEOUT,
    };
    (
        Upstream::envoy(&need.cluster, &need.fetch.authority),
        request,
    )
}

/// The log line for a refused token fetch (operators see the service account; clients do not).
pub fn refusal_line(provider: &Provider, error: &ClientError) -> String {
    format!("ai-proxy: provider {}: {}", provider.name, error.message)
}

impl Filter {
    /// Before preparing a complete body: when the routed provider has no usable token, start a
    /// token callout and hold the request. `Some(action)`: the request waits (or was refused);
    /// `None`: go on now.
    pub(super) fn token_first(
        &mut self,
        cx: &mut Ctx<'_, super::Call>,
        inc: &Incoming,
        body: &[u8],
    ) -> Option<Action> {
        // Most configs fetch no tokens: do not peek at the body a second time for them.
        if self.state.token_providers.is_empty() {
            return None;
        }
        let index = routed_provider(&self.config, inc, body)?;
        let config = std::rc::Rc::clone(&self.config);
        let provider = config.providers.get(index)?;
        if !provider.fetches_tokens()
            || self
                .state
                .access_token(&provider.name, inc.now_unix())
                .is_some()
        {
            return None;
        }
        let fetched = self.state.with_tokens(&provider.name, |cache| {
            provider.vendor.token_fetch(cache, inc.now_unix(), true)
        });
        let need = match fetched {
            Ok(Some(need)) => need,
            Ok(None) => return None,
            Err(e) => return Some(self.reject(cx.host, &e)),
        };
        let (upstream, request) = token_request(&need);
        if let Err(e) = cx.http_call(
            &upstream,
            &request,
            super::Call::Token(TokenCall { provider: index }),
        ) {
            self.state
                .with_tokens(&provider.name, |c| c.fail(inc.now_unix()));
            cx.log(
                LogLevel::Warn,
                &format!(
                    "ai-proxy: cannot call the token endpoint via cluster {}: {e}",
                    need.cluster
                ),
            );
            let err = ClientError::new(
                ErrorKind::Overloaded,
                format!("{}: cannot fetch an access token", provider.name),
            );
            return Some(self.reject(cx.host, &err));
        }
        self.phase = Phase::AwaitingToken(inc.clone(), body.len());
        Some(Action::Pause)
    }

    /// The token callout answered: cache the token; the held request goes on (or gets a 503).
    pub(super) fn token_answer(&mut self, host: &dyn Host, call: TokenCall, reply: &Reply) -> Next {
        let now = unix_now(host);
        let config = std::rc::Rc::clone(&self.config);
        let Some(provider) = config.providers.get(call.provider) else {
            return Next::Hold;
        };
        let (status, body) = match reply.http() {
            Some(r) => (r.status.unwrap_or(0), r.body.as_slice()),
            None => (0, &[][..]),
        };
        let taken = self.state.with_tokens(&provider.name, |cache| {
            provider.vendor.on_token(cache, status, body, now)
        });
        if let Err(e) = taken {
            host.log(LogLevel::Warn, &refusal_line(provider, &e));
            self.phase = Phase::PassThrough;
            return Next::Fail(e);
        }
        let Phase::AwaitingToken(inc, size) =
            std::mem::replace(&mut self.phase, Phase::PassThrough)
        else {
            return Next::Hold;
        };
        let body = match host.whole_body(BufferKind::RequestBody, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                let err = ClientError::new(
                    ErrorKind::Internal,
                    format!("cannot read the request body: {e}"),
                );
                self.reject(host, &err);
                return Next::Hold;
            }
        };
        let inc = Incoming {
            now_ns: host.now_nanos().unwrap_or(0),
            ..inc
        };
        let ejected = |key: &str| super::ejected_keys(host, key);
        let action = if self.config.has_fallbacks && inc.json {
            self.send_with_fallbacks(host, &inc, &body)
        } else {
            match prepare(&self.config, &self.state, &inc, &body, &ejected) {
                Ok(p) => self.send(host, p, size, inc.now_ns),
                Err(e) => self.reject(host, &e),
            }
        };
        match action {
            Action::Continue => Next::Resume,
            Action::Pause => Next::Hold,
        }
    }

    /// The request went away while its token callout was pending.
    pub(super) fn token_cancelled(&mut self, call: TokenCall) {
        if let Some(p) = self.config.providers.get(call.provider) {
            self.state.with_tokens(&p.name, |c| c.cancel_fetch());
        }
    }
}
