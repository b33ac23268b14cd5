//! OpenAI-schema backend: hub request -> OpenAI body, OpenAI JSON/SSE -> hub events.

use super::{Backend, BuildContext, ResponseHead, ResponseTranslator, TranslateError};
use crate::hub::{ChatRequest, HubEvent};

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
        serde_json::to_vec(&req).map_err(|e| TranslateError::malformed(e.to_string()))
    }

    fn response_translator(&self, _head: &ResponseHead) -> Box<dyn ResponseTranslator> {
        Box::new(Pending)
    }
}

struct Pending;

impl ResponseTranslator for Pending {
    fn feed(&mut self, _chunk: &[u8], _out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut Vec<HubEvent>) -> Result<(), TranslateError> {
        Ok(())
    }
}
