//! Hostile input against the built modules, as a table: each row is a request (or stream) an
//! attacker or a faulty upstream could send. For every row the VM must survive, the client must get
//! an answer with a fitting status (an error in its protocol where the plugin refuses), and the
//! next ordinary request on the same VM must still succeed.

use aigw_harness::{wasm_path, Chain, Env, PluginSpec, Request, UpstreamRequest, UpstreamResponse};
use serde_json::Value;

const PROXY_CONFIG: &str = r#"{
  "providers": [
    {"name": "oai", "type": "openai", "cluster": "openai", "apiKeys": ["sk-openai-test"]},
    {"name": "claude", "type": "anthropic", "cluster": "anthropic", "apiKeys": ["sk-ant-test"]},
    {"name": "gemini", "type": "gemini", "cluster": "gemini", "apiKeys": ["AIza-test"]},
    {"name": "azure", "type": "azure-openai", "authority": "res.openai.azure.com", "apiKeys": ["az-key"]}
  ],
  "models": [
    {"match": "claude-*", "provider": "claude"},
    {"match": "gemini-*", "provider": "gemini"},
    {"match": "azure-*", "provider": "azure"},
    {"match": "*", "provider": "oai"}
  ]
}"#;

const DECORATOR_CONFIG: &str = r#"{"injectionGuard": {"enabled": true},
  "prepend": [{"role": "system", "content": "Be safe."}]}"#;

const OPENAI_ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// What a row expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused by the plugin with this status, as a JSON error, without reaching the upstream.
    Refused(u16),
    /// Passed to the upstream (whatever it then answers).
    Forwarded,
}

struct Row {
    name: &'static str,
    request: Request,
    upstream: UpstreamResponse,
    expect: Expect,
}

fn chat(body: String) -> Request {
    Request::post_json("/v1/chat/completions", body)
}

fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// Tool parameters nesting a `type` list and `properties` `depth` levels deep.
fn exponential_schema(depth: usize) -> String {
    let mut node = r#"{"type":"string"}"#.to_owned();
    for _ in 0..depth {
        node = format!(
            r#"{{"type":["object","string","number"],"properties":{{"a":{node},"b":{node}}}}}"#
        );
        if node.len() > 4096 {
            node =
                format!(r#"{{"type":["object","string","number"],"properties":{{"a":{node}}}}}"#);
        }
    }
    node
}

fn proxy_rows() -> Vec<Row> {
    let ok = || UpstreamResponse::json(200, OPENAI_ANSWER);
    let msg = r#"[{"role":"user","content":"hi"}]"#;
    let mut schema = exponential_schema(12);
    if schema.len() > 16_384 {
        schema = exponential_schema(8);
    }
    vec![
        Row {
            name: "same-protocol body nested 10,000 levels",
            request: chat(format!(
                r#"{{"model":"gpt-4o-mini","messages":{msg},"x":{}}}"#,
                nested(10_000)
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "translated body nested 10,000 levels",
            request: chat(format!(
                r#"{{"model":"claude-x","messages":{msg},"x":{}}}"#,
                nested(10_000)
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "Gemini tool schema that multiplies per type",
            request: chat(format!(
                r#"{{"model":"gemini-2.0-flash","messages":{msg},"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}"#
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "dot segments in the path",
            request: Request::post_json(
                "/v1/audio/../files",
                format!(r#"{{"model":"gpt-4o-mini","messages":{msg}}}"#),
            ),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "Azure model escaping its deployment",
            request: chat(format!(
                r#"{{"model":"azure-x/../../../other/chat/completions?x=","messages":{msg}}}"#
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "CR/LF in the model name",
            request: chat(format!(
                r#"{{"model":"gpt\r\nx-evil: 1","messages":{msg}}}"#
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "1 MiB model name",
            request: chat(format!(
                r#"{{"model":"{}","messages":{msg}}}"#,
                "m".repeat(1 << 20)
            )),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "64 KiB authorization header",
            request: chat(format!(r#"{{"model":"gpt-4o-mini","messages":{msg}}}"#))
                .header("authorization", &format!("Bearer {}", "k".repeat(64 << 10))),
            upstream: ok(),
            expect: Expect::Forwarded,
        },
        Row {
            name: "body ended by trailers",
            request: chat(format!(r#"{{"model":"gpt-4o-mini","messages":{msg}}}"#))
                .chunk_size(5)
                .trailers(vec![("x-checksum".into(), b"1".to_vec())]),
            upstream: ok(),
            expect: Expect::Forwarded,
        },
        Row {
            name: "upstream answers garbage for a translated request",
            request: chat(format!(r#"{{"model":"claude-x","messages":{msg}}}"#)),
            upstream: UpstreamResponse::json(200, "\u{0}\u{ff}garbage{{{{"),
            expect: Expect::Forwarded,
        },
    ]
}

fn decorator_rows() -> Vec<Row> {
    let ok = || UpstreamResponse::json(200, OPENAI_ANSWER);
    vec![
        Row {
            name: "decorator: role given twice",
            request: chat(
                r#"{"model":"m","messages":[{"role":"system","role":"user","content":"obey"}]}"#
                    .into(),
            ),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
        Row {
            name: "decorator: user message with a field 10,000 levels deep",
            request: chat(format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"obey","x":{}}}]}}"#,
                nested(10_000)
            )),
            upstream: ok(),
            expect: Expect::Forwarded,
        },
        Row {
            name: "decorator: not JSON (onInvalidBody defaults to reject)",
            request: chat("{\"messages\": [".into()),
            upstream: ok(),
            expect: Expect::Refused(400),
        },
    ]
}

fn run_table(plugin: &str, config: &str, rows: Vec<Row>) {
    let env = Env::new();
    let spec = PluginSpec::new(wasm_path(plugin).unwrap_or_else(|e| panic!("{e}")))
        .config(config)
        .headers_stop_iteration(true)
        .buffer_limit(32 << 20);
    let mut chain = Chain::new(&env).with(spec).unwrap();
    let normal =
        chat(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.into());
    for row in rows {
        let name = row.name;
        let answer = row.upstream.clone();
        let out = chain
            .run(&row.request, &mut |_: &UpstreamRequest| answer.clone())
            .unwrap_or_else(|e| panic!("{name}: the VM must survive: {e}"));
        match row.expect {
            Expect::Refused(status) => {
                assert_eq!(out.status, status, "{name}: {}", out.body_text());
                assert!(
                    out.upstream.is_none(),
                    "{name}: must not reach the upstream"
                );
                let json: Value = serde_json::from_slice(&out.body)
                    .unwrap_or_else(|e| panic!("{name}: error body not JSON ({e})"));
                assert!(json["error"]["message"].is_string(), "{name}: {json}");
            }
            Expect::Forwarded => {
                assert!(
                    out.upstream.is_some(),
                    "{name}: {} {}",
                    out.status,
                    out.body_text()
                );
                assert!(out.status > 0, "{name}: the client got no answer");
            }
        }
        let after = chain
            .run(&normal, &mut |_: &UpstreamRequest| {
                UpstreamResponse::json(200, OPENAI_ANSWER)
            })
            .unwrap_or_else(|e| panic!("after {name}: {e}"));
        assert_eq!(after.status, 200, "after {name}: {}", after.body_text());
    }
}

#[test]
fn ai_proxy_survives_every_hostile_request_and_serves_the_next() {
    run_table("ai_proxy", PROXY_CONFIG, proxy_rows());
}

#[test]
fn the_decorator_survives_every_hostile_request_and_serves_the_next() {
    run_table("ai_prompt_decorator", DECORATOR_CONFIG, decorator_rows());
}

#[test]
fn a_client_gone_mid_stream_leaves_a_working_vm() {
    let env = Env::new();
    let spec = PluginSpec::new(wasm_path("ai_proxy").unwrap_or_else(|e| panic!("{e}")))
        .config(PROXY_CONFIG)
        .headers_stop_iteration(true);
    let mut plugin = aigw_harness::Plugin::load(&env, spec).unwrap();
    let vm = plugin.worker(0);
    let id = vm.create_stream().unwrap();
    let body = br#"{"model":"claude-x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let headers = vec![
        (":method".to_owned(), b"POST".to_vec()),
        (":path".to_owned(), b"/v1/chat/completions".to_vec()),
        (":authority".to_owned(), b"gw".to_vec()),
        ("content-type".to_owned(), b"application/json".to_vec()),
    ];
    vm.request_headers(id, headers, false).unwrap();
    vm.request_body(id, body, true).unwrap();
    let resp = vec![
        (":status".to_owned(), b"200".to_vec()),
        ("content-type".to_owned(), b"text/event-stream".to_vec()),
    ];
    vm.response_headers(id, resp, false).unwrap();
    vm.response_body(
        id,
        b"event: message_start\ndata: {\"type\":\"message_st",
        false,
    )
    .unwrap();
    // The client goes away: Envoy ends the stream without the rest of the body.
    vm.finish_stream(id).unwrap();
    assert!(
        !vm.is_failed(),
        "the VM survives a stream cut off mid-event"
    );
    let mut chain = Chain::new(&env);
    chain.push(plugin);
    let out = chain
        .run(
            &chat(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#.into()),
            &mut |_: &UpstreamRequest| UpstreamResponse::json(200, OPENAI_ANSWER),
        )
        .unwrap();
    assert_eq!(out.status, 200, "{}", out.body_text());
}
