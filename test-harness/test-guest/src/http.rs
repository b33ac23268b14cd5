//! The HTTP context of the test guest: each op named in `x-guest-op` exercises some imports.

use crate::{bump_shared_counter, Metrics};
use log::{debug, error, info, trace, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::time::{Duration, UNIX_EPOCH};

pub(crate) struct Stream {
    id: u32,
    metrics: Metrics,
    config: String,
    ops: Vec<String>,
    call_cluster: String,
    call_body: String,
}

impl Stream {
    pub(crate) fn new(id: u32, metrics: Metrics, config: String) -> Stream {
        Stream {
            id,
            metrics,
            config,
            ops: Vec::new(),
            call_cluster: String::new(),
            call_body: String::new(),
        }
    }

    fn has(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }

    fn header_ops(&mut self) -> Action {
        if self.has("log") {
            trace!("trace line");
            debug!("debug line");
            info!("info line");
            warn!("warn line");
            error!("error line");
        }
        if self.has("time") {
            let ns = self
                .get_current_time()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            info!("time={ns}");
        }
        if self.has("headers") {
            self.edit_request_headers();
        }
        if self.has("pairs") {
            let mut all = self.get_http_request_headers();
            all.push(("x-pairs".into(), "yes".into()));
            let refs: Vec<(&str, &str)> =
                all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.set_http_request_headers(refs);
        }
        if self.has("props") {
            self.properties();
        }
        if self.has("shared") {
            self.shared_data();
        }
        if self.has("queue") {
            let id = self.resolve_shared_queue("", "events");
            let value = self
                .get_http_request_header("x-queue-value")
                .unwrap_or_default();
            info!(
                "enqueue to {id:?}: {:?}",
                id.map(|q| self.enqueue_shared_queue(q, Some(value.as_bytes())))
            );
        }
        if self.has("metrics") {
            self.metrics();
        }
        if self.has("metric-zero") {
            hostcalls::increment_metric(self.metrics.requests, 0).unwrap();
        }
        if self.has("effective") {
            info!(
                "effective self: {:?}",
                hostcalls::set_effective_context(self.id)
            );
            info!(
                "effective unknown: {:?}",
                hostcalls::set_effective_context(9999)
            );
        }
        if self.has("foreign") {
            info!(
                "foreign echo: {:?}",
                self.call_foreign_function("echo", Some(b"abc"))
            );
            info!(
                "foreign missing: {:?}",
                self.call_foreign_function("nope", None)
            );
        }
        if self.has("done") {
            self.done();
        }
        if self.has("panic") {
            panic!("guest panic on purpose");
        }
        if self.has("spin") {
            // A runaway loop: only the harness time limit ends it.
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if self.has("hog") {
            // Allocates without bound: only the harness memory cap ends it.
            let mut kept: Vec<Vec<u8>> = Vec::new();
            loop {
                kept.push(std::hint::black_box(vec![1u8; 4 << 20]));
            }
        }
        if self.has("bad-header") {
            // Header values with CR/LF and NUL (Envoy accepts them with OK).
            self.set_http_request_header("x-bad", Some("a\r\nx-injected: 1"));
            self.add_http_request_header("x-nul", "a\0b");
        }
        if self.has("bad-local") {
            self.send_http_response(400, vec![("x-bad", "v\r\nx-injected: 1")], Some(b"bad"));
            return Action::Continue;
        }
        if self.has("apisix-body") {
            self.set_property(vec!["wasm_process_req_body"], Some(b"1"));
        }
        if self.has("local") {
            self.send_http_response(403, vec![("x-guest-denied", "1")], Some(b"denied by guest"));
            return Action::Continue; // the host must still stop the stream
        }
        if self.has("close") {
            self.reset_http_request();
            return Action::Pause;
        }
        if self.has("call") || self.has("call-root") {
            return self.dispatch();
        }
        if self.has("grpc") {
            return self.grpc();
        }
        if self.has("pause-headers") {
            return Action::Pause;
        }
        Action::Continue
    }

    fn edit_request_headers(&self) {
        self.set_http_request_header("x-guest-set", Some("1"));
        self.add_http_request_header("x-guest-added", "a");
        self.add_http_request_header("x-guest-added", "b");
        self.remove_http_request_header("x-remove-me");
        self.set_http_request_header("x-replace", Some("new"));
        let path = self.get_http_request_header(":path");
        let missing = self.get_http_request_header("x-absent");
        let empty = self.get_http_request_header("x-empty");
        info!(
            "path={path:?} missing={missing:?} empty={empty:?} count={}",
            self.get_http_request_headers().len()
        );
    }

    fn properties(&self) {
        let path = self
            .get_property(vec!["request", "path"])
            .map(|b| String::from_utf8(b).unwrap());
        let root = self
            .get_property(vec!["plugin_root_id"])
            .map(|b| String::from_utf8(b).unwrap());
        let dotted = self.get_property(vec!["request.path"]);
        self.set_property(vec!["guest", "mark"], Some(b"yes"));
        let mark = self
            .get_property(vec!["guest", "mark"])
            .map(|b| String::from_utf8(b).unwrap());
        info!("props path={path:?} root={root:?} dotted={dotted:?} mark={mark:?}");
    }

    fn shared_data(&self) {
        let value = self
            .get_http_request_header("x-shared-value")
            .unwrap_or_default();
        let (_, cas) = self.get_shared_data("k");
        info!(
            "shared set: {:?}",
            self.set_shared_data("k", Some(value.as_bytes()), cas)
        );
        let stale = cas.map(|c| c.wrapping_add(100)).or(Some(12345));
        info!(
            "shared stale cas: {:?}",
            self.set_shared_data("k", Some(b"stale"), stale)
        );
        let (now, _) = self.get_shared_data("k");
        info!(
            "shared now: {:?}",
            now.map(|b| String::from_utf8(b).unwrap())
        );
        info!("shared counter: {}", bump_shared_counter(self, "requests"));
    }

    fn metrics(&self) {
        let m = self.metrics;
        hostcalls::increment_metric(m.requests, 1).unwrap();
        hostcalls::record_metric(m.requests, 2).unwrap();
        hostcalls::increment_metric(m.active, 5).unwrap();
        hostcalls::increment_metric(m.active, -2).unwrap();
        hostcalls::record_metric(m.sizes, 42).unwrap();
        info!(
            "histogram increment: {:?}",
            hostcalls::increment_metric(m.sizes, 1)
        );
        info!(
            "unknown metric: {:?}",
            hostcalls::increment_metric(m.requests + 400, 1)
        );
    }

    fn dispatch(&mut self) -> Action {
        let cluster = self.call_cluster.clone();
        let timeout = if self.has("call-huge-timeout") {
            Duration::from_secs(3_000_000)
        } else {
            Duration::from_secs(1)
        };
        let body = self.call_body.clone();
        let result = self.dispatch_http_call(
            &cluster,
            vec![
                (":method", "POST"),
                (":path", "/check"),
                (":authority", "svc"),
                ("x-from", "guest"),
            ],
            Some(body.as_bytes()),
            vec![],
            timeout,
        );
        info!("dispatched: {result:?}");
        match result {
            Ok(_) => Action::Pause,
            Err(_) => Action::Continue,
        }
    }

    fn grpc(&mut self) -> Action {
        let call = self.dispatch_grpc_call(
            "grpc-svc",
            "pkg.Svc",
            "Check",
            vec![],
            Some(b"msg"),
            Duration::from_secs(1),
        );
        info!("grpc call: {call:?}");
        let stream = self.open_grpc_stream("grpc-svc", "pkg.Svc", "Watch", vec![]);
        info!("grpc stream: {stream:?}");
        if let Ok(token) = stream {
            self.send_grpc_stream_message(token, Some(b"hello"), false);
        }
        match call {
            Ok(_) => Action::Pause,
            Err(_) => Action::Continue,
        }
    }

    fn body_ops(&mut self, size: usize, eos: bool, response: bool) -> Action {
        let tag = if response { "response" } else { "request" };
        info!("{tag} body size={size} eos={eos}");
        if !response && self.has("late-header-edit") {
            self.set_http_request_header("x-late", Some("1"));
        }
        if !response && self.has("bad-body-write") {
            self.set_http_request_body(1, 0, b"x");
        }
        if !response && self.has("set-buffer") {
            self.set_http_request_body(0, size, b"replaced");
        }
        let buffer = if response {
            self.has("buffer-response")
        } else {
            self.has("buffer-body")
        };
        if !buffer {
            return Action::Continue;
        }
        if !eos {
            return Action::Pause;
        }
        let body = if response {
            self.get_http_response_body(0, size)
        } else {
            self.get_http_request_body(0, size)
        };
        let upper = body.unwrap_or_default().to_ascii_uppercase();
        if response {
            self.set_http_response_body(0, size, &upper);
            self.set_http_response_body(upper.len(), 0, b"!");
        } else {
            self.set_http_request_body(0, size, &upper);
            self.set_http_request_body(upper.len(), 0, b"!");
        }
        if self.has("call-at-eos") {
            return self.dispatch();
        }
        Action::Continue
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, _trailers: usize) {
        info!("call response token={token} headers={headers} body={body}");
        if headers == 0 {
            let (code, message) = self.get_grpc_status();
            info!("call failed: status={code} message={message:?}");
        } else {
            let status = self
                .get_http_call_response_header(":status")
                .unwrap_or_default();
            let text = self
                .get_http_call_response_body(0, body)
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            info!("call status={status} body={text:?}");
            if self.has("call") && !self.has("call-at-eos") {
                self.set_http_request_header("x-call-status", Some(&status));
            }
            if status == "403" {
                self.send_http_response(403, vec![], Some(b"callout denied"));
                return;
            }
        }
        self.resume_http_request();
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let (code, message) = self.get_grpc_status();
        info!("grpc response token={token} status={status} size={size} get_status=({code},{message:?})");
        self.resume_http_request();
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        info!("grpc stream closed token={token} status={status}");
    }

    fn on_done(&mut self) -> bool {
        info!("stream {} done", self.id);
        true
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, num_headers: usize, eos: bool) -> Action {
        let ops = self
            .get_http_request_header("x-guest-op")
            .unwrap_or_default();
        self.ops = ops
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        // `ops=a|b` in the plugin configuration adds ops for every request (chain tests).
        let configured = self
            .config
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("ops="));
        self.ops.extend(
            configured
                .unwrap_or_default()
                .split('|')
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        // Request headers are unavailable after this callback continues: cache what later phases need.
        self.call_cluster = self
            .get_http_request_header("x-call-cluster")
            .unwrap_or_else(|| "upstream-svc".into());
        self.call_body = self
            .get_http_request_header("x-call-body")
            .unwrap_or_default();
        info!(
            "request headers n={num_headers} eos={eos} ops={:?} config={}",
            self.ops, self.config
        );
        let action = self.header_ops();
        info!("request headers returning {action:?}");
        action
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        self.body_ops(size, eos, false)
    }

    fn on_http_response_headers(&mut self, num_headers: usize, eos: bool) -> Action {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        info!("response headers n={num_headers} eos={eos} status={status}");
        if self.has("response-header") {
            self.set_http_response_header("x-guest-response", Some("1"));
        }
        if self.has("late-response-edit") {
            return Action::Continue;
        }
        if self.has("response-local") {
            self.send_http_response(502, vec![], Some(b"rewritten by guest"));
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        if self.has("late-response-edit") {
            self.set_http_response_header("x-too-late", Some("1"));
        }
        self.body_ops(size, eos, true)
    }

    fn on_http_request_trailers(&mut self, num_trailers: usize) -> Action {
        let seen = self
            .get_http_request_trailer("x-client-trailer")
            .unwrap_or_default();
        info!("request trailers n={num_trailers} x-client-trailer={seen}");
        if self.has("trailers-panic") {
            panic!("guest panic in request trailers");
        }
        if self.has("trailers-edit") {
            self.set_http_request_trailer("x-guest-trailer", Some("1"));
            self.remove_http_request_trailer("x-remove-trailer");
        }
        if self.has("trailers-body") {
            // The body buffered by earlier Pauses is still readable and replaceable here.
            let body = self
                .get_http_request_body(0, usize::MAX)
                .unwrap_or_default();
            info!(
                "trailers see buffered body {:?}",
                String::from_utf8_lossy(&body)
            );
            self.set_http_request_body(0, body.len(), &body.to_ascii_uppercase());
        }
        if self.has("call-at-trailers") {
            return self.dispatch();
        }
        if self.has("pause-trailers") {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, num_trailers: usize) -> Action {
        let status = self
            .get_http_response_trailer("grpc-status")
            .unwrap_or_default();
        info!("response trailers n={num_trailers} grpc-status={status}");
        if self.has("response-trailers-edit") {
            self.set_http_response_trailer("x-guest-response-trailer", Some("1"));
        }
        if self.has("response-trailers-body") {
            let body = self
                .get_http_response_body(0, usize::MAX)
                .unwrap_or_default();
            self.set_http_response_body(0, body.len(), &body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        info!("on_log path={path}");
    }
}
