//! The bodies of `make bench`, byte for byte: the upstream answers of `scripts/bench_upstream.py`
//! and the ~1 KB chat request of `scripts/bench.py` (`chat_request`). Shared by
//! `bench/native-profile` and `test-harness/examples/host_calls.rs` (through `#[path]`).
#![allow(dead_code)]

pub const WORDS: &str =
    "The quick brown fox jumps over the lazy dog while the gateway keeps counting \
                     tokens and nothing else happens here";

pub fn deltas() -> Vec<String> {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    (0..20)
        .map(|i| format!("{}{}", if i > 0 { " " } else { "" }, words[i % words.len()]))
        .collect()
}

pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

pub fn openai_json() -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-bench0001","object":"chat.completion","created":1764700000,"#,
            r#""model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","#,
            r#""choices":[{{"index":0,"finish_reason":"stop","logprobs":null,"#,
            r#""message":{{"role":"assistant","content":{},"refusal":null}}}}],"#,
            r#""usage":{{"prompt_tokens":230,"completion_tokens":20,"total_tokens":250}}}}"#
        ),
        js(&deltas().concat())
    )
}

pub fn openai_sse() -> String {
    let base = r#""id":"chatcmpl-bench0001","object":"chat.completion.chunk","created":1764700000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench""#;
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{{base},\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
        )
    };
    let mut out = chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    );
    for d in deltas() {
        out += &chunk(&format!(r#"{{"content":{}}}"#, js(&d)), "null");
    }
    out += &chunk("{}", r#""stop""#);
    out += &format!(
        "data: {{{base},\"choices\":[],\"usage\":{{\"prompt_tokens\":230,\"completion_tokens\":20,\"total_tokens\":250}}}}\n\n"
    );
    out += "data: [DONE]\n\n";
    out
}

pub fn anthropic_json() -> String {
    format!(
        concat!(
            r#"{{"id":"msg_bench0001","type":"message","role":"assistant","#,
            r#""model":"claude-haiku-4-5-20251001","content":[{{"type":"text","text":{}}}],"#,
            r#""stop_reason":"end_turn","stop_sequence":null,"#,
            r#""usage":{{"input_tokens":230,"output_tokens":20}}}}"#
        ),
        js(&deltas().concat())
    )
}

pub fn anthropic_sse() -> String {
    let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut out = ev(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_bench0001","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5-20251001","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":230,"output_tokens":1}}}"#,
    );
    out += &ev(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    out += &ev("ping", r#"{"type":"ping"}"#);
    for d in deltas() {
        out += &ev(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{}}}}}"#,
                js(&d)
            ),
        );
    }
    out += &ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    out += &ev(
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":20}}"#,
    );
    out += &ev("message_stop", r#"{"type":"message_stop"}"#);
    out
}

/// `scripts/bench.py`'s `chat_request` (Python `json.dumps` separators).
pub fn chat_request(model: &str, stream: bool) -> String {
    let filler = "Our gateway forwards chat requests to several providers and we want to know \
                  how much latency and CPU each plugin adds on the way. "
        .repeat(2);
    let msg = |role: &str, content: &str| {
        format!(r#"{{"role": {}, "content": {}}}"#, js(role), js(content))
    };
    let messages = [
        msg(
            "system",
            "You are a helpful assistant that answers briefly.",
        ),
        msg("user", &format!("{filler}Summarise the situation.")),
        msg(
            "assistant",
            "The gateway adds filters; each costs some time.",
        ),
        msg(
            "user",
            &format!("{filler}Which filter should be optimised first?"),
        ),
    ]
    .join(", ");
    let stream = if stream { r#", "stream": true"# } else { "" };
    format!(
        r#"{{"model": {}, "messages": [{messages}], "max_tokens": 128, "temperature": 0.2{stream}}}"#,
        js(model)
    )
}

/// The sizes `bench/results.md` reports; checked before anything is measured.
pub fn check_sizes() {
    assert_eq!(openai_json().len(), 447);
    assert_eq!(openai_sse().len(), 5626);
    assert_eq!(anthropic_json().len(), 339);
    assert_eq!(anthropic_sse().len(), 3085);
    assert_eq!(chat_request("gpt-4o-mini", false).len(), 895);
}
