//! Property lookup (`proxy_get_property`) and storage (`proxy_set_property`) per host profile.

use crate::abi::{header_value, serialize_pairs, Headers, Status};
use crate::host::state::VmState;
use crate::profile::Profile;

/// Looks a property path up: `Ok(None)` is NOT_FOUND.
pub(crate) fn lookup(st: &VmState, path: &[String]) -> Result<Option<Vec<u8>>, Status> {
    let key = path.join("\0");
    if let Some(v) = st.stream().and_then(|s| s.props.get(&key)) {
        return Ok(Some(v.clone()));
    }
    if let Some(v) = st.properties.get(&key) {
        return Ok(Some(v.clone()));
    }
    if st.profile == Profile::Apisix {
        return Ok(apisix(st, path));
    }
    Ok(envoy(st, path))
}

fn text(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn int(v: i64) -> Option<Vec<u8>> {
    Some(v.to_le_bytes().to_vec())
}

fn envoy(st: &VmState, path: &[String]) -> Option<Vec<u8>> {
    let segs: Vec<&str> = path.iter().map(String::as_str).collect();
    let stream = st.stream();
    let req: Option<&Headers> = stream.map(|s| &s.request.headers);
    let resp: Option<&Headers> = stream
        .filter(|s| s.response.seen_headers)
        .map(|s| &s.response.headers);
    let rh = |n: &str| req.and_then(|h| header_value(h, n));
    match segs.as_slice() {
        ["plugin_name"] => text(&st.plugin_name),
        ["plugin_root_id"] => text(&st.root_id),
        ["plugin_vm_id"] => text(&st.vm_id),
        ["request", "path"] => text(&rh(":path")?),
        ["request", "url_path"] => text(rh(":path")?.split('?').next().unwrap_or_default()),
        ["request", "query"] => text(
            rh(":path")?
                .split_once('?')
                .map(|(_, q)| q)
                .unwrap_or_default(),
        ),
        ["request", "host"] => text(&rh(":authority")?),
        ["request", "scheme"] => text(&rh(":scheme").unwrap_or_else(|| "http".to_string())),
        ["request", "method"] => text(&rh(":method")?),
        ["request", "id"] => text(&rh("x-request-id")?),
        ["request", "referer"] => text(&rh("referer")?),
        ["request", "useragent"] => text(&rh("user-agent")?),
        ["request", "protocol"] => stream.and(text("HTTP/1.1")),
        ["request", "time"] => stream.and(int(st.env.now_ns() as i64)),
        ["request", "headers"] => req.map(|h| serialize_pairs(h)),
        ["request", "headers", name] => text(&rh(name)?),
        ["response", "code"] => int(header_value(resp?, ":status")?.parse().ok()?),
        ["response", "headers"] => resp.map(|h| serialize_pairs(h)),
        ["response", "headers", name] => text(&header_value(resp?, name)?),
        ["source", "address"] => stream.and(text("127.0.0.1:40000")),
        ["source", "port"] => stream.and(int(40000)),
        ["destination", "address"] => stream.and(text("127.0.0.1:10000")),
        ["destination", "port"] => stream.and(int(10000)),
        ["connection", "id"] | ["connection_id"] => stream.and(Some(1u64.to_le_bytes().to_vec())),
        ["connection", "mtls"] => stream.and(Some(vec![0])),
        ["xds", "route_name"] => st.properties.get("route_name").cloned(),
        ["xds", "cluster_name"] => st.properties.get("cluster_name").cloned(),
        // Higress's own names; Envoy 1.40 has only the `xds.` ones.
        ["route_name"] if st.profile == Profile::Higress => {
            st.properties.get("route_name").cloned()
        }
        ["cluster_name"] if st.profile == Profile::Higress => {
            st.properties.get("cluster_name").cloned()
        }
        _ => None,
    }
}

/// APISIX: a single segment is an nginx variable; multi-segment paths are NOT_FOUND.
fn apisix(st: &VmState, path: &[String]) -> Option<Vec<u8>> {
    let [name] = path else { return None };
    if name == "plugin_root_id" {
        return text(&st.root_id);
    }
    let req = st.stream().map(|s| &s.request.headers)?;
    let rh = |n: &str| header_value(req, n);
    let uri = rh(":path").unwrap_or_default();
    match name.as_str() {
        "uri" => text(uri.split('?').next().unwrap_or_default()),
        "request_uri" => text(&uri),
        "args" | "query_string" => text(uri.split_once('?').map(|(_, q)| q).unwrap_or_default()),
        "host" => text(&rh(":authority")?),
        "scheme" => text(&rh(":scheme").unwrap_or_else(|| "http".to_string())),
        "request_method" => text(&rh(":method")?),
        "remote_addr" => text("127.0.0.1"),
        "remote_port" => text("40000"),
        "server_port" => text("9080"),
        other => {
            if let Some(h) = other.strip_prefix("http_") {
                return text(&rh(&h.replace('_', "-"))?);
            }
            let arg = other.strip_prefix("arg_")?;
            let q = uri.split_once('?')?.1;
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| *k == arg)
                .and_then(|(_, v)| text(v))
        }
    }
}

/// Stores a property written by the guest.
pub(crate) fn store(st: &mut VmState, path: &[String], value: Vec<u8>) -> Status {
    let profile = st.profile;
    let Some(stream) = st.stream_mut() else {
        // No stream info on a root context: Envoy answers NOT_FOUND.
        return if profile == Profile::Apisix {
            Status::Ok
        } else {
            Status::NotFound
        };
    };
    if profile == Profile::Higress {
        let limit = String::from_utf8_lossy(&value).trim().parse::<usize>().ok();
        match path {
            [p] if p == "set_decoder_buffer_limit" => stream.buffer_limit_request = limit,
            [p] if p == "set_encoder_buffer_limit" => stream.buffer_limit_response = limit,
            _ => {}
        }
    }
    stream.props.insert(path.join("\0"), value);
    Status::Ok
}
