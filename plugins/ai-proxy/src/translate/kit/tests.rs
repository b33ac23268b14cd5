//! Kit unit tests: the conversation walk over a toy dialect, the request helpers, and the chunk,
//! message, index, finish-reason and usage builders.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::{json, Value};

use super::request::{self, Conversation, Dialect};
use super::response::{self, finish, Answer, ChunkHead, ToolIndex};
use crate::hub::{ChatRequest, ContentPart, Delta, Message, Role, ToolCall};
use crate::translate::{BuildContext, ResponseHead, TranslateError, UnsupportedPolicy};

/// A toy dialect: `parts` lists, `model` as the assistant role, empty turns dropped.
struct Toy;

impl Dialect for Toy {
    const NAME: &'static str = "toy";
    const BLOCKS: &'static str = "parts";
    const KEEP_EMPTY_TURNS: bool = false;

    fn role(&self, role: Role) -> &'static str {
        match role {
            Role::Assistant => "model",
            other => other.as_str(),
        }
    }
    fn system(&self, text: &str) -> Option<Value> {
        self.text(text)
    }
    fn text(&self, text: &str) -> Option<Value> {
        (!text.is_empty()).then(|| json!({ "t": text }))
    }
    fn media(
        &self,
        _part: &ContentPart,
        i: usize,
        j: usize,
        ctx: &mut BuildContext<'_>,
    ) -> Result<Option<Value>, TranslateError> {
        ctx.unsupported(&format!("messages[{i}].content[{j}]"), Self::NAME)
            .map(|()| None)
    }
    fn tool_call(&self, call: &ToolCall, i: usize, j: usize) -> Result<Value, TranslateError> {
        Ok(json!({"call": call.function.name, "args": request::json_arguments(call, i, j)?}))
    }
    fn tool_result(&self, id: &str, m: &Message, _i: usize) -> Result<Value, TranslateError> {
        Ok(json!({"result": id, "text": request::joined_text(m.content.as_ref())}))
    }
}

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn split(
    v: Value,
    policy: UnsupportedPolicy,
) -> (Result<Conversation, TranslateError>, Vec<String>) {
    let r = req(v);
    let mut ctx = BuildContext::new("m", policy);
    let out = request::split(&Toy, &r.messages, &mut ctx);
    (out, ctx.dropped)
}

#[test]
fn the_walk_splits_system_merges_turns_and_puts_tool_results_in_user_turns() {
    let (conv, _) = split(
        json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": ""},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "again"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": " "}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": "two"},
            {"role": "assistant", "content": null}
        ]}),
        UnsupportedPolicy::Reject,
    );
    let conv = conv.unwrap();
    assert_eq!(conv.system, vec![json!({"t": "be brief"})]);
    assert_eq!(
        Value::Array(conv.turns),
        json!([
            {"role": "user", "parts": [{"t": "hi"}, {"t": "again"}]},
            {"role": "model", "parts": [{"call": "f", "args": {}}, {"call": "g", "args": {"a": 1}}]},
            {"role": "user", "parts": [{"result": "c1", "text": "one"}, {"result": "c2", "text": "two"}]}
        ])
    );
}

#[test]
fn missing_ids_bad_arguments_and_unsupported_parts_are_reported() {
    let (e, _) = split(
        json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
        UnsupportedPolicy::Reject,
    );
    assert_eq!(
        e.unwrap_err(),
        TranslateError::malformed_param(
            "a tool message needs tool_call_id",
            "messages[0].tool_call_id"
        )
    );
    let (e, _) = split(
        json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}]}),
        UnsupportedPolicy::Reject,
    );
    assert_eq!(
        e.unwrap_err(),
        TranslateError::malformed_param(
            "tool call arguments must be JSON",
            "messages[0].tool_calls[0].function.arguments"
        )
    );
    let audio = json!({"model": "m", "messages": [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]},
        {"role": "function", "name": "f", "content": "r"}]});
    let (e, _) = split(audio.clone(), UnsupportedPolicy::Reject);
    assert!(
        matches!(e.unwrap_err(), TranslateError::Unsupported { field, .. } if field == "messages[0].content[0]")
    );
    let (conv, dropped) = split(audio, UnsupportedPolicy::Ignore);
    assert!(conv.unwrap().turns.is_empty());
    assert_eq!(
        dropped,
        ["messages[0].content[0]", "messages[1].role=function"]
    );
}

#[test]
fn data_urls_split_or_fail_and_other_urls_are_none() {
    assert_eq!(
        request::data_url("data:image/png;base64,AAA", "m", "p").unwrap(),
        Some(("image/png", "AAA"))
    );
    assert_eq!(
        request::data_url("https://x/y.png", "m", "p").unwrap(),
        None
    );
    assert_eq!(
        request::data_url("data:image/png,AAA", "must be base64", "p").unwrap_err(),
        TranslateError::malformed_param("must be base64", "p")
    );
}

#[test]
fn thinking_drops_sampling_and_budgets_follow_the_effort() {
    let r = req(
        json!({"model": "m", "messages": [], "temperature": 1.7, "top_p": 0.5,
        "reasoning_effort": "medium"}),
    );
    let mut ctx = BuildContext::new("m", UnsupportedPolicy::Ignore);
    assert_eq!(
        request::sampling(&r, &mut ctx, false),
        (Some(1.0), Some(0.5))
    );
    assert!(ctx.dropped.is_empty());
    assert_eq!(request::sampling(&r, &mut ctx, true), (None, None));
    assert_eq!(
        ctx.dropped,
        [
            "temperature (not allowed with thinking)",
            "top_p (not allowed with thinking)"
        ]
    );
    assert_eq!(request::thinking_budget(&r).unwrap(), Some(8192));
    let none = req(json!({"model": "m", "messages": [], "reasoning_effort": "none"}));
    assert_eq!(request::thinking_budget(&none).unwrap(), None);
    let bad = req(json!({"model": "m", "messages": [], "reasoning_effort": "max"}));
    assert!(request::thinking_budget(&bad).is_err());
}

#[test]
fn openai_only_fields_are_refused_in_order_then_unknown_fields() {
    let r = req(json!({"model": "m", "messages": [], "n": 2, "seed": 1, "zeta": true}));
    let mut ctx = BuildContext::new("m", UnsupportedPolicy::Ignore);
    request::refuse(&mut ctx, "toy", request::openai_only_fields(&r)).unwrap();
    request::refuse_extra(&mut ctx, "toy", &r).unwrap();
    assert_eq!(ctx.dropped, ["n", "seed", "zeta"]);
    let mut ctx = BuildContext::new("m", UnsupportedPolicy::Reject);
    let e = request::refuse(&mut ctx, "toy", request::openai_only_fields(&r)).unwrap_err();
    assert!(matches!(e, TranslateError::Unsupported { field, .. } if field == "n"));
}

#[test]
fn chunks_share_their_head_and_usage_chunks_have_no_choices() {
    let head = ResponseHead {
        status: 200,
        content_type: "text/event-stream".into(),
        stream: true,
        model: "m".into(),
        created: 7,
    };
    let mut h = ChunkHead::new(&head);
    h.id = "id".into();
    let c = h.delta(2, response::role_delta(), Some(finish::STOP));
    assert_eq!((c.id.as_str(), c.model.as_str(), c.created), ("id", "m", 7));
    assert_eq!(c.object, "chat.completion.chunk");
    assert_eq!(c.choices[0].index, 2);
    assert_eq!(c.choices[0].delta.role.as_deref(), Some("assistant"));
    assert_eq!(c.choices[0].delta.content.as_deref(), Some(""));
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    let u = h.usage(response::cached_usage(1, 2, 0, 4));
    assert!(u.choices.is_empty());
    let usage = u.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (3, 4, 7)
    );
    let details = usage.prompt_tokens_details.unwrap();
    assert_eq!(
        (details.cached_tokens, details.cache_creation_tokens),
        (Some(2), None)
    );
    assert_eq!(
        response::text_delta("x".into()),
        Delta {
            content: Some("x".into()),
            ..Delta::default()
        }
    );
}

#[test]
fn tool_indices_count_opened_calls_and_ignore_other_blocks() {
    let mut t = ToolIndex::default();
    assert_eq!(t.open(3), 0);
    assert_eq!(t.open(5), 1);
    assert_eq!((t.get(3), t.get(5), t.get(4)), (Some(0), Some(1), None));
    let start = response::tool_call_start(1, "id".into(), "f".into(), String::new());
    assert_eq!(start.kind.as_deref(), Some("function"));
    let more = response::tool_call_arguments(1, "{".into());
    assert_eq!((more.id, more.function.unwrap().name), (None, None));
}

#[test]
fn finish_reasons_ids_and_answers_follow_openai() {
    let filtered = ["refusal"];
    for (reason, want) in [
        ("end_turn", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
    ] {
        assert_eq!(response::stop_reason_to_finish(reason, &filtered), want);
    }
    let id = response::hashed_id("chatcmpl-", b"x");
    assert_eq!(id.len(), "chatcmpl-".len() + 24);
    assert_eq!(id, response::hashed_id("chatcmpl-", b"x"));
    let only_calls = Answer {
        calls: vec![response::tool_call("c".into(), "f".into(), "{}".into())],
        ..Answer::default()
    }
    .message();
    assert_eq!(only_calls.content, None);
    assert_eq!(only_calls.tool_calls.unwrap()[0].kind, "function");
    let empty = Answer::default().message();
    assert_eq!(
        (empty.content.as_deref(), empty.reasoning_content.as_deref()),
        (Some(""), None)
    );
    let r = response::single_choice("i".into(), 1, "m".into(), empty, None, None);
    assert_eq!((r.object.as_str(), r.choices.len()), ("chat.completion", 1));
    assert!(response::parse_body(b"{").is_err());
    assert_eq!(
        response::ended_early(true, "x"),
        TranslateError::Upstream("the upstream stream ended before x".into())
    );
}

/// Token counts come from upstream and may be anything a JSON number holds: sums saturate
/// instead of wrapping (release) or panicking (debug, where a panic would kill the VM).
#[test]
fn upstream_token_counts_near_the_top_saturate_in_every_backend() {
    use crate::translate::backend::{anthropic, bedrock, gemini};
    let max = u64::MAX;

    let u = response::cached_usage(max, 7, 1, max);
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (max, max, max)
    );

    let u = bedrock::response::usage_to_hub(&json!({
        "inputTokens": max, "cacheReadInputTokens": 5, "cacheWriteInputTokens": max, "outputTokens": 3
    }));
    assert_eq!((u.prompt_tokens, u.total_tokens), (max, max));

    let u = anthropic::stream::usage_to_hub(&json!({
        "input_tokens": 10, "cache_read_input_tokens": max, "cache_creation_input_tokens": 1,
        "output_tokens": max
    }));
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (max, max, max)
    );

    let u = gemini::response::usage_to_hub(&json!({
        "promptTokenCount": max, "toolUsePromptTokenCount": 2,
        "candidatesTokenCount": max, "thoughtsTokenCount": 9
    }));
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (max, max, max)
    );
}

/// The same through a whole Anthropic stream: `message_start` and `message_delta` usage with
/// counts at the top end become one saturated hub usage.
#[test]
fn an_anthropic_stream_with_huge_token_counts_translates() {
    use crate::hub::HubEvent;
    use crate::translate::backend::anthropic::stream::AnthropicSseToHub;
    use crate::translate::ResponseTranslator;
    let max = u64::MAX;
    let body = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"usage\":{{\"input_tokens\":{max},\"cache_read_input_tokens\":{max},\"cache_creation_input_tokens\":{max},\"output_tokens\":1}}}}}}\n\n\
         event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{max}}}}}\n\n\
         event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
    );
    let head = ResponseHead {
        status: 200,
        content_type: "text/event-stream".into(),
        stream: true,
        model: "claude".into(),
        created: 1,
    };
    let mut t = AnthropicSseToHub::new(&head);
    let mut out = Vec::new();
    t.feed(body.as_bytes(), &mut out).unwrap();
    t.finish(&mut out).unwrap();
    let usage = out
        .iter()
        .find_map(|e| match e {
            HubEvent::Chunk(c) => c.usage.clone(),
            _ => None,
        })
        .expect("a usage chunk");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (max, max, max)
    );
}
