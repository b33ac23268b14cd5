//! The `Host` trait: everything a filter may ask of the gateway, answered with errors, never panics.
//!
//! Filters are written against `&dyn Host`. The proxy-wasm adapter implements it over the real ABI
//! (wasm32 only), the mock host implements it in memory for native tests. Both enforce the same
//! phase rules through [`PhaseGate`], so a filter that reads request headers after they were
//! released gets [`HostError::NotAvailable`] in a native test instead of a trap in Envoy.

use std::time::Duration;

/// Log severity, matching proxy-wasm's `proxy_log_level_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very verbose tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the filter handled.
    Warn,
    /// A failure that affected a request.
    Error,
    /// A failure that affects the plugin as a whole.
    Critical,
}

/// A header or trailer map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    /// Request headers (pseudo-headers included: `:path`, `:method`, `:authority`).
    RequestHeaders,
    /// Request trailers.
    RequestTrailers,
    /// Response headers (`:status` included).
    ResponseHeaders,
    /// Response trailers.
    ResponseTrailers,
}

/// A body buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    /// The request body (what has been buffered so far).
    RequestBody,
    /// The response body (the current chunk, or what has been buffered so far).
    ResponseBody,
}

/// Which direction of the stream an operation concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// Metric types, matching proxy-wasm's `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Monotonic counter.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution of samples.
    Histogram,
}

/// What a filter callback tells the host to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pass the headers or data on.
    Continue,
    /// Hold them. From a body callback this means "buffer and call me again with more".
    Pause,
}

/// Why a host call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The map or buffer does not exist in the current phase (Envoy answers BAD_ARGUMENT).
    #[error("not available in this phase")]
    NotAvailable,
    /// This host does not implement the operation (APISIX answers UNIMPLEMENTED).
    #[error("not supported by this host")]
    Unsupported,
    /// A compare-and-swap write lost the race.
    #[error("compare-and-swap mismatch")]
    CasMismatch,
    /// The host rejected an argument.
    #[error("bad argument: {0}")]
    BadArgument(&'static str),
    /// Any other status the host answered.
    #[error("host status {0}")]
    Status(u32),
}

/// What the running host can do; detected once by the adapter at configure time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Bodies can be rewritten (`proxy_set_buffer_bytes`). APISIX: no.
    pub body_write: bool,
    /// Shared data with compare-and-swap across workers. APISIX: no.
    pub shared_data: bool,
    /// A wall clock. APISIX: no.
    pub clock: bool,
    /// Timer ticks on the root context. APISIX: no.
    pub ticks: bool,
    /// gRPC calls to a cluster (`proxy_grpc_call`). Envoy and Higress: yes.
    pub grpc: bool,
    /// Shared queues across workers (`proxy_*_shared_queue`). APISIX: no.
    pub queues: bool,
    /// Redis commands (`proxy_redis_*`). Higress only (the Higress build).
    pub redis: bool,
    /// Choosing the upstream host per request (`proxy_set_upstream_override_host`) and listing
    /// the routed cluster's hosts (`proxy_get_upstream_hosts`). Higress only.
    pub override_host: bool,
}

impl Capabilities {
    /// Stock Envoy: everything but Higress's Redis and upstream-override imports.
    pub const FULL: Self = Self {
        body_write: true,
        shared_data: true,
        clock: true,
        ticks: true,
        grpc: true,
        queues: true,
        redis: false,
        override_host: false,
    };
    /// Higress: Envoy plus Redis and the upstream override host (the Higress build only).
    pub const HIGRESS: Self = Self {
        redis: true,
        override_host: true,
        ..Self::FULL
    };
    /// APISIX (wasm-nginx-module): read-only bodies, no shared data, no clock, no ticks, no gRPC.
    pub const APISIX: Self = Self {
        body_write: false,
        shared_data: false,
        clock: false,
        ticks: false,
        grpc: false,
        queues: false,
        redis: false,
        override_host: false,
    };
}

/// One header of an outgoing message: name and raw value.
pub type HeaderPair<'a> = (&'a str, &'a [u8]);

/// A finished HTTP callout as handed to the filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallResponse {
    /// `:status`, or `None` when the call failed without a response (reset, no upstream).
    pub status: Option<u16>,
    /// Response headers (lowercase names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl CallResponse {
    /// The first value of a header, by lowercase name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Everything a filter may ask of the gateway.
///
/// Every call returns a `Result`; none of them panics. Header names are lowercase.
pub trait Host {
    /// What this host supports.
    fn capabilities(&self) -> Capabilities;
    /// Write a log line.
    fn log(&self, level: LogLevel, message: &str);
    /// Wall-clock time in nanoseconds since the Unix epoch, when the host has a clock.
    fn now_nanos(&self) -> Option<u64>;

    /// The first value of a header.
    fn header(&self, map: MapKind, name: &str) -> Result<Option<Vec<u8>>, HostError>;
    /// All headers of a map, in order.
    fn headers(&self, map: MapKind) -> Result<Vec<(String, Vec<u8>)>, HostError>;
    /// Set a header, replacing every existing value.
    fn set_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Add one more value for a header.
    fn add_header(&self, map: MapKind, name: &str, value: &[u8]) -> Result<(), HostError>;
    /// Remove a header (no error when absent).
    fn remove_header(&self, map: MapKind, name: &str) -> Result<(), HostError>;

    /// Read `len` bytes of a body from `start`; `None` when there is no body.
    fn body(
        &self,
        kind: BufferKind,
        start: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, HostError>;
    /// Replace `len` bytes at `start` with `data`. Envoy only allows `start == 0` (replace the
    /// first `len` bytes) or `start >= current length` (append).
    fn set_body(
        &self,
        kind: BufferKind,
        start: usize,
        len: usize,
        data: &[u8],
    ) -> Result<(), HostError>;

    /// A property by path segments, e.g. `["route_name"]` or `["request", "id"]`.
    fn property(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
    /// Set a property (Envoy stores it in filter state as `wasm.<path>`).
    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError>;

    /// Start an HTTP callout to a named upstream; returns its token. The response arrives later
    /// through `HttpFilter::on_http_call_response`. `headers` must include `:method`, `:path`, `:authority`.
    fn http_call(
        &self,
        upstream: &str,
        headers: &[HeaderPair<'_>],
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<u32, HostError>;

    /// Read shared data: the value and its compare-and-swap version.
    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), HostError>;
    /// Write shared data; with `cas` the write fails with [`HostError::CasMismatch`] when the value changed.
    fn set_shared_data(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;

    /// Define (or look up) a metric by name; returns its id.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    /// Add to a counter (delta > 0) or a gauge (any sign).
    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), HostError>;
    /// Set a gauge or record a histogram sample.
    fn record_metric(&self, id: u32, value: u64) -> Result<(), HostError>;

    /// Answer the client directly. The current callback should return [`Action::Pause`].
    fn send_local_response(
        &self,
        status: u16,
        headers: &[HeaderPair<'_>],
        body: &[u8],
    ) -> Result<(), HostError>;
    /// Resume a stream paused earlier (after a callout, typically).
    fn resume(&self, direction: Direction) -> Result<(), HostError>;

    // === optional host features, each behind a `Capabilities` flag ===

    /// Start a unary gRPC call to cluster `upstream`; the answer arrives as a [`crate::plugin::Reply::Grpc`].
    fn grpc_call(
        &self,
        _upstream: &str,
        _service: &str,
        _method: &str,
        _metadata: &[HeaderPair<'_>],
        _message: &[u8],
        _timeout: Duration,
    ) -> Result<u32, HostError> {
        Err(HostError::Unsupported)
    }
    /// Send a Redis command (RESP bytes) to a cluster set up with [`Host::redis_init`] (Higress).
    fn redis_call(&self, _cluster: &str, _query: &[u8]) -> Result<u32, HostError> {
        Err(HostError::Unsupported)
    }
    /// Connect to a Redis cluster once, from the root (Higress).
    fn redis_init(
        &self,
        _cluster: &str,
        _username: &str,
        _password: &str,
        _timeout: Duration,
    ) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    /// Send this request to `host` (`ip:port`) of the routed cluster (Higress).
    fn set_upstream_override_host(&self, _host: &[u8]) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    /// The routed cluster's hosts as Higress knows them: `(address, JSON)` pairs, the JSON
    /// carrying `health_status` and the scraped `metrics` text (Higress).
    fn upstream_hosts(&self) -> Result<Vec<(String, String)>, HostError> {
        Err(HostError::Unsupported)
    }
    /// Register (or find) this VM's shared queue `name`; returns its id.
    fn register_queue(&self, _name: &str) -> Result<u32, HostError> {
        Err(HostError::Unsupported)
    }
    /// Find the queue `name` another VM registered.
    fn resolve_queue(&self, _name: &str) -> Result<Option<u32>, HostError> {
        Err(HostError::Unsupported)
    }
    /// Append a message to a shared queue.
    fn enqueue(&self, _queue: u32, _message: &[u8]) -> Result<(), HostError> {
        Err(HostError::Unsupported)
    }
    /// Take the next message of a shared queue, `None` when empty.
    fn dequeue(&self, _queue: u32) -> Result<Option<Vec<u8>>, HostError> {
        Err(HostError::Unsupported)
    }

    // === conveniences over the required methods ===

    /// The first value of a request header.
    fn request_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.header(MapKind::RequestHeaders, name)
    }
    /// The first value of a response header.
    fn response_header(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.header(MapKind::ResponseHeaders, name)
    }
    /// The whole buffered body.
    fn whole_body(&self, kind: BufferKind, size: usize) -> Result<Option<Vec<u8>>, HostError> {
        self.body(kind, 0, size)
    }
    /// Replace the whole buffered body of `old_len` bytes with `data`.
    fn replace_body(&self, kind: BufferKind, old_len: usize, data: &[u8]) -> Result<(), HostError> {
        self.set_body(kind, 0, old_len, data)
    }
    /// A property as UTF-8 text, `None` when absent or not text.
    fn property_str(&self, path: &[&str]) -> Option<String> {
        self.property(path)
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok())
    }
}

/// Envoy's rules for when header maps exist, tracked per stream.
///
/// Envoy keeps a handle to the request headers only until the request-headers callback returns
/// Continue (or the stream is resumed); after that every header call answers BAD_ARGUMENT, which
/// the Rust SDK turns into a panic. The adapter and the mock consult this gate first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhaseGate {
    request_headers: bool,
    response_headers: bool,
    request_trailers: bool,
    response_trailers: bool,
}

impl PhaseGate {
    /// A request-headers (or response-headers) callback starts: that map becomes available.
    pub fn open(&mut self, map: MapKind) {
        match map {
            MapKind::RequestHeaders => self.request_headers = true,
            MapKind::ResponseHeaders => self.response_headers = true,
            MapKind::RequestTrailers => self.request_trailers = true,
            MapKind::ResponseTrailers => self.response_trailers = true,
        }
    }

    /// The headers (and trailers) of `direction` were let go (Continue returned, or the stream
    /// resumed).
    pub fn release(&mut self, direction: Direction) {
        match direction {
            Direction::Request => {
                self.request_headers = false;
                self.request_trailers = false;
            }
            Direction::Response => {
                self.response_headers = false;
                self.response_trailers = false;
            }
        }
    }

    /// Record the action a headers callback returned.
    pub fn after_headers(&mut self, direction: Direction, action: Action) {
        if action == Action::Continue {
            self.release(direction);
        }
    }

    /// Whether `map` may be read or written now.
    pub fn allows(&self, map: MapKind) -> bool {
        match map {
            MapKind::RequestHeaders => self.request_headers,
            MapKind::ResponseHeaders => self.response_headers,
            // Trailers exist only during their own callback (until it continues).
            MapKind::RequestTrailers => self.request_trailers,
            MapKind::ResponseTrailers => self.response_trailers,
        }
    }

    /// `Ok` when `map` is available, else [`HostError::NotAvailable`].
    pub fn check(&self, map: MapKind) -> Result<(), HostError> {
        if self.allows(map) {
            Ok(())
        } else {
            Err(HostError::NotAvailable)
        }
    }
}

/// Decode a proxy-wasm map (pair count, then each pair's key and value lengths, then each key and
/// value followed by a NUL), as hosts hand over header maps and Higress its upstream hosts.
/// `None` when the bytes are not such a map; pairs that are not UTF-8 are skipped.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32_at(0)?;
    // Each pair takes at least its two lengths and two NULs.
    if count > bytes.len() / 10 {
        return None;
    }
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let (k, v) = (u32_at(4 + 8 * i)?, u32_at(8 + 8 * i)?);
        let key = bytes.get(data..data.checked_add(k)?)?;
        data = data.checked_add(k)?.checked_add(1)?;
        let value = bytes.get(data..data.checked_add(v)?)?;
        data = data.checked_add(v)?.checked_add(1)?;
        if let (Ok(key), Ok(value)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
            pairs.push((key.to_owned(), value.to_owned()));
        }
    }
    (data <= bytes.len()).then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }

    #[test]
    fn a_serialised_map_decodes_and_every_truncation_is_refused() {
        let hosts = [
            ("10.0.0.1:8000", r#"{"health_status":"Healthy"}"#),
            ("10.0.0.2:8000", ""),
        ];
        let bytes = pairs(&hosts);
        let got = decode_pairs(&bytes).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], (hosts[0].0.to_owned(), hosts[0].1.to_owned()));
        assert_eq!(got[1], (hosts[1].0.to_owned(), String::new()));
        assert_eq!(decode_pairs(b""), Some(Vec::new()));
        for cut in 1..bytes.len() {
            assert_eq!(decode_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        // A count far beyond the bytes is refused before anything is reserved.
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), None);
    }

    #[test]
    fn request_headers_close_when_the_callback_continues() {
        let mut gate = PhaseGate::default();
        assert!(gate.check(MapKind::RequestHeaders).is_err());
        gate.open(MapKind::RequestHeaders);
        assert!(gate.allows(MapKind::RequestHeaders));
        gate.after_headers(Direction::Request, Action::Pause);
        assert!(
            gate.allows(MapKind::RequestHeaders),
            "paused headers stay reachable"
        );
        gate.after_headers(Direction::Request, Action::Continue);
        assert_eq!(
            gate.check(MapKind::RequestHeaders),
            Err(HostError::NotAvailable)
        );
    }

    #[test]
    fn response_headers_are_independent_of_request_headers() {
        let mut gate = PhaseGate::default();
        gate.open(MapKind::ResponseHeaders);
        assert!(!gate.allows(MapKind::RequestHeaders));
        gate.release(Direction::Response);
        assert!(!gate.allows(MapKind::ResponseHeaders));
    }
}
