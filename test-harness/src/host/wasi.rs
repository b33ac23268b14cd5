//! The WASI preview1 subset cpp-host offers (no filesystem): stdio goes to the log, the clock is the
//! virtual clock, randomness is a deterministic generator.

use super::state::VmState;
use super::{read, write, write_u32, write_u64, C};
use crate::abi::LogLevel;
use crate::error::LogEntry;
use wasmtime::Linker;

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;
const NOENT: i32 = 44;
const NOSYS: i32 = 52;
const SPIPE: i32 = 70;

/// Every WASI function the harness links (module `wasi_snapshot_preview1`).
pub(crate) const WASI_NAMES: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_close",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_filestat_get",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_read",
    "fd_seek",
    "fd_write",
    "path_open",
    "path_filestat_get",
    "proc_exit",
    "random_get",
    "sched_yield",
    "poll_oneoff",
];

fn errno(r: Result<(), crate::abi::Status>) -> i32 {
    if r.is_ok() {
        SUCCESS
    } else {
        FAULT
    }
}

macro_rules! wasi_fn {
    ($l:ident, $name:literal, |$c:ident $(, $a:ident : $t:ty)*| $body:expr) => {
        $l.func_wrap("wasi_snapshot_preview1", $name,
            |mut $c: wasmtime::Caller<'_, VmState>, $($a: $t),*| -> wasmtime::Result<i32> {
                #[allow(unused_mut)]
                let mut $c = &mut $c;
                Ok($body)
            })?;
    };
}

pub(super) fn link(l: &mut Linker<VmState>) -> wasmtime::Result<()> {
    wasi_fn!(l, "args_get", |_c, _a: i32, _b: i32| SUCCESS);
    wasi_fn!(l, "args_sizes_get", |c, n: i32, s: i32| errno(
        write_u32(c, n, 0).and(write_u32(c, s, 0))
    ));
    wasi_fn!(l, "environ_get", |c, env: i32, buf: i32| environ_get(
        c, env, buf
    ));
    wasi_fn!(l, "environ_sizes_get", |c, n: i32, s: i32| environ_sizes(
        c, n, s
    ));
    wasi_fn!(l, "clock_res_get", |c, _id: i32, ret: i32| errno(
        write_u64(c, ret, 1)
    ));
    wasi_fn!(l, "clock_time_get", |c, id: i32, _p: i64, ret: i32| {
        clock_time(c, id, ret)
    });
    wasi_fn!(l, "fd_close", |_c, _fd: i32| SUCCESS);
    wasi_fn!(l, "fd_fdstat_get", |c, fd: i32, ret: i32| fdstat(
        c, fd, ret
    ));
    wasi_fn!(l, "fd_fdstat_set_flags", |_c, _fd: i32, _f: i32| NOSYS);
    wasi_fn!(l, "fd_filestat_get", |_c, _fd: i32, _r: i32| BADF);
    wasi_fn!(l, "fd_prestat_get", |_c, _fd: i32, _r: i32| BADF);
    wasi_fn!(
        l,
        "fd_prestat_dir_name",
        |_c, _fd: i32, _p: i32, _l: i32| BADF
    );
    wasi_fn!(l, "fd_read", |c, _fd: i32, _iov: i32, _n: i32, ret: i32| {
        errno(write_u32(c, ret, 0))
    });
    wasi_fn!(l, "fd_seek", |_c, _fd: i32, _o: i64, _w: i32, _r: i32| {
        SPIPE
    });
    wasi_fn!(l, "fd_write", |c, fd: i32, iov: i32, n: i32, ret: i32| {
        fd_write(c, fd, iov, n, ret)
    });
    wasi_fn!(l, "path_open", |_c,
                              _fd: i32,
                              _df: i32,
                              _p: i32,
                              _l: i32,
                              _of: i32,
                              _rb: i64,
                              _ri: i64,
                              _ff: i32,
                              _r: i32| NOENT);
    wasi_fn!(
        l,
        "path_filestat_get",
        |_c, _fd: i32, _f: i32, _p: i32, _l: i32, _r: i32| NOENT
    );
    wasi_fn!(l, "sched_yield", |_c| SUCCESS);
    wasi_fn!(l, "poll_oneoff", |c,
                                _i: i32,
                                _o: i32,
                                _n: i32,
                                ret: i32| {
        errno(write_u32(c, ret, 0))
    });
    wasi_fn!(l, "random_get", |c, buf: i32, len: i32| random_get(
        c, buf, len
    ));
    l.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |c: wasmtime::Caller<'_, VmState>, code: i32| -> wasmtime::Result<()> {
            let _ = c;
            wasmtime::bail!("guest called proc_exit({code})")
        },
    )?;
    Ok(())
}

fn environ_sizes(c: &mut C<'_>, n: i32, s: i32) -> i32 {
    let vars = &c.data().env_vars;
    let count = vars.len() as u32;
    let size: usize = vars.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    errno(write_u32(c, n, count).and(write_u32(c, s, size as u32)))
}

fn environ_get(c: &mut C<'_>, env: i32, buf: i32) -> i32 {
    let vars = c.data().env_vars.clone();
    let (mut slot, mut at) = (env as u32, buf as u32);
    for (k, v) in vars {
        let entry = format!("{k}={v}\0");
        if write_u32(c, slot as i32, at)
            .and(write(c, at, entry.as_bytes()))
            .is_err()
        {
            return FAULT;
        }
        slot += 4;
        at += entry.len() as u32;
    }
    SUCCESS
}

fn clock_time(c: &mut C<'_>, id: i32, ret: i32) -> i32 {
    let now = c.data().env.now_ns();
    match id {
        0 => errno(write_u64(c, ret, now)),
        1 => errno(write_u64(
            c,
            ret,
            now.saturating_sub(crate::env::CLOCK_START_NS),
        )),
        _ => INVAL,
    }
}

fn fdstat(c: &mut C<'_>, fd: i32, ret: i32) -> i32 {
    if !(0..=2).contains(&fd) {
        return BADF;
    }
    // filetype character_device (2), no flags, all rights.
    let mut stat = [0u8; 24];
    stat[0] = 2;
    stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    errno(write(c, ret as u32, &stat))
}

fn fd_write(c: &mut C<'_>, fd: i32, iov: i32, n: i32, ret: i32) -> i32 {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return BADF,
    };
    let mut text = Vec::new();
    for i in 0..n.max(0) {
        let Ok(entry) = read(c, iov + i * 8, 8) else {
            return FAULT;
        };
        let word = |at: usize| {
            entry
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
        };
        let (Some(ptr), Some(len)) = (word(0), word(4)) else {
            return FAULT;
        };
        match read(c, ptr as i32, len as i32) {
            Ok(bytes) => text.extend_from_slice(&bytes),
            Err(_) => return FAULT,
        }
    }
    let written = text.len() as u32;
    let message = String::from_utf8_lossy(&text).trim_end().to_string();
    let st = c.data_mut();
    if !message.is_empty() {
        let worker = st.worker;
        st.logs.push(LogEntry {
            worker,
            level,
            message,
        });
    }
    errno(write_u32(c, ret, written))
}

fn random_get(c: &mut C<'_>, buf: i32, len: i32) -> i32 {
    let len = len as u32 as usize;
    if len > 64 * 1024 {
        return INVAL;
    }
    let mut out = Vec::with_capacity(len);
    let st = c.data_mut();
    while out.len() < len {
        // xorshift64*: deterministic per VM so test runs repeat.
        st.rng ^= st.rng >> 12;
        st.rng ^= st.rng << 25;
        st.rng ^= st.rng >> 27;
        out.extend_from_slice(&st.rng.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    errno(write(c, buf as u32, &out))
}
