//! Catches a host that never delivers the body after a plugin held the request headers.
//!
//! A plugin that must change the request headers once it has read the body (ai-proxy routes by
//! the body's model) holds the headers with a Pause. Envoy keeps delivering body chunks only when
//! the filter's config says `allow_on_headers_stop_iteration: true`; without it, Envoy turns the
//! Pause into "stop everything" and the body never reaches the plugin, so every such request
//! hangs until the client gives up, with nothing in the log.
//!
//! The watchdog sees this from inside the VM: it notes when a stream's headers are held for its
//! body, forgets the stream at its first body chunk, and reports streams that waited longer than
//! [`WAIT_NS`] while no held stream of the VM has ever received a body. The first body chunk seen
//! by any held stream proves the host delivers bodies, and disarms the watchdog for the VM's life.

use crate::error::{ClientError, ClientProtocol, ErrorKind};

/// How long a held stream may wait for its first body chunk before it is called stuck.
pub const WAIT_NS: u64 = 10_000_000_000;

/// How often the root checks while the watchdog is armed.
pub const CHECK_PERIOD_MS: u32 = 1_000;

/// What the log and the client are told about a stuck stream.
pub fn stuck_error(plugin: &str, waited_s: u64) -> ClientError {
    ClientError::new(
        ErrorKind::Internal,
        format!(
            "{plugin} held the request headers to read the body, but the gateway delivered no \
             body for {waited_s} s: Envoy's wasm filter config needs \
             `allow_on_headers_stop_iteration: true` (on Higress, use the plugin's higress build)"
        ),
    )
    .with_status(500)
}

/// A stream waiting for its first body chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The stream's context id.
    pub context: u32,
    /// When its headers were held (host clock, ns).
    pub since_ns: u64,
    /// The caller's protocol, for the error.
    pub protocol: ClientProtocol,
}

/// One VM's watchdog.
#[derive(Debug, Default)]
pub struct Watchdog {
    held: Vec<Held>,
    body_seen: bool,
}

impl Watchdog {
    /// Still watching: no held stream of this VM has received a body yet.
    pub fn armed(&self) -> bool {
        !self.body_seen
    }

    /// A stream's headers were held for its body at `since_ns`.
    pub fn held(&mut self, context: u32, since_ns: u64, protocol: ClientProtocol) {
        // A stream is held once (the adapter marks it watched), so no search for it here.
        if self.body_seen {
            return;
        }
        self.held.push(Held {
            context,
            since_ns,
            protocol,
        });
    }

    /// A stream received a body chunk: if it was held, bodies do arrive on this host.
    pub fn body(&mut self, context: u32) {
        if self.body_seen {
            return;
        }
        let before = self.held.len();
        self.held.retain(|h| h.context != context);
        if self.held.len() < before {
            self.body_seen = true;
            self.held = Vec::new();
        }
    }

    /// A stream ended.
    pub fn gone(&mut self, context: u32) {
        self.held.retain(|h| h.context != context);
    }

    /// The streams that have waited at least [`WAIT_NS`] at `now_ns`; they are forgotten.
    pub fn stuck(&mut self, now_ns: u64) -> Vec<Held> {
        if self.body_seen {
            return Vec::new();
        }
        let (stuck, waiting): (Vec<Held>, Vec<Held>) = self
            .held
            .iter()
            .partition(|h| now_ns.saturating_sub(h.since_ns) >= WAIT_NS);
        self.held = waiting;
        stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_stream_without_a_body_is_stuck_after_the_wait() {
        let mut w = Watchdog::default();
        w.held(7, S, ClientProtocol::Anthropic);
        assert!(w.stuck(S + WAIT_NS - 1).is_empty());
        let stuck = w.stuck(S + WAIT_NS);
        assert_eq!(stuck.len(), 1);
        assert_eq!(stuck.first().map(|h| h.context), Some(7));
        assert!(w.stuck(S + 2 * WAIT_NS).is_empty(), "reported once");
        assert!(w.armed());
    }

    #[test]
    fn one_body_disarms_the_watchdog_for_good() {
        let mut w = Watchdog::default();
        w.held(1, 0, ClientProtocol::OpenAi);
        w.held(2, 0, ClientProtocol::OpenAi);
        w.body(2);
        assert!(!w.armed());
        assert!(w.stuck(10 * WAIT_NS).is_empty());
        w.held(3, 0, ClientProtocol::OpenAi);
        assert!(w.stuck(10 * WAIT_NS).is_empty());
    }

    #[test]
    fn a_body_of_a_stream_that_was_not_held_proves_nothing() {
        let mut w = Watchdog::default();
        w.held(1, 0, ClientProtocol::OpenAi);
        w.body(9);
        assert!(w.armed());
        w.gone(1);
        assert!(w.stuck(WAIT_NS).is_empty());
    }

    #[test]
    fn the_error_names_the_envoy_option() {
        let e = stuck_error("ai-proxy", 10);
        assert_eq!(e.status, 500);
        assert!(e.message.contains("allow_on_headers_stop_iteration: true"));
    }
}
