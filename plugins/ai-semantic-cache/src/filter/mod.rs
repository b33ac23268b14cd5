//! The per-request state machine.
//!
//! Request: a chat or messages request's body is read whole with its headers held; the exact
//! tier is asked in local shared data; then (semantic tier) the key text is embedded and the
//! vector store queried. A hit is answered locally; anything else — a miss, a skip, a failed
//! embedding or store call — lets the request go on. Answer (misses only): watched as it passes,
//! never held; at its end a complete normal answer is stored locally and, with its vector, in the
//! vector store (the end of the answer waits for that one call, so a question asked again right
//! after finds it).

use std::rc::Rc;

use aigw_shared::error::ClientProtocol;
use aigw_shared::host::{Action, BufferKind, Direction, Host, LogLevel, MapKind};
use aigw_shared::llm::{Api, ResponseFormat};
use aigw_shared::plugin::{Ctx, FilterEnv, HttpFilter, Next, Reply, WholeBody};
use aigw_shared::reply::send_error;

use crate::capture::Capture;
use crate::config::{Config, Semantic};
use crate::entry::Entry;
use crate::key::{self, KeyRules, Lookup};
use crate::replay::{self, Shape};
use crate::{embed, exact, metric, State};

mod redis;
mod semantic;

const NAME: &str = "ai-semantic-cache";
/// The verdict header (read by ai-usage-stats into its audit record).
pub const CACHE_HEADER: &str = "x-aigw-cache";
/// Which tier answered a hit (`exact`, `semantic`).
pub const TIER_HEADER: &str = "x-aigw-cache-tier";
/// The similarity of the hit, or of the nearest answer on a miss.
pub const SIMILARITY_HEADER: &str = "x-aigw-cache-similarity";
/// Seconds since the cached answer was made.
pub const AGE_HEADER: &str = "x-aigw-cache-age";
/// Input + output tokens the hit did not cost.
pub const SAVED_HEADER: &str = "x-aigw-cache-tokens-saved";

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not ours (another API): nothing is looked at.
    PassThrough,
    /// The request body is being read.
    Reading,
    /// Embedding or vector store calls are under way (request held).
    Looking,
    /// The request went to the model.
    Forwarded,
    /// Answered here (a hit or an error).
    Answered,
}

/// What a callout is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Embedding the key text.
    Embed,
    /// Setting up the collection.
    Ensure,
    /// Top-1 query.
    Query,
    /// Storing the answer.
    Upsert,
    /// Reading the exact tier in Redis.
    ExactGet,
    /// Writing the exact tier in Redis (not waited for).
    ExactSet,
}

/// The cache's verdict, as the header says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Miss,
    Skip,
    Bypass,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Self::Miss => "miss",
            Self::Skip => "skip",
            Self::Bypass => "bypass",
        }
    }
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    env: FilterEnv,
    phase: Phase,
    api: Api,
    verdict: Verdict,
    /// `Cache-Control: no-cache`: the answer is stored but nothing is looked up.
    look: bool,
    /// The answer may be stored (not `no-store`, not bypassed).
    store: bool,
    /// The consumer (when the key is partitioned by consumer; `""` when unidentified).
    consumer: Option<String>,
    lookup: Option<Lookup>,
    vector: Option<Vec<f32>>,
    similarity: Option<f32>,
    capture: Option<Capture>,
    /// The answer (serialised) waiting for the vector store.
    pending_document: Option<String>,
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, env: FilterEnv) -> Self {
        Self {
            config,
            state,
            env,
            phase: Phase::PassThrough,
            api: Api::Other,
            verdict: Verdict::Miss,
            look: true,
            store: true,
            consumer: None,
            lookup: None,
            vector: None,
            similarity: None,
            capture: None,
            pending_document: None,
        }
    }

    fn count(&self, host: &dyn Host, name: &str, n: u64) {
        self.state.metrics.count(host, name, n);
    }

    fn now_ns(host: &dyn Host) -> u64 {
        host.now_nanos().unwrap_or(0)
    }

    /// Fail open: log, count, and let the request (or answer) go on.
    fn failed(&self, host: &dyn Host, metric_name: &str, what: &str, why: &str) {
        self.count(host, metric_name, 1);
        host.log(LogLevel::Warn, &format!("{NAME}: {what} failed: {why}"));
    }

    fn exact_hit(&self, host: &dyn Host, lookup: &Lookup) -> Option<Entry> {
        let slots = self.config.exact_slots;
        match exact::lookup(host, &lookup.exact, slots, Self::now_ns(host)) {
            Ok(found) => found,
            Err(e) => {
                self.failed(host, metric::ERR_LOCAL, "the exact lookup", &e.to_string());
                None
            }
        }
    }

    /// Answer a hit locally in the caller's protocol.
    fn answer(&mut self, host: &dyn Host, entry: &Entry, tier: &str, similarity: f32) {
        let Some(lookup) = &self.lookup else {
            return;
        };
        let now_s = Self::now_ns(host) / 1_000_000_000;
        let id: String = lookup.exact.chars().take(24).collect();
        let mut entry = entry.clone();
        if entry.model.is_empty() {
            entry.model.clone_from(&lookup.model);
        }
        let shape = Shape {
            protocol: self.api.protocol(),
            stream: lookup.stream,
            include_usage: lookup.include_usage,
            created: now_s,
            id: &format!("aigwcache{id}"),
            chunk_chars: self.config.replay_chunk_chars,
        };
        let (content_type, body) = replay::render(&entry, &shape);
        let similarity = format!("{similarity:.4}");
        let age = now_s.saturating_sub(entry.at).to_string();
        let saved = entry
            .input_tokens
            .saturating_add(entry.output_tokens)
            .to_string();
        let headers: [(&str, &[u8]); 6] = [
            ("content-type", content_type.as_bytes()),
            (CACHE_HEADER, b"hit"),
            (TIER_HEADER, tier.as_bytes()),
            (SIMILARITY_HEADER, similarity.as_bytes()),
            (AGE_HEADER, age.as_bytes()),
            (SAVED_HEADER, saved.as_bytes()),
        ];
        if let Err(e) = host.send_local_response(200, &headers, &body) {
            host.log(
                LogLevel::Error,
                &format!("{NAME}: cannot send the cached answer: {e}"),
            );
            return;
        }
        self.phase = Phase::Answered;
        let outcome = if tier == "exact" {
            metric::HIT_EXACT
        } else {
            metric::HIT_SEMANTIC
        };
        self.count(host, outcome, 1);
        self.count(host, metric::SAVED_INPUT, entry.input_tokens);
        self.count(host, metric::SAVED_OUTPUT, entry.output_tokens);
    }

    /// The request goes to the model.
    fn forward(&mut self, host: &dyn Host, verdict: Verdict) {
        self.phase = Phase::Forwarded;
        self.verdict = verdict;
        let name = match verdict {
            Verdict::Miss => metric::MISS,
            Verdict::Skip => metric::SKIP,
            Verdict::Bypass => metric::BYPASS,
        };
        self.count(host, name, 1);
    }

    /// The answer ended: store it when it may be.
    fn finish_answer(&mut self, cx: &mut Ctx<'_, Call>) -> Action {
        let Some(capture) = self.capture.take() else {
            return Action::Continue;
        };
        let Some(lookup) = &self.lookup else {
            return Action::Continue;
        };
        let now = Self::now_ns(cx.host);
        let entry = match capture.finish(now, lookup.input_estimate) {
            Ok(e) => e,
            Err(why) => {
                self.count(cx.host, metric::NOT_STORED, 1);
                cx.log(
                    LogLevel::Debug,
                    &format!("{NAME}: answer not stored: {why}"),
                );
                return Action::Continue;
            }
        };
        self.count(cx.host, metric::STORED, 1);
        let expires = now.saturating_add(self.config.ttl_seconds.saturating_mul(1_000_000_000));
        if self.config.exact && self.redis().is_some() {
            self.store_in_redis(cx, &entry, expires);
        } else if self.config.exact {
            let stored = exact::store(
                cx.host,
                &lookup.exact,
                self.config.exact_slots,
                &entry,
                expires,
            );
            if let Err(e) = stored {
                self.failed(
                    cx.host,
                    metric::ERR_LOCAL,
                    "the exact store",
                    &e.to_string(),
                );
            }
        }
        if self.vector.is_some() {
            self.pending_document = Some(String::from_utf8(entry.to_json()).unwrap_or_default());
            if self.next_store_step(cx, Call::Upsert) {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn semantic(&self) -> Option<&Semantic> {
        self.config.semantic.as_ref()
    }

    /// The exact tier answered (`hit`) or had nothing: answer, ask the semantic tier, or forward.
    fn after_exact(&mut self, cx: &mut Ctx<'_, Call>, hit: Option<Entry>) -> Action {
        let host = cx.host;
        if let Some(entry) = hit {
            self.answer(host, &entry, "exact", 1.0);
            if self.phase == Phase::Answered {
                return Action::Pause;
            }
            // The host refused the local reply (logged): the model answers instead.
        }
        let fits = match (self.semantic(), self.lookup.as_ref()) {
            (Some(s), Some(l)) => l.text.chars().count() <= s.embedding.max_input_chars,
            _ => false,
        };
        if fits {
            if let (Some(s), Some(l)) = (self.semantic(), self.lookup.as_ref()) {
                let payload = embed::body(&s.embedding, &l.text);
                match cx.http_call(
                    &s.embedding.upstream,
                    &embed::request(&s.embedding, &payload),
                    Call::Embed,
                ) {
                    Ok(_) => {
                        self.phase = Phase::Looking;
                        return Action::Pause;
                    }
                    Err(e) => {
                        self.failed(
                            cx.host,
                            metric::ERR_EMBEDDING,
                            "calling the embedding service",
                            &e.to_string(),
                        );
                    }
                }
            }
        }
        let verdict = if self.look {
            Verdict::Miss
        } else {
            Verdict::Bypass
        };
        self.forward(cx.host, verdict);
        Action::Continue
    }
}

fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// `Cache-Control` directives: (`no-cache`, `no-store`).
fn cache_control(value: &[u8]) -> (bool, bool) {
    let v = String::from_utf8_lossy(value).to_ascii_lowercase();
    let mut out = (false, false);
    for d in v.split(',').map(str::trim) {
        match d {
            "no-cache" => out.0 = true,
            "no-store" => out.1 = true,
            _ => {}
        }
    }
    out
}

/// A response `Cache-Control` with `no-store` or `private`.
fn response_forbids_storing(value: &[u8]) -> bool {
    let v = String::from_utf8_lossy(value).to_ascii_lowercase();
    v.split(',')
        .map(str::trim)
        .any(|d| d == "no-store" || d == "private" || d.starts_with("private="))
}

impl HttpFilter for Filter {
    type Call = Call;

    fn protocol(&self) -> ClientProtocol {
        self.api.protocol()
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, Call>, end_of_stream: bool) -> Action {
        let caps = self.env.capabilities;
        if !(self.config.enabled && caps.shared_data && caps.clock) {
            return Action::Continue;
        }
        let Ok(headers) = cx.headers(MapKind::RequestHeaders) else {
            return Action::Continue;
        };
        let text = |name: &str| header(&headers, name).and_then(|v| std::str::from_utf8(v).ok());
        let api = Api::from_path(text(":method").unwrap_or(""), text(":path").unwrap_or(""));
        if !matches!(api, Api::ChatCompletions | Api::AnthropicMessages) {
            return Action::Continue;
        }
        self.api = api;
        let bypass = header(&headers, &self.config.bypass_header)
            .is_some_and(|v| !matches!(v, b"0" | b"false" | b""));
        let (no_cache, no_store) =
            header(&headers, "cache-control").map_or((false, false), cache_control);
        if bypass || no_store {
            self.store = false;
            self.forward(cx.host, Verdict::Bypass);
            return Action::Continue;
        }
        self.look = !no_cache;
        if end_of_stream {
            self.forward(cx.host, Verdict::Skip);
            return Action::Continue;
        }
        if let Some(c) = &self.config.consumer {
            // Identified here, while the headers are at hand; kept for the key.
            let name = c.identify(|n| header(&headers, n)).map(|c| c.name);
            self.consumer = Some(name.unwrap_or_default());
        }
        self.phase = Phase::Reading;
        let declared = text("content-length").and_then(|v| v.trim().parse().ok());
        cx.read_whole_request(
            WholeBody::up_to(self.config.max_request_body_bytes)
                .pass_oversize()
                .holding_headers()
                .declared_length(declared),
        );
        Action::Continue
    }

    fn on_body_too_large(&mut self, cx: &mut Ctx<'_, Call>, direction: Direction) {
        if direction == Direction::Request && self.phase == Phase::Reading {
            self.store = false;
            self.lookup = None;
            self.forward(cx.host, Verdict::Skip);
        }
    }

    fn on_error_reply(
        &mut self,
        _cx: &mut Ctx<'_, Call>,
        _error: &aigw_shared::error::ClientError,
    ) {
        self.phase = Phase::Answered;
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, Call>, body: &[u8]) -> Action {
        if self.phase != Phase::Reading {
            return Action::Continue;
        }
        let host = cx.host;
        let consumer = self.consumer.take();
        let route = aigw_shared::plugin::route_name(host).unwrap_or_default();
        let rules = KeyRules {
            mode: self.config.mode,
            system_prompt: self.config.system_prompt,
            skip_with_tools: self.config.skip_with_tools,
            max_temperature: self.config.max_temperature,
            route: &route,
            consumer: consumer.as_deref(),
        };
        let lookup = match key::read(self.api, body, &rules) {
            Ok(Ok(l)) => l,
            Ok(Err(skip)) => {
                if let Some(name) = self.state.skip_names.get(skip.index()) {
                    self.count(host, name, 1);
                }
                self.store = false;
                self.forward(host, Verdict::Skip);
                return Action::Continue;
            }
            Err(e) => {
                self.count(host, metric::INVALID, 1);
                send_error(host, NAME, self.api.protocol(), &e.to_client_error());
                self.phase = Phase::Answered;
                return Action::Pause;
            }
        };
        let in_redis = self.redis().is_some();
        let hit = (self.look && self.config.exact && !in_redis)
            .then(|| self.exact_hit(host, &lookup))
            .flatten();
        self.lookup = Some(lookup);
        if self.look && self.config.exact && in_redis {
            match self.ask_redis(cx) {
                Ok(()) => {
                    self.phase = Phase::Looking;
                    return Action::Pause;
                }
                Err(e) => self.failed(cx.host, metric::ERR_REDIS, "the Redis lookup", &e),
            }
        }
        self.after_exact(cx, hit)
    }

    fn on_reply(&mut self, cx: &mut Ctx<'_, Call>, call: Call, reply: Reply) -> Next {
        match call {
            Call::ExactGet => self.on_redis_lookup(cx, &reply),
            Call::ExactSet => {
                self.on_redis_stored(cx, &reply);
                Next::Hold
            }
            _ => self.semantic_reply(cx, call, &reply),
        }
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, Call>, end_of_stream: bool) -> Action {
        if self.phase != Phase::Forwarded {
            return Action::Continue;
        }
        let host = cx.host;
        let set = host.set_header(
            MapKind::ResponseHeaders,
            CACHE_HEADER,
            self.verdict.as_str().as_bytes(),
        );
        cx.check(set, "cannot set x-aigw-cache");
        if let Some(s) = self.similarity {
            let v = format!("{s:.4}");
            let set = host.set_header(MapKind::ResponseHeaders, SIMILARITY_HEADER, v.as_bytes());
            cx.check(set, "cannot set x-aigw-cache-similarity");
        }
        if !self.store || self.lookup.is_none() || end_of_stream {
            return Action::Continue;
        }
        let status = host
            .response_header(":status")
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<u16>().ok());
        // The upstream's own word: an answer marked `no-store` or `private` is not shared.
        let forbidden = host
            .response_header("cache-control")
            .ok()
            .flatten()
            .is_some_and(|v| response_forbids_storing(&v));
        if status != Some(200) || forbidden {
            self.count(host, metric::NOT_STORED, 1);
            return Action::Continue;
        }
        let content_type = host.response_header("content-type").ok().flatten();
        let format = ResponseFormat::from_content_type(content_type.as_deref());
        self.capture = Some(Capture::new(self.api, format, self.config.max_answer_bytes));
        Action::Continue
    }

    fn on_response_body(
        &mut self,
        cx: &mut Ctx<'_, Call>,
        body_size: usize,
        end_of_stream: bool,
    ) -> Action {
        let Some(capture) = self.capture.as_mut() else {
            return Action::Continue;
        };
        if body_size > 0 {
            let now = Self::now_ns(cx.host);
            if let Ok(Some(chunk)) = cx.body(BufferKind::ResponseBody, 0, body_size) {
                capture.feed(&chunk, now);
            }
        }
        // Store when the stream's end marker passes, and hold that chunk until it is stored: a
        // client that stops reading at `[DONE]` and asks again at once finds the answer.
        if end_of_stream || capture.complete() {
            return self.finish_answer(cx);
        }
        Action::Continue
    }

    fn on_response_trailers(&mut self, cx: &mut Ctx<'_, Call>) -> Action {
        self.finish_answer(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::cache_control;

    #[test]
    fn a_response_marked_no_store_or_private_is_not_stored() {
        assert!(super::response_forbids_storing(b"private, max-age=0"));
        assert!(super::response_forbids_storing(b"No-Store"));
        assert!(!super::response_forbids_storing(b"max-age=60, public"));
    }

    #[test]
    fn cache_control_directives_are_read_case_insensitively_among_others() {
        assert_eq!(cache_control(b"No-Cache"), (true, false));
        assert_eq!(cache_control(b"max-age=0, no-store"), (false, true));
        assert_eq!(cache_control(b"private"), (false, false));
    }
}
