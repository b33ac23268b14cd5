//! Host functions for properties, shared data, shared queues and metrics.

use super::state::VmState;
use super::{env_fn, read, read_str, return_bytes, st, write_u32, write_u64, HostResult, C};
use crate::abi::Status;
use crate::metrics::MetricKind;
use crate::profile::Profile;
use wasmtime::Linker;

pub(super) fn link(
    l: &mut Linker<VmState>,
    names: &mut Vec<&'static str>,
    p: Profile,
) -> wasmtime::Result<()> {
    env_fn!(l, names, "proxy_get_property", get_property, (pp_: i32, pl: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_set_property", set_property, (pp_: i32, pl: i32, vp: i32, vl: i32));
    env_fn!(l, names, "proxy_get_shared_data", get_shared, (kp: i32, kl: i32, pp: i32, sp: i32, cas: i32));
    env_fn!(l, names, "proxy_set_shared_data", set_shared, (kp: i32, kl: i32, vp: i32, vl: i32, cas: i32));
    env_fn!(l, names, "proxy_register_shared_queue", register_queue, (np: i32, nl: i32, ret: i32));
    env_fn!(l, names, "proxy_resolve_shared_queue", resolve_queue, (vp: i32, vl: i32, np: i32, nl: i32, ret: i32));
    env_fn!(l, names, "proxy_dequeue_shared_queue", dequeue, (id: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_enqueue_shared_queue", enqueue, (id: i32, vp: i32, vl: i32));
    env_fn!(l, names, "proxy_define_metric", define_metric, (t: i32, np: i32, nl: i32, ret: i32));
    env_fn!(l, names, "proxy_increment_metric", increment_metric, (id: i32, delta: i64));
    env_fn!(l, names, "proxy_record_metric", record_metric, (id: i32, value: i64));
    if p == Profile::Apisix {
        // wasm-nginx-module declares it as (i32, i64): modules importing the SDK's (i32, i32) fail to load.
        env_fn!(l, names, "proxy_get_metric", get_metric_apisix, (id: i32, ret: i64));
    } else {
        env_fn!(l, names, "proxy_get_metric", get_metric, (id: i32, ret: i32));
    }
    Ok(())
}

fn split_path(raw: &[u8]) -> Vec<String> {
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn get_property(c: &mut C<'_>, pp_: i32, pl: i32, pp: i32, sp: i32) -> HostResult {
    let path = split_path(&st!(read(c, pp_, pl)));
    match st!(crate::properties::lookup(c.data(), &path)) {
        Some(value) => return_bytes(c, &value, pp, sp),
        None => Ok(Status::NotFound),
    }
}

fn set_property(c: &mut C<'_>, pp_: i32, pl: i32, vp: i32, vl: i32) -> HostResult {
    let path = split_path(&st!(read(c, pp_, pl)));
    let value = st!(read(c, vp, vl));
    Ok(crate::properties::store(c.data_mut(), &path, value))
}

fn get_shared(c: &mut C<'_>, kp: i32, kl: i32, pp: i32, sp: i32, cas: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl));
    let vm_id = c.data().vm_id.clone();
    let Some((value, stored_cas)) = c.data().env.lock().get_shared(&vm_id, &key) else {
        return Ok(Status::NotFound);
    };
    let status = return_bytes(c, &value, pp, sp)?;
    if status != Status::Ok {
        return Ok(status);
    }
    st!(write_u32(c, cas, stored_cas));
    Ok(Status::Ok)
}

fn set_shared(c: &mut C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> HostResult {
    let key = st!(read_str(c, kp, kl));
    let value = st!(read(c, vp, vl));
    let vm_id = c.data().vm_id.clone();
    let status = c
        .data()
        .env
        .lock()
        .set_shared(&vm_id, &key, value, cas as u32);
    Ok(status)
}

fn register_queue(c: &mut C<'_>, np: i32, nl: i32, ret: i32) -> HostResult {
    let name = st!(read_str(c, np, nl));
    let (vm_id, key) = (c.data().vm_id.clone(), c.data().vm_key);
    let id = c.data().env.lock().register_queue(&vm_id, &name, key);
    st!(write_u32(c, ret, id));
    Ok(Status::Ok)
}

fn resolve_queue(c: &mut C<'_>, vp: i32, vl: i32, np: i32, nl: i32, ret: i32) -> HostResult {
    let mut vm_id = st!(read_str(c, vp, vl));
    if vm_id.is_empty() {
        vm_id = c.data().vm_id.clone();
    }
    let name = st!(read_str(c, np, nl));
    let Some(id) = c.data().env.lock().find_queue(&vm_id, &name) else {
        return Ok(Status::NotFound);
    };
    st!(write_u32(c, ret, id));
    Ok(Status::Ok)
}

fn dequeue(c: &mut C<'_>, id: i32, pp: i32, sp: i32) -> HostResult {
    let item = st!(c.data().env.lock().dequeue(id as u32));
    return_bytes(c, &item, pp, sp)
}

fn enqueue(c: &mut C<'_>, id: i32, vp: i32, vl: i32) -> HostResult {
    let value = st!(read(c, vp, vl));
    let status = c.data().env.lock().enqueue(id as u32, value);
    Ok(status)
}

fn define_metric(c: &mut C<'_>, t: i32, np: i32, nl: i32, ret: i32) -> HostResult {
    let Some(kind) = MetricKind::from_raw(t) else {
        return Ok(Status::BadArgument);
    };
    let name = st!(read_str(c, np, nl));
    if c.data().profile == Profile::Apisix {
        return Ok(Status::Ok); // a no-op there: not even the id is written
    }
    c.data().env.lock().metrics.define(kind, &name);
    let id = c.data_mut().metric_ids.allocate(kind, &name);
    st!(write_u32(c, ret, id));
    Ok(Status::Ok)
}

fn metric_name(c: &C<'_>, id: i32) -> Option<String> {
    c.data().metric_ids.name(id as u32).map(str::to_string)
}

fn increment_metric(c: &mut C<'_>, id: i32, delta: i64) -> HostResult {
    if c.data().profile == Profile::Apisix {
        return Ok(Status::Ok);
    }
    let Some(name) = metric_name(c, id) else {
        return Ok(Status::NotFound);
    };
    let status = c.data().env.lock().metrics.increment(&name, delta);
    Ok(status)
}

fn record_metric(c: &mut C<'_>, id: i32, value: i64) -> HostResult {
    if c.data().profile == Profile::Apisix {
        return Ok(Status::Ok);
    }
    let Some(name) = metric_name(c, id) else {
        return Ok(Status::NotFound);
    };
    let status = c.data().env.lock().metrics.record(&name, value as u64);
    Ok(status)
}

fn get_metric(c: &mut C<'_>, id: i32, ret: i32) -> HostResult {
    let Some(name) = metric_name(c, id) else {
        return Ok(Status::NotFound);
    };
    let value = st!(c.data().env.lock().metrics.get(&name));
    st!(write_u64(c, ret, value));
    Ok(Status::Ok)
}

fn get_metric_apisix(_c: &mut C<'_>, _id: i32, _ret: i64) -> HostResult {
    Ok(Status::Ok)
}
