//! Host functions for stream control, local replies, callouts, gRPC, status, effective context,
//! foreign functions, `proxy_done` and the Higress extensions.

use super::state::{AfterAction, Direction, GrpcPending, VmState};
use super::{env_fn, read, read_str, return_bytes, st, write_u32, HostResult, C};
use crate::abi::{deserialize_pairs, Headers, Status};
use crate::callout::{CalloutRequest, RedisCall};
use crate::profile::Profile;
use crate::stream::LocalReply;
use std::time::Duration;
use wasmtime::Linker;

pub(super) fn link(
    l: &mut Linker<VmState>,
    names: &mut Vec<&'static str>,
    p: Profile,
) -> wasmtime::Result<()> {
    env_fn!(l, names, "proxy_continue_stream", continue_stream, (t: i32));
    env_fn!(l, names, "proxy_close_stream", close_stream, (t: i32));
    env_fn!(l, names, "proxy_send_local_response", local_response,
        (status: i32, dp: i32, dl: i32, bp: i32, bl: i32, hp: i32, hl: i32, grpc: i32));
    env_fn!(l, names, "proxy_http_call", http_call,
        (up: i32, ul: i32, hp: i32, hl: i32, bp: i32, bl: i32, tp: i32, tl: i32, timeout: i32, ret: i32));
    env_fn!(l, names, "proxy_grpc_call", grpc_call,
        (a: i32, b: i32, c2: i32, d: i32, e: i32, f: i32, g: i32, h: i32, i: i32, j: i32, timeout: i32, ret: i32));
    env_fn!(l, names, "proxy_grpc_stream", grpc_stream,
        (a: i32, b: i32, c2: i32, d: i32, e: i32, f: i32, g: i32, h: i32, ret: i32));
    env_fn!(l, names, "proxy_grpc_send", grpc_send, (token: i32, mp: i32, ml: i32, eos: i32));
    env_fn!(l, names, "proxy_grpc_cancel", grpc_cancel, (token: i32));
    env_fn!(l, names, "proxy_grpc_close", grpc_cancel, (token: i32));
    env_fn!(l, names, "proxy_get_status", get_status, (code: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_set_effective_context", set_effective_context, (ctx: i32));
    env_fn!(l, names, "proxy_call_foreign_function", call_foreign, (np: i32, nl: i32, ap: i32, al: i32, pp: i32, sp: i32));
    env_fn!(l, names, "proxy_done", done, ());
    if p == Profile::Higress {
        env_fn!(l, names, "proxy_redis_init", redis_init, (up: i32, ul: i32, a: i32, b: i32, c2: i32, d: i32, timeout: i32));
        env_fn!(l, names, "proxy_redis_call", redis_call, (up: i32, ul: i32, qp: i32, ql: i32, ret: i32));
        env_fn!(l, names, "proxy_set_upstream_override_host", override_host, (p: i32, l: i32));
        env_fn!(l, names, "proxy_get_upstream_hosts", upstream_hosts, (pp: i32, sp: i32));
        env_fn!(l, names, "proxy_inject_encoded_data_to_filter_chain", inject, (p: i32, l: i32, eos: i32));
    }
    Ok(())
}

fn stream_dir(t: i32) -> Option<Direction> {
    match t {
        0 => Some(Direction::Request),
        1 => Some(Direction::Response),
        _ => None,
    }
}

fn continue_stream(c: &mut C<'_>, t: i32) -> HostResult {
    let st = c.data_mut();
    if st.profile == Profile::Apisix {
        return Ok(Status::Ok);
    }
    let Some(dir) = stream_dir(t) else {
        return Ok(Status::BadArgument);
    };
    let ctx = st.ctx();
    if let Some(s) = st.stream_mut() {
        // Envoy forgets the request pointers at once, whichever direction is resumed.
        s.request.headers_live = false;
        s.request.body_live = false;
        s.request.trailers_live = false;
        st.after.push(AfterAction::Continue(ctx, dir));
    }
    Ok(Status::Ok)
}

fn close_stream(c: &mut C<'_>, t: i32) -> HostResult {
    let st = c.data_mut();
    if st.profile == Profile::Apisix {
        return Ok(Status::Ok);
    }
    let ctx = st.ctx();
    match stream_dir(t) {
        Some(_) if st.streams.contains_key(&ctx) => st.after.push(AfterAction::Close(ctx)),
        Some(_) => {}
        None if t == 2 || t == 3 => {}
        None => return Ok(Status::BadArgument),
    }
    Ok(Status::Ok)
}

#[allow(clippy::too_many_arguments)]
fn local_response(
    c: &mut C<'_>,
    status: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc: i32,
) -> HostResult {
    let details = st!(read_str(c, dp, dl)).replace(' ', "_");
    let body = st!(read(c, bp, bl));
    let headers: Headers = deserialize_pairs(&st!(read(c, hp, hl)))
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let grpc_status = (0..=16).contains(&grpc).then_some(grpc as u32);
    c.data_mut()
        .check_headers("proxy_send_local_response", &headers)?;
    let st = c.data_mut();
    let ctx = st.ctx();
    let in_response = st.stream().map(|s| s.in_response).unwrap_or(false);
    if st.streams.contains_key(&ctx) && !(st.profile == Profile::Apisix && in_response) {
        let reply = LocalReply {
            status: status as u32 as u16,
            headers,
            body,
            details,
            grpc_status,
        };
        st.after.push(AfterAction::LocalReply(ctx, reply));
    }
    Ok(Status::Ok)
}

fn pairs(c: &C<'_>, p: i32, l: i32) -> Result<Headers, Status> {
    Ok(deserialize_pairs(&read(c, p, l)?).unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
fn http_call(
    c: &mut C<'_>,
    up: i32,
    ul: i32,
    hp: i32,
    hl: i32,
    bp: i32,
    bl: i32,
    tp: i32,
    tl: i32,
    timeout: i32,
    ret: i32,
) -> HostResult {
    let cluster = st!(read_str(c, up, ul));
    let headers = st!(pairs(c, hp, hl));
    let body = st!(read(c, bp, bl));
    let trailers = st!(pairs(c, tp, tl));
    c.data_mut().check_headers("proxy_http_call", &headers)?;
    c.data_mut().check_headers("proxy_http_call", &trailers)?;
    let st = c.data();
    let has = |n: &str| headers.iter().any(|(k, _)| k == n);
    if !(has(":method") && has(":path") && has(":authority")) || timeout < 0 {
        return Ok(Status::BadArgument);
    }
    if st.profile == Profile::Apisix {
        let in_request = st.stream().is_some_and(|s| !s.in_response);
        if !cluster.contains(':') || !in_request || !st.pending_callouts.is_empty() {
            return Ok(Status::BadArgument);
        }
    } else if !st.env.lock().cluster_known(&cluster) {
        return Ok(Status::BadArgument);
    }
    let token = c.data_mut().take_token(0);
    let timeout = Duration::from_millis(u64::from(timeout as u32));
    let req = CalloutRequest {
        cluster,
        headers,
        body,
        trailers,
        timeout,
        token,
    };
    c.data().env.lock().callouts_seen.push(req.clone());
    c.data_mut().pending_callouts.push(req);
    st!(write_u32(c, ret, token));
    Ok(Status::Ok)
}

#[allow(clippy::too_many_arguments)]
fn grpc_call(
    c: &mut C<'_>,
    a: i32,
    b: i32,
    _svc: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    _i: i32,
    _j: i32,
    _t: i32,
    ret: i32,
) -> HostResult {
    grpc_start(c, a, b, 1, ret)
}

#[allow(clippy::too_many_arguments)]
fn grpc_stream(
    c: &mut C<'_>,
    a: i32,
    b: i32,
    _svc: i32,
    _d: i32,
    _e: i32,
    _f: i32,
    _g: i32,
    _h: i32,
    ret: i32,
) -> HostResult {
    grpc_start(c, a, b, 2, ret)
}

/// gRPC is answered as UNAVAILABLE: the call or stream closes with status 14 after the callback.
fn grpc_start(c: &mut C<'_>, up: i32, ul: i32, kind: u32, ret: i32) -> HostResult {
    let cluster = st!(read_str(c, up, ul));
    if cluster.is_empty() {
        return Ok(Status::ParseFailure);
    }
    let token = c.data_mut().take_token(kind);
    c.data_mut().pending_grpc.push(GrpcPending { token });
    st!(write_u32(c, ret, token));
    Ok(Status::Ok)
}

fn grpc_send(c: &mut C<'_>, token: i32, mp: i32, ml: i32, _eos: i32) -> HostResult {
    st!(read(c, mp, ml));
    let known = c
        .data()
        .pending_grpc
        .iter()
        .any(|g| g.token == token as u32);
    Ok(if known { Status::Ok } else { Status::NotFound })
}

fn grpc_cancel(c: &mut C<'_>, token: i32) -> HostResult {
    let pending = &mut c.data_mut().pending_grpc;
    let before = pending.len();
    pending.retain(|g| g.token != token as u32);
    Ok(if pending.len() < before {
        Status::Ok
    } else {
        Status::NotFound
    })
}

fn get_status(c: &mut C<'_>, code: i32, pp: i32, sp: i32) -> HostResult {
    let (status, message) = c.data().status.clone();
    st!(write_u32(c, code, status));
    return_bytes(c, &message, pp, sp)
}

fn set_effective_context(c: &mut C<'_>, ctx: i32) -> HostResult {
    let st = c.data_mut();
    if st.profile == Profile::Apisix {
        return Ok(Status::Ok);
    }
    let ctx = ctx as u32;
    if ctx != st.root_ctx && !st.streams.contains_key(&ctx) {
        return Ok(Status::BadArgument);
    }
    st.effective_ctx = ctx;
    Ok(Status::Ok)
}

fn call_foreign(c: &mut C<'_>, np: i32, nl: i32, ap: i32, al: i32, pp: i32, sp: i32) -> HostResult {
    let name = st!(read_str(c, np, nl));
    let args = st!(read(c, ap, al));
    let st = c.data();
    let builtin = st.profile == Profile::Higress
        && name == "get_log_level"
        && !st.env.lock().has_foreign(&name);
    let result = if builtin {
        Ok(st.log_level.to_le_bytes().to_vec())
    } else {
        st.env.lock().call_foreign(&name, &args)
    };
    let out = st!(result);
    return_bytes(c, &out, pp, sp)
}

fn done(c: &mut C<'_>) -> HostResult {
    let st = c.data_mut();
    if st.done_pending && st.ctx() == st.root_ctx {
        st.done_pending = false;
        return Ok(Status::Ok);
    }
    Ok(Status::NotFound)
}

#[allow(clippy::too_many_arguments)]
fn redis_init(
    c: &mut C<'_>,
    up: i32,
    ul: i32,
    a: i32,
    b: i32,
    c2: i32,
    d: i32,
    _timeout: i32,
) -> HostResult {
    let cluster = st!(read_str(c, up, ul));
    st!(read(c, a, b));
    st!(read(c, c2, d));
    let base = cluster.split('?').next().unwrap_or_default().to_string();
    if !c.data().env.lock().cluster_known(&base) && !c.data().env.lock().redis_configured() {
        return Ok(Status::BadArgument);
    }
    c.data_mut().redis_clusters.push(cluster);
    Ok(Status::Ok)
}

fn redis_call(c: &mut C<'_>, up: i32, ul: i32, qp: i32, ql: i32, ret: i32) -> HostResult {
    let cluster = st!(read_str(c, up, ul));
    let query = st!(read(c, qp, ql));
    let initialised = c
        .data()
        .redis_clusters
        .iter()
        .any(|r| r.split('?').next() == Some(cluster.as_str()) || *r == cluster);
    if !initialised {
        return Ok(Status::BadArgument);
    }
    let token = c.data_mut().take_token(3);
    c.data_mut().pending_redis.push(RedisCall {
        cluster,
        query,
        token,
    });
    st!(write_u32(c, ret, token));
    Ok(Status::Ok)
}

fn override_host(c: &mut C<'_>, p: i32, l: i32) -> HostResult {
    let host = st!(read_str(c, p, l));
    let Some(s) = c.data_mut().stream_mut() else {
        return Ok(Status::BadArgument);
    };
    s.upstream_override = Some(host);
    Ok(Status::Ok)
}

fn upstream_hosts(c: &mut C<'_>, pp: i32, sp: i32) -> HostResult {
    let hosts = c.data().env.lock().upstream_hosts.clone();
    let bytes = if hosts.is_empty() {
        Vec::new()
    } else {
        crate::abi::serialize_pairs(&hosts)
    };
    return_bytes(c, &bytes, pp, sp)
}

fn inject(c: &mut C<'_>, p: i32, l: i32, eos: i32) -> HostResult {
    let data = st!(read(c, p, l));
    let Some(s) = c.data_mut().stream_mut() else {
        return Ok(Status::BadArgument);
    };
    s.injected.push((data, eos != 0));
    Ok(Status::Ok)
}
