//! Tests of [`super`] (the external services).
use super::*;
use std::path::PathBuf;

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/providers")
        .join(name);
    std::fs::read(path).unwrap()
}

fn service(v: Value) -> Service {
    let raw: RawService = serde_json::from_value(v).unwrap();
    Service::build(raw, "services[0]").unwrap()
}

fn ok(body: Vec<u8>) -> CallResponse {
    CallResponse {
        status: Some(200),
        headers: Vec::new(),
        body,
    }
}

#[test]
fn openai_moderation_answers_block_when_flagged_or_in_a_chosen_category() {
    let s = service(
        json!({"name": "omni", "kind": "openaiModeration", "cluster": "m",
        "authority": "api.openai.com", "apiKey": "sk-x", "model": "omni-moderation-latest"}),
    );
    let answer = ok(sample("openai-moderations.response.json"));
    assert_eq!(
        s.verdict(&answer),
        Verdict::Block(Some("harassment".into()))
    );
    let body: Value = serde_json::from_slice(&s.body("I want to kill them.")).unwrap();
    let want: Value = serde_json::from_slice(&sample("openai-moderations.request.json")).unwrap();
    assert_eq!(body["input"], want["input"], "the documented request shape");
    assert_eq!(body["model"], "omni-moderation-latest");
    let req = s.request(b"{}");
    assert!(req
        .headers
        .iter()
        .any(|(k, v)| *k == "authorization" && *v == b"Bearer sk-x"));
    let only_sexual = service(
        json!({"name": "s", "kind": "openaiModeration", "cluster": "m",
        "authority": "a", "categories": ["sexual"]}),
    );
    assert_eq!(only_sexual.verdict(&answer), Verdict::Allow);
    let omni = ok(sample("openai-moderations-omni.response.json"));
    assert!(matches!(
        s.verdict(&omni),
        Verdict::Block(_) | Verdict::Allow
    ));
}

#[test]
fn azure_severities_block_at_their_threshold() {
    let answer = ok(sample("azure-contentsafety-text-analyze.response.json"));
    let default = service(
        json!({"name": "az", "kind": "azureContentSafety", "cluster": "c",
        "authority": "x.cognitiveservices.azure.com", "apiKey": "k"}),
    );
    // The sample: Hate 2, others 0, and a blocklist match.
    assert_eq!(
        default.verdict(&answer),
        Verdict::Block(Some("blocklist".into()))
    );
    let clean = ok(sample("azure-contentsafety-text-analyze.x-ms-example.json"));
    let v: Value = serde_json::from_slice(&clean.body).unwrap();
    let example = ok(serde_json::to_vec(&v["responses"]["200"]["body"]).unwrap());
    assert_eq!(default.verdict(&example), Verdict::Allow);
    let strict = service(
        json!({"name": "az", "kind": "azureContentSafety", "cluster": "c",
        "authority": "a", "thresholds": {"Hate": 2, "Violence": 6}}),
    );
    let no_blocklist: Value = {
        let mut v: Value = serde_json::from_slice(&answer.body).unwrap();
        v["blocklistsMatch"] = json!([]);
        v
    };
    let hate2 = ok(serde_json::to_vec(&no_blocklist).unwrap());
    assert_eq!(strict.verdict(&hate2), Verdict::Block(Some("Hate".into())));
    assert_eq!(
        default.verdict(&hate2),
        Verdict::Allow,
        "2 is under the default 4"
    );
    let body: Value = serde_json::from_slice(&strict.body("I hate you")).unwrap();
    assert_eq!(body["text"], "I hate you");
    assert_eq!(body["categories"], json!(["Hate", "Violence"]));
    assert!(strict
        .request(b"{}")
        .headers
        .iter()
        .all(|(k, _)| *k != "ocp-apim-subscription-key"));
    assert!(default
        .request(b"{}")
        .headers
        .iter()
        .any(|(k, v)| *k == "ocp-apim-subscription-key" && *v == b"k"));
}

#[test]
fn a_generic_guard_fills_its_template_and_reads_its_pointer() {
    let s = service(
        json!({"name": "g", "kind": "http", "cluster": "g", "authority": "guard",
        "path": "/check", "bodyTemplate": "{\"q\": ${text}, \"v\": 1}",
        "verdictPointer": "/result/verdict", "blockValue": "deny",
        "headers": {"X-Token": "t"}}),
    );
    let body: Value = serde_json::from_slice(&s.body("say \"hi\"")).unwrap();
    assert_eq!(body, json!({"q": "say \"hi\"", "v": 1}));
    let deny = ok(br#"{"result": {"verdict": "deny"}}"#.to_vec());
    let allow = ok(br#"{"result": {"verdict": "allow"}}"#.to_vec());
    assert_eq!(s.verdict(&deny), Verdict::Block(None));
    assert_eq!(s.verdict(&allow), Verdict::Allow);
    assert!(matches!(s.verdict(&ok(b"{}".to_vec())), Verdict::Failed(_)));
    assert!(s.request(b"").headers.iter().any(|(k, _)| *k == "x-token"));
}

#[test]
fn failures_are_failures() {
    let s =
        service(json!({"name": "o", "kind": "openaiModeration", "cluster": "m", "authority": "a"}));
    assert!(matches!(
        s.verdict(&CallResponse::default()),
        Verdict::Failed(_)
    ));
    let e = CallResponse {
        status: Some(503),
        ..CallResponse::default()
    };
    assert!(matches!(s.verdict(&e), Verdict::Failed(_)));
    assert!(matches!(
        s.verdict(&ok(b"<html>".to_vec())),
        Verdict::Failed(_)
    ));
}

#[test]
fn bad_services_are_refused_with_their_path() {
    let err = |v: Value| {
        let raw: RawService = serde_json::from_value(v).unwrap();
        Service::build(raw, "services[1]").unwrap_err().to_string()
    };
    assert!(
        err(json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a"}))
            .starts_with("services[1].path")
    );
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a",
        "path": "/x", "bodyTemplate": "{}"})
    )
    .starts_with("services[1].bodyTemplate"));
    assert!(err(
        json!({"name": "o", "kind": "openaiModeration", "cluster": "c",
        "authority": "a", "timeoutMs": 0})
    )
    .starts_with("services[1].timeoutMs"));
    assert!(err(
        json!({"name": "o", "kind": "openaiModeration", "cluster": "c",
        "authority": "a", "thresholds": {"Hate": 2}})
    )
    .starts_with("services[1].thresholds"));
    assert!(err(
        json!({"name": "o", "kind": "openaiModeration", "cluster": "c",
        "authority": "a", "apiKey": "sk-1\r\nx-injected: 1"})
    )
    .starts_with("services[1].apiKey"));
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a", "path": "/x",
        "headers": {"x-token": "a\nb"}})
    )
    .starts_with("services[1].headers.x-token"));
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a", "path": "/x",
        "headers": {"x token": "v"}})
    )
    .starts_with("services[1].headers.x token"));
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a\r\nx-injected: 1",
        "path": "/x"})
    )
    .starts_with("services[1].authority"));
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a",
        "path": "/x\r\nx-injected: 1"})
    )
    .starts_with("services[1].path"));
    assert!(err(
        json!({"name": "g", "kind": "http", "cluster": "c", "authority": "a", "path": "x"})
    )
    .starts_with("services[1].path"));
    assert!(err(
        json!({"name": "o", "kind": "openaiModeration", "cluster": "c", "authority": "a",
        "requests": false})
    )
    .starts_with("services[1].requests"));
}
