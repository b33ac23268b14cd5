//! Streaming codecs.
pub mod eventstream;
pub mod sse;
