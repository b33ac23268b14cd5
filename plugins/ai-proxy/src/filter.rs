//! The per-request state machine.
//!
//! Request: the headers are held (Pause) until the body is complete, so that `:path`,
//! `:authority`, the credential and the routing header (`x-aigw-upstream`, read by the Envoy route
//! through `cluster_header`) can be rewritten once the model is known. Response: see
//! [`crate::filter_response`]: same-protocol answers pass untouched, streams are translated chunk
//! by chunk, translated JSON answers hold their headers until the body is complete, and error
//! bodies are rewritten in the caller's shape.
//!
//! The body is read whole by the driver (`WholeBody`, headers held): it enforces the size limit
//! (413 in the caller's shape) and treats trailers as the end of the body. A provider that
//! fetches its credential over HTTP (Vertex service accounts) holds the complete request until
//! the token arrives when the worker has none yet; the worker refreshes tokens on its tick: see
//! [`token`].
//!
//! On a host that cannot rewrite bodies (APISIX) the filter only answers `GET /v1/models` and lets
//! every other request pass unchanged.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{Ctx, FilterEnv, HttpFilter, Next, Reply, WholeBody};
use aigw_shared::reply::send_error;

use crate::config::Config;
use crate::filter_response::Responding;
use crate::prepare::{api_suffix, prepare, Incoming, Plan, Prepared};
use crate::state::State;
use crate::stats::RequestStats;
pub use token::TokenCall;

#[path = "filter_token.rs"]
pub mod token;

pub use crate::stats::metric;

/// Client credential headers, removed from every request this plugin routes.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// Where the request is.
enum Phase {
    /// Not ours (or finished): everything passes.
    PassThrough,
    /// Holding the headers while the driver reads the body.
    Collecting(Incoming),
    /// The complete request (its header facts and body size) waits for a token callout.
    AwaitingToken(Incoming, usize),
    /// Sent upstream; waiting for the response.
    Sent(Plan, RequestStats),
    /// Handling the response.
    Responding(Box<Responding>),
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    phase: Phase,
    protocol: ClientProtocol,
    api: Api,
    /// The host can rewrite bodies (false on APISIX: nothing is routed).
    body_write: bool,
}

fn text_header(host: &dyn Host, map: MapKind, name: &str) -> Option<String> {
    let v = host.header(map, name).ok().flatten()?;
    String::from_utf8(v).ok()
}

fn client_key(host: &dyn Host) -> Option<String> {
    if let Some(auth) = text_header(host, MapKind::RequestHeaders, "authorization") {
        let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).trim();
        if !token.is_empty() {
            return Some(token.to_owned());
        }
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|h| text_header(host, MapKind::RequestHeaders, h).filter(|v| !v.is_empty()))
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            phase: Phase::PassThrough,
            protocol: ClientProtocol::OpenAi,
            api: Api::Other,
            body_write: env.capabilities.body_write,
        }
    }

    fn reject(&mut self, host: &dyn Host, error: &ClientError) -> Action {
        send_error(host, "ai-proxy", self.protocol, error);
        self.state.metrics.count(host, metric::REJECTED, 1);
        self.phase = Phase::PassThrough;
        Action::Pause
    }

    fn headers_in(&mut self, cx: &mut Ctx<'_, TokenCall>, end_of_stream: bool) -> Action {
        let host = cx.host;
        let method = text_header(host, MapKind::RequestHeaders, ":method").unwrap_or_default();
        let path = text_header(host, MapKind::RequestHeaders, ":path").unwrap_or_default();
        // Nobody but this plugin chooses the cluster.
        cx.check(
            host.remove_header(MapKind::RequestHeaders, &self.config.upstream_header),
            "cannot remove the routing header",
        );
        let api = Api::from_path(&method, &path);
        self.protocol = api.protocol();
        self.api = api;
        let Some(suffix) = api_suffix(&path) else {
            return Action::Continue;
        };
        let routed = match api {
            Api::Models => {
                let body = self.config.models_body();
                cx.check(
                    host.send_local_response(200, &[("content-type", b"application/json")], &body),
                    "cannot answer /v1/models",
                );
                self.state.metrics.count(host, metric::MODELS, 1);
                return Action::Pause;
            }
            Api::Other => {
                method.eq_ignore_ascii_case("POST")
                    && (suffix.starts_with("/audio/") || suffix.starts_with("/images/"))
            }
            _ => true,
        };
        if !routed || !self.body_write {
            return Action::Continue;
        }
        if end_of_stream {
            return self.reject(
                host,
                &ClientError::invalid_request("a request body is required"),
            );
        }
        let content_type =
            text_header(host, MapKind::RequestHeaders, "content-type").unwrap_or_default();
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
            suffix: suffix.to_owned(),
            json,
            client_key: client_key(host),
            now_unix: host
                .now_nanos()
                .map_or(0, |n| i64::try_from(n / 1_000_000_000).unwrap_or(0)),
        });
        cx.read_whole_request(WholeBody::up_to(self.config.max_body_bytes).holding_headers());
        Action::Pause
    }

    fn body_in(&mut self, cx: &mut Ctx<'_, TokenCall>, body: &[u8]) -> Action {
        let Phase::Collecting(inc) = &self.phase else {
            return Action::Continue;
        };
        let inc = inc.clone();
        if let Some(action) = self.token_first(cx, &inc, body) {
            return action;
        }
        match prepare(&self.config, &self.state, &inc, body) {
            Ok(p) => self.send(cx.host, p, body.len()),
            Err(e) => self.reject(cx.host, &e),
        }
    }

    fn send(&mut self, host: &dyn Host, p: Prepared, old_size: usize) -> Action {
        let req = MapKind::RequestHeaders;
        for h in CREDENTIAL_HEADERS
            .iter()
            .chain(["content-length", "accept-encoding"].iter())
        {
            let _ = host.remove_header(req, h);
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
        if translated {
            results.push(host.set_header(req, "content-type", b"application/json"));
        }
        results.push(host.replace_body(BufferKind::RequestBody, old_size, &p.call.body));
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
        let model = self
            .config
            .route(&p.plan.client_model)
            .map(|r| r.model)
            .unwrap_or_default();
        let label = self.state.model_labels.label(&model);
        let stats = RequestStats::new(&p.plan.provider, &label, host.now_nanos());
        stats.sent(&self.state.metrics, host);
        self.phase = Phase::Sent(p.plan, stats);
        Action::Continue
    }

    fn response_head(&mut self, host: &dyn Host, eos: bool) -> Action {
        let Phase::Sent(plan, stats) = std::mem::replace(&mut self.phase, Phase::PassThrough)
        else {
            return Action::Continue;
        };
        let (responding, action) = Responding::start(&self.state, host, self.api, plan, stats, eos);
        self.phase = Phase::Responding(Box::new(responding));
        action
    }
}

impl HttpFilter for Filter {
    type Call = TokenCall;

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, TokenCall>, end_of_stream: bool) -> Action {
        self.headers_in(cx, end_of_stream)
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, TokenCall>, body: &[u8]) -> Action {
        self.body_in(cx, body)
    }

    fn on_error_reply(&mut self, cx: &mut Ctx<'_, TokenCall>, _error: &ClientError) {
        self.state.metrics.count(cx.host, metric::REJECTED, 1);
        self.phase = Phase::PassThrough;
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, TokenCall>, end_of_stream: bool) -> Action {
        self.response_head(cx.host, end_of_stream)
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, TokenCall>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        match &mut self.phase {
            Phase::Responding(r) => {
                r.body(&self.config, &self.state, cx.host, body_size, end_of_stream)
            }
            _ => Action::Continue,
        }
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_, TokenCall>, call: TokenCall, reply: Reply) -> Next {
        self.token_answer(cx.host, call, &reply)
    }

    fn on_call_cancelled(&mut self, call: TokenCall) {
        self.token_cancelled(call);
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, TokenCall>) {
        let host = cx.host;
        match &mut self.phase {
            Phase::Responding(r) => r.finish(&self.state, host),
            Phase::Sent(_, stats) => stats.finish(&self.state.metrics, host),
            _ => {}
        }
    }
}
