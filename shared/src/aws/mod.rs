//! AWS request signing and its building blocks, all pure (time is passed in):
//! [`sigv4`] signs a request with Signature Version 4, `sigv4_verify` (feature `sigv4-verify`, for
//! llm-sim and tests, never in a plugin) checks one, [`crc32`] and [`hmac`] are the checksums and
//! MACs they and the event-stream codec need.

pub mod crc32;
pub mod hmac;
pub mod sigv4;
#[cfg(feature = "sigv4-verify")]
pub mod sigv4_verify;
pub mod time;
pub mod uri;

pub use sigv4::{sign, Credentials, SignError, SignableRequest, SignedRequest, SigningParams};
#[cfg(feature = "sigv4-verify")]
pub use sigv4_verify::{verify, VerifyError, VerifyPolicy};
pub use time::AmzDate;
pub use uri::PathMode;
