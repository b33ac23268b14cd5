//! The request view over every real request sample, and its errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::error::ClientProtocol;
use aigw_shared::llm::{Api, RequestError, RequestView};
use aigw_shared::schema::Role;

fn read(name: &str) -> Vec<u8> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/providers")
        .join(name);
    std::fs::read(path).unwrap()
}

/// The API each client-format request sample was sent to (from the README's "Call:" lines).
fn api_for_request(name: &str) -> Option<Api> {
    if name.starts_with("openai-chat")
        || name.starts_with("azure-openai-chat")
        || name.starts_with("vllm-openai-chat")
        || name.starts_with("ollama-openai-chat")
    {
        Some(Api::ChatCompletions)
    } else if name.starts_with("openai-embeddings") {
        Some(Api::Embeddings)
    } else if name.starts_with("anthropic-messages") {
        Some(Api::AnthropicMessages)
    } else {
        None
    }
}

#[test]
fn every_client_request_sample_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(api) = name
            .strip_suffix(".request.json")
            .and(api_for_request(&name))
        else {
            continue;
        };
        let bytes = read(&name);
        let view = RequestView::parse(api, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!view.model_str().is_empty(), "{name}: model");
        let has_input =
            !view.messages.is_empty() || !view.inputs.is_empty() || view.input_token_ids > 0;
        assert!(has_input, "{name}: some input");
        assert!(
            view.model.as_ref().unwrap().is_borrowed(),
            "{name}: model borrows from the body"
        );
        seen += 1;
    }
    assert!(seen >= 14, "only {seen} samples");
}

#[test]
fn openai_stream_request_reads_developer_role_stream_usage_and_completion_cap() {
    let bytes = read("openai-chat-stream-usage.request.json");
    let v = RequestView::parse(Api::ChatCompletions, &bytes).unwrap();
    assert_eq!(v.protocol, ClientProtocol::OpenAi);
    assert_eq!(v.model_str(), "gpt-5-nano");
    assert!(v.stream && v.include_usage);
    assert_eq!(v.max_tokens, Some(100));
    assert_eq!(
        v.texts_by_role(Role::Developer).collect::<Vec<_>>(),
        ["Hello, I'm a developer!"]
    );
    assert_eq!(v.last_user_text(), None);
}

#[test]
fn openai_plain_request_has_no_stream_and_one_user_message() {
    let bytes = read("openai-chat.request.json");
    let v = RequestView::parse(Api::ChatCompletions, &bytes).unwrap();
    assert!(!v.stream && !v.include_usage);
    assert_eq!(v.max_tokens, None);
    assert_eq!(v.last_user_text().as_deref(), Some("Hello!"));
    let est = v.estimate_input_tokens();
    assert!(est.estimated);
    assert_eq!(est.tokens, 2 + 4, "two words plus per-message framing");
}

#[test]
fn null_content_and_a_zero_cap_are_read_as_they_are() {
    let bytes = read("openai-chat-error-400.request.json");
    let v = RequestView::parse(Api::ChatCompletions, &bytes).unwrap();
    assert_eq!(v.max_tokens, Some(0));
    assert_eq!(v.messages.len(), 1);
    assert!(v.messages[0].content.parts.is_empty());
}

#[test]
fn vllm_request_reads_max_tokens() {
    let bytes = read("vllm-openai-chat.request.json");
    let v = RequestView::parse(Api::ChatCompletions, &bytes).unwrap();
    assert_eq!((v.model_str(), v.max_tokens), ("Hunyuan", Some(100)));
}

#[test]
fn anthropic_request_reads_texts_and_tool_results_but_not_tool_inputs() {
    let bytes = read("anthropic-messages-toolresult.request.json");
    let v = RequestView::parse(Api::AnthropicMessages, &bytes).unwrap();
    assert_eq!(v.protocol, ClientProtocol::Anthropic);
    assert_eq!(v.max_tokens, Some(1024));
    assert!(!v.stream);
    let roles: Vec<Role> = v.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
    assert!(
        v.messages[1].content.parts.is_empty(),
        "tool_use input is not text"
    );
    assert_eq!(
        v.last_user_text().as_deref(),
        Some("RuntimeError('Unexpected error, try again')")
    );
}

#[test]
fn anthropic_stream_request_reads_the_stream_flag() {
    let bytes = read("anthropic-messages-stream-tooluse.request.json");
    let v = RequestView::parse(Api::AnthropicMessages, &bytes).unwrap();
    assert!(v.stream);
    assert!(!v.include_usage);
}

#[test]
fn anthropic_system_string_and_blocks_become_a_leading_system_message() {
    for body in [
        &br#"{"model":"m","max_tokens":5,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#[..],
        br#"{"model":"m","max_tokens":5,"system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
    ] {
        let v = RequestView::parse(Api::AnthropicMessages, body).unwrap();
        assert_eq!(v.messages[0].role, Role::System);
        assert_eq!(v.texts_by_role(Role::System).collect::<Vec<_>>(), ["Be brief."]);
        assert_eq!(v.last_user_text().as_deref(), Some("hi"));
    }
}

#[test]
fn embeddings_inputs_are_strings_or_counted_token_ids() {
    let bytes = read("openai-embeddings.request.json");
    let v = RequestView::parse(Api::Embeddings, &bytes).unwrap();
    assert_eq!(
        v.inputs.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        ["How do I reset my password?"]
    );
    let bytes = read("openai-embeddings-error-400.request.json");
    let v = RequestView::parse(Api::Embeddings, &bytes).unwrap();
    assert!(v.inputs.is_empty());
    assert_eq!(v.input_token_ids, 1);
}

#[test]
fn completions_prompts_and_options_are_read() {
    let body = br#"{"model":"m","prompt":["a b","c"],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}"#;
    let v = RequestView::parse(Api::Completions, body).unwrap();
    assert_eq!(v.inputs.len(), 2);
    assert!(v.stream && v.include_usage);
    assert_eq!(v.max_tokens, Some(7));
}

#[test]
fn escaped_strings_are_unescaped_copies() {
    let body =
        br#"{"model":"gpt\u002d4","messages":[{"role":"user","content":"line\nnext \"q\""}]}"#;
    let v = RequestView::parse(Api::ChatCompletions, body).unwrap();
    assert_eq!(v.model_str(), "gpt-4");
    assert!(!v.model.as_ref().unwrap().is_borrowed());
    assert_eq!(v.last_user_text().as_deref(), Some("line\nnext \"q\""));
}

#[test]
fn bad_bodies_are_errors_naming_the_field_and_render_as_400() {
    let cases: [(&[u8], &str); 7] = [
        (
            br#"{"messages":[{"role":"user","content":5}]}"#,
            "messages[0].content",
        ),
        (br#"{"messages":[{"content":"x"}]}"#, "messages[0]"),
        (br#"{"stream":"yes"}"#, "stream"),
        (br#"{"max_tokens":-1}"#, "max_tokens"),
        (br#"[1]"#, ""),
        (br#"{"model":"m"} x"#, ""),
        (b"{\"model\":", "model"),
    ];
    for (body, path) in cases {
        let err = RequestView::parse(Api::ChatCompletions, body).unwrap_err();
        let RequestError::Invalid { path: got, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(got, path, "{}", String::from_utf8_lossy(body));
        let client = err.to_client_error();
        assert_eq!(client.status, 400);
        assert_eq!(client.param.as_deref(), (!path.is_empty()).then_some(path));
    }
    assert_eq!(
        RequestView::parse(Api::AnthropicMessages, b"  ").unwrap_err(),
        RequestError::Empty
    );
    let msg = RequestView::parse(Api::ChatCompletions, br#"{"stream":"yes"}"#)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("invalid `stream`: invalid type"), "{msg}");
}

#[test]
fn models_and_other_apis_need_no_body() {
    let v = RequestView::parse(Api::Models, b"").unwrap();
    assert!(v.messages.is_empty() && v.model.is_none());
    assert!(RequestView::parse(Api::Other, b"not json").is_ok());
}

#[test]
fn truncated_and_corrupted_requests_never_panic() {
    for (name, api) in [
        ("openai-chat-tools.request.json", Api::ChatCompletions),
        (
            "anthropic-messages-toolresult.request.json",
            Api::AnthropicMessages,
        ),
        ("openai-embeddings.request.json", Api::Embeddings),
    ] {
        let bytes = read(name);
        for cut in 0..bytes.len() {
            let _ = RequestView::parse(api, &bytes[..cut]);
            let mut corrupted = bytes.clone();
            corrupted[cut] ^= 0x22;
            let _ = RequestView::parse(api, &corrupted);
        }
    }
}
