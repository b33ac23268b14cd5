//! Azure OpenAI: `/openai/deployments/{deployment}/...?api-version=...` and the `api-key` header.
//! The deployment is the mapped model unless `deployments` maps it to another name.

use std::collections::BTreeMap;

use aigw_shared::config::ConfigError;
use aigw_shared::error::ClientError;
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::openai::offers;
use super::presets::Apis;
use super::{header_safe, options, path_segment, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

/// The api-version used when none is configured (the current GA version).
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    #[serde(default = "default_version")]
    api_version: String,
    /// Model name -> deployment name.
    #[serde(default)]
    deployments: BTreeMap<String, String>,
}

fn default_version() -> String {
    DEFAULT_API_VERSION.into()
}

/// The Azure OpenAI provider.
#[derive(Debug)]
pub struct Azure {
    options: Options,
}

impl Azure {
    /// Build from options.
    pub fn build(opts: &Value) -> Result<Self, ConfigError> {
        let options: Options = options(opts)?;
        if options.api_version.is_empty() {
            return Err(ConfigError::invalid("apiVersion", "must not be empty"));
        }
        header_safe("apiVersion", &options.api_version)?;
        for (model, deployment) in &options.deployments {
            header_safe(&format!("deployments.{model}"), deployment)?;
        }
        Ok(Self { options })
    }
}

const APIS: Apis = Apis {
    completions: true,
    embeddings: true,
    audio: true,
    images: true,
};

impl Vendor for Azure {
    fn schema(&self) -> Schema {
        Schema::OpenAi
    }

    fn default_authority(&self) -> Option<&str> {
        None
    }

    fn default_base_path(&self) -> &str {
        "/openai"
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        offers("azure-openai", APIS, call)?;
        if call.model.is_empty() {
            return Err(ClientError::invalid_request(
                "azure-openai needs a model to choose the deployment",
            )
            .with_param("model"));
        }
        let deployment = self
            .options
            .deployments
            .get(call.model)
            .map_or(call.model, String::as_str);
        // The deployment is one path segment whatever the client's model says.
        let deployment = path_segment(deployment)?;
        let suffix = if call.api == Api::AnthropicMessages {
            "/chat/completions"
        } else {
            call.suffix
        };
        let suffix = suffix.split(['?', '#']).next().unwrap_or(suffix);
        Ok(format!(
            "{base}/deployments/{deployment}{suffix}?api-version={}",
            self.options.api_version
        ))
    }

    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        if let Some(k) = key {
            call.headers.push(("api-key".into(), k.to_owned()));
        }
        Ok(())
    }
}
