//! Credentials fetched over HTTP before a request goes upstream (Vertex AI service accounts).
//!
//! When the routed provider has no usable token, the complete request is held (phase
//! `AwaitingToken`) while the filter calls the token endpoint with the shared callout helper; the
//! answer goes to [`crate::provider::Vendor::on_token`], then the request is prepared, sent and
//! resumed. A failed fetch answers 503 in the client's shape. A token close to expiry is refreshed
//! by a callout the request does not wait for.

use std::time::Duration;

use aigw_shared::callout::{CalloutRequest, Upstream};
use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::host::{Action, CallResponse, Direction, Host, LogLevel};

use super::{Filter, Phase};
use crate::prepare::{prepare, Incoming};

/// How long a token callout may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A token callout in flight.
pub(super) struct TokenCall {
    /// The host's token for the callout.
    pub(super) id: u32,
    /// The provider that asked for it.
    pub(super) provider: usize,
}

fn unix_now(host: &dyn Host) -> i64 {
    host.now_nanos()
        .map_or(0, |n| i64::try_from(n / 1_000_000_000).unwrap_or(0))
}

impl Filter {
    /// Before preparing a complete body: start the provider's token callout if it wants one.
    /// `Some(action)`: the request waits for the token (or was refused); `None`: go on now.
    pub(super) fn token_first(
        &mut self,
        host: &dyn Host,
        inc: &Incoming,
        body: &[u8],
        size: usize,
    ) -> Option<Action> {
        let index = crate::prepare::routed_provider(&self.config, inc, body)?;
        let provider = self.config.providers.get(index)?;
        let need = match provider.token_fetch(inc.now_unix) {
            Ok(Some(need)) => need,
            Ok(None) => return None,
            Err(e) => return Some(self.reject(host, &e)),
        };
        let request = CalloutRequest {
            method: "POST",
            path: &need.fetch.path,
            headers: vec![("content-type", need.fetch.content_type.as_bytes())],
            body: Some(need.fetch.body.as_bytes()),
            timeout: TOKEN_TIMEOUT,
        };
        let sent = request.send(host, &Upstream::envoy(&need.cluster, &need.fetch.authority));
        let id = match sent {
            Ok(id) => id,
            Err(e) => {
                let _ = provider.vendor.on_token(0, b"", inc.now_unix);
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "ai-proxy: cannot call the token endpoint via cluster {}: {e}",
                        need.cluster
                    ),
                );
                if !need.wait {
                    return None;
                }
                let err = ClientError::new(
                    ErrorKind::Overloaded,
                    format!("{}: cannot fetch an access token", provider.name),
                );
                return Some(self.reject(host, &err));
            }
        };
        let call = TokenCall {
            id,
            provider: index,
        };
        if !need.wait {
            self.refresh = Some(call);
            return None;
        }
        self.phase = Phase::AwaitingToken(inc.clone(), size, call);
        Some(Action::Pause)
    }

    /// A callout finished: a token answer for the provider; a held request goes on.
    pub(super) fn token_answer(&mut self, host: &dyn Host, id: u32, response: &CallResponse) {
        let now = unix_now(host);
        let status = response.status.unwrap_or(0);
        if let Some(call) = self.refresh.take_if(|c| c.id == id) {
            if let Some(p) = self.config.providers.get(call.provider) {
                if let Err(e) = p.vendor.on_token(status, &response.body, now) {
                    host.log(
                        LogLevel::Warn,
                        &format!("ai-proxy: token refresh: {}", e.message),
                    );
                }
            }
            return;
        }
        let Phase::AwaitingToken(_, _, call) = &self.phase else {
            return;
        };
        if call.id != id {
            return;
        }
        let Phase::AwaitingToken(inc, size, call) =
            std::mem::replace(&mut self.phase, Phase::PassThrough)
        else {
            return;
        };
        let Some(provider) = self.config.providers.get(call.provider) else {
            return;
        };
        if let Err(e) = provider.vendor.on_token(status, &response.body, now) {
            host.log(LogLevel::Warn, &format!("ai-proxy: {}", e.message));
            self.reject(host, &e);
            return;
        }
        let body = match host.whole_body(aigw_shared::host::BufferKind::RequestBody, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                let err = ClientError::new(
                    ErrorKind::Internal,
                    format!("cannot read the request body: {e}"),
                );
                self.reject(host, &err);
                return;
            }
        };
        let inc = Incoming {
            now_unix: now,
            ..inc
        };
        let action = match prepare(&self.config, &inc, &body) {
            Ok(p) => self.send(host, p, size),
            Err(e) => self.reject(host, &e),
        };
        if action == Action::Continue {
            if let Err(e) = host.resume(Direction::Request) {
                host.log(
                    LogLevel::Error,
                    &format!("ai-proxy: cannot resume the request: {e}"),
                );
            }
        }
    }
}
