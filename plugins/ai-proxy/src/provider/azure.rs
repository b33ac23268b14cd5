//! Azure OpenAI: `/openai/deployments/{deployment}/...?api-version=...` and the `api-key` header.
//! The deployment is the mapped model unless `deployments` maps it to another name.
//!
//! The Responses API goes to Azure's own endpoint, as it is (the deployment name as the body's
//! `model`): by default the v1 form `POST {base}/v1/responses` (no `api-version`), or with
//! `responses: versioned` the dated form `POST {base}/responses?api-version=…` that the
//! `AzureOpenAI` clients use (not under `/deployments/`: openai-python's Azure client keeps
//! `/responses` out of its deployment endpoints). `responses: chat` translates it to Chat
//! Completions for resources without the Responses API. Sources: Microsoft Learn, "Azure OpenAI
//! Responses API" and "API version lifecycle" (the v1 base URL
//! `https://{resource}.openai.azure.com/openai/v1/`, `api-key` or Bearer auth).

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

/// The api-version of the dated Responses endpoint when none is configured (the Responses API
/// is in no GA dated version).
pub const DEFAULT_RESPONSES_API_VERSION: &str = "2025-04-01-preview";

/// Where a Responses API request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResponsesMode {
    /// `POST {base}/v1/responses`, as it is.
    #[default]
    V1,
    /// `POST {base}/responses?api-version={responsesApiVersion}`, as it is.
    Versioned,
    /// Translated to Chat Completions on the deployment.
    Chat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    #[serde(default = "default_version")]
    api_version: String,
    /// Model name -> deployment name.
    #[serde(default)]
    deployments: BTreeMap<String, String>,
    /// Where Responses API requests go.
    #[serde(default)]
    responses: ResponsesMode,
    /// The api-version of `responses: versioned`.
    #[serde(default)]
    responses_api_version: Option<String>,
}

fn default_version() -> String {
    DEFAULT_API_VERSION.into()
}

/// The Azure OpenAI provider.
#[derive(Debug)]
pub struct Azure {
    options: Options,
    /// The api-version of the dated Responses endpoint.
    responses_version: String,
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
        if let Some(v) = &options.responses_api_version {
            if options.responses != ResponsesMode::Versioned {
                return Err(ConfigError::invalid(
                    "responsesApiVersion",
                    "is only used with `responses: versioned`",
                ));
            }
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ConfigError::invalid(
                    "responsesApiVersion",
                    "must be an api-version such as 2025-04-01-preview (letters, digits, `-`)",
                ));
            }
        }
        let responses_version = options
            .responses_api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_RESPONSES_API_VERSION.to_owned());
        Ok(Self {
            options,
            responses_version,
        })
    }

    /// The deployment a (mapped) model name runs on.
    fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.options
            .deployments
            .get(model)
            .map_or(model, String::as_str)
    }
}

const APIS: Apis = Apis {
    completions: true,
    embeddings: true,
    audio: true,
    images: true,
};

/// A client error for a call without a model.
fn model_required() -> ClientError {
    ClientError::invalid_request("azure-openai needs a model to choose the deployment")
        .with_param("model")
}

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

    fn native_responses(&self) -> bool {
        self.options.responses != ResponsesMode::Chat
    }

    /// The deployment: Azure's Responses API takes it as the body's `model`.
    fn responses_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployment(model)
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        if call.api == Api::Responses {
            if call.model.is_empty() {
                return Err(model_required());
            }
            return match self.options.responses {
                ResponsesMode::V1 => Ok(format!("{base}/v1/responses")),
                ResponsesMode::Versioned => Ok(format!(
                    "{base}/responses?api-version={}",
                    self.responses_version
                )),
                // Translated requests ask for `/chat/completions`; this one cannot be sent.
                ResponsesMode::Chat => Err(ClientError::invalid_request(
                    "provider type azure-openai is configured without the Responses API",
                )
                .with_code("unsupported_api")),
            };
        }
        offers("azure-openai", APIS, call)?;
        if call.model.is_empty() {
            return Err(model_required());
        }
        // The deployment is one path segment whatever the client's model says.
        let deployment = path_segment(self.deployment(call.model))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call(model: &str) -> ApiCall<'_> {
        ApiCall {
            api: Api::Responses,
            suffix: crate::prepare::RESPONSES,
            model,
            stream: false,
        }
    }

    fn azure(options: Value) -> Azure {
        Azure::build(&options).unwrap()
    }

    #[test]
    fn responses_go_to_the_v1_endpoint_by_default_with_the_deployment_as_the_model() {
        let a = azure(serde_json::json!({"deployments": {"gpt-4o": "prod-4o"}}));
        assert!(a.native_responses());
        assert_eq!(
            a.path("/openai", &call("gpt-4o")).unwrap(),
            "/openai/v1/responses"
        );
        assert_eq!(a.responses_model("gpt-4o"), "prod-4o");
        assert_eq!(
            a.responses_model("other"),
            "other",
            "unmapped: the model itself"
        );
        assert!(a.path("/openai", &call("")).is_err(), "a model is required");
    }

    #[test]
    fn the_versioned_form_carries_its_own_api_version_and_chat_translates() {
        let a = azure(serde_json::json!({"responses": "versioned"}));
        assert_eq!(
            a.path("/openai", &call("d")).unwrap(),
            "/openai/responses?api-version=2025-04-01-preview"
        );
        let a = azure(serde_json::json!({"responses": "versioned",
            "responsesApiVersion": "preview"}));
        assert_eq!(
            a.path("/openai", &call("d")).unwrap(),
            "/openai/responses?api-version=preview"
        );
        let a = azure(serde_json::json!({"responses": "chat"}));
        assert!(!a.native_responses());
    }

    #[test]
    fn bad_responses_options_are_refused_with_their_path() {
        for (options, path) in [
            (serde_json::json!({"responses": "v2"}), "responses"),
            (
                serde_json::json!({"responsesApiVersion": "2025-04-01-preview"}),
                "responsesApiVersion",
            ),
            (
                serde_json::json!({"responses": "versioned", "responsesApiVersion": "x&y=1"}),
                "responsesApiVersion",
            ),
            (
                serde_json::json!({"responses": "versioned", "responsesApiVersion": ""}),
                "responsesApiVersion",
            ),
        ] {
            let err = Azure::build(&options).unwrap_err();
            assert_eq!(err.path(), path, "{options}: {err}");
        }
    }
}
