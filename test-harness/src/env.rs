//! The environment every VM of a test shares: virtual clock, shared data, queues, metrics and the
//! handlers that answer callouts, Redis calls and foreign functions.

use crate::abi::{Headers, Status};
use crate::callout::{CalloutHandler, CalloutOutcome, CalloutRequest, RedisCall, RedisReply};
use crate::metrics::{MetricStore, MetricValue};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// 2025-01-01T00:00:00Z in nanoseconds: where the virtual clock starts.
pub const CLOCK_START_NS: u64 = 1_735_689_600_000_000_000;

/// A foreign function test code registers: arguments in, result bytes or a status out.
pub type ForeignFn = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send>;

/// A Redis answering closure (Higress profile).
pub type RedisHandler = Box<dyn FnMut(&RedisCall) -> RedisReply + Send>;

struct Queue {
    vm_id: String,
    name: String,
    owner: u64,
    items: VecDeque<Vec<u8>>,
}

pub(crate) struct EnvState {
    pub(crate) now_ns: u64,
    shared: HashMap<(String, String), (Vec<u8>, u32)>,
    next_cas: u32,
    queues: Vec<Queue>,
    pub(crate) queue_ready: Vec<(u64, u32)>,
    pub(crate) metrics: MetricStore,
    callout: Option<Box<dyn CalloutHandler>>,
    routes: HashMap<String, SocketAddr>,
    clusters: HashSet<String>,
    pub(crate) callouts_seen: Vec<CalloutRequest>,
    redis: Option<RedisHandler>,
    pub(crate) redis_seen: Vec<RedisCall>,
    pub(crate) redis_held: bool,
    foreign: HashMap<String, ForeignFn>,
    pub(crate) upstream_hosts: Headers,
    next_vm_key: u64,
}

/// Shared host state; clone it freely (all clones are the same environment).
#[derive(Clone)]
pub struct Env {
    inner: Arc<Mutex<EnvState>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// A fresh environment: clock at 2025-01-01T00:00:00Z, nothing stored, no handlers.
    pub fn new() -> Env {
        let state = EnvState {
            now_ns: CLOCK_START_NS,
            shared: HashMap::new(),
            next_cas: 0,
            queues: Vec::new(),
            queue_ready: Vec::new(),
            metrics: MetricStore::default(),
            callout: None,
            routes: HashMap::new(),
            clusters: HashSet::new(),
            callouts_seen: Vec::new(),
            redis: None,
            redis_seen: Vec::new(),
            redis_held: false,
            foreign: HashMap::new(),
            upstream_hosts: Vec::new(),
            next_vm_key: 0,
        };
        Env {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, EnvState> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Answers callouts with test code (every cluster name counts as known unless
    /// [`Env::declare_cluster`] restricted the set).
    pub fn on_callout<H: CalloutHandler + 'static>(&self, handler: H) -> &Self {
        self.lock().callout = Some(Box::new(handler));
        self
    }

    /// Forwards callouts to `cluster` to a real HTTP/1.1 server (plain text, e.g. 127.0.0.1:PORT).
    pub fn route_cluster(&self, cluster: &str, addr: SocketAddr) -> &Self {
        let mut st = self.lock();
        st.routes.insert(cluster.to_string(), addr);
        st.clusters.insert(cluster.to_string());
        drop(st);
        self
    }

    /// Declares a cluster name; once any is declared, callouts to undeclared clusters get BAD_ARGUMENT.
    pub fn declare_cluster(&self, cluster: &str) -> &Self {
        self.lock().clusters.insert(cluster.to_string());
        self
    }

    /// Keep Redis calls unanswered (`true`) until [`crate::Vm::release_redis`], as a real Redis
    /// answers while other streams run; `false` (the default) answers them right after the
    /// callback that sent them.
    pub fn hold_redis(&self, hold: bool) -> &Self {
        self.lock().redis_held = hold;
        self
    }

    /// Answers Higress `proxy_redis_call`s.
    pub fn on_redis(
        &self,
        handler: impl FnMut(&RedisCall) -> RedisReply + Send + 'static,
    ) -> &Self {
        self.lock().redis = Some(Box::new(handler));
        self
    }

    /// Registers a foreign function for `proxy_call_foreign_function`.
    pub fn foreign_function(
        &self,
        name: &str,
        f: impl FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send + 'static,
    ) -> &Self {
        self.lock().foreign.insert(name.to_string(), Box::new(f));
        self
    }

    /// Sets what Higress `proxy_get_upstream_hosts` returns (address -> JSON text).
    pub fn set_upstream_hosts(&self, hosts: &[(&str, &str)]) -> &Self {
        self.lock().upstream_hosts = crate::abi::headers(hosts);
        self
    }

    /// Current virtual time in Unix nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.lock().now_ns
    }

    /// Moves the clock without firing ticks (use `Plugin::advance`/`Chain::advance` for ticks).
    pub fn advance_clock(&self, by: Duration) {
        let mut st = self.lock();
        st.now_ns = st.now_ns.saturating_add(by.as_nanos() as u64);
    }

    /// Every callout dispatched so far, in order.
    pub fn callouts(&self) -> Vec<CalloutRequest> {
        self.lock().callouts_seen.clone()
    }

    /// Every Redis call so far, in order.
    pub fn redis_calls(&self) -> Vec<RedisCall> {
        self.lock().redis_seen.clone()
    }

    /// A metric's value by its plain name (without the `wasmcustom.` prefix).
    pub fn metric(&self, name: &str) -> Option<MetricValue> {
        self.lock().metrics.value(name)
    }

    /// Every defined metric name.
    pub fn metric_names(&self) -> Vec<String> {
        self.lock().metrics.names()
    }

    /// Reads shared data as the guest would (vm_id scope), returning (value, cas).
    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.lock()
            .shared
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    pub(crate) fn next_vm_key(&self) -> u64 {
        let mut st = self.lock();
        st.next_vm_key += 1;
        st.next_vm_key
    }
}

impl EnvState {
    pub(crate) fn get_shared(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.shared
            .get(&(vm_id.to_string(), key.to_string()))
            .cloned()
    }

    pub(crate) fn set_shared(
        &mut self,
        vm_id: &str,
        key: &str,
        value: Vec<u8>,
        cas: u32,
    ) -> Status {
        let k = (vm_id.to_string(), key.to_string());
        if let Some((_, stored)) = self.shared.get(&k) {
            if cas != 0 && cas != *stored {
                return Status::CasMismatch;
            }
        }
        self.next_cas = self.next_cas.wrapping_add(1).max(1);
        self.shared.insert(k, (value, self.next_cas));
        Status::Ok
    }

    pub(crate) fn register_queue(&mut self, vm_id: &str, name: &str, owner: u64) -> u32 {
        if let Some(id) = self.find_queue(vm_id, name) {
            if let Some(q) = self.queues.get_mut(id as usize - 1) {
                q.owner = owner;
            }
            return id;
        }
        self.queues.push(Queue {
            vm_id: vm_id.to_string(),
            name: name.to_string(),
            owner,
            items: VecDeque::new(),
        });
        self.queues.len() as u32
    }

    pub(crate) fn find_queue(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(|i| i as u32 + 1)
    }

    pub(crate) fn enqueue(&mut self, id: u32, value: Vec<u8>) -> Status {
        let Some(q) = id
            .checked_sub(1)
            .and_then(|i| self.queues.get_mut(i as usize))
        else {
            return Status::NotFound;
        };
        q.items.push_back(value);
        let owner = q.owner;
        self.queue_ready.push((owner, id));
        Status::Ok
    }

    pub(crate) fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        let Some(q) = id
            .checked_sub(1)
            .and_then(|i| self.queues.get_mut(i as usize))
        else {
            return Err(Status::NotFound);
        };
        q.items.pop_front().ok_or(Status::Empty)
    }

    /// Whether a callout to `cluster` is accepted at dispatch time.
    pub(crate) fn cluster_known(&self, cluster: &str) -> bool {
        if self.clusters.contains(cluster) {
            return true;
        }
        self.clusters.is_empty() && self.callout.is_some()
    }

    pub(crate) fn answer_callout(&mut self, req: &CalloutRequest) -> CalloutOutcome {
        if let Some(addr) = self.routes.get(&req.cluster).copied() {
            return crate::http_client::forward(addr, req);
        }
        match self.callout.as_mut() {
            Some(h) => h.answer(req),
            None => CalloutOutcome::ConnectFailure,
        }
    }

    pub(crate) fn answer_redis(&mut self, call: &RedisCall) -> RedisReply {
        self.redis_seen.push(call.clone());
        match self.redis.as_mut() {
            Some(h) => h(call),
            None => Err(1),
        }
    }

    pub(crate) fn call_foreign(&mut self, name: &str, args: &[u8]) -> Result<Vec<u8>, Status> {
        match self.foreign.get_mut(name) {
            Some(f) => f(args),
            None => Err(Status::NotFound),
        }
    }

    pub(crate) fn redis_configured(&self) -> bool {
        self.redis.is_some()
    }

    pub(crate) fn has_foreign(&self, name: &str) -> bool {
        self.foreign.contains_key(name)
    }
}
