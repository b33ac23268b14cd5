//! The request side: hold the headers, decide whether the request is ours, read the body whole,
//! prepare the upstream call and rewrite the request for it.

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{Ctx, WholeBody};

use super::{ejected_keys, logged, metric, Call, Filter, Phase};
use crate::config::ModelsShape;
use crate::prepare::{
    api_endpoint, api_suffix, check_path, prepare, Incoming, Plan, Prepared, Secret, COUNT_TOKENS,
    INPUT_TOKENS,
};
use crate::stats::RequestStats;

/// Request headers a routed request loses: the client's credentials (the provider's go instead),
/// the framing of a body that is rewritten, and compression the filter cannot read.
const REMOVED_HEADERS: [&str; 6] = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "content-length",
    "accept-encoding",
];

/// The request headers, read in one host call and looked up locally.
struct RequestHead(Vec<(String, Vec<u8>)>);

impl RequestHead {
    fn read(host: &dyn Host) -> Self {
        Self(host.headers(MapKind::RequestHeaders).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The client's key (from `authorization: Bearer`, `x-api-key` or `api-key`).
    fn client_key(&self) -> Option<String> {
        if let Some(auth) = self.text("authorization") {
            let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).trim();
            if !token.is_empty() {
                return Some(token.to_owned());
            }
        }
        ["x-api-key", "api-key"]
            .iter()
            .find_map(|h| self.text(h).filter(|v| !v.is_empty()))
    }
}

/// The `{id}` of `/models/{id}` (percent-decoding not needed: ids are plain names); `None` for
/// the list.
fn model_id(suffix: &str) -> Option<&str> {
    let suffix = suffix.split(['?', '#']).next().unwrap_or(suffix);
    let id = suffix.strip_prefix("/models/")?.trim_end_matches('/');
    (!id.is_empty()).then_some(id)
}

impl Filter {
    pub(super) fn headers_in(&mut self, cx: &mut Ctx<'_, Call>, end_of_stream: bool) -> Action {
        let host = cx.host;
        let head = RequestHead::read(host);
        let method = head.text(":method").unwrap_or_default();
        let path = head.text(":path").unwrap_or_default();
        // Nobody but this plugin chooses the cluster.
        if head.has(&self.config.upstream_header) {
            cx.check(
                host.remove_header(MapKind::RequestHeaders, &self.config.upstream_header),
                "cannot remove the routing header",
            );
        }
        let api = Api::from_path(&method, &path);
        self.protocol = api.protocol();
        self.api = api;
        let Some(suffix) = api_suffix(&path) else {
            return Action::Continue;
        };
        // A path under `/v1/` that could mean another endpoint once decoded or normalised is
        // refused outright, whoever would have served it.
        if let Err(e) = check_path(&path) {
            return self.reject(host, &e);
        }
        let routed = match api {
            Api::Models => {
                // Anthropic clients send `anthropic-version` (or only `x-api-key`).
                let anthropic = head.has("anthropic-version")
                    || (head.has("x-api-key") && !head.has("authorization"));
                let (shape, protocol) = if anthropic {
                    (ModelsShape::Anthropic, ClientProtocol::Anthropic)
                } else {
                    (ModelsShape::OpenAi, ClientProtocol::OpenAi)
                };
                self.protocol = protocol;
                let id = model_id(suffix);
                let Some(body) = self.config.models_answer(id, shape) else {
                    let err = ClientError::new(
                        ErrorKind::NotFound,
                        format!(
                            "the model `{}` is not served by this gateway",
                            id.unwrap_or_default().chars().take(200).collect::<String>()
                        ),
                    )
                    .with_code("model_not_found");
                    return self.reject(host, &err);
                };
                cx.check(
                    host.send_local_response(200, &[("content-type", b"application/json")], &body),
                    "cannot answer /v1/models",
                );
                self.state.metrics.count(host, metric::MODELS, 1);
                return Action::Pause;
            }
            Api::Other if suffix.split('?').next() == Some(COUNT_TOKENS) => {
                self.protocol = ClientProtocol::Anthropic;
                method.eq_ignore_ascii_case("POST")
            }
            Api::Other if suffix.split('?').next() == Some(INPUT_TOKENS) => {
                method.eq_ignore_ascii_case("POST")
            }
            Api::Other => {
                method.eq_ignore_ascii_case("POST")
                    && (suffix.starts_with("/audio") || suffix.starts_with("/images"))
            }
            _ => true,
        };
        if !routed || !self.body_write {
            return Action::Continue;
        }
        // The upstream path is built from an allow-list, never from the client's bytes.
        let endpoint = match api_endpoint(suffix) {
            Ok(e) => e,
            Err(e) => return self.reject(host, &e),
        };
        if end_of_stream {
            return self.reject(
                host,
                &ClientError::invalid_request("a request body is required"),
            );
        }
        let content_type = head.text("content-type").unwrap_or_default();
        let json = content_type.is_empty() || content_type.to_ascii_lowercase().contains("json");
        if !json && api != Api::Other {
            return self.reject(
                host,
                &ClientError::invalid_request(
                    "the request body must be JSON (content-type: application/json)",
                ),
            );
        }
        self.phase = Phase::Collecting(Incoming {
            api,
            suffix: endpoint.to_owned(),
            json,
            client_key: head.client_key().map(Secret),
            now_ns: 0,
        });
        self.to_remove = REMOVED_HEADERS
            .into_iter()
            .filter(|h| head.has(h))
            .collect();
        let declared = head
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        cx.read_whole_request(
            WholeBody::up_to(self.config.max_body_bytes)
                .holding_headers()
                .declared_length(declared),
        );
        Action::Pause
    }

    pub(super) fn body_in(&mut self, cx: &mut Ctx<'_, Call>, body: &[u8]) -> Action {
        let Phase::Collecting(inc) = &self.phase else {
            return Action::Continue;
        };
        let inc = Incoming {
            now_ns: cx.host.now_nanos().unwrap_or(0),
            ..inc.clone()
        };
        if inc.suffix == COUNT_TOKENS {
            if let Some(action) = self.count_tokens_here(cx.host, body) {
                return action;
            }
        }
        if inc.suffix == INPUT_TOKENS {
            if let Some(action) = self.input_tokens_here(cx.host, body) {
                return action;
            }
        }
        if let Some(action) = self.token_first(cx, &inc, body) {
            return action;
        }
        // Only a config with fallback targets pays for looking at them (and keeps the body).
        if self.config.has_fallbacks && inc.json {
            return self.send_with_fallbacks(cx.host, &inc, body);
        }
        let ejected = |key: &str| ejected_keys(cx.host, key);
        match prepare(&self.config, &self.state, &inc, body, &ejected) {
            Ok(p) => self.send(cx.host, p, body.len(), inc.now_ns),
            Err(e) => self.reject(cx.host, &e),
        }
    }

    /// Send the prepared request (the body complete at `now_ns`).
    pub(super) fn send(
        &mut self,
        host: &dyn Host,
        p: Prepared,
        old_size: usize,
        now_ns: u64,
    ) -> Action {
        let req = MapKind::RequestHeaders;
        for h in std::mem::take(&mut self.to_remove) {
            if let Err(e) = host.remove_header(req, h) {
                logged(host, Err(e), &format!("cannot remove the request's {h}"));
            }
        }
        let mut results = vec![
            host.set_header(req, ":path", p.call.path.as_bytes()),
            host.set_header(req, &self.config.upstream_header, p.cluster.as_bytes()),
        ];
        if let Some(a) = &p.call.authority {
            results.push(host.set_header(req, ":authority", a.as_bytes()));
        }
        for (k, v) in &p.call.headers {
            results.push(host.set_header(req, k, v.as_bytes()));
        }
        let translated = p.plan.translate_from.is_some() || p.plan.embed.is_some();
        if translated || p.plan.count.is_some() {
            results.push(host.set_header(req, "content-type", b"application/json"));
        }
        if p.body_changed {
            results.push(host.replace_body(BufferKind::RequestBody, old_size, &p.call.body));
        }
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            let err = ClientError::new(
                ErrorKind::Internal,
                format!("cannot rewrite the request: {e}"),
            );
            return self.reject(host, &err);
        }
        if !p.plan.dropped.is_empty() {
            host.log(
                LogLevel::Warn,
                &format!(
                    "ai-proxy: provider {} cannot express {}; dropped",
                    p.plan.provider,
                    p.plan.dropped.join(", ")
                ),
            );
        }
        let m = if translated {
            metric::TRANSLATED
        } else {
            metric::FORWARDED
        };
        self.state.metrics.count(host, m, 1);
        self.phase = Phase::Sent(p.plan, (now_ns > 0).then_some(now_ns));
        Action::Continue
    }

    /// The metric series of a sent request, counted as sent. Made when its response starts (or
    /// when it ends without one), not when it is sent: the route label is Envoy's route name,
    /// and the route is only final once ai-proxy's upstream header has re-routed the request.
    pub(super) fn request_stats(
        &self,
        host: &dyn Host,
        plan: &Plan,
        sent_ns: Option<u64>,
    ) -> RequestStats {
        let route = host
            .property_str(&["xds", "route_name"])
            .unwrap_or_default();
        let series = self.state.series.get(
            &self.state.model_labels,
            &plan.provider,
            &route,
            &plan.backend_model,
        );
        let stats = RequestStats::with_series(series, sent_ns);
        stats.sent(&self.state.metrics, host);
        stats
    }

    /// `POST /v1/messages/count_tokens` for a model whose provider has no counting API: answered
    /// here with the suite's estimate, marked `x-aigw-token-count: estimated`. `None`: the
    /// provider counts (Anthropic as it is; Gemini and Vertex through `countTokens`, Bedrock
    /// through `CountTokens`), so the request is prepared and forwarded.
    fn count_tokens_here(&mut self, host: &dyn Host, body: &[u8]) -> Option<Action> {
        let (index, model) = match self.count_target(host, body) {
            Ok(target) => target?,
            Err(refused) => return Some(refused),
        };
        let provider = self.config.providers.get(index)?;
        // Anthropic counts itself; Gemini and Vertex count with `countTokens`, Bedrock with
        // `CountTokens` (translated).
        use crate::translate::Schema;
        if matches!(
            provider.vendor.schema_for(&model),
            Schema::Anthropic | Schema::Gemini | Schema::Bedrock | Schema::BedrockInvoke
        ) {
            return None;
        }
        let view = match aigw_shared::llm::RequestView::parse(Api::AnthropicMessages, body) {
            Ok(v) => v,
            Err(e) => {
                let err = ClientError::invalid_request(format!("request body is not valid: {e}"));
                return Some(self.reject(host, &err));
            }
        };
        let tokens = view.estimate_input_tokens().tokens;
        let answer = crate::token_count::Asked::Anthropic.answer(tokens);
        Some(self.estimated_count(host, &answer))
    }

    /// `POST /v1/responses/input_tokens`: forwarded to OpenAI itself and translated to Bedrock's
    /// `CountTokens` (`None`), answered here with the suite's estimate for a model on any other
    /// provider (marked `x-aigw-token-count: estimated`).
    fn input_tokens_here(&mut self, host: &dyn Host, body: &[u8]) -> Option<Action> {
        let (index, model) = match self.count_target(host, body) {
            Ok(target) => target?,
            Err(refused) => return Some(refused),
        };
        let provider = self.config.providers.get(index)?;
        use crate::translate::Schema;
        let bedrock = matches!(
            provider.vendor.schema_for(&model),
            Schema::Bedrock | Schema::BedrockInvoke
        );
        if provider.kind == "openai" || bedrock {
            return None;
        }
        match crate::token_count::estimate_responses_input(body) {
            Ok(tokens) => {
                let answer = crate::token_count::Asked::OpenAiResponses.answer(tokens);
                Some(self.estimated_count(host, &answer))
            }
            Err(e) => {
                let err = ClientError::invalid_request(format!("request body is {e}"));
                Some(self.reject(host, &err))
            }
        }
    }

    /// The provider (its index) and backend model a token count is for. `Ok(None)`: no rule
    /// routes the model (`prepare` answers why); `Err`: the body was refused (answered).
    fn count_target(
        &mut self,
        host: &dyn Host,
        body: &[u8],
    ) -> Result<Option<(usize, String)>, Action> {
        let model = match crate::translate::passthrough::peek(body) {
            Ok((model, _)) => model.unwrap_or_default(),
            Err(e) => {
                let err = ClientError::invalid_request(format!("request body is not valid: {e}"));
                return Err(self.reject(host, &err));
            }
        };
        Ok(self.config.route(&model).map(|r| (r.provider, r.model)))
    }

    /// Answer a token count the gateway estimated.
    fn estimated_count(&mut self, host: &dyn Host, answer: &str) -> Action {
        let sent = host.send_local_response(
            200,
            &[
                ("content-type", b"application/json"),
                ("x-aigw-token-count", b"estimated"),
            ],
            answer.as_bytes(),
        );
        if let Err(e) = sent {
            host.log(
                LogLevel::Warn,
                &format!("ai-proxy: cannot answer a token count: {e}"),
            );
        }
        self.phase = Phase::PassThrough;
        Action::Pause
    }
}
