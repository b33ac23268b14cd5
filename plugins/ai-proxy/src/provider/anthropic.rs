//! Anthropic: `/v1/messages`, `x-api-key` and `anthropic-version` (optionally `anthropic-beta`).

use aigw_shared::config::ConfigError;
use aigw_shared::error::ClientError;
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::{header_safe, options, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

/// The API version sent when none is configured.
pub const DEFAULT_VERSION: &str = "2023-06-01";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    #[serde(default = "default_version")]
    anthropic_version: String,
    #[serde(default)]
    anthropic_beta: Option<String>,
}

fn default_version() -> String {
    DEFAULT_VERSION.into()
}

/// The Anthropic provider.
#[derive(Debug)]
pub struct Anthropic {
    options: Options,
}

impl Anthropic {
    /// Build from options.
    pub fn build(opts: &Value) -> Result<Self, ConfigError> {
        let options: Options = options(opts)?;
        header_safe("anthropicVersion", &options.anthropic_version)?;
        header_safe(
            "anthropicBeta",
            options.anthropic_beta.as_deref().unwrap_or_default(),
        )?;
        Ok(Self { options })
    }
}

impl Vendor for Anthropic {
    fn schema(&self) -> Schema {
        Schema::Anthropic
    }

    fn default_authority(&self) -> Option<&str> {
        Some("api.anthropic.com")
    }

    fn default_base_path(&self) -> &str {
        "/v1"
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        match call.api {
            Api::ChatCompletions | Api::AnthropicMessages => Ok(format!("{base}/messages")),
            Api::Other if call.suffix == crate::prepare::COUNT_TOKENS => {
                Ok(format!("{base}{}", crate::prepare::COUNT_TOKENS))
            }
            _ => {
                let api = call.suffix.split('?').next().unwrap_or(call.suffix);
                Err(ClientError::invalid_request(format!(
                    "provider type anthropic has no /v1{api} API"
                ))
                .with_code("unsupported_api"))
            }
        }
    }

    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        if let Some(k) = key {
            call.headers.push(("x-api-key".into(), k.to_owned()));
        }
        call.headers.push((
            "anthropic-version".into(),
            self.options.anthropic_version.clone(),
        ));
        if let Some(b) = &self.options.anthropic_beta {
            call.headers.push(("anthropic-beta".into(), b.clone()));
        }
        Ok(())
    }
}
