//! `aigw-harness`: a proxy-wasm (ABI 0.2.1) host on wasmtime that runs the built plugin `.wasm`
//! files with Envoy's rules (or Higress' / APISIX's), for tests. See the crate README.
//!
//! Main entry points: [`Plugin`] (one plugin as one or more worker VMs), [`Vm`]'s per-stream API,
//! [`Chain`] (several plugins in front of an upstream) and [`wasm_path`].

pub mod abi;
pub mod callout;
pub mod chain;
mod env;
mod error;
mod host;
pub mod http_client;
pub mod metrics;
mod module_cache;
mod plugin;
mod profile;
mod properties;
pub mod stream;
pub mod upstream;
mod vm;

pub use abi::{header_value, headers, Action, Headers, LogLevel, Status};
pub use callout::{CalloutHandler, CalloutOutcome, CalloutRequest, RedisCall, RedisReply};
pub use chain::{Chain, Exchange};
pub use env::{Env, CLOCK_START_NS};
pub use error::{HarnessError, Limit, LogEntry, Result, Trap};
pub use host::state::{Direction, InvalidHeaderWrite, TraceEntry};
pub use metrics::MetricValue;
pub use plugin::{Admission, FailurePolicy, Plugin, PluginSpec, ReloadStats};
pub use profile::Profile;
pub use stream::{Event, LocalReply, Step, StreamId};
pub use upstream::{ForwardUpstream, Request, Upstream, UpstreamRequest, UpstreamResponse};
pub use vm::Vm;

use std::path::PathBuf;

/// The workspace root (two levels above this crate's manifest).
fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Locates a built plugin module: `$AIGW_WASM_DIR/<name>.wasm`, else
/// `<workspace>/target/wasm32-wasip1/release/<name>.wasm`. `name` may use `-` or `_`.
/// A missing file is an error naming the exact build command.
pub fn wasm_path(name: &str) -> Result<PathBuf> {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let dir = match std::env::var_os("AIGW_WASM_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root()
            .join("target")
            .join("wasm32-wasip1")
            .join("release"),
    };
    let path = dir.join(&file);
    if path.is_file() {
        return Ok(path);
    }
    let krate = name.replace('_', "-");
    Err(HarnessError::MissingWasm(format!(
        "{} not found; build it first with `cargo build --release --target wasm32-wasip1 -p {krate}` \
         (or point AIGW_WASM_DIR at the directory holding {file})",
        path.display()
    )))
}
