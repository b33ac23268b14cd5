//! The proxy-wasm adapter (wasm32 only): [`Host`] over `proxy_wasm::hostcalls`, the root and HTTP
//! contexts that drive a [`Plugin`], and the [`export_plugin!`](crate::export_plugin) macro.
//!
//! The SDK's host calls panic on any status they do not expect (for example BAD_ARGUMENT when a
//! header map is read after Envoy released it, or UNIMPLEMENTED on APISIX), and a panic traps the VM
//! for every later request on that worker. So this adapter never makes a call the host would
//! refuse: it tracks Envoy's phase rules with [`PhaseGate`] and the host's [`Capabilities`], and
//! answers [`HostError`] itself instead.
//!
//! Host detection: Envoy and Higress call `proxy_on_vm_start` before `proxy_on_configure`; APISIX
//! (wasm-nginx-module) never calls it. A configure without a VM start therefore means the APISIX
//! capability set.

use std::cell::{Cell, RefCell};
use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{
    Action as SdkAction, BufferType, ContextType, MapType, MetricType, Status,
};

use crate::host::{
    Action, BufferKind, CallResponse, Capabilities, Direction, HeaderPair, Host, HostError,
    LogLevel, MapKind, MetricKind, PhaseGate,
};
use crate::plugin::watchdog::{self, Watchdog};
use crate::plugin::{FilterDriver, FilterEnv, Plugin, Reply, RootDriver};
use crate::reply::send_error;

thread_local! {
    /// The VM's watch for request headers held for a body the host never delivers.
    static WATCHDOG: RefCell<Watchdog> = RefCell::new(Watchdog::default());
}

fn watchdog<R>(f: impl FnOnce(&mut Watchdog) -> R) -> R {
    WATCHDOG.with(|w| f(&mut w.borrow_mut()))
}

/// [`Host`] over the real proxy-wasm ABI, for one HTTP stream.
pub struct ProxyWasmHost {
    caps: Capabilities,
    /// The context this host serves (a stream's, or the root's): where Redis answers go.
    #[cfg_attr(not(feature = "higress"), allow(dead_code))]
    context: u32,
    gate: Cell<PhaseGate>,
    local_reply: Cell<bool>,
    reply_in_callback: Cell<bool>,
    request_body_size: Cell<usize>,
    response_body_size: Cell<usize>,
}

impl ProxyWasmHost {
    fn new(caps: Capabilities, context: u32) -> Self {
        Self {
            caps,
            context,
            gate: Cell::new(PhaseGate::default()),
            local_reply: Cell::new(false),
            reply_in_callback: Cell::new(false),
            request_body_size: Cell::new(0),
            response_body_size: Cell::new(0),
        }
    }

    fn update_gate(&self, f: impl FnOnce(&mut PhaseGate)) {
        let mut g = self.gate.get();
        f(&mut g);
        self.gate.set(g);
    }

    /// A local reply forces Stop in the callback that sent it, whatever the filter returned, as
    /// Envoy does. The reply then travels back through the response callbacks, which continue.
    fn settle(&self, action: Action) -> SdkAction {
        if self.reply_in_callback.replace(false) || action == Action::Pause {
            SdkAction::Pause
        } else {
            SdkAction::Continue
        }
    }
}

fn status_error(s: Status) -> HostError {
    match s {
        Status::CasMismatch => HostError::CasMismatch,
        Status::BadArgument => HostError::BadArgument("rejected by host"),
        Status::NotFound => HostError::Status(1),
        other => HostError::Status(other as u32),
    }
}

fn map_type(map: MapKind) -> MapType {
    match map {
        MapKind::RequestHeaders => MapType::HttpRequestHeaders,
        MapKind::RequestTrailers => MapType::HttpRequestTrailers,
        MapKind::ResponseHeaders => MapType::HttpResponseHeaders,
        MapKind::ResponseTrailers => MapType::HttpResponseTrailers,
    }
}

fn buffer_type(kind: BufferKind) -> BufferType {
    match kind {
        BufferKind::RequestBody => BufferType::HttpRequestBody,
        BufferKind::ResponseBody => BufferType::HttpResponseBody,
    }
}

fn text_pairs<'a>(pairs: &'a [HeaderPair<'a>]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .map(|(k, v)| (*k, std::str::from_utf8(v).unwrap_or("")))
        .collect()
}

impl Host for ProxyWasmHost {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Trace => proxy_wasm::types::LogLevel::Trace,
            LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
            LogLevel::Info => proxy_wasm::types::LogLevel::Info,
            LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
            LogLevel::Error => proxy_wasm::types::LogLevel::Error,
            LogLevel::Critical => proxy_wasm::types::LogLevel::Critical,
        };
        let _ = hostcalls::log(level, message);
    }

    fn now_nanos(&self) -> Option<u64> {
        if !self.caps.clock {
            return None;
        }
        let t = hostcalls::get_current_time().ok()?;
        t.duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_nanos()).ok())
    }

    fn header(&self, map: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.gate.get().check(map)?;
        hostcalls::get_map_value_bytes(map_type(map), name).map_err(status_error)
    }

    fn headers(&self, map: MapKind) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        self.gate.get().check(map)?;
        hostcalls::get_map_bytes(map_type(map)).map_err(status_error)
    }

    fn set_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.gate.get().check(map)?;
        hostcalls::set_map_value_bytes(map_type(map), name, Some(value)).map_err(status_error)
    }

    fn add_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.gate.get().check(map)?;
        hostcalls::add_map_value_bytes(map_type(map), name, value).map_err(status_error)
    }

    fn remove_header(&self, map: MapKind, name: &str) -> Result<(), HostError> {
        self.gate.get().check(map)?;
        hostcalls::remove_map_value(map_type(map), name).map_err(status_error)
    }

    fn body(
        &self,
        kind: BufferKind,
        start: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        // APISIX answers BAD_ARGUMENT (an SDK panic) for empty reads; there is nothing to read anyway.
        if len == 0 {
            return Ok(None);
        }
        hostcalls::get_buffer(buffer_type(kind), start, len).map_err(status_error)
    }

    fn set_body(
        &self,
        kind: BufferKind,
        start: usize,
        len: usize,
        data: &[u8],
    ) -> Result<(), HostError> {
        if !self.caps.body_write {
            return Err(HostError::Unsupported);
        }
        let held = match kind {
            BufferKind::RequestBody => self.request_body_size.get(),
            BufferKind::ResponseBody => self.response_body_size.get(),
        };
        if start != 0 && start < held {
            return Err(HostError::BadArgument(
                "Envoy writes bodies only at 0 or at the end",
            ));
        }
        hostcalls::set_buffer(buffer_type(kind), start, len, data).map_err(status_error)
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(path.to_vec()).map_err(status_error)
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_property(path.to_vec(), Some(value)).map_err(status_error)
    }

    fn http_call(
        &self,
        upstream: &str,
        headers: &[HeaderPair<'_>],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(upstream, text_pairs(headers), body, Vec::new(), timeout)
            .map_err(status_error)
    }

    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        if !self.caps.shared_data {
            return Err(HostError::Unsupported);
        }
        hostcalls::get_shared_data(key).map_err(status_error)
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        if !self.caps.shared_data {
            return Err(HostError::Unsupported);
        }
        hostcalls::set_shared_data(key, Some(value), cas).map_err(status_error)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(t, name).map_err(status_error)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        hostcalls::increment_metric(id, delta).map_err(status_error)
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        hostcalls::record_metric(id, value).map_err(status_error)
    }

    fn send_local_response(
        &self,
        status: u16,
        headers: &[HeaderPair<'_>],
        body: &[u8],
    ) -> Result<(), HostError> {
        if self.local_reply.get() {
            return Err(HostError::BadArgument("a local reply was already sent"));
        }
        hostcalls::send_http_response(u32::from(status), text_pairs(headers), Some(body))
            .map_err(status_error)?;
        self.local_reply.set(true);
        self.reply_in_callback.set(true);
        Ok(())
    }

    fn resume(&self, direction: Direction) -> Result<(), HostError> {
        let r = match direction {
            Direction::Request => hostcalls::resume_http_request(),
            Direction::Response => hostcalls::resume_http_response(),
        };
        self.update_gate(|g| g.release(direction));
        r.map_err(status_error)
    }

    fn grpc_call(
        &self,
        upstream: &str,
        service: &str,
        method: &str,
        metadata: &[HeaderPair<'_>],
        message: &[u8],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        if !self.caps.grpc {
            return Err(HostError::Unsupported);
        }
        hostcalls::dispatch_grpc_call(
            upstream,
            service,
            method,
            metadata.to_vec(),
            Some(message),
            timeout,
        )
        .map_err(status_error)
    }

    #[cfg(feature = "higress")]
    fn redis_call(&self, cluster: &str, query: &[u8]) -> Result<u32, HostError> {
        crate::higress_abi::redis_call(cluster, query, self.context)
    }

    #[cfg(feature = "higress")]
    fn redis_init(
        &self,
        cluster: &str,
        username: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<(), HostError> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        crate::higress_abi::redis_init(cluster, username, password, ms)
    }

    #[cfg(feature = "higress")]
    fn set_upstream_override_host(&self, host: &[u8]) -> Result<(), HostError> {
        // Only while the request headers are held: after that Envoy has picked the host.
        self.gate.get().check(MapKind::RequestHeaders)?;
        crate::higress_abi::set_upstream_override_host(host)
    }

    #[cfg(feature = "higress")]
    fn upstream_hosts(&self) -> Result<Vec<(String, String)>, HostError> {
        let bytes = crate::higress_abi::upstream_hosts()?;
        crate::host::decode_pairs(&bytes).ok_or(HostError::BadArgument("malformed upstream hosts"))
    }

    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        hostcalls::register_shared_queue(name).map_err(status_error)
    }

    fn resolve_queue(&self, name: &str) -> Result<Option<u32>, HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        hostcalls::resolve_shared_queue("", name).map_err(status_error)
    }

    fn enqueue(&self, queue: u32, message: &[u8]) -> Result<(), HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        hostcalls::enqueue_shared_queue(queue, Some(message)).map_err(status_error)
    }

    fn dequeue(&self, queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        hostcalls::dequeue_shared_queue(queue).map_err(status_error)
    }
}

/// The root context of plugin `P`: parses the configuration, holds the worker's state through
/// its [`RootDriver`], runs the tick and root-level callouts, and makes HTTP contexts.
pub struct Root<P: Plugin> {
    /// The root's context id.
    id: u32,
    driver: Option<RootDriver<P>>,
    vm_started: bool,
    caps: Capabilities,
    host: ProxyWasmHost,
    /// The plugin's own tick period, and when its next tick is due (host clock, ns).
    plugin_tick: Option<(u64, u64)>,
    /// The host tick runs at the watchdog's pace (until it is disarmed).
    watching: bool,
}

impl<P: Plugin> Root<P> {
    /// The root context `id`.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            driver: None,
            vm_started: false,
            caps: Capabilities::FULL,
            host: ProxyWasmHost::new(Capabilities::FULL, id),
            plugin_tick: None,
            watching: false,
        }
    }

    fn set_tick(&self, period: Duration) {
        // The host counts whole milliseconds: a shorter period (not zero) must not become 0,
        // which stops the tick.
        let period = if period.is_zero() {
            period
        } else {
            period.max(Duration::from_millis(1))
        };
        if let Err(e) = hostcalls::set_tick_period(period) {
            self.host.log(
                LogLevel::Warn,
                &format!("{}: cannot start the tick: {e:?}", P::NAME),
            );
        }
    }

    /// Start the host tick: the watchdog's pace while it is armed, else the plugin's period.
    fn start_tick(&mut self, plugin_period: Option<Duration>) {
        let now = self.host.now_nanos().unwrap_or(0);
        self.plugin_tick = plugin_period.map(|p| {
            let ns = u64::try_from(p.as_nanos()).unwrap_or(u64::MAX);
            (ns, now.saturating_add(ns))
        });
        self.watching = self.caps.ticks && watchdog(|w| w.armed());
        let check = Duration::from_millis(u64::from(watchdog::CHECK_PERIOD_MS));
        match plugin_period {
            Some(p) if !self.watching || p <= check => self.set_tick(p),
            _ if self.watching => self.set_tick(check),
            _ => {}
        }
    }

    /// Answer the streams whose held headers never saw a body: the host lacks Envoy's
    /// `allow_on_headers_stop_iteration`. Once a body is seen, the tick returns to the plugin's
    /// period, switched in a tick that ran the plugin's (`plugin_ran`) so its phase is kept.
    fn check_watchdog(&mut self, now: u64, plugin_ran: bool) {
        if !self.watching {
            return;
        }
        let stuck = watchdog(|w| w.stuck(now));
        for held in &stuck {
            let waited = now.saturating_sub(held.since_ns) / 1_000_000_000;
            let error = watchdog::stuck_error(P::NAME, waited);
            self.host.log(LogLevel::Error, &error.message);
            if hostcalls::set_effective_context(held.context).is_ok() {
                // A host of its own: the root's must not remember this stream's reply.
                send_error(
                    &ProxyWasmHost::new(self.caps, held.context),
                    P::NAME,
                    held.protocol,
                    &error,
                );
            }
        }
        if !stuck.is_empty() {
            let _ = hostcalls::set_effective_context(self.id);
        }
        if !watchdog(|w| w.armed()) {
            match self.plugin_tick {
                None => self.set_tick(Duration::ZERO),
                Some((period, _)) if plugin_ran => self.set_tick(Duration::from_nanos(period)),
                Some(_) => return,
            }
            self.watching = false;
        }
    }
}

impl<P: Plugin> Default for Root<P> {
    fn default() -> Self {
        Self::new(0)
    }
}

/// The capabilities of the host that loaded this build.
fn detected_capabilities(vm_started: bool) -> Capabilities {
    if !vm_started {
        Capabilities::APISIX
    } else if cfg!(feature = "higress") {
        Capabilities::HIGRESS
    } else {
        Capabilities::FULL
    }
}

/// Log a panic's message before the VM aborts (a trap otherwise says only "unreachable").
pub fn install_panic_hook(plugin: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let _ = hostcalls::log(
            proxy_wasm::types::LogLevel::Critical,
            &format!("{plugin}: panic: {info}"),
        );
    }));
}

fn call_response(num_headers: usize, body_size: usize) -> CallResponse {
    if num_headers == 0 {
        return CallResponse::default();
    }
    let headers = hostcalls::get_map_bytes(MapType::HttpCallResponseHeaders).unwrap_or_default();
    let status = headers
        .iter()
        .find(|(k, _)| k == ":status")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .and_then(|s| s.parse().ok());
    let body = if body_size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    CallResponse {
        status,
        headers,
        body,
    }
}

fn grpc_reply(status: u32, size: usize) -> Reply {
    let message = if size == 0 {
        Vec::new()
    } else {
        hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default()
    };
    Reply::Grpc { status, message }
}

impl<P: Plugin> Context for Root<P> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        let reply = Reply::Http(call_response(num_headers, body_size));
        if let Some(d) = self.driver.as_mut() {
            d.on_reply(&self.host, token, reply);
        }
        self.host.reply_in_callback.set(false);
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let reply = grpc_reply(status, size);
        if let Some(d) = self.driver.as_mut() {
            d.on_reply(&self.host, token, reply);
        }
    }

    /// Higress: a Redis answer to a call the root made.
    #[cfg(feature = "higress")]
    fn on_foreign_function(&mut self, function_id: u32, _arguments_size: usize) {
        if let Some((token, reply)) = crate::higress_abi::take_answer(function_id) {
            if let Some(d) = self.driver.as_mut() {
                d.on_reply(&self.host, token, Reply::Redis(reply));
            }
            self.host.reply_in_callback.set(false);
        }
    }
}

impl<P: Plugin> RootContext for Root<P> {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.vm_started = true;
        true
    }

    fn on_configure(&mut self, size: usize) -> bool {
        self.caps = detected_capabilities(self.vm_started);
        self.host = ProxyWasmHost::new(self.caps, self.id);
        let raw = if size == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
                Ok(bytes) => bytes.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
        };
        let env = FilterEnv {
            capabilities: self.caps,
        };
        match RootDriver::<P>::configure(&raw, env) {
            Ok(mut driver) => {
                driver.start(&self.host);
                for line in driver.limitations() {
                    self.host
                        .log(LogLevel::Warn, &format!("{}: {line}", P::NAME));
                }
                let period = driver.tick_period();
                self.start_tick(period);
                self.host.log(
                    LogLevel::Info,
                    &format!("{} {} configured", P::NAME, env!("CARGO_PKG_VERSION")),
                );
                self.driver = Some(driver);
                true
            }
            Err(e) => {
                self.host.log(
                    LogLevel::Error,
                    &format!("{}: invalid configuration: {e}", P::NAME),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let now = self.host.now_nanos().unwrap_or(0);
        let due = match &mut self.plugin_tick {
            // Ticking at the plugin's own period: every tick is its tick.
            Some(_) if !self.watching => true,
            Some((period, next)) if now >= *next => {
                *next = now.saturating_add(*period);
                true
            }
            _ => false,
        };
        if due {
            if let Some(d) = self.driver.as_mut() {
                d.on_tick(&self.host);
            }
        }
        self.check_watchdog(now, due);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let stream: Box<dyn HttpContext> = match &self.driver {
            Some(root) => Box::new(Stream::<P> {
                driver: root.new_stream(),
                host: ProxyWasmHost::new(self.caps, context_id),
                context: context_id,
                watched: false,
            }),
            // Never configured (Envoy would have rejected the config): pass traffic through.
            None => Box::new(PassThrough),
        };
        Some(stream)
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct PassThrough;
impl Context for PassThrough {}
impl HttpContext for PassThrough {}

/// One HTTP stream of plugin `P`.
struct Stream<P: Plugin> {
    driver: FilterDriver<P>,
    host: ProxyWasmHost,
    /// This stream's context id.
    context: u32,
    /// The watchdog knows this stream (its headers are held for the body).
    watched: bool,
}

impl<P: Plugin> Stream<P> {
    /// A callout answered outside any stream callback: a local reply sent from it must not force
    /// Stop on the next callback (the reply's own response headers).
    fn after_callout(&self) {
        self.host.reply_in_callback.set(false);
    }

    /// Request headers held for the body: the watchdog times the wait for the first chunk
    /// (only while it is armed, so a VM that has seen bodies pays nothing).
    fn watch(&mut self, action: Action, end_of_stream: bool) {
        if action != Action::Pause || end_of_stream || !self.driver.awaits_request_body() {
            return;
        }
        if !self.host.caps.ticks || !watchdog(|w| w.armed()) {
            return;
        }
        let now = self.host.now_nanos().unwrap_or(0);
        let protocol = self.driver.protocol();
        watchdog(|w| w.held(self.context, now, protocol));
        self.watched = true;
    }

    fn unwatch(&mut self) {
        if std::mem::take(&mut self.watched) {
            watchdog(|w| w.gone(self.context));
        }
    }

    fn finish_headers(&self, direction: Direction, action: Action) -> SdkAction {
        let out = self.host.settle(action);
        if out == SdkAction::Continue {
            self.host.update_gate(|g| g.release(direction));
        }
        out
    }
}

impl<P: Plugin> Context for Stream<P> {
    fn on_http_call_response(
        &mut self,
        token: u32,
        num_headers: usize,
        body_size: usize,
        _: usize,
    ) {
        let reply = Reply::Http(call_response(num_headers, body_size));
        self.driver.on_reply(&self.host, token, reply);
        self.after_callout();
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let reply = grpc_reply(status, size);
        self.driver.on_reply(&self.host, token, reply);
        self.after_callout();
    }

    /// Higress: a Redis answer, handed over through the SDK's dispatch (see `higress_abi`).
    #[cfg(feature = "higress")]
    fn on_foreign_function(&mut self, function_id: u32, _arguments_size: usize) {
        if let Some((token, reply)) = crate::higress_abi::take_answer(function_id) {
            self.driver.on_reply(&self.host, token, Reply::Redis(reply));
            self.after_callout();
        }
    }

    fn on_done(&mut self) -> bool {
        self.unwatch();
        self.driver.on_done();
        #[cfg(feature = "higress")]
        crate::higress_abi::forget(self.context);
        true
    }
}

impl<P: Plugin> HttpContext for Stream<P> {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> SdkAction {
        self.host.update_gate(|g| g.open(MapKind::RequestHeaders));
        let action = self.driver.on_request_headers(&self.host, end_of_stream);
        self.watch(action, end_of_stream);
        self.finish_headers(Direction::Request, action)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> SdkAction {
        if std::mem::take(&mut self.watched) {
            watchdog(|w| w.body(self.context));
        }
        self.host.request_body_size.set(body_size);
        let action = self
            .driver
            .on_request_body(&self.host, body_size, end_of_stream);
        // Headers held by an earlier Pause travel on with the body when it continues.
        self.finish_headers(Direction::Request, action)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> SdkAction {
        self.host.update_gate(|g| g.open(MapKind::RequestTrailers));
        if std::mem::take(&mut self.watched) {
            watchdog(|w| w.body(self.context));
        }
        let action = self.driver.on_request_trailers(&self.host);
        self.finish_headers(Direction::Request, action)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> SdkAction {
        self.host.update_gate(|g| g.open(MapKind::ResponseHeaders));
        let action = self.driver.on_response_headers(&self.host, end_of_stream);
        self.finish_headers(Direction::Response, action)
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> SdkAction {
        self.host.response_body_size.set(body_size);
        let action = self
            .driver
            .on_response_body(&self.host, body_size, end_of_stream);
        self.finish_headers(Direction::Response, action)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> SdkAction {
        self.host.update_gate(|g| g.open(MapKind::ResponseTrailers));
        let action = self.driver.on_response_trailers(&self.host);
        self.finish_headers(Direction::Response, action)
    }

    fn on_log(&mut self) {
        // Envoy lets on_log read both header maps through its access-log handles.
        self.host.update_gate(|g| {
            g.open(MapKind::RequestHeaders);
            g.open(MapKind::ResponseHeaders);
        });
        self.unwatch();
        self.driver.on_log(&self.host);
    }
}
