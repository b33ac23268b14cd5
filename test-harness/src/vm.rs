//! One VM instance ("worker") of a plugin: loading, the start-up sequence, guest calls with trap
//! capture, and Envoy's "after VM call" work (deferred actions, callout/gRPC/Redis deliveries,
//! queue notifications, ticks).

use crate::abi::Headers;
use crate::env::Env;
use crate::error::{HarnessError, LogEntry, Result, Trap};
use crate::host::state::{AfterAction, CallPhase, CallResponse, TraceEntry, VmState};
use crate::module_cache;
use crate::plugin::PluginSpec;
use crate::profile::Profile;
use crate::stream::Flow;
use std::collections::HashMap;
use wasmtime::{Instance, Store, Val};

/// A running plugin VM.
pub struct Vm {
    pub(crate) store: Store<VmState>,
    instance: Instance,
    failed: Option<String>,
    call_time_limit: std::time::Duration,
    /// Stream actions (local reply, continue, close) not yet applied by the stream layer.
    pub(crate) actions: Vec<AfterAction>,
    pub(crate) flows: HashMap<u32, Flow>,
    pub(crate) buffer_limit: usize,
    pub(crate) headers_stop_iteration: bool,
    module: String,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Vm({}, worker {})",
            self.module,
            self.store.data().worker
        )
    }
}

const ABI_MARKERS: &[&str] = &[
    "proxy_abi_version_0_2_1",
    "proxy_abi_version_0_2_0",
    "proxy_abi_version_0_1_0",
];

impl Vm {
    /// Instantiates the module, runs the start-up sequence, `on_vm_start` and `on_configure`.
    pub(crate) fn start(env: &Env, spec: &PluginSpec, worker: usize) -> Result<Vm> {
        let module = module_cache::load(&spec.wasm)?;
        let name = spec
            .wasm
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let load_err = |reason: String| HarnessError::Load {
            module: name.clone(),
            profile: spec.profile.to_string(),
            reason,
        };
        let (linker, offered) = crate::host::linker(module_cache::engine()?, spec.profile)
            .map_err(|e| load_err(format!("{e:?}")))?;
        check_imports(&module, spec.profile, &offered).map_err(&load_err)?;
        let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
        let has = |n: &str| exports.iter().any(|e| e == n);
        let markers = ABI_MARKERS
            .iter()
            .chain(if spec.profile == Profile::Higress {
                ["proxy_abi_version_0_2_100"].iter()
            } else {
                [].iter()
            });
        if spec.profile != Profile::Apisix && !markers.clone().any(|m| has(m)) {
            return Err(load_err(
                "Missing or unknown Proxy-Wasm ABI version".to_string(),
            ));
        }
        let state = initial_state(env, spec, worker);
        let mut store = Store::new(module_cache::engine()?, state);
        store.limiter(|st| &mut st.memory_cap);
        let instance = linker
            .instantiate(&mut store, &module)
            .map_err(|e| load_err(format!("{e:?}")))?;
        let memory = instance.get_memory(&mut store, "memory");
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "malloc")
            .or_else(|_| {
                instance.get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            })
            .map_err(|_| load_err("missing malloc function".to_string()))?;
        store.data_mut().memory = memory;
        store.data_mut().alloc = Some(alloc);
        let mut vm = Vm {
            store,
            instance,
            failed: None,
            call_time_limit: spec.call_time_limit,
            actions: Vec::new(),
            flows: HashMap::new(),
            buffer_limit: spec.buffer_limit,
            // Higress passes HeaderStopIteration through unconverted for ABI 0.2.100 modules.
            headers_stop_iteration: spec.headers_stop_iteration
                || (spec.profile == Profile::Higress && has("proxy_abi_version_0_2_100")),
            module: name,
        };
        vm.initialize(spec.profile, &has)?;
        vm.configure(spec.profile)?;
        Ok(vm)
    }

    fn initialize(&mut self, profile: Profile, has: &dyn Fn(&str) -> bool) -> Result<()> {
        self.store.data_mut().phase = CallPhase::Init;
        let result = if profile == Profile::Apisix {
            match has("_start") {
                true => self.call("_start", &[]),
                false => self.call("_initialize", &[]),
            }
        } else if has("_initialize") {
            self.call("_initialize", &[])
                .and_then(|_| match has("main") {
                    true => self.call("main", &[0, 0]),
                    false => self.call("__main_void", &[]),
                })
        } else {
            self.call("_start", &[])
        };
        self.store.data_mut().phase = CallPhase::Callback;
        result.map(|_| ())
    }

    fn configure(&mut self, profile: Profile) -> Result<()> {
        let root = self.store.data_mut().allocate_ctx();
        self.store.data_mut().root_ctx = root;
        self.call("proxy_on_context_create", &[root as i32, 0])?;
        if profile.calls_vm_start() {
            let len = self.store.data().vm_config.len() as i32;
            self.store.data_mut().vm_config_readable = true;
            let ok = self.call("proxy_on_vm_start", &[root as i32, len]);
            self.store.data_mut().vm_config_readable = false;
            self.expect_true("proxy_on_vm_start", ok?)?;
        }
        let len = self.store.data().plugin_config.len() as i32;
        self.store.data_mut().plugin_config_readable = true;
        let ok = self.call("proxy_on_configure", &[root as i32, len]);
        self.store.data_mut().plugin_config_readable = false;
        self.expect_true("proxy_on_configure", ok?)?;
        self.settle()
    }

    fn expect_true(&self, callback: &str, result: Option<i32>) -> Result<()> {
        match result {
            Some(0) => Err(HarnessError::ConfigRejected {
                callback: callback.to_string(),
                logs: self.logs().to_vec(),
            }),
            _ => Ok(()),
        }
    }

    /// Calls a guest export (skipped, `Ok(None)`, when not exported). The first argument is the
    /// current context; the effective context is reset as cpp-host does.
    pub(crate) fn call(&mut self, export: &str, args: &[i32]) -> Result<Option<i32>> {
        if let Some(why) = &self.failed {
            return Err(HarnessError::VmFailed(why.clone()));
        }
        let Some(func) = self.instance.get_func(&mut self.store, export) else {
            return Ok(None);
        };
        let n_results = func.ty(&self.store).results().len();
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); n_results];
        let st = self.store.data_mut();
        st.current_ctx = args.first().map(|c| *c as u32).unwrap_or(0);
        st.effective_ctx = 0;
        st.last_critical = None;
        st.memory_cap.denied = None;
        let tick = module_cache::EPOCH_TICK.as_millis().max(1);
        let ticks = self.call_time_limit.as_millis().div_ceil(tick).max(1);
        self.store
            .set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        match func.call(&mut self.store, &params, &mut results) {
            Ok(()) => Ok(Some(results.first().and_then(Val::i32).unwrap_or(0))),
            Err(e) => Err(self.trap(export, &e)),
        }
    }

    fn trap(&mut self, export: &str, e: &wasmtime::Error) -> HarnessError {
        let st = self.store.data();
        let panic_message = st.last_critical.clone().or_else(|| {
            st.logs
                .iter()
                .rev()
                .find(|l| l.message.contains("panicked at"))
                .map(|l| l.message.clone())
        });
        let trap = Trap {
            callback: export.to_string(),
            panic_message,
            trap: format!("{e:?}"),
            logs: st.logs.clone(),
        };
        let limit = if let Some(requested) = st.memory_cap.denied {
            Some(crate::error::Limit::Memory {
                cap: st.memory_cap.cap as u64,
                requested: requested as u64,
            })
        } else if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            Some(crate::error::Limit::Time {
                budget: self.call_time_limit,
            })
        } else {
            None
        };
        self.failed = Some(format!("trapped in {export}"));
        match limit {
            Some(limit) => HarnessError::LimitExceeded {
                limit,
                trap: Box::new(trap),
            },
            None => HarnessError::Trap(Box::new(trap)),
        }
    }

    /// Runs Envoy's after-callback work until nothing is left: collects deferred stream actions and
    /// delivers callout responses, gRPC closes, Redis replies and queue notifications.
    pub(crate) fn settle(&mut self) -> Result<()> {
        loop {
            let st = self.store.data_mut();
            self.actions.append(&mut st.after);
            if !st.pending_callouts.is_empty() {
                let call = st.pending_callouts.remove(0);
                self.deliver_callout(call)?;
            } else if !st.pending_grpc.is_empty() {
                let g = st.pending_grpc.remove(0);
                self.deliver_grpc_close(g.token)?;
            } else if !st.pending_redis.is_empty() && !st.env.lock().redis_held {
                let call = st.pending_redis.remove(0);
                self.deliver_redis(call)?;
            } else if let Some(queue) = self.take_queue_notification() {
                let root = self.store.data().root_ctx as i32;
                self.call("proxy_on_queue_ready", &[root, queue as i32])?;
            } else {
                return Ok(());
            }
        }
    }

    fn take_queue_notification(&mut self) -> Option<u32> {
        let key = self.store.data().vm_key;
        let env = self.store.data().env.clone();
        let mut st = env.lock();
        let pos = st.queue_ready.iter().position(|(owner, _)| *owner == key)?;
        Some(st.queue_ready.remove(pos).1)
    }

    fn deliver_callout(&mut self, call: crate::callout::CalloutRequest) -> Result<()> {
        let env = self.store.data().env.clone();
        let outcome = env.lock().answer_callout(&call);
        let root = self.store.data().root_ctx as i32;
        let args = match outcome.materialize() {
            Some((status, headers, body)) => {
                let mut all: Headers =
                    vec![(":status".to_string(), status.to_string().into_bytes())];
                all.extend(
                    headers
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v)),
                );
                let args = [
                    root,
                    call.token as i32,
                    all.len() as i32,
                    body.len() as i32,
                    0,
                ];
                let st = self.store.data_mut();
                st.call_response = Some(CallResponse {
                    headers: all,
                    body,
                    trailers: Vec::new(),
                });
                st.status = (0, Vec::new());
                args
            }
            None => {
                let st = self.store.data_mut();
                st.call_response = None;
                st.status = (11, b"reset".to_vec());
                [root, call.token as i32, 0, 0, 0]
            }
        };
        let result = self.call("proxy_on_http_call_response", &args);
        self.store.data_mut().call_response = None;
        result.map(|_| ())
    }

    fn deliver_grpc_close(&mut self, token: u32) -> Result<()> {
        self.store.data_mut().status = (14, b"unavailable".to_vec());
        let root = self.store.data().root_ctx as i32;
        self.call("proxy_on_grpc_close", &[root, token as i32, 14])
            .map(|_| ())
    }

    fn deliver_redis(&mut self, call: crate::callout::RedisCall) -> Result<()> {
        let env = self.store.data().env.clone();
        let reply = env.lock().answer_redis(&call);
        let (status, body) = match reply {
            Ok(bytes) => (0, bytes),
            Err(code) => (code as i32, Vec::new()),
        };
        let root = self.store.data().root_ctx as i32;
        let size = body.len() as i32;
        self.store.data_mut().redis_response = Some(body);
        let result = self.call(
            "proxy_on_redis_call_response",
            &[root, call.token as i32, status, size],
        );
        self.store.data_mut().redis_response = None;
        result.map(|_| ())
    }

    /// Fires `on_tick` for every period that elapsed up to the current virtual time.
    pub(crate) fn fire_due_ticks(&mut self, now_ns: u64) -> Result<u32> {
        let mut fired = 0;
        if self.is_failed() {
            return Ok(0); // cpp-host skips on_tick on a failed VM
        }
        loop {
            let st = self.store.data();
            if st.tick_period_ms == 0 || st.next_tick_ns > now_ns {
                return Ok(fired);
            }
            let period = u64::from(st.tick_period_ms) * 1_000_000;
            let root = st.root_ctx as i32;
            self.store.data_mut().next_tick_ns += period;
            self.call("proxy_on_tick", &[root])?;
            self.settle()?;
            fired += 1;
        }
    }

    /// The next virtual time a tick is due, if ticking.
    pub(crate) fn next_tick(&self) -> Option<u64> {
        let st = self.store.data();
        (st.tick_period_ms > 0).then_some(st.next_tick_ns)
    }

    /// Answers every Redis call held by [`Env::hold_redis`](crate::Env::hold_redis), oldest first,
    /// then runs what they started (callouts and so on).
    pub fn release_redis(&mut self) -> Result<()> {
        while !self.store.data().pending_redis.is_empty() {
            let call = self.store.data_mut().pending_redis.remove(0);
            self.deliver_redis(call)?;
            self.settle()?;
        }
        Ok(())
    }

    /// Delivers pending queue notifications addressed to this VM.
    pub fn deliver_queue_notifications(&mut self) -> Result<()> {
        if self.is_failed() {
            return Ok(()); // cpp-host skips on_queue_ready on a failed VM
        }
        self.settle()
    }

    /// Calls `proxy_on_done` on the root context (VM shutdown); returns what the guest answered.
    /// If it answered false, a later `proxy_done` from the root context completes the shutdown.
    pub fn shutdown(&mut self) -> Result<bool> {
        let root = self.store.data().root_ctx as i32;
        let done = self.call("proxy_on_done", &[root])?.unwrap_or(1) != 0;
        self.store.data_mut().done_pending = !done;
        self.settle()?;
        Ok(done)
    }

    /// True once the root context finished (on_done returned true, or proxy_done was called).
    pub fn root_done(&self) -> bool {
        !self.store.data().done_pending
    }

    /// Every log line of this VM.
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    /// Messages logged at exactly `level`.
    pub fn log_messages(&self, level: crate::abi::LogLevel) -> Vec<String> {
        self.logs()
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Every host call made so far with its status.
    pub fn trace(&self) -> &[TraceEntry] {
        &self.store.data().trace
    }

    /// Host calls that returned a status the Rust SDK cannot decode (5, 6, 9, 11, 12).
    pub fn undecodable_statuses(&self) -> Vec<TraceEntry> {
        self.trace()
            .iter()
            .filter(|t| t.undecodable)
            .cloned()
            .collect()
    }

    /// The root context id.
    pub fn root_context(&self) -> u32 {
        self.store.data().root_ctx
    }

    /// Header names or values with CR, LF or NUL the plugin handed to the host (set, add, replace,
    /// set-pairs on any map, local-reply headers, callout headers and trailers). Envoy accepts
    /// them with status OK; see [`crate::PluginSpec::strict_header_values`].
    pub fn invalid_header_writes(&self) -> &[crate::host::state::InvalidHeaderWrite] {
        &self.store.data().invalid_headers
    }

    /// True after a trap: further calls fail with [`HarnessError::VmFailed`].
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The shared environment.
    pub fn env(&self) -> Env {
        self.store.data().env.clone()
    }
}

fn check_imports(
    module: &wasmtime::Module,
    profile: Profile,
    offered: &[&str],
) -> std::result::Result<(), String> {
    for import in module.imports() {
        let ok = match import.module() {
            "env" => offered.contains(&import.name()),
            "wasi_snapshot_preview1" => crate::host::WASI_NAMES.contains(&import.name()),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "the module imports {}.{}, which the {profile} host does not offer (the gateway refuses such a module)",
                import.module(),
                import.name()
            ));
        }
    }
    Ok(())
}

fn initial_state(env: &Env, spec: &PluginSpec, worker: usize) -> VmState {
    let mut properties: HashMap<String, Vec<u8>> = spec
        .properties
        .iter()
        .map(|(k, v)| (k.join("\0"), v.clone()))
        .collect();
    // Higress always names them; on Envoy they are `xds.route_name` / `xds.cluster_name`, set
    // when the test names them.
    let named = |v: &str| spec.profile == Profile::Higress || !v.is_empty();
    if spec.profile != Profile::Apisix {
        if named(&spec.route_name) {
            properties
                .entry("route_name".into())
                .or_insert_with(|| spec.route_name.clone().into_bytes());
        }
        if named(&spec.cluster_name) {
            properties
                .entry("cluster_name".into())
                .or_insert_with(|| spec.cluster_name.clone().into_bytes());
        }
    }
    VmState {
        env: env.clone(),
        profile: spec.profile,
        worker,
        vm_key: env.next_vm_key(),
        vm_id: spec.vm_id.clone(),
        root_id: spec.root_id.clone(),
        plugin_name: spec.name.clone(),
        memory: None,
        alloc: None,
        phase: CallPhase::Init,
        current_ctx: 0,
        effective_ctx: 0,
        root_ctx: 0,
        next_ctx: 0,
        vm_config: spec.vm_config.clone(),
        plugin_config: spec.config.clone(),
        vm_config_readable: false,
        plugin_config_readable: false,
        tick_period_ms: 0,
        next_tick_ns: 0,
        logs: Vec::new(),
        trace: Vec::new(),
        metric_ids: Default::default(),
        streams: HashMap::new(),
        next_token: 0,
        pending_callouts: Vec::new(),
        call_response: None,
        pending_grpc: Vec::new(),
        grpc_message: None,
        pending_redis: Vec::new(),
        redis_response: None,
        redis_clusters: Vec::new(),
        status: (0, Vec::new()),
        foreign_args: None,
        after: Vec::new(),
        last_critical: None,
        done_pending: false,
        properties,
        log_level: spec.log_level,
        rng: 0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1),
        env_vars: spec.env_vars.clone(),
        memory_cap: crate::host::state::MemoryCap {
            cap: spec.memory_limit,
            denied: None,
        },
        invalid_headers: Vec::new(),
        strict_header_values: spec.strict_header_values,
    }
}
