//! Host profiles: which imports a host offers and which of its behaviours the harness reproduces.

use std::fmt;

/// The gateway whose proxy-wasm host the harness imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Stock Envoy (cpp-host): the 0.2.1 imports plus the cpp-host WASI set.
    Envoy,
    /// Higress: Envoy plus `proxy_redis_*`, upstream override/hosts, encoded-data injection and the
    /// `route_name` / `cluster_name` properties.
    Higress,
    /// APISIX (wasm-nginx-module 0.7): no `on_vm_start`, no tick/shared data/queues, header callbacks
    /// get (0, eos=1), bodies only on request via `wasm_process_req_body`, nginx-variable properties.
    Apisix,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Envoy => "Envoy",
            Profile::Higress => "Higress",
            Profile::Apisix => "APISIX",
        })
    }
}

/// Host functions APISIX declares but answers with UNIMPLEMENTED (12).
const APISIX_UNIMPLEMENTED: &[&str] = &[
    "proxy_set_buffer_bytes",
    "proxy_set_header_map_pairs",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_done",
    "proxy_call_foreign_function",
];

/// `env` imports APISIX does not offer at all (a module importing them fails to load).
const APISIX_MISSING: &[&str] = &["proxy_get_log_level"];

/// The Higress-only imports.
pub(crate) const HIGRESS_ONLY: &[&str] = &[
    "proxy_redis_init",
    "proxy_redis_call",
    "proxy_set_upstream_override_host",
    "proxy_get_upstream_hosts",
    "proxy_inject_encoded_data_to_filter_chain",
];

impl Profile {
    /// True if this profile's host answers `function` with UNIMPLEMENTED.
    pub fn unimplemented(self, function: &str) -> bool {
        self == Profile::Apisix && APISIX_UNIMPLEMENTED.contains(&function)
    }

    /// True if this profile links `env.<function>` at all.
    pub fn offers(self, function: &str) -> bool {
        match self {
            Profile::Envoy => !HIGRESS_ONLY.contains(&function),
            Profile::Higress => true,
            Profile::Apisix => {
                !HIGRESS_ONLY.contains(&function) && !APISIX_MISSING.contains(&function)
            }
        }
    }

    /// Whether the host calls `proxy_on_vm_start`.
    pub fn calls_vm_start(self) -> bool {
        self != Profile::Apisix
    }
}
