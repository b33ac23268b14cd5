//! `aigw-shared`: the one crate every AI gateway plugin builds on.
//!
//! Layers (see the repository README): a pure core (codecs, LLM views, config), a [`host::Host`]
//! trait that filters are written against, and a proxy-wasm adapter (`adapter`, wasm32 only) that
//! implements the trait over the real ABI and exports a plugin with [`export_plugin!`].

pub mod callout;
pub mod config;
pub mod consumer;
pub mod error;
pub mod host;
pub mod kv;
pub mod llm;
pub mod metrics;
pub mod plugin;
pub mod rules;
pub mod schema;
pub mod stream;
pub mod tokens;

#[cfg(any(test, feature = "mock"))]
pub mod mock;

#[cfg(target_arch = "wasm32")]
pub mod adapter;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use proxy_wasm;
}
