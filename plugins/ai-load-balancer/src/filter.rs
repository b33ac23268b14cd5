//! The per-request state machine: read the request headers (one call) and body once (generation
//! APIs), hash its prompt blocks, snapshot every endpoint from the worker's cached view
//! ([`crate::fleet`]), look the prompt up in the shared prefix table, pick, write the chosen
//! `ip:port` (and the ordered list) into the request headers, count the request in flight; on the
//! response (headers read in one call), learn the endpoint's load or put it in a cool-off when it
//! failed; at the end, count it out.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, Capabilities, Direction, LogLevel, MapKind};
use aigw_shared::llm::{Api, RequestView};
use aigw_shared::plugin::{Ctx, HttpFilter, WholeBody};

use crate::config::Config;
use crate::orca::{self, LoadReport, ORCA_FORMAT_HEADER, ORCA_HEADER};
use crate::picker::{self, Decision, EndpointView};
use crate::prefix::request_hashes;
use crate::store::{self, Health, Lookup, PrefixTable, Sessions};
use crate::{Metric, State};

/// Where the request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to do (no endpoints, or a host without shared data).
    Off,
    /// Waiting for the request body.
    Reading,
    /// An endpoint was chosen and counted in flight.
    Routed,
    /// Answered locally (shed, bad request) or passed unrouted.
    Done,
}

/// One request.
pub struct Filter {
    config: Rc<Config>,
    state: Rc<State>,
    /// The worker view's index of each endpoint of `config`.
    slots: Rc<[usize]>,
    protocol: ClientProtocol,
    api: Api,
    phase: Phase,
    session: Option<u64>,
    /// The client asked for a load report itself (the header is left as it is).
    client_asked: bool,
    chosen: Option<usize>,
    /// The pick was in a cool-off (every endpoint was): an answer ends it.
    picked_down: bool,
    /// When the response headers came (ns; 0: not yet).
    answered_at: u64,
}

fn ns(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn find<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, caps: Capabilities) -> Self {
        let phase = if config.is_active() && caps.shared_data {
            Phase::Reading
        } else {
            Phase::Off
        };
        let slots = if phase == Phase::Off {
            Rc::from(Vec::new())
        } else {
            state.fleet.slots(&config)
        };
        Self {
            config,
            state,
            slots,
            protocol: ClientProtocol::OpenAi,
            api: Api::Other,
            phase,
            session: None,
            client_asked: false,
            chosen: None,
            picked_down: false,
            answered_at: 0,
        }
    }

    fn slot(&self, i: usize) -> Option<usize> {
        self.slots.get(i).copied()
    }

    /// Pick for this request and write the headers; `Pause` when it was answered locally.
    fn route(&mut self, cx: &mut Ctx<'_, ()>, hashes: &[u64], model: Option<&str>) -> Action {
        let config = Rc::clone(&self.config);
        let c = &*config;
        let fleet = &self.state.fleet;
        let now = cx.now_nanos().unwrap_or(0);
        let read = fleet.refresh(cx.host, now, &self.slots, ns(c.load.refresh));
        let max_age = ns(c.load.max_age);
        let seen: Vec<_> = self
            .slots
            .iter()
            .map(|&s| fleet.seen(s, now, max_age))
            .collect();
        let mut table = PrefixTable::new(cx.host, c, &c.keys);
        let found = if hashes.is_empty() {
            Lookup::default()
        } else {
            let seqs: Vec<u64> = seen.iter().map(|s| s.seq).collect();
            table.lookup(hashes, &seqs)
        };
        let mut sessions = Sessions::new(cx.host, c, &c.keys);
        let bound = self.session.and_then(|id| sessions.get(id, now));
        let listed = self.state.host_views.get(cx.host, &config, now);
        let mut views = Vec::with_capacity(c.endpoints.len());
        let mut lora = Vec::with_capacity(c.endpoints.len());
        for (i, (e, s)) in c.endpoints.iter().zip(&seen).enumerate() {
            // The host's scrape counts like a response's report: for `maxAgeMs` after the read.
            let (host_down, host_load) =
                listed
                    .as_ref()
                    .map_or((false, LoadReport::default()), |(l, read_at)| {
                        let fresh = now.saturating_sub(*read_at) <= max_age;
                        let load = if fresh {
                            l.load(i)
                        } else {
                            LoadReport::default()
                        };
                        (l.is_unhealthy(i), load)
                    });
            views.push(EndpointView {
                healthy: s.healthy && !host_down,
                load: s.load.or(host_load),
                in_flight: s.in_flight,
                prefix_blocks: found.matched.get(i).copied().unwrap_or(0),
                session: bound.is_some_and(|(b, _)| b == i),
            });
            lora.push(model.is_some_and(|m| e.lora_adapters.iter().any(|a| a == m)));
        }
        let draw = self.state.draw(now);
        let (order, reason) = match picker::pick(c, &views, hashes.len(), &lora, draw) {
            Decision::Route { order, reason, .. } => (order, reason),
            Decision::Shed => {
                self.phase = Phase::Done;
                self.state.count(cx.host, Metric::Shed);
                // A client must not steer the request itself when nothing was chosen.
                let _ = cx.remove_header(MapKind::RequestHeaders, &c.header);
                shed(cx, self.protocol);
                fleet.publish_read(cx.host, now, &self.slots, read);
                return Action::Pause;
            }
        };
        let Some(first) = order.first().copied().filter(|&i| i < c.endpoints.len()) else {
            return Action::Continue;
        };
        if !write_headers(cx, c, &order, self.client_asked) {
            self.phase = Phase::Done;
            self.state.count(cx.host, Metric::Unrouted);
            return Action::Continue;
        }
        let held = found.matched.get(first).copied().unwrap_or(0);
        let new_blocks = hashes.len().saturating_sub(held) as u64;
        if let Some(slot) = self.slot(first) {
            fleet.picked(slot, new_blocks);
        }
        if !hashes.is_empty() {
            let seq_now = seen
                .get(first)
                .map_or(0, |s| s.seq.wrapping_add(new_blocks));
            table.record(first, hashes, &found, seq_now);
        }
        if let Some(id) = self.session {
            if sessions.needs_bind(bound, first, now) {
                sessions.bind(id, first, now);
            }
        }
        fleet.publish_read(cx.host, now, &self.slots, read);
        self.chosen = Some(first);
        self.picked_down = views.get(first).is_some_and(|v| !v.healthy);
        self.phase = Phase::Routed;
        self.state.count_decision(reason, held, hashes.len());
        Action::Continue
    }

    /// What the response headers say about the endpoint that answered.
    fn learn(&mut self, cx: &mut Ctx<'_, ()>, status: u16, headers: &[(String, Vec<u8>)]) {
        let c = &self.config;
        // With a list (`override_host`), the endpoint Envoy really used (a retry may have gone
        // down the list); with a single pick (ORIGINAL_DST), Envoy had no other: the pick.
        let used = if c.list_header.is_some() {
            cx.property(&["upstream", "address"])
                .ok()
                .flatten()
                .and_then(|a| c.endpoint_index(&a))
                .or(self.chosen)
        } else {
            self.chosen
        };
        let Some(i) = used else { return };
        let now = cx.now_nanos().unwrap_or(0);
        self.answered_at = now;
        // Envoy answered from further down the list (`override_host` retries): the pick failed.
        if let Some(first) = self.chosen.filter(|&first| first != i) {
            self.mark_down(cx, first, now, "failed before another endpoint answered");
        }
        let report = read_report(headers, c);
        let fleet = &self.state.fleet;
        if !report.is_empty() {
            if let Some(slot) = self.slot(i) {
                fleet.learned(slot, report, now);
            }
        }
        let failed = matches!(status, 502..=504) && report.is_empty();
        if failed {
            let why = format!("answered {status} without a load report");
            self.mark_down(cx, i, now, &why);
        } else if status < 500 && (self.picked_down || Some(i) != self.chosen) {
            // It answered: end its cool-off if this worker believes it is in one.
            if let Some(slot) = self.slot(i) {
                let max_age = ns(c.load.max_age);
                if !fleet.seen(slot, now, max_age).healthy {
                    fleet.publish(cx.host, now, slot, Health::Up, true);
                }
            }
        }
        if c.response_header {
            if let Some(e) = c.endpoints.get(i) {
                let _ = cx.set_header(
                    MapKind::ResponseHeaders,
                    "x-aigw-endpoint",
                    e.address.as_bytes(),
                );
            }
        }
    }
}

impl Filter {
    /// Skip endpoint `i` for the cool-off (written to the store at once).
    fn mark_down(&self, cx: &Ctx<'_, ()>, i: usize, now: u64, why: &str) {
        let c = &self.config;
        let (Some(slot), Some(e)) = (self.slot(i), c.endpoints.get(i)) else {
            return;
        };
        let until = now.saturating_add(ns(c.cool_off));
        self.state
            .fleet
            .publish(cx.host, now, slot, Health::DownUntil(until), true);
        self.state
            .endpoint_metrics
            .count(cx.host, &e.down_metric, 1);
        cx.log(
            LogLevel::Info,
            &format!(
                "ai-load-balancer: {} {why}: skipped for {} ms",
                e.address,
                c.cool_off.as_millis()
            ),
        );
    }
}

/// The pick into `header` (and, on Higress, as the upstream override host), the ordered list into
/// `listHeader`, and the request for a load report (vLLM sends it only when asked). False when
/// the pick could not be written.
fn write_headers(cx: &Ctx<'_, ()>, c: &Config, order: &[usize], client_asked: bool) -> bool {
    let Some(endpoint) = order.first().and_then(|&i| c.endpoints.get(i)) else {
        return false;
    };
    if cx.capabilities().override_host {
        // Higress sends the request to this host of the routed cluster itself: no ORIGINAL_DST
        // cluster needed there.
        let set = cx.set_upstream_override_host(endpoint.address.as_bytes());
        cx.check(set, "set the upstream override host");
    }
    let set = cx.set_header(
        MapKind::RequestHeaders,
        &c.header,
        endpoint.address.as_bytes(),
    );
    if !cx.check(set, "set the endpoint header") {
        return false;
    }
    if let Some(list_header) = &c.list_header {
        let list = order
            .iter()
            .filter_map(|&i| c.endpoints.get(i).map(|e| e.address.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        let set = cx.set_header(MapKind::RequestHeaders, list_header, list.as_bytes());
        cx.check(set, "set the endpoint list header");
    }
    if !client_asked {
        let _ = cx.set_header(MapKind::RequestHeaders, ORCA_FORMAT_HEADER, b"TEXT");
    }
    true
}

/// The load report of a response: ORCA first, then the configured custom headers.
fn read_report(headers: &[(String, Vec<u8>)], c: &Config) -> LoadReport {
    let header = |name: &str| find(headers, name);
    let orca = header(ORCA_HEADER)
        .and_then(|v| orca::parse_orca(v).ok())
        .unwrap_or_default();
    let l = &c.load;
    let custom = LoadReport {
        kv_cache: l
            .kv_cache_header
            .as_deref()
            .and_then(|h| orca::header_fraction(header(h))),
        waiting: l
            .queue_header
            .as_deref()
            .and_then(|h| orca::header_count(header(h))),
        running: l
            .running_header
            .as_deref()
            .and_then(|h| orca::header_count(header(h))),
    };
    orca.or(custom)
}

/// Every healthy endpoint is saturated: 429 in the caller's protocol, retry in a second.
fn shed(cx: &Ctx<'_, ()>, protocol: ClientProtocol) {
    let error = ClientError::new(
        ErrorKind::RateLimited,
        "every model server is saturated; retry shortly",
    )
    .with_code("endpoints_saturated");
    let r = error.render(protocol);
    let headers = [
        ("content-type", r.content_type.as_bytes()),
        ("retry-after", &b"1"[..]),
    ];
    if let Err(e) = cx.send_local_response(r.status, &headers, &r.body) {
        cx.log(
            LogLevel::Error,
            &format!("ai-load-balancer: cannot send the 429: {e}"),
        );
    }
}

impl HttpFilter for Filter {
    type Call = ();

    fn protocol(&self) -> ClientProtocol {
        self.protocol
    }

    fn on_request_headers(&mut self, cx: &mut Ctx<'_, ()>, end_of_stream: bool) -> Action {
        if self.phase == Phase::Off {
            return Action::Continue;
        }
        // Every header this filter needs, in one host call.
        let headers = cx.headers(MapKind::RequestHeaders).unwrap_or_default();
        let header = |name: &str| find(&headers, name);
        let text = |name: &str| header(name).and_then(|v| std::str::from_utf8(v).ok());
        self.api = Api::from_path(text(":method").unwrap_or(""), text(":path").unwrap_or(""));
        self.protocol = self.api.protocol();
        let c = &self.config;
        if let Some((name, _)) = &c.only_when {
            if !c.applies(header(name)) {
                self.phase = Phase::Off;
                return Action::Continue;
            }
        }
        if !c.session.header.is_empty() && c.weights.session > 0.0 {
            self.session = header(&c.session.header)
                .filter(|v| !v.is_empty())
                .map(store::session_hash);
        }
        self.client_asked = header(ORCA_FORMAT_HEADER).is_some();
        let wants_body = !end_of_stream
            && (self.api.is_generation() || self.api == Api::Embeddings)
            && (c.weights.prefix > 0.0 || c.has_lora);
        if wants_body {
            let declared = text("content-length").and_then(|v| v.trim().parse::<usize>().ok());
            let max = c.max_request_body_bytes;
            cx.read_whole_request(
                WholeBody::up_to(max)
                    .pass_oversize()
                    .holding_headers()
                    .declared_length(declared),
            );
            return Action::Continue;
        }
        self.route(cx, &[], None)
    }

    fn on_request_whole(&mut self, cx: &mut Ctx<'_, ()>, body: &[u8]) -> Action {
        if self.phase != Phase::Reading {
            return Action::Continue;
        }
        let view = match RequestView::parse(self.api, body) {
            Ok(v) => v,
            Err(e) => {
                // Unreadable: route by load alone and let the model server answer it.
                cx.log(
                    LogLevel::Debug,
                    &format!("ai-load-balancer: body not read for prefix hashing: {e}"),
                );
                return self.route(cx, &[], None);
            }
        };
        let hashes = if self.config.weights.prefix > 0.0 {
            request_hashes(&view, &self.config.prefix)
        } else {
            Vec::new()
        };
        let model = view.model.as_deref().filter(|_| self.config.has_lora);
        self.route(cx, &hashes, model)
    }

    fn on_body_too_large(&mut self, cx: &mut Ctx<'_, ()>, direction: Direction) {
        if direction == Direction::Request && self.phase == Phase::Reading {
            self.state.count(cx.host, Metric::Unhashed);
            let _ = self.route(cx, &[], None);
        }
    }

    fn on_response_headers(&mut self, cx: &mut Ctx<'_, ()>, _end_of_stream: bool) -> Action {
        if self.phase == Phase::Routed {
            let headers = cx.headers(MapKind::ResponseHeaders).unwrap_or_default();
            let status = find(&headers, ":status")
                .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u16>().ok())
                .unwrap_or(0);
            self.learn(cx, status, &headers);
        }
        Action::Continue
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, ()>) {
        if self.phase != Phase::Routed {
            return;
        }
        self.phase = Phase::Done;
        if let Some(slot) = self.chosen.and_then(|i| self.slot(i)) {
            self.state.fleet.finished(cx.host, slot, self.answered_at);
        }
    }
}
