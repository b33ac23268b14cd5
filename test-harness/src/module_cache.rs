//! One wasmtime engine per process and a cache of compiled modules (compilation is the slow part of
//! a debug-build test run, so each module is compiled once per test binary).

use crate::error::{HarnessError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use wasmtime::{Config, Engine, Module, OptLevel};

static ENGINE: OnceLock<std::result::Result<Engine, String>> = OnceLock::new();
/// Compiled modules by path, with the file's modification time when compiled.
type ModuleCache = Mutex<HashMap<PathBuf, (Option<SystemTime>, Module)>>;

static MODULES: OnceLock<ModuleCache> = OnceLock::new();

/// How often the background thread advances the engine's epoch. A guest call's time budget is a
/// number of these ticks (see `PluginSpec::call_time_limit`).
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The shared engine (Cranelift without optimisation: tests favour compile speed), with epoch
/// interruption on: a background thread bumps the epoch every [`EPOCH_TICK`], and each call into a
/// guest gets a deadline of so many ticks, so a runaway guest traps instead of hanging the test.
/// Epoch checks cost far less than fuel metering (one load and compare at loop heads and calls).
pub(crate) fn engine() -> Result<&'static Engine> {
    let engine = ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.cranelift_opt_level(OptLevel::None);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("{e:?}"))?;
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("aigw-harness-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(EPOCH_TICK);
                ticker.increment_epoch();
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(engine)
    });
    engine
        .as_ref()
        .map_err(|e| HarnessError::Io(format!("cannot create the wasmtime engine: {e}")))
}

/// Compiles (or fetches from the cache) the module at `path`; `.wat` text files are accepted too.
pub(crate) fn load(path: &Path) -> Result<Module> {
    let cache = MODULES.get_or_init(|| Mutex::new(HashMap::new()));
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some((cached_mtime, module)) = guard.get(path) {
        if *cached_mtime == mtime {
            return Ok(module.clone());
        }
    }
    let bytes = std::fs::read(path)
        .map_err(|e| HarnessError::Io(format!("cannot read {}: {e}", path.display())))?;
    let module = Module::new(engine()?, &bytes).map_err(|e| HarnessError::Load {
        module: path.display().to_string(),
        profile: "any".to_string(),
        reason: format!("compilation failed: {e:?}"),
    })?;
    guard.insert(path.to_path_buf(), (mtime, module.clone()));
    Ok(module)
}
