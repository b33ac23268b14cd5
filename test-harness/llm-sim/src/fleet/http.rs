//! A pod's HTTP/1.1 server: OpenAI chat completions and completions (JSON, or SSE when
//! `"stream": true`), answered after the queue and the prefill, with the ORCA load header
//! (`TEXT`, or `JSON` when the request's `endpoint-load-metrics-format` asks for it),
//! `x-sim-pod`, `x-sim-prompt-tokens` and `x-sim-cached-tokens`; and the control paths.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::pod::{prompt_blocks, Load, Pod};
use crate::body::SimBody;
use crate::server::MAX_BODY_BYTES;

/// Output tokens when the request names no limit.
const DEFAULT_OUTPUT_TOKENS: u64 = 16;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Accept connections for `pod` until `stop` fires.
pub async fn serve(listener: TcpListener, pod: Arc<Pod>, log: bool, stop: oneshot::Receiver<()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let pod = Arc::clone(&pod);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| respond(Arc::clone(&pod), log, req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

async fn respond(
    pod: Arc<Pod>,
    log: bool,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let method = parts.method.as_str().to_owned();
    let json_orca = parts
        .headers
        .get("endpoint-load-metrics-format")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"JSON"));
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(&pod, 400, "could not read the request body")),
    };
    let resp = match (method.as_str(), path.as_str()) {
        ("GET", "/_sim/health") => text(200, "ok"),
        ("GET", "/_sim/fleet") => {
            let v = json!({"pod": pod.spec.name, "speed": pod.spec.speed,
                           "stats": pod.stats(), "load": pod.load()});
            json_response(200, &v)
        }
        ("POST", "/_sim/fleet/reset") => {
            pod.reset();
            json_response(200, &json!({"reset": true}))
        }
        ("POST", "/_sim/fleet/load") => {
            let load = forced_load(parts.uri.query().unwrap_or(""));
            pod.force_load(Some(load));
            json_response(200, &json!({"forced": load}))
        }
        ("DELETE", "/_sim/fleet/load") => {
            pod.force_load(None);
            json_response(200, &json!({"forced": null}))
        }
        ("POST", p) if p.ends_with("/chat/completions") || p.ends_with("/completions") => {
            generate(&pod, &body, p.ends_with("/chat/completions"), json_orca).await
        }
        _ => error(&pod, 404, &format!("Invalid URL ({method} {path})")),
    };
    if log {
        eprintln!(
            "llm-sim {}: {method} {path} -> {}",
            pod.spec.name,
            resp.status()
        );
    }
    Ok(resp)
}

/// `waiting=N&kv=F&running=N` (missing parts are 0).
fn forced_load(query: &str) -> Load {
    let mut load = Load::default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "waiting" => load.num_requests_waiting = v.parse().unwrap_or(0),
            "running" => load.num_requests_running = v.parse().unwrap_or(0),
            "kv" => load.kv_cache_usage_perc = v.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    load
}

/// The prompt pieces of a chat or completions request: every message as `role: text`.
fn prompt(v: &Value, chat: bool) -> Vec<String> {
    let text_of = |c: &Value| -> String {
        match c {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    };
    if chat {
        v.get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|m| {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
                format!(
                    "{role}: {}",
                    text_of(m.get("content").unwrap_or(&Value::Null))
                )
            })
            .collect()
    } else {
        vec![text_of(v.get("prompt").unwrap_or(&Value::Null))]
    }
}

async fn generate(pod: &Arc<Pod>, body: &Bytes, chat: bool, json_orca: bool) -> Response<SimBody> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(
            pod,
            400,
            "We could not parse the JSON body of your request.",
        );
    };
    if chat && !v.get("messages").is_some_and(Value::is_array) {
        return error(pod, 400, "Missing required parameter: 'messages'.");
    }
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("sim-chat")
        .to_owned();
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let usage_in_stream = v
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let out_tokens = v
        .get("max_completion_tokens")
        .or_else(|| v.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_OUTPUT_TOKENS)
        .clamp(1, 4096);
    let pieces = prompt(&v, chat);
    let (hashes, prompt_tokens) = prompt_blocks(&pieces, pod.spec.block_tokens);
    let adm = pod.admit(&hashes, prompt_tokens).await;
    tokio::time::sleep(adm.prefill).await;
    let load = pod.load();
    let usage = json!({
        "prompt_tokens": adm.prompt_tokens,
        "completion_tokens": out_tokens,
        "total_tokens": adm.prompt_tokens as u64 + out_tokens,
        "prompt_tokens_details": {"cached_tokens": adm.cached_tokens},
    });
    let headers = [
        ("endpoint-load-metrics", load.orca(json_orca)),
        ("x-sim-pod", pod.spec.name.clone()),
        ("x-sim-prompt-tokens", adm.prompt_tokens.to_string()),
        ("x-sim-cached-tokens", adm.cached_tokens.to_string()),
    ];
    let id = format!("chatcmpl-fleet{}", SEQ.fetch_add(1, Ordering::Relaxed));
    let words = reply_words(&pieces, out_tokens, &pod.spec.name);
    // What the next turn will send back: the prompt and this answer as an assistant message.
    let mut with_answer = pieces;
    with_answer.push(format!("assistant: {}", words.join(" ")));
    let (answer_blocks, _) = prompt_blocks(&with_answer, pod.spec.block_tokens);
    if !stream {
        tokio::time::sleep(pod.decode_time(out_tokens)).await;
        pod.remember(&answer_blocks);
        pod.finish(adm);
        let text = words.join(" ");
        let body = if chat {
            json!({"id": id, "object": "chat.completion", "created": 0, "model": model,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}],
                   "usage": usage})
        } else {
            json!({"id": id, "object": "text_completion", "created": 0, "model": model,
                   "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                   "usage": usage})
        };
        return with_headers(json_response(200, &body), &headers);
    }
    let (tx, rx) = mpsc::channel(16);
    let pod = Arc::clone(pod);
    tokio::spawn(async move {
        let per_token = pod.per_token();
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(per_token).await;
            }
            let piece = if i == 0 { w.clone() } else { format!(" {w}") };
            let delta = if i == 0 {
                json!({"role": "assistant", "content": piece})
            } else {
                json!({"content": piece})
            };
            let chunk = json!({"id": id, "object": "chat.completion.chunk", "created": 0,
                               "model": model, "choices": [{"index": 0, "delta": delta,
                               "finish_reason": null}]});
            if tx.send(Ok(sse(&chunk))).await.is_err() {
                break;
            }
        }
        let last = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let _ = tx.send(Ok(sse(&last))).await;
        if usage_in_stream {
            let u = json!({"id": id, "object": "chat.completion.chunk", "created": 0,
                           "model": model, "choices": [], "usage": usage});
            let _ = tx.send(Ok(sse(&u))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        pod.remember(&answer_blocks);
        pod.finish(adm);
    });
    let mut resp = Response::new(SimBody::Channel(rx));
    set(&mut resp, "content-type", "text/event-stream");
    with_headers(resp, &headers)
}

/// `sim:` and the pod's name, then the last prompt piece's words, cycled to `n` tokens.
fn reply_words(pieces: &[String], n: u64, pod: &str) -> Vec<String> {
    let last: Vec<&str> = pieces
        .last()
        .map(|p| p.split_whitespace().skip(1).collect())
        .unwrap_or_default();
    let mut words = vec!["sim:".to_owned(), pod.to_owned()];
    let mut i = 0;
    while (words.len() as u64) < n {
        words.push(
            last.get(i % last.len().max(1))
                .copied()
                .unwrap_or("ok")
                .to_owned(),
        );
        i += 1;
    }
    words.truncate(usize::try_from(n).unwrap_or(usize::MAX).max(1));
    words
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn set(resp: &mut Response<SimBody>, name: &'static str, value: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

fn with_headers(
    mut resp: Response<SimBody>,
    headers: &[(&'static str, String)],
) -> Response<SimBody> {
    for (k, v) in headers {
        set(&mut resp, k, v);
    }
    resp
}

fn json_response(status: u16, v: &Value) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::full(v.to_string()));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    set(&mut resp, "content-type", "application/json");
    resp
}

fn text(status: u16, body: &'static str) -> Response<SimBody> {
    let mut resp = Response::new(SimBody::full(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    set(&mut resp, "content-type", "text/plain");
    resp
}

/// An OpenAI-shaped error, with the pod's load header (a real server reports load on errors too).
fn error(pod: &Pod, status: u16, message: &str) -> Response<SimBody> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error",
                                "param": null, "code": null}});
    let resp = json_response(status, &body);
    with_headers(
        resp,
        &[
            ("endpoint-load-metrics", pod.load().orca(false)),
            ("x-sim-pod", pod.spec.name.clone()),
        ],
    )
}
