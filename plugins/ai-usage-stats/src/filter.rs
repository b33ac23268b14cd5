//! One request: observed as it passes, never held, recorded once when the response ends.
//!
//! Host calls per request: one `headers()` each way, one body read per chunk, the clock per
//! stream chunk until the first token, and at the end two properties (route, upstream cluster),
//! the clock, the metrics, and (when sampled) one log line and one filter-state write.
//!
//! Memory: the request body is kept only while it arrives (up to `maxRequestBodyBytes`, counted
//! in the VM's body budget); at its end the model is read, and what the record may need later
//! (the input estimate of a stream that will carry no usage, the captured prompt of a sampled
//! request) is taken from it before it is let go, so a long stream holds no copy of its prompt.

use std::borrow::Cow;
use std::rc::Rc;

use aigw_shared::genai::{label_value, Labels, UNKNOWN};
use aigw_shared::host::{Action, BufferKind, Capabilities, LogLevel, MapKind};
use aigw_shared::llm::{Api, Delta, DeltaKind, RequestView, ResponseFormat, ResponseObserver};
use aigw_shared::plugin::budget::Reservation;
use aigw_shared::plugin::{Ctx, HttpFilter, Plugin};
use aigw_shared::tokens::TokenCount;
use serde::Deserialize;

use crate::config::Config;
use crate::record::{self, AuditRecord};
use crate::redact;
use crate::stats::Finished;
use crate::{State, UsageStats};

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not an LLM API: nothing is observed.
    Ignored,
    /// The request body is arriving.
    Request,
    /// The request has ended; waiting for the response.
    Waiting,
    /// The response body is arriving.
    Response,
    /// Recorded.
    Done,
}

/// The request's own facts, read at the end of its body.
#[derive(Debug, Default)]
struct Asked {
    model: String,
    stream: bool,
    include_usage: bool,
}

/// The per-request observer.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    phase: Phase,
    api: Api,
    start_ns: Option<u64>,
    consumer: Option<String>,
    request_id: Option<String>,
    /// The request body as it passed, up to `maxRequestBodyBytes`; let go at its end.
    body: Vec<u8>,
    body_over: bool,
    /// `body` in the VM's body budget.
    body_held: Reservation,
    /// Request body bytes seen.
    body_seen: usize,
    asked: Asked,
    /// The input estimate, taken at the end of a request whose answer will carry no usage.
    input_estimate: Option<TokenCount>,
    /// This request gets an audit record (decided when it starts).
    sampled: bool,
    /// The captured prompt and whether it was cut.
    prompt: Option<(String, bool)>,
    observer: Option<ResponseObserver>,
    status: u16,
    /// The last clock reading.
    clock_ns: u64,
    /// JSON answer bytes the observer buffers, in the VM's body budget.
    response_held: Reservation,
    /// The budget refused more of the JSON answer: it is no longer read.
    response_over: bool,
    /// Answer text, when captured.
    answer: String,
    /// What later filters of the chain told about the request in response headers
    /// ([`Annotations`]).
    annotations: Annotations,
    /// APISIX (wasm-nginx-module): body callbacks only run for streams that ask for them.
    apisix: bool,
}

/// The suite's response headers by which filters nearer the upstream tell this one what they
/// did: the model sent upstream after mapping (ai-proxy, `x-aigw-upstream-model`), whether a
/// cache answered (`x-aigw-cache`: `hit`, `miss`, …) and how many upstream attempts a request
/// took (`x-aigw-attempts`, when more than one). Read from the response headers this filter reads
/// anyway (no extra host call); each value is cut to [`MAX_ANNOTATION`] characters.
#[derive(Debug, Default)]
struct Annotations {
    upstream_model: Option<String>,
    cache: Option<String>,
    attempts: Option<u32>,
}

/// The longest annotation kept.
const MAX_ANNOTATION: usize = 64;

impl Annotations {
    fn read(get: impl Fn(&str) -> Option<String>) -> Self {
        let cut = |v: String| v.chars().take(MAX_ANNOTATION).collect::<String>();
        Self {
            upstream_model: get(UPSTREAM_MODEL_HEADER)
                .map(|v| v.chars().take(MAX_MODEL_CHARS).collect()),
            cache: get(CACHE_HEADER).map(cut),
            attempts: get(ATTEMPTS_HEADER).and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// The model ai-proxy sent upstream, when its mapping changed it.
pub const UPSTREAM_MODEL_HEADER: &str = "x-aigw-upstream-model";
/// A cache's verdict.
pub const CACHE_HEADER: &str = "x-aigw-cache";
/// Upstream attempts (retries and fallbacks included).
pub const ATTEMPTS_HEADER: &str = "x-aigw-attempts";

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, caps: Capabilities) -> Self {
        Self {
            config,
            state,
            phase: Phase::Ignored,
            api: Api::Other,
            start_ns: None,
            consumer: None,
            request_id: None,
            body: Vec::new(),
            body_over: false,
            body_held: Reservation::default(),
            body_seen: 0,
            asked: Asked::default(),
            input_estimate: None,
            sampled: false,
            prompt: None,
            observer: None,
            status: 0,
            clock_ns: 0,
            response_held: Reservation::default(),
            response_over: false,
            answer: String::new(),
            annotations: Annotations::default(),
            apisix: caps == Capabilities::APISIX,
        }
    }

    fn end_request(&mut self) {
        if self.phase != Phase::Request {
            return;
        }
        self.phase = Phase::Waiting;
        #[derive(Deserialize)]
        struct StreamOptions {
            #[serde(default)]
            include_usage: Option<bool>,
        }
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(borrow, default)]
            model: Option<Cow<'a, str>>,
            #[serde(default)]
            stream: Option<bool>,
            #[serde(default)]
            stream_options: Option<StreamOptions>,
        }
        if let Ok(h) = serde_json::from_slice::<Head<'_>>(&self.body) {
            self.asked = Asked {
                model: h.model.as_deref().map(bounded_model).unwrap_or_default(),
                stream: h.stream.unwrap_or(false),
                include_usage: h
                    .stream_options
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false),
            };
        }
        if !self.body_over {
            // Only an OpenAI-style stream without `include_usage` is answered without usage.
            let usage_expected = !self.asked.stream
                || self.asked.include_usage
                || matches!(self.api, Api::AnthropicMessages | Api::Responses);
            let audit = &self.config.audit;
            let capture = self.sampled && audit.capture_prompt;
            if !usage_expected || capture {
                if let Ok(view) = RequestView::parse(self.api, &self.body) {
                    if !usage_expected {
                        self.input_estimate = Some(view.estimate_input_tokens());
                    }
                    if capture {
                        let enough = redact::window(audit.max_capture_bytes);
                        self.prompt = prompt_text(&view, enough).map(|p| {
                            redact::capture(&p, audit.max_capture_bytes, audit.redact_pii)
                        });
                    }
                }
            }
        }
        self.body = Vec::new();
        self.body_held.resize(0);
    }

    fn observer(&mut self) -> &mut ResponseObserver {
        let obs = match self.observer.take() {
            Some(o) => o,
            None => self.new_observer(ResponseFormat::Auto),
        };
        self.observer.insert(obs)
    }

    /// An observer for this response: it reads every event only until the first token unless
    /// the answer's text is captured, and then only until the capture is full (the record needs
    /// the first-token time, usage or its estimate, the finish reason and errors, not every
    /// delta).
    fn new_observer(&self, format: ResponseFormat) -> ResponseObserver {
        let obs = self
            .plain_observer(format)
            .with_max_json_bytes(self.config.max_response_body_bytes);
        if self.answer_limit().is_some() {
            obs
        } else {
            obs.light_after_first_token()
        }
    }

    /// An observer for this request's API.
    fn plain_observer(&self, format: ResponseFormat) -> ResponseObserver {
        ResponseObserver::new(self.api, format)
    }

    /// Feed a response chunk; a JSON answer's bytes (which the observer buffers up to
    /// `maxResponseBodyBytes`) are counted in the VM's body budget, and past it no longer read.
    fn feed_counted(&mut self, chunk: &[u8]) {
        if self.response_over {
            return;
        }
        if self.observer().format() != ResponseFormat::Sse {
            let held = self
                .response_held
                .bytes()
                .saturating_add(chunk.len())
                .min(self.config.max_response_body_bytes);
            if !self.response_held.resize(held) {
                self.response_over = true;
                self.observer = None;
                self.response_held.resize(0);
                return;
            }
        }
        self.feed(chunk, self.clock_ns);
    }

    fn feed(&mut self, chunk: &[u8], now: u64) {
        let limit = self.answer_limit();
        let mut answer = std::mem::take(&mut self.answer);
        let obs = self.observer();
        obs.feed(chunk, now, |d| keep_answer(&mut answer, limit, d));
        if limit.is_some_and(|l| answer.len() >= l) {
            // The capture is full: the rest of the stream needs no more text.
            obs.lighten();
        }
        self.answer = answer;
    }

    /// How much answer text to keep ([`redact::window`]), when this request captures it.
    fn answer_limit(&self) -> Option<usize> {
        let audit = &self.config.audit;
        (self.sampled && audit.capture_answer).then(|| redact::window(audit.max_capture_bytes))
    }

    /// The input estimate when the answer carried no usage: taken at the end of the request
    /// when that was foreseeable, else the request's size in bytes / 4.
    fn input_estimate(&self) -> TokenCount {
        self.input_estimate.unwrap_or(TokenCount {
            tokens: u64::try_from(self.body_seen.div_ceil(4)).unwrap_or(u64::MAX),
            estimated: true,
        })
    }

    /// Record the request: metrics, and the audit record when sampled. `finished`: the response
    /// reached its end (false when the stream is logged before that).
    /// `now`: a clock reading taken in the same callback, if any (spares a host call).
    fn finish(&mut self, cx: &mut Ctx<'_, ()>, finished: bool, now: Option<u64>) {
        if matches!(self.phase, Phase::Ignored | Phase::Done) {
            return;
        }
        self.end_request();
        self.phase = Phase::Done;
        let end_ns = now.or_else(|| cx.now_nanos());
        let limit = self.answer_limit();
        let mut answer = std::mem::take(&mut self.answer);
        let mut obs = self
            .observer
            .take()
            .unwrap_or_else(|| self.plain_observer(ResponseFormat::Auto));
        obs.finish(end_ns.unwrap_or(self.clock_ns), |d| {
            keep_answer(&mut answer, limit, d)
        });
        let summary = obs.summary();
        let format = obs.format();
        let status = self.status;
        let error_type = record::error_type(status, summary, format, finished);
        let billable = (200..400).contains(&status) && summary.error.is_none();
        let tokens = record::tokens(summary, billable, || self.input_estimate());
        let timings = record::timings(
            self.start_ns,
            end_ns,
            summary.first_token_ns,
            tokens.output,
            format == ResponseFormat::Sse,
        );
        let rates = self
            .config
            .prices
            .for_request(summary.model.as_deref(), &self.asked.model);
        let cost_pico = record::cost_pico(rates, &tokens);

        let route = cx.property_str(&["xds", "route_name"]).unwrap_or_default();
        let cluster = cx
            .property_str(&["xds", "cluster_name"])
            .unwrap_or_default();
        let provider = match self.config.providers.get(&cluster) {
            Some(p) => Cow::Borrowed(p.as_str()),
            None => Cow::Owned(label_value(&cluster)),
        };
        let consumer = self.consumer.as_deref().unwrap_or("");
        let state = &self.state;
        let model = self.asked.model.as_str();
        let series = state
            .series
            .get([&provider, model, &route, consumer], || Labels {
                provider: provider.clone().into_owned(),
                model: state.models.label(model),
                route: label_value(&route),
                consumer: state.consumers.label(consumer),
            });
        series.record(
            &state.metrics,
            cx.host,
            &Finished {
                tokens,
                timings,
                cost_pico,
                error_type: error_type.as_deref(),
            },
        );

        let audit = &self.config.audit;
        if self.sampled {
            let prompt = self.prompt.take();
            let answer =
                limit.map(|_| redact::capture(&answer, audit.max_capture_bytes, audit.redact_pii));
            let record = AuditRecord {
                request_id: self.request_id.as_deref(),
                start_ms: self.start_ns.map(|s| s / 1_000_000),
                api: self.api.as_str(),
                route: if route.is_empty() { UNKNOWN } else { &route },
                consumer: if consumer.is_empty() {
                    UNKNOWN
                } else {
                    consumer
                },
                provider: &provider,
                cluster: if cluster.is_empty() {
                    UNKNOWN
                } else {
                    &cluster
                },
                original_model: model,
                request_model: self.annotations.upstream_model.as_deref().unwrap_or(model),
                response_model: summary.model.as_deref(),
                stream: self.asked.stream,
                status,
                error_type: error_type.as_deref(),
                finish_reason: summary.finish_reason.map(|f| f.as_str()),
                usage: tokens,
                timings,
                cost_usd: cost_pico.map(record::usd),
                prompt: prompt.as_ref().map(|p| p.0.as_str()),
                prompt_truncated: prompt.as_ref().map(|p| p.1),
                answer: answer.as_ref().map(|a| a.0.as_str()),
                answer_truncated: answer.as_ref().map(|a| a.1),
                cache: self.annotations.cache.as_deref(),
                attempts: self.annotations.attempts,
            };
            emit(cx, audit, &record);
        }
        self.response_held.resize(0);
    }
}

/// Append a content delta to the captured answer while it is under `limit` (`None`: not captured).
fn keep_answer(answer: &mut String, limit: Option<usize>, d: Delta<'_>) {
    if d.kind == DeltaKind::Content && limit.is_some_and(|l| answer.len() < l) {
        answer.push_str(d.text);
    }
}

/// The first value of header `name` in `headers` (lowercase names).
fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// The text a prompt capture keeps: the last user message, else (completions, embeddings) the
/// inputs, one a line, joined only until they are longer than `enough` bytes (the capture cuts
/// there, and still sees that there was more).
fn prompt_text(view: &RequestView<'_>, enough: usize) -> Option<String> {
    view.last_user_text().or_else(|| {
        let (first, rest) = view.inputs.split_first()?;
        let mut text = first.as_str().to_owned();
        for t in rest {
            if text.len() > enough {
                break;
            }
            text.push('\n');
            text.push_str(t.as_str());
        }
        Some(text)
    })
}

fn emit(cx: &mut Ctx<'_, ()>, audit: &crate::config::Audit, record: &AuditRecord<'_>) {
    let json = record.to_json();
    if audit.log {
        cx.log(LogLevel::Info, &format!("{}: {json}", UsageStats::NAME));
    }
    if let Some(key) = &audit.filter_state {
        if let Err(e) = cx.set_property(&[key.as_str()], json.as_bytes()) {
            cx.log(
                LogLevel::Debug,
                &format!(
                    "{}: audit record not stored as filter state: {e}",
                    UsageStats::NAME
                ),
            );
        }
    }
}

impl HttpFilter for Filter {
    type Call = ();

    fn protocol(&self) -> aigw_shared::error::ClientProtocol {
        self.api.protocol()
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        let Ok(headers) = cx.headers(MapKind::RequestHeaders) else {
            return Action::Continue;
        };
        let get = |name: &str| header(&headers, name);
        let (method, path) = (
            text(get(":method")).unwrap_or(""),
            text(get(":path")).unwrap_or(""),
        );
        let api = Api::from_path(method, path);
        if !(api.is_generation() || api == Api::Embeddings) {
            return Action::Continue;
        }
        self.api = api;
        self.phase = Phase::Request;
        self.start_ns = cx.now_nanos();
        self.clock_ns = self.start_ns.unwrap_or(0);
        self.consumer = self.config.consumer.identify(get).map(|c| c.name);
        self.request_id = text(get("x-request-id")).map(str::to_owned);
        let audit = &self.config.audit;
        self.sampled = audit.enabled
            && (audit.log || audit.filter_state.is_some())
            && self.state.sample(audit.sample_rate);
        // wasm-nginx-module calls every headers callback with end_of_stream set.
        let end_of_stream = end_of_stream && !self.apisix;
        if self.apisix {
            // wasm-nginx-module calls on_request_body (with the whole body) only when asked.
            let asked = cx.set_property(&["wasm_process_req_body"], b"true");
            cx.check(asked, "ask APISIX for the request body");
        }
        if end_of_stream {
            self.end_request();
        }
        Action::Continue
    }

    fn on_request_body(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.phase != Phase::Request {
            return Action::Continue;
        }
        self.body_seen = self.body_seen.saturating_add(body_size);
        if !self.body_over && body_size > 0 {
            let len = self.body.len().saturating_add(body_size);
            // Over the limit, or over the VM's body budget: the model is not read.
            if len > self.config.max_request_body_bytes || !self.body_held.resize(len) {
                self.body_over = true;
                self.body = Vec::new();
                self.body_held.resize(0);
            } else if let Ok(Some(chunk)) = cx.body(BufferKind::RequestBody, 0, body_size) {
                self.body.extend_from_slice(&chunk);
            }
        }
        if end_of_stream {
            self.end_request();
        }
        Action::Continue
    }

    fn on_request_trailers(&mut self, _cx: &mut Ctx<'_, ()>) -> Action {
        self.end_request();
        Action::Continue
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        if matches!(self.phase, Phase::Ignored | Phase::Done) {
            return Action::Continue;
        }
        self.end_request();
        let headers = cx.headers(MapKind::ResponseHeaders).unwrap_or_default();
        let get = |name: &str| header(&headers, name);
        self.status = get(":status")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let format = ResponseFormat::from_content_type(get("content-type"));
        self.annotations = Annotations::read(|name| text(get(name)).map(str::to_owned));
        self.observer = Some(self.new_observer(format));
        self.phase = Phase::Response;
        let end_of_stream = end_of_stream && !self.apisix;
        if self.apisix {
            let asked = cx.set_property(&["wasm_process_resp_body"], b"true");
            cx.check(asked, "ask APISIX for the response body");
        }
        if end_of_stream {
            self.finish(cx, true, None);
        }
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, ()>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        if self.phase != Phase::Response {
            return Action::Continue;
        }
        let mut now = None;
        if body_size > 0 {
            if let Ok(Some(chunk)) = cx.body(BufferKind::ResponseBody, 0, body_size) {
                // The clock is read until a stream's first token arrived; later chunks, and
                // a JSON answer's (timed once, at its end), need no time.
                if self.observer.as_ref().is_none_or(|o| {
                    o.format() != ResponseFormat::Json && o.summary().first_token_ns.is_none()
                }) {
                    now = cx.now_nanos();
                    if let Some(now) = now {
                        self.clock_ns = now;
                    }
                }
                self.feed_counted(&chunk);
            }
        }
        if end_of_stream {
            self.finish(cx, true, now);
        }
        Action::Continue
    }

    fn on_response_trailers(&mut self, cx: &mut Ctx<'_, ()>) -> Action {
        if self.phase == Phase::Response {
            self.finish(cx, true, None);
        }
        Action::Continue
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, ()>) {
        self.finish(cx, false, None);
    }
}

/// The longest model name kept for the record (ai-proxy refuses longer ones); a longer client
/// value is cut at a character boundary, so a megabyte-long `model` costs no more than this.
pub const MAX_MODEL_CHARS: usize = 256;

fn bounded_model(model: &str) -> String {
    match model.char_indices().nth(MAX_MODEL_CHARS) {
        Some((i, _)) => model.get(..i).unwrap_or_default().to_owned(),
        None => model.to_owned(),
    }
}

fn text(v: Option<&[u8]>) -> Option<&str> {
    v.and_then(|v| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_model_name_is_kept_cut_to_its_bound() {
        let long = "é".repeat(10_000);
        let kept = bounded_model(&long);
        assert_eq!(kept.chars().count(), MAX_MODEL_CHARS);
        assert_eq!(bounded_model("gpt-4o-mini"), "gpt-4o-mini");
    }

    #[test]
    fn many_inputs_are_joined_only_as_far_as_the_capture_looks() {
        let body = serde_json::json!({"model": "e", "input": vec!["abcd"; 1000]}).to_string();
        let view = RequestView::parse(Api::Embeddings, body.as_bytes()).unwrap();
        assert_eq!(prompt_text(&view, 10).unwrap(), "abcd\nabcd\nabcd");
        let all = prompt_text(&view, usize::MAX).unwrap();
        assert_eq!(all.len(), 1000 * 5 - 1);
        for max in [6, 100] {
            let short = prompt_text(&view, redact::window(max)).unwrap();
            assert!(short.len() <= redact::window(max) + 5, "{}", short.len());
            assert_eq!(
                redact::capture(&short, max, true),
                redact::capture(&all, max, true),
                "the capture is the same"
            );
        }
    }
}
