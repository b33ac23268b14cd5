//! The harness error type: load failures, guest traps (with the guest's panic text) and misuse.

use crate::abi::LogLevel;
use std::fmt;
use std::time::Duration;

/// One captured guest log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Which worker VM logged it (index in its plugin).
    pub worker: usize,
    /// Level.
    pub level: LogLevel,
    /// Message text.
    pub message: String,
}

impl fmt::Display for LogEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[worker {} {:?}] {}",
            self.worker, self.level, self.message
        )
    }
}

/// A guest trap: what was running, the trap text and the panic message the SDK logged.
#[derive(Debug, Clone)]
pub struct Trap {
    /// The guest export that trapped (e.g. `proxy_on_request_headers`).
    pub callback: String,
    /// The panic message the SDK logged at CRITICAL just before the trap, if any.
    pub panic_message: Option<String>,
    /// wasmtime's description of the trap.
    pub trap: String,
    /// Every log line of that VM so far.
    pub logs: Vec<LogEntry>,
}

/// A per-VM resource limit the harness enforces (see [`crate::PluginSpec::call_time_limit`] and
/// [`crate::PluginSpec::memory_limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The wall-clock budget of one host→guest call (wasmtime epoch interruption) ran out.
    Time {
        /// The budget per call.
        budget: Duration,
    },
    /// The guest tried to grow its linear memory past the per-VM cap.
    Memory {
        /// The cap in bytes.
        cap: u64,
        /// The size in bytes the guest asked for.
        requested: u64,
    },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Time { budget } => write!(
                f,
                "time limit: one guest call ran longer than {budget:?} (a runaway loop?)"
            ),
            Limit::Memory { cap, requested } => write!(
                f,
                "memory limit: the guest asked to grow its memory to {requested} bytes, over the cap of {cap} bytes"
            ),
        }
    }
}

/// Everything that can go wrong while driving a plugin.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The `.wasm` file is missing; the message names the build command.
    #[error("{0}")]
    MissingWasm(String),
    /// The module could not be compiled or instantiated (missing import, bad ABI marker, ...).
    #[error("loading {module} under the {profile} profile failed: {reason}")]
    Load {
        /// Module file name.
        module: String,
        /// Host profile name.
        profile: String,
        /// Why.
        reason: String,
    },
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    #[error("{callback} returned false (plugin rejected its configuration); guest logs:\n{}", join_logs(.logs))]
    ConfigRejected {
        /// `proxy_on_vm_start` or `proxy_on_configure`.
        callback: String,
        /// The VM's logs.
        logs: Vec<LogEntry>,
    },
    /// The guest trapped (usually an SDK panic followed by `unreachable`).
    #[error("guest trapped in {}: {}{}\nguest logs:\n{}", .0.callback,
        .0.panic_message.as_deref().map(|m| format!("panic: {m}; ")).unwrap_or_default(),
        .0.trap, join_logs(&.0.logs))]
    Trap(Box<Trap>),
    /// The guest exceeded a harness resource limit: a trap, reported with the limit it hit.
    #[error("guest exceeded the {limit} in {}: {}\nguest logs:\n{}", .trap.callback, .trap.trap, join_logs(&.trap.logs))]
    LimitExceeded {
        /// Which limit fired.
        limit: Limit,
        /// The trap (callback, wasmtime's text, logs).
        trap: Box<Trap>,
    },
    /// The VM trapped earlier and refuses further calls (Envoy fails such a VM closed).
    #[error("the VM failed earlier and is unusable: {0}")]
    VmFailed(String),
    /// The test used the API wrongly (unknown stream, wrong order, ...).
    #[error("harness misuse: {0}")]
    Usage(String),
    /// An I/O error (reading a module, talking to a local server).
    #[error("i/o: {0}")]
    Io(String),
}

impl HarnessError {
    /// The guest panic message if this is a trap that logged one.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            HarnessError::Trap(t) => t.panic_message.as_deref(),
            HarnessError::LimitExceeded { trap, .. } => trap.panic_message.as_deref(),
            _ => None,
        }
    }

    /// True if this error is a guest trap (including one caused by a resource limit).
    pub fn is_trap(&self) -> bool {
        matches!(
            self,
            HarnessError::Trap(_) | HarnessError::LimitExceeded { .. }
        )
    }

    /// The resource limit that fired, if this is a [`HarnessError::LimitExceeded`].
    pub fn limit(&self) -> Option<Limit> {
        match self {
            HarnessError::LimitExceeded { limit, .. } => Some(*limit),
            _ => None,
        }
    }
}

fn join_logs(logs: &[LogEntry]) -> String {
    if logs.is_empty() {
        return "  (none)".to_string();
    }
    logs.iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result alias for the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;
