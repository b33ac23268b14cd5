//! Native translation throughput: an Anthropic SSE stream translated to OpenAI SSE, and an OpenAI
//! SSE stream translated to Anthropic SSE, fed in 4 KiB chunks. Prints MB/s of upstream bytes.
//!
//! `cargo run --release -p ai-proxy --example stream_throughput`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use ai_proxy::hub::HubEvent;
use ai_proxy::translate::client::anthropic_encode::AnthropicEncoder;
use ai_proxy::translate::client::openai::OpenAiEncoder;
use ai_proxy::translate::{backend, ClientEncoder, ResponseHead, Schema};

const DELTAS: usize = 20_000;

fn anthropic_stream() -> Vec<u8> {
    let mut s = String::from("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    for i in 0..DELTAS {
        s.push_str(&format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}\n\n"));
    }
    s.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":20000}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

fn openai_stream() -> Vec<u8> {
    let mut s = String::new();
    for i in 0..DELTAS {
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"finish_reason\":null}}]}}\n\n"));
    }
    s.push_str("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

fn measure(name: &str, input: &[u8], schema: Schema, mut encoder: Box<dyn ClientEncoder>) {
    let head = ResponseHead {
        status: 200,
        content_type: "text/event-stream".into(),
        stream: true,
        model: "m".into(),
        created: 1,
    };
    let start = Instant::now();
    let mut translator = backend(schema).response_translator(&head);
    let mut out_bytes = 0usize;
    for chunk in input.chunks(4096) {
        let mut events: Vec<HubEvent> = Vec::new();
        translator.feed(chunk, &mut events).unwrap();
        let mut out = Vec::new();
        for e in events {
            encoder.encode(e, &mut out);
        }
        out_bytes += out.len();
    }
    let mut tail = Vec::new();
    translator.finish(&mut tail).unwrap();
    let mut out = Vec::new();
    encoder.finish(None, &mut out);
    out_bytes += out.len();
    let secs = start.elapsed().as_secs_f64();
    let mb = input.len() as f64 / 1e6;
    println!(
        "{name}: {mb:.1} MB in -> {:.1} MB out in {secs:.3} s = {:.1} MB/s",
        out_bytes as f64 / 1e6,
        mb / secs
    );
}

fn main() {
    for _ in 0..2 {
        measure(
            "anthropic SSE -> openai SSE",
            &anthropic_stream(),
            Schema::Anthropic,
            Box::new(OpenAiEncoder::new(true, true)),
        );
        measure(
            "openai SSE -> anthropic SSE",
            &openai_stream(),
            Schema::OpenAi,
            Box::new(AnthropicEncoder::new(true, "m")),
        );
    }
}
