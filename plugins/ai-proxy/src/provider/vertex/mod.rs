//! Google Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/
//! {model}:generateContent` (and `:streamGenerateContent?alt=sse`) on
//! `{location}-aiplatform.googleapis.com` (`aiplatform.googleapis.com` for `global`). OpenAI
//! `/v1/embeddings` goes to `…/models/{model}:predict` (translated in
//! [`crate::translate::backend::gemini::embed::vertex`]).
//!
//! Auth: `Authorization: Bearer` with a static access token from `apiKeys`, or with an OAuth token
//! obtained for a service account (`options.serviceAccountKey`, the key file as an object or
//! text). The token is put on the call in [`Vendor::sign`], which has the host's clock. It is
//! fetched by an HTTP callout from the filter ([`Vendor::token_fetch`], answer in
//! [`Vendor::on_token`]; see [`crate::provider::auth`]) to the cluster `options.tokenCluster`
//! (default: the host of the key's `token_uri`, e.g. `oauth2.googleapis.com`). A request without
//! a usable token waits for the callout; a token close to expiry is refreshed while it is still
//! used.
//!
//! Client file URIs: `gs://` URIs are read by Vertex with the gateway project's identity, so they
//! are refused unless `options.allowedFileUriPrefixes` lists their bucket (prefix); see
//! [`files`].

#![warn(clippy::arithmetic_side_effects)]

mod files;

use aigw_shared::config::ConfigError;
use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{GoogleAuth, ServiceAccount, TokenCache};
use super::gemini::{method, model_segment, no_api};
use super::{bearer, options, ApiCall, TokenNeed, UpstreamCall, Vendor};
use crate::translate::Schema;
use files::FileUriPolicy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    project: String,
    location: String,
    #[serde(default)]
    service_account_key: Option<Value>,
    #[serde(default)]
    token_cluster: Option<String>,
    #[serde(default)]
    allowed_file_uri_prefixes: Vec<String>,
}

/// The Vertex AI provider.
#[derive(Debug)]
pub struct Vertex {
    project: String,
    location: String,
    authority: String,
    auth: Option<GoogleAuth>,
    /// The cluster token callouts go to (`None`: the token URI's host).
    token_cluster: Option<String>,
    /// The `gs://` prefixes clients may name in file parts.
    files: FileUriPolicy,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Vertex {
    /// Build from options: `project` and `location` (required), `serviceAccountKey`,
    /// `tokenCluster` and `allowedFileUriPrefixes` (optional).
    pub fn build(opts: &Value) -> Result<Self, ConfigError> {
        let o: Options = options(opts)?;
        if !name_ok(&o.project) {
            return Err(ConfigError::invalid(
                "project",
                format!("{:?} is not a Google Cloud project id", o.project),
            ));
        }
        if !name_ok(&o.location) {
            return Err(ConfigError::invalid(
                "location",
                format!("{:?} is not a Google Cloud location", o.location),
            ));
        }
        let auth = match &o.service_account_key {
            None => None,
            Some(v) => Some(GoogleAuth::new(ServiceAccount::from_json(v).map_err(
                |e| ConfigError::invalid("serviceAccountKey", e.to_string()),
            )?)),
        };
        let authority = if o.location == "global" {
            "aiplatform.googleapis.com".to_owned()
        } else {
            format!("{}-aiplatform.googleapis.com", o.location)
        };
        if o.token_cluster.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("tokenCluster", "must not be empty"));
        }
        if o.token_cluster.is_some() && auth.is_none() {
            return Err(ConfigError::invalid(
                "tokenCluster",
                "only used with serviceAccountKey",
            ));
        }
        let files = FileUriPolicy::new(o.allowed_file_uri_prefixes)?;
        Ok(Self {
            project: o.project,
            location: o.location,
            authority,
            auth,
            token_cluster: o.token_cluster,
            files,
        })
    }

    /// The service-account auth, when configured (the filter's token callout drives it).
    pub fn auth(&self) -> Option<&GoogleAuth> {
        self.auth.as_ref()
    }
}

impl Vendor for Vertex {
    fn schema(&self) -> Schema {
        Schema::Gemini
    }

    fn default_authority(&self) -> Option<&str> {
        Some(&self.authority)
    }

    fn default_base_path(&self) -> &str {
        "/v1"
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        match call.api {
            Api::ChatCompletions | Api::AnthropicMessages => Ok(format!(
                "{base}/projects/{}/locations/{}/publishers/google/models/{}{}",
                self.project,
                self.location,
                model_segment(call.model)?,
                method(call.stream)
            )),
            Api::Other if call.suffix == crate::prepare::COUNT_TOKENS => Ok(format!(
                "{base}/projects/{}/locations/{}/publishers/google/models/{}:countTokens",
                self.project,
                self.location,
                model_segment(call.model)?
            )),
            Api::Embeddings => Ok(format!(
                "{base}/projects/{}/locations/{}/publishers/google/models/{}:predict",
                self.project,
                self.location,
                model_segment(call.model)?
            )),
            _ => Err(no_api("vertex", call)),
        }
    }

    /// A static token from `apiKeys` goes out as `Authorization: Bearer`; first, the body's file
    /// URIs are checked against `allowedFileUriPrefixes` (a 400 for a `gs://` URI outside them).
    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        self.files.check_body(&call.body)?;
        bearer(call, key);
        Ok(())
    }

    /// The service account's token callout, when a token is missing or due for refresh.
    fn token_fetch(
        &self,
        cache: &mut TokenCache,
        now_unix: i64,
        force: bool,
    ) -> Result<Option<TokenNeed>, ClientError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let fetch = auth
            .fetch(cache, now_unix, force)
            .map_err(|e| ClientError::new(ErrorKind::Internal, format!("vertex: {e}")))?;
        Ok(fetch.map(|fetch| TokenNeed {
            cluster: self
                .token_cluster
                .clone()
                .unwrap_or_else(|| fetch.authority.clone()),
            wait: cache.usable(now_unix).is_none(),
            fetch,
        }))
    }

    /// Cache the token endpoint's answer; a refusal is a 503 (the service account is named in
    /// the log line the caller writes, not here).
    fn on_token(
        &self,
        cache: &mut TokenCache,
        status: u16,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), ClientError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        auth.on_response(cache, status, body, now_unix)
            .map_err(|e| {
                ClientError::new(
                    ErrorKind::Overloaded,
                    format!("vertex: no OAuth access token: {e}"),
                )
            })
    }

    fn fetches_tokens(&self) -> bool {
        self.auth.is_some()
    }

    /// With a service account, the call must carry its OAuth token (handed to
    /// [`Vendor::authorize`] as the key by the caller, from the worker's token cache).
    fn sign(&self, call: &mut UpstreamCall, _now_unix: i64) -> Result<(), ClientError> {
        if self.auth.is_none() || call.headers.iter().any(|(k, _)| k == "authorization") {
            return Ok(());
        }
        Err(ClientError::new(
            ErrorKind::Overloaded,
            "vertex: no OAuth access token yet; try again shortly",
        ))
    }
}

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod tests;
