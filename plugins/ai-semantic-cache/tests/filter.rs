//! The filter on the mock host: one worker keeps its shared data across requests, callouts are
//! answered by the test. Exact hits, semantic hits (embedding and Chroma answers scripted with
//! recorded shapes), replay in each protocol, what is and is not stored, bypass and skip, fail-open
//! on every embedding or vector store failure, and bad requests answered in the caller's protocol.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::cell::RefCell;
use std::rc::Rc;

use ai_semantic_cache::SemanticCache;
use aigw_shared::host::{CallResponse, Capabilities};
use aigw_shared::mock::{Callout, Exchange, Gateway, Outcome, UpstreamReply};
use aigw_shared::plugin::Reply;
use serde_json::{json, Value};

const EXACT: &str = r#"{"ttlSeconds": 60}"#;

fn semantic_config() -> String {
    json!({"semantic": {"threshold": 0.9,
        "embedding": {"cluster": "embedder", "authority": "embedder.test", "model": "all-MiniLM-L6-v2"},
        "vectorStore": {"kind": "chroma", "cluster": "chroma", "authority": "chroma.test"}}})
    .to_string()
}

fn chat(text: &str, stream: bool) -> Exchange {
    let body = json!({"model": "gpt-4o-mini", "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": text}]});
    Exchange::post_json("/v1/chat/completions", &body.to_string())
        .reply(answer("Paris is the capital of France."))
}

fn messages(text: &str, stream: bool) -> Exchange {
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": text}]});
    Exchange::post_json("/v1/messages", &body.to_string())
}

fn answer(text: &str) -> UpstreamReply {
    UpstreamReply::json(
        &json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}})
        .to_string(),
    )
}

fn header(out: &Outcome, name: &str) -> Option<String> {
    let headers = match &out.local_response {
        Some(r) => &r.headers,
        None => &out.response_headers,
    };
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn http(status: Option<u16>, body: &str) -> Option<Reply> {
    Some(Reply::Http(CallResponse {
        status,
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }))
}

fn worker(config: &str) -> Gateway<SemanticCache> {
    Gateway::new(config, Capabilities::FULL)
}

#[test]
fn the_same_question_asked_again_is_answered_from_the_exact_tier() {
    let mut gw = worker(EXACT);
    let first = gw.run(chat("What is the capital of France?", false));
    assert!(first.upstream_headers.is_some(), "a miss goes to the model");
    assert_eq!(header(&first, "x-aigw-cache").as_deref(), Some("miss"));
    let again = gw.run(chat("  What is the capital\nof France? ", false));
    let reply = again
        .local_response
        .as_ref()
        .expect("a hit is answered locally");
    assert!(again.upstream_headers.is_none());
    assert_eq!(reply.status, 200);
    assert_eq!(header(&again, "x-aigw-cache").as_deref(), Some("hit"));
    assert_eq!(
        header(&again, "x-aigw-cache-tier").as_deref(),
        Some("exact")
    );
    assert_eq!(
        header(&again, "x-aigw-cache-tokens-saved").as_deref(),
        Some("22")
    );
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Paris is the capital of France."
    );
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        again
            .host
            .metric_value("aigw.semantic_cache.outcome.hit_exact.requests"),
        Some(1)
    );
    assert_eq!(
        again
            .host
            .metric_value("aigw.semantic_cache.token_type.output.tokens_saved"),
        Some(8)
    );
}

#[test]
fn a_hit_is_replayed_as_a_stream_or_as_anthropic_when_asked() {
    let mut gw = worker(EXACT);
    gw.run(chat("Capital of France?", false));
    let streamed = gw.run(chat("Capital of France?", true));
    let text = String::from_utf8(streamed.local_response.clone().unwrap().body).unwrap();
    assert!(
        text.starts_with("data: ") && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );
    assert!(
        text.matches("\"content\":").count() >= 3,
        "several content chunks: {text}"
    );
    assert!(
        text.contains("\"completion_tokens\":8"),
        "include_usage asked: {text}"
    );
    assert_eq!(
        header(&streamed, "content-type").as_deref(),
        Some("text/event-stream")
    );
    let anthropic = gw.run(messages("Capital of France?", true));
    let body = String::from_utf8(anthropic.local_response.unwrap().body).unwrap();
    assert!(
        body.starts_with("event: message_start\n") && body.contains("event: message_stop"),
        "{body}"
    );
}

#[test]
fn errors_cut_answers_and_bypassed_requests_are_not_stored() {
    let mut gw = worker(EXACT);
    let mut failing = chat("q1", false);
    failing = failing.reply(UpstreamReply {
        status: 500,
        headers: vec![("content-type".into(), b"application/json".to_vec())],
        chunks: vec![br#"{"error":{"message":"boom","type":"server_error"}}"#.to_vec()],
    });
    gw.run(failing);
    assert!(
        gw.run(chat("q1", false)).upstream_headers.is_some(),
        "the 500 was not stored"
    );

    let cut = json!({"id": "x", "object": "chat.completion", "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "half"}, "finish_reason": "length"}]});
    gw.run(chat("q2", false).reply(UpstreamReply::json(&cut.to_string())));
    assert!(
        gw.run(chat("q2", false)).upstream_headers.is_some(),
        "a length cut is not stored"
    );

    let bypass = gw.run(chat("q3", false).header("cache-control", "no-store"));
    assert_eq!(header(&bypass, "x-aigw-cache").as_deref(), Some("bypass"));
    assert!(
        gw.run(chat("q3", false)).upstream_headers.is_some(),
        "no-store stores nothing"
    );

    gw.run(chat("q4", false));
    let refresh = gw.run(chat("q4", false).header("x-aigw-cache-bypass", "1"));
    assert!(
        refresh.upstream_headers.is_some(),
        "the bypass header skips the lookup"
    );
    let no_cache = gw.run(chat("q4", false).header("Cache-Control", "no-cache"));
    assert!(
        no_cache.upstream_headers.is_some(),
        "no-cache skips the lookup"
    );
}

#[test]
fn an_answer_the_upstream_marks_private_is_not_stored() {
    let mut gw = worker(EXACT);
    let mut reply = answer("your balance is 12");
    reply
        .headers
        .push(("cache-control".into(), b"private".to_vec()));
    gw.run(chat("my balance?", false).reply(reply));
    assert!(gw
        .run(chat("my balance?", false))
        .upstream_headers
        .is_some());
}

#[test]
fn requests_with_tools_are_skipped_and_say_so() {
    let mut gw = worker(EXACT);
    let body = json!({"model": "m", "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "messages": [{"role": "user", "content": "weather?"}]});
    let ex =
        || Exchange::post_json("/v1/chat/completions", &body.to_string()).reply(answer("sunny"));
    let out = gw.run(ex());
    assert_eq!(header(&out, "x-aigw-cache").as_deref(), Some("skip"));
    assert!(gw.run(ex()).upstream_headers.is_some());
    assert_eq!(
        out.host
            .metric_value("aigw.semantic_cache.reason.tools.skipped"),
        Some(1)
    );
}

#[test]
fn a_body_that_is_not_a_request_gets_a_400_in_the_callers_protocol() {
    let mut gw = worker(EXACT);
    let out = gw.run(Exchange::post_json(
        "/v1/messages",
        r#"{"model":"m","messages":"no"}"#,
    ));
    let r = out.local_response.unwrap();
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["type"], "error", "Anthropic's error shape: {v}");
    assert!(out.upstream_headers.is_none());
}

#[test]
fn a_rule_turns_the_cache_on_for_one_domain_only() {
    let config =
        r#"{"enabled": false, "_rules_": [{"_match_domain_": ["cached.local"], "enabled": true}]}"#;
    let mut gw = worker(config);
    gw.run(chat("q", false));
    let off = gw.run(chat("q", false));
    assert!(off.upstream_headers.is_some());
    assert_eq!(
        header(&off, "x-aigw-cache"),
        None,
        "the global config is off"
    );
    gw.run(chat("q", false).header(":authority", "cached.local"));
    let on = gw.run(chat("q", false).header(":authority", "cached.local:8080"));
    assert_eq!(header(&on, "x-aigw-cache").as_deref(), Some("hit"));
}

#[test]
fn other_apis_pass_untouched() {
    let mut gw = worker(EXACT);
    let out = gw.run(
        Exchange::post_json("/v1/embeddings", r#"{"model":"m","input":"x"}"#).reply(answer("x")),
    );
    assert!(out.upstream_headers.is_some());
    assert_eq!(header(&out, "x-aigw-cache"), None);
}

/// Answers the semantic tier's callouts like the real services would: a fixed vector, Chroma's
/// collection, a query answer with `similarity`, and the upsert; records what was asked.
fn services(
    similarity: f32,
    document: &str,
    seen: Rc<RefCell<Vec<String>>>,
) -> impl FnMut(&Callout) -> Option<Reply> {
    let document = document.to_owned();
    move |c: &Callout| {
        let path = c
            .headers
            .iter()
            .find(|(k, _)| k == ":path")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        seen.borrow_mut().push(path.clone());
        if c.upstream == "embedder" {
            return http(
                Some(200),
                r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8,0.0]}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#,
            );
        }
        if path.ends_with("/collections") {
            return http(
                Some(200),
                r#"{"id":"5ae4682c-48a1-43be-9afa-e9f9758f51e0","name":"aigw_semantic_cache"}"#,
            );
        }
        if path.ends_with("/query") {
            let body = json!({"ids": [["k"]], "documents": [[document]], "distances": [[1.0 - similarity]]});
            return http(Some(200), &body.to_string());
        }
        http(Some(200), "{}")
    }
}

const CACHED: &str = r#"{"model":"gpt-4o-mini-2024-07-18","text":"Paris.","in":12,"out":2,"at":0}"#;

#[test]
fn a_rephrased_question_close_enough_is_answered_from_the_semantic_tier() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut gw = worker(&semantic_config()).answer(services(0.95, CACHED, Rc::clone(&seen)));
    let out = gw.run(chat("Which city is France's capital?", false));
    let r = out.local_response.as_ref().expect("a semantic hit");
    assert_eq!(
        header(&out, "x-aigw-cache-tier").as_deref(),
        Some("semantic")
    );
    assert_eq!(
        header(&out, "x-aigw-cache-similarity").as_deref(),
        Some("0.9500")
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Paris.");
    assert!(out
        .host
        .metric_value("aigw.semantic_cache.nearest_similarity_percent")
        .is_some());
    let paths = seen.borrow().clone();
    assert_eq!(paths.len(), 3, "embed, collection, query: {paths:?}");
    assert!(paths[2].ends_with("/5ae4682c-48a1-43be-9afa-e9f9758f51e0/query"));
    // The collection id is kept by the worker: the next lookup is embed + query only.
    gw.run(chat("France's capital city?", false));
    assert_eq!(seen.borrow().len(), 5);
}

#[test]
fn a_neighbour_below_the_threshold_is_a_miss_and_the_answer_is_stored_in_both_tiers() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut gw = worker(&semantic_config()).answer(services(0.5, CACHED, Rc::clone(&seen)));
    let out = gw.run(chat("How tall is Mont Blanc?", false));
    assert!(out.upstream_headers.is_some());
    assert_eq!(header(&out, "x-aigw-cache").as_deref(), Some("miss"));
    assert_eq!(
        header(&out, "x-aigw-cache-similarity").as_deref(),
        Some("0.5000")
    );
    let upsert = out
        .callouts
        .iter()
        .find(|c| {
            c.headers
                .iter()
                .any(|(k, v)| k == ":path" && v.ends_with(b"/upsert"))
        })
        .expect("the answer went to the vector store");
    let body: Value = serde_json::from_slice(upsert.body.as_deref().unwrap()).unwrap();
    let doc: Value = serde_json::from_str(body["documents"][0].as_str().unwrap()).unwrap();
    assert_eq!(doc["text"], "Paris is the capital of France.");
    assert_eq!(body["embeddings"][0].as_array().unwrap().len(), 3);
    let again = gw.run(chat("How tall is Mont Blanc?", false));
    assert_eq!(
        header(&again, "x-aigw-cache-tier").as_deref(),
        Some("exact")
    );
}

#[test]
fn embedding_and_vector_store_failures_fail_open_with_a_metric() {
    for (broken, metric) in [
        ("embedder", "aigw.semantic_cache.reason.embedding.errors"),
        ("query", "aigw.semantic_cache.reason.vector_query.errors"),
        (
            "collections",
            "aigw.semantic_cache.reason.vector_setup.errors",
        ),
    ] {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut ok = services(0.99, CACHED, seen);
        let mut gw = worker(&semantic_config()).answer(move |c: &Callout| {
            let path = c
                .headers
                .iter()
                .find(|(k, _)| k == ":path")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let hit = c.upstream == broken || String::from_utf8_lossy(&path).ends_with(broken);
            if hit {
                // A timeout for one, garbage and an error status for the others.
                return match broken {
                    "embedder" => http(None, ""),
                    "query" => http(Some(200), "<html>"),
                    _ => http(Some(503), "unavailable"),
                };
            }
            ok(c)
        });
        let out = gw.run(chat("Anything at all?", false));
        assert!(
            out.upstream_headers.is_some(),
            "{broken}: the request went to the model"
        );
        // The set-up is tried again before storing the answer: one failure or two.
        assert!(out.host.metric_value(metric).unwrap_or(0) >= 1, "{broken}");
        assert!(!out.warnings().is_empty(), "{broken}: logged");
        assert_eq!(out.stalled, None);
    }
}

#[test]
fn a_stored_document_that_is_not_an_answer_is_not_replayed() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let mut gw = worker(&semantic_config()).answer(services(0.99, "not an entry", seen));
    let out = gw.run(chat("q", false));
    assert!(out.upstream_headers.is_some());
    assert_eq!(
        out.host
            .metric_value("aigw.semantic_cache.reason.vector_query.errors"),
        Some(1)
    );
}

const REDIS: &str = r#"{"ttlSeconds": 60, "redis": {"cluster": "redis.dns", "database": 1}}"#;

/// The arguments of a RESP command, as text.
fn resp_args(callout: &Callout) -> Vec<String> {
    match aigw_shared::resp::decode(callout.body.as_deref().unwrap()).unwrap() {
        aigw_shared::resp::Value::Array(Some(items)) => items
            .into_iter()
            .map(|v| match v {
                aigw_shared::resp::Value::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn with_redis_the_exact_tier_is_a_get_before_and_a_set_with_the_ttl_after() {
    let stored = Rc::new(RefCell::new(None::<Vec<u8>>));
    let keep = Rc::clone(&stored);
    let out = chat("What is the capital of France?", false)
        .capabilities(Capabilities::HIGRESS)
        .answer(move |c| {
            let a = resp_args(c);
            match a[0].as_str() {
                "GET" => Some(Reply::Redis(b"$-1\r\n".to_vec())),
                "SET" => {
                    *keep.borrow_mut() = Some(c.body.clone().unwrap());
                    Some(Reply::Redis(b"+OK\r\n".to_vec()))
                }
                _ => None,
            }
        })
        .run::<SemanticCache>(REDIS);
    assert!(out.upstream_headers.is_some(), "a miss goes to the model");
    assert_eq!(header(&out, "x-aigw-cache").as_deref(), Some("miss"));
    let get = resp_args(&out.callouts[0]);
    assert_eq!(
        out.callouts[0].upstream, "redis.dns",
        "calls name the bare cluster"
    );
    assert!(get[1].starts_with("aigw-cache:"), "{get:?}");
    let set = resp_args(&out.callouts[1]);
    assert_eq!(set[0], "SET");
    assert_eq!(set[1], get[1], "stored under the key looked up");
    assert_eq!(&set[3..], ["PX", "60000"]);
    // That record, given back by the next GET, is a hit answered here.
    let record = {
        let raw = stored.borrow().clone().unwrap();
        match aigw_shared::resp::decode(&raw).unwrap() {
            aigw_shared::resp::Value::Array(Some(items)) => match &items[2] {
                aigw_shared::resp::Value::Bulk(Some(b)) => b.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    };
    let mut bulk = format!("${}\r\n", record.len()).into_bytes();
    bulk.extend_from_slice(&record);
    bulk.extend_from_slice(b"\r\n");
    let hit = chat("What is the capital of France?", false)
        .capabilities(Capabilities::HIGRESS)
        .answer(move |_| Some(Reply::Redis(bulk.clone())))
        .run::<SemanticCache>(REDIS);
    assert!(hit.upstream_headers.is_none(), "answered from Redis");
    assert_eq!(header(&hit, "x-aigw-cache-tier").as_deref(), Some("exact"));
    let body: Value = serde_json::from_slice(&hit.local_response.unwrap().body).unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Paris is the capital of France."
    );
}

#[test]
fn with_redis_failing_or_absent_the_request_goes_on() {
    for reply in [
        Reply::Redis(Vec::new()),
        Reply::Redis(b"-NOAUTH Authentication required\r\n".to_vec()),
        Reply::Redis(b"*1\r\n:1\r\n".to_vec()),
    ] {
        let out = chat("What is the capital of France?", false)
            .capabilities(Capabilities::HIGRESS)
            .answer(move |_| Some(reply.clone()))
            .run::<SemanticCache>(REDIS);
        assert!(out.upstream_headers.is_some());
        assert_eq!(header(&out, "x-aigw-cache").as_deref(), Some("miss"));
    }
    // A build without Redis calls keeps the exact tier in shared data.
    let mut gw = worker(REDIS);
    gw.run(chat("What is the capital of France?", false));
    let again = gw.run(chat("What is the capital of France?", false));
    assert_eq!(header(&again, "x-aigw-cache").as_deref(), Some("hit"));
    assert!(again.callouts.is_empty());
}
