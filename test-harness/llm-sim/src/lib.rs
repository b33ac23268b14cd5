//! llm-sim: a simulated LLM provider for tests and local runs. It speaks the OpenAI API (chat
//! completions, streaming, embeddings, models) with deterministic answers derived from the request,
//! records every request for inspection, and lets each request ask for latency, slow streams,
//! errors, resets and truncated streams through `x-sim-*` headers.
//!
//! Layout: [`reply`] derives the provider-neutral answer once; provider modules ([`openai`]) turn it
//! into their wire format and contribute rows to the [`router`] table; [`server`] owns HTTP and timing.

pub mod body;
pub mod conn;
pub mod knobs;
pub mod openai;
pub mod pacing;
pub mod plan;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod sim;

pub use knobs::Defaults;
pub use server::{Config, Server};
