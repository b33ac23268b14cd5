//! Streaming codecs.
pub mod sse;
pub mod eventstream;
