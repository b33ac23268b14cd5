//! [`ResponseObserver`]: reads a response as it streams past, without holding it up.
//!
//! Feed each body chunk with the host clock (ns); the observer calls back with text [`Delta`]s as
//! they complete and keeps a [`ResponseSummary`]: id, model, finish reason, usage, and timings.
//!
//! * SSE responses are decoded event by event (OpenAI `data:` chunks ending in `[DONE]`; Anthropic
//!   typed events ending in `message_stop`; Responses API typed events ending in
//!   `response.completed`, `.incomplete` or `.failed`). Deltas come out during
//!   [`ResponseObserver::feed`].
//! * JSON responses are buffered (up to a cap) and read in [`ResponseObserver::finish`]; their
//!   deltas (the whole message text) come out then.
//! * `first_token_ns` is the clock passed with the chunk that completed the first non-empty delta
//!   (content, reasoning, refusal, tool name or tool arguments). For a JSON response, which carries
//!   every token at once, it is the clock of the first body chunk.
//! * The observer never fails a response: malformed events are counted
//!   ([`ResponseSummary::malformed_events`]) and skipped; an oversized JSON body stops buffering and
//!   sets [`ResponseSummary::parse_error`].

use super::response::{openai_usage, responses_usage, upstream_error, AnthropicUsage};
use super::{Api, Delta, DeltaKind, FinishReason, ResponseFormat, ResponseSummary, UpstreamError};
use crate::schema::{anthropic, openai, Text};
use crate::stream::sse::{SseDecoder, SseEnd, SseEventRef};

/// The default cap on a buffered JSON response, 16 MiB.
pub const DEFAULT_MAX_JSON_BYTES: usize = 16 << 20;

fn set_once(slot: &mut Option<String>, value: Option<&Text<'_>>) {
    if slot.is_none() {
        if let Some(v) = value {
            *slot = Some(v.as_str().to_owned());
        }
    }
}

/// True when `data` holds the string `"usage"` or `"error"` (not followed by `: null`: OpenAI
/// streams with `include_usage` send `"usage":null` in every chunk) or `"message_stop"` (as a
/// key or a value). One pass over the quotes (found with memchr) instead of a substring search
/// per word: wasm has no SIMD substring search, and this runs on every event of a usage-only
/// stream.
fn names_usage_error_or_stop(data: &str) -> bool {
    let bytes = data.as_bytes();
    memchr::memchr_iter(b'"', bytes).any(|at| {
        let rest = bytes.get(at.saturating_add(1)..).unwrap_or_default();
        if rest.starts_with(b"message_stop\"") {
            return true;
        }
        [&b"usage\""[..], b"error\""].iter().any(|word| {
            rest.strip_prefix(*word)
                .is_some_and(|after| !is_null_value(after))
        })
    })
}

/// True when `after` (the bytes after a key's closing quote) is `: null`.
fn is_null_value(after: &[u8]) -> bool {
    after
        .trim_ascii_start()
        .strip_prefix(b":")
        .is_some_and(|v| v.trim_ascii_start().starts_with(b"null"))
}

/// True when `data` has a `"finish_reason"` whose value is not `null` (OpenAI's last delta).
fn names_a_finish_reason(data: &str) -> bool {
    let bytes = data.as_bytes();
    memchr::memmem::find_iter(bytes, b"\"finish_reason\"").any(|at| {
        let rest = bytes.get(at.saturating_add(15)..).unwrap_or_default();
        rest.trim_ascii_start().starts_with(b":") && !is_null_value(rest)
    })
}

/// The keys whose string values are generated text in delta events (OpenAI chunks, Anthropic
/// `content_block_start` and `content_block_delta`, Responses API deltas; `name`: a tool's).
const TEXT_KEYS: [&[u8]; 10] = [
    b"content\"",
    // Responses API `response.output_text.delta` / `function_call_arguments.delta`.
    b"delta\"",
    b"name\"",
    b"reasoning_content\"",
    b"reasoning\"",
    b"refusal\"",
    b"arguments\"",
    b"text\"",
    b"thinking\"",
    b"partial_json\"",
];

/// The raw string values (escapes left as they are) of [`TEXT_KEYS`] in a JSON event.
fn delta_texts(data: &str) -> impl Iterator<Item = &str> + '_ {
    let bytes = data.as_bytes();
    memchr::memchr_iter(b'"', bytes).filter_map(move |at| {
        let rest = bytes.get(at.saturating_add(1)..)?;
        let key = TEXT_KEYS.iter().find(|k| rest.starts_with(k))?;
        let after = rest.get(key.len()..)?.trim_ascii_start();
        let value = after
            .strip_prefix(b":")?
            .trim_ascii_start()
            .strip_prefix(b"\"")?;
        let start = bytes.len() - value.len();
        let mut i = 0;
        while let Some(&b) = value.get(i) {
            match b {
                b'\\' => i += 2,
                b'"' => return data.get(start..start + i),
                _ => i += 1,
            }
        }
        None
    })
}

/// State updated by events; separate from the decoder so both can be borrowed at once.
#[derive(Debug, Default)]
struct State {
    summary: ResponseSummary,
    anthropic_usage: AnthropicUsage,
    /// Only usage is wanted: SSE events that cannot carry it are counted, not parsed.
    usage_only: bool,
    /// After the first token, events that carry only deltas are scanned for their text (for the
    /// output estimate), not parsed: see [`ResponseObserver::light_after_first_token`].
    light: bool,
    /// Where (in bytes fed) the last event ended, up to the first malformed one.
    clean_end: u64,
    /// A malformed event (not JSON, or over the decoder's size limit) was met at `clean_end`.
    malformed: bool,
    /// The response is the OpenAI Responses API's ([`Api::Responses`]).
    responses: bool,
}

impl State {
    fn emit(&mut self, delta: Delta<'_>, now_ns: u64, on_delta: &mut dyn FnMut(Delta<'_>)) {
        if delta.text.is_empty() {
            return;
        }
        let s = &mut self.summary;
        s.first_token_ns.get_or_insert(now_ns);
        s.last_token_ns = Some(now_ns);
        s.deltas += 1;
        s.output_estimate.push(delta.text);
        on_delta(delta);
    }

    fn set_finish(&mut self, reason: FinishReason, raw: &str, primary: bool) {
        if primary || self.summary.finish_reason.is_none() {
            self.summary.finish_reason = Some(reason);
            self.summary.finish_reason_raw = Some(raw.to_owned());
        }
    }

    fn on_openai(
        &mut self,
        r: &openai::Response<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        set_once(&mut self.summary.id, r.id.as_ref());
        set_once(&mut self.summary.model, r.model.as_ref());
        if let Some(e) = &r.error {
            self.summary.error = Some(upstream_error(e));
        }
        for choice in r.choices.iter().flatten() {
            let c = choice.index.unwrap_or(0);
            if let Some(text) = &choice.text {
                self.emit(
                    Delta {
                        choice: c,
                        index: 0,
                        kind: DeltaKind::Content,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
            if let Some(m) = choice.delta.as_ref().or(choice.message.as_ref()) {
                self.on_openai_message(c, m, now_ns, on_delta);
            }
            if let Some(raw) = &choice.finish_reason {
                self.set_finish(FinishReason::from_openai(raw), raw, c == 0);
            }
        }
        if let Some(u) = &r.usage {
            self.summary.usage = Some(openai_usage(u));
        }
    }

    fn on_openai_message(
        &mut self,
        choice: u32,
        m: &openai::Message<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        let texts = [
            (DeltaKind::Reasoning, m.reasoning_content.as_ref()),
            (DeltaKind::Reasoning, m.reasoning.as_ref()),
            (DeltaKind::Content, m.content.as_ref()),
            (DeltaKind::Refusal, m.refusal.as_ref()),
        ];
        for (kind, text) in texts {
            if let Some(text) = text {
                self.emit(
                    Delta {
                        choice,
                        index: 0,
                        kind,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
        }
        let calls = m
            .tool_calls
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, tc)| (tc.index.unwrap_or(i as u32), tc.function.as_ref()));
        for (index, function) in calls.chain(std::iter::once((0, m.function_call.as_ref()))) {
            let Some(f) = function else { continue };
            if let Some(text) = &f.name {
                self.emit(
                    Delta {
                        choice,
                        index,
                        kind: DeltaKind::ToolName,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
            if let Some(text) = &f.arguments {
                self.emit(
                    Delta {
                        choice,
                        index,
                        kind: DeltaKind::ToolArguments,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
        }
    }

    fn on_anthropic_usage(&mut self, u: Option<&anthropic::Usage>) {
        if let Some(u) = u {
            self.anthropic_usage.update(u);
            self.summary.usage = Some(self.anthropic_usage.normalised());
        }
    }

    fn on_anthropic_block(
        &mut self,
        index: u32,
        b: &anthropic::Block<'_>,
        full: bool,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        let pieces = [
            (DeltaKind::Content, b.text.as_ref().map(|t| t.as_str())),
            (
                DeltaKind::Reasoning,
                b.thinking.as_ref().map(|t| t.as_str()),
            ),
            (DeltaKind::ToolName, b.name.as_ref().map(|t| t.as_str())),
            (
                DeltaKind::ToolArguments,
                b.partial_json.as_ref().map(|t| t.as_str()),
            ),
            // A stream's content_block_start carries `input: {}`; the arguments follow as deltas.
            (
                DeltaKind::ToolArguments,
                b.input.filter(|_| full).map(|raw| raw.get()),
            ),
        ];
        for (kind, text) in pieces {
            if let Some(text) = text {
                self.emit(
                    Delta {
                        choice: 0,
                        index,
                        kind,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
        }
    }

    fn on_anthropic_event(
        &mut self,
        e: &anthropic::StreamEvent<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        let index = e.index.unwrap_or(0);
        match e.kind.as_deref().unwrap_or("") {
            "message_start" => {
                if let Some(m) = &e.message {
                    set_once(&mut self.summary.id, m.id.as_ref());
                    set_once(&mut self.summary.model, m.model.as_ref());
                    self.on_anthropic_usage(m.usage.as_ref());
                }
            }
            "content_block_start" => {
                if let Some(b) = &e.content_block {
                    self.on_anthropic_block(index, b, false, now_ns, on_delta);
                }
            }
            "content_block_delta" => {
                if let Some(b) = &e.delta {
                    self.on_anthropic_block(index, b, false, now_ns, on_delta);
                }
            }
            "message_delta" => {
                if let Some(raw) = e.delta.as_ref().and_then(|d| d.stop_reason.as_ref()) {
                    self.set_finish(FinishReason::from_anthropic(raw), raw, true);
                }
                self.on_anthropic_usage(e.usage.as_ref());
            }
            "message_stop" => self.summary.completed = true,
            "error" => {
                self.summary.error = Some(e.error.as_ref().map(upstream_error).unwrap_or_default())
            }
            _ => {}
        }
    }

    fn on_anthropic_message(
        &mut self,
        m: &anthropic::Response<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        set_once(&mut self.summary.id, m.id.as_ref());
        set_once(&mut self.summary.model, m.model.as_ref());
        if m.kind.as_deref() == Some("error") || m.error.is_some() {
            self.summary.error = Some(m.error.as_ref().map(upstream_error).unwrap_or_default());
        }
        for (i, block) in m.content.iter().enumerate() {
            self.on_anthropic_block(
                u32::try_from(i).unwrap_or(u32::MAX),
                block,
                true,
                now_ns,
                on_delta,
            );
        }
        if let Some(raw) = &m.stop_reason {
            self.set_finish(FinishReason::from_anthropic(raw), raw, true);
        }
        self.on_anthropic_usage(m.usage.as_ref());
    }

    fn on_responses_response(
        &mut self,
        r: &openai::ResponsesResponse<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
        whole: bool,
    ) {
        set_once(&mut self.summary.id, r.id.as_ref());
        set_once(&mut self.summary.model, r.model.as_ref());
        if let Some(e) = &r.error {
            self.summary.error = Some(upstream_error(e));
        }
        let mut called = false;
        for (i, item) in r.output.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let is_call = item.kind.as_deref() == Some("function_call");
            called |= is_call;
            if !whole {
                continue;
            }
            let texts = item
                .arguments
                .iter()
                .map(|t| (DeltaKind::ToolArguments, t))
                .chain(item.content.parts.iter().map(|t| (DeltaKind::Content, t)));
            for (kind, text) in texts {
                self.emit(
                    Delta {
                        choice: 0,
                        index,
                        kind,
                        text,
                    },
                    now_ns,
                    on_delta,
                );
            }
        }
        if let Some(status) = r.status.as_deref() {
            let reason = match status {
                "completed" if called => Some(FinishReason::ToolCalls),
                "completed" => Some(FinishReason::Stop),
                "incomplete" => Some(FinishReason::Length),
                "failed" | "cancelled" => Some(FinishReason::Other),
                _ => None,
            };
            if let Some(reason) = reason {
                self.set_finish(reason, status, true);
            }
        }
        if let Some(u) = &r.usage {
            self.summary.usage = Some(responses_usage(u));
        }
    }

    fn on_responses_event(
        &mut self,
        e: &openai::ResponsesEvent<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        let kind = e.kind.as_deref().unwrap_or("");
        let delta_kind = match kind {
            "response.output_text.delta" => Some(DeltaKind::Content),
            "response.refusal.delta" => Some(DeltaKind::Refusal),
            "response.function_call_arguments.delta" => Some(DeltaKind::ToolArguments),
            "response.reasoning_summary_text.delta" => Some(DeltaKind::Reasoning),
            _ => None,
        };
        if let (Some(kind), Some(text)) = (delta_kind, &e.delta) {
            let delta = Delta {
                choice: 0,
                index: 0,
                kind,
                text,
            };
            self.emit(delta, now_ns, on_delta);
            return;
        }
        match kind {
            "response.created" | "response.in_progress" => {
                if let Some(r) = &e.response {
                    set_once(&mut self.summary.id, r.id.as_ref());
                    set_once(&mut self.summary.model, r.model.as_ref());
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = &e.response {
                    self.on_responses_response(r, now_ns, on_delta, false);
                }
                self.summary.completed = true;
            }
            "error" => {
                self.summary.error = Some(UpstreamError {
                    kind: Some("error".to_owned()),
                    message: e.message.as_deref().map(str::to_owned),
                    code: e.code.as_ref().map(|c| match c {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                });
            }
            _ => {}
        }
    }

    fn on_sse_event(
        &mut self,
        api: Api,
        ev: SseEventRef<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        self.summary.events += 1;
        let before = self.summary.malformed_events;
        self.read_sse_event(api, &ev, now_ns, on_delta);
        if self.malformed {
            return;
        }
        if self.summary.malformed_events > before {
            self.malformed = true;
        } else {
            self.clean_end = ev.end_offset;
        }
    }

    fn read_sse_event(
        &mut self,
        api: Api,
        ev: &SseEventRef<'_>,
        now_ns: u64,
        on_delta: &mut dyn FnMut(Delta<'_>),
    ) {
        let data = ev.data.trim();
        if data.is_empty() {
            return;
        }
        let done = data == "[DONE]";
        // Every event but OpenAI's `[DONE]` carries a JSON object: anything else (an HTML page,
        // binary) is malformed, found without parsing.
        let json_or_done = data.starts_with('{') || (done && api != Api::AnthropicMessages);
        if !json_or_done {
            self.summary.malformed_events += 1;
            return;
        }
        // Usage travels in events that name it (OpenAI's last chunk; Anthropic's message_start
        // and message_delta); a plain substring test skips the JSON parse of every other event
        // but the ones that end the stream or report an error.
        let light = self.light && self.summary.first_token_ns.is_some();
        let must_parse =
            done || matches!(
                ev.event,
                Some(
                    "message_stop"
                        | "response.completed"
                        | "response.incomplete"
                        | "response.failed"
                )
            ) || names_usage_error_or_stop(data)
                || (light && names_a_finish_reason(data));
        if (self.usage_only || light) && !must_parse {
            // Responses API: only the `*.delta` events carry new text; the `.done` events and
            // the items repeat it.
            let is_delta = !self.responses
                || ev
                    .event
                    .map_or_else(|| data.contains(".delta\""), |n| n.ends_with(".delta"));
            if light && is_delta {
                self.rough_deltas(data, now_ns);
            }
            return;
        }
        if self.responses {
            match serde_json::from_str::<openai::ResponsesEvent<'_>>(data) {
                Ok(e) => self.on_responses_event(&e, now_ns, on_delta),
                Err(_) => self.summary.malformed_events += 1,
            }
        } else if api == Api::AnthropicMessages {
            match serde_json::from_str::<anthropic::StreamEvent<'_>>(data) {
                Ok(e) => self.on_anthropic_event(&e, now_ns, on_delta),
                Err(_) => self.summary.malformed_events += 1,
            }
        } else if done {
            self.summary.completed = true;
        } else {
            match serde_json::from_str::<openai::Response<'_>>(data) {
                Ok(r) => self.on_openai(&r, now_ns, on_delta),
                Err(_) => self.summary.malformed_events += 1,
            }
        }
    }

    /// The texts of a delta-only event, found without parsing (string values of the keys that
    /// carry generated text), added to the output estimate and the delta count.
    fn rough_deltas(&mut self, data: &str, now_ns: u64) {
        let mut found = false;
        for text in delta_texts(data) {
            if text.is_empty() {
                continue;
            }
            found = true;
            if text.contains('\\') {
                // Escapes (newlines, quotes in tool arguments) counted as the text they stand for.
                let quoted = format!("\"{text}\"");
                let plain = serde_json::from_str::<String>(&quoted).unwrap_or_default();
                self.summary.output_estimate.push(&plain);
            } else {
                self.summary.output_estimate.push(text);
            }
            self.summary.deltas += 1;
        }
        if found {
            self.summary.last_token_ns = Some(now_ns);
        }
    }

    fn on_json_body(&mut self, api: Api, body: &[u8], on_delta: &mut dyn FnMut(Delta<'_>)) {
        let first = self.summary.first_byte_ns.unwrap_or(0);
        let result = if self.responses {
            serde_json::from_slice::<openai::ResponsesResponse<'_>>(body)
                .map(|r| self.on_responses_response(&r, first, on_delta, true))
        } else if api == Api::AnthropicMessages {
            serde_json::from_slice::<anthropic::Response<'_>>(body)
                .map(|m| self.on_anthropic_message(&m, first, on_delta))
        } else {
            serde_json::from_slice::<openai::Response<'_>>(body)
                .map(|r| self.on_openai(&r, first, on_delta))
        };
        match result {
            Ok(()) => self.summary.completed = self.summary.error.is_none(),
            Err(e) => {
                self.summary.parse_error = Some(format!("response body is not valid JSON: {e}"))
            }
        }
    }
}

/// Observes one response. Create it when the response headers arrive.
#[derive(Debug)]
pub struct ResponseObserver {
    api: Api,
    format: ResponseFormat,
    sse: SseDecoder,
    body: Vec<u8>,
    max_json_bytes: usize,
    overflowed: bool,
    last_byte_ns: Option<u64>,
    finished: bool,
    state: State,
}

impl ResponseObserver {
    /// An observer for a response to `api` framed as `format`. For [`Api::Models`] and
    /// [`Api::Other`] it stays inert (nothing is buffered or parsed). For [`Api::Responses`]: a
    /// `response` object, or typed events whose text deltas are reported and whose
    /// `response.completed` / `.incomplete` / `.failed` event carries usage and the status.
    pub fn new(api: Api, format: ResponseFormat) -> Self {
        let state = State {
            responses: api == Api::Responses,
            ..State::default()
        };
        Self {
            api,
            format,
            sse: SseDecoder::new(),
            body: Vec::new(),
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            overflowed: false,
            last_byte_ns: None,
            finished: false,
            state,
        }
    }

    /// The same observer reading only usage from streams (token counts, nothing else: no deltas,
    /// first-token time or finish reason): events without `"usage"` are not parsed. For plugins
    /// that only account tokens on a stream they pass untouched.
    #[must_use]
    pub fn usage_only(mut self) -> Self {
        self.state.usage_only = true;
        self
    }

    /// The same observer reading streams fully only until the first token: after it, an event
    /// is parsed only when it may carry usage, a finish reason, an error or the end; the others
    /// (plain deltas, most of a stream) have the string values of their text keys (`content`,
    /// `name`, `reasoning_content`, `reasoning`, `refusal`, `arguments`, `text`, `thinking`,
    /// `partial_json`) added to the output estimate without a parse, so deltas are no longer
    /// reported to `on_delta` after the first. For plugins that need the first-token time,
    /// usage (or its estimate), the finish reason and errors, but not the text.
    #[must_use]
    pub fn light_after_first_token(mut self) -> Self {
        self.state.light = true;
        self
    }

    /// Switch to [`light_after_first_token`](Self::light_after_first_token) reading from the
    /// next event on (for a plugin that has captured as much text as it keeps).
    pub fn lighten(&mut self) {
        self.state.light = true;
    }

    /// The same observer with another cap on buffered JSON bodies.
    #[must_use]
    pub fn with_max_json_bytes(mut self, limit: usize) -> Self {
        self.max_json_bytes = limit;
        self
    }

    /// How far (in bytes fed) the stream is made of complete, well-formed events, and whether a
    /// malformed event follows there. For a plugin that passes a stream on: bytes up to the
    /// offset are safe to release; a partial event after it is not complete yet, and after a
    /// malformed event nothing more should reach the client. JSON bodies report 0.
    pub fn clean_prefix(&self) -> (u64, bool) {
        (self.state.clean_end, self.state.malformed)
    }

    /// What has been observed so far.
    pub fn summary(&self) -> &ResponseSummary {
        &self.state.summary
    }

    /// The framing in use (resolved once [`ResponseFormat::Auto`] has seen the first byte).
    pub fn format(&self) -> ResponseFormat {
        self.format
    }

    /// Observe one body chunk received at `now_ns`, calling `on_delta` for each delta it completes.
    pub fn feed<F: FnMut(Delta<'_>)>(&mut self, chunk: &[u8], now_ns: u64, mut on_delta: F) {
        if self.finished || chunk.is_empty() || matches!(self.api, Api::Models | Api::Other) {
            return;
        }
        self.state.summary.first_byte_ns.get_or_insert(now_ns);
        self.last_byte_ns = Some(now_ns);
        if self.format == ResponseFormat::Auto {
            match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{' | b'[') => self.format = ResponseFormat::Json,
                Some(_) => self.format = ResponseFormat::Sse,
                None => return,
            }
        }
        match self.format {
            ResponseFormat::Sse => {
                let Self {
                    sse, state, api, ..
                } = self;
                let api = *api;
                if let Err(e) = sse.feed(chunk, |ev| {
                    state.on_sse_event(api, ev, now_ns, &mut on_delta)
                }) {
                    state.malformed = true;
                    state
                        .summary
                        .parse_error
                        .get_or_insert_with(|| e.to_string());
                }
                if !state.malformed {
                    // Comments and blank lines between events (keep-alives) are whole too.
                    state.clean_end = state.clean_end.max(sse.boundary());
                }
            }
            ResponseFormat::Json | ResponseFormat::Auto => self.buffer_json(chunk),
        }
    }

    /// Observe a chunk without looking at deltas.
    pub fn feed_quiet(&mut self, chunk: &[u8], now_ns: u64) {
        self.feed(chunk, now_ns, |_| {});
    }

    fn buffer_json(&mut self, chunk: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.body.len().saturating_add(chunk.len()) > self.max_json_bytes {
            self.overflowed = true;
            self.body = Vec::new();
            self.state.summary.parse_error = Some(format!(
                "response body larger than {} bytes was not read",
                self.max_json_bytes
            ));
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    /// The body is complete (end of stream) at `now_ns`: read a buffered JSON body, account for a
    /// truncated last SSE event, and return the final summary. Later calls change nothing.
    pub fn finish<F: FnMut(Delta<'_>)>(
        &mut self,
        now_ns: u64,
        mut on_delta: F,
    ) -> &ResponseSummary {
        if self.finished {
            return &self.state.summary;
        }
        self.finished = true;
        match self.format {
            ResponseFormat::Sse => {
                let fed = self.sse.bytes_fed();
                if let SseEnd::Truncated { event } = self.sse.finish() {
                    self.state.summary.truncated = true;
                    if let Some(ev) = event {
                        let ev_ref = SseEventRef {
                            event: ev.event.as_deref(),
                            data: &ev.data,
                            id: ev.id.as_deref(),
                            retry: ev.retry,
                            end_offset: fed,
                        };
                        self.state
                            .on_sse_event(self.api, ev_ref, now_ns, &mut on_delta);
                    }
                }
            }
            ResponseFormat::Json if !self.overflowed && !self.body.is_empty() => {
                let body = std::mem::take(&mut self.body);
                self.state.on_json_body(self.api, &body, &mut on_delta);
                if self.state.summary.first_token_ns.is_some() {
                    self.state.summary.last_token_ns = self.last_byte_ns;
                }
            }
            _ => {}
        }
        &self.state.summary
    }
}

#[cfg(test)]
mod tests {
    use super::names_usage_error_or_stop;

    #[test]
    fn the_usage_only_prefilter_finds_the_three_words_only_as_whole_strings() {
        for hit in [
            r#"{"choices":[],"usage":{"prompt_tokens":3}}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"type":"message_stop"}"#,
            r#"{"type": "message_delta", "usage": {"output_tokens": 9}}"#,
            r#""usage""#,
        ] {
            assert!(names_usage_error_or_stop(hit), "{hit}");
        }
        for miss in [
            r#"{"choices":[{"delta":{"content":"usage error"}}]}"#,
            r#"{"x":"usages","y":"errors","z":"message_stopped"}"#,
            r#"{"type":"content_block_delta"}"#,
            r#"{"a":"\"usag"}"#,
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#,
            r#"{"usage" : null, "error":null}"#,
            "",
            "\"",
            "\"usage",
        ] {
            assert!(!names_usage_error_or_stop(miss), "{miss}");
        }
    }
}
