//! The client side of the hub: client requests -> hub requests, and hub events -> client bytes.
//!
//! OpenAI clients already speak the hub, so only their response encoder lives here
//! ([`openai`]); Anthropic clients have a request decoder ([`anthropic`]) and a response encoder
//! ([`anthropic_encode`]); OpenAI Responses API clients have both in [`responses`].

#![warn(clippy::arithmetic_side_effects)]

pub mod anthropic;
pub mod anthropic_encode;
pub mod openai;
pub mod responses;
