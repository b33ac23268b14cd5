//! The per-request state machine: read the request body once (generation APIs), hash its prompt
//! blocks, snapshot every endpoint from shared data, pick, write the chosen `ip:port` (and the
//! ordered list) into the request headers, count the request in flight; on the response, learn
//! the endpoint's load from its headers or put it in a cool-off when it failed; at the end,
//! count it out.

use std::rc::Rc;

use aigw_shared::error::{ClientError, ClientProtocol, ErrorKind};
use aigw_shared::host::{Action, Capabilities, Direction, LogLevel, MapKind};
use aigw_shared::llm::{Api, RequestView};
use aigw_shared::plugin::{Ctx, HttpFilter, WholeBody};

use crate::config::Config;
use crate::orca::{self, LoadReport, ORCA_FORMAT_HEADER, ORCA_HEADER};
use crate::picker::{self, Decision, EndpointView};
use crate::prefix::request_hashes;
use crate::store::{self, Lookup, PrefixTable, Sessions};
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
    protocol: ClientProtocol,
    api: Api,
    phase: Phase,
    session: Option<u64>,
    chosen: Option<usize>,
    /// The pick was in a cool-off (every endpoint was): an answer ends it.
    picked_down: bool,
}

impl Filter {
    /// A filter for one request.
    pub fn new(config: Rc<Config>, state: Rc<State>, caps: Capabilities) -> Self {
        let phase = if config.is_active() && caps.shared_data {
            Phase::Reading
        } else {
            Phase::Off
        };
        Self {
            config,
            state,
            protocol: ClientProtocol::OpenAi,
            api: Api::Other,
            phase,
            session: None,
            chosen: None,
            picked_down: false,
        }
    }

    /// Pick for this request and write the headers; `Pause` when it was answered locally.
    fn route(&mut self, cx: &mut Ctx<'_, ()>, hashes: &[u64], model: Option<&str>) -> Action {
        let config = Rc::clone(&self.config);
        let c = &*config;
        let now = cx.now_nanos().unwrap_or(0);
        let mut table = PrefixTable::new(cx.host, c, &c.keys);
        let found = if hashes.is_empty() {
            Lookup::default()
        } else {
            table.lookup(hashes)
        };
        let mut sessions = Sessions::new(cx.host, c, &c.keys);
        let bound = self.session.and_then(|id| sessions.get(id, now));
        let (views, lora) = snapshot(cx, c, &found, bound, model, now);
        let draw = self.state.draw(now);
        let (order, reason) = match picker::pick(c, &views, hashes.len(), &lora, draw) {
            Decision::Route { order, reason, .. } => (order, reason),
            Decision::Shed => {
                self.phase = Phase::Done;
                self.state.count(cx.host, Metric::Shed);
                // A client must not steer the request itself when nothing was chosen.
                let _ = cx.remove_header(MapKind::RequestHeaders, &c.header);
                shed(cx, self.protocol);
                return Action::Pause;
            }
        };
        let Some(first) = order.first().copied().filter(|&i| i < c.endpoints.len()) else {
            return Action::Continue;
        };
        if !write_headers(cx, c, &order) {
            self.phase = Phase::Done;
            self.state.count(cx.host, Metric::Unrouted);
            return Action::Continue;
        }
        if !hashes.is_empty() {
            table.record(first, hashes, &found);
            let held = found.matched.get(first).copied().unwrap_or(0);
            let share = held * 100 / hashes.len().max(1);
            self.state
                .observe(cx.host, Metric::PrefixMatchPercent, share as u64);
        }
        if let Some(id) = self.session {
            if sessions.needs_bind(bound, first, now) {
                sessions.bind(id, first, now);
            }
        }
        if let Some(k) = c.keys.in_flight.get(first) {
            let _ = store::add_in_flight(cx.host, k, 1);
        }
        self.chosen = Some(first);
        self.picked_down = views.get(first).is_some_and(|v| !v.healthy);
        self.phase = Phase::Routed;
        self.state.count(cx.host, Metric::from(reason));
        if let Some(endpoint) = c.endpoints.get(first) {
            self.state.count_endpoint(cx.host, &endpoint.picks_metric);
        }
        Action::Continue
    }

    /// What the response headers say about the endpoint that answered.
    fn learn(&self, cx: &mut Ctx<'_, ()>, status: u16) {
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
        // Envoy answered from further down the list (`override_host` retries): the pick failed.
        if let Some(first) = self.chosen.filter(|&first| first != i) {
            self.mark_down(cx, first, now, "failed before another endpoint answered");
        }
        let report = read_report(cx, c);
        let keys = &c.keys;
        if !report.is_empty() {
            if let Some(k) = keys.load.get(i) {
                store::put_load(cx.host, k, &report, now);
            }
        }
        let failed = matches!(status, 502..=504) && report.is_empty();
        if failed {
            let why = format!("answered {status} without a load report");
            self.mark_down(cx, i, now, &why);
        } else if status < 500 && (self.picked_down || Some(i) != self.chosen) {
            // Only an endpoint that may be in a cool-off is checked (one read saved per answer).
            if let Some(k) = keys.health.get(i) {
                store::mark_up(cx.host, k);
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
    /// Skip endpoint `i` for the cool-off.
    fn mark_down(&self, cx: &Ctx<'_, ()>, i: usize, now: u64, why: &str) {
        let c = &self.config;
        let (Some(k), Some(e)) = (c.keys.health.get(i), c.endpoints.get(i)) else {
            return;
        };
        let cool = u64::try_from(c.cool_off.as_nanos()).unwrap_or(u64::MAX);
        store::mark_down(cx.host, k, now.saturating_add(cool));
        self.state.count_endpoint(cx.host, &e.down_metric);
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

/// What every endpoint looks like for this request, and which serve the requested adapter.
fn snapshot(
    cx: &Ctx<'_, ()>,
    c: &Config,
    found: &Lookup,
    bound: Option<(usize, u64)>,
    model: Option<&str>,
    now: u64,
) -> (Vec<EndpointView>, Vec<bool>) {
    fn key(list: &[String], i: usize) -> &str {
        list.get(i).map_or("", String::as_str)
    }
    let keys = &c.keys;
    let max_age = u64::try_from(c.load.max_age.as_nanos()).unwrap_or(u64::MAX);
    let mut views = Vec::with_capacity(c.endpoints.len());
    let mut lora = Vec::with_capacity(c.endpoints.len());
    for (i, e) in c.endpoints.iter().enumerate() {
        views.push(EndpointView {
            healthy: store::healthy(cx.host, key(&keys.health, i), now),
            load: store::get_load(cx.host, key(&keys.load, i), now, max_age),
            in_flight: store::in_flight(cx.host, key(&keys.in_flight, i)),
            prefix_blocks: found.matched.get(i).copied().unwrap_or(0),
            session: bound.is_some_and(|(b, _)| b == i),
        });
        lora.push(model.is_some_and(|m| e.lora_adapters.iter().any(|a| a == m)));
    }
    (views, lora)
}

/// The pick into `header`, the ordered list into `listHeader`, and the request for a load report
/// (vLLM sends it only when asked). False when the pick could not be written.
fn write_headers(cx: &Ctx<'_, ()>, c: &Config, order: &[usize]) -> bool {
    let Some(endpoint) = order.first().and_then(|&i| c.endpoints.get(i)) else {
        return false;
    };
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
    let asked = cx
        .request_header(ORCA_FORMAT_HEADER)
        .ok()
        .flatten()
        .is_some();
    if !asked {
        let _ = cx.set_header(MapKind::RequestHeaders, ORCA_FORMAT_HEADER, b"TEXT");
    }
    true
}

/// The load report of a response: ORCA first, then the configured custom headers.
fn read_report(cx: &Ctx<'_, ()>, c: &Config) -> LoadReport {
    let header = |name: &str| cx.response_header(name).ok().flatten();
    let orca = header(ORCA_HEADER)
        .and_then(|v| orca::parse_orca(&v).ok())
        .unwrap_or_default();
    let l = &c.load;
    let custom = LoadReport {
        kv_cache: l
            .kv_cache_header
            .as_deref()
            .and_then(|h| orca::header_fraction(header(h).as_deref())),
        waiting: l
            .queue_header
            .as_deref()
            .and_then(|h| orca::header_count(header(h).as_deref())),
        running: l
            .running_header
            .as_deref()
            .and_then(|h| orca::header_count(header(h).as_deref())),
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
        let header = |name: &str| cx.request_header(name).ok().flatten();
        let method = header(":method").unwrap_or_default();
        let path = header(":path").unwrap_or_default();
        self.api = Api::from_path(
            std::str::from_utf8(&method).unwrap_or(""),
            std::str::from_utf8(&path).unwrap_or(""),
        );
        self.protocol = self.api.protocol();
        let c = &self.config;
        if let Some((name, _)) = &c.only_when {
            if !c.applies(header(name).as_deref()) {
                self.phase = Phase::Off;
                return Action::Continue;
            }
        }
        if !c.session.header.is_empty() && c.weights.session > 0.0 {
            self.session = header(&c.session.header)
                .filter(|v| !v.is_empty())
                .map(|v| store::session_hash(&v));
        }
        let wants_body = !end_of_stream
            && (self.api.is_generation() || self.api == Api::Embeddings)
            && (c.weights.prefix > 0.0 || c.has_lora);
        if wants_body {
            let max = c.max_request_body_bytes;
            cx.read_whole_request(WholeBody::up_to(max).pass_oversize().holding_headers());
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
            let status = cx
                .response_header(":status")
                .ok()
                .flatten()
                .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u16>().ok())
                .unwrap_or(0);
            self.learn(cx, status);
        }
        Action::Continue
    }

    fn on_log(&mut self, cx: &mut Ctx<'_, ()>) {
        if self.phase != Phase::Routed {
            return;
        }
        self.phase = Phase::Done;
        if let Some(k) = self.chosen.and_then(|i| self.config.keys.in_flight.get(i)) {
            let _ = store::add_in_flight(cx.host, k, -1);
        }
    }
}
