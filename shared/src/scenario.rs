//! One scenario format for every plugin, and one checker, used by the native tests (mock host)
//! and by the harness tests (the built `.wasm`).
//!
//! A scenario is a JSON object: `path`, optional `method` (default POST), `headers`, the request
//! as `request` (JSON), `requestText` or `requestFile`, the plugin `config` (or a `config.json`
//! beside the case folders), what the `upstream` answers (`status`, `contentType`, `body` or
//! `bodyFile`, `truncateAt`), and what to `expect`:
//!
//! | key | meaning |
//! |---|---|
//! | `localStatus`, `errorContains`, `errorType`, `localJson` | the plugin answers itself with this status and error (in the caller's protocol, told by the path) and the request never leaves |
//! | `upstreamPath`, `upstreamHeaders`, `upstreamHeadersAbsent` | the upstream request's `:path` and headers |
//! | `upstreamJson`, `upstreamJsonFile`, `upstreamContains`, `upstreamUntouched`, `upstreamModelOnly` | the upstream request body: equal as JSON, holding verbatim pieces, byte for byte the client's, or the client's with only `model` changed |
//! | `status`, `contentType`, `clientJson`, `clientFile`, `clientUntouched` | what the client gets back |
//!
//! Files named `providers:<name>` are the recorded provider samples in the workspace's
//! `testdata/providers/`; other names are relative to the case. Two layouts are read: a tree of
//! `<group>/<case>/case.json` ([`Scenario::load_tree`]) and a folder of `<case>.json` files
//! ([`Scenario::load_files`]).

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `group/case` or the file stem.
    pub name: String,
    /// The folder its files are relative to.
    pub dir: PathBuf,
    /// The scenario object.
    pub spec: Value,
    /// The plugin configuration (JSON text).
    pub config: String,
}

/// Headers as name/value pairs.
pub type Headers = Vec<(String, Vec<u8>)>;

/// What a run of a scenario produced, from whichever host ran it.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The plugin's own reply: status and body.
    pub local: Option<(u16, Vec<u8>)>,
    /// The request as the upstream got it: headers (lowercase names) and body.
    pub upstream: Option<(Headers, Vec<u8>)>,
    /// Response status and headers as the client got them.
    pub status: u16,
    /// Response headers as the client got them.
    pub response_headers: Vec<(String, Vec<u8>)>,
    /// Response body as the client got it.
    pub response_body: Vec<u8>,
    /// The plugin paused without a way on.
    pub stalled: Option<String>,
}

/// How strictly to compare.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions<'a> {
    /// Upstream headers not compared (time-dependent signatures in a host with another clock).
    pub skip_headers: &'a [&'a str],
    /// Rewrite golden files (`clientFile`, `upstreamJsonFile`) instead of comparing.
    pub update_golden: bool,
}

/// The workspace's recorded provider samples.
pub fn providers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/providers")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

impl Scenario {
    /// Every `<group>/<case>/case.json` under `root`, sorted by name; a case without `config`
    /// uses its group's `config.json`.
    pub fn load_tree(root: &Path) -> Vec<Scenario> {
        let mut out = Vec::new();
        for group in std::fs::read_dir(root).unwrap() {
            let group = group.unwrap().path();
            if !group.is_dir() {
                continue;
            }
            let group_config = std::fs::read_to_string(group.join("config.json")).ok();
            for case in std::fs::read_dir(&group).unwrap() {
                let dir = case.unwrap().path();
                let file = dir.join("case.json");
                if !file.exists() {
                    continue;
                }
                let spec = read_json(&file);
                let config = match spec.get("config") {
                    Some(c) => c.to_string(),
                    None => group_config
                        .clone()
                        .unwrap_or_else(|| panic!("{}: no config", file.display())),
                };
                let name = format!(
                    "{}/{}",
                    group.file_name().unwrap().to_string_lossy(),
                    dir.file_name().unwrap().to_string_lossy()
                );
                out.push(Scenario {
                    name,
                    dir,
                    spec,
                    config,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every `<case>.json` in `dir` (each with its own `config`), sorted by name.
    pub fn load_files(dir: &Path) -> Vec<Scenario> {
        let mut out: Vec<Scenario> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .map(|p| {
                let spec = read_json(&p);
                let config = spec.get("config").map(Value::to_string).unwrap_or_default();
                Scenario {
                    name: p.file_stem().unwrap().to_string_lossy().into_owned(),
                    dir: dir.to_path_buf(),
                    spec,
                    config,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// A file named in the scenario.
    pub fn file(&self, name: &str) -> PathBuf {
        match name.strip_prefix("providers:") {
            Some(n) => providers_dir().join(n),
            None => self.dir.join(name),
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        let p = self.file(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The request path.
    pub fn path(&self) -> &str {
        self.spec["path"].as_str().expect("path")
    }

    /// Whether the request is a GET (else a JSON POST).
    pub fn is_get(&self) -> bool {
        self.spec.get("method").and_then(Value::as_str) == Some("GET")
    }

    /// Extra request headers.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.spec
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The request body.
    pub fn request_body(&self) -> Vec<u8> {
        if let Some(f) = self.spec.get("requestFile").and_then(Value::as_str) {
            return self.read(f);
        }
        if let Some(t) = self.spec.get("requestText").and_then(Value::as_str) {
            return t.as_bytes().to_vec();
        }
        self.spec
            .get("request")
            .map(|r| r.to_string().into_bytes())
            .unwrap_or_default()
    }

    /// Whether the scenario has an upstream answer.
    pub fn has_upstream(&self) -> bool {
        self.spec.get("upstream").is_some()
    }

    /// The upstream's status.
    pub fn upstream_status(&self) -> u16 {
        let s = self.spec["upstream"].get("status").and_then(Value::as_u64);
        s.and_then(|s| u16::try_from(s).ok()).unwrap_or(200)
    }

    /// The upstream's content type.
    pub fn upstream_content_type(&self) -> &str {
        self.spec["upstream"]
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("application/json")
    }

    /// The upstream's body.
    pub fn upstream_body(&self) -> Vec<u8> {
        let up = &self.spec["upstream"];
        if let Some(f) = up.get("bodyFile").and_then(Value::as_str) {
            let mut b = self.read(f);
            if let Some(n) = up.get("truncateAt").and_then(Value::as_u64) {
                b.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
            return b;
        }
        match up.get("body") {
            Some(Value::String(s)) => s.as_bytes().to_vec(),
            Some(v) => v.to_string().into_bytes(),
            None => Vec::new(),
        }
    }

    /// The expectations.
    pub fn expect(&self) -> &Value {
        &self.spec["expect"]
    }

    /// Check what a run produced against the expectations (panics with the scenario's name).
    pub fn check(&self, o: &Observed, opts: CheckOptions<'_>) {
        assert_eq!(o.stalled, None, "{}: stalled", self.name);
        if self.expect().get("localStatus").is_some() {
            self.check_local(o);
            return;
        }
        self.check_upstream(o, opts);
        self.check_client(o, opts);
    }

    fn check_local(&self, o: &Observed) {
        let (n, expect) = (&self.name, self.expect());
        let (status, body) = o
            .local
            .as_ref()
            .unwrap_or_else(|| panic!("{n}: expected a local reply"));
        let text = String::from_utf8_lossy(body);
        assert_eq!(
            Some(u64::from(*status)),
            expect["localStatus"].as_u64(),
            "{n}: {text}"
        );
        assert!(o.upstream.is_none(), "{n}: must not reach the upstream");
        let json: Value =
            serde_json::from_slice(body).unwrap_or_else(|e| panic!("{n}: reply not JSON: {e}"));
        if let Some(want) = expect.get("localJson") {
            assert_eq!(&json, want, "{n}");
            return;
        }
        let err = if self.path().contains("/v1/messages") {
            assert_eq!(json["type"], "error", "{n}: Anthropic error shape");
            &json["error"]
        } else {
            &json["error"]
        };
        if let Some(t) = expect.get("errorType") {
            assert_eq!(&err["type"], t, "{n}: error type");
        }
        if let Some(want) = expect.get("errorContains").and_then(Value::as_str) {
            let msg = err["message"].as_str().unwrap_or_default();
            assert!(msg.contains(want), "{n}: {msg:?} lacks {want:?}");
        }
    }

    fn check_upstream(&self, o: &Observed, opts: CheckOptions<'_>) {
        let (n, expect) = (&self.name, self.expect());
        assert!(o.local.is_none(), "{n}: unexpected reply {:?}", o.local);
        let (headers, body) = o
            .upstream
            .as_ref()
            .unwrap_or_else(|| panic!("{n}: the request never reached the upstream"));
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        if let Some(p) = expect.get("upstreamPath").and_then(Value::as_str) {
            assert_eq!(
                header(headers, ":path").map(text).as_deref(),
                Some(p),
                "{n}: path"
            );
        }
        for (k, v) in expect
            .get("upstreamHeaders")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if !opts.skip_headers.contains(&k.as_str()) {
                assert_eq!(
                    header(headers, k).map(text).as_deref(),
                    v.as_str(),
                    "{n}: header {k}"
                );
            }
        }
        for k in expect
            .get("upstreamHeadersAbsent")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = k.as_str().unwrap_or_default();
            assert_eq!(header(headers, k), None, "{n}: header {k} must be gone");
        }
        let sent: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(want) = expect.get("upstreamJson") {
            assert_eq!(&sent, want, "{n}: upstream body\n{}", text(body));
        }
        if let Some(f) = expect.get("upstreamJsonFile").and_then(Value::as_str) {
            if opts.update_golden {
                let pretty = serde_json::to_string_pretty(&sent).unwrap() + "\n";
                std::fs::write(self.file(f), pretty).unwrap();
            }
            let want: Value = serde_json::from_slice(&self.read(f)).unwrap();
            assert_eq!(sent, want, "{n}: upstream body");
        }
        for piece in expect
            .get("upstreamContains")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let piece = piece.as_str().unwrap_or_default();
            assert!(
                text(body).contains(piece),
                "{n}: {} lacks verbatim {piece}",
                text(body)
            );
        }
        if expect.get("upstreamUntouched") == Some(&Value::Bool(true)) {
            assert_eq!(
                text(body),
                text(&self.request_body()),
                "{n}: body must be untouched"
            );
        }
        if let Some(patched) = expect.get("upstreamModelOnly").and_then(Value::as_str) {
            let original = text(&self.request_body());
            let mut want: Value = serde_json::from_str(&original).unwrap();
            want["model"] = Value::String(patched.into());
            assert_eq!(sent, want, "{n}: only model may change");
            if original.contains(&format!("\"model\":\"{patched}\""))
                || !original.contains("\"model\"")
            {
                assert_eq!(text(body), original, "{n}: bytes untouched");
            }
        }
    }

    fn check_client(&self, o: &Observed, opts: CheckOptions<'_>) {
        let (n, expect) = (&self.name, self.expect());
        if !self.has_upstream() {
            return;
        }
        let body = String::from_utf8_lossy(&o.response_body).into_owned();
        let want_status = expect.get("status").and_then(Value::as_u64).unwrap_or(200);
        assert_eq!(u64::from(o.status), want_status, "{n}: status; body {body}");
        if let Some(ct) = expect.get("contentType").and_then(Value::as_str) {
            assert_eq!(
                header(&o.response_headers, "content-type"),
                Some(ct.as_bytes()),
                "{n}"
            );
        }
        if let Some(want) = expect.get("clientJson") {
            let got: Value = serde_json::from_slice(&o.response_body)
                .unwrap_or_else(|e| panic!("{n}: client body not JSON ({e}): {body}"));
            assert_eq!(&got, want, "{n}: client body");
        }
        if let Some(f) = expect.get("clientFile").and_then(Value::as_str) {
            if opts.update_golden {
                std::fs::write(self.file(f), &o.response_body).unwrap();
            }
            let want = String::from_utf8_lossy(&self.read(f)).into_owned();
            assert_eq!(body, want, "{n}: client body differs from {f}");
        }
        if expect.get("clientUntouched") == Some(&Value::Bool(true)) {
            assert_eq!(
                o.response_body,
                self.upstream_body(),
                "{n}: response must pass untouched"
            );
        }
    }
}

impl From<&crate::mock::Outcome> for Observed {
    fn from(out: &crate::mock::Outcome) -> Self {
        // Headers the plugin held (Pause) may change until the body is complete: the final map.
        let headers = out.host.state.borrow().response_headers.clone();
        let status = header(&headers, ":status")
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
            .unwrap_or(0);
        Observed {
            local: out
                .local_response
                .as_ref()
                .map(|r| (r.status, r.body.clone())),
            upstream: out
                .upstream_headers
                .clone()
                .map(|h| (h, out.upstream_body.clone())),
            status,
            response_headers: headers,
            response_body: out.response_body.clone(),
            stalled: out.stalled.map(str::to_owned),
        }
    }
}
