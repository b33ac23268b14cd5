//! Bedrock provider tests: config validation, paths, Bearer keys, and SigV4 signatures checked by
//! the shared verifier (the same check the simulated upstream makes).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aigw_shared::aws::{verify, AmzDate, Credentials, SignableRequest, VerifyPolicy};
use aigw_shared::llm::Api;
use serde_json::json;

use super::Bedrock;
use crate::provider::{ApiCall, UpstreamCall, Vendor};

const NOW: i64 = 1_440_938_160; // 20150830T123600Z

fn sigv4(token: Option<&str>) -> Bedrock {
    let mut o =
        json!({"region": "eu-west-1", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "secret"});
    if let Some(t) = token {
        o["sessionToken"] = json!(t);
    }
    Bedrock::build(&o).unwrap()
}

fn call(api: Api, model: &str, stream: bool) -> ApiCall<'_> {
    ApiCall {
        api,
        suffix: "/chat/completions",
        model,
        stream,
    }
}

#[test]
fn paths_percent_encode_the_model_id_into_one_segment() {
    let b = sigv4(None);
    assert_eq!(
        b.path(
            "",
            &call(Api::ChatCompletions, "us.amazon.nova-micro-v1:0", false)
        )
        .unwrap(),
        "/model/us.amazon.nova-micro-v1%3A0/converse"
    );
    assert_eq!(
        b.path(
            "",
            &call(
                Api::AnthropicMessages,
                "arn:aws:bedrock:us-east-1:1:inference-profile/x",
                true
            )
        )
        .unwrap(),
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/converse-stream"
    );
    assert_eq!(
        b.default_authority(),
        Some("bedrock-runtime.eu-west-1.amazonaws.com")
    );
    assert_eq!(
        b.path(
            "",
            &call(Api::Embeddings, "amazon.titan-embed-text-v2:0", false)
        )
        .unwrap(),
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
    assert!(b.path("", &call(Api::Embeddings, "", false)).is_err());
    assert!(b.path("", &call(Api::Completions, "m", false)).is_err());
    assert!(b.path("", &call(Api::ChatCompletions, "", false)).is_err());
}

#[test]
fn config_needs_a_region_and_both_key_halves() {
    for bad in [
        json!({}),
        json!({"region": "US East"}),
        json!({"region": "us-east-1", "accessKeyId": "AK"}),
        json!({"region": "us-east-1", "sessionToken": "t"}),
        json!({"region": "us-east-1", "accessKeyId": "", "secretAccessKey": "s"}),
        json!({"region": "us-east-1", "unknown": 1}),
    ] {
        assert!(Bedrock::build(&bad).is_err(), "{bad}");
    }
    let plain = Bedrock::build(&json!({"region": "us-east-1"})).unwrap();
    assert!(!plain.signs());
    assert!(!format!("{:?}", sigv4(Some("tok"))).contains("secret"));
}

fn upstream(b: &Bedrock) -> UpstreamCall {
    UpstreamCall {
        authority: b.default_authority().map(str::to_owned),
        path: "/model/us.amazon.nova-micro-v1%3A0/converse-stream".into(),
        headers: vec![("x-amz-date".into(), "stale".into())],
        body: br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#.to_vec(),
    }
}

fn check(c: &UpstreamCall, token: Option<&str>) -> Result<(), aigw_shared::aws::VerifyError> {
    let host = c.authority.clone().unwrap();
    let mut req = SignableRequest::new("POST", &c.path, &c.body).header("host", &host);
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    let mut creds = Credentials::new("AKIDEXAMPLE", "secret");
    if let Some(t) = token {
        creds = creds.with_session_token(t);
    }
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(NOW + 30)),
        region: Some("eu-west-1"),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    verify(&req, |_| Some(creds.clone()), &policy).map(|_| ())
}

#[test]
fn sigv4_signatures_verify_and_replace_stale_headers() {
    let b = sigv4(None);
    let mut c = upstream(&b);
    b.authorize(&mut c, Some("ignored-key")).unwrap();
    b.sign(&mut c, NOW).unwrap();
    let names: Vec<&str> = c.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["x-amz-date", "x-amz-content-sha256", "authorization"]
    );
    assert_eq!(c.headers[0].1, "20150830T123600Z");
    assert!(c.headers[2]
        .1
        .contains("/20150830/eu-west-1/bedrock/aws4_request"));
    assert_eq!(check(&c, None), Ok(()));
    c.body.push(b' ');
    assert!(check(&c, None).is_err(), "a changed body must not verify");
}

#[test]
fn session_tokens_are_sent_and_signed() {
    let b = sigv4(Some("session-token"));
    let mut c = upstream(&b);
    b.sign(&mut c, NOW).unwrap();
    assert!(c
        .headers
        .contains(&("x-amz-security-token".into(), "session-token".into())));
    assert_eq!(check(&c, Some("session-token")), Ok(()));
}

#[test]
fn without_sigv4_credentials_api_keys_go_out_as_bearer() {
    let b = Bedrock::build(&json!({"region": "us-west-2"})).unwrap();
    let mut c = upstream(&b);
    c.headers.clear();
    b.authorize(&mut c, Some("bedrock-api-key")).unwrap();
    b.sign(&mut c, NOW).unwrap();
    assert_eq!(
        c.headers,
        [(
            "authorization".to_owned(),
            "Bearer bedrock-api-key".to_owned()
        )]
    );
}

#[test]
fn signing_without_an_authority_is_an_internal_error() {
    let b = sigv4(None);
    let mut c = upstream(&b);
    c.authority = None;
    assert_eq!(b.sign(&mut c, NOW).unwrap_err().status, 500);
}

#[test]
fn signing_without_a_host_clock_is_an_internal_error_not_a_bad_signature() {
    let b = sigv4(None);
    let mut c = upstream(&b);
    let err = b.sign(&mut c, 0).unwrap_err();
    assert_eq!(err.status, 500);
    assert!(err.message.contains("clock"), "{}", err.message);
}

#[test]
fn invoke_is_chosen_per_provider_or_per_model_and_changes_the_path_and_schema() {
    use crate::translate::Schema;
    let per_model = Bedrock::build(&json!({
        "region": "us-east-1", "invokeModels": ["us.anthropic.claude-opus-*", "exact-model"]}))
    .unwrap();
    let claude = "us.anthropic.claude-opus-4-8";
    assert_eq!(per_model.schema_for(claude), Schema::BedrockInvoke);
    assert_eq!(per_model.schema_for("exact-model"), Schema::BedrockInvoke);
    assert_eq!(per_model.schema_for("exact-model-2"), Schema::Bedrock);
    assert_eq!(
        per_model.schema_for("us.amazon.nova-micro-v1:0"),
        Schema::Bedrock
    );
    assert_eq!(
        per_model
            .path("", &call(Api::ChatCompletions, claude, false))
            .unwrap(),
        "/model/us.anthropic.claude-opus-4-8/invoke"
    );
    assert_eq!(
        per_model
            .path("", &call(Api::AnthropicMessages, claude, true))
            .unwrap(),
        "/model/us.anthropic.claude-opus-4-8/invoke-with-response-stream"
    );
    let everything = Bedrock::build(&json!({"region": "us-east-1", "api": "invoke"})).unwrap();
    assert_eq!(
        everything.schema_for("anthropic.claude-3-haiku-20240307-v1:0"),
        Schema::BedrockInvoke
    );
    assert_eq!(
        everything
            .path(
                "",
                &call(
                    Api::ChatCompletions,
                    "anthropic.claude-3-haiku-20240307-v1:0",
                    true
                )
            )
            .unwrap(),
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
    );
    for bad in [
        json!({"region": "us-east-1", "api": "converse-stream"}),
        json!({"region": "us-east-1", "invokeModels": [""]}),
    ] {
        assert!(Bedrock::build(&bad).is_err(), "{bad}");
    }
}
