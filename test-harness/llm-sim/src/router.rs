//! The route table: which handler answers which method and path, and whether the simulation knobs
//! (latency, error injection, reset) apply to it. Provider modules contribute their own rows.

use crate::auth::Credentials;
use crate::plan::Plan;
use crate::request::{Journal, SimRequest};
use crate::{anthropic, azure, bedrock, gemini, openai, sim};

/// Per-request facts a handler may use besides the request itself.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// Unix time in seconds when the request was read.
    pub created: u64,
    /// Sequence number of the request since start (for unique ids).
    pub seq: u64,
    /// The request journal.
    pub journal: &'a Journal,
    /// Simulated server-side latency of this request in milliseconds (latency plus ttft knobs),
    /// for providers that report it (Bedrock `metrics.latencyMs`).
    pub latency_ms: u64,
}

impl Ctx<'_> {
    /// A unique id with the given prefix, e.g. `chatcmpl-sim…`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}sim{:010x}{:06x}", self.created, self.seq)
    }
}

/// Answers one request.
pub type Handler = fn(&SimRequest, &Ctx<'_>) -> Plan;

/// Formats an error `(status, message)` in a provider's error shape; without a message the
/// provider's usual message for that status is used.
pub type ErrorShape = fn(u16, Option<&str>) -> Plan;

/// Checks a request's credentials; `Err` is the provider's rejection.
pub type AuthCheck = fn(&SimRequest, &Credentials) -> Result<(), Plan>;

/// What kind of endpoint a route is.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A simulated model endpoint: knobs apply, errors use this shape.
    Model(ErrorShape),
    /// A control endpoint of the simulator itself: no knobs, not journaled.
    Control,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern; a segment written `{name}` matches any one segment.
    pub pattern: &'static str,
    /// The handler.
    pub handler: Handler,
    /// Endpoint kind.
    pub kind: Kind,
    /// Credential check run before knobs' error injection (none for OpenAI unless configured).
    pub auth: Option<AuthCheck>,
}

/// Result of looking a request up in the table.
#[derive(Debug)]
pub enum Lookup {
    /// A route matched; `params` holds the placeholder values.
    Found(Route, Vec<String>),
    /// The path is known to no route (or not for this method).
    NotFound,
}

/// All routes, control routes first.
pub fn table() -> Vec<Route> {
    let mut routes = sim::routes();
    routes.extend(openai::routes());
    routes.extend(anthropic::routes());
    routes.extend(azure::routes());
    routes.extend(bedrock::routes());
    routes.extend(gemini::routes());
    routes
}

/// The answer for a path no route serves, in the error shape of the provider whose URL space the
/// path belongs to (OpenAI's when none).
pub fn not_found(method: &str, path: &str) -> Plan {
    if path.starts_with("/model/") {
        bedrock::error::shaped(404, Some("The requested operation is not supported."))
    } else if path.starts_with("/openai/") {
        azure::error::shaped(404, Some("Resource not found"))
    } else if path.starts_with("/v1beta/") || path.contains("/publishers/google/") {
        gemini::error::shaped(
            404,
            Some(&format!(
                "The requested URL {path} was not found on this server."
            )),
        )
    } else if path == "/v1/messages" || path.starts_with("/v1/messages/") {
        anthropic::error::shaped(404, Some("Not Found"))
    } else {
        openai::error::unknown_path(method, path)
    }
}

/// Finds the route for a method and path.
pub fn lookup(routes: &[Route], method: &str, path: &str) -> Lookup {
    for route in routes {
        if route.method != method {
            continue;
        }
        if let Some(params) = match_pattern(route.pattern, path) {
            return Lookup::Found(*route, params);
        }
    }
    Lookup::NotFound
}

/// Whether a path belongs to the simulator's control surface (never journaled).
pub fn is_control_path(path: &str) -> bool {
    path.starts_with("/_sim/")
}

fn match_pattern(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') => {
                params.push(match_placeholder(p, s)?);
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Matches one segment against `{name}` or `{name}SUFFIX` (e.g. `{model}:generateContent`);
/// the captured value is percent-decoded and never empty.
fn match_placeholder(pattern: &str, segment: &str) -> Option<String> {
    let close = pattern.find('}')?;
    let suffix = pattern.get(close.saturating_add(1)..)?;
    let value = segment.strip_suffix(suffix)?;
    if value.is_empty() {
        return None;
    }
    Some(percent_decode(value))
}

/// Decodes `%XX` escapes (Bedrock model ids arrive as `us.amazon.nova-micro-v1%3A0`); invalid
/// escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i.saturating_add(1)..i.saturating_add(3));
        let decoded = hex
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, decoded) {
            (b'%', Some(v)) => {
                out.push(v);
                i = i.saturating_add(3);
            }
            _ => {
                out.push(b);
                i = i.saturating_add(1);
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_and_capture_placeholders() {
        assert_eq!(match_pattern("/v1/models", "/v1/models"), Some(vec![]));
        assert_eq!(match_pattern("/v1/models", "/v1/models/"), None);
        assert_eq!(
            match_pattern("/v1/models/{id}", "/v1/models/gpt-x"),
            Some(vec!["gpt-x".to_string()])
        );
        assert_eq!(match_pattern("/v1/models/{id}", "/v1/models/"), None);
        assert_eq!(match_pattern("/v1/chat", "/v1/chat/completions"), None);
    }

    #[test]
    fn placeholders_with_a_suffix_capture_the_rest_of_the_segment_percent_decoded() {
        let p = "/v1beta/models/{model}:generateContent";
        assert_eq!(
            match_pattern(p, "/v1beta/models/gemini-2.0-flash:generateContent"),
            Some(vec!["gemini-2.0-flash".to_string()])
        );
        assert_eq!(match_pattern(p, "/v1beta/models/:generateContent"), None);
        assert_eq!(
            match_pattern(p, "/v1beta/models/x:streamGenerateContent"),
            None
        );
        assert_eq!(
            match_pattern(
                "/model/{id}/converse",
                "/model/us.amazon.nova-micro-v1%3A0/converse"
            ),
            Some(vec!["us.amazon.nova-micro-v1:0".to_string()])
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn lookup_respects_the_method() {
        let routes = table();
        assert!(matches!(
            lookup(&routes, "POST", "/v1/chat/completions"),
            Lookup::Found(..)
        ));
        assert!(matches!(
            lookup(&routes, "GET", "/v1/chat/completions"),
            Lookup::NotFound
        ));
        assert!(matches!(lookup(&routes, "GET", "/nope"), Lookup::NotFound));
    }
}
