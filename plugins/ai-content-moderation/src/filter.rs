//! The per-request state machine.
//!
//! Request: a chat or messages request's body is read whole with its headers held (the driver
//! enforces `limits.maxBodyBytes` with a 413 in the caller's protocol), checked once, and then
//! refused (the upstream never sees the request), rewritten with its masked values, or let go
//! untouched. Answer: only when this request had
//! values masked, or output rules are configured, is the answer looked at — a JSON answer read
//! whole, a stream rewritten event by event; otherwise nothing is held or copied.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, BufferKind, Direction, Host, LogLevel, MapKind};
use aigw_shared::llm::{Api, ResponseFormat};
use aigw_shared::plugin::{Ctx, FilterEnv, HttpFilter, Next, Reply, WholeBody};
use aigw_shared::reply::send_error;

use crate::answer;
use crate::config::{BlockMode, Config, PiiAction};
use crate::metric;
use crate::output::{fix_json, Cut, Tally};
use crate::request::{self, BlockedBy, Checked, Scratch};
use crate::service::{OnError, Service, Verdict};
use crate::stream::StreamFix;
use crate::vault::Vault;
use crate::State;

const NAME: &str = "ai-content-moderation";

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not ours (another API, or a host that cannot rewrite bodies): nothing is looked at.
    PassThrough,
    /// The request body is being read.
    Buffering,
    /// The request went on; the answer may be looked at.
    Forwarded,
    /// Answered by the plugin or by the driver.
    Done,
}

/// What a callout to an external service asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The request's texts, for service `i`.
    Request(usize),
    /// The JSON answer's texts, for service `i`.
    Answer(usize),
}

/// How the answer is handled.
#[derive(Debug)]
enum Answer {
    /// Not at all.
    Untouched,
    /// A JSON answer, read whole.
    Json,
    /// A JSON answer held for the external services' verdict: its length in the host, and the
    /// text that goes out if they let it pass.
    Asking { held: usize, body: Vec<u8> },
    /// A stream, rewritten as it passes.
    Stream(Box<StreamFix>),
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    env: FilterEnv,
    phase: Phase,
    protocol: ClientProtocol,
    vault: Vault,
    answer: Answer,
    /// The request's model and stream flag, for a refusal in its shape.
    model: String,
    stream: bool,
    /// The request is to the OpenAI Responses API (its answers have their own shapes).
    responses: bool,
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            env,
            phase: Phase::PassThrough,
            protocol: ClientProtocol::OpenAi,
            vault: Vault::default(),
            answer: Answer::Untouched,
            model: String::new(),
            stream: false,
            responses: false,
        }
    }

    fn count(&self, host: &dyn Host, name: &str, n: u64) {
        self.state.metrics.count(host, name, n);
    }

    fn restoring(&self) -> Option<&Vault> {
        (self.config.restore && !self.vault.is_empty()).then_some(&self.vault)
    }

    /// Metrics and log lines for what a check found (never the values themselves).
    fn report(&self, host: &dyn Host, checked: &Checked) {
        for &i in &checked.logged {
            if let Some(rule) = self.config.input.rules.get(i) {
                self.count(host, &rule.logged_metric, 1);
                host.log(
                    LogLevel::Info,
                    &format!("{NAME}: request matched rule {} (log only)", rule.name),
                );
            }
        }
        for (kind, action) in &checked.pii {
            let Some(names) = self.state.kind(*kind) else {
                continue;
            };
            let name = match action {
                PiiAction::Mask => &names.masked,
                PiiAction::Hash => &names.hashed,
                PiiAction::Log => &names.seen,
                PiiAction::Block | PiiAction::Off => continue,
            };
            self.count(host, name, 1);
        }
    }

    fn block(&mut self, host: &dyn Host, by: BlockedBy) -> Action {
        let (rule, metric_name): (String, &str) = match by {
            BlockedBy::Rule(i) => match self.config.input.rules.get(i) {
                Some(r) => (r.name.clone(), r.blocked_metric.as_str()),
                None => ("rule".into(), metric::INVALID),
            },
            BlockedBy::Pii(kind) => (
                format!("pii:{}", kind.name()),
                self.state
                    .kind(kind)
                    .map_or(metric::INVALID, |k| k.blocked.as_str()),
            ),
            BlockedBy::InputChars => ("size:input_chars".into(), metric::SIZE_CHARS),
        };
        self.state.metrics.count(host, metric_name, 1);
        if let Some(err) = self.refuse(host, &rule) {
            send_error(host, NAME, self.protocol, &err);
        }
        Action::Pause
    }

    /// Refuse the request for `rule`: the error to send (error mode), or `None` when the
    /// refusal answer was sent here (refusal mode).
    fn refuse(&mut self, host: &dyn Host, rule: &str) -> Option<ClientError> {
        host.log(
            LogLevel::Info,
            &format!("{NAME}: request blocked by rule {rule}"),
        );
        self.phase = Phase::Done;
        let ob = &self.config.on_block;
        let message = if ob.name_rule {
            format!("{} (rule: {rule})", ob.message)
        } else {
            ob.message.clone()
        };
        if ob.mode == BlockMode::Error {
            return Some(
                ClientError::new(ErrorKind::from_status(ob.status), message)
                    .with_status(ob.status)
                    .with_code("content_filter"),
            );
        }
        let created = host.now_nanos().unwrap_or(0) / 1_000_000_000;
        let (content_type, reply) = if self.stream {
            (
                "text/event-stream",
                answer::refusal_stream(
                    self.protocol,
                    self.responses,
                    &self.model,
                    &message,
                    created,
                ),
            )
        } else {
            (
                "application/json",
                answer::refusal_json(
                    self.protocol,
                    self.responses,
                    &self.model,
                    &message,
                    created,
                    None,
                ),
            )
        };
        let headers = [("content-type", content_type.as_bytes())];
        if let Err(e) = host.send_local_response(200, &headers, &reply) {
            host.log(
                LogLevel::Error,
                &format!("{NAME}: cannot send the refusal: {e}"),
            );
        }
        None
    }

    /// Ask the external services about the request's texts; true when calls are under way.
    fn ask_services(&mut self, cx: &mut Ctx<'_, Ask>, body: &[u8]) -> Result<bool, Action> {
        let Some(text) = request::texts(body) else {
            return Ok(false);
        };
        let (started, failed_closed) = self.call_services(cx, &text, |s| s.requests, Ask::Request);
        if failed_closed {
            send_error(cx.host, NAME, self.protocol, &unavailable());
            self.phase = Phase::Done;
            return Err(Action::Pause);
        }
        Ok(started)
    }

    /// Call each service `wanted` selects about `text`: (calls under way, a fail-closed service
    /// could not be called). Failed calls are counted and logged.
    fn call_services(
        &mut self,
        cx: &mut Ctx<'_, Ask>,
        text: &str,
        wanted: fn(&Service) -> bool,
        ask: fn(usize) -> Ask,
    ) -> (bool, bool) {
        let config = Rc::clone(&self.config);
        let mut started = false;
        for (i, service) in config.services.iter().enumerate() {
            if !wanted(service) {
                continue;
            }
            let payload = service.body(text);
            match cx.http_call(service.upstream(), &service.request(&payload), ask(i)) {
                Ok(_) => started = true,
                Err(e) => {
                    self.count(cx.host, &service.error_metric, 1);
                    cx.log(
                        LogLevel::Warn,
                        &format!("{NAME}: cannot call {}: {e}", service.rule),
                    );
                    if service.on_error == OnError::Block {
                        return (started, true);
                    }
                }
            }
        }
        (started, false)
    }

    /// Metrics and log lines at the end of an answer (never the values themselves).
    fn answered(&self, host: &dyn Host, tally: &Tally, cut: Option<Cut>) {
        self.count(host, metric::RESTORED, tally.restored as u64);
        for &i in &tally.logged {
            if let Some(rule) = self.config.output.rules.get(i) {
                self.count(host, &rule.logged_metric, 1);
            }
        }
        for (kind, action) in &tally.pii {
            let Some(names) = self.state.kind(*kind) else {
                continue;
            };
            let name = match action {
                PiiAction::Mask | PiiAction::Block => &names.answer_masked,
                PiiAction::Hash => &names.answer_hashed,
                PiiAction::Log => &names.answer_seen,
                PiiAction::Off => continue,
            };
            self.count(host, name, 1);
        }
        match cut {
            Some(Cut::Rule(i)) => {
                if let Some(rule) = self.config.output.rules.get(i) {
                    self.count(host, &rule.cut_metric, 1);
                    host.log(
                        LogLevel::Info,
                        &format!("{NAME}: answer cut by output rule {}", rule.name),
                    );
                }
            }
            Some(Cut::Pii(kind)) => {
                if let Some(names) = self.state.kind(kind) {
                    self.count(host, &names.cut, 1);
                }
                host.log(
                    LogLevel::Info,
                    &format!("{NAME}: answer cut: it contained a {} value", kind.name()),
                );
            }
            None => {}
        }
    }
    /// Ask the services with `answers: true` about a JSON answer (as the model wrote it: the
    /// caller's masked values stay masked); true when calls are under way.
    fn ask_about_answer(&mut self, cx: &mut Ctx<'_, Ask>, upstream_body: &[u8]) -> bool {
        if !self.config.asks_about_answers() {
            return false;
        }
        let Some(text) = crate::output::answer_text(upstream_body) else {
            return false;
        };
        let (started, failed_closed) = self.call_services(cx, &text, |s| s.answers, Ask::Answer);
        if failed_closed {
            self.cut_answer(cx.host, None);
        }
        started
    }

    /// A service's verdict on the held JSON answer.
    fn on_answer_verdict(&mut self, cx: &mut Ctx<'_, Ask>, i: usize, reply: &Reply) -> Next {
        let host = cx.host;
        let config = Rc::clone(&self.config);
        let Some(service) = config.services.get(i) else {
            return Next::Resume;
        };
        let verdict = match reply.http() {
            Some(r) => service.verdict(r),
            None => Verdict::Failed("not an HTTP answer".into()),
        };
        match verdict {
            Verdict::Allow => {}
            Verdict::Block(category) => {
                host.log(
                    LogLevel::Info,
                    &format!(
                        "{NAME}: answer replaced: {} flagged it{}",
                        service.rule,
                        category.map(|c| format!(" ({c})")).unwrap_or_default()
                    ),
                );
                self.cut_answer(host, Some(&service.cut_metric));
            }
            Verdict::Failed(why) => {
                self.count(host, &service.error_metric, 1);
                host.log(
                    LogLevel::Warn,
                    &format!("{NAME}: {} failed on the answer: {why}", service.rule),
                );
                if service.on_error == OnError::Block {
                    self.cut_answer(host, None);
                }
            }
        }
        Next::Resume
    }

    /// Replace the held JSON answer with the safe message (once), counting `metric`.
    fn cut_answer(&mut self, host: &dyn Host, metric: Option<&str>) {
        let Answer::Asking { held, body } = &mut self.answer else {
            return;
        };
        if body.is_empty() {
            return; // Already replaced.
        }
        let created = host.now_nanos().unwrap_or(0) / 1_000_000_000;
        let safe =
            crate::output::safe_answer(&self.config, self.protocol, self.responses, body, created);
        match host.replace_body(BufferKind::ResponseBody, *held, &safe) {
            Ok(()) => *held = safe.len(),
            Err(e) => host.log(
                LogLevel::Error,
                &format!("{NAME}: cannot replace the answer: {e}"),
            ),
        }
        body.clear();
        if let Some(m) = metric {
            self.count(host, m, 1);
        }
    }
}

impl HttpFilter for Filter {
    /// The index of the service a callout asks.
    type Call = Ask;

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, Ask>, end_of_stream: bool) -> Action {
        let host = cx.host;
        let method = host
            .request_header(":method")
            .ok()
            .flatten()
            .unwrap_or_default();
        let path = host
            .request_header(":path")
            .ok()
            .flatten()
            .unwrap_or_default();
        let (method, path) = (
            std::str::from_utf8(&method).unwrap_or(""),
            std::str::from_utf8(&path).unwrap_or(""),
        );
        let api = Api::from_path(method, path);
        self.responses = api == Api::Responses;
        if !matches!(
            api,
            Api::ChatCompletions | Api::AnthropicMessages | Api::Responses
        ) {
            return Action::Continue;
        }
        self.protocol = api.protocol();
        if !self.env.capabilities.body_write {
            return Action::Continue;
        }
        self.phase = Phase::Forwarded;
        if end_of_stream || !self.config.checks_requests() {
            return Action::Continue;
        }
        self.phase = Phase::Buffering;
        self.count(host, metric::CHECKED, 1);
        // The headers wait for the verdict: a refused request never reaches the upstream.
        cx.read_whole_request(
            WholeBody::up_to(self.config.max_body_bytes)
                .rewriting()
                .holding_headers(),
        );
        Action::Continue
    }

    fn on_body_too_large(&mut self, cx: &mut Ctx<'_, Ask>, direction: Direction) {
        if direction == Direction::Request {
            self.count(cx.host, metric::SIZE_BODY, 1);
            cx.log(
                LogLevel::Info,
                &format!("{NAME}: request blocked by rule size:body"),
            );
        } else {
            // Answers over the limit pass unread (nothing restored or checked).
            self.answer = Answer::Untouched;
        }
    }

    fn on_error_reply(&mut self, _cx: &mut Ctx<'_, Ask>, _error: &ClientError) {
        self.phase = Phase::Done;
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, Ask>, body: &[u8]) -> Action {
        let host = cx.host;
        if self.phase != Phase::Buffering {
            return Action::Continue;
        }
        let mut scratch = Scratch::default();
        let checked = match request::check(&self.config, body, &mut self.vault, &mut scratch) {
            Ok(c) => c,
            Err(_) => {
                self.count(host, metric::INVALID, 1);
                let err = ClientError::invalid_request("the request body is not a JSON object");
                send_error(host, NAME, self.protocol, &err);
                self.phase = Phase::Done;
                return Action::Pause;
            }
        };
        self.report(host, &checked);
        self.model = checked
            .top
            .model
            .and_then(|m| m.text(body))
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default();
        self.stream = checked.top.stream;
        if let Some(by) = checked.blocked {
            return self.block(host, by);
        }
        if let Some(new_body) = &checked.body {
            let written = host.replace_body(BufferKind::RequestBody, body.len(), new_body);
            if !cx.check(written, "cannot write the masked body") {
                // Fail closed: the values must not reach the model unmasked.
                let err = ClientError::new(
                    ErrorKind::Internal,
                    "the gateway could not mask the request",
                );
                send_error(host, NAME, self.protocol, &err);
                self.phase = Phase::Done;
                return Action::Pause;
            }
        }
        self.phase = Phase::Forwarded;
        if self.config.services.iter().any(|s| s.requests) {
            let sent = checked.body.as_deref().unwrap_or(body);
            match self.ask_services(cx, sent) {
                Ok(true) => return Action::Pause,
                Ok(false) => {}
                Err(action) => return action,
            }
        }
        Action::Continue
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_, Ask>, call: Ask, reply: Reply) -> Next {
        let host = cx.host;
        let config = Rc::clone(&self.config);
        let call = match call {
            Ask::Request(i) => i,
            Ask::Answer(i) => return self.on_answer_verdict(cx, i, &reply),
        };
        let Some(service) = config.services.get(call) else {
            return Next::Resume;
        };
        if self.phase == Phase::Done {
            return Next::Hold;
        }
        let verdict = match reply.http() {
            Some(r) => service.verdict(r),
            None => Verdict::Failed("not an HTTP answer".into()),
        };
        match verdict {
            Verdict::Allow => Next::Resume,
            Verdict::Block(category) => {
                self.count(host, &service.blocked_metric, 1);
                if let Some(c) = category {
                    host.log(
                        LogLevel::Info,
                        &format!("{NAME}: {} flagged category {c}", service.rule),
                    );
                }
                match self.refuse(host, &service.rule) {
                    Some(err) => Next::Fail(err),
                    None => Next::Hold,
                }
            }
            Verdict::Failed(why) => {
                self.count(host, &service.error_metric, 1);
                host.log(
                    LogLevel::Warn,
                    &format!("{NAME}: {} failed: {why}", service.rule),
                );
                match service.on_error {
                    OnError::Allow => Next::Resume,
                    OnError::Block => {
                        self.phase = Phase::Done;
                        Next::Fail(unavailable())
                    }
                }
            }
        }
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, Ask>, end_of_stream: bool) -> Action {
        let stream_work = self.restoring().is_some() || self.config.checks_answers();
        if self.phase != Phase::Forwarded
            || end_of_stream
            || !(stream_work || self.config.asks_about_answers())
        {
            return Action::Continue;
        }
        let host = cx.host;
        let status = host
            .response_header(":status")
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u16>().ok())
            .unwrap_or(0);
        if !(200..300).contains(&status) {
            return Action::Continue;
        }
        let content_type = host.response_header("content-type").ok().flatten();
        if ResponseFormat::from_content_type(content_type.as_deref()) == ResponseFormat::Sse {
            if !stream_work {
                // Only services would look, and they are not asked about streams.
                return Action::Continue;
            }
            // The rewritten stream has another length.
            let removed = host.remove_header(MapKind::ResponseHeaders, "content-length");
            cx.check(removed, "cannot remove content-length");
            let fix = if self.responses {
                StreamFix::responses()
            } else {
                StreamFix::new(self.protocol)
            };
            self.answer = Answer::Stream(Box::new(fix));
        } else {
            self.answer = Answer::Json;
            cx.read_whole_response(
                WholeBody::up_to(self.config.max_response_body_bytes)
                    .rewriting()
                    .pass_oversize(),
            );
        }
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, Ask>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let host = cx.host;
        let Answer::Stream(fix) = &mut self.answer else {
            return Action::Continue;
        };
        let chunk = host
            .body(BufferKind::ResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let vault = (self.config.restore && !self.vault.is_empty()).then_some(&self.vault);
        let out = fix.feed(&self.config, vault, &chunk, end_of_stream);
        if out != chunk {
            let written = host.replace_body(BufferKind::ResponseBody, body_size, &out);
            cx.check(written, "cannot rewrite the answer");
        }
        if end_of_stream {
            let tally = std::mem::take(&mut fix.tally);
            let cut = fix.cut;
            self.answered(host, &tally, cut);
            self.answer = Answer::Untouched;
        }
        Action::Continue
    }

    fn on_response_whole(&mut self, cx: &mut Ctx<'_, Ask>, body: &[u8]) -> Action {
        let host = cx.host;
        if !matches!(self.answer, Answer::Json) {
            return Action::Continue;
        }
        let mut tally = Tally::default();
        let created = host.now_nanos().unwrap_or(0) / 1_000_000_000;
        let fix = fix_json(
            &self.config,
            self.restoring(),
            self.protocol,
            self.responses,
            body,
            created,
            &mut tally,
        );
        if let Some(new_body) = &fix.body {
            let written = host.replace_body(BufferKind::ResponseBody, body.len(), new_body);
            cx.check(written, "cannot rewrite the answer");
        }
        self.answered(host, &tally, fix.cut);
        self.answer = Answer::Untouched;
        if fix.cut.is_none() && self.config.asks_about_answers() {
            // Held as it would go out, so a verdict (or a failed fail-closed call) can replace it.
            let out = fix.body.unwrap_or_else(|| body.to_vec());
            self.answer = Answer::Asking {
                held: out.len(),
                body: out,
            };
            if self.ask_about_answer(cx, body) {
                return Action::Pause;
            }
            self.answer = Answer::Untouched;
        }
        Action::Continue
    }
}

/// The answer when a fail-closed service cannot be asked.
fn unavailable() -> ClientError {
    ClientError::new(
        ErrorKind::Overloaded,
        "the content moderation service is unavailable",
    )
    .with_code("moderation_unavailable")
}
