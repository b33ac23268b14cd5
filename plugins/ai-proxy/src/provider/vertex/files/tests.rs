//! File URI policy: `gs://` URIs only under configured bucket prefixes, `http(s)` always.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::json;

use super::FileUriPolicy;

fn body(uri: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"contents": [{"role": "user", "parts": [
        {"text": "describe"},
        {"fileData": {"mimeType": "application/pdf", "fileUri": uri}}
    ]}]}))
    .unwrap()
}

fn policy(prefixes: &[&str]) -> FileUriPolicy {
    FileUriPolicy::new(prefixes.iter().map(|p| (*p).to_owned()).collect()).unwrap()
}

#[test]
fn by_default_every_gs_uri_is_refused_and_http_urls_pass() {
    let p = FileUriPolicy::default();
    for uri in [
        "gs://private-bucket/secrets.pdf",
        "GS://private-bucket/secrets.pdf",
        "gs:/private-bucket/secrets.pdf",
        "file:///etc/passwd.pdf",
    ] {
        let e = p.check_body(&body(uri)).unwrap_err();
        assert_eq!(e.status, 400, "{uri}");
        assert_eq!(e.code.as_deref(), Some("file_uri_not_allowed"));
        assert!(e.message.contains(uri), "{}", e.message);
    }
    for uri in ["https://example.com/a.pdf", "http://example.com/a.png"] {
        p.check_body(&body(uri)).unwrap();
    }
    p.check_body(br#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#)
        .unwrap();
}

#[test]
fn listed_prefixes_admit_their_objects_only() {
    let p = policy(&["gs://team-docs/", "gs://shared/public/"]);
    p.check_body(&body("gs://team-docs/report.pdf")).unwrap();
    p.check_body(&body("gs://shared/public/a/b.png")).unwrap();
    for uri in [
        "gs://team-docs-private/report.pdf",
        "gs://shared/private/x.pdf",
        "gs://shared/public/../private/x.pdf",
        "gs://shared/public/%2E%2E/private/x.pdf",
        " gs://team-docs/report.pdf",
    ] {
        assert!(p.check_body(&body(uri)).is_err(), "{uri}");
    }
}

#[test]
fn the_snake_case_field_name_is_checked_too() {
    let p = FileUriPolicy::default();
    let b = serde_json::to_vec(
        &json!({"contents": [{"parts": [{"file_data": {"file_uri": "gs://x/y.pdf"}}]}]}),
    )
    .unwrap();
    assert!(p.check_body(&b).is_err());
}

#[test]
fn prefixes_must_name_a_bucket_ended_by_a_slash() {
    for bad in [
        "gs://bucket",
        "gs:///x/",
        "https://bucket/",
        "gs://b/../",
        "",
    ] {
        let e = FileUriPolicy::new(vec![bad.to_owned()]).unwrap_err();
        assert_eq!(e.path(), "allowedFileUriPrefixes[0]", "{bad}");
    }
    policy(&["gs://bucket/", "gs://bucket/folder/name-"]);
}
