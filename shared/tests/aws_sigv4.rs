//! SigV4 signer and verifier tests against AWS's published signing test suite.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aigw_shared::aws::sigv4::signing_key;
use aigw_shared::aws::sigv4_verify::parse_authorization;
use aigw_shared::aws::{
    hmac::hex, sign, verify, AmzDate, Credentials, PathMode, SignError, SignableRequest,
    SigningParams, VerifyError, VerifyPolicy,
};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn suite_time() -> AmzDate {
    AmzDate::parse("20150830T123600Z").unwrap()
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/aws-sigv4")
}

/// A parsed `*.signed.txt` file.
struct Vector {
    name: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Vector {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let (head, body) = text.split_once("\n\n").unwrap();
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        let target = rest.strip_suffix(" HTTP/1.1").unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        Self {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            method: method.to_owned(),
            path: target.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request as it was before signing (without the headers the signer adds).
    fn unsigned(&self) -> SignableRequest<'_> {
        let mut req = SignableRequest::new(&self.method, &self.path, &self.body);
        for (n, v) in &self.headers {
            let ours = [
                "authorization",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-content-sha256",
            ];
            if !ours.iter().any(|o| n.eq_ignore_ascii_case(o)) {
                req = req.header(n, v);
            }
        }
        req
    }

    /// The full signed request.
    fn signed(&self) -> SignableRequest<'_> {
        let mut req = SignableRequest::new(&self.method, &self.path, &self.body);
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        req
    }

    fn credentials(&self) -> Credentials {
        let creds = Credentials::new(ACCESS_KEY, SECRET);
        match self.header("x-amz-security-token") {
            Some(token) => creds.with_session_token(token),
            None => creds,
        }
    }
}

fn all_vectors() -> Vec<Vector> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".signed.txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "expected the suite's vectors, found {}",
        files.len()
    );
    files.iter().map(|p| Vector::load(p)).collect()
}

fn params<'a>(creds: &'a Credentials, content_sha256_header: bool) -> SigningParams<'a> {
    SigningParams {
        credentials: creds,
        region: "us-east-1",
        service: "service",
        time: suite_time(),
        content_sha256_header,
        path_mode: PathMode::Normalized,
    }
}

#[test]
fn reproduces_the_authorization_header_of_every_suite_vector() {
    for v in all_vectors() {
        let expected = v.header("authorization").unwrap();
        let creds = v.credentials();
        let with_sha = expected.contains("x-amz-content-sha256");
        let signed = sign(&v.unsigned(), &params(&creds, with_sha)).unwrap();
        assert_eq!(
            signed.authorization, expected,
            "{}\n{}",
            v.name, signed.canonical_request
        );
        for (name, value) in &signed.headers {
            assert_eq!(
                v.header(name),
                Some(value.as_str()),
                "{}: header {name}",
                v.name
            );
        }
    }
}

#[test]
fn verifies_every_suite_vector_and_reports_its_scope() {
    for v in all_vectors() {
        let creds = v.credentials();
        let policy = VerifyPolicy {
            now: Some(suite_time()),
            region: Some("us-east-1"),
            service: Some("service"),
            ..VerifyPolicy::default()
        };
        let ok = verify(
            &v.signed(),
            |key| (key == ACCESS_KEY).then(|| creds.clone()),
            &policy,
        )
        .unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_eq!(ok.authorization.access_key_id, ACCESS_KEY);
        assert_eq!(ok.time, suite_time());
        assert_eq!(ok.session_token, creds.session_token);
    }
}

#[test]
fn get_vanilla_has_the_published_string_to_sign() {
    let v = Vector::load(&vectors_dir().join("get-vanilla.signed.txt"));
    let creds = v.credentials();
    let signed = sign(&v.unsigned(), &params(&creds, false)).unwrap();
    assert_eq!(
        signed.string_to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
    assert_eq!(
        signed.canonical_request,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn derives_the_documented_iam_signing_key() {
    // AWS General Reference, "Examples of how to derive a signing key for Signature Version 4".
    let key = signing_key(SECRET, "20150830", "us-east-1", "iam");
    assert_eq!(
        hex(&key),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}

#[test]
fn double_encodes_an_already_encoded_bedrock_model_path() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let body = br#"{"messages":[]}"#;
    let req = SignableRequest::new("POST", "/model/us.amazon.nova-micro-v1%3A0/converse", body)
        .header("host", "bedrock-runtime.us-east-1.amazonaws.com")
        .header("content-type", "application/json");
    let mut p = params(&creds, false);
    p.service = "bedrock";
    let signed = sign(&req, &p).unwrap();
    let second_line = signed.canonical_request.lines().nth(1).unwrap();
    assert_eq!(second_line, "/model/us.amazon.nova-micro-v1%253A0/converse");
}

#[test]
fn s3_mode_encodes_the_path_once_and_keeps_dot_segments() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let req =
        SignableRequest::new("GET", "/a%3Ab/./c//d", b"").header("host", "b.s3.amazonaws.com");
    let mut p = params(&creds, true);
    p.path_mode = PathMode::S3;
    let signed = sign(&req, &p).unwrap();
    assert_eq!(
        signed.canonical_request.lines().nth(1).unwrap(),
        "/a%3Ab/./c//d"
    );
    assert!(signed
        .authorization
        .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"));
}

#[test]
fn session_token_is_added_and_signed() {
    let creds = Credentials::new(ACCESS_KEY, SECRET).with_session_token("TOKEN");
    let req = SignableRequest::new("POST", "/", b"{}").header("Host", "example.amazonaws.com");
    let signed = sign(&req, &params(&creds, false)).unwrap();
    assert!(signed
        .headers
        .contains(&("x-amz-security-token", "TOKEN".to_owned())));
    assert!(signed
        .authorization
        .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
}

#[test]
fn signing_without_a_host_header_is_an_error() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let req = SignableRequest::new("GET", "/", b"").header(":authority", "example.amazonaws.com");
    assert_eq!(
        sign(&req, &params(&creds, false)),
        Err(SignError::MissingHost)
    );
}

#[test]
fn a_region_with_a_slash_is_rejected() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let req = SignableRequest::new("GET", "/", b"").header("host", "h");
    let mut p = params(&creds, false);
    p.region = "us/east";
    assert!(matches!(
        sign(&req, &p),
        Err(SignError::InvalidScope { what: "region", .. })
    ));
}

#[test]
fn the_signature_covers_the_final_body_bytes() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let a = SignableRequest::new("POST", "/", b"{\"a\":1}").header("host", "h");
    let b = SignableRequest::new("POST", "/", b"{\"a\":2}").header("host", "h");
    let sa = sign(&a, &params(&creds, false)).unwrap();
    let sb = sign(&b, &params(&creds, false)).unwrap();
    assert_ne!(sa.signature, sb.signature);
}

/// Sign a small request and return its owned header list including the signer's headers.
fn signed_headers_for(creds: &Credentials, body: &[u8]) -> Vec<(String, String)> {
    let req = SignableRequest::new("POST", "/model/m%3A1/converse", body)
        .header("host", "bedrock-runtime.us-east-1.amazonaws.com")
        .header("content-type", "application/json");
    let mut p = params(creds, true);
    p.service = "bedrock";
    let signed = sign(&req, &p).unwrap();
    let mut headers: Vec<(String, String)> = vec![
        (
            "host".into(),
            "bedrock-runtime.us-east-1.amazonaws.com".into(),
        ),
        ("content-type".into(), "application/json".into()),
    ];
    headers.extend(
        signed
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone())),
    );
    headers
}

fn verify_with(
    headers: &[(String, String)],
    body: &[u8],
    creds: &Credentials,
) -> Result<(), VerifyError> {
    let mut req = SignableRequest::new("POST", "/model/m%3A1/converse", body);
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let policy = VerifyPolicy {
        now: Some(suite_time()),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    verify(
        &req,
        |k| (k == creds.access_key_id).then(|| creds.clone()),
        &policy,
    )
    .map(|_| ())
}

#[test]
fn verifier_accepts_what_the_signer_produced() {
    let creds = Credentials::new(ACCESS_KEY, SECRET).with_session_token("TOK");
    let headers = signed_headers_for(&creds, b"{}");
    assert_eq!(verify_with(&headers, b"{}", &creds), Ok(()));
}

#[test]
fn verifier_rejects_a_changed_body() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let headers = signed_headers_for(&creds, b"{}");
    assert_eq!(
        verify_with(&headers, b"{ }", &creds),
        Err(VerifyError::PayloadHashMismatch)
    );
}

#[test]
fn verifier_rejects_a_changed_signed_header_with_its_canonical_request() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let mut headers = signed_headers_for(&creds, b"{}");
    headers[1].1 = "text/plain".into();
    match verify_with(&headers, b"{}", &creds) {
        Err(VerifyError::SignatureMismatch {
            canonical_request, ..
        }) => {
            assert!(canonical_request.contains("content-type:text/plain"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn verifier_rejects_a_wrong_secret_and_an_unknown_key() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let headers = signed_headers_for(&creds, b"{}");
    let other = Credentials::new(ACCESS_KEY, "other-secret");
    assert!(matches!(
        verify_with(&headers, b"{}", &other),
        Err(VerifyError::SignatureMismatch { .. })
    ));
    let unknown = Credentials::new("AKIDOTHER", SECRET);
    assert_eq!(
        verify_with(&headers, b"{}", &unknown),
        Err(VerifyError::UnknownAccessKey(ACCESS_KEY.into()))
    );
}

#[test]
fn verifier_requires_the_expected_session_token() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let headers = signed_headers_for(&creds, b"{}");
    let with_token = creds.clone().with_session_token("TOK");
    assert_eq!(
        verify_with(&headers, b"{}", &with_token),
        Err(VerifyError::SessionToken)
    );
}

#[test]
fn verifier_rejects_a_request_outside_the_clock_skew() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let v = Vector::load(&vectors_dir().join("get-vanilla.signed.txt"));
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(
            suite_time().unix_seconds() + 301,
        )),
        ..VerifyPolicy::default()
    };
    let got = verify(&v.signed(), |_| Some(creds.clone()), &policy);
    assert!(
        matches!(
            got,
            Err(VerifyError::ClockSkew {
                skew_seconds: -301,
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn verifier_rejects_the_wrong_service_and_missing_headers() {
    let creds = Credentials::new(ACCESS_KEY, SECRET);
    let v = Vector::load(&vectors_dir().join("get-header-key-duplicate.signed.txt"));
    let policy = VerifyPolicy {
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    assert!(matches!(
        verify(&v.signed(), |_| Some(creds.clone()), &policy),
        Err(VerifyError::WrongScope {
            what: "service",
            ..
        })
    ));
    let mut req = v.signed();
    req.headers.retain(|(n, _)| *n != "My-Header1");
    assert_eq!(
        verify(&req, |_| Some(creds.clone()), &VerifyPolicy::default()),
        Err(VerifyError::SignedHeaderMissing("my-header1".into()))
    );
}

#[test]
fn parses_and_rejects_authorization_headers() {
    let ok = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AK/20150830/eu-west-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    )
    .unwrap();
    assert_eq!(
        (ok.region.as_str(), ok.service.as_str()),
        ("eu-west-1", "bedrock")
    );
    assert_eq!(ok.signed_headers, ["host", "x-amz-date"]);
    for bad in [
        "",
        "Bearer x",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=host, Signature=zz",
    ] {
        assert!(matches!(parse_authorization(bad), Err(VerifyError::MalformedAuthorization(_))), "{bad:?}");
    }
}
