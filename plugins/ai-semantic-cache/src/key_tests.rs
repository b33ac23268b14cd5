use super::*;

fn rules() -> KeyRules<'static> {
    KeyRules {
        mode: KeyMode::LastUserMessage,
        system_prompt: true,
        skip_with_tools: true,
        max_temperature: Some(1.0),
        route: "r1",
        consumer: None,
    }
}

fn chat(body: &str) -> Result<Lookup, Skip> {
    read(Api::ChatCompletions, body.as_bytes(), &rules()).unwrap()
}

#[test]
fn the_last_user_message_is_the_key_and_whitespace_does_not_change_it() {
    let a = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"},{"role":"user","content":"What  is Rust?"}]}"#).unwrap();
    let b =
        chat(r#"{"model":"m","messages":[{"role":"user","content":" What is\nRust? "}]}"#).unwrap();
    assert_eq!(a.text, "What  is Rust?");
    assert_eq!(a.exact, b.exact);
    assert_eq!(a.partition, b.partition);
}

#[test]
fn model_route_consumer_and_system_prompt_partition_the_cache() {
    let base = chat(r#"{"model":"m","messages":[{"role":"user","content":"q"}]}"#).unwrap();
    let other_model = chat(r#"{"model":"n","messages":[{"role":"user","content":"q"}]}"#).unwrap();
    let with_system = chat(
        r#"{"model":"m","messages":[{"role":"system","content":"be terse"},{"role":"user","content":"q"}]}"#,
    )
    .unwrap();
    let body = br#"{"model":"m","messages":[{"role":"user","content":"q"}]}"#;
    let other_route = read(
        Api::ChatCompletions,
        body,
        &KeyRules {
            route: "r2",
            ..rules()
        },
    )
    .unwrap()
    .unwrap();
    let consumer = read(
        Api::ChatCompletions,
        body,
        &KeyRules {
            consumer: Some("team-a"),
            ..rules()
        },
    )
    .unwrap()
    .unwrap();
    let mut all = vec![
        base.partition.clone(),
        other_model.partition,
        with_system.partition,
        other_route.partition,
        consumer.partition,
    ];
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5, "every part changes the partition");
    let no_system_rule = read(
        Api::ChatCompletions,
        br#"{"model":"m","messages":[{"role":"system","content":"be terse"},{"role":"user","content":"q"}]}"#,
        &KeyRules {
            system_prompt: false,
            ..rules()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(no_system_rule.partition, base.partition);
}

#[test]
fn all_user_messages_and_conversation_modes_take_more_text() {
    let body = br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#;
    let all = read(
        Api::ChatCompletions,
        body,
        &KeyRules {
            mode: KeyMode::AllUserMessages,
            ..rules()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(all.text, "a\nc");
    let conv = read(
        Api::ChatCompletions,
        body,
        &KeyRules {
            mode: KeyMode::Conversation,
            ..rules()
        },
    )
    .unwrap()
    .unwrap();
    assert_eq!(conv.text, "user: a\nassistant: b\nuser: c");
}

#[test]
fn tools_hot_temperatures_and_several_choices_are_skipped() {
    let tools = r#"{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"user","content":"q"}]}"#;
    assert_eq!(chat(tools), Err(Skip::Tools));
    let hot = r#"{"model":"m","temperature":1.5,"messages":[{"role":"user","content":"q"}]}"#;
    assert_eq!(chat(hot), Err(Skip::Temperature));
    let cool = r#"{"model":"m","temperature":0.2,"messages":[{"role":"user","content":"q"}]}"#;
    assert!(chat(cool).is_ok());
    let n = r#"{"model":"m","n":2,"messages":[{"role":"user","content":"q"}]}"#;
    assert_eq!(chat(n), Err(Skip::Choices));
    let empty = r#"{"model":"m","messages":[{"role":"assistant","content":"q"}]}"#;
    assert_eq!(chat(empty), Err(Skip::NoText));
}

#[test]
fn anthropic_system_partitions_and_stream_flags_are_read() {
    let body = br#"{"model":"claude","max_tokens":9,"stream":true,"system":"terse","messages":[{"role":"user","content":[{"type":"text","text":"q"}]}]}"#;
    let l = read(Api::AnthropicMessages, body, &rules())
        .unwrap()
        .unwrap();
    assert!(l.stream && !l.include_usage);
    assert_eq!(l.text, "q");
    let plain = br#"{"model":"claude","max_tokens":9,"messages":[{"role":"user","content":"q"}]}"#;
    let p = read(Api::AnthropicMessages, plain, &rules())
        .unwrap()
        .unwrap();
    assert_ne!(l.partition, p.partition);
}

#[test]
fn a_body_that_is_not_a_request_is_an_error_naming_the_field() {
    let e = read(Api::ChatCompletions, br#"{"messages":3}"#, &rules()).unwrap_err();
    assert!(e.to_string().contains("messages"), "{e}");
    assert!(read(Api::ChatCompletions, b"[1]", &rules()).is_err());
}

#[test]
fn a_requested_response_format_is_its_own_partition() {
    let plain = chat(r#"{"model":"m","messages":[{"role":"user","content":"q"}]}"#).unwrap();
    let json_mode = chat(r#"{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"q"}]}"#).unwrap();
    assert_ne!(plain.partition, json_mode.partition);
}

#[test]
fn every_skip_reason_has_its_place_in_the_table() {
    for (i, s) in Skip::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
    }
}
