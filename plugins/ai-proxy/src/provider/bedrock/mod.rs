//! Amazon Bedrock: `POST /model/{modelId}/converse` and `/converse-stream` on
//! `bedrock-runtime.{region}.amazonaws.com`, authenticated with SigV4 (service `bedrock`, session
//! tokens supported) or with a Bedrock API key (`Authorization: Bearer`, from `apiKeys`).
//! OpenAI `/v1/embeddings` goes to `/model/{modelId}/invoke` for Titan and Cohere embedding
//! models (translated in [`crate::translate::backend::bedrock::embed`]).
//!
//! The model id is percent-encoded into one path segment (`us.amazon.nova-micro-v1%3A0`; an
//! inference-profile ARN keeps its `/` encoded). SigV4 signs the final body and only `host` and
//! the `x-amz-*` headers, so headers set later by the host (content-type, content-length) cannot
//! break the signature. Signing needs the current time, so it is a separate step,
//! [`Vendor::sign`], run after [`Vendor::authorize`] with the host's clock.

use aigw_shared::aws::{sign, AmzDate, Credentials, PathMode, SignableRequest, SigningParams};
use aigw_shared::config::ConfigError;
use aigw_shared::error::{ClientError, ErrorKind};
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::{bearer, header_safe, options, path_segment, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

/// The SigV4 signing name of Bedrock Runtime.
pub const SERVICE: &str = "bedrock";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    region: String,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    session_token: Option<String>,
    #[serde(default)]
    api: ChatApi,
    #[serde(default)]
    invoke_models: Vec<String>,
}

/// Which Bedrock API carries chat requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChatApi {
    /// `Converse` / `ConverseStream`: one request shape for every model.
    #[default]
    Converse,
    /// `InvokeModel` / `InvokeModelWithResponseStream` with the Anthropic Messages body (Claude
    /// models only).
    Invoke,
}

/// The Bedrock provider.
pub struct Bedrock {
    region: String,
    authority: String,
    credentials: Option<Credentials>,
    api: ChatApi,
    /// Models (exact names or `prefix*`) sent to InvokeModel whatever `api` says.
    invoke_models: Vec<String>,
}

/// Never print the credentials.
impl std::fmt::Debug for Bedrock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bedrock")
            .field("region", &self.region)
            .field("sigv4", &self.credentials.is_some())
            .field("api", &self.api)
            .finish()
    }
}

impl Bedrock {
    /// Build from options: `region` (required), `accessKeyId` + `secretAccessKey` (+
    /// `sessionToken`) for SigV4, `api` (`converse` or `invoke`) and `invokeModels` (model names
    /// or `prefix*` patterns that use InvokeModel).
    pub fn build(opts: &Value) -> Result<Self, ConfigError> {
        let o: Options = options(opts)?;
        let region_ok = !o.region.is_empty()
            && o.region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::invalid(
                "region",
                format!("{:?} is not an AWS region name", o.region),
            ));
        }
        header_safe(
            "accessKeyId",
            o.access_key_id.as_deref().unwrap_or_default(),
        )?;
        header_safe(
            "secretAccessKey",
            o.secret_access_key.as_deref().unwrap_or_default(),
        )?;
        header_safe(
            "sessionToken",
            o.session_token.as_deref().unwrap_or_default(),
        )?;
        let credentials = match (o.access_key_id, o.secret_access_key, o.session_token) {
            (None, None, None) => None,
            (Some(id), Some(secret), token) if !id.is_empty() && !secret.is_empty() => {
                let c = Credentials::new(id, secret);
                Some(match token.filter(|t| !t.is_empty()) {
                    Some(t) => c.with_session_token(t),
                    None => c,
                })
            }
            _ => return Err(ConfigError::invalid(
                "accessKeyId",
                "accessKeyId and secretAccessKey must be given together (sessionToken needs both)",
            )),
        };
        if let Some(i) = o.invoke_models.iter().position(String::is_empty) {
            return Err(ConfigError::invalid(
                format!("invokeModels[{i}]"),
                "must not be empty",
            ));
        }
        Ok(Self {
            authority: format!("bedrock-runtime.{}.amazonaws.com", o.region),
            region: o.region,
            credentials,
            api: o.api,
            invoke_models: o.invoke_models,
        })
    }

    /// Whether requests are SigV4-signed (and so need [`Vendor::sign`]).
    pub fn signs(&self) -> bool {
        self.credentials.is_some()
    }

    /// The chat API used for the backend model `model`.
    pub fn chat_api(&self, model: &str) -> ChatApi {
        let listed = self
            .invoke_models
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => model.starts_with(prefix),
                None => model == p,
            });
        if listed {
            ChatApi::Invoke
        } else {
            self.api
        }
    }
}

impl Vendor for Bedrock {
    fn schema(&self) -> Schema {
        Schema::Bedrock
    }

    fn schema_for(&self, model: &str) -> Schema {
        match self.chat_api(model) {
            ChatApi::Converse => Schema::Bedrock,
            ChatApi::Invoke => Schema::BedrockInvoke,
        }
    }

    fn default_authority(&self) -> Option<&str> {
        Some(&self.authority)
    }

    fn default_base_path(&self) -> &str {
        ""
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        match call.api {
            Api::ChatCompletions | Api::AnthropicMessages => {
                if call.model.is_empty() {
                    return Err(
                        ClientError::invalid_request("`model` is required").with_param("model")
                    );
                }
                let model = path_segment(call.model)?;
                let op = match (self.chat_api(call.model), call.stream) {
                    (ChatApi::Converse, false) => "converse",
                    (ChatApi::Converse, true) => "converse-stream",
                    (ChatApi::Invoke, false) => "invoke",
                    (ChatApi::Invoke, true) => "invoke-with-response-stream",
                };
                Ok(format!("{base}/model/{model}/{op}"))
            }
            // CountTokens (AWS Bedrock Runtime API reference: `POST /model/{modelId}/count-tokens`)
            // for Anthropic's count_tokens and OpenAI's Responses input_tokens.
            Api::Other
                if call.suffix == crate::prepare::COUNT_TOKENS
                    || call.suffix == crate::prepare::INPUT_TOKENS =>
            {
                let model = path_segment(call.model)?;
                Ok(format!("{base}/model/{model}/count-tokens"))
            }
            Api::Embeddings => {
                if call.model.is_empty() {
                    return Err(
                        ClientError::invalid_request("`model` is required").with_param("model")
                    );
                }
                let model = path_segment(call.model)?;
                Ok(format!("{base}/model/{model}/invoke"))
            }
            _ => {
                let api = call.suffix.split('?').next().unwrap_or(call.suffix);
                Err(ClientError::invalid_request(format!(
                    "provider type bedrock has no /v1{api} API"
                ))
                .with_code("unsupported_api"))
            }
        }
    }

    /// The AWS secret access key and session token.
    fn secrets(&self) -> Vec<&str> {
        let Some(c) = &self.credentials else {
            return Vec::new();
        };
        let mut out = vec![c.secret_access_key.as_str()];
        out.extend(c.session_token.as_deref());
        out
    }

    /// Bedrock API keys go out as `Authorization: Bearer`; SigV4 happens in [`Vendor::sign`].
    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        if self.credentials.is_none() {
            bearer(call, key);
        }
        Ok(())
    }

    /// SigV4-sign the final `call` at `now_unix` (seconds): adds `x-amz-date`, `x-amz-security-token`
    /// (with a session token), `x-amz-content-sha256` and `authorization`. Without SigV4
    /// credentials this does nothing. The call must name its authority.
    fn sign(&self, call: &mut UpstreamCall, now_unix: i64) -> Result<(), ClientError> {
        let Some(creds) = &self.credentials else {
            return Ok(());
        };
        if now_unix <= 0 {
            return Err(ClientError::new(
                ErrorKind::Internal,
                "bedrock: the host has no clock, so the request cannot be SigV4-signed",
            ));
        }
        let host = call.authority.clone().ok_or_else(|| {
            ClientError::new(
                ErrorKind::Internal,
                "bedrock: no upstream authority to sign",
            )
        })?;
        let request = SignableRequest::new("POST", &call.path, &call.body).header("host", &host);
        let params = SigningParams {
            credentials: creds,
            region: &self.region,
            service: SERVICE,
            time: AmzDate::from_unix_seconds(now_unix),
            content_sha256_header: true,
            path_mode: PathMode::Normalized,
        };
        let signed = sign(&request, &params).map_err(|e| {
            ClientError::new(ErrorKind::Internal, format!("bedrock: cannot sign: {e}"))
        })?;
        call.headers.retain(|(k, _)| {
            !signed
                .headers
                .iter()
                .any(|(s, _)| k.eq_ignore_ascii_case(s))
        });
        call.headers
            .extend(signed.headers.into_iter().map(|(k, v)| (k.to_owned(), v)));
        Ok(())
    }
}

#[cfg(test)]
mod filter_tests;
#[cfg(test)]
mod tests;
