//! llm-sim: a simulated LLM provider for tests and local runs. It speaks the wire formats an AI
//! gateway translates to — OpenAI (chat completions, streaming, embeddings, models), Anthropic
//! Messages, AWS Bedrock Converse (with event-stream framing and SigV4 checks), Google Gemini and
//! Vertex AI, Azure OpenAI — with deterministic answers derived from the request, records every
//! request for inspection, and lets each request ask for latency, slow streams, errors, resets and
//! truncated streams through `x-sim-*` headers.
//!
//! Layout: [`reply`] (with [`tools`]) derives the provider-neutral answer once; provider modules
//! ([`openai`], [`anthropic`], [`bedrock`], [`gemini`], [`azure`]) turn it into their wire format
//! and contribute rows to the [`router`] table; [`auth`] checks credentials; [`server`] owns HTTP
//! and timing. [`fleet`] is the fleet mode: N simulated vLLM-like pods with a prefix KV cache,
//! a queue and ORCA load headers, for the load balancer.

pub mod anthropic;
pub mod auth;
pub mod azure;
pub mod bedrock;
pub mod body;
pub mod conn;
pub mod fleet;
pub mod gemini;
pub mod knobs;
pub mod openai;
pub mod pacing;
pub mod plan;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod sim;
pub mod sorted;
pub mod tools;

pub use knobs::Defaults;
pub use server::{Config, Server};
