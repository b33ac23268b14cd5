//! Host functions for logging, time, ticks, buffers and header maps.

use super::state::{Direction, VmState};
use super::{env_fn, read, read_str, return_bytes, st, write_u32, write_u64, HostResult, C};
use crate::abi::{buffer, deserialize_pairs, map, serialize_pairs, Headers, LogLevel, Status};
use crate::error::LogEntry;
use crate::profile::Profile;
use wasmtime::Linker;

pub(super) fn link(
    l: &mut Linker<VmState>,
    names: &mut Vec<&'static str>,
    _p: Profile,
) -> wasmtime::Result<()> {
    env_fn!(l, names, "proxy_log", log, (level: i32, ptr: i32, len: i32));
    env_fn!(l, names, "proxy_get_log_level", get_log_level, (ret: i32));
    env_fn!(l, names, "proxy_get_current_time_nanoseconds", get_time, (ret: i32));
    env_fn!(l, names, "proxy_set_tick_period_milliseconds", set_tick, (period: i32));
    env_fn!(l, names, "proxy_get_buffer_bytes", get_buffer, (t: i32, start: i32, max: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_set_buffer_bytes", set_buffer, (t: i32, start: i32, size: i32, ptr: i32, len: i32));
    env_fn!(l, names, "proxy_get_header_map_pairs", get_pairs, (t: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_set_header_map_pairs", set_pairs, (t: i32, ptr: i32, len: i32));
    env_fn!(l, names, "proxy_get_header_map_value", get_value, (t: i32, kp: i32, kl: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_replace_header_map_value", replace_value, (t: i32, kp: i32, kl: i32, vp: i32, vl: i32));
    env_fn!(l, names, "proxy_remove_header_map_value", remove_value, (t: i32, kp: i32, kl: i32));
    env_fn!(l, names, "proxy_add_header_map_value", add_value, (t: i32, kp: i32, kl: i32, vp: i32, vl: i32));
    Ok(())
}

fn log(c: &mut C<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let Some(level) = LogLevel::from_raw(level) else {
        return Ok(Status::BadArgument);
    };
    let message = st!(read_str(c, ptr, len));
    if std::env::var_os("AIGW_HARNESS_VERBOSE").is_some() {
        eprintln!("[guest {:?}] {message}", level);
    }
    let st = c.data_mut();
    if level == LogLevel::Critical {
        st.last_critical = Some(message.clone());
    }
    let worker = st.worker;
    st.logs.push(LogEntry {
        worker,
        level,
        message,
    });
    Ok(Status::Ok)
}

fn get_log_level(c: &mut C<'_>, ret: i32) -> HostResult {
    let level = c.data().log_level;
    st!(write_u32(c, ret, level));
    Ok(Status::Ok)
}

fn get_time(c: &mut C<'_>, ret: i32) -> HostResult {
    let now = c.data().env.now_ns();
    st!(write_u64(c, ret, now));
    Ok(Status::Ok)
}

fn set_tick(c: &mut C<'_>, period: i32) -> HostResult {
    let now = c.data().env.now_ns();
    let st = c.data_mut();
    st.tick_period_ms = period as u32;
    st.next_tick_ns = now.saturating_add(u64::from(period as u32) * 1_000_000);
    Ok(Status::Ok)
}

/// The bytes of a buffer if it is available now.
fn buffer_view(st: &VmState, t: i32) -> Result<Vec<u8>, Status> {
    let body = |d: Direction| {
        st.stream()
            .map(|s| s.dir(d))
            .filter(|m| m.body_live)
            .map(|m| m.body.clone())
            .ok_or(Status::NotFound)
    };
    let opt = |v: &Option<Vec<u8>>| v.clone().ok_or(Status::NotFound);
    match t {
        buffer::REQUEST_BODY => body(Direction::Request),
        buffer::RESPONSE_BODY => body(Direction::Response),
        buffer::CALL_RESPONSE_BODY => st
            .call_response
            .as_ref()
            .map(|r| r.body.clone())
            .ok_or(Status::NotFound),
        buffer::GRPC_MESSAGE => opt(&st.grpc_message),
        buffer::VM_CONFIGURATION if st.vm_config_readable => Ok(st.vm_config.clone()),
        buffer::PLUGIN_CONFIGURATION if st.plugin_config_readable => Ok(st.plugin_config.clone()),
        buffer::VM_CONFIGURATION | buffer::PLUGIN_CONFIGURATION => Err(Status::NotFound),
        buffer::FOREIGN_ARGS => opt(&st.foreign_args),
        buffer::REDIS_RESPONSE if st.profile == Profile::Higress => opt(&st.redis_response),
        _ => Err(Status::BadArgument),
    }
}

fn get_buffer(c: &mut C<'_>, t: i32, start: i32, max: i32, pp: i32, sp: i32) -> HostResult {
    let apisix = c.data().profile == Profile::Apisix;
    if apisix && ![0, 1, 4, 7].contains(&t) {
        return Ok(Status::BadArgument);
    }
    let data = st!(buffer_view(c.data(), t));
    let (start, max) = (u64::from(start as u32), u64::from(max as u32));
    let len = data.len() as u64;
    if apisix {
        if data.is_empty() {
            return Ok(Status::NotFound);
        }
        if t != buffer::PLUGIN_CONFIGURATION && ((max as u32 as i32) <= 0 || start >= len) {
            return Ok(Status::BadArgument);
        }
    }
    if start >= len {
        return return_bytes(c, &[], pp, sp);
    }
    let end = start.saturating_add(max).min(len);
    let slice = data
        .get(start as usize..end as usize)
        .unwrap_or_default()
        .to_vec();
    return_bytes(c, &slice, pp, sp)
}

fn set_buffer(c: &mut C<'_>, t: i32, start: i32, size: i32, ptr: i32, len: i32) -> HostResult {
    let dir = match t {
        buffer::REQUEST_BODY => Direction::Request,
        buffer::RESPONSE_BODY => Direction::Response,
        _ => return Ok(Status::BadArgument),
    };
    let data = st!(read(c, ptr, len));
    let Some(stream) = c.data_mut().stream_mut() else {
        return Ok(Status::NotFound);
    };
    let maps = stream.dir_mut(dir);
    if !maps.body_live {
        return Ok(Status::NotFound);
    }
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 {
        maps.body.drain(..size.min(maps.body.len()));
        maps.body.splice(0..0, data);
    } else if start >= maps.body.len() {
        maps.body.extend_from_slice(&data);
    } else {
        return Ok(Status::BadArgument);
    }
    Ok(Status::Ok)
}

/// Which map a type names: `Ok(Some)` available, `Ok(None)` unavailable now, `Err` bad type.
fn map_ref(st: &VmState, t: i32) -> Result<Option<&Headers>, Status> {
    let apisix = st.profile == Profile::Apisix;
    if apisix
        && ![
            map::REQUEST_HEADERS,
            map::RESPONSE_HEADERS,
            map::CALL_RESPONSE_HEADERS,
        ]
        .contains(&t)
    {
        return Err(Status::Unimplemented);
    }
    let stream = st.stream();
    let pick = |d: Direction, trailers: bool| {
        stream.map(|s| s.dir(d)).and_then(|m| match trailers {
            false => m.headers_live.then_some(&m.headers),
            true => m.trailers_live.then_some(&m.trailers),
        })
    };
    Ok(match t {
        map::REQUEST_HEADERS => pick(Direction::Request, false),
        map::REQUEST_TRAILERS => pick(Direction::Request, true),
        map::RESPONSE_HEADERS => pick(Direction::Response, false),
        map::RESPONSE_TRAILERS => pick(Direction::Response, true),
        map::GRPC_INITIAL | map::GRPC_TRAILING => None,
        map::CALL_RESPONSE_HEADERS => st.call_response.as_ref().map(|r| &r.headers),
        map::CALL_RESPONSE_TRAILERS => st.call_response.as_ref().map(|r| &r.trailers),
        _ => return Err(Status::BadArgument),
    })
}

/// Mutable access to a stream map; call-response and gRPC maps are read-only.
fn map_mut(st: &mut VmState, t: i32) -> Result<&mut Headers, Status> {
    map_ref(st, t)?;
    let (d, trailers) = match t {
        map::REQUEST_HEADERS => (Direction::Request, false),
        map::REQUEST_TRAILERS => (Direction::Request, true),
        map::RESPONSE_HEADERS => (Direction::Response, false),
        map::RESPONSE_TRAILERS => (Direction::Response, true),
        _ => return Err(Status::BadArgument),
    };
    let m = st.stream_mut().ok_or(Status::BadArgument)?.dir_mut(d);
    match trailers {
        false if m.headers_live => Ok(&mut m.headers),
        true if m.trailers_live => Ok(&mut m.trailers),
        _ => Err(Status::BadArgument),
    }
}

// Header values a plugin sets (Envoy 1.40 behaviour, from the source read through the search tool):
// proxy-wasm-cpp-host `src/exports.cc` (`replace_header_map_value`, `add_header_map_value`,
// `set_header_map_pairs`) only checks the map type and the guest pointers, then calls Envoy's
// `Context::replaceHeaderMapValue` / `addHeaderMapValue` / `setHeaderMapPairs`
// (`source/extensions/common/wasm/context.cc`), which call `HeaderMap::setCopy` / `addCopy` and
// return `WasmResult::Ok`. `sendLocalResponse` and `httpCall` likewise `addCopy` the plugin's
// pairs. The only check on CR, LF and NUL is `ASSERT(valid())` in `HeaderString::setCopy`
// (`source/common/http/header_map_impl.cc`), compiled out of release builds. So Envoy neither
// rejects (no BAD_ARGUMENT) nor drops such a value: the host call returns OK and the value is
// kept verbatim. The harness does the same, records every such write
// (`Vm::invalid_header_writes`) and, with `PluginSpec::strict_header_values`, traps like a
// debug build. What the HTTP/1 or HTTP/2 codec then puts on the wire is not modelled (unverified).

fn get_pairs(c: &mut C<'_>, t: i32, pp: i32, sp: i32) -> HostResult {
    let pairs = st!(map_ref(c.data(), t)).cloned().unwrap_or_default();
    let bytes = if pairs.is_empty() {
        Vec::new()
    } else {
        serialize_pairs(&pairs)
    };
    return_bytes(c, &bytes, pp, sp)
}

fn set_pairs(c: &mut C<'_>, t: i32, ptr: i32, len: i32) -> HostResult {
    let raw = st!(read(c, ptr, len));
    let pairs: Headers = deserialize_pairs(&raw)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    st!(map_mut(c.data_mut(), t));
    c.data_mut()
        .check_headers("proxy_set_header_map_pairs", &pairs)?;
    *st!(map_mut(c.data_mut(), t)) = pairs;
    Ok(Status::Ok)
}

fn get_value(c: &mut C<'_>, t: i32, kp: i32, kl: i32, pp: i32, sp: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl)).to_ascii_lowercase();
    let Some(m) = st!(map_ref(c.data(), t)) else {
        return Ok(Status::BadArgument);
    };
    let Some(value) = m
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map(|(_, v)| v.clone())
    else {
        return Ok(Status::NotFound);
    };
    return_bytes(c, &value, pp, sp)
}

fn replace_value(c: &mut C<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl)).to_ascii_lowercase();
    let value = st!(read(c, vp, vl));
    st!(map_mut(c.data_mut(), t));
    c.data_mut().check_headers(
        "proxy_replace_header_map_value",
        &[(key.clone(), value.clone())],
    )?;
    let m = st!(map_mut(c.data_mut(), t));
    match m.iter().position(|(k, _)| *k == key) {
        Some(i) => {
            if let Some(slot) = m.get_mut(i) {
                slot.1 = value;
            }
            let mut seen = 0usize;
            m.retain(|(k, _)| {
                *k != key || {
                    seen += 1;
                    seen == 1
                }
            });
        }
        None => m.push((key, value)),
    }
    Ok(Status::Ok)
}

fn remove_value(c: &mut C<'_>, t: i32, kp: i32, kl: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl)).to_ascii_lowercase();
    st!(map_mut(c.data_mut(), t)).retain(|(k, _)| *k != key);
    Ok(Status::Ok)
}

fn add_value(c: &mut C<'_>, t: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl)).to_ascii_lowercase();
    let value = st!(read(c, vp, vl));
    st!(map_mut(c.data_mut(), t));
    c.data_mut().check_headers(
        "proxy_add_header_map_value",
        &[(key.clone(), value.clone())],
    )?;
    st!(map_mut(c.data_mut(), t)).push((key, value));
    Ok(Status::Ok)
}
