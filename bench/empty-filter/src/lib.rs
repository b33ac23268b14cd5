//! The emptiest proxy-wasm (ABI 0.2.1) HTTP filter: it exports the callbacks Envoy calls per
//! request and answers each with "continue", making no host call. It measures the fixed cost of
//! one wasm filter in the chain (VM entry per callback, context create/delete), nothing else.

/// ABI marker Envoy looks for.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Envoy writes host data (configuration, headers it is asked for) into guest memory here.
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
pub extern "C" fn proxy_on_request_headers(_context_id: u32, _headers: u32, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(_context_id: u32, _size: u32, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(_context_id: u32, _headers: u32, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(_context_id: u32, _size: u32, _eos: u32) -> u32 {
    0
}

#[no_mangle]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_log(_context_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
