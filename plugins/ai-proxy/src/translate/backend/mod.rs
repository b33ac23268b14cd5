//! The backend side of the hub: one module per backend schema, each a [`Backend`] that encodes a
//! hub request as the backend's body and decodes the backend's answer into hub events.
//!
//! [`openai`] is the identity (OpenAI-compatible backends speak the hub); [`anthropic`] speaks
//! Anthropic Messages; [`bedrock`] speaks Converse (and, in [`bedrock::invoke`], InvokeModel with
//! the Anthropic body); [`gemini`] speaks `generateContent` for the Gemini API and Vertex AI.
//!
//! [`Backend`]: super::Backend

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
