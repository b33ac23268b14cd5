//! Google Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/
//! {model}:generateContent` (and `:streamGenerateContent?alt=sse`) on
//! `{location}-aiplatform.googleapis.com` (`aiplatform.googleapis.com` for `global`).
//!
//! Auth: `Authorization: Bearer` with a static access token from `apiKeys`, or with an OAuth token
//! obtained for a service account (`options.serviceAccountKey`, the key file as an object or
//! text). The token is put on the call in [`Vendor::sign`], which has the host's clock; fetching
//! it needs an HTTP callout from the filter, driven by [`Vertex::auth`] (see
//! [`crate::provider::auth`]). Until a token is cached such requests get a 503.

use aigw_shared::config::ConfigError;
use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::auth::{GoogleAuth, ServiceAccount};
use super::gemini::{method, model_segment, no_api};
use super::{bearer, options, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    project: String,
    location: String,
    #[serde(default)]
    service_account_key: Option<Value>,
}

/// The Vertex AI provider.
#[derive(Debug)]
pub struct Vertex {
    project: String,
    location: String,
    authority: String,
    auth: Option<GoogleAuth>,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Vertex {
    /// Build from options: `project` and `location` (required), `serviceAccountKey` (optional).
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
        Ok(Self {
            project: o.project,
            location: o.location,
            authority,
            auth,
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
            _ => Err(no_api("vertex", call)),
        }
    }

    /// A static token from `apiKeys` goes out as `Authorization: Bearer`.
    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        bearer(call, key);
        Ok(())
    }

    /// Without a static token, the service account's cached OAuth token (usable at `now_unix`).
    fn sign(&self, call: &mut UpstreamCall, now_unix: i64) -> Result<(), ClientError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if call.headers.iter().any(|(k, _)| k == "authorization") {
            return Ok(());
        }
        match auth.token(now_unix) {
            Some(t) => {
                call.headers
                    .push(("authorization".into(), format!("Bearer {t}")));
                Ok(())
            }
            None => Err(ClientError::new(
                ErrorKind::Overloaded,
                format!(
                    "vertex: no OAuth access token yet for {}; try again shortly",
                    auth.client_email()
                ),
            )),
        }
    }
}

#[cfg(test)]
#[path = "vertex_tests.rs"]
mod tests;
