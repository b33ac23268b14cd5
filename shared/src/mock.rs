//! An in-memory [`Host`] with Envoy's phase and buffer rules, plus runners that push requests
//! through a plugin the way Envoy would ([`Exchange`] for one request, [`Gateway`] for a worker
//! that keeps its state, ticks and answers callouts across requests). For native plugin tests
//! (`features = ["mock"]`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use crate::host::{
    Action, BufferKind, Capabilities, Direction, HeaderPair, Host, HostError, LogLevel, MapKind,
    MetricKind, PhaseGate,
};
use crate::plugin::{FilterDriver, FilterEnv, Plugin, RootDriver};

/// A local reply a filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (names as given).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What kind of callout a [`Callout`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalloutKind {
    /// An HTTP callout.
    Http,
    /// A gRPC call to `service`/`method` (the message is in `body`).
    Grpc {
        /// The service.
        service: String,
        /// The method.
        method: String,
    },
    /// A Redis command (Higress; its RESP bytes are in `body`).
    Redis,
}

/// A callout a filter (or the root) started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// Token returned to the filter.
    pub token: u32,
    /// HTTP or gRPC.
    pub kind: CalloutKind,
    /// Upstream (cluster) name.
    pub upstream: String,
    /// Headers, pseudo-headers included.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body, if any.
    pub body: Option<Vec<u8>>,
    /// Timeout.
    pub timeout: Duration,
}

/// One metric's recorded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricState {
    /// Its kind.
    pub kind: MetricKind,
    /// Counter or gauge value.
    pub value: i64,
    /// Histogram samples.
    pub samples: Vec<u64>,
}

/// Shared data as all "workers" of one plugin see it: key -> (value, cas).
pub type SharedStore = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

/// Everything the mock host holds; public so tests can arrange and inspect it.
#[derive(Debug, Default)]
pub struct MockState {
    /// Which header maps are reachable now.
    pub gate: PhaseGate,
    /// Request headers.
    pub request_headers: Vec<(String, Vec<u8>)>,
    /// Response headers.
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// Request trailers.
    pub request_trailers: Vec<(String, Vec<u8>)>,
    /// Response trailers.
    pub response_trailers: Vec<(String, Vec<u8>)>,
    /// Shared queues by id: (name, messages).
    pub queues: BTreeMap<u32, (String, VecDeque<Vec<u8>>)>,
    /// The request body the host currently buffers.
    pub request_body: Vec<u8>,
    /// The response body the host currently buffers.
    pub response_body: Vec<u8>,
    /// Properties by path.
    pub properties: HashMap<Vec<String>, Vec<u8>>,
    /// Metrics by name, and names by id.
    pub metrics: BTreeMap<String, MetricState>,
    metric_names: Vec<String>,
    /// Log lines.
    pub logs: Vec<(LogLevel, String)>,
    /// The local reply, if one was sent.
    pub local_response: Option<LocalResponse>,
    /// Callouts started, in order.
    pub callouts: Vec<Callout>,
    /// Clusters `redis_init` connected (Higress).
    pub redis_clusters: Vec<String>,
    /// What `upstream_hosts` answers (Higress): `(address, JSON)` pairs.
    pub upstream_hosts: Vec<(String, String)>,
    /// Directions resumed, in order.
    pub resumed: Vec<Direction>,
    /// The clock, in nanoseconds.
    pub now_nanos: u64,
}

/// An in-memory host.
#[derive(Debug)]
pub struct MockHost {
    /// The state, for arranging and inspecting.
    pub state: RefCell<MockState>,
    /// Shared data (clone the `Rc` into another `MockHost` to play a second worker).
    pub shared: SharedStore,
    /// Capabilities this host claims.
    pub caps: Capabilities,
}

impl Default for MockHost {
    fn default() -> Self {
        Self::new(Capabilities::FULL)
    }
}

impl MockHost {
    /// A host with the given capabilities and its own shared-data store.
    pub fn new(caps: Capabilities) -> Self {
        let state = MockState {
            now_nanos: 1_700_000_000_000_000_000,
            ..MockState::default()
        };
        Self {
            state: RefCell::new(state),
            shared: SharedStore::default(),
            caps,
        }
    }

    /// Log lines at or above `level`, as text.
    pub fn logs_at_least(&self, level: LogLevel) -> Vec<String> {
        let st = self.state.borrow();
        st.logs
            .iter()
            .filter(|(l, _)| *l >= level)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// A metric's counter/gauge value.
    pub fn metric_value(&self, name: &str) -> Option<i64> {
        self.state.borrow().metrics.get(name).map(|m| m.value)
    }

    fn map_mut<R>(
        &self,
        map: MapKind,
        f: impl FnOnce(&mut Vec<(String, Vec<u8>)>) -> R,
    ) -> Result<R, HostError> {
        let mut st = self.state.borrow_mut();
        st.gate.check(map)?;
        match map {
            MapKind::RequestHeaders => Ok(f(&mut st.request_headers)),
            MapKind::ResponseHeaders => Ok(f(&mut st.response_headers)),
            MapKind::RequestTrailers => Ok(f(&mut st.request_trailers)),
            MapKind::ResponseTrailers => Ok(f(&mut st.response_trailers)),
        }
    }

    fn body_mut<R>(&self, kind: BufferKind, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut st = self.state.borrow_mut();
        match kind {
            BufferKind::RequestBody => f(&mut st.request_body),
            BufferKind::ResponseBody => f(&mut st.response_body),
        }
    }
}

impl Host for MockHost {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_owned()));
    }

    fn now_nanos(&self) -> Option<u64> {
        self.caps.clock.then(|| self.state.borrow().now_nanos)
    }

    fn header(&self, map: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.map_mut(map, |m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    }

    fn headers(&self, map: MapKind) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        self.map_mut(map, |m| m.clone())
    }

    fn set_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.map_mut(map, |m| {
            m.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            m.push((name.to_ascii_lowercase(), value.to_vec()));
        })
    }

    fn add_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError> {
        self.map_mut(map, |m| m.push((name.to_ascii_lowercase(), value.to_vec())))
    }

    fn remove_header(&self, map: MapKind, name: &str) -> Result<(), HostError> {
        self.map_mut(map, |m| m.retain(|(k, _)| !k.eq_ignore_ascii_case(name)))
    }

    fn body(
        &self,
        kind: BufferKind,
        start: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.body_mut(kind, |b| {
            let end = start.saturating_add(len).min(b.len());
            b.get(start..end)
                .filter(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
        }))
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
        self.body_mut(kind, |b| {
            if start == 0 {
                let cut = len.min(b.len());
                b.splice(..cut, data.iter().copied());
                Ok(())
            } else if start >= b.len() {
                b.extend_from_slice(data);
                Ok(())
            } else {
                Err(HostError::BadArgument(
                    "Envoy writes bodies only at 0 or at the end",
                ))
            }
        })
    }

    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        Ok(self.state.borrow().properties.get(&key).cloned())
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.state
            .borrow_mut()
            .properties
            .insert(key, value.to_vec());
        Ok(())
    }

    fn http_call(
        &self,
        upstream: &str,
        headers: &[HeaderPair<'_>],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        for required in [":method", ":path", ":authority"] {
            if !headers.iter().any(|(k, _)| *k == required) {
                return Err(HostError::BadArgument(
                    "callout needs :method, :path and :authority",
                ));
            }
        }
        let mut st = self.state.borrow_mut();
        let token = 4 * (st.callouts.len() as u32 + 1);
        st.callouts.push(Callout {
            token,
            kind: CalloutKind::Http,
            upstream: upstream.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            body: body.map(<[u8]>::to_vec),
            timeout,
        });
        Ok(token)
    }

    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError> {
        if !self.caps.shared_data {
            return Err(HostError::Unsupported);
        }
        Ok(match self.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        if !self.caps.shared_data {
            return Err(HostError::Unsupported);
        }
        let mut store = self.shared.borrow_mut();
        let next = match store.get(key) {
            Some((_, current)) if cas.is_some_and(|c| c != 0 && c != *current) => {
                return Err(HostError::CasMismatch)
            }
            Some((_, current)) => current.wrapping_add(1).max(1),
            None => 1,
        };
        store.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let mut st = self.state.borrow_mut();
        if let Some(pos) = st.metric_names.iter().position(|n| n == name) {
            return Ok(pos as u32 + 1);
        }
        st.metric_names.push(name.to_owned());
        st.metrics.insert(
            name.to_owned(),
            MetricState {
                kind,
                value: 0,
                samples: Vec::new(),
            },
        );
        Ok(st.metric_names.len() as u32)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError> {
        self.with_metric(id, |m| match m.kind {
            MetricKind::Counter if delta <= 0 => {
                Err(HostError::BadArgument("counter delta must be > 0"))
            }
            MetricKind::Histogram => Err(HostError::BadArgument(
                "histograms are recorded, not incremented",
            )),
            _ => {
                m.value = m.value.saturating_add(delta);
                Ok(())
            }
        })
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError> {
        self.with_metric(id, |m| {
            let v = i64::try_from(value).unwrap_or(i64::MAX);
            match m.kind {
                MetricKind::Counter => m.value = m.value.saturating_add(v),
                MetricKind::Gauge => m.value = v,
                MetricKind::Histogram => m.samples.push(value),
            }
            Ok(())
        })
    }

    fn send_local_response(
        &self,
        status: u16,
        headers: &[HeaderPair<'_>],
        body: &[u8],
    ) -> Result<(), HostError> {
        let mut st = self.state.borrow_mut();
        st.local_response = Some(LocalResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_ascii_lowercase(), v.to_vec()))
                .collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn resume(&self, direction: Direction) -> Result<(), HostError> {
        let mut st = self.state.borrow_mut();
        st.gate.release(direction);
        st.resumed.push(direction);
        Ok(())
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
        let mut st = self.state.borrow_mut();
        let token = 4 * (st.callouts.len() as u32 + 1) + 1;
        st.callouts.push(Callout {
            token,
            kind: CalloutKind::Grpc {
                service: service.to_owned(),
                method: method.to_owned(),
            },
            upstream: upstream.to_owned(),
            headers: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
            body: Some(message.to_vec()),
            timeout,
        });
        Ok(token)
    }

    fn redis_init(
        &self,
        cluster: &str,
        _username: &str,
        _password: &str,
        _timeout: Duration,
    ) -> Result<(), HostError> {
        if !self.caps.redis {
            return Err(HostError::Unsupported);
        }
        self.state
            .borrow_mut()
            .redis_clusters
            .push(cluster.to_owned());
        Ok(())
    }

    fn upstream_hosts(&self) -> Result<Vec<(String, String)>, HostError> {
        if !self.caps.override_host {
            return Err(HostError::Unsupported);
        }
        Ok(self.state.borrow().upstream_hosts.clone())
    }

    fn redis_call(&self, cluster: &str, query: &[u8]) -> Result<u32, HostError> {
        if !self.caps.redis {
            return Err(HostError::Unsupported);
        }
        let mut st = self.state.borrow_mut();
        let token = 4 * (st.callouts.len() as u32 + 1) + 3;
        st.callouts.push(Callout {
            token,
            kind: CalloutKind::Redis,
            upstream: cluster.to_owned(),
            headers: Vec::new(),
            body: Some(query.to_vec()),
            timeout: Duration::ZERO,
        });
        Ok(token)
    }

    fn register_queue(&self, name: &str) -> Result<u32, HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        let mut st = self.state.borrow_mut();
        if let Some((id, _)) = st.queues.iter().find(|(_, (n, _))| n == name) {
            return Ok(*id);
        }
        let id = st.queues.len() as u32 + 1;
        st.queues.insert(id, (name.to_owned(), VecDeque::new()));
        Ok(id)
    }

    fn resolve_queue(&self, name: &str) -> Result<Option<u32>, HostError> {
        if !self.caps.queues {
            return Err(HostError::Unsupported);
        }
        let st = self.state.borrow();
        Ok(st
            .queues
            .iter()
            .find(|(_, (n, _))| n == name)
            .map(|(id, _)| *id))
    }

    fn enqueue(&self, queue: u32, message: &[u8]) -> Result<(), HostError> {
        match self.state.borrow_mut().queues.get_mut(&queue) {
            Some((_, q)) => {
                q.push_back(message.to_vec());
                Ok(())
            }
            None => Err(HostError::Status(1)),
        }
    }

    fn dequeue(&self, queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        match self.state.borrow_mut().queues.get_mut(&queue) {
            Some((_, q)) => Ok(q.pop_front()),
            None => Err(HostError::Status(1)),
        }
    }
}

impl MockHost {
    fn with_metric(
        &self,
        id: u32,
        f: impl FnOnce(&mut MetricState) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        let mut st = self.state.borrow_mut();
        let name = st
            .metric_names
            .get((id as usize).wrapping_sub(1))
            .cloned()
            .ok_or(HostError::Status(1))?;
        match st.metrics.get_mut(&name) {
            Some(m) => f(m),
            None => Err(HostError::Status(1)),
        }
    }
}

pub mod fuzz;
mod gateway;
mod run;
pub use gateway::{Answer, Gateway};
pub use run::{Exchange, Outcome, UpstreamReply};

/// Build a driver for plugin `P` from JSON config text, with a fresh worker state; panics on bad
/// config (tests only).
pub fn driver<P: Plugin>(config_json: &str, caps: Capabilities) -> FilterDriver<P> {
    root::<P>(config_json, caps).new_stream()
}

/// The root (config and worker state) of plugin `P`; panics on bad config (tests only).
pub fn root<P: Plugin>(config_json: &str, caps: Capabilities) -> RootDriver<P> {
    match RootDriver::<P>::configure(config_json.as_bytes(), FilterEnv { capabilities: caps }) {
        Ok(r) => r,
        Err(e) => unreachable_config(&e.to_string()),
    }
}

#[allow(clippy::panic)]
fn unreachable_config(message: &str) -> ! {
    panic!("test config rejected: {message}")
}

/// The `Action` a callback must effectively return: a local reply forces Stop, as in Envoy.
pub(crate) fn effective(host: &MockHost, action: Action) -> Action {
    if host.state.borrow().local_response.is_some() {
        Action::Pause
    } else {
        action
    }
}
