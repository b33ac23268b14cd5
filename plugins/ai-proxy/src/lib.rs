//! ai-proxy: one OpenAI-compatible (and Anthropic-compatible) front door to many LLM providers.
//!
//! OpenAI Chat Completions is the hub ([`hub`]): cross-protocol traffic is translated client ->
//! hub -> backend and back ([`translate`]); same-protocol traffic only has `model`, path and
//! credentials rewritten. The proxy-wasm entry point is the one `export_plugin!` line below.

pub mod hub;
pub mod translate;

// The `aigw_shared::export_plugin!(Proxy)` line arrives with the filter.

/// The plugin (filled in below as the filter lands).
pub struct Proxy;
