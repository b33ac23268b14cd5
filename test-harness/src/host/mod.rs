//! The host side of the ABI: guest-memory helpers, call gating and the linker for each profile.

mod calls;
mod core;
mod data;
pub(crate) mod state;
mod wasi;

use crate::abi::Status;
use crate::profile::Profile;
use state::{CallPhase, VmState};
use wasmtime::{Caller, Engine, Linker};

/// The caller type every host function receives.
pub(crate) type C<'a> = Caller<'a, VmState>;
/// A host function outcome: a status for the guest, or a trap.
pub(crate) type HostResult = wasmtime::Result<Status>;

/// Unwraps a `Result<T, Status>`, returning the status to the guest on error.
macro_rules! st {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return Ok(s),
        }
    };
}
pub(crate) use st;

/// Registers an `env` host function that records its status in the call trace.
macro_rules! env_fn {
    ($linker:ident, $names:ident, $name:literal, $f:path, ($($a:ident : $t:ty),*)) => {
        $names.push($name);
        $linker.func_wrap(
            "env",
            $name,
            |mut c: wasmtime::Caller<'_, crate::host::state::VmState>, $($a: $t),*| -> wasmtime::Result<i32> {
                let status = match crate::host::gate(&mut c, $name)? {
                    Some(s) => s,
                    None => $f(&mut c, $($a),*)?,
                };
                c.data_mut().record($name, status.code());
                Ok(status.code())
            },
        )?;
    };
}
pub(crate) use env_fn;

/// Applies cpp-host's restricted-call rules and the profile's UNIMPLEMENTED list.
pub(crate) fn gate(c: &mut C<'_>, name: &'static str) -> wasmtime::Result<Option<Status>> {
    let phase = c.data().phase;
    if phase != CallPhase::Callback && name != "proxy_log" {
        let during = if phase == CallPhase::Init {
            "start-up"
        } else {
            "the allocator"
        };
        wasmtime::bail!("restricted_callback: {name} called during {during}");
    }
    if c.data().profile.unimplemented(name) {
        return Ok(Some(Status::Unimplemented));
    }
    Ok(None)
}

/// Builds the linker for a profile and lists the `env` names it offers.
pub(crate) fn linker(
    engine: &Engine,
    profile: Profile,
) -> wasmtime::Result<(Linker<VmState>, Vec<&'static str>)> {
    let mut linker = Linker::new(engine);
    let mut names = Vec::new();
    core::link(&mut linker, &mut names, profile)?;
    data::link(&mut linker, &mut names, profile)?;
    calls::link(&mut linker, &mut names, profile)?;
    wasi::link(&mut linker)?;
    names.retain(|n| profile.offers(n));
    Ok((linker, names))
}

/// Names of the WASI preview1 functions the harness offers (the cpp-host set the SDK needs).
pub(crate) use wasi::WASI_NAMES;

fn mem_len(c: &C<'_>) -> usize {
    c.data().memory.map(|m| m.data_size(c)).unwrap_or(0)
}

/// Copies `[ptr, ptr+len)` out of guest memory.
pub(crate) fn read(c: &C<'_>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    mem.data(c)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Reads a UTF-8 string (lossy) from guest memory.
pub(crate) fn read_str(c: &C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).into_owned())
}

/// Writes bytes into guest memory.
pub(crate) fn write(c: &mut C<'_>, ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    let mem = c.data().memory.ok_or(Status::InvalidMemoryAccess)?;
    let start = ptr as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > mem_len(c) {
        return Err(Status::InvalidMemoryAccess);
    }
    let dst = mem
        .data_mut(c)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?;
    dst.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32.
pub(crate) fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<(), Status> {
    write(c, ptr as u32, &v.to_le_bytes())
}

/// Writes a little-endian u64.
pub(crate) fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<(), Status> {
    write(c, ptr as u32, &v.to_le_bytes())
}

/// Hands `data` to the guest through (`*pp`, `*sp`): (0,0) without allocating when empty, otherwise
/// an allocation of exactly `data.len()` bytes through the guest allocator.
pub(crate) fn return_bytes(c: &mut C<'_>, data: &[u8], pp: i32, sp: i32) -> HostResult {
    if data.is_empty() {
        st!(write_u32(c, pp, 0));
        st!(write_u32(c, sp, 0));
        return Ok(Status::Ok);
    }
    let Some(alloc) = c.data().alloc.clone() else {
        wasmtime::bail!("guest exports neither malloc nor proxy_on_memory_allocate");
    };
    let previous = c.data().phase;
    c.data_mut().phase = CallPhase::Allocator;
    let addr = alloc.call(&mut *c, data.len() as i32);
    c.data_mut().phase = previous;
    let addr = addr? as u32;
    if addr == 0 {
        return Ok(Status::InvalidMemoryAccess);
    }
    // The allocation may have grown memory: `write` looks the memory up afresh.
    st!(write(c, addr, data));
    st!(write_u32(c, pp, addr));
    st!(write_u32(c, sp, data.len() as u32));
    Ok(Status::Ok)
}
