//! Per-VM host state (what a wasmtime `Store` carries) and per-stream state.

use crate::abi::{Headers, Status};
use crate::callout::{CalloutRequest, RedisCall};
use crate::env::Env;
use crate::error::LogEntry;
use crate::metrics::MetricIds;
use crate::profile::Profile;
use crate::stream::LocalReply;
use std::collections::HashMap;
use wasmtime::{Memory, TypedFunc};

/// Which kind of guest call is running (cpp-host restricts host calls in some of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallPhase {
    /// `_initialize` / `main` / `_start`.
    Init,
    /// Any `proxy_on_*` callback.
    Callback,
    /// Inside the allocator export called from a host call.
    Allocator,
}

/// One host call and the status it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// Host function name, e.g. `proxy_set_buffer_bytes`.
    pub function: &'static str,
    /// Context the call acted on.
    pub context: u32,
    /// Status code returned.
    pub status: i32,
    /// True when the Rust SDK 0.2.x cannot decode the status (5, 6, 9, 11, 12).
    pub undecodable: bool,
}

/// A stream direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The request (decoder) path.
    Request,
    /// The response (encoder) path.
    Response,
}

/// Deferred "after VM call" work, as Envoy queues it.
#[derive(Debug, Clone)]
pub(crate) enum AfterAction {
    LocalReply(u32, LocalReply),
    Continue(u32, Direction),
    Close(u32),
}

/// A pending gRPC call or stream (always answered as UNAVAILABLE).
#[derive(Debug, Clone)]
pub(crate) struct GrpcPending {
    pub(crate) token: u32,
}

/// One direction's maps and body as the guest sees them.
#[derive(Debug, Default, Clone)]
pub(crate) struct DirMaps {
    pub(crate) headers: Headers,
    pub(crate) headers_live: bool,
    pub(crate) trailers: Headers,
    pub(crate) trailers_live: bool,
    pub(crate) body: Vec<u8>,
    pub(crate) body_live: bool,
    pub(crate) seen_headers: bool,
}

/// Host-side state of one HTTP stream context.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) request: DirMaps,
    pub(crate) response: DirMaps,
    pub(crate) props: HashMap<String, Vec<u8>>,
    pub(crate) upstream_override: Option<String>,
    pub(crate) injected: Vec<(Vec<u8>, bool)>,
    pub(crate) buffer_limit_request: Option<usize>,
    pub(crate) buffer_limit_response: Option<usize>,
    pub(crate) in_response: bool,
}

impl StreamState {
    pub(crate) fn dir(&self, d: Direction) -> &DirMaps {
        match d {
            Direction::Request => &self.request,
            Direction::Response => &self.response,
        }
    }

    pub(crate) fn dir_mut(&mut self, d: Direction) -> &mut DirMaps {
        match d {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }
}

/// The response of the callout being delivered (readable only inside `on_http_call_response`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CallResponse {
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Headers,
}

/// The per-VM memory cap (a wasmtime `ResourceLimiter`): growing past it traps, and the attempt is
/// remembered so the trap can be reported as [`crate::Limit::Memory`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemoryCap {
    pub(crate) cap: usize,
    pub(crate) denied: Option<usize>,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = Some(desired);
            wasmtime::bail!(
                "memory limit: growing linear memory from {current} to {desired} bytes exceeds the cap of {} bytes",
                self.cap
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// A header name or value with CR, LF or NUL that a plugin handed to the host. Envoy accepts it
/// (status OK) and stores it verbatim in release builds; see `host::core::check_header_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeaderWrite {
    /// The host function, e.g. `proxy_replace_header_map_value` or `proxy_send_local_response`.
    pub function: &'static str,
    /// The header name (lowercased).
    pub name: String,
    /// The value bytes as given.
    pub value: Vec<u8>,
}

/// Everything the host keeps for one VM instance.
pub(crate) struct VmState {
    pub(crate) env: Env,
    pub(crate) profile: Profile,
    pub(crate) worker: usize,
    pub(crate) vm_key: u64,
    pub(crate) vm_id: String,
    pub(crate) root_id: String,
    pub(crate) plugin_name: String,
    pub(crate) memory: Option<Memory>,
    pub(crate) alloc: Option<TypedFunc<i32, i32>>,
    pub(crate) phase: CallPhase,
    pub(crate) current_ctx: u32,
    pub(crate) effective_ctx: u32,
    pub(crate) root_ctx: u32,
    pub(crate) next_ctx: u32,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) vm_config_readable: bool,
    pub(crate) plugin_config_readable: bool,
    pub(crate) tick_period_ms: u32,
    pub(crate) next_tick_ns: u64,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) trace: Vec<TraceEntry>,
    pub(crate) metric_ids: MetricIds,
    pub(crate) streams: HashMap<u32, StreamState>,
    pub(crate) next_token: u32,
    pub(crate) pending_callouts: Vec<CalloutRequest>,
    pub(crate) call_response: Option<CallResponse>,
    pub(crate) pending_grpc: Vec<GrpcPending>,
    pub(crate) grpc_message: Option<Vec<u8>>,
    pub(crate) pending_redis: Vec<RedisCall>,
    pub(crate) redis_response: Option<Vec<u8>>,
    pub(crate) redis_clusters: Vec<String>,
    pub(crate) status: (u32, Vec<u8>),
    pub(crate) foreign_args: Option<Vec<u8>>,
    pub(crate) after: Vec<AfterAction>,
    pub(crate) last_critical: Option<String>,
    pub(crate) done_pending: bool,
    pub(crate) properties: HashMap<String, Vec<u8>>,
    pub(crate) log_level: u32,
    pub(crate) rng: u64,
    pub(crate) env_vars: Vec<(String, String)>,
    pub(crate) memory_cap: MemoryCap,
    pub(crate) invalid_headers: Vec<InvalidHeaderWrite>,
    pub(crate) strict_header_values: bool,
}

impl VmState {
    /// The context host calls act on: the effective one if set, else the current one.
    pub(crate) fn ctx(&self) -> u32 {
        if self.effective_ctx != 0 {
            self.effective_ctx
        } else {
            self.current_ctx
        }
    }

    pub(crate) fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.ctx())
    }

    pub(crate) fn stream_mut(&mut self) -> Option<&mut StreamState> {
        let ctx = self.ctx();
        self.streams.get_mut(&ctx)
    }

    pub(crate) fn record(&mut self, function: &'static str, status: i32) {
        let context = self.ctx();
        let undecodable = Status::from_code(status).is_some_and(Status::undecodable_by_rust_sdk);
        self.trace.push(TraceEntry {
            function,
            context,
            status,
            undecodable,
        });
    }

    /// Records header pairs a plugin handed over that Envoy's `validHeaderString` would reject
    /// (CR, LF or NUL in the name or the value). Returns an error (a trap) under
    /// `strict_header_values`, which models an Envoy debug build's failed `ASSERT(valid())`.
    pub(crate) fn check_headers(
        &mut self,
        function: &'static str,
        pairs: &[(String, Vec<u8>)],
    ) -> wasmtime::Result<()> {
        let bad = |b: &u8| matches!(*b, b'\r' | b'\n' | 0);
        for (name, value) in pairs {
            if name.as_bytes().iter().any(bad) || value.iter().any(bad) {
                let write = InvalidHeaderWrite {
                    function,
                    name: name.clone(),
                    value: value.clone(),
                };
                if self.strict_header_values {
                    wasmtime::bail!(
                        "invalid header (CR, LF or NUL) passed to {function}: {name:?}: {:?} \
                         (Envoy debug builds abort on ASSERT(valid()) here; release builds keep it)",
                        String::from_utf8_lossy(value)
                    );
                }
                self.invalid_headers.push(write);
            }
        }
        Ok(())
    }

    pub(crate) fn allocate_ctx(&mut self) -> u32 {
        self.next_ctx += 1;
        self.next_ctx
    }

    pub(crate) fn take_token(&mut self, kind: u32) -> u32 {
        self.next_token = self.next_token.wrapping_add(1);
        self.next_token * 4 + kind
    }
}
