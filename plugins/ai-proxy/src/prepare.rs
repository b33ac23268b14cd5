//! Request preparation: from the client's complete body to the upstream call and a response plan.
//! Pure over the config (no host calls), so it is tested natively without a filter.

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::llm::Api;

use crate::config::{Config, CredentialPolicy};
use crate::hub::ChatRequest;
use crate::keys::{self, Ejections};
use crate::provider::{ApiCall, UpstreamCall};
use crate::state::State;
use crate::translate::backend::bedrock::embed as bedrock_embed;
use crate::translate::backend::gemini::embed as gemini_embed;
use crate::translate::client::anthropic as anthropic_client;
use crate::translate::client::responses as responses_client;
pub use crate::translate::client::responses::RESPONSES;
use crate::translate::{self, passthrough, BuildContext, Schema, TranslateError};

/// How the response must be handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The client's protocol.
    pub protocol: ClientProtocol,
    /// `None`: same protocol, forward the response untouched; `Some`: translate from this schema.
    pub translate_from: Option<Schema>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether an OpenAI streaming client asked for the usage chunk.
    pub include_usage: bool,
    /// The model the client asked for.
    pub client_model: String,
    /// The chosen provider's name (for logs and metrics).
    pub provider: String,
    /// The model sent upstream (after mapping; empty when the rule keeps the client's).
    pub backend_model: String,
    /// The hash of the pool key the request was sent with (none for a client's own key or a
    /// fetched token): the key an ejecting status takes out.
    pub pool_key: Option<u64>,
    /// Fields dropped under `unsupportedFields: ignore`.
    pub dropped: Vec<String>,
    /// Embeddings translated for a non-OpenAI backend: how to translate the answer back.
    pub embed: Option<EmbedPlan>,
    /// A token count translated for a provider's counting API (Gemini `countTokens`, Bedrock
    /// `CountTokens`): its answer goes back in the client's shape (or, for Bedrock, the estimate
    /// when it fails).
    pub count: Option<crate::token_count::Counting>,
    /// A Responses API request sent through the hub: its answer goes back as a Responses object.
    pub responses: bool,
    /// The client's own key when it was passed through to the provider (redacted from error
    /// bodies like the configured keys).
    pub client_secret: Option<Secret>,
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// How an embeddings answer is translated back to the OpenAI shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedPlan {
    /// A Bedrock InvokeModel embedding model (Titan, Cohere).
    Bedrock(bedrock_embed::EmbedPlan),
    /// Gemini `:batchEmbedContents`.
    Gemini(gemini_embed::EmbedPlan),
    /// Vertex AI text embeddings `:predict`.
    Vertex(gemini_embed::EmbedPlan),
}

impl EmbedPlan {
    /// The upstream answer -> the OpenAI embeddings body.
    pub fn answer(&self, body: &[u8]) -> Result<Vec<u8>, TranslateError> {
        match self {
            Self::Bedrock(p) => bedrock_embed::from_bedrock(body, p),
            Self::Gemini(p) => {
                let v = gemini_embed::from_batch_embed(body, p)?;
                serde_json::to_vec(&v).map_err(|e| TranslateError::Upstream(e.to_string()))
            }
            Self::Vertex(p) => {
                let v = gemini_embed::vertex::from_predict(body, p)?;
                serde_json::to_vec(&v).map_err(|e| TranslateError::Upstream(e.to_string()))
            }
        }
    }
}

/// Translate an OpenAI embeddings body for a backend that does not speak OpenAI (`None`: no
/// translation needed). `client_model` is reported back to the client. Gemini and Vertex AI share
/// a schema; the upstream `path` tells Vertex's `:predict` from Gemini's `:batchEmbedContents`.
fn embed_request(
    schema: Schema,
    path: &str,
    body: &[u8],
    model: &str,
    client_model: &str,
) -> Result<Option<(Vec<u8>, EmbedPlan)>, TranslateError> {
    match schema {
        Schema::Bedrock | Schema::BedrockInvoke => {
            let (b, plan) = bedrock_embed::to_bedrock(body, model)?;
            Ok(Some((b, EmbedPlan::Bedrock(plan))))
        }
        Schema::Gemini => {
            let req: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| TranslateError::malformed(format!("request body is not JSON: {e}")))?;
            let vertex = path.ends_with(":predict");
            let (v, mut plan) = if vertex {
                gemini_embed::vertex::to_predict(&req, model)?
            } else {
                gemini_embed::to_batch_embed(&req, model)?
            };
            plan.model = client_model.to_owned();
            let b = serde_json::to_vec(&v).map_err(|e| TranslateError::malformed(e.to_string()))?;
            let plan = if vertex {
                EmbedPlan::Vertex(plan)
            } else {
                EmbedPlan::Gemini(plan)
            };
            Ok(Some((b, plan)))
        }
        Schema::OpenAi | Schema::Anthropic => Ok(None),
    }
}

/// The upstream call, the cluster it goes to, and the response plan.
#[derive(Debug)]
pub struct Prepared {
    /// Envoy cluster.
    pub cluster: String,
    /// Authority, path, headers and body.
    pub call: UpstreamCall,
    /// How to treat the response.
    pub plan: Plan,
    /// The body differs from the client's (else it is not written back).
    pub body_changed: bool,
}

/// What the filter learned from the request headers.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The API.
    pub api: Api,
    /// The API path after `/v1`, one of [`API_PATHS`] (the client's query is not kept).
    pub suffix: String,
    /// Whether the body is JSON (audio uploads are multipart).
    pub json: bool,
    /// The client's key (from `authorization: Bearer`, `x-api-key` or `api-key`).
    pub client_key: Option<Secret>,
    /// The host clock (ns) when the body was complete (0 when the host has none): request
    /// signing, token expiry and the request's duration all use this one reading.
    pub now_ns: u64,
}

impl Incoming {
    /// [`Incoming::now_ns`] in Unix seconds.
    pub fn now_unix(&self) -> i64 {
        i64::try_from(self.now_ns / 1_000_000_000).unwrap_or(0)
    }
}

/// The path after the first `/v1` segment (`/openai/v1/chat/completions` -> `/chat/completions`).
pub fn api_suffix(path: &str) -> Option<&str> {
    let idx = path.find("/v1/")?;
    path.get(idx + 3..)
}

/// Every API path (after `/v1`) this gateway routes: the OpenAI and Anthropic endpoints the
/// providers really have. The upstream path is built from this list, never from the client's
/// bytes; the client's query string is not forwarded.
pub const API_PATHS: &[&str] = &[
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/messages",
    COUNT_TOKENS,
    INPUT_TOKENS,
    RESPONSES,
    "/audio/transcriptions",
    "/audio/translations",
    "/audio/speech",
    "/images/generations",
    "/images/edits",
    "/images/variations",
];

pub use crate::token_count::{COUNT_TOKENS, INPUT_TOKENS};

/// The longest `model` accepted (longer names are a 400).
pub const MAX_MODEL_LEN: usize = 256;

/// Refuse a request path that could mean something else once decoded or normalised upstream:
/// `..`, encoded dots, slashes and backslashes (`%2e`, `%2f`, `%5c`) or backslashes before the
/// query, and control characters anywhere.
pub fn check_path(path: &str) -> Result<(), ClientError> {
    let lower = path
        .split(['?', '#'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    let bad = lower.contains("..")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || path.chars().any(char::is_control);
    if bad {
        Err(ClientError::invalid_request(
            "the request path contains `..`, an encoded `.`, `/` or `\\`, a backslash or a control character",
        )
        .with_code("invalid_path"))
    } else {
        Ok(())
    }
}

/// The routed API path for the client's path after `/v1` (query dropped): one of [`API_PATHS`],
/// or a 400 `unsupported_api` naming what was asked.
pub fn api_endpoint(suffix: &str) -> Result<&'static str, ClientError> {
    let path = suffix.split(['?', '#']).next().unwrap_or(suffix);
    let path = path.strip_suffix('/').unwrap_or(path);
    API_PATHS
        .iter()
        .copied()
        .find(|p| *p == path)
        .ok_or_else(|| {
            ClientError::invalid_request(format!("this gateway has no /v1{path} API"))
                .with_code("unsupported_api")
        })
}

/// The deepest nesting of JSON objects and arrays accepted in a request body (serde_json's own
/// recursion limit, which translated routes hit while parsing).
pub const MAX_JSON_DEPTH: usize = 128;

/// Refuse a JSON body nested deeper than [`MAX_JSON_DEPTH`], with the same 400 on every route
/// (same-protocol routes forward the bytes without parsing them). A byte scan counting `{` and
/// `[` outside strings: nothing is built.
pub fn check_depth(body: &[u8]) -> Result<(), ClientError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ClientError::invalid_request(format!(
                        "request body is nested deeper than {MAX_JSON_DEPTH} levels (recursion limit exceeded)"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Refuse a model name longer than [`MAX_MODEL_LEN`] bytes or holding a control character.
pub fn check_model(model: &str) -> Result<(), ClientError> {
    if model.len() > MAX_MODEL_LEN {
        return Err(ClientError::invalid_request(format!(
            "`model` is longer than {MAX_MODEL_LEN} bytes"
        ))
        .with_param("model"));
    }
    if model.chars().any(char::is_control) {
        return Err(
            ClientError::invalid_request("`model` must not contain control characters")
                .with_param("model"),
        );
    }
    Ok(())
}

fn translate_err(e: &TranslateError) -> ClientError {
    e.to_client()
}

/// The index of the provider a complete request body is routed to (`None` when it cannot be
/// routed; [`prepare`] then reports why).
pub fn routed_provider(config: &Config, inc: &Incoming, body: &[u8]) -> Option<usize> {
    let model = if inc.json {
        passthrough::peek(body).ok()?.0
    } else {
        None
    };
    config.route(&model.unwrap_or_default()).map(|r| r.provider)
}

/// Build the upstream call for a complete request body; `ejected` reads the key ejections
/// recorded under a provider's `ejections_key` (the host's shared data), asked only for a pool
/// of two or more keys.
/// The `countTokens` body for a Gemini-schema backend from an Anthropic count_tokens body: the
/// request as `generateContent` would get it (system, tools, contents), for the Gemini API inside
/// `generateContentRequest` with the model's resource name, for Vertex AI as it is.
fn gemini_count_body(
    body: &[u8],
    model: &str,
    kind: &str,
    ctx: &mut BuildContext<'_>,
) -> Result<Vec<u8>, ClientError> {
    let hub = anthropic_client::to_hub(body, ctx).map_err(|e| translate_err(&e))?;
    let encoded = translate::backend(Schema::Gemini)
        .encode_request(&hub, ctx)
        .map_err(|e| translate_err(&e))?;
    let mut request: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&encoded)
        .map_err(|e| {
            ClientError::new(
                ErrorKind::Internal,
                format!("cannot build countTokens: {e}"),
            )
        })?;
    // Counting needs no generation settings (Vertex's countTokens takes none of the others).
    request.remove("generationConfig");
    request.remove("safetySettings");
    let out = if kind == "vertex" {
        serde_json::Value::Object(request)
    } else {
        let resource = if model.starts_with("models/") || model.starts_with("tunedModels/") {
            model.to_owned()
        } else {
            format!("models/{model}")
        };
        request.insert("model".to_owned(), serde_json::Value::String(resource));
        serde_json::json!({ "generateContentRequest": request })
    };
    serde_json::to_vec(&out).map_err(|e| {
        ClientError::new(
            ErrorKind::Internal,
            format!("cannot build countTokens: {e}"),
        )
    })
}

pub fn prepare(
    config: &Config,
    state: &State,
    inc: &Incoming,
    body: &[u8],
    ejected: &dyn Fn(&str) -> Ejections,
) -> Result<Prepared, ClientError> {
    let asked = read_request(inc, body)?;
    let route = route_asked(config, inc, body, &asked)?;
    prepare_for(config, state, inc, body, ejected, &asked, &route)
}

/// The route of a request: of the model it asks for, or, for an `autoModels` alias, of the model
/// the alias' rules choose from the body.
pub fn route_asked(
    config: &Config,
    inc: &Incoming,
    body: &[u8],
    asked: &Asked,
) -> Result<crate::models::Route, ClientError> {
    if !config.auto.is_empty() {
        if let Some(auto) = config.auto_model(&asked.model) {
            let chosen = auto.choose(inc.api, body)?;
            return route_of(config, chosen);
        }
    }
    route_of(config, &asked.model)
}

/// What the routing needs from the client's body: the model it asks for and whether it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// The client's model (empty when none).
    pub model: String,
    /// Whether it asked for a stream.
    pub stream: bool,
}

/// Check the body's depth and read its model and stream flag.
pub fn read_request(inc: &Incoming, body: &[u8]) -> Result<Asked, ClientError> {
    if inc.json {
        check_depth(body)?;
    }
    let (model, stream) = if inc.json {
        passthrough::peek(body).map_err(|e| translate_err(&e))?
    } else {
        (None, false)
    };
    let model = model.unwrap_or_default();
    check_model(&model)?;
    Ok(Asked { model, stream })
}

/// The route of a client model, or the error the client gets when there is none.
pub fn route_of(config: &Config, model: &str) -> Result<crate::models::Route, ClientError> {
    config.route(model).ok_or_else(|| {
        if model.is_empty() {
            ClientError::invalid_request("`model` is required").with_param("model")
        } else {
            ClientError::new(
                ErrorKind::NotFound,
                format!("the model `{model}` is not served by this gateway"),
            )
            .with_code("model_not_found")
            .with_param("model")
        }
    })
}

/// Build the upstream call of a request for one route (the routed one, or a fallback target).
pub fn prepare_for(
    config: &Config,
    state: &State,
    inc: &Incoming,
    body: &[u8],
    ejected: &dyn Fn(&str) -> Ejections,
    asked: &Asked,
    route: &crate::models::Route,
) -> Result<Prepared, ClientError> {
    // Anthropic's count_tokens is `Api::Other` to the shared classifier, but its client speaks
    // Anthropic.
    let protocol = if inc.suffix == COUNT_TOKENS {
        ClientProtocol::Anthropic
    } else {
        inc.api.protocol()
    };
    let model = &asked.model;
    let stream = asked.stream;
    let provider = config
        .providers
        .get(route.provider)
        .ok_or_else(|| ClientError::new(ErrorKind::Internal, "provider index out of range"))?;
    check_model(&route.model)?;
    let schema = provider.vendor.schema_for(&route.model);
    let mut ctx = BuildContext::new(&route.model, config.unsupported);
    let same = match inc.api {
        Api::AnthropicMessages => schema == Schema::Anthropic,
        _ => schema == Schema::OpenAi,
    };
    // A Responses API request goes to a provider that serves it (OpenAI, Azure OpenAI) as it
    // is, and through the hub (as a chat request) to every other backend.
    let responses_api = inc.api == Api::Responses;
    let native_responses = responses_api && provider.vendor.native_responses();
    let responses = responses_api && !native_responses;
    let translated =
        responses || (!same && matches!(inc.api, Api::ChatCompletions | Api::AnthropicMessages));
    let call_desc = ApiCall {
        api: if responses {
            Api::ChatCompletions
        } else {
            inc.api
        },
        suffix: if responses {
            "/chat/completions"
        } else {
            &inc.suffix
        },
        model: &route.model,
        stream,
    };
    let path = provider.vendor.path(&provider.base_path, &call_desc)?;
    let mut include_usage = false;
    let asked_count = if inc.api == Api::Other {
        crate::token_count::Asked::of(&inc.suffix)
    } else {
        None
    };
    let (count, count_body) = match (asked_count, schema) {
        (Some(asked @ crate::token_count::Asked::Anthropic), Schema::Gemini) => {
            let b = gemini_count_body(body, &route.model, &provider.kind, &mut ctx)?;
            let c = crate::token_count::Counting {
                from: schema,
                asked,
                estimate: None,
            };
            (Some(c), Some(b))
        }
        (Some(asked), Schema::Bedrock | Schema::BedrockInvoke) => {
            let b = crate::token_count::bedrock_count_body(body, asked, schema, &mut ctx)?;
            let c = crate::token_count::Counting {
                from: schema,
                asked,
                estimate: asked.estimate(body),
            };
            (Some(c), Some(b))
        }
        _ => (None, None),
    };
    let embed_out = if inc.api == Api::Embeddings && inc.json {
        embed_request(schema, &path, body, &route.model, model).map_err(|e| translate_err(&e))?
    } else {
        None
    };
    let mut embed = None;
    let new_body = if let Some((b, plan)) = embed_out {
        embed = Some(plan);
        b
    } else if let Some(b) = count_body {
        b
    } else if !translated {
        // The client's bytes stay when the model does not change (no second parse, no write).
        // Azure's Responses API takes the deployment as the model.
        let sent_model = if native_responses {
            provider.vendor.responses_model(&route.model)
        } else {
            route.model.as_str()
        };
        if inc.json && !sent_model.is_empty() && sent_model != *model {
            passthrough::patch_model(body, sent_model)
                .map_err(|e| translate_err(&e))?
                .body
        } else {
            body.to_vec()
        }
    } else {
        let hub: ChatRequest = match inc.api {
            Api::AnthropicMessages => {
                anthropic_client::to_hub(body, &mut ctx).map_err(|e| translate_err(&e))?
            }
            _ if responses => {
                let chat = responses_client::to_chat(body).map_err(|e| translate_err(&e))?;
                serde_json::from_value(chat).map_err(|e| {
                    ClientError::invalid_request(format!(
                        "request body does not fit the Responses API: {e}"
                    ))
                })?
            }
            _ => serde_json::from_slice(body).map_err(|e| {
                ClientError::invalid_request(format!(
                    "request body does not fit the chat completions API: {e}"
                ))
            })?,
        };
        include_usage = hub.include_usage();
        translate::backend(schema)
            .encode_request(&hub, &mut ctx)
            .map_err(|e| translate_err(&e))?
    };
    let mut pool_key = None;
    let mut pooled = || {
        // Only a pool of two or more keys has one to skip: read the ejections then.
        let ejections = if provider.key_hashes().len() > 1 {
            ejected(&provider.ejections_key)
        } else {
            Ejections::default()
        };
        // The client key's hash only for consumer selection (a SHA-256 per request otherwise).
        let consumer = (provider.selection == keys::Selection::Consumer)
            .then(|| inc.client_key.as_ref().map(|k| keys::key_hash(&k.0)))
            .flatten();
        match state.next_key(provider, &ejections, consumer, inc.now_unix()) {
            Some((index, key)) => {
                pool_key = provider.key_hashes().get(index).copied();
                Some(key.to_owned())
            }
            None => state.access_token(&provider.name, inc.now_unix()),
        }
    };
    let client_secret = match config.client_credential {
        CredentialPolicy::PassThrough => inc.client_key.clone(),
        CredentialPolicy::Strip => None,
    };
    let key = match &client_secret {
        Some(k) => Some(k.0.clone()),
        None => pooled(),
    };
    let key = key.as_deref();
    let mut call = UpstreamCall {
        authority: provider.authority.clone(),
        path,
        headers: Vec::new(),
        body: new_body,
    };
    provider.vendor.authorize(&mut call, key)?;
    provider.vendor.sign(&mut call, inc.now_unix())?;
    Ok(Prepared {
        cluster: provider.cluster.clone(),
        body_changed: call.body != body,
        call,
        plan: Plan {
            pool_key,
            backend_model: route.model.clone(),
            protocol,
            translate_from: translated.then_some(schema),
            stream,
            include_usage,
            client_model: model.clone(),
            provider: provider.name.clone(),
            dropped: ctx.dropped,
            embed,
            count,
            responses,
            client_secret,
        },
    })
}
