//! A mock worker of ai-usage-stats that keeps its state, host, metrics and clock across
//! requests, and drives one request phase by phase with the clock moved between chunks (the mock
//! `Exchange` cannot move the clock inside a request).
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use ai_usage_stats::UsageStats;
use aigw_shared::host::{Capabilities, Direction, LogLevel, MapKind};
use aigw_shared::mock::{self, MockHost};
use aigw_shared::plugin::RootDriver;

/// A fixture of this crate (`testdata/<name>`) or, with `providers/`, a recorded provider sample.
pub fn fixture(name: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("providers/") {
        Some(rest) => root.join("../../testdata/providers").join(rest),
        None => root.join("testdata").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One request as the test scripts it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub request_chunk: usize,
    /// Upstream latency before the response headers.
    pub wait: Duration,
    pub status: u16,
    pub content_type: String,
    /// Response chunks, each after a pause.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// The response ends (false: the stream is logged before its end, e.g. the client left).
    pub ends: bool,
    pub route: Option<String>,
    pub cluster: Option<String>,
    /// Both directions end with trailers instead of a last body chunk.
    pub trailers: bool,
    /// Extra response headers.
    pub response_headers: Vec<(String, String)>,
}

impl Call {
    pub fn chat(body: &[u8]) -> Self {
        Self {
            path: "/v1/chat/completions".into(),
            headers: Vec::new(),
            body: body.to_vec(),
            request_chunk: 7,
            wait: Duration::from_millis(100),
            status: 200,
            content_type: "application/json".into(),
            chunks: Vec::new(),
            ends: true,
            route: Some("chat".into()),
            cluster: Some("openai".into()),
            trailers: false,
            response_headers: Vec::new(),
        }
    }

    pub fn response_header(mut self, k: &str, v: &str) -> Self {
        self.response_headers.push((k.into(), v.into()));
        self
    }

    pub fn path(mut self, p: &str) -> Self {
        self.path = p.into();
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn json(mut self, status: u16, body: &[u8]) -> Self {
        self.status = status;
        self.content_type = "application/json".into();
        self.chunks = vec![(Duration::ZERO, body.to_vec())];
        self
    }

    /// An SSE answer split at event boundaries, `gap` between events.
    pub fn sse(mut self, body: &[u8], gap: Duration) -> Self {
        self.content_type = "text/event-stream".into();
        let text = String::from_utf8_lossy(body).into_owned();
        self.chunks = text
            .split_inclusive("\n\n")
            .map(|e| (gap, e.as_bytes().to_vec()))
            .collect();
        self
    }

    pub fn cluster(mut self, c: Option<&str>) -> Self {
        self.cluster = c.map(str::to_owned);
        self
    }

    pub fn route(mut self, r: Option<&str>) -> Self {
        self.route = r.map(str::to_owned);
        self
    }

    pub fn with_trailers(mut self) -> Self {
        self.trailers = true;
        self
    }

    pub fn unfinished(mut self) -> Self {
        self.ends = false;
        self
    }
}

/// One worker.
pub struct Worker {
    pub root: RootDriver<UsageStats>,
    pub host: MockHost,
}

impl Worker {
    pub fn new(config: &str) -> Self {
        Self::with_caps(config, Capabilities::FULL)
    }

    pub fn with_caps(config: &str, caps: Capabilities) -> Self {
        Self {
            root: mock::root::<UsageStats>(config, caps),
            host: MockHost::new(caps),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut st = self.host.state.borrow_mut();
        st.now_nanos += u64::try_from(by.as_nanos()).unwrap();
    }

    /// Run `call`; returns what passed to the client (the body must be untouched).
    pub fn run(&mut self, call: &Call) {
        let host = &self.host;
        {
            let mut st = host.state.borrow_mut();
            st.properties.clear();
            if let Some(r) = &call.route {
                st.properties.insert(
                    vec!["xds".into(), "route_name".into()],
                    r.as_bytes().to_vec(),
                );
            }
            if let Some(c) = &call.cluster {
                st.properties.insert(
                    vec!["xds".into(), "cluster_name".into()],
                    c.as_bytes().to_vec(),
                );
            }
            let mut h = vec![
                (":method".to_owned(), b"POST".to_vec()),
                (":path".to_owned(), call.path.as_bytes().to_vec()),
                ("content-type".to_owned(), b"application/json".to_vec()),
            ];
            h.extend(
                call.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
            );
            st.request_headers = h;
            st.response_headers.clear();
            st.gate.open(MapKind::RequestHeaders);
        }
        let mut drv = self.root.new_stream();
        let a = drv.on_request_headers(host, call.body.is_empty() && !call.trailers);
        assert_eq!(a, aigw_shared::host::Action::Continue, "never holds");
        host.state.borrow_mut().gate.release(Direction::Request);
        let chunks: Vec<&[u8]> = call.body.chunks(call.request_chunk.max(1)).collect();
        for (i, c) in chunks.iter().enumerate() {
            host.state.borrow_mut().request_body = c.to_vec();
            let a = drv.on_request_body(host, c.len(), i + 1 == chunks.len() && !call.trailers);
            assert_eq!(a, aigw_shared::host::Action::Continue, "never holds");
        }
        if call.trailers {
            drv.on_request_trailers(host);
        }
        self.advance(call.wait);
        {
            let mut st = host.state.borrow_mut();
            st.response_headers = vec![
                (":status".to_owned(), call.status.to_string().into_bytes()),
                (
                    "content-type".to_owned(),
                    call.content_type.as_bytes().to_vec(),
                ),
            ];
            st.response_headers.extend(
                call.response_headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
            );
            st.gate.open(MapKind::ResponseHeaders);
        }
        let a =
            drv.on_response_headers(host, call.chunks.is_empty() && call.ends && !call.trailers);
        assert_eq!(a, aigw_shared::host::Action::Continue, "never holds");
        host.state.borrow_mut().gate.release(Direction::Response);
        let n = call.chunks.len();
        for (i, (gap, c)) in call.chunks.iter().enumerate() {
            self.advance(*gap);
            host.state.borrow_mut().response_body = c.clone();
            let a = drv.on_response_body(host, c.len(), call.ends && i + 1 == n && !call.trailers);
            assert_eq!(a, aigw_shared::host::Action::Continue, "never holds");
        }
        if call.ends && call.trailers {
            self.advance(call.wait);
            drv.on_response_trailers(host);
        }
        drv.on_log(host);
    }

    /// A metric of the series `provider/model/route/consumer` (`p.m.r.c` labels), by suffix.
    pub fn counter(&self, labels: &str, suffix: &str) -> Option<i64> {
        self.host.metric_value(&name(labels, suffix))
    }

    pub fn samples(&self, labels: &str, suffix: &str) -> Vec<u64> {
        self.host
            .state
            .borrow()
            .metrics
            .get(&name(labels, suffix))
            .map(|m| m.samples.clone())
            .unwrap_or_default()
    }

    /// The audit records logged so far, parsed.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.host
            .state
            .borrow()
            .logs
            .iter()
            .filter(|(l, _)| *l == LogLevel::Info)
            .filter_map(|(_, m)| m.strip_prefix("ai-usage-stats: "))
            .map(|j| serde_json::from_str(j).unwrap())
            .collect()
    }

    /// The audit record in filter state.
    pub fn filter_state(&self, key: &str) -> Option<serde_json::Value> {
        let st = self.host.state.borrow();
        st.properties
            .get(&vec![key.to_owned()])
            .map(|v| serde_json::from_slice(v).unwrap())
    }
}

/// `provider.p.model.m.route.r.consumer.c` from `"p/m/r/c"`, then the suffix.
pub fn name(labels: &str, suffix: &str) -> String {
    let v: Vec<&str> = labels.split('/').collect();
    format!(
        "aigw.gen_ai.provider.{}.model.{}.route.{}.consumer.{}.{suffix}",
        v[0], v[1], v[2], v[3]
    )
}
