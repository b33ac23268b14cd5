//! Check a SigV4-signed request the way AWS would: parse `Authorization`, look up the secret of its
//! access key, recompute the signature over the headers it names, and compare.
//!
//! Used by the simulated upstream (llm-sim) to check what the gateway sends, and by tests.

use super::hmac::{constant_time_eq, sha256_hex};
use super::sigv4::{canonical_headers, compute, Credentials, Scope, SignableRequest, ALGORITHM};
use super::time::AmzDate;
use super::uri::PathMode;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// The access key id of the credential.
    pub access_key_id: String,
    /// The scope date `YYYYMMDD`.
    pub date: String,
    /// The scope region.
    pub region: String,
    /// The scope service.
    pub service: String,
    /// The signed header names, as listed.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// What the verifier checks besides the signature itself.
#[derive(Debug, Clone, Default)]
pub struct VerifyPolicy<'a> {
    /// The current time; when given, `x-amz-date` must be within `max_skew_seconds` of it.
    pub now: Option<AmzDate>,
    /// The allowed clock difference (AWS allows 5 minutes; 0 means 300).
    pub max_skew_seconds: i64,
    /// The region the scope must name, if any.
    pub region: Option<&'a str>,
    /// The service the scope must name, if any.
    pub service: Option<&'a str>,
    /// How the path becomes the canonical URI.
    pub path_mode: PathMode,
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The parsed `Authorization` header.
    pub authorization: ParsedAuthorization,
    /// The signing time from `x-amz-date`.
    pub time: AmzDate,
    /// The `x-amz-security-token` value, if the request had one.
    pub session_token: Option<String>,
}

/// Why a request failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header is not `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(&'static str),
    /// No valid `x-amz-date` header.
    #[error("missing or invalid x-amz-date header")]
    BadDate,
    /// The credential scope date is not the date of `x-amz-date`.
    #[error("credential scope date {scope} does not match x-amz-date {date}")]
    ScopeDateMismatch {
        /// The scope date.
        scope: String,
        /// The request date.
        date: String,
    },
    /// The scope names another region or service than expected.
    #[error("credential scope names {what} {got:?}, expected {expected:?}")]
    WrongScope {
        /// `region` or `service`.
        what: &'static str,
        /// The scope's value.
        got: String,
        /// The expected value.
        expected: String,
    },
    /// The access key is unknown.
    #[error("unknown access key {0:?}")]
    UnknownAccessKey(String),
    /// The session token does not match the credentials' token (or one is missing).
    #[error("session token missing or wrong")]
    SessionToken,
    /// `x-amz-date` is too far from `now`.
    #[error("request time {time} is {skew_seconds}s away from now")]
    ClockSkew {
        /// The request time.
        time: String,
        /// The difference in seconds.
        skew_seconds: i64,
    },
    /// `host` (or `x-amz-date`, or a present session token) is not among the signed headers.
    #[error("header {0:?} must be signed")]
    HeaderNotSigned(&'static str),
    /// A signed header is absent from the request.
    #[error("signed header {0:?} is missing from the request")]
    SignedHeaderMissing(String),
    /// `x-amz-content-sha256` does not match the body.
    #[error("x-amz-content-sha256 does not match the body")]
    PayloadHashMismatch,
    /// The signature differs; the canonical request and string to sign are what this side computed.
    #[error("signature mismatch")]
    SignatureMismatch {
        /// The canonical request recomputed here.
        canonical_request: String,
        /// The string to sign recomputed here.
        string_to_sign: String,
    },
}

/// Parse an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<ParsedAuthorization, VerifyError> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or(VerifyError::MalformedAuthorization(
            "algorithm is not AWS4-HMAC-SHA256",
        ))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part
            .trim()
            .split_once('=')
            .ok_or(VerifyError::MalformedAuthorization("component without '='"))?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => return Err(VerifyError::MalformedAuthorization("unknown component")),
        }
    }
    let credential = credential.ok_or(VerifyError::MalformedAuthorization("no Credential"))?;
    let signed = signed.ok_or(VerifyError::MalformedAuthorization("no SignedHeaders"))?;
    let signature = signature.ok_or(VerifyError::MalformedAuthorization("no Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = parts.as_slice() else {
        return Err(VerifyError::MalformedAuthorization(
            "Credential is not key/date/region/service/aws4_request",
        ));
    };
    if *terminator != "aws4_request" || key.is_empty() || date.len() != 8 {
        return Err(VerifyError::MalformedAuthorization(
            "Credential is not key/date/region/service/aws4_request",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::MalformedAuthorization(
            "Signature is not 64 hex digits",
        ));
    }
    Ok(ParsedAuthorization {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Verify `request` (which carries its `Authorization`, `x-amz-date` and any session token
/// headers). `lookup` returns the credentials of an access key id; when they hold a session token
/// the request must carry the same one.
pub fn verify<F>(
    request: &SignableRequest<'_>,
    lookup: F,
    policy: &VerifyPolicy<'_>,
) -> Result<Verified, VerifyError>
where
    F: FnOnce(&str) -> Option<Credentials>,
{
    let auth = parse_authorization(
        request
            .header_value("authorization")
            .ok_or(VerifyError::MissingAuthorization)?,
    )?;
    let date_text = request
        .header_value("x-amz-date")
        .ok_or(VerifyError::BadDate)?;
    let time = AmzDate::parse(date_text.trim()).ok_or(VerifyError::BadDate)?;
    if time.date_stamp() != auth.date {
        return Err(VerifyError::ScopeDateMismatch {
            scope: auth.date,
            date: date_text.to_owned(),
        });
    }
    check_expected("region", &auth.region, policy.region)?;
    check_expected("service", &auth.service, policy.service)?;
    check_skew(time, policy)?;
    let credentials = lookup(&auth.access_key_id)
        .ok_or_else(|| VerifyError::UnknownAccessKey(auth.access_key_id.clone()))?;
    let session_token = request
        .header_value("x-amz-security-token")
        .map(str::to_owned);
    if credentials.session_token.is_some() && credentials.session_token != session_token {
        return Err(VerifyError::SessionToken);
    }
    let canonical = signed_header_values(request, &auth, session_token.is_some())?;
    let payload_hash = payload_hash(request)?;
    let scope = Scope {
        date: auth.date.clone(),
        region: &auth.region,
        service: &auth.service,
    };
    let computed = compute(
        request,
        &canonical,
        &payload_hash,
        policy.path_mode,
        date_text.trim(),
        &scope,
        &credentials.secret_access_key,
    );
    if !constant_time_eq(computed.signature.as_bytes(), auth.signature.as_bytes()) {
        return Err(VerifyError::SignatureMismatch {
            canonical_request: computed.canonical_request,
            string_to_sign: computed.string_to_sign,
        });
    }
    Ok(Verified {
        authorization: auth,
        time,
        session_token,
    })
}

fn check_expected(
    what: &'static str,
    got: &str,
    expected: Option<&str>,
) -> Result<(), VerifyError> {
    match expected {
        Some(e) if e != got => Err(VerifyError::WrongScope {
            what,
            got: got.to_owned(),
            expected: e.to_owned(),
        }),
        _ => Ok(()),
    }
}

fn check_skew(time: AmzDate, policy: &VerifyPolicy<'_>) -> Result<(), VerifyError> {
    let Some(now) = policy.now else { return Ok(()) };
    let max = if policy.max_skew_seconds > 0 {
        policy.max_skew_seconds
    } else {
        300
    };
    let skew = time.unix_seconds().saturating_sub(now.unix_seconds());
    if skew.saturating_abs() > max {
        return Err(VerifyError::ClockSkew {
            time: time.to_string(),
            skew_seconds: skew,
        });
    }
    Ok(())
}

/// The canonical (name, value) list of the headers the `Authorization` header says were signed.
fn signed_header_values(
    request: &SignableRequest<'_>,
    auth: &ParsedAuthorization,
    has_token: bool,
) -> Result<Vec<(String, String)>, VerifyError> {
    let listed = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    if !listed("host") {
        return Err(VerifyError::HeaderNotSigned("host"));
    }
    if !listed("x-amz-date") {
        return Err(VerifyError::HeaderNotSigned("x-amz-date"));
    }
    if has_token && !listed("x-amz-security-token") {
        return Err(VerifyError::HeaderNotSigned("x-amz-security-token"));
    }
    let selected: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(n, _)| {
            auth.signed_headers
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
        })
        .copied()
        .collect();
    let canonical = canonical_headers(&selected);
    if let Some(missing) = auth
        .signed_headers
        .iter()
        .find(|h| !canonical.iter().any(|(n, _)| n == *h))
    {
        return Err(VerifyError::SignedHeaderMissing(missing.clone()));
    }
    if canonical.len() != auth.signed_headers.len() {
        return Err(VerifyError::MalformedAuthorization(
            "SignedHeaders is not sorted, lowercase and unique",
        ));
    }
    Ok(canonical)
}

/// The payload hash of the canonical request: `x-amz-content-sha256` when present (it must then
/// match the body unless it is `UNSIGNED-PAYLOAD`), otherwise the hash of the body.
fn payload_hash(request: &SignableRequest<'_>) -> Result<String, VerifyError> {
    let body_hash = sha256_hex(request.body);
    match request.header_value("x-amz-content-sha256").map(str::trim) {
        Some("UNSIGNED-PAYLOAD") => Ok("UNSIGNED-PAYLOAD".to_owned()),
        Some(declared) if declared.eq_ignore_ascii_case(&body_hash) => Ok(declared.to_owned()),
        Some(_) => Err(VerifyError::PayloadHashMismatch),
        None => Ok(body_hash),
    }
}
