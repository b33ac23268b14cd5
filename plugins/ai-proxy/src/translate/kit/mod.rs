//! The hub kit: the pieces every hub <-> backend translator needs, written once.
//!
//! The Anthropic, Bedrock and Gemini translators differ in their wire shapes, not in the way they
//! walk the hub: a conversation is split into system blocks, alternating turns and tool results
//! ([`request::split`] over a backend's [`request::Dialect`]); user content parts, assistant text
//! and tool calls are visited in the same order; sampling fields are clamped or dropped the same
//! way; and on the way back every backend builds the same hub chunks and messages
//! ([`response::ChunkHead`], [`response::Answer`]), tracks tool-call indices the same way
//! ([`response::ToolIndex`]), and maps finish reasons and usage to the same OpenAI vocabulary.
//!
//! Nothing here knows a backend's field names: those stay in `backend/<vendor>`.

#![warn(clippy::arithmetic_side_effects)]

pub mod request;
pub mod response;

#[cfg(test)]
mod tests;
