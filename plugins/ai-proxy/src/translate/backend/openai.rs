//! OpenAI-schema backend: hub request -> OpenAI body, OpenAI JSON/SSE -> hub events.
//!
//! Used when the client speaks another protocol (Anthropic) and the backend speaks OpenAI; an
//! OpenAI client to an OpenAI backend goes through [`crate::translate::passthrough`] instead.

use aigw_shared::stream::sse::{SseDecoder, SseEnd};

use crate::hub::{ChatChunk, ChatRequest, ChatResponse, HubEvent, StreamOptions};
use crate::translate::{
    errors, Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError,
};

/// The largest non-streaming response body translated (16 MiB).
pub const MAX_JSON_BYTES: usize = 16 << 20;

/// The OpenAI Chat Completions backend schema.
pub struct OpenAiBackend;

impl Backend for OpenAiBackend {
    fn encode_request(
        &self,
        req: &ChatRequest,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Vec<u8>, TranslateError> {
        let mut req = req.clone();
        req.model = ctx.model.to_owned();
        if req.is_stream() {
            // The client's protocol reports usage at the end of every stream; ask for it.
            let opts = req
                .stream_options
                .get_or_insert_with(StreamOptions::default);
            opts.include_usage = Some(true);
        }
        serde_json::to_vec(&req).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        if head.is_sse() {
            Box::new(SseToHub::default())
        } else {
            Box::new(JsonToHub::default())
        }
    }
}

/// OpenAI SSE chunks -> hub chunks.
#[derive(Default)]
pub struct SseToHub {
    decoder: SseDecoder,
    done: bool,
    finished_choice: bool,
}

impl ResponseTranslator for SseToHub {
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        let mut failure = None;
        let (done, finished) = (&mut self.done, &mut self.finished_choice);
        self.decoder
            .feed(chunk, |ev| {
                if failure.is_none() && !*done {
                    failure = on_chunk(ev.data, done, finished, out).err();
                }
            })
            .map_err(|e| TranslateError::Upstream(e.to_string()))?;
        failure.map_or(Ok(()), Err)
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        // A last event without its blank line is still used when it is complete JSON.
        if let SseEnd::Truncated { event: Some(ev) } = self.decoder.finish() {
            if !self.done {
                on_chunk(&ev.data, &mut self.done, &mut self.finished_choice, out)
                    .map_err(|_| truncated())?;
            }
        }
        if self.done || self.finished_choice {
            Ok(())
        } else {
            Err(TranslateError::Upstream(
                "the upstream stream ended before it was complete".into(),
            ))
        }
    }

    fn complete(&self) -> bool {
        self.done
    }
}

/// One OpenAI stream event: `[DONE]`, an error object, or a chunk.
fn on_chunk(
    data: &str,
    done: &mut bool,
    finished: &mut bool,
    out: &mut Vec<HubEvent>,
) -> Result<(), TranslateError> {
    let data = data.trim();
    if data == "[DONE]" {
        *done = true;
        return Ok(());
    }
    let c: ChatChunk = serde_json::from_str(data)
        .map_err(|e| TranslateError::Upstream(format!("bad stream chunk: {e}")))?;
    if let Some(err) = c.extra.get("error") {
        let wrapped = serde_json::json!({ "error": err });
        out.push(HubEvent::Error(errors::from_stream_event(&wrapped)));
        *done = true;
        return Ok(());
    }
    *finished |= c.choices.iter().any(|ch| ch.finish_reason.is_some());
    out.push(HubEvent::Chunk(c));
    Ok(())
}

/// A whole OpenAI JSON response -> one hub response.
#[derive(Default)]
pub struct JsonToHub {
    body: Vec<u8>,
    overflow: bool,
}

impl JsonToHub {
    /// The body collected so far.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }
}

impl ResponseTranslator for JsonToHub {
    fn feed(&mut self, chunk: &[u8], _out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        if self.body.len() + chunk.len() > MAX_JSON_BYTES {
            self.overflow = true;
            return Err(TranslateError::Upstream(format!(
                "response body larger than {MAX_JSON_BYTES} bytes"
            )));
        }
        self.body.extend_from_slice(chunk);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        if self.overflow {
            return Err(TranslateError::Upstream("response body too large".into()));
        }
        let resp: ChatResponse = serde_json::from_slice(&self.body)
            .map_err(|e| TranslateError::Upstream(format!("bad JSON response: {e}")))?;
        if let Some(err) = resp.extra.get("error") {
            let wrapped = serde_json::json!({ "error": err });
            out.push(HubEvent::Error(errors::from_stream_event(&wrapped)));
        } else {
            out.push(HubEvent::Response(resp));
        }
        Ok(())
    }
}

fn truncated() -> TranslateError {
    TranslateError::Upstream("the upstream stream ended in the middle of an event".into())
}
