//! The RS256-signed JWT a service account trades for an access token (RFC 7523): header
//! `{"alg":"RS256","typ":"JWT","kid"}`, claims `{iss, scope, aud, iat, exp}` (one hour),
//! base64url without padding, RSASSA-PKCS1-v1_5 over SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::sha2::{Digest, Sha256};
use rsa::Pkcs1v15Sign;
use serde_json::{json, Map, Value};

use super::{AuthError, ServiceAccount};

/// Lifetime of an assertion (Google's maximum), in seconds.
pub const LIFETIME: i64 = 3600;

/// The signed assertion for `scope` at `now` (Unix seconds).
pub fn assertion(account: &ServiceAccount, scope: &str, now: i64) -> Result<String, AuthError> {
    let mut header = Map::new();
    header.insert("alg".into(), json!("RS256"));
    header.insert("typ".into(), json!("JWT"));
    if let Some(kid) = &account.key_id {
        header.insert("kid".into(), json!(kid));
    }
    let claims = json!({
        "iss": account.client_email,
        "scope": scope,
        "aud": account.token_uri,
        "iat": now,
        "exp": now + LIFETIME,
    });
    let input = format!("{}.{}", segment(&Value::Object(header)), segment(&claims));
    let signature = sign(account, input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

fn segment(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `input`.
pub fn sign(account: &ServiceAccount, input: &[u8]) -> Result<Vec<u8>, AuthError> {
    let digest = Sha256::digest(input);
    account
        .key
        .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
        .map_err(|e| AuthError::Sign(e.to_string()))
}
