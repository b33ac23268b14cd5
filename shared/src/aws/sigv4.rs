//! AWS Signature Version 4 (header signing) of one HTTP request.
//!
//! The caller gives the method, the path as it will be sent (with an optional `?query`), the headers
//! to sign (at least `host`) and the *final* body bytes; the signer adds `x-amz-date`, the session
//! token (`x-amz-security-token`) and optionally `x-amz-content-sha256`, and computes
//! `Authorization`. Time is a parameter ([`AmzDate`]); nothing here reads a clock.
//!
//! Canonical request (AWS "Create a canonical request"): method, canonical URI (see
//! [`PathMode`]), canonical query, `name:value\n` per signed header (names lowercased, values
//! trimmed with inner runs of spaces collapsed, repeated headers joined with `,` in order), the
//! signed header list, and the hex SHA-256 of the payload.

use super::hmac::{hex, hmac_sha256, sha256_hex};
use super::time::AmzDate;
use super::uri::{canonical_path, canonical_query, PathMode};

/// The only algorithm this module signs with.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// An access key and its secret, plus the session token of temporary (STS) credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...`, `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token, sent and signed as `x-amz-security-token`.
    pub session_token: Option<String>,
}

/// Never print the secret or the token.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Long-term credentials (no session token).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// The same credentials with a session token.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

/// One request to sign or verify. Header names are matched case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignableRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded), optionally followed by `?query`.
    pub path: &'a str,
    /// Headers in the order given; pseudo-headers (`:name`) are ignored.
    pub headers: Vec<(&'a str, &'a str)>,
    /// The exact body bytes that will be sent.
    pub body: &'a [u8],
}

impl<'a> SignableRequest<'a> {
    /// A request without headers.
    pub fn new(method: &'a str, path: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            path,
            headers: Vec::new(),
            body,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// Where and how to sign.
#[derive(Debug, Clone)]
pub struct SigningParams<'a> {
    /// The credentials.
    pub credentials: &'a Credentials,
    /// The region, e.g. `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service, e.g. `bedrock`.
    pub service: &'a str,
    /// The signing time (becomes `x-amz-date`).
    pub time: AmzDate,
    /// Also send and sign `x-amz-content-sha256` (S3 requires it; optional elsewhere).
    pub content_sha256_header: bool,
    /// How the path becomes the canonical URI.
    pub path_mode: PathMode,
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// There is no `host` header to sign.
    #[error("the request has no host header to sign")]
    MissingHost,
    /// Region or service is empty or contains `/`, which would corrupt the credential scope.
    #[error("invalid {what} for the credential scope: {value:?}")]
    InvalidScope {
        /// `region` or `service`.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// The result of signing: the headers to set on the request, and the intermediate strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Headers to add (replacing any of the same name): `x-amz-date`, `x-amz-security-token` (with a
    /// session token), `x-amz-content-sha256` (if asked for) and `authorization`.
    pub headers: Vec<(&'static str, String)>,
    /// The `Authorization` header value.
    pub authorization: String,
    /// The hex signature.
    pub signature: String,
    /// The canonical request that was signed (for debugging; contains no secret).
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

/// The headers the signer owns: any value the caller passes for them is replaced.
const SIGNER_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Sign `request`: the caller then sets every header of [`SignedRequest::headers`].
pub fn sign(
    request: &SignableRequest<'_>,
    params: &SigningParams<'_>,
) -> Result<SignedRequest, SignError> {
    check_scope_part("region", params.region)?;
    check_scope_part("service", params.service)?;
    let amz_date = params.time.to_string();
    let payload_hash = sha256_hex(request.body);
    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", amz_date.clone())];
    if let Some(token) = &params.credentials.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    if params.content_sha256_header {
        added.push(("x-amz-content-sha256", payload_hash.clone()));
    }
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .filter(|(n, _)| !SIGNER_HEADERS.iter().any(|s| n.eq_ignore_ascii_case(s)))
        .copied()
        .collect();
    headers.extend(added.iter().map(|(n, v)| (*n, v.as_str())));
    let canonical = canonical_headers(&headers);
    if !canonical.iter().any(|(n, _)| n == "host") {
        return Err(SignError::MissingHost);
    }
    let scope = Scope {
        date: params.time.date_stamp(),
        region: params.region,
        service: params.service,
    };
    let parts = compute(
        request,
        &canonical,
        &payload_hash,
        params.path_mode,
        &amz_date,
        &scope,
        &params.credentials.secret_access_key,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
        params.credentials.access_key_id,
        scope.to_string_scope(),
        parts.signed_headers,
        parts.signature
    );
    added.push(("authorization", authorization.clone()));
    Ok(SignedRequest {
        headers: added,
        authorization,
        signature: parts.signature,
        canonical_request: parts.canonical_request,
        string_to_sign: parts.string_to_sign,
    })
}

fn check_scope_part(what: &'static str, value: &str) -> Result<(), SignError> {
    if value.is_empty() || value.contains(['/', ' ', ',']) {
        return Err(SignError::InvalidScope {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The credential scope `date/region/service/aws4_request`.
pub(crate) struct Scope<'a> {
    pub(crate) date: String,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

impl Scope<'_> {
    pub(crate) fn to_string_scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The signature and the strings it was computed from.
pub(crate) struct Computed {
    pub(crate) signed_headers: String,
    pub(crate) signature: String,
    pub(crate) canonical_request: String,
    pub(crate) string_to_sign: String,
}

/// Compute the signature over already-canonicalized headers (sorted, lowercased, joined).
pub(crate) fn compute(
    request: &SignableRequest<'_>,
    canonical: &[(String, String)],
    payload_hash: &str,
    path_mode: PathMode,
    amz_date: &str,
    scope: &Scope<'_>,
    secret: &str,
) -> Computed {
    let (path, query) = request.path.split_once('?').unwrap_or((request.path, ""));
    let signed_headers = canonical
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut creq = String::with_capacity(256);
    creq.push_str(request.method);
    creq.push('\n');
    creq.push_str(&canonical_path(path, path_mode));
    creq.push('\n');
    creq.push_str(&canonical_query(query));
    creq.push('\n');
    for (name, value) in canonical {
        creq.push_str(name);
        creq.push(':');
        creq.push_str(value);
        creq.push('\n');
    }
    creq.push('\n');
    creq.push_str(&signed_headers);
    creq.push('\n');
    creq.push_str(payload_hash);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.to_string_scope(),
        sha256_hex(creq.as_bytes())
    );
    let key = signing_key(secret, &scope.date, scope.region, scope.service);
    Computed {
        signed_headers,
        signature: hex(&hmac_sha256(&key, string_to_sign.as_bytes())),
        canonical_request: creq,
        string_to_sign,
    }
}

/// The derived signing key `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date_stamp: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date_stamp.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// Lowercase names, trim values and collapse inner runs of spaces, join repeated names with `,` (in
/// the order given), and sort by name.
pub(crate) fn canonical_headers(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = collapse_spaces(value);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => out.push((name, value)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
