//! A test fixture guest for aigw-harness: every behaviour is chosen by the plugin configuration
//! (root context) or the `x-guest-op` request header (comma-separated ops), so the harness tests
//! can drive each import. Never shipped; it panics on purpose where a test wants a trap.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod http;

use log::{error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel, MetricType};
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// Metric ids defined at configure time.
#[derive(Default, Clone, Copy)]
pub(crate) struct Metrics {
    pub(crate) requests: u32,
    pub(crate) active: u32,
    pub(crate) sizes: u32,
}

#[derive(Default)]
struct Root {
    config: String,
    metrics: Metrics,
    queue: Option<u32>,
    ticks: u32,
}

impl Root {
    fn option(&self, key: &str) -> Option<&str> {
        self.config.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.trim() == key).then_some(v.trim())
        })
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _trailers: usize) {
        info!("root got call response token={token} headers={headers} body={body}");
    }

    fn on_done(&mut self) -> bool {
        info!("root on_done");
        self.option("defer-done").is_none()
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let vm = self
            .get_vm_configuration()
            .map(|b| String::from_utf8(b).unwrap());
        info!("vm_start vm_config={}", vm.unwrap_or_default());
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8(b).unwrap());
        self.config = config.unwrap_or_default();
        info!("configured: {}", self.config);
        if self.option("reject").is_some() {
            error!("rejecting configuration: reject flag set");
            return false;
        }
        if self.option("no-metrics").is_none() {
            self.metrics = Metrics {
                requests: hostcalls::define_metric(MetricType::Counter, "guest_requests").unwrap(),
                active: hostcalls::define_metric(MetricType::Gauge, "guest_active").unwrap(),
                sizes: hostcalls::define_metric(MetricType::Histogram, "guest_body_size").unwrap(),
            };
        }
        if let Some(ms) = self.option("tick").and_then(|v| v.parse().ok()) {
            self.set_tick_period(Duration::from_millis(ms));
        }
        if self.option("queue").is_some() {
            self.queue = Some(self.register_shared_queue("events"));
        }
        if self.option("configure-call").is_some() {
            let token = self.dispatch_http_call(
                "config-svc",
                vec![
                    (":method", "GET"),
                    (":path", "/config"),
                    (":authority", "config"),
                ],
                None,
                vec![],
                Duration::from_secs(1),
            );
            info!("configure dispatched: {token:?}");
        }
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        info!("tick {} at {now}", self.ticks);
        bump_shared_counter(self, "ticks");
        if self.option("done-on-tick").is_some() {
            self.done();
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = self.dequeue_shared_queue(queue_id) {
            info!("queue item: {}", String::from_utf8_lossy(&item));
        }
        match self.dequeue_shared_queue(queue_id + 1000) {
            Err(status) => info!("dequeue unknown queue: {status:?}"),
            Ok(v) => warn!("dequeue unknown queue gave {v:?}"),
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(http::Stream::new(
            context_id,
            self.metrics,
            self.config.clone(),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Increments a shared-data counter with CAS, retrying on mismatch; returns the new value.
pub(crate) fn bump_shared_counter(ctx: &dyn Context, key: &str) -> u64 {
    loop {
        let (value, cas) = ctx.get_shared_data(key);
        let n = value
            .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
            .unwrap_or(0)
            + 1;
        match ctx.set_shared_data(key, Some(n.to_string().as_bytes()), cas) {
            Ok(()) => return n,
            Err(status) => warn!("cas retry on {key}: {status:?}"),
        }
    }
}
