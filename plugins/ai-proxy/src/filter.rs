//! The per-request state machine.
//!
//! Request: the headers are held (Pause) until the body is complete, so that `:path`,
//! `:authority`, the credential and the routing header (`x-aigw-upstream`, read by the Envoy route
//! through `cluster_header`) can be rewritten once the model is known. Response: same-protocol
//! answers pass untouched; translated ones are converted chunk by chunk as they arrive (nothing
//! is held back but an incomplete event); error bodies are rewritten in the caller's shape.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::llm::Api;
use aigw_shared::plugin::{FilterEnv, HttpFilter};

use crate::config::Config;
use crate::hub::HubEvent;
use crate::prepare::{api_suffix, prepare, Incoming, Plan, Prepared};
use crate::translate::anthropic_encode::AnthropicEncoder;
use crate::translate::openai_client::OpenAiEncoder;
use crate::translate::{self, errors, ClientEncoder, ResponseHead, ResponseTranslator};

/// Metric names (Envoy shows them as `wasmcustom.<name>`).
pub mod metric {
    /// Requests sent upstream unchanged in protocol (model/path/auth rewritten only).
    pub const FORWARDED: &str = "aigw.ai_proxy.forwarded";
    /// Requests translated between protocols.
    pub const TRANSLATED: &str = "aigw.ai_proxy.translated";
    /// Requests answered locally with an error.
    pub const REJECTED: &str = "aigw.ai_proxy.rejected";
    /// `GET /v1/models` answered from config.
    pub const MODELS: &str = "aigw.ai_proxy.models_listed";
    /// Upstream error responses rewritten into the caller's shape.
    pub const UPSTREAM_ERRORS: &str = "aigw.ai_proxy.upstream_errors";
    /// Upstream streams that ended early or could not be translated.
    pub const BROKEN_STREAMS: &str = "aigw.ai_proxy.broken_streams";
}

/// Client credential headers, removed from every request this plugin routes.
const CREDENTIAL_HEADERS: [&str; 4] = ["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// What the response needs.
enum ResponseWork {
    /// Nothing: pass through.
    Untouched,
    /// Translate chunk by chunk.
    Translate {
        translator: Box<dyn ResponseTranslator>,
        encoder: Box<dyn ClientEncoder>,
        broken: bool,
    },
    /// Collect an upstream error body and rewrite it at the end.
    MapError { status: u16, body: Vec<u8> },
}

/// Where the request is.
enum Phase {
    /// Not ours (or finished): everything passes.
    PassThrough,
    /// Holding the headers while the body arrives.
    Collecting(Incoming),
    /// Sent upstream; waiting for the response.
    Sent(Plan),
    /// Handling the response.
    Responding(Plan, ResponseWork),
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    phase: Phase,
    protocol: ClientProtocol,
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
    pub fn new(config: Rc<Config>, _env: FilterEnv) -> Self {
        Self {
            config,
            phase: Phase::PassThrough,
            protocol: ClientProtocol::OpenAi,
        }
    }

    fn reject(&mut self, host: &dyn Host, error: &ClientError) -> Action {
        let r = error.render(self.protocol);
        if let Err(e) = host.send_local_response(
            r.status,
            &[("content-type", r.content_type.as_bytes())],
            &r.body,
        ) {
            host.log(
                LogLevel::Error,
                &format!("ai-proxy: cannot send error reply: {e}"),
            );
        }
        self.config.metrics.count(host, metric::REJECTED, 1);
        self.phase = Phase::PassThrough;
        Action::Pause
    }

    fn headers_in(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        let method = text_header(host, MapKind::RequestHeaders, ":method").unwrap_or_default();
        let path = text_header(host, MapKind::RequestHeaders, ":path").unwrap_or_default();
        // Nobody but this plugin chooses the cluster.
        let _ = host.remove_header(MapKind::RequestHeaders, &self.config.upstream_header);
        let api = Api::from_path(&method, &path);
        self.protocol = api.protocol();
        let Some(suffix) = api_suffix(&path) else {
            return Action::Continue;
        };
        let routed = match api {
            Api::Models => {
                let body = self.config.models_body();
                let _ =
                    host.send_local_response(200, &[("content-type", b"application/json")], &body);
                self.config.metrics.count(host, metric::MODELS, 1);
                return Action::Pause;
            }
            Api::Other => {
                method.eq_ignore_ascii_case("POST")
                    && (suffix.starts_with("/audio/") || suffix.starts_with("/images/"))
            }
            _ => true,
        };
        if !routed {
            return Action::Continue;
        }
        if end_of_stream {
            return self.reject(
                host,
                &ClientError::invalid_request("a request body is required"),
            );
        }
        let declared = text_header(host, MapKind::RequestHeaders, "content-length")
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.config.max_body_bytes) {
            return self.too_large(host);
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
        Action::Pause
    }

    fn too_large(&mut self, host: &dyn Host) -> Action {
        let msg = format!(
            "request body is larger than {} bytes",
            self.config.max_body_bytes
        );
        self.reject(host, &ClientError::new(ErrorKind::RequestTooLarge, msg))
    }

    fn body_in(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Action {
        let Phase::Collecting(inc) = &self.phase else {
            return Action::Continue;
        };
        if size > self.config.max_body_bytes {
            return self.too_large(host);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = match host.whole_body(BufferKind::RequestBody, size) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                let err = ClientError::new(
                    ErrorKind::Internal,
                    format!("cannot read the request body: {e}"),
                );
                return self.reject(host, &err);
            }
        };
        match prepare(&self.config, inc, &body) {
            Ok(p) => self.send(host, p, size),
            Err(e) => self.reject(host, &e),
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
        if p.plan.translate_from.is_some() {
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
        let m = if p.plan.translate_from.is_some() {
            metric::TRANSLATED
        } else {
            metric::FORWARDED
        };
        self.config.metrics.count(host, m, 1);
        self.phase = Phase::Sent(p.plan);
        Action::Continue
    }

    fn response_head(&mut self, host: &dyn Host) {
        let Phase::Sent(plan) = std::mem::replace(&mut self.phase, Phase::PassThrough) else {
            return;
        };
        let resp = MapKind::ResponseHeaders;
        let status: u16 = text_header(host, resp, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = text_header(host, resp, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let ok = (200..300).contains(&status);
        let work = if !ok && (plan.translate_from.is_some() || !content_type.contains("json")) {
            let _ = host.set_header(resp, "content-type", b"application/json");
            ResponseWork::MapError {
                status,
                body: Vec::new(),
            }
        } else if let (true, Some(schema)) = (ok, plan.translate_from) {
            let head = ResponseHead {
                status,
                content_type,
                stream: plan.stream,
                model: plan.client_model.clone(),
                created: host.now_nanos().map_or(0, |n| n / 1_000_000_000),
            };
            let encoder: Box<dyn ClientEncoder> = match plan.protocol {
                ClientProtocol::OpenAi => {
                    Box::new(OpenAiEncoder::new(plan.stream, plan.include_usage))
                }
                ClientProtocol::Anthropic => {
                    Box::new(AnthropicEncoder::new(plan.stream, &plan.client_model))
                }
            };
            let _ = host.set_header(resp, "content-type", encoder.content_type().as_bytes());
            ResponseWork::Translate {
                translator: translate::backend(schema).response_translator(&head),
                encoder,
                broken: false,
            }
        } else {
            ResponseWork::Untouched
        };
        if !matches!(work, ResponseWork::Untouched) {
            let _ = host.remove_header(resp, "content-length");
        }
        self.phase = Phase::Responding(plan, work);
    }

    fn body_out(&mut self, host: &dyn Host, size: usize, eos: bool) {
        let Phase::Responding(plan, work) = &mut self.phase else {
            return;
        };
        let chunk = host
            .whole_body(BufferKind::ResponseBody, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut out = Vec::new();
        match work {
            ResponseWork::Untouched => return,
            ResponseWork::MapError { status, body } => {
                if body.len() < (1 << 20) {
                    body.extend_from_slice(&chunk);
                }
                if eos {
                    let e = errors::from_upstream(*status, body);
                    out = e.body(plan.protocol);
                    self.config.metrics.count(host, metric::UPSTREAM_ERRORS, 1);
                }
            }
            ResponseWork::Translate {
                translator,
                encoder,
                broken,
            } => {
                let mut events: Vec<HubEvent> = Vec::new();
                if !*broken {
                    if let Err(e) = translator.feed(&chunk, &mut events) {
                        *broken = true;
                        events.push(HubEvent::Error(e.to_client()));
                    }
                }
                for ev in events {
                    encoder.encode(ev, &mut out);
                }
                if eos {
                    let mut tail = Vec::new();
                    let end = if *broken {
                        Ok(())
                    } else {
                        translator.finish(&mut tail)
                    };
                    for ev in tail {
                        encoder.encode(ev, &mut out);
                    }
                    let err = end.err().map(|e| e.to_client());
                    if err.is_some() || *broken {
                        self.config.metrics.count(host, metric::BROKEN_STREAMS, 1);
                    }
                    encoder.finish(err, &mut out);
                }
            }
        }
        if let Err(e) = host.replace_body(BufferKind::ResponseBody, size, &out) {
            host.log(
                LogLevel::Error,
                &format!("ai-proxy: cannot rewrite the response: {e}"),
            );
        }
    }
}

impl HttpFilter for Filter {
    fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        self.headers_in(host, end_of_stream)
    }

    fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        self.body_in(host, body_size, end_of_stream)
    }

    fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Action {
        self.response_head(host);
        if end_of_stream {
            // No body will follow: a translated or mapped response still owes the client one.
            if let Phase::Responding(
                _,
                ResponseWork::MapError { .. } | ResponseWork::Translate { .. },
            ) = self.phase
            {
                host.log(LogLevel::Warn, "ai-proxy: upstream answered without a body");
            }
        }
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        self.body_out(host, body_size, end_of_stream);
        Action::Continue
    }
}
