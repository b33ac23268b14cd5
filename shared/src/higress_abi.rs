//! Higress's host calls beyond proxy-wasm 0.2.1 (the `higress` build, wasm32 only): Redis
//! commands, the upstream override host and the list of upstream hosts. The proxy-wasm Rust SDK
//! has none of them, so this is the one module of the suite with `unsafe` code (the workspace
//! denies it everywhere else; `make lint` checks that no other file allows it).
//!
//! Every `unsafe` block here is a call into the host through the ABI's documented signature
//! (`../shared/research/proxy-wasm-abi.md` §5), passing pointers and lengths of live Rust
//! slices, or taking back a buffer the host allocated through the SDK's
//! `proxy_on_memory_allocate` (a boxed `[u8]` of exactly the returned size, as the SDK's own
//! `get_buffer` does).
//!
//! Redis answers arrive through the export `proxy_on_redis_call_response(root_context, token,
//! status, size)`, addressed like HTTP callouts to the root context. Each token remembers the
//! context that sent it; the answer is handed to that context through the SDK's own dispatch of
//! `proxy_on_foreign_function` (so the SDK files any callout made while handling it under the
//! right context); when that context is gone, to the root (`Plugin::on_orphan_reply`: a
//! reservation whose client left must be given back).
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;

use crate::host::HostError;

/// Higress's buffer type for a Redis reply (`proxy_get_buffer_bytes`).
const REDIS_CALL_RESPONSE: u32 = 9;
/// `proxy_status_t` OK.
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_redis_init(
        upstream: *const u8,
        upstream_len: usize,
        username: *const u8,
        username_len: usize,
        password: *const u8,
        password_len: usize,
        timeout_ms: u32,
    ) -> u32;
    fn proxy_redis_call(
        upstream: *const u8,
        upstream_len: usize,
        query: *const u8,
        query_len: usize,
        token: *mut u32,
    ) -> u32;
    fn proxy_set_upstream_override_host(host: *const u8, host_len: usize) -> u32;
    fn proxy_get_upstream_hosts(data: *mut *mut u8, size: *mut usize) -> u32;
    #[link_name = "proxy_get_buffer_bytes"]
    fn get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
}

fn status(code: u32) -> Result<(), HostError> {
    match code {
        OK => Ok(()),
        2 => Err(HostError::BadArgument("rejected by host")),
        other => Err(HostError::Status(other)),
    }
}

/// Connect to the Redis behind Envoy cluster `upstream` (options such as `?db=1` after it).
pub fn redis_init(
    upstream: &str,
    username: &str,
    password: &str,
    timeout_ms: u32,
) -> Result<(), HostError> {
    // SAFETY: three live slices, read by the host during the call only.
    let code = unsafe {
        proxy_redis_init(
            upstream.as_ptr(),
            upstream.len(),
            username.as_ptr(),
            username.len(),
            password.as_ptr(),
            password.len(),
            timeout_ms,
        )
    };
    status(code)
}

/// Send the RESP command `query` to `upstream`; the answer comes to `context` (a stream).
pub fn redis_call(upstream: &str, query: &[u8], context: u32) -> Result<u32, HostError> {
    let mut token: u32 = 0;
    // SAFETY: two live slices read during the call, and a live u32 the host writes.
    let code = unsafe {
        proxy_redis_call(
            upstream.as_ptr(),
            upstream.len(),
            query.as_ptr(),
            query.len(),
            &mut token,
        )
    };
    status(code)?;
    PENDING.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            p.insert(token, context);
        }
    });
    Ok(token)
}

/// Send this request to `host` (`ip:port`) of its cluster.
pub fn set_upstream_override_host(host: &[u8]) -> Result<(), HostError> {
    // SAFETY: a live slice read during the call.
    status(unsafe { proxy_set_upstream_override_host(host.as_ptr(), host.len()) })
}

/// The routed cluster's hosts, as the host serialised them (a proxy-wasm map of address to
/// JSON; empty when the host has none).
pub fn upstream_hosts() -> Result<Vec<u8>, HostError> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: the host writes a pointer it got from the SDK's `proxy_on_memory_allocate` (a
    // leaked `Box<[u8]>` of `len` bytes) and its length; ownership passes to us and is taken
    // back exactly once, with that length.
    unsafe {
        status(proxy_get_upstream_hosts(&mut data, &mut len))?;
        if data.is_null() {
            return Ok(Vec::new());
        }
        Ok(Vec::from_raw_parts(data, len, len))
    }
}

/// The Redis reply of the current `proxy_on_redis_call_response` (empty when there is none).
fn redis_reply(size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: the host writes a pointer it got from the SDK's `proxy_on_memory_allocate` (a
    // leaked `Box<[u8]>` of `len` bytes) and its length; ownership passes to us and is taken
    // back exactly once, with that length.
    unsafe {
        if get_buffer_bytes(REDIS_CALL_RESPONSE, 0, size, &mut data, &mut len) != OK
            || data.is_null()
        {
            return Vec::new();
        }
        Vec::from_raw_parts(data, len, len)
    }
}

/// The `function_id` under which a Redis answer is handed to a context through the SDK's
/// `proxy_on_foreign_function` dispatch ("rdis"); no host function uses it.
const REDIS_ANSWER: u32 = 0x7264_6973;

thread_local! {
    /// Which context (a stream's, or the root's) sent each pending call.
    static PENDING: RefCell<HashMap<u32, u32>> = RefCell::new(HashMap::new());
    /// The answer being handed over: (token, reply).
    static ANSWER: RefCell<Option<(u32, Vec<u8>)>> = const { RefCell::new(None) };
}

/// Where answers to calls of a context that is done go: to the root that Higress names in
/// its callback (`Plugin::on_orphan_reply`). No context has id 0.
const ORPHANED: u32 = 0;

/// Context `context` is done: answers still on their way go to the root instead.
pub(crate) fn forget(context: u32) {
    PENDING.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            for c in p.values_mut().filter(|c| **c == context) {
                *c = ORPHANED;
            }
        }
    });
}

/// In a context's `on_foreign_function`: the Redis answer handed over, if that is what this is.
pub(crate) fn take_answer(function_id: u32) -> Option<(u32, Vec<u8>)> {
    if function_id != REDIS_ANSWER {
        return None;
    }
    ANSWER.with(|a| a.try_borrow_mut().ok().and_then(|mut a| a.take()))
}

extern "C" {
    /// The SDK's own export (defined in this module, not imported): it finds the context,
    /// makes it the SDK's active one (so calls made while handling the answer are filed under
    /// it) and the host's effective one, and calls its `on_foreign_function`.
    #[link_name = "proxy_on_foreign_function"]
    fn sdk_on_foreign_function(context_id: u32, function_id: u32, arguments_size: usize);
}

/// Higress calls this when a Redis command was answered (status 0) or failed. The SDK keeps its
/// contexts to itself, so the answer goes to the calling context through the SDK's dispatch of
/// `proxy_on_foreign_function`: called directly, a callout started while handling the answer
/// would be filed under whichever context the SDK ran last.
#[no_mangle]
pub extern "C" fn proxy_on_redis_call_response(
    root_context: u32,
    token: u32,
    status: u32,
    response_size: usize,
) {
    let Some(context) =
        PENDING.with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.remove(&token)))
    else {
        return;
    };
    let context = if context == ORPHANED {
        root_context
    } else {
        context
    };
    // Read while the callback's own context is current: the buffer belongs to it.
    let reply = if status == OK {
        redis_reply(response_size)
    } else {
        Vec::new()
    };
    let staged = ANSWER.with(|a| {
        a.try_borrow_mut()
            .map(|mut a| *a = Some((token, reply)))
            .is_ok()
    });
    if !staged {
        return;
    }
    // SAFETY: a call to a function of this module with plain integer arguments; the SDK's
    // dispatcher holds no borrow here (we are not inside one of its callbacks).
    unsafe { sdk_on_foreign_function(context, REDIS_ANSWER, 0) };
    // A context that is gone never took it.
    ANSWER.with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            a.take();
        }
    });
}
