//! Client-side wire types for the OpenAI and Anthropic APIs, plus the borrowing building blocks
//! they share.
//!
//! The request and response types here are **read-only views**: they name only the fields the
//! gateway reads and skip everything else without building values (serde ignores unknown fields
//! with `IgnoredAny`), and their strings borrow from the body unless they contain escapes
//! ([`Text`]). Nothing is re-serialised from them, so unknown fields are not kept. A plugin that
//! rewrites a body uses [`RawObject`], which keeps every top-level field as raw JSON bytes in order,
//! so fields the gateway does not understand are forwarded byte for byte.

pub mod anthropic;
pub mod openai;
mod raw;
mod text;

pub use raw::RawObject;
pub use text::{Count, Role, Text, TextContent, TextList};
