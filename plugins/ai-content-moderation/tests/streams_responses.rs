//! OpenAI Responses API event streams through [`StreamFix::responses`], with the recorded samples
//! (`testdata/providers/openai-responses-stream*.sse`) re-split at every byte and streams built
//! in the same shape: the client gets the same text when nothing matches (every copy of it in
//! the `…done` events and the final response agrees with the deltas, sequence numbers stay
//! consecutive), placeholders split across deltas are restored everywhere, and an output rule
//! cuts the answer with `response.incomplete` (`content_filter`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use ai_content_moderation::detect::Kind;
use ai_content_moderation::stream::StreamFix;
use ai_content_moderation::vault::Vault;
use ai_content_moderation::Config;
use aigw_shared::stream::sse::SseDecoder;
use serde_json::{json, Value};

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run(config: &Config, vault: Option<&Vault>, chunks: &[&[u8]]) -> Vec<u8> {
    let mut fix = StreamFix::responses();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        out.extend(fix.feed(config, vault, c, i + 1 == chunks.len()));
    }
    out
}

/// The events of a stream, as JSON (each must be JSON, and named after its type).
fn events(bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut d = SseDecoder::new();
    d.feed(bytes, |e| {
        let v: Value = serde_json::from_str(e.data.trim()).expect("JSON event");
        if let Some(name) = e.event {
            assert_eq!(Some(name), v["type"].as_str(), "event name is its type");
        }
        out.push(v);
    })
    .unwrap();
    out
}

/// What a client reads: the text deltas joined, the function arguments deltas joined, every
/// `…done` / item / final copy of the text and arguments, and the final status.
#[derive(Debug, Default, PartialEq)]
struct Client {
    text: String,
    args: String,
    done_texts: Vec<String>,
    final_status: Option<String>,
    incomplete_reason: Option<String>,
}

fn client(bytes: &[u8]) -> Client {
    let evs = events(bytes);
    let mut c = Client::default();
    for (i, v) in evs.iter().enumerate() {
        assert_eq!(
            v["sequence_number"].as_u64(),
            Some(i as u64),
            "consecutive: {v}"
        );
        match v["type"].as_str().unwrap() {
            "response.output_text.delta" => c.text.push_str(v["delta"].as_str().unwrap()),
            "response.function_call_arguments.delta" => {
                c.args.push_str(v["delta"].as_str().unwrap())
            }
            "response.output_text.done" => c.done_texts.push(v["text"].as_str().unwrap().into()),
            "response.function_call_arguments.done" => {
                c.done_texts.push(v["arguments"].as_str().unwrap().into())
            }
            "response.content_part.done" => c
                .done_texts
                .push(v["part"]["text"].as_str().unwrap().into()),
            "response.output_item.done" => item_texts(&v["item"], &mut c.done_texts),
            "response.completed" | "response.incomplete" | "response.failed" => {
                for item in v["response"]["output"].as_array().unwrap() {
                    item_texts(item, &mut c.done_texts);
                }
                c.final_status = v["response"]["status"].as_str().map(str::to_owned);
                c.incomplete_reason = v["response"]["incomplete_details"]["reason"]
                    .as_str()
                    .map(str::to_owned);
            }
            _ => {}
        }
    }
    c
}

fn item_texts(item: &Value, out: &mut Vec<String>) {
    match item["type"].as_str() {
        Some("message") => {
            for part in item["content"].as_array().unwrap() {
                out.push(part["text"].as_str().unwrap().into());
            }
        }
        Some("function_call") => out.push(item["arguments"].as_str().unwrap().into()),
        _ => {}
    }
}

fn rules(extra: Value) -> Config {
    let mut raw = json!({"output": {
        "denyWords": [{"name": "never", "words": ["zzyzx-not-in-any-sample"]}],
        "holdBackChars": 16
    }});
    if let (Some(o), Some(e)) = (raw["output"].as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    Config::build(&raw).unwrap()
}

#[test]
fn recorded_streams_pass_with_the_same_text_everywhere_split_at_every_byte() {
    let config = rules(json!({}));
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "x@y.io", b"");
    for name in [
        "openai-responses-stream.sse",
        "openai-responses-stream-functioncall.sse",
    ] {
        let bytes = sample(name);
        let original = client(&bytes);
        assert!(
            !original.text.is_empty() || !original.args.is_empty(),
            "{name}"
        );
        // Every fifth byte boundary (each run re-reads the whole stream twice: all of them
        // take half a minute in a debug build for no more coverage of the event boundaries).
        for cut in (1..bytes.len()).step_by(5) {
            let (a, b) = bytes.split_at(cut);
            let got = client(&run(&config, Some(&vault), &[a, b]));
            assert_eq!(got, original, "{name} cut at {cut}");
        }
        // The answer held back (16 characters) comes out whole by the part's `done`.
        let whole = client(&run(&config, None, &[&bytes]));
        assert_eq!(whole, original, "{name} whole");
    }
}

/// A Responses stream in the recorded sample's shape saying `deltas` (one message part).
fn text_stream(deltas: &[&str]) -> Vec<u8> {
    let full: String = deltas.concat();
    let mut evs = vec![
        json!({"type": "response.created", "response": {"id": "resp_1", "object": "response",
               "created_at": 1, "status": "in_progress", "model": "gpt-5", "output": [], "usage": null}}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}}),
        json!({"type": "response.content_part.added", "item_id": "msg_1", "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "annotations": [], "text": ""}}),
    ];
    for d in deltas {
        evs.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
                        "content_index": 0, "delta": d, "logprobs": []}),
        );
    }
    let item = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "annotations": [], "text": full}]});
    evs.push(
        json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0,
                    "content_index": 0, "text": full, "logprobs": []}),
    );
    evs.push(json!({"type": "response.content_part.done", "item_id": "msg_1", "output_index": 0,
                    "content_index": 0, "part": {"type": "output_text", "annotations": [], "text": full}}));
    evs.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    evs.push(
        json!({"type": "response.completed", "response": {"id": "resp_1", "object": "response",
                    "created_at": 1, "status": "completed", "model": "gpt-5", "output": [item],
                    "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}}}),
    );
    let mut out = Vec::new();
    for (i, mut v) in evs.into_iter().enumerate() {
        v["sequence_number"] = json!(i);
        let name = v["type"].as_str().unwrap().to_owned();
        out.extend_from_slice(format!("event: {name}\ndata: {v}\n\n").as_bytes());
    }
    out
}

#[test]
fn placeholders_split_across_deltas_are_restored_in_every_copy_of_the_text() {
    let config = Config::build(&json!({})).unwrap();
    let mut vault = Vault::default();
    vault.placeholder(Kind::Email, "ann@corp.example", b"");
    let bytes = text_stream(&["Write to [EMA", "IL_1", "] today."]);
    let want = "Write to ann@corp.example today.";
    for step in [1, 7, bytes.len()] {
        let chunks: Vec<&[u8]> = bytes.chunks(step).collect();
        let c = client(&run(&config, Some(&vault), &chunks));
        assert_eq!(c.text, want, "step {step}");
        assert_eq!(
            c.done_texts,
            vec![want; 4],
            "done, part, item and final: step {step}"
        );
        assert_eq!(c.final_status.as_deref(), Some("completed"));
    }
}

#[test]
fn an_output_rule_ends_the_response_incomplete_for_content_filter() {
    let config = Config::build(&json!({"output": {
        "denyWords": [{"name": "secret", "words": ["project titan"]}],
        "holdBackChars": 32,
        "safeMessage": "[removed]"
    }}))
    .unwrap();
    let bytes = text_stream(&[
        "The plan is ",
        "called Project ",
        "Titan and it ",
        "ships soon.",
    ]);
    for step in [1, 5, bytes.len()] {
        let chunks: Vec<&[u8]> = bytes.chunks(step).collect();
        let out = run(&config, None, &chunks);
        let c = client(&out);
        assert!(
            !c.text.to_lowercase().contains("titan"),
            "step {step}: {}",
            c.text
        );
        assert!(c.text.ends_with("[removed]"), "step {step}: {}", c.text);
        assert_eq!(c.final_status.as_deref(), Some("incomplete"));
        assert_eq!(c.incomplete_reason.as_deref(), Some("content_filter"));
        // Every copy of the text is what the deltas said; nothing after the end.
        assert!(
            c.done_texts.iter().all(|t| *t == c.text),
            "{:?}",
            c.done_texts
        );
        let last = events(&out).pop().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(
            last["response"]["id"], "resp_1",
            "the upstream's response id kept"
        );
    }
}

#[test]
fn pii_in_answers_is_masked_in_the_deltas_and_the_final_response() {
    let config = Config::build(&json!({"output": {"pii": {"email": "mask"}}})).unwrap();
    let bytes = text_stream(&["Mail bob@", "example.org now"]);
    let c = client(&run(&config, None, &[&bytes]));
    assert_eq!(c.text, "Mail [EMAIL] now");
    assert_eq!(c.done_texts, vec!["Mail [EMAIL] now"; 4]);
}
