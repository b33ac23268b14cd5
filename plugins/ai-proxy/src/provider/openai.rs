//! OpenAI and every OpenAI-compatible server (the preset table): Bearer auth, OpenAI paths.

use aigw_shared::config::ConfigError;
use aigw_shared::error::ClientError;
use aigw_shared::llm::Api;
use serde::Deserialize;
use serde_json::Value;

use super::presets::{self, Apis, Preset};
use super::{bearer, header_safe, options, ApiCall, UpstreamCall, Vendor};
use crate::translate::Schema;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    /// `OpenAI-Organization` header.
    #[serde(default)]
    organization: Option<String>,
    /// `OpenAI-Project` header.
    #[serde(default)]
    project: Option<String>,
}

/// An OpenAI-schema provider.
#[derive(Debug)]
pub struct OpenAi {
    preset: &'static Preset,
    options: Options,
}

impl OpenAi {
    /// Build from a preset name and options.
    pub fn build(kind: &str, opts: &Value) -> Result<Self, ConfigError> {
        let preset = presets::find(kind)
            .ok_or_else(|| ConfigError::invalid("type", format!("unknown preset {kind:?}")))?;
        let options: Options = options(opts)?;
        header_safe(
            "organization",
            options.organization.as_deref().unwrap_or_default(),
        )?;
        header_safe("project", options.project.as_deref().unwrap_or_default())?;
        Ok(Self { preset, options })
    }
}

/// Whether `apis` covers `call`, else the client error to send.
pub(crate) fn offers(name: &str, apis: Apis, call: &ApiCall<'_>) -> Result<(), ClientError> {
    let s = call.suffix;
    let ok = match call.api {
        Api::ChatCompletions | Api::AnthropicMessages | Api::Models => true,
        Api::Completions => apis.completions,
        Api::Embeddings => apis.embeddings,
        Api::Other if s.starts_with("/audio/") => apis.audio,
        Api::Other if s.starts_with("/images/") => apis.images,
        // Only OpenAI itself counts Responses API input tokens.
        Api::Other if s == crate::token_count::INPUT_TOKENS => name == "openai",
        Api::Responses => name == "openai",
        Api::Other => false,
    };
    if ok {
        Ok(())
    } else {
        let api = s.split('?').next().unwrap_or(s);
        Err(
            ClientError::invalid_request(format!("provider type {name} has no /v1{api} API"))
                .with_code("unsupported_api"),
        )
    }
}

impl Vendor for OpenAi {
    fn schema(&self) -> Schema {
        Schema::OpenAi
    }

    fn default_authority(&self) -> Option<&str> {
        self.preset.authority
    }

    fn default_base_path(&self) -> &str {
        self.preset.base_path
    }

    fn native_responses(&self) -> bool {
        self.preset.name == "openai"
    }

    fn path(&self, base: &str, call: &ApiCall<'_>) -> Result<String, ClientError> {
        offers(self.preset.name, self.preset.apis, call)?;
        let suffix = if call.api == Api::AnthropicMessages {
            "/chat/completions"
        } else {
            call.suffix
        };
        // `suffix` is one of the allow-listed API paths; a query never reaches the upstream.
        let suffix = suffix.split(['?', '#']).next().unwrap_or(suffix);
        Ok(format!("{base}{suffix}"))
    }

    fn authorize(&self, call: &mut UpstreamCall, key: Option<&str>) -> Result<(), ClientError> {
        bearer(call, key);
        if let Some(o) = &self.options.organization {
            call.headers.push(("openai-organization".into(), o.clone()));
        }
        if let Some(p) = &self.options.project {
            call.headers.push(("openai-project".into(), p.clone()));
        }
        Ok(())
    }
}
