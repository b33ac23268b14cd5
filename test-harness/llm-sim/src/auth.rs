//! Credentials the simulator can require, and the per-provider checks of the key headers.
//!
//! Without configured keys, OpenAI routes accept any request, while Anthropic (`x-api-key`),
//! Azure (`api-key` or a Bearer token), Gemini (`x-goog-api-key` or `key=`) and Vertex (a Bearer
//! token) still require their credential to be present, as the real services do. With a key
//! configured for a provider, the credential must equal it. Bedrock's SigV4 check lives in
//! [`crate::bedrock::auth`].

use crate::plan::Plan;
use crate::request::SimRequest;
pub use crate::router::AuthCheck;
use crate::{anthropic, azure, gemini, openai};

/// AWS credentials incoming Bedrock requests must be signed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsKey {
    /// Access key id (the `Credential=` prefix in the `Authorization` header).
    pub access_key_id: String,
    /// Secret access key used to recompute the signature.
    pub secret_access_key: String,
}

/// Credentials requests must carry, per provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// OpenAI `Authorization: Bearer KEY`.
    pub openai: Option<String>,
    /// Anthropic `x-api-key: KEY`.
    pub anthropic: Option<String>,
    /// Azure OpenAI `api-key: KEY` (or `Authorization: Bearer KEY`).
    pub azure: Option<String>,
    /// Gemini API `x-goog-api-key: KEY` or `?key=KEY`.
    pub gemini: Option<String>,
    /// Vertex AI `Authorization: Bearer KEY`.
    pub vertex: Option<String>,
    /// Bedrock SigV4 signing key.
    pub aws: Option<AwsKey>,
}

/// Provider names accepted by `--require-key PROVIDER=KEY`.
pub const PROVIDERS: &[&str] = &["openai", "anthropic", "azure", "gemini", "vertex"];

impl Credentials {
    /// Requires `key` from every key-based provider.
    pub fn require_everywhere(&mut self, key: &str) {
        for p in PROVIDERS {
            self.require(p, key);
        }
    }

    /// Requires `key` from one provider; `false` when the provider name is unknown.
    pub fn require(&mut self, provider: &str, key: &str) -> bool {
        let slot = match provider {
            "openai" => &mut self.openai,
            "anthropic" => &mut self.anthropic,
            "azure" => &mut self.azure,
            "gemini" => &mut self.gemini,
            "vertex" => &mut self.vertex,
            _ => return false,
        };
        *slot = Some(key.to_string());
        true
    }
}

/// A request header as text.
pub fn header<'a>(req: &'a SimRequest, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(req: &SimRequest) -> Option<&str> {
    let value = header(req, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A query parameter (raw, not decoded).
pub fn query_param<'a>(req: &'a SimRequest, name: &str) -> Option<&'a str> {
    req.query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// OpenAI: only checked when a key is configured.
pub fn openai(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    let Some(expected) = &creds.openai else {
        return Ok(());
    };
    match bearer(req) {
        None => Err(openai::error::ApiError {
            status: 401,
            message:
                "You didn't provide an API key. You need to provide your API key in an \
                      Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    .to_string(),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
        .plan()),
        Some(got) if got == expected => Ok(()),
        Some(got) => Err(openai::error::ApiError {
            status: 401,
            message: format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                redact(got)
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("invalid_api_key"),
        }
        .plan()),
    }
}

/// Anthropic: `x-api-key` (or, as Anthropic's SDKs since 2.x send it, `Authorization: Bearer`)
/// must be present (and match when configured), `anthropic-version` too.
pub fn anthropic(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    match (
        header(req, "x-api-key").or_else(|| bearer(req)),
        &creds.anthropic,
    ) {
        (None, _) | (Some(""), _) => {
            return Err(anthropic::error::shaped(
                401,
                Some("x-api-key header is required"),
            ))
        }
        (Some(got), Some(expected)) if got != expected => {
            return Err(anthropic::error::shaped(401, Some("invalid x-api-key")))
        }
        _ => {}
    }
    match header(req, "anthropic-version") {
        None | Some("") => Err(anthropic::error::shaped(
            400,
            Some("anthropic-version: header is required"),
        )),
        Some(_) => Ok(()),
    }
}

/// Azure OpenAI: `api-key` or a Bearer token must be present (and match when configured).
pub fn azure(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    let got = header(req, "api-key").or_else(|| bearer(req));
    match (got, &creds.azure) {
        (None, _) | (Some(""), _) => Err(azure::error::shaped(401, None)),
        (Some(got), Some(expected)) if got != expected => Err(azure::error::shaped(401, None)),
        _ => Ok(()),
    }
}

/// Gemini API: `x-goog-api-key` or `key=` must be present (and match when configured).
pub fn gemini(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    let got = header(req, "x-goog-api-key").or_else(|| query_param(req, "key"));
    match (got, &creds.gemini) {
        (None, _) | (Some(""), _) => Err(gemini::error::shaped(403, Some(gemini::error::NO_KEY))),
        (Some(got), Some(expected)) if got != expected => {
            Err(gemini::error::shaped(400, Some(gemini::error::BAD_KEY)))
        }
        _ => Ok(()),
    }
}

/// Vertex AI: a Bearer token must be present (and match when configured).
pub fn vertex(req: &SimRequest, creds: &Credentials) -> Result<(), Plan> {
    match (bearer(req), &creds.vertex) {
        (None, _) | (Some(""), _) => Err(gemini::error::shaped(401, Some(gemini::error::NO_TOKEN))),
        (Some(got), Some(expected)) if got != expected => {
            Err(gemini::error::shaped(401, Some(gemini::error::BAD_TOKEN)))
        }
        _ => Ok(()),
    }
}

/// `sk-ab***wxyz` style redaction, as OpenAI prints wrong keys.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "***".to_string();
    }
    let head: String = chars.iter().take(4).collect();
    let tail: String = chars.iter().skip(chars.len().saturating_sub(4)).collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &'static str)], query: &str) -> SimRequest {
        let mut map = hyper::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        SimRequest {
            method: "POST".into(),
            path: "/".into(),
            query: query.into(),
            headers: map,
            body: bytes::Bytes::new(),
            params: vec![],
        }
    }

    #[test]
    fn configured_keys_must_match_and_absent_ones_only_need_presence() {
        let mut creds = Credentials::default();
        assert!(openai(&req(&[], ""), &creds).is_ok());
        creds.require_everywhere("k1");
        assert!(openai(&req(&[("authorization", "Bearer k1")], ""), &creds).is_ok());
        assert_eq!(
            openai(&req(&[("authorization", "Bearer k2")], ""), &creds)
                .unwrap_err()
                .status(),
            401
        );
        assert!(gemini(&req(&[], "alt=sse&key=k1"), &creds).is_ok());
        assert_eq!(
            gemini(&req(&[], "key=nope"), &creds).unwrap_err().status(),
            400
        );
        assert_eq!(
            gemini(&req(&[], ""), &Credentials::default())
                .unwrap_err()
                .status(),
            403
        );
        assert!(azure(&req(&[("api-key", "k1")], ""), &creds).is_ok());
        assert_eq!(
            vertex(&req(&[("x-goog-api-key", "k1")], ""), &creds)
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn anthropic_needs_a_key_then_a_version() {
        let creds = Credentials::default();
        assert_eq!(anthropic(&req(&[], ""), &creds).unwrap_err().status(), 401);
        let no_version = req(&[("x-api-key", "k")], "");
        assert_eq!(anthropic(&no_version, &creds).unwrap_err().status(), 400);
        let ok = req(
            &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
            "",
        );
        assert!(anthropic(&ok, &creds).is_ok());
        let bearer = req(
            &[
                ("authorization", "Bearer k"),
                ("anthropic-version", "2026-10-21"),
            ],
            "",
        );
        assert!(
            anthropic(&bearer, &creds).is_ok(),
            "the 2.x SDKs send a Bearer token"
        );
        assert!(!Credentials::default().require("bedrock", "x"));
    }
}
