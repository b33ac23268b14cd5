//! SigV4 verification of incoming Bedrock requests (only when `--aws-access-key-id` and
//! `--aws-secret-key` are configured), with the 403s Bedrock answers: a missing signature
//! (`MissingAuthenticationTokenException`), an unknown access key
//! (`UnrecognizedClientException`), a wrong signature (`InvalidSignatureException`), and a
//! malformed `Authorization` (`IncompleteSignatureException`).

use std::time::{SystemTime, UNIX_EPOCH};

use aigw_shared::aws::sigv4_verify::VerifyError;
use aigw_shared::aws::{
    verify, AmzDate, Credentials as AwsCredentials, SignableRequest, VerifyPolicy,
};

use super::error;
use crate::auth::Credentials;
use crate::plan::Plan;
use crate::request::SimRequest;

/// The message of Bedrock's 403 for a signature that does not match.
pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
signature you provided. Check your AWS Secret Access Key and signing method. Consult the service \
documentation for details.";

/// Checks the request's SigV4 signature against the configured key (service `bedrock`, any
/// region, at most 5 minutes of clock skew).
pub fn check(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    let Some(key) = &creds.aws else {
        return Ok(());
    };
    let path = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let mut signable = SignableRequest::new(&req.method, &path, &req.body);
    for (name, value) in &req.headers {
        if let Ok(v) = value.to_str() {
            signable = signable.header(name.as_str(), v);
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    let policy = VerifyPolicy {
        now: Some(AmzDate::from_unix_seconds(now)),
        service: Some("bedrock"),
        ..VerifyPolicy::default()
    };
    let lookup = |id: &str| {
        (id == key.access_key_id)
            .then(|| AwsCredentials::new(key.access_key_id.clone(), key.secret_access_key.clone()))
    };
    verify(&signable, lookup, &policy)
        .map(|_| ())
        .map_err(|e| rejection(&e))
}

/// Bedrock's 403 for a verification failure.
pub fn rejection(e: &VerifyError) -> Plan {
    match e {
        VerifyError::MissingAuthorization => error::typed(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        VerifyError::UnknownAccessKey(_) | VerifyError::SessionToken => error::typed(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        VerifyError::SignatureMismatch { .. } | VerifyError::PayloadHashMismatch => {
            error::typed(403, "InvalidSignatureException", SIGNATURE_MISMATCH)
        }
        VerifyError::ClockSkew { time, .. } => error::typed(
            403,
            "InvalidSignatureException",
            &format!(
                "Signature expired: {time} is now earlier or later than the allowed 5 minutes."
            ),
        ),
        other => error::typed(403, "IncompleteSignatureException", &other.to_string()),
    }
}
