//! The response half of a routed request.
//!
//! * Same protocol, 2xx: the bytes pass untouched; a [`ResponseObserver`] reads the usage on the
//!   side for the token metrics.
//! * Translated stream: converted chunk by chunk as it arrives (only an incomplete event is held).
//! * Translated JSON: the response headers are held (Pause) until the body is complete, so that
//!   `:status` and `content-type` match what the client finally gets: 200 with the translated
//!   answer, or the error's status (502 for a body that cannot be understood) with an error body.
//! * Upstream errors (and non-JSON same-protocol errors): the body is collected and rewritten in
//!   the caller's shape at the end, with any configured key redacted.
//! * Same-protocol JSON errors keep the provider's shape; they are collected too, only to redact
//!   a configured key the provider may have quoted.

use aigw_shared::error::{ClientError, ClientProtocol};
use aigw_shared::host::{Action, BufferKind, Host, LogLevel, MapKind};
use aigw_shared::llm::{Api, ResponseFormat, ResponseObserver};

use super::{Filter, Phase};
use crate::config::Config;
use crate::hub::{HubEvent, Usage};
use crate::prepare::{EmbedPlan, Plan};
use crate::state::State;
use crate::stats::{metric, RequestStats, Tokens};
use crate::translate::client::anthropic_encode::AnthropicEncoder;
use crate::translate::client::openai::OpenAiEncoder;
use crate::translate::{self, errors, ClientEncoder, ResponseHead, ResponseTranslator};

/// The largest upstream error body kept for rewriting.
const MAX_ERROR_BODY: usize = 1 << 20;

/// What the response needs.
enum Work {
    /// Pass through a 2xx; observe the usage on the side (inert for APIs without one).
    Untouched(Box<ResponseObserver>),
    /// Translate; `hold` for JSON answers (headers and body wait for the end).
    Translate {
        translator: Box<dyn ResponseTranslator>,
        encoder: Box<dyn ClientEncoder>,
        broken: bool,
        hold: bool,
    },
    /// Collect an upstream error body and rewrite it at the end.
    MapError { status: u16, body: Vec<u8> },
    /// Collect a same-protocol error body and send it back with configured keys redacted.
    Scrub(Vec<u8>),
    /// Hold a 2xx embeddings answer (headers and body) and translate it at the end.
    Embed(EmbedPlan),
}

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
    match plan.protocol {
        ClientProtocol::OpenAi => Box::new(OpenAiEncoder::new(plan.stream, plan.include_usage)),
        ClientProtocol::Anthropic => {
            Box::new(AnthropicEncoder::new(plan.stream, &plan.client_model))
        }
    }
}

fn tokens_of(usage: &Usage) -> Tokens {
    Tokens {
        input: usage.prompt_tokens,
        output: usage.completion_tokens,
    }
}

impl Responding {
    /// The response headers arrived (`eos`: and no body follows). Returns the headers' action.
    pub(crate) fn start(
        state: &State,
        host: &dyn Host,
        api: Api,
        plan: Plan,
        stats: RequestStats,
        eos: bool,
    ) -> (Self, Action) {
        let resp = MapKind::ResponseHeaders;
        let status: u16 = text_header(host, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let content_type = text_header(host, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let ok = (200..300).contains(&status);
        let translated = plan.translate_from.is_some() || plan.embed.is_some();
        let work = if !ok && (translated || !content_type.contains("json")) {
            let _ = host.set_header(resp, "content-type", b"application/json");
            Work::MapError {
                status,
                body: Vec::new(),
            }
        } else if let (true, Some(embed)) = (ok, &plan.embed) {
            let _ = host.set_header(resp, "content-type", b"application/json");
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
            let _ = host.set_header(resp, "content-type", encoder.content_type().as_bytes());
            Work::Translate {
                translator: translate::backend(schema).response_translator(&head),
                encoder,
                broken: false,
                hold: !plan.stream,
            }
        } else if !ok {
            Work::Scrub(Vec::new())
        } else {
            let format = ResponseFormat::from_content_type(Some(content_type.as_bytes()));
            Work::Untouched(Box::new(ResponseObserver::new(api, format)))
        };
        if !matches!(work, Work::Untouched(_)) {
            let _ = host.remove_header(resp, "content-length");
        }
        let mut this = Self { plan, work, stats };
        let action = this.headers_action(state, host, status, eos);
        (this, action)
    }

    fn headers_action(&mut self, state: &State, host: &dyn Host, status: u16, eos: bool) -> Action {
        let metrics = &state.metrics;
        match &self.work {
            Work::Translate { hold: true, .. } | Work::Embed(_) if eos => {
                // A translated answer was due and nothing came: the client must not see a 200.
                host.log(LogLevel::Warn, "ai-proxy: upstream answered without a body");
                let _ = host.set_header(MapKind::ResponseHeaders, ":status", b"502");
                self.stats.status(metrics, host, 502);
                self.stats.finish(metrics, host);
                Action::Continue
            }
            Work::Translate { hold: true, .. } | Work::Embed(_) => Action::Pause,
            Work::Translate { .. } | Work::MapError { .. } | Work::Scrub(_) if eos => {
                host.log(LogLevel::Warn, "ai-proxy: upstream answered without a body");
                self.stats.status(metrics, host, status);
                self.stats.finish(metrics, host);
                Action::Continue
            }
            _ => {
                self.stats.status(metrics, host, status);
                if eos {
                    self.stats.finish(metrics, host);
                }
                Action::Continue
            }
        }
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
        if let Work::Translate { hold: true, .. } | Work::Embed(_) = self.work {
            if !eos {
                return Action::Pause;
            }
        }
        let chunk = host
            .whole_body(BufferKind::ResponseBody, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = host.now_nanos().unwrap_or(0);
        let metrics = &state.metrics;
        let out = match &mut self.work {
            Work::Untouched(observer) => {
                observer.feed_quiet(&chunk, now);
                if eos {
                    if let Some(u) = observer.finish(now, |_| {}).usage {
                        self.stats.usage(Tokens {
                            input: u.input_tokens,
                            output: u.output_tokens,
                        });
                    }
                    self.stats.finish(metrics, host);
                }
                return Action::Continue;
            }
            Work::MapError { status, body } => {
                if body.len() < MAX_ERROR_BODY {
                    body.extend_from_slice(&chunk);
                }
                if !eos {
                    Vec::new()
                } else {
                    let mut e = errors::from_upstream(*status, body);
                    e.message = config.redact(&e.message);
                    metrics.count(host, metric::UPSTREAM_ERRORS, 1);
                    self.stats.finish(metrics, host);
                    e.body(self.plan.protocol)
                }
            }
            Work::Scrub(body) => {
                if body.len() < MAX_ERROR_BODY {
                    body.extend_from_slice(&chunk);
                }
                if !eos {
                    Vec::new()
                } else {
                    self.stats.finish(metrics, host);
                    match std::str::from_utf8(body) {
                        Ok(text) => config.redact(text).into_bytes(),
                        Err(_) => std::mem::take(body),
                    }
                }
            }
            Work::Translate { .. } => self.translate(state, host, &chunk, eos),
            Work::Embed(plan) => {
                let plan = plan.clone();
                self.embed_answer(state, host, &plan, &chunk)
            }
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
        } = &mut self.work
        else {
            return Vec::new();
        };
        let mut events: Vec<HubEvent> = Vec::new();
        if !*broken {
            if let Err(e) = translator.feed(chunk, &mut events) {
                *broken = true;
                events.push(HubEvent::Error(e.to_client()));
            }
        }
        let mut end_error: Option<ClientError> = None;
        if eos {
            let end = if *broken {
                Ok(())
            } else {
                translator.finish(&mut events)
            };
            end_error = end.err().map(|e| e.to_client());
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
        if !eos {
            return out;
        }
        let metrics = &state.metrics;
        if end_error.is_some() || *broken {
            metrics.count(host, metric::BROKEN_STREAMS, 1);
        }
        encoder.finish(end_error, &mut out);
        if *hold {
            // The headers waited for this: make them match the body.
            let status = failed.unwrap_or(200);
            let resp = MapKind::ResponseHeaders;
            let _ = host.set_header(resp, ":status", status.to_string().as_bytes());
            let _ = host.set_header(resp, "content-type", encoder.content_type().as_bytes());
            let _ = host.remove_header(resp, "content-length");
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
        let _ = host.set_header(resp, ":status", status.to_string().as_bytes());
        let _ = host.set_header(resp, "content-type", b"application/json");
        let _ = host.remove_header(resp, "content-length");
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
    pub(super) fn response_head(&mut self, host: &dyn Host, eos: bool) -> Action {
        let Phase::Sent(plan, stats) = std::mem::replace(&mut self.phase, Phase::PassThrough)
        else {
            return Action::Continue;
        };
        let (responding, action) = Responding::start(&self.state, host, self.api, plan, stats, eos);
        self.phase = Phase::Responding(Box::new(responding));
        action
    }
}
