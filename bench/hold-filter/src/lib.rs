//! bench/empty-filter, except that the request headers are held until the request body is
//! complete (StopIteration from the headers, StopIterationAndBuffer from each body chunk before
//! the last, Continue at the end), the way ai-proxy holds them; no host call is made. With the
//! feature `buffer-only` the headers go on at once and only the body is buffered (the
//! decorator's way). Envoy needs `allow_on_headers_stop_iteration: true` for the first mode
//! (bench/configs/one-wasm-hold.yaml).

const CONTINUE: u32 = 0;
const PAUSE: u32 = 1;

/// ABI marker Envoy looks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Envoy writes host data into guest memory here.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buf: Vec<u8> = Vec::with_capacity(size.max(1));
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(
    _root_context_id: u32,
    _plugin_configuration_size: u32,
) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: u32, eos: u32) -> u32 {
    if eos != 0 || cfg!(feature = "buffer-only") {
        CONTINUE
    } else {
        PAUSE
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(_context_id: u32, _size: u32, eos: u32) -> u32 {
    if eos != 0 {
        CONTINUE
    } else {
        PAUSE
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context_id: u32, _headers: u32, _eos: u32) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(_context_id: u32, _size: u32, _eos: u32) -> u32 {
    CONTINUE
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
