//! Plugin specifications and a plugin loaded as one or more worker VMs sharing one environment.

use crate::env::Env;
use crate::error::{LogEntry, Result};
use crate::profile::Profile;
use crate::vm::Vm;
use std::path::PathBuf;
use std::time::Duration;

/// Envoy's `PluginConfig.failure_policy`: what later streams get once the VM has trapped.
///
/// Modelled on Envoy's `PluginConfig` (`source/extensions/common/wasm/wasm.cc`:
/// `maybeReloadHandleIfNeeded` and `createContext`) and proxy-wasm-cpp-host's `CHECK_FAIL_HTTP`
/// (`src/context.cc`), read through the search tool:
/// - `FailClosed` (also what `UNSPECIFIED` resolves to): an "empty" context answers every later
///   stream with a 503 local reply, details `wasm_fail_stream`.
/// - `FailOpen`: `createContext` returns no context, so the filter is left out of later streams.
/// - `FailReload`: only after a runtime error (a trap), a new VM is built (full start-up, new
///   memory, same configuration) when a stream is created, unless the last (re)load was less than
///   `JitteredLowerBoundBackOffStrategy(base).nextBackOffMs()` ago, a value in [base, 1.5·base);
///   then the stream is treated as fail-closed. A reload that fails keeps the failed VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// 503 for every later stream (Envoy's default).
    #[default]
    FailClosed,
    /// Skip the filter for later streams.
    FailOpen,
    /// Replace the VM after a trap, with Envoy's reload backoff.
    FailReload,
}

/// What a stream created now gets from a plugin's worker (after applying the failure policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The VM is healthy (or was just reloaded): run the filter.
    Run,
    /// Fail open: the filter is skipped for this stream.
    Skip,
    /// Fail closed: the filter answers 503 `wasm_fail_stream`.
    FailClosed,
}

/// Envoy's `wasm.<plugin>.vm_reload*` counters for one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadStats {
    /// `vm_reload_success`: a new VM replaced a failed one.
    pub success: u32,
    /// `vm_reload_failure`: building the new VM failed (the failed VM stays).
    pub failure: u32,
    /// `vm_reload_backoff`: a stream arrived inside the backoff window.
    pub backoff: u32,
}

/// Everything needed to load a plugin: module, configuration, host profile and host settings.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Path of the `.wasm` (or `.wat`) file.
    pub wasm: PathBuf,
    /// Plugin configuration (buffer 7 during `on_configure`).
    pub config: Vec<u8>,
    /// VM configuration (buffer 6 during `on_vm_start`).
    pub vm_config: Vec<u8>,
    /// Host profile.
    pub profile: Profile,
    /// `root_id` (property `plugin_root_id`).
    pub root_id: String,
    /// `vm_id` (shared data and queue scope).
    pub vm_id: String,
    /// Plugin name (property `plugin_name`).
    pub name: String,
    /// Body buffering limit in bytes (Envoy's default connection buffer limit is 1 MiB).
    pub buffer_limit: usize,
    /// Extra properties: path segments and raw value bytes.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
    /// Higress `route_name`.
    pub route_name: String,
    /// Higress `cluster_name`.
    pub cluster_name: String,
    /// What `proxy_get_log_level` answers (0 = trace).
    pub log_level: u32,
    /// WASI environment variables.
    pub env_vars: Vec<(String, String)>,
    /// Envoy's `allow_on_headers_stop_iteration` (Higress: HeaderStopIteration): body chunks
    /// reach the body callback while the headers are held, and both leave together once the body
    /// callback continues. Off by default, as in Envoy.
    pub headers_stop_iteration: bool,
    /// Envoy's `failure_policy` (default fail closed).
    pub failure_policy: FailurePolicy,
    /// `reload_config.backoff.base_interval` for [`FailurePolicy::FailReload`] (Envoy default 1 s).
    pub reload_backoff: Duration,
    /// Wall-clock budget of one host→guest call; over it the call traps with
    /// [`crate::Limit::Time`]. Default 10 s (a harness guard, not an Envoy setting).
    pub call_time_limit: Duration,
    /// Cap on the VM's linear memory in bytes; growing past it traps with
    /// [`crate::Limit::Memory`]. Default 1 GiB (a harness guard, not an Envoy setting).
    pub memory_limit: usize,
    /// Trap when the plugin hands the host a header name or value with CR, LF or NUL, as an
    /// Envoy debug build's `ASSERT` would; off by default (release Envoy accepts it with OK).
    pub strict_header_values: bool,
}

impl PluginSpec {
    /// A spec for `wasm` under the Envoy profile with an empty configuration.
    pub fn new(wasm: impl Into<PathBuf>) -> PluginSpec {
        let wasm = wasm.into();
        let stem = wasm
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', "-"))
            .unwrap_or_default();
        PluginSpec {
            wasm,
            config: Vec::new(),
            vm_config: Vec::new(),
            profile: Profile::Envoy,
            root_id: stem.clone(),
            vm_id: stem.clone(),
            name: stem,
            buffer_limit: 1 << 20,
            headers_stop_iteration: false,
            failure_policy: FailurePolicy::FailClosed,
            reload_backoff: Duration::from_secs(1),
            call_time_limit: Duration::from_secs(10),
            memory_limit: 1 << 30,
            strict_header_values: false,
            properties: Vec::new(),
            route_name: "test-route".to_string(),
            cluster_name: "outbound|80||llm.test.svc.cluster.local".to_string(),
            log_level: 0,
            env_vars: Vec::new(),
        }
    }

    /// Sets the plugin configuration string.
    pub fn config(mut self, config: impl AsRef<[u8]>) -> Self {
        self.config = config.as_ref().to_vec();
        self
    }

    /// Sets the VM configuration string.
    pub fn vm_config(mut self, config: impl AsRef<[u8]>) -> Self {
        self.vm_config = config.as_ref().to_vec();
        self
    }

    /// Chooses the host profile.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Sets `root_id`.
    pub fn root_id(mut self, id: &str) -> Self {
        self.root_id = id.to_string();
        self
    }

    /// Sets `vm_id`.
    pub fn vm_id(mut self, id: &str) -> Self {
        self.vm_id = id.to_string();
        self
    }

    /// Sets Envoy's `allow_on_headers_stop_iteration` (see [`PluginSpec::headers_stop_iteration`]).
    pub fn headers_stop_iteration(mut self, on: bool) -> Self {
        self.headers_stop_iteration = on;
        self
    }

    /// Sets Envoy's `failure_policy`.
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    /// Sets `reload_config.backoff.base_interval` (FAIL_RELOAD); Envoy's minimum is 1 ms.
    pub fn reload_backoff(mut self, base: Duration) -> Self {
        self.reload_backoff = base.max(Duration::from_millis(1));
        self
    }

    /// Sets the wall-clock budget of one host→guest call.
    pub fn call_time_limit(mut self, limit: Duration) -> Self {
        self.call_time_limit = limit;
        self
    }

    /// Sets the per-VM linear-memory cap in bytes.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Makes header values with CR, LF or NUL trap (see [`PluginSpec::strict_header_values`]).
    pub fn strict_header_values(mut self, on: bool) -> Self {
        self.strict_header_values = on;
        self
    }

    /// Sets the body buffering limit.
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// Adds a property the guest can read (`path` segments, raw value).
    pub fn property(mut self, path: &[&str], value: impl AsRef<[u8]>) -> Self {
        self.properties.push((
            path.iter().map(|s| s.to_string()).collect(),
            value.as_ref().to_vec(),
        ));
        self
    }

    /// Sets the route's name: Higress's `route_name` property and Envoy's `xds.route_name`.
    pub fn route_name(mut self, name: &str) -> Self {
        self.route_name = name.to_string();
        self
    }

    /// Sets the Higress `cluster_name` property.
    pub fn cluster_name(mut self, name: &str) -> Self {
        self.cluster_name = name.to_string();
        self
    }

    /// Sets the level `proxy_get_log_level` reports.
    pub fn log_level(mut self, level: u32) -> Self {
        self.log_level = level;
        self
    }
}

/// A plugin loaded as `n` worker VMs (like Envoy's per-worker clones) in one environment.
#[derive(Debug)]
pub struct Plugin {
    env: Env,
    spec: PluginSpec,
    first: Box<Vm>,
    others: Vec<Vm>,
    /// Virtual time (ns) each worker's VM was last (re)loaded: Envoy's `last_load`.
    last_load: Vec<u64>,
    reload_stats: ReloadStats,
    jitter: u64,
}

impl Plugin {
    /// Loads one worker.
    pub fn load(env: &Env, spec: PluginSpec) -> Result<Plugin> {
        Plugin::load_workers(env, spec, 1)
    }

    /// Loads `n` workers; each runs the whole start-up sequence on its own memory.
    pub fn load_workers(env: &Env, spec: PluginSpec, n: usize) -> Result<Plugin> {
        let first = Box::new(Vm::start(env, &spec, 0)?);
        let others = (1..n.max(1))
            .map(|i| Vm::start(env, &spec, i))
            .collect::<Result<Vec<_>>>()?;
        let now = env.now_ns();
        Ok(Plugin {
            env: env.clone(),
            spec,
            first,
            last_load: vec![now; n.max(1)],
            others,
            reload_stats: ReloadStats::default(),
            jitter: 0x2545_f491_4f6c_dd1d,
        })
    }

    /// The spec it was loaded from.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Worker `i` (worker 0 when `i` is out of range).
    pub fn worker(&mut self, i: usize) -> &mut Vm {
        if let Some(w) = i.checked_sub(1).and_then(|j| self.others.get_mut(j)) {
            return w;
        }
        &mut self.first
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        1 + self.others.len()
    }

    pub(crate) fn all_mut(&mut self) -> Vec<&mut Vm> {
        std::iter::once(&mut *self.first)
            .chain(self.others.iter_mut())
            .collect()
    }

    /// Applies the failure policy before a stream is created on worker `i`, as Envoy's
    /// `PluginConfig::createContext` does: a healthy VM runs; after a trap, fail open skips the
    /// filter, fail closed answers 503, and fail reload builds a new VM once the backoff allows.
    pub fn admit(&mut self, i: usize) -> Result<Admission> {
        if !self.worker(i).is_failed() {
            return Ok(Admission::Run);
        }
        match self.spec.failure_policy {
            FailurePolicy::FailOpen => Ok(Admission::Skip),
            FailurePolicy::FailClosed => Ok(Admission::FailClosed),
            FailurePolicy::FailReload => self.reload(i),
        }
    }

    fn reload(&mut self, i: usize) -> Result<Admission> {
        let slot = i.min(self.others.len());
        // JitteredLowerBoundBackOffStrategy: random % (base / 2) + base, drawn on every check.
        let base = u64::try_from(self.spec.reload_backoff.as_millis()).unwrap_or(u64::MAX);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let interval_ms = base.saturating_add(self.jitter % (base / 2).max(1));
        let now = self.env.now_ns();
        let last = self.last_load.get(slot).copied().unwrap_or(0);
        if now.saturating_sub(last) < interval_ms.saturating_mul(1_000_000) {
            self.reload_stats.backoff += 1;
            return Ok(Admission::FailClosed);
        }
        if let Some(l) = self.last_load.get_mut(slot) {
            *l = now;
        }
        match Vm::start(&self.env, &self.spec, slot) {
            Ok(vm) => {
                *self.worker(slot) = vm;
                self.reload_stats.success += 1;
                Ok(Admission::Run)
            }
            Err(_) => {
                self.reload_stats.failure += 1;
                Ok(Admission::FailClosed)
            }
        }
    }

    /// Envoy's `vm_reload*` counters.
    pub fn reload_stats(&self) -> ReloadStats {
        self.reload_stats
    }

    /// The environment.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Advances the virtual clock, firing each worker's `on_tick` once per elapsed period in time
    /// order; also delivers queue notifications. Returns how many ticks fired.
    pub fn advance(&mut self, by: Duration) -> Result<u32> {
        let env = self.env.clone();
        advance_vms(&env, self.all_mut(), by)
    }

    /// Delivers pending `on_queue_ready` notifications on every worker.
    pub fn deliver_queue_notifications(&mut self) -> Result<()> {
        self.all_mut()
            .into_iter()
            .try_for_each(Vm::deliver_queue_notifications)
    }

    /// Every worker's logs, in worker order.
    pub fn logs(&self) -> Vec<LogEntry> {
        std::iter::once(&*self.first)
            .chain(self.others.iter())
            .flat_map(|w| w.logs().iter().cloned())
            .collect()
    }
}

/// Moves the clock to `now + by`, firing due ticks in time order across `vms`.
pub(crate) fn advance_vms(env: &Env, mut vms: Vec<&mut Vm>, by: Duration) -> Result<u32> {
    let target = env.now_ns().saturating_add(by.as_nanos() as u64);
    let mut fired = 0;
    loop {
        let next = vms
            .iter()
            .filter_map(|v| v.next_tick())
            .filter(|t| *t <= target)
            .min();
        let Some(at) = next else { break };
        env.lock().now_ns = at.max(env.now_ns());
        for vm in vms.iter_mut() {
            fired += vm.fire_due_ticks(at)?;
        }
    }
    env.lock().now_ns = target;
    for vm in vms.iter_mut() {
        vm.deliver_queue_notifications()?;
    }
    Ok(fired)
}
