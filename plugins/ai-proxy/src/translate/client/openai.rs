//! Hub events -> OpenAI client bytes: `chat.completion` JSON, or `chat.completion.chunk` SSE ending
//! with `data: [DONE]`. The final usage chunk is sent only when the client asked for it
//! (`stream_options.include_usage`); usage is otherwise stripped from chunks, as OpenAI does.

use std::io::Write;

use aigw_shared::error::{ClientError, ClientProtocol};

use crate::hub::{ChatChunk, HubEvent};
use crate::translate::ClientEncoder;

/// Append `s` as a JSON string (serde_json's escaping).
fn json_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

/// The common chunk of a stream — one choice whose delta is only text, nothing extra — written
/// directly, byte for byte what serde writes for it, without serde's map-mode serialisation
/// (the hub types carry flattened extras). `false`: not such a chunk; nothing was written.
fn write_text_chunk(chunk: &ChatChunk, out: &mut Vec<u8>) -> bool {
    let [choice] = chunk.choices.as_slice() else {
        return false;
    };
    let d = &choice.delta;
    let simple = chunk.usage.is_none()
        && chunk.extra.is_empty()
        && choice.extra.is_empty()
        && d.extra.is_empty()
        && d.role.is_none()
        && d.reasoning_content.is_none()
        && d.tool_calls.is_none();
    let Some(content) = d.content.as_deref().filter(|_| simple) else {
        return false;
    };
    out.extend_from_slice(b"data: {\"id\":");
    json_str(out, &chunk.id);
    out.extend_from_slice(b",\"object\":");
    json_str(out, &chunk.object);
    out.extend_from_slice(b",\"created\":");
    let _ = write!(out, "{}", chunk.created);
    out.extend_from_slice(b",\"model\":");
    json_str(out, &chunk.model);
    out.extend_from_slice(b",\"choices\":[{\"index\":");
    let _ = write!(out, "{}", choice.index);
    out.extend_from_slice(b",\"delta\":{\"content\":");
    json_str(out, content);
    out.extend_from_slice(b"},\"finish_reason\":");
    match &choice.finish_reason {
        Some(r) => json_str(out, r),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}]}\n\n");
    true
}

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
                if self.stream && write_text_chunk(&chunk, out) {
                    self.wrote = true;
                    return;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{ChunkChoice, Delta};

    fn chunk(content: &str, finish: Option<&str>) -> ChatChunk {
        ChatChunk {
            id: "msg_\"1\"".into(),
            object: "chat.completion.chunk".into(),
            created: 1_700_000_000,
            model: "claude-\u{e9}".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    content: Some(content.into()),
                    ..Delta::default()
                },
                finish_reason: finish.map(str::to_owned),
                ..ChunkChoice::default()
            }],
            ..ChatChunk::default()
        }
    }

    #[test]
    fn a_text_chunk_written_directly_is_byte_for_byte_what_serde_writes() {
        for (text, finish) in [
            ("Hello", None),
            ("line\nbreak \"quoted\" \\ tab\t \u{1} \u{1F600}", None),
            ("", Some("stop")),
        ] {
            let c = chunk(text, finish);
            let mut direct = Vec::new();
            assert!(write_text_chunk(&c, &mut direct));
            let mut serde = b"data: ".to_vec();
            serde_json::to_writer(&mut serde, &c).unwrap();
            serde.extend_from_slice(b"\n\n");
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }

    #[test]
    fn other_chunks_go_through_serde() {
        let mut c = chunk("x", None);
        c.choices[0].delta.role = Some("assistant".into());
        assert!(!write_text_chunk(&c, &mut Vec::new()));
        let mut two = chunk("x", None);
        two.choices.push(two.choices[0].clone());
        assert!(!write_text_chunk(&two, &mut Vec::new()));
    }
}
