//! The HTTP/1.1 server: accepts connections, reads each request whole, journals it, routes it,
//! applies the knobs and writes the planned response (paced for streams).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::auth::Credentials;
use crate::body::SimBody;
use crate::conn::ResetOnDrop;
use crate::knobs::{self, Defaults, Knobs};
use crate::openai;
use crate::pacing;
use crate::plan::Plan;
use crate::request::{Journal, SimRequest};
use crate::router::{self, Ctx, ErrorShape, Kind, Lookup, Route};

/// Largest request body the simulator reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Default knobs.
    pub defaults: Defaults,
    /// Log one line per request to stderr.
    pub log: bool,
    /// Credentials requests must carry (none required by default).
    pub credentials: Credentials,
}

impl Config {
    /// Listen on `listen` with default knobs, logging off and no required credentials.
    pub fn new(listen: SocketAddr) -> Self {
        Config {
            listen,
            defaults: Defaults::default(),
            log: false,
            credentials: Credentials::default(),
        }
    }
}

/// Shared state of a running server.
#[derive(Debug)]
pub struct State {
    defaults: Defaults,
    journal: Journal,
    routes: Vec<Route>,
    seq: AtomicU64,
    log: bool,
    credentials: Credentials,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `config.listen` and starts serving on the current tokio runtime.
    pub async fn start(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            defaults: config.defaults,
            journal: Journal::default(),
            routes: router::table(),
            seq: AtomicU64::new(0),
            log: config.log,
            credentials: config.credentials,
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Server {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The request journal (what `GET /_sim/requests` reports).
    pub fn journal(&self) -> &Journal {
        &self.state.journal
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(listener: TcpListener, state: Arc<State>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection(stream, state.clone()));
                }
                Err(e) => {
                    eprintln!("llm-sim: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
}

/// Error returned to hyper to drop a connection without answering.
#[derive(Debug)]
struct ResetRequested;

impl std::fmt::Display for ResetRequested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset requested by x-sim-reset")
    }
}

impl std::error::Error for ResetRequested {}

async fn connection(stream: TcpStream, state: Arc<State>) {
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResetOnDrop::new(stream, reset.clone()));
    let svc = service_fn(move |req| respond(state.clone(), reset.clone(), req));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let _ = builder.serve_connection(io, svc).await;
}

async fn respond(
    state: Arc<State>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<SimBody>, ResetRequested> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let plan =
                openai::error::shaped(400, Some(&format!("could not read the request body: {e}")));
            return Ok(unpaced(&state, &method, &path, plan, "body"));
        }
    };
    let mut sim = SimRequest {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body,
        params: Vec::new(),
    };
    if !router::is_control_path(&path) {
        state.journal.push(&sim);
    }
    let ctx = Ctx {
        created: unix_now(),
        seq: state.seq.fetch_add(1, Ordering::Relaxed),
        journal: &state.journal,
        latency_ms: 0,
    };
    let (route, params) = match router::lookup(&state.routes, &method, &path) {
        Lookup::Found(route, params) => (route, params),
        Lookup::NotFound => {
            let plan = router::not_found(&method, &path);
            return Ok(unpaced(&state, &method, &path, plan, "unknown"));
        }
    };
    sim.params = params;
    let Kind::Model(shape) = route.kind else {
        let plan = (route.handler)(&sim, &ctx);
        return Ok(unpaced(&state, &method, &path, plan, "control"));
    };
    model_endpoint(&state, &reset, &sim, &ctx, route, shape).await
}

/// Runs a simulated model endpoint: reads the knobs, resets, waits, injects errors, or answers.
async fn model_endpoint(
    state: &State,
    reset: &AtomicBool,
    sim: &SimRequest,
    ctx: &Ctx<'_>,
    route: Route,
    shape: ErrorShape,
) -> Result<Response<SimBody>, ResetRequested> {
    let (method, path) = (sim.method.as_str(), sim.path.as_str());
    let knobs = match knobs::from_headers(&sim.headers, &state.defaults) {
        Ok(k) => k,
        Err(msg) => {
            let plan = shape(400, Some(&msg));
            return Ok(finish(
                state,
                method,
                path,
                plan,
                Knobs::default(),
                "bad-knob",
            ));
        }
    };
    if knobs.reset {
        log(state, method, path, "reset");
        reset.store(true, Ordering::SeqCst);
        return Err(ResetRequested);
    }
    sleep(knobs.latency).await;
    if let Some(check) = route.auth {
        if let Err(plan) = check(sim, &state.credentials) {
            return Ok(finish(state, method, path, plan, Knobs::default(), "auth"));
        }
    }
    if let Some(status) = knobs.error_status {
        let mut plan = shape(status, None);
        if let Some(body) = &knobs.error_body {
            plan = plan.with_body(body.clone().into_bytes());
        }
        if let Some(after) = &knobs.retry_after {
            plan = plan.with_header("retry-after", after.clone());
        }
        return Ok(finish(
            state,
            method,
            path,
            plan,
            Knobs::default(),
            "injected",
        ));
    }
    let ctx = Ctx {
        latency_ms: millis(knobs.latency.saturating_add(knobs.ttft)),
        ..*ctx
    };
    let plan = (route.handler)(sim, &ctx);
    if knobs.reset_after_bytes.is_some() {
        // The body is cut by `pacing::cut_after`; the connection then closes with a reset.
        reset.store(true, Ordering::SeqCst);
    }
    if let Plan::Full {
        tokens,
        status: 200,
        ..
    } = &plan
    {
        sleep(knobs.generation_time(*tokens)).await;
    }
    Ok(finish(state, method, path, plan, knobs, "ok"))
}

/// A response that no knob affects (control endpoints, unknown paths, unreadable bodies).
fn unpaced(state: &State, method: &str, path: &str, plan: Plan, note: &str) -> Response<SimBody> {
    finish(state, method, path, plan, Knobs::default(), note)
}

/// Turns a plan into a response; streams get a pacing task.
fn finish(
    state: &State,
    method: &str,
    path: &str,
    plan: Plan,
    knobs: Knobs,
    note: &str,
) -> Response<SimBody> {
    let status = plan.status();
    let reset_after = knobs.reset_after_bytes;
    let (content_type, body, kind, headers) = match plan {
        Plan::Full {
            content_type,
            body,
            headers,
            ..
        } => (content_type, SimBody::full(body), "full", headers),
        Plan::Stream {
            content_type,
            events,
            headers,
        } => {
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(pacing::pace(events, knobs, tx));
            (content_type, SimBody::Channel(rx), "stream", headers)
        }
    };
    // A whole body keeps its declared length, so the cut is seen as a body that ended early.
    let (body, length) = match reset_after {
        None => (body, None),
        Some(limit) => {
            let length = match &body {
                SimBody::Full(Some(b)) => Some(b.len()),
                _ => None,
            };
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(pacing::cut_after(body, limit, tx));
            (SimBody::Channel(rx), length)
        }
    };
    let note = match reset_after {
        Some(limit) => format!("{note}, reset after {limit} bytes"),
        None => note.to_string(),
    };
    log(state, method, path, &format!("{status} {kind} {note}"));
    let mut resp = Response::new(body);
    if let Some(length) = length {
        resp.headers_mut().insert(
            hyper::header::CONTENT_LENGTH,
            hyper::header::HeaderValue::from(length),
        );
    }
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    for (name, value) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

fn log(state: &State, method: &str, path: &str, what: &str) {
    if state.log {
        eprintln!("llm-sim: {method} {path} -> {what}");
    }
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
