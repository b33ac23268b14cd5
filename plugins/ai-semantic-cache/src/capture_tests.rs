use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../testdata/providers/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(api: Api, format: ResponseFormat, body: &[u8], split: usize) -> Result<Entry, &'static str> {
    let mut c = Capture::new(api, format, 1 << 16);
    for chunk in body.chunks(split.max(1)) {
        c.feed(chunk, 1_000_000_000);
    }
    c.finish(2_000_000_000, 7)
}

#[test]
fn a_real_openai_answer_is_stored_with_its_usage() {
    let e = run(
        Api::ChatCompletions,
        ResponseFormat::Json,
        &fixture("openai-chat.response.json"),
        1 << 20,
    )
    .unwrap();
    assert!(!e.text.is_empty() && !e.estimated);
    assert!(e.output_tokens > 0 && e.input_tokens > 0);
    assert_eq!(e.at, 2);
}

#[test]
fn real_streams_re_split_at_every_byte_give_the_same_entry() {
    for (api, name) in [
        (Api::ChatCompletions, "openai-chat-stream.sse"),
        (Api::AnthropicMessages, "anthropic-messages-stream.sse"),
    ] {
        let body = fixture(name);
        let whole = run(api, ResponseFormat::Sse, &body, body.len())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for split in [1, 2, 3, 7, 64] {
            assert_eq!(
                run(api, ResponseFormat::Sse, &body, split).as_ref(),
                Ok(&whole),
                "{name} by {split}"
            );
        }
    }
}

#[test]
fn a_stream_without_usage_is_stored_with_estimates_marked() {
    let e = run(
        Api::ChatCompletions,
        ResponseFormat::Sse,
        &fixture("openai-chat-stream.sse"),
        5,
    )
    .unwrap();
    assert!(e.estimated);
    assert_eq!(e.input_tokens, 7, "the request's estimate");
}

#[test]
fn a_stream_that_ran_out_of_tokens_is_not_stored() {
    // A real gpt-5-nano stream that stopped at max_completion_tokens (`finish_reason: length`).
    let body = fixture("openai-chat-stream-usage.sse");
    for split in [1, 5, 1 << 20] {
        assert_eq!(
            run(Api::ChatCompletions, ResponseFormat::Sse, &body, split),
            Err("the answer did not finish normally")
        );
    }
}

#[test]
fn a_cut_stream_is_not_stored() {
    let body = fixture("openai-chat-stream.sse");
    let text = String::from_utf8(body).unwrap();
    let cut = text.find("[DONE]").unwrap();
    let head = text.get(..cut.saturating_sub(40)).unwrap();
    assert!(run(
        Api::ChatCompletions,
        ResponseFormat::Sse,
        head.as_bytes(),
        9
    )
    .is_err());
    let anthropic = String::from_utf8(fixture("anthropic-messages-stream.sse")).unwrap();
    let stop = anthropic.find("message_stop").unwrap();
    let head = anthropic.get(..stop).unwrap();
    assert!(run(
        Api::AnthropicMessages,
        ResponseFormat::Sse,
        head.as_bytes(),
        9
    )
    .is_err());
}

#[test]
fn tool_calls_errors_and_length_cuts_are_not_stored() {
    assert_eq!(
        run(
            Api::ChatCompletions,
            ResponseFormat::Json,
            &fixture("openai-chat-tools.response.json"),
            1 << 20
        ),
        Err("the answer calls tools")
    );
    assert!(run(
        Api::ChatCompletions,
        ResponseFormat::Json,
        &fixture("openai-chat-error-400.response.json"),
        1 << 20
    )
    .is_err());
    let length = br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"half"},"finish_reason":"length"}]}"#;
    assert_eq!(
        run(Api::ChatCompletions, ResponseFormat::Json, length, 1 << 20),
        Err("the answer did not finish normally")
    );
}

#[test]
fn an_answer_over_the_limit_is_not_stored() {
    let mut c = Capture::new(Api::ChatCompletions, ResponseFormat::Json, 3);
    c.feed(&fixture("openai-chat.response.json"), 1);
    assert_eq!(
        c.finish(2, 0),
        Err("the answer is larger than maxAnswerBytes")
    );
}

#[test]
fn a_stream_is_complete_once_its_end_marker_passed() {
    let body = fixture("openai-chat-stream.sse");
    let text = String::from_utf8(body).unwrap();
    let done = text.find("data: [DONE]").unwrap();
    let mut c = Capture::new(Api::ChatCompletions, ResponseFormat::Sse, 1 << 16);
    c.feed(text.get(..done).unwrap().as_bytes(), 1);
    assert!(!c.complete());
    c.feed(text.get(done..).unwrap().as_bytes(), 1);
    assert!(c.complete());
    let json = Capture::new(Api::ChatCompletions, ResponseFormat::Json, 1 << 16);
    assert!(!json.complete(), "a JSON answer is whole only at its end");
}
