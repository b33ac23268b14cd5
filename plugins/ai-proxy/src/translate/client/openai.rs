//! Hub events -> OpenAI client bytes: `chat.completion` JSON, or `chat.completion.chunk` SSE ending
//! with `data: [DONE]`. The final usage chunk is sent only when the client asked for it
//! (`stream_options.include_usage`); usage is otherwise stripped from chunks, as OpenAI does.

use aigw_shared::error::{ClientError, ClientProtocol};

use crate::hub::HubEvent;
use crate::translate::ClientEncoder;

/// Encoder for an OpenAI client.
#[derive(Debug)]
pub struct OpenAiEncoder {
    stream: bool,
    include_usage: bool,
    failed: bool,
    wrote: bool,
}

impl OpenAiEncoder {
    /// An encoder for a streaming (`stream`) or JSON client.
    pub fn new(stream: bool, include_usage: bool) -> Self {
        Self {
            stream,
            include_usage,
            failed: false,
            wrote: false,
        }
    }

    fn write_json<T: serde::Serialize>(&mut self, value: &T, out: &mut Vec<u8>) {
        if self.stream {
            out.extend_from_slice(b"data: ");
        }
        if serde_json::to_writer(&mut *out, value).is_err() {
            out.extend_from_slice(b"{}");
        }
        if self.stream {
            out.extend_from_slice(b"\n\n");
        }
        self.wrote = true;
    }

    fn write_error(&mut self, error: &ClientError, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        self.failed = true;
        if self.stream {
            out.extend_from_slice(&error.to_sse_event(ClientProtocol::OpenAi));
        } else if !self.wrote {
            out.extend_from_slice(&error.body(ClientProtocol::OpenAi));
        }
        self.wrote = true;
    }
}

impl ClientEncoder for OpenAiEncoder {
    fn content_type(&self) -> &'static str {
        if self.stream {
            "text/event-stream"
        } else {
            "application/json"
        }
    }

    fn encode(&mut self, event: HubEvent, out: &mut Vec<u8>) {
        if self.failed {
            return;
        }
        match event {
            HubEvent::Chunk(mut chunk) => {
                if !self.include_usage {
                    if chunk.choices.is_empty() {
                        return;
                    }
                    chunk.usage = None;
                }
                self.write_json(&chunk, out);
            }
            HubEvent::Response(resp) => self.write_json(&resp, out),
            HubEvent::Error(e) => self.write_error(&e, out),
        }
    }

    fn finish(&mut self, error: Option<ClientError>, out: &mut Vec<u8>) {
        if let Some(e) = error {
            self.write_error(&e, out);
        }
        if self.stream && !self.failed {
            out.extend_from_slice(b"data: [DONE]\n\n");
        }
    }
}
