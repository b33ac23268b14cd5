//! Callouts as values: a table of pending operations keyed by the host's token, and what a
//! callout's answer tells the driver to do next.
//!
//! A filter (or the plugin's root) starts a callout through [`super::Ctx::http_call`] or
//! [`super::Ctx::grpc_call`] with a value of its own type saying what the call is for. The driver
//! keeps that value in a [`Calls`] table; when the host answers, the value and the answer go back
//! to the plugin together, and the plugin's [`Next`] says whether the stream resumes, keeps
//! waiting, or is answered with an error in the caller's protocol. A stream that ends with calls
//! still pending has them cancelled: the plugin hears about each through `on_call_cancelled`.

use crate::error::ClientError;
use crate::host::{CallResponse, Direction};

/// The answer to a callout, as handed to the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An HTTP callout finished (`status: None` when it failed without a response).
    Http(CallResponse),
    /// A gRPC call finished with `status` (0 is OK) and the response message, if any.
    Grpc {
        /// gRPC status code.
        status: u32,
        /// The serialised response message (empty on failure).
        message: Vec<u8>,
    },
    /// A Redis command answered (Higress): the raw RESP bytes, empty when the call failed.
    Redis(Vec<u8>),
}

impl Reply {
    /// The HTTP answer, when this is one.
    pub fn http(&self) -> Option<&CallResponse> {
        match self {
            Reply::Http(r) => Some(r),
            Reply::Grpc { .. } | Reply::Redis(_) => None,
        }
    }
}

/// What the driver does after a request-level callout answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Resume the direction that was paused when the call started (unless other calls of this
    /// stream are still pending: the stream resumes when the last one says `Resume`).
    Resume,
    /// Keep the stream paused: another call is under way, or the filter answered locally itself.
    Hold,
    /// Answer the client with this error, in the filter's protocol.
    Fail(ClientError),
}

/// One pending operation.
#[derive(Debug)]
struct Pending<C> {
    token: u32,
    direction: Option<Direction>,
    call: C,
}

/// Pending operations keyed by host token.
#[derive(Debug)]
pub struct Calls<C> {
    pending: Vec<Pending<C>>,
}

impl<C> Default for Calls<C> {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
        }
    }
}

impl<C> Calls<C> {
    /// Remember `call` under `token`; `direction` is the one the stream holds while it waits
    /// (`None` for root-level calls and calls the stream does not wait for).
    pub fn insert(&mut self, token: u32, direction: Option<Direction>, call: C) {
        self.pending.push(Pending {
            token,
            direction,
            call,
        });
    }

    /// Take the call registered under `token`, with the direction it holds.
    pub fn take(&mut self, token: u32) -> Option<(C, Option<Direction>)> {
        let i = self.pending.iter().position(|p| p.token == token)?;
        let p = self.pending.swap_remove(i);
        Some((p.call, p.direction))
    }

    /// Whether `token` is pending here.
    pub fn contains(&self, token: u32) -> bool {
        self.pending.iter().any(|p| p.token == token)
    }

    /// Whether any pending call holds `direction`.
    pub fn holds(&self, direction: Direction) -> bool {
        self.pending.iter().any(|p| p.direction == Some(direction))
    }

    /// Number of pending calls.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Remove and return every pending call (the stream ended).
    pub fn drain(&mut self) -> Vec<C> {
        self.pending.drain(..).map(|p| p.call).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_by_token_and_remember_what_they_hold() {
        let mut calls = Calls::default();
        calls.insert(4, Some(Direction::Request), "token");
        calls.insert(8, None, "refresh");
        assert!(calls.holds(Direction::Request));
        assert!(!calls.holds(Direction::Response));
        assert_eq!(calls.take(8), Some(("refresh", None)));
        assert_eq!(calls.take(8), None, "a token is answered once");
        assert_eq!(calls.take(4), Some(("token", Some(Direction::Request))));
        assert!(calls.is_empty());
    }

    #[test]
    fn draining_returns_every_pending_call() {
        let mut calls = Calls::default();
        calls.insert(4, None, 1);
        calls.insert(8, None, 2);
        let mut left = calls.drain();
        left.sort_unstable();
        assert_eq!(left, vec![1, 2]);
        assert_eq!(calls.len(), 0);
    }
}
