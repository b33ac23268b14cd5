//! Service-account auth tests: key files, RS256 signatures checked against OpenSSL, the JWT
//! layout, the token endpoint's answers, and the cache's decisions over an injected clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs8::DecodePublicKey;
use rsa::sha2::{Digest, Sha256};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};

use super::token::{self, REFRESH_MARGIN, USABLE_MARGIN};
use super::{jwt, AuthError, GoogleAuth, ServiceAccount, TokenCache};

const NOW: i64 = 1_750_000_000;

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/vertex")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn key_json() -> Value {
    serde_json::from_str(&fixture("service-account.test-only.json")).unwrap()
}

fn account() -> ServiceAccount {
    ServiceAccount::from_json(&key_json()).unwrap()
}

#[test]
fn key_files_parse_as_objects_or_text_and_never_print_the_key() {
    let a = account();
    assert_eq!(a.client_email, "gateway@aigw-test.iam.gserviceaccount.com");
    assert_eq!(a.token_uri, "https://oauth2.googleapis.com/token");
    assert_eq!(
        a.key_id.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567")
    );
    let text = Value::String(fixture("service-account.test-only.json"));
    assert_eq!(
        ServiceAccount::from_json(&text).unwrap().client_email,
        a.client_email
    );
    let shown = format!("{a:?}");
    assert!(
        !shown.contains("PRIVATE") && !shown.contains("MII"),
        "{shown}"
    );
}

#[test]
fn unusable_key_files_are_rejected_with_the_reason() {
    let mut cases = Vec::new();
    for (field, value) in [
        ("client_email", json!("")),
        (
            "private_key",
            json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        ),
        ("type", json!("authorized_user")),
        ("token_uri", json!("oauth2.googleapis.com/token")),
    ] {
        let mut v = key_json();
        v[field] = value;
        cases.push((field, v));
    }
    cases.push(("json", json!("{not json")));
    cases.push(("object", json!(42)));
    for (what, v) in cases {
        match ServiceAccount::from_json(&v) {
            Err(AuthError::Key(msg)) => assert!(!msg.contains("MII"), "{what}: {msg}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn rs256_signatures_equal_openssls_byte_for_byte() {
    let reference = fixture("openssl-rs256.txt");
    let mut lines = reference.lines();
    let (input, want) = (lines.next().unwrap(), lines.next().unwrap());
    let sig = jwt::sign(&account(), input.as_bytes()).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.encode(sig), want);
}

#[test]
fn the_assertion_is_a_signed_jwt_for_the_token_endpoint() {
    let a = account();
    let token = jwt::assertion(&a, super::CLOUD_PLATFORM_SCOPE, NOW).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode =
        |s: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap() };
    assert_eq!(
        decode(parts[0]),
        json!({"alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef0123456789abcdef01234567"})
    );
    assert_eq!(
        decode(parts[1]),
        json!({
            "iss": "gateway@aigw-test.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": "https://oauth2.googleapis.com/token",
            "iat": NOW,
            "exp": NOW + 3600,
        })
    );
    let public =
        RsaPublicKey::from_public_key_pem(&fixture("service-account.test-only.pub.pem")).unwrap();
    let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    public
        .verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &sig)
        .unwrap();
}

#[test]
fn token_requests_are_jwt_bearer_forms() {
    assert_eq!(
        token::request_body("a.b-c_d"),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d"
    );
    assert_eq!(
        token::split_uri("https://oauth2.googleapis.com/token").unwrap(),
        ("oauth2.googleapis.com".to_owned(), "/token".to_owned())
    );
    assert_eq!(token::split_uri("http://localhost:8089").unwrap().1, "/");
    assert!(token::split_uri("ftp://x/y").is_err());
}

#[test]
fn token_answers_give_a_token_with_its_expiry_or_the_endpoints_reason() {
    let ok = br#"{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}"#;
    let t = token::parse_response(200, ok, NOW).unwrap();
    assert_eq!((t.value.as_str(), t.expires_at), ("ya29.test", NOW + 3599));
    assert!(!format!("{t:?}").contains("ya29"));
    let denied = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
    assert_eq!(
        token::parse_response(400, denied, NOW),
        Err(AuthError::Token(
            "HTTP 400: invalid_grant: Invalid JWT Signature.".into()
        ))
    );
    for (status, body) in [
        (0, &b""[..]),
        (502, b"<html>"),
        (200, br#"{"expires_in":10}"#),
        (200, br#"{"access_token":"t","expires_in":0}"#),
        (
            200,
            br#"{"access_token":"t","expires_in":10,"token_type":"MAC"}"#,
        ),
    ] {
        assert!(
            token::parse_response(status, body, NOW).is_err(),
            "{status}"
        );
    }
}

#[test]
fn the_cache_refreshes_early_fetches_once_and_backs_off_after_failures() {
    let mut c = TokenCache::default();
    assert!(c.should_fetch(NOW) && c.usable(NOW).is_none());
    c.start_fetch(NOW);
    assert!(!c.should_fetch(NOW + 29), "one fetch at a time");
    assert!(c.should_fetch(NOW + 30), "a lost fetch is retried");
    c.fail(NOW + 30);
    assert!(!c.should_fetch(NOW + 34) && c.should_fetch(NOW + 35));
    let exp = NOW + 3600;
    c.store(token::AccessToken {
        value: "t1".into(),
        expires_at: exp,
    });
    assert_eq!(c.usable(NOW + 40), Some("t1"));
    assert!(!c.should_fetch(exp - REFRESH_MARGIN - 1));
    assert!(
        c.should_fetch(exp - REFRESH_MARGIN),
        "refresh before expiry"
    );
    assert_eq!(
        c.usable(exp - REFRESH_MARGIN),
        Some("t1"),
        "still used meanwhile"
    );
    assert_eq!(
        c.usable(exp - USABLE_MARGIN),
        None,
        "never sent when about to expire"
    );
}

#[test]
fn google_auth_plans_one_callout_and_caches_its_answer() {
    let auth = GoogleAuth::new(account());
    let mut cache = TokenCache::default();
    assert_eq!(cache.usable(NOW), None);
    let fetch = auth
        .fetch(&mut cache, NOW, false)
        .unwrap()
        .expect("a fetch");
    assert_eq!(
        (fetch.authority.as_str(), fetch.path.as_str()),
        ("oauth2.googleapis.com", "/token")
    );
    assert_eq!(fetch.content_type, "application/x-www-form-urlencoded");
    assert!(fetch.body.starts_with(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"
    ));
    assert_eq!(
        auth.fetch(&mut cache, NOW + 1, false).unwrap(),
        None,
        "already in flight"
    );
    assert!(
        auth.fetch(&mut cache, NOW + 1, true).unwrap().is_some(),
        "a request that cannot go on without a token fetches anyway"
    );
    let ok = br#"{"access_token":"ya29.a","expires_in":3600,"token_type":"Bearer"}"#;
    auth.on_response(&mut cache, 200, ok, NOW + 1).unwrap();
    assert_eq!(cache.usable(NOW + 2), Some("ya29.a"));
    assert_eq!(auth.fetch(&mut cache, NOW + 2, false).unwrap(), None);
    assert!(auth.on_response(&mut cache, 401, b"{}", NOW + 3).is_err());
    assert_eq!(
        cache.usable(NOW + 3),
        Some("ya29.a"),
        "a failed refresh keeps the old token"
    );
}

#[test]
fn a_cancelled_fetch_does_not_block_the_next_one() {
    let auth = GoogleAuth::new(account());
    let mut cache = TokenCache::default();
    assert!(auth.fetch(&mut cache, NOW, false).unwrap().is_some());
    assert!(auth.fetch(&mut cache, NOW + 1, false).unwrap().is_none());
    cache.cancel_fetch();
    assert!(auth.fetch(&mut cache, NOW + 1, false).unwrap().is_some());
}
