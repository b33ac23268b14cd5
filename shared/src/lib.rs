//! `aigw-shared`: the one crate every AI gateway plugin builds on.
//!
//! Layers (see the repository README): a pure core (codecs, LLM views, config), a [`host::Host`]
//! trait that filters are written against, and a proxy-wasm adapter (`adapter`, wasm32 only) that
//! implements the trait over the real ABI and exports a plugin with [`export_plugin!`].

pub mod aws;
pub mod callout;
pub mod checksum;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod config_schema;
pub mod consumer;
pub mod error;
pub mod genai;
pub mod host;
pub mod kv;
pub mod llm;
pub mod metrics;
pub mod plugin;
pub mod redis;
pub mod reply;
pub mod resp;
pub mod rules;
pub mod schema;
pub mod stream;
pub mod tokens;

#[cfg(any(test, feature = "mock"))]
pub mod mock;
#[cfg(any(test, feature = "mock"))]
pub mod scenario;

#[cfg(target_arch = "wasm32")]
pub mod adapter;
#[cfg(all(target_arch = "wasm32", feature = "higress"))]
mod higress_abi;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use proxy_wasm;
}

/// Export plugin type `$plugin` (implementing [`plugin::Plugin`]) as this module's proxy-wasm entry point.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        $crate::__private::proxy_wasm::main! {{
            $crate::__private::proxy_wasm::set_log_level($crate::__private::proxy_wasm::types::LogLevel::Trace);
            $crate::adapter::install_panic_hook(<$plugin as $crate::plugin::Plugin>::NAME);
            $crate::__private::proxy_wasm::set_root_context(|id| -> Box<dyn $crate::__private::proxy_wasm::traits::RootContext> {
                Box::new($crate::adapter::Root::<$plugin>::new(id))
            });
        }}
        $crate::__higress_abi_marker!();
    };
}

/// With the `higress` feature (`make build HOST=higress`), the module also exports Higress's ABI
/// marker `proxy_abi_version_0_2_100`. Higress then passes a headers Pause through as
/// HeaderStopIteration, so body chunks keep reaching a plugin that holds the request headers
/// (ai-proxy). Stock Envoy needs `allow_on_headers_stop_iteration: true` in the PluginConfig instead.
#[cfg(feature = "higress")]
#[macro_export]
#[doc(hidden)]
macro_rules! __higress_abi_marker {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        pub extern "C" fn proxy_abi_version_0_2_100() {}
    };
}

/// Without the `higress` feature there is no extra marker.
#[cfg(not(feature = "higress"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __higress_abi_marker {
    () => {};
}
