//! Streaming codecs.
pub mod sse;
