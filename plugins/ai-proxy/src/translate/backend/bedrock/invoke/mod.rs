//! Bedrock InvokeModel for Anthropic Claude: `POST /model/{modelId}/invoke` and
//! `/invoke-with-response-stream`, whose body is the Anthropic Messages request without `model`
//! and `stream` (both are in the path) and with `anthropic_version: "bedrock-2023-05-31"`.
//!
//! Responses: the JSON answer is an Anthropic `message` (decoded by the Anthropic backend); the
//! stream is an `application/vnd.amazon.eventstream` of `chunk` events whose JSON payload
//! `{"bytes": base64(<Anthropic stream event JSON>)}` carries one Anthropic SSE event each. Those
//! events are handed, as SSE `data:` lines, to the Anthropic stream translator, so both backends
//! share one Anthropic decoder. Exception frames end the stream with their error.

use aigw_shared::stream::eventstream::{EventStreamDecoder, Frame, MessageKind};
use serde_json::Value;

use super::base64;
use super::response::exception_to_error;
use super::EVENT_STREAM;
use crate::hub::{ChatRequest, HubEvent};
use crate::translate::backend::anthropic::stream::AnthropicSseToHub;
use crate::translate::backend::anthropic::{to_anthropic, AnthropicBackend};
use crate::translate::{Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError};

/// The `anthropic_version` Bedrock requires in InvokeModel bodies.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// The InvokeModel (Anthropic Messages) backend schema.
pub struct InvokeBackend;

impl Backend for InvokeBackend {
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError> {
        let mut body = to_anthropic(req, ctx)?;
        if let Value::Object(map) = &mut body {
            map.remove("model");
            map.remove("stream");
            map.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
        }
        serde_json::to_vec(&body).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        if head.content_type.starts_with(EVENT_STREAM) {
            Box::new(InvokeStreamToHub::new(head))
        } else {
            // A JSON `message`, exactly as the Anthropic API answers.
            let json = ResponseHead {
                content_type: "application/json".into(),
                ..head.clone()
            };
            AnthropicBackend.response_translator(&json)
        }
    }
}

/// InvokeModelWithResponseStream -> hub chunks, for any split of the upstream body.
pub struct InvokeStreamToHub {
    decoder: EventStreamDecoder,
    inner: AnthropicSseToHub,
    /// An exception ended the stream.
    failed: bool,
}

impl InvokeStreamToHub {
    /// A translator for one response.
    pub fn new(head: &ResponseHead) -> Self {
        Self {
            decoder: EventStreamDecoder::new(),
            inner: AnthropicSseToHub::new(head),
            failed: false,
        }
    }

    fn on_frame(&mut self, frame: &Frame, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let msg = &frame.message;
        match msg.kind() {
            MessageKind::Event("chunk") => {
                let sse = chunk_to_sse(&msg.payload)?;
                self.inner.feed(&sse, out)
            }
            MessageKind::Event(_) | MessageKind::Other(_) => Ok(()),
            MessageKind::Exception(kind) => {
                out.push(HubEvent::Error(exception_to_error(kind, &msg.payload)));
                self.failed = true;
                Ok(())
            }
            MessageKind::Error { code, message } => {
                let body = serde_json::json!({ "message": message }).to_string();
                out.push(HubEvent::Error(exception_to_error(code, body.as_bytes())));
                self.failed = true;
                Ok(())
            }
        }
    }
}

/// One `chunk` payload -> the SSE event it carries (`data:` lines and a blank line).
pub fn chunk_to_sse(payload: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| TranslateError::Upstream(format!("bad chunk payload: {e}")))?;
    let b64 = v
        .get("bytes")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::Upstream("chunk payload without `bytes`".into()))?;
    let event =
        base64::decode(b64).map_err(|e| TranslateError::Upstream(format!("chunk `bytes`: {e}")))?;
    let mut sse = Vec::with_capacity(event.len().saturating_add(16));
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        sse.extend_from_slice(b"data: ");
        sse.extend_from_slice(line);
        sse.push(b'\n');
    }
    sse.push(b'\n');
    Ok(sse)
}

impl ResponseTranslator for InvokeStreamToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        if self.failed {
            return Ok(());
        }
        let mut frames = Vec::new();
        let decoded = self.decoder.feed(chunk, |f| frames.push(f));
        for frame in &frames {
            if self.failed {
                return Ok(());
            }
            self.on_frame(frame, out)?;
        }
        if self.failed {
            return Ok(());
        }
        decoded.map_err(|e| TranslateError::Upstream(e.to_string()))
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        if self.failed {
            return Ok(());
        }
        self.decoder
            .finish()
            .map_err(|e| TranslateError::Upstream(e.to_string()))?;
        self.inner.finish(out)
    }

    fn complete(&self) -> bool {
        self.failed || self.inner.complete()
    }
}

#[cfg(test)]
mod tests;
