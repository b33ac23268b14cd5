//! The response half of a routed request.
//!
//! * Same protocol, 2xx: the bytes pass untouched; a [`ResponseObserver`] reads the usage on the
//!   side for the token metrics. Streams are relayed whole events at a time ([`Relay`]): one cut
//!   short or turned to garbage ends with an in-band error event.
//! * Translated stream: converted chunk by chunk as it arrives (only an incomplete event is held).
//! * Held answers (translated JSON, embeddings, upstream errors): read whole by the driver
//!   (`WholeBody`, headers held), so the end of the body is seen whether it comes with the last
//!   chunk or with trailers, and `:status` and `content-type` are set to match what the client
//!   finally gets: 200 with the translated answer, or the error's status (502 for a body that
//!   cannot be understood, for a 3xx, and for a body over the limit) with an error body.
//! * Upstream errors (and non-JSON same-protocol errors) are rewritten in the caller's shape, with
//!   every secret redacted; one without a body gets a proper error body (a local reply). When
//!   that bodiless error is Envoy's own answer for a cluster it does not have
//!   (`response.code_details` `cluster_not_found`), the error names the cluster and the provider.
//! * Same-protocol JSON errors keep the provider's shape; they are read whole too, only to redact
//!   a secret the provider may have quoted; one over [`MAX_ERROR_BODY`] becomes a generic 502 in
//!   the caller's shape (never a cut, invalid JSON).
//! * A translated stream that ends without a single byte ends with an in-band error event.

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::llm::{Api, ResponseFormat, ResponseObserver};
use aigw_shared::plugin::{Ctx, WholeBody};
use aigw_shared::reply::send_error;

use super::relay::{Relay, Relayed};
use super::{logged, Call, Filter, Phase};
use crate::config::Config;
use crate::hub::{HubEvent, Usage};
use crate::prepare::{EmbedPlan, Plan};
use crate::state::State;
use crate::stats::{metric, RequestStats, Tokens};
use crate::translate::client::anthropic_encode::AnthropicEncoder;
use crate::translate::client::openai::OpenAiEncoder;
use crate::translate::{self, errors, ClientEncoder, ResponseHead, ResponseTranslator};

/// The largest upstream error body read for rewriting (larger ones become a generic 502).
pub const MAX_ERROR_BODY: usize = 1 << 20;
/// The largest translated JSON answer (or embeddings answer) held (larger ones become a 502).
pub const MAX_HELD_ANSWER: usize = 32 << 20;

/// `response.code_details` of the local reply Envoy's router sends when the route's cluster
/// does not exist.
const CLUSTER_NOT_FOUND: &[u8] = b"cluster_not_found";

/// What the response needs.
enum Work {
    /// Pass through a 2xx; observe the usage on the side (inert for APIs without one).
    Untouched(Box<ResponseObserver>),
    /// Relay a 2xx stream of the caller's own protocol, whole events at a time.
    Relay(Box<Relay>),
    /// Translate; `hold` for JSON answers (headers and body wait for the end). `seen`: some
    /// upstream bytes arrived. `closed`: a stream was closed at the upstream's own ending (or
    /// its first error), before the end of the body; what follows is dropped.
    Translate {
        translator: Box<dyn ResponseTranslator>,
        encoder: Box<dyn ClientEncoder>,
        broken: bool,
        hold: bool,
        seen: bool,
        closed: bool,
    },
    /// Read an upstream error body whole and rewrite it.
    MapError { status: u16 },
    /// Read a same-protocol error body whole and send it back with secrets redacted.
    Scrub { status: u16 },
    /// Hold a 2xx embeddings answer (headers and body) and translate it at the end.
    Embed(EmbedPlan),
    /// Hold a counting API's answer (`status`) and give the count back in the client's shape
    /// (or the estimate, marked, when a Bedrock count failed).
    Count { status: u16 },
}

/// The response header marking a token count the gateway estimated.
pub const ESTIMATED_HEADER: &str = "x-aigw-token-count";

/// The response header naming the model sent upstream when a mapping changed it (read by
/// ai-usage-stats for its record's `requestModel`).
pub const UPSTREAM_MODEL_HEADER: &str = "x-aigw-upstream-model";

/// A response in progress.
pub(crate) struct Responding {
    plan: Plan,
    work: Work,
    stats: RequestStats,
}

fn text_header(host: &dyn Host, name: &str) -> Option<String> {
    let v = host.header(MapKind::ResponseHeaders, name).ok().flatten()?;
    String::from_utf8(v).ok()
}

fn encoder_for(plan: &Plan) -> Box<dyn ClientEncoder> {
    if plan.responses {
        return Box::new(crate::translate::client::responses::ResponsesEncoder::new(
            plan.stream,
        ));
    }
    match plan.protocol {
        ClientProtocol::OpenAi => Box::new(OpenAiEncoder::new(plan.stream, plan.include_usage)),
        ClientProtocol::Anthropic => {
            Box::new(AnthropicEncoder::new(plan.stream, &plan.client_model))
        }
    }
}

/// The tokens an observer read from an untouched answer.
fn observed_tokens(u: &aigw_shared::llm::Usage) -> Tokens {
    Tokens {
        input: u.input_tokens,
        output: u.output_tokens,
    }
}

fn tokens_of(usage: &Usage) -> Tokens {
    Tokens {
        input: usage.prompt_tokens,
        output: usage.completion_tokens,
    }
}

impl Responding {
    /// The response headers arrived (`eos`: and no body follows). Returns the headers' action
    /// and, for a held answer, the whole-body read to ask the driver for.
    pub(crate) fn start(
        config: &Config,
        state: &State,
        host: &dyn Host,
        api: Api,
        plan: Plan,
        stats: RequestStats,
        eos: bool,
    ) -> (Self, Action, Option<WholeBody>) {
        let resp = MapKind::ResponseHeaders;
        let status: u16 = text_header(host, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = text_header(host, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let ok = (200..300).contains(&status);
        if !ok {
            super::key_health::after_status(config, state, host, &plan, status);
        }
        // The model a mapping sent upstream, for the client and for ai-usage-stats' record.
        if !plan.backend_model.is_empty() && plan.backend_model != plan.client_model {
            logged(
                host,
                host.set_header(resp, UPSTREAM_MODEL_HEADER, plan.backend_model.as_bytes()),
                "cannot set the upstream model header",
            );
        }
        let translated =
            plan.translate_from.is_some() || plan.embed.is_some() || plan.count.is_some();
        let estimated = plan.count.as_ref().is_some_and(|c| c.estimate.is_some());
        let work = if (ok || estimated) && plan.count.is_some() {
            logged(
                host,
                host.set_header(resp, "content-type", b"application/json"),
                "cannot set the token count's content-type",
            );
            Work::Count { status }
        } else if !ok && (translated || !content_type.contains("json")) {
            logged(
                host,
                host.set_header(resp, "content-type", b"application/json"),
                "cannot set the error's content-type",
            );
            Work::MapError { status }
        } else if let (true, Some(embed)) = (ok, &plan.embed) {
            logged(
                host,
                host.set_header(resp, "content-type", b"application/json"),
                "cannot set the embeddings content-type",
            );
            Work::Embed(embed.clone())
        } else if let (true, Some(schema)) = (ok, plan.translate_from) {
            let head = ResponseHead {
                status,
                content_type,
                stream: plan.stream,
                model: plan.client_model.clone(),
                created: host.now_nanos().map_or(0, |n| n / 1_000_000_000),
            };
            let encoder = encoder_for(&plan);
            logged(
                host,
                host.set_header(resp, "content-type", encoder.content_type().as_bytes()),
                "cannot set the translated content-type",
            );
            Work::Translate {
                translator: translate::backend(schema).response_translator(&head),
                encoder,
                broken: false,
                hold: !plan.stream,
                seen: false,
                closed: false,
            }
        } else if !ok {
            Work::Scrub { status }
        } else {
            let format = ResponseFormat::from_content_type(Some(content_type.as_bytes()));
            // A native Responses API answer (OpenAI, Azure OpenAI) is read as one: `api` is
            // `Api::Responses` for it.
            let observer = Box::new(ResponseObserver::new(api, format).usage_only());
            let streamed = matches!(api, Api::ChatCompletions | Api::AnthropicMessages);
            if format == ResponseFormat::Sse && streamed {
                Work::Relay(Box::new(Relay::new(observer, plan.protocol)))
            } else {
                Work::Untouched(observer)
            }
        };
        // A relayed stream keeps its length unless it breaks, when a declared length would be
        // wrong: it goes too.
        if !matches!(work, Work::Untouched(_)) {
            logged(
                host,
                host.remove_header(resp, "content-length"),
                "cannot remove the response content-length",
            );
        }
        let mut this = Self { plan, work, stats };
        let (action, whole) = this.headers_action(config, state, host, status, eos);
        (this, action, whole)
    }

    /// The whole-body read a held answer needs (headers held until it is handled).
    fn held(&self) -> Option<WholeBody> {
        let limit = match &self.work {
            Work::Translate { hold: true, .. } | Work::Embed(_) | Work::Count { .. } => {
                MAX_HELD_ANSWER
            }
            Work::MapError { .. } | Work::Scrub { .. } => MAX_ERROR_BODY,
            Work::Translate { .. } | Work::Untouched(_) | Work::Relay(_) => return None,
        };
        Some(WholeBody::up_to(limit).holding_headers())
    }

    fn headers_action(
        &mut self,
        config: &Config,
        state: &State,
        host: &dyn Host,
        status: u16,
        eos: bool,
    ) -> (Action, Option<WholeBody>) {
        let metrics = &state.metrics;
        if !eos {
            if let Some(whole) = self.held() {
                // The status is counted once the body decided it.
                return (Action::Continue, Some(whole));
            }
            self.stats.status(metrics, host, status);
            return (Action::Continue, None);
        }
        // No body follows. Headers alone cannot carry an error body: answer locally (the
        // response has not started) with a proper error in the caller's shape.
        let error = match &self.work {
            Work::Untouched(_) | Work::Relay(_) => {
                self.stats.status(metrics, host, status);
                self.stats.finish(metrics, host);
                return (Action::Continue, None);
            }
            Work::MapError { .. } | Work::Scrub { .. } => {
                if let Some(e) = self.missing_cluster(config, host, status) {
                    send_error(host, "ai-proxy", self.plan.protocol, &e);
                    self.stats.status(metrics, host, e.status);
                    self.stats.finish(metrics, host);
                    return (Action::Pause, None);
                }
                metrics.count(host, metric::UPSTREAM_ERRORS, 1);
                let mut e = errors::from_upstream(status, b"");
                e.message = config.redact_also(
                    &e.message,
                    self.plan.client_secret.as_ref().map(|s| s.0.as_str()),
                );
                e
            }
            Work::Count { .. } if self.estimate().is_some() => {
                // A count that failed without a body: the estimate, answered here.
                let out = self.estimated(host, status, "no body");
                if let Err(e) = host.send_local_response(
                    200,
                    &[
                        ("content-type", b"application/json"),
                        (ESTIMATED_HEADER, b"estimated"),
                    ],
                    &out,
                ) {
                    host.log(
                        LogLevel::Warn,
                        &format!("ai-proxy: cannot answer a token count: {e}"),
                    );
                }
                self.stats.status(metrics, host, 200);
                self.stats.finish(metrics, host);
                return (Action::Pause, None);
            }
            Work::Translate { .. } | Work::Embed(_) | Work::Count { .. } => {
                metrics.count(host, metric::BROKEN_STREAMS, 1);
                ClientError::new(ErrorKind::BadGateway, "upstream answered without a body")
            }
        };
        host.log(LogLevel::Warn, "ai-proxy: upstream answered without a body");
        send_error(host, "ai-proxy", self.plan.protocol, &error);
        self.stats.status(metrics, host, error.status);
        self.stats.finish(metrics, host);
        (Action::Pause, None)
    }

    /// A bodiless error that is Envoy's own answer to a route whose cluster does not exist
    /// (`response.code_details` = `cluster_not_found`; 503 unless the route's
    /// `cluster_not_found_response_code` says otherwise): an error naming the cluster, logged once
    /// at WARN. The property is read only here, never on the success path.
    fn missing_cluster(
        &self,
        config: &Config,
        host: &dyn Host,
        status: u16,
    ) -> Option<ClientError> {
        let details = host
            .property(&["response", "code_details"])
            .ok()
            .flatten()?;
        if details != CLUSTER_NOT_FOUND {
            return None;
        }
        let provider = self.plan.provider.as_str();
        let cluster = config
            .provider(provider)
            .map_or(provider, |p| p.cluster.as_str());
        let message = format!(
            "Envoy has no cluster `{cluster}` (provider `{provider}`): add it to the bootstrap, \
             or fix the provider's `cluster`"
        );
        host.log(LogLevel::Warn, &format!("ai-proxy: {message}"));
        let status = if (400..=599).contains(&status) {
            status
        } else {
            503
        };
        Some(
            ClientError::new(ErrorKind::Internal, message)
                .with_status(status)
                .with_code("cluster_not_found"),
        )
    }

    /// A held body is complete (its last chunk or trailers came): rewrite it and fix the held
    /// headers to match.
    pub(crate) fn whole(
        &mut self,
        config: &Config,
        state: &State,
        host: &dyn Host,
        body: &[u8],
    ) -> Action {
        let metrics = &state.metrics;
        let resp = MapKind::ResponseHeaders;
        let out = match &mut self.work {
            Work::Translate { .. } => self.translate(state, host, body, true),
            Work::Embed(plan) => {
                let plan = plan.clone();
                self.embed_answer(state, host, &plan, body)
            }
            Work::Count { status } => {
                let status = *status;
                self.count_answer(state, host, status, body)
            }
            Work::MapError { status } => {
                let mut e = errors::from_upstream(*status, body);
                e.message = config.redact_also(
                    &e.message,
                    self.plan.client_secret.as_ref().map(|s| s.0.as_str()),
                );
                metrics.count(host, metric::UPSTREAM_ERRORS, 1);
                // A 3xx (or anything outside 4xx/5xx) is a 502 in the body: the status follows.
                logged(
                    host,
                    host.set_header(resp, ":status", e.status.to_string().as_bytes()),
                    "cannot set the error's status",
                );
                self.stats.status(metrics, host, e.status);
                self.stats.finish(metrics, host);
                e.body(self.plan.protocol)
            }
            Work::Scrub { status } => {
                let status = *status;
                self.stats.status(metrics, host, status);
                self.stats.finish(metrics, host);
                match std::str::from_utf8(body) {
                    Ok(text) => config
                        .redact_also(text, self.plan.client_secret.as_ref().map(|s| s.0.as_str()))
                        .into_bytes(),
                    Err(_) => body.to_vec(),
                }
            }
            Work::Untouched(_) | Work::Relay(_) => return Action::Continue,
        };
        if let Err(e) = host.replace_body(BufferKind::ResponseBody, body.len(), &out) {
            host.log(
                LogLevel::Error,
                &format!("ai-proxy: cannot rewrite the response: {e}"),
            );
        }
        Action::Continue
    }

    /// The whole body is in the host's buffer already (a fallback's answer put there): handle it
    /// as a held answer, or as the last chunk of a passed or streamed one.
    pub(crate) fn complete(
        &mut self,
        config: &Config,
        state: &State,
        host: &dyn Host,
        body: &[u8],
    ) {
        if self.held().is_some() {
            self.whole(config, state, host, body);
        } else {
            self.body(config, state, host, body.len(), true);
        }
    }

    /// A held body was over its limit: the driver answers 502 in the caller's shape.
    pub(crate) fn too_large(&mut self, state: &State, host: &dyn Host) {
        self.stats.status(&state.metrics, host, 502);
        self.stats.finish(&state.metrics, host);
    }

    /// A response body chunk (`size` bytes are buffered by the host) arrived.
    pub(crate) fn body(
        &mut self,
        config: &Config,
        state: &State,
        host: &dyn Host,
        size: usize,
        eos: bool,
    ) -> Action {
        let chunk = host
            .whole_body(BufferKind::ResponseBody, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        // Only usage is read from an untouched answer, no timings: no clock reading per chunk
        // (the observers get 0 for "now").
        let metrics = &state.metrics;
        let out = match &mut self.work {
            Work::Untouched(observer) => {
                observer.feed_quiet(&chunk, 0);
                if eos {
                    if let Some(u) = observer.finish(0, |_| {}).usage {
                        self.stats.usage(observed_tokens(&u));
                    }
                    self.stats.finish(metrics, host);
                }
                return Action::Continue;
            }
            Work::Relay(relay) => {
                let out = relay.feed(&chunk, 0, eos);
                if eos {
                    if let Some(u) = relay.usage() {
                        self.stats.usage(observed_tokens(&u));
                    }
                    if relay.broken() {
                        metrics.count(host, metric::BROKEN_STREAMS, 1);
                    }
                    self.stats.finish(metrics, host);
                }
                match out {
                    Relayed::Unchanged => return Action::Continue,
                    Relayed::Replace(out) => out,
                }
            }
            Work::Translate { hold: false, .. } => self.translate(state, host, &chunk, eos),
            // Held answers are read whole by the driver and never get here; should one, it is
            // handled as complete at its end.
            _ if eos => return self.whole(config, state, host, &chunk),
            _ => return Action::Pause,
        };
        if let Err(e) = host.replace_body(BufferKind::ResponseBody, size, &out) {
            host.log(
                LogLevel::Error,
                &format!("ai-proxy: cannot rewrite the response: {e}"),
            );
        }
        Action::Continue
    }

    /// Translate one chunk (or, when held, the whole body); returns the client bytes.
    fn translate(&mut self, state: &State, host: &dyn Host, chunk: &[u8], eos: bool) -> Vec<u8> {
        let Work::Translate {
            translator,
            encoder,
            broken,
            hold,
            seen,
            closed,
        } = &mut self.work
        else {
            return Vec::new();
        };
        if *closed {
            return Vec::new();
        }
        *seen |= !chunk.is_empty();
        let mut events: Vec<HubEvent> = Vec::new();
        if !*broken {
            if let Err(e) = translator.feed(chunk, &mut events) {
                *broken = true;
                events.push(HubEvent::Error(e.to_client()));
            }
        }
        let mut end_error: Option<ClientError> = None;
        // A stream is closed as soon as the upstream's own ending (or an error) is read, so the
        // client's closing events go out even when the body ends with trailers.
        let early = !eos && !*hold && (*broken || translator.complete());
        if eos {
            let end = if *broken || translator.complete() {
                Ok(())
            } else {
                translator.finish(&mut events)
            };
            end_error = end.err().map(|e| e.to_client());
            if !*seen && end_error.is_none() && !*broken {
                // A 200 with nothing in it: the client gets an error, never an empty answer.
                end_error = Some(ClientError::new(
                    ErrorKind::BadGateway,
                    "upstream answered 200 with an empty body",
                ));
            }
        }
        let mut failed: Option<u16> = end_error.as_ref().map(|e| e.status);
        let mut out = Vec::new();
        for ev in events {
            match &ev {
                HubEvent::Chunk(c) => {
                    if let Some(u) = &c.usage {
                        self.stats.usage(tokens_of(u));
                    }
                }
                HubEvent::Response(r) => {
                    if let Some(u) = &r.usage {
                        self.stats.usage(tokens_of(u));
                    }
                }
                HubEvent::Error(e) => {
                    failed.get_or_insert(e.status);
                }
            }
            encoder.encode(ev, &mut out);
        }
        if !eos && !early {
            return out;
        }
        *closed = true;
        let metrics = &state.metrics;
        if end_error.is_some() || *broken {
            metrics.count(host, metric::BROKEN_STREAMS, 1);
        }
        encoder.finish(end_error, &mut out);
        if *hold {
            // The headers waited for this: make them match the body.
            let status = failed.unwrap_or(200);
            let resp = MapKind::ResponseHeaders;
            logged(
                host,
                host.set_header(resp, ":status", status.to_string().as_bytes()),
                "cannot set the answer's status",
            );
            logged(
                host,
                host.set_header(resp, "content-type", encoder.content_type().as_bytes()),
                "cannot set the answer's content-type",
            );
            self.stats.status(metrics, host, status);
        }
        self.stats.finish(metrics, host);
        out
    }

    /// The whole held embeddings answer -> the OpenAI body; the held headers are fixed to match.
    fn embed_answer(
        &mut self,
        state: &State,
        host: &dyn Host,
        plan: &EmbedPlan,
        body: &[u8],
    ) -> Vec<u8> {
        let (status, out) = match plan.answer(body) {
            Ok(out) => {
                let input = serde_json::from_slice::<serde_json::Value>(&out)
                    .ok()
                    .and_then(|v| v.pointer("/usage/prompt_tokens")?.as_u64())
                    .unwrap_or(0);
                self.stats.usage(Tokens { input, output: 0 });
                (200, out)
            }
            Err(e) => {
                let e = e.to_client();
                state.metrics.count(host, metric::BROKEN_STREAMS, 1);
                (e.status, e.body(self.plan.protocol))
            }
        };
        let resp = MapKind::ResponseHeaders;
        logged(
            host,
            host.set_header(resp, ":status", status.to_string().as_bytes()),
            "cannot set the embeddings status",
        );
        logged(
            host,
            host.set_header(resp, "content-type", b"application/json"),
            "cannot set the embeddings content-type",
        );
        self.stats.status(&state.metrics, host, status);
        self.stats.finish(&state.metrics, host);
        out
    }

    /// The gateway's estimate of a count the provider could not give (`status`, `why`), logged.
    fn estimated(&self, host: &dyn Host, status: u16, why: &str) -> Vec<u8> {
        let Some((asked, tokens)) = self
            .plan
            .count
            .as_ref()
            .and_then(|c| Some((c.asked, c.estimate?)))
        else {
            return Vec::new();
        };
        host.log(
            LogLevel::Warn,
            &format!(
                "ai-proxy: provider {} could not count tokens (status {status}: {why}); answered \
                 the gateway's estimate",
                self.plan.provider
            ),
        );
        asked.answer(tokens).into_bytes()
    }

    /// The estimate a failed count falls back to (`None`: failures are errors).
    fn estimate(&self) -> Option<u64> {
        self.plan.count.as_ref().and_then(|c| c.estimate)
    }

    /// A held counting API answer (`{"totalTokens": N}` from Gemini, `{"inputTokens": N}` from
    /// Bedrock) in the client's shape. One that fails (an error status, no count in it) is the
    /// gateway's estimate, marked `x-aigw-token-count: estimated`, where the plan has one, and a
    /// 502 in the caller's shape otherwise (never a made-up number).
    fn count_answer(
        &mut self,
        state: &State,
        host: &dyn Host,
        status: u16,
        body: &[u8],
    ) -> Vec<u8> {
        let Some(count) = self.plan.count.clone() else {
            return body.to_vec();
        };
        let read = if (200..300).contains(&status) {
            count.read(body)
        } else {
            Err(format!("the provider answered {status}"))
        };
        let resp = MapKind::ResponseHeaders;
        let (status, out) = match read {
            Ok(tokens) => (200, count.asked.answer(tokens).into_bytes()),
            Err(why) if count.estimate.is_some() => {
                logged(
                    host,
                    host.set_header(resp, ESTIMATED_HEADER, b"estimated"),
                    "cannot mark the token count as estimated",
                );
                (200, self.estimated(host, status, &why))
            }
            Err(why) => {
                state.metrics.count(host, metric::BROKEN_STREAMS, 1);
                let e = ClientError::new(
                    ErrorKind::BadGateway,
                    format!("the provider's token count could not be read: {why}"),
                );
                (e.status, e.body(self.plan.protocol))
            }
        };
        logged(
            host,
            host.set_header(resp, ":status", status.to_string().as_bytes()),
            "cannot set the token count's status",
        );
        self.stats.status(&state.metrics, host, status);
        self.stats.finish(&state.metrics, host);
        out
    }

    /// The stream ended (access-log time): record what was not recorded yet.
    pub(crate) fn finish(&mut self, state: &State, host: &dyn Host) {
        self.stats.finish(&state.metrics, host);
    }
}

impl Filter {
    pub(super) fn response_head(&mut self, cx: &mut Ctx<'_, Call>, eos: bool) -> Action {
        let Phase::Sent(plan, sent_ns) = std::mem::replace(&mut self.phase, Phase::PassThrough)
        else {
            return Action::Continue;
        };
        let stats = self.request_stats(cx.host, &plan, sent_ns);
        if self.failover.is_some() && self.routed_answer(cx, &plan, eos).is_some() {
            // Held for a fallback: the driver reads the failed answer's body.
            self.phase = Phase::Failing(plan, stats);
            return Action::Continue;
        }
        let (responding, action, whole) = Responding::start(
            &self.config,
            &self.state,
            cx.host,
            self.api,
            plan,
            stats,
            eos,
        );
        if let Some(whole) = whole {
            cx.read_whole_response(whole);
        }
        self.phase = Phase::Responding(Box::new(responding));
        action
    }
}
